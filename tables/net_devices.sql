-- Network devices of each network namespace: a child table, walked once per namespace.
-- Paired with a host source (rtnetlink RTM_GETLINK in each namespace) for a live host
-- without a kernel walk.
CREATE KERNEL TABLE net_devices 'Network interfaces of every network namespace, one row per device (ip link)'
PARENT net_namespaces AS n
FROM LIST n.dev_base_head OF struct net_device VIA dev_list
COLUMNS (
  ifindex   INT KEY          = ifindex                  'interface index, unique within its namespace',
  name      TEXT             = name                     'interface name',
  kind      TEXT             = rtnl_link_ops->kind      'rtnl link kind (veth, dummy, bridge, …; ip -d link); NULL for a device no link type created, like lo or a physical NIC',
  -- A device without a hardware address (addr_len 0: tun, wireguard) has none; others show
  -- their first six bytes.
  mac       TEXT             = if(addr_len, mac(dev_addr))
                                                        'hardware address (first six bytes); NULL for a device without one',
  mtu       INT UNSIGNED     = mtu                      'MTU in bytes',
  flags     TEXT             = flags(flags, 'UP', 'BROADCAST', 'DEBUG', 'LOOPBACK', 'POINTOPOINT', 'NOTRAILERS',
                                     'RUNNING', 'NOARP', 'PROMISC', 'ALLMULTI', 'MASTER', 'SLAVE', 'MULTICAST',
                                     'PORTSEL', 'AUTOMEDIA', 'DYNAMIC', 'LOWER_UP', 'DORMANT', 'ECHO')
                                                        'IFF_* flags the device holds (as in /sys/class/net/NAME/flags), set bits by the names ip link uses; ip also shows LOWER_UP and NO-CARRIER, which come from operstate',
  -- As ip and sysfs show it: DOWN whenever the device is not up (netif_running(), bit 0
  -- __LINK_STATE_START of state), whatever operstate last held.
  operstate TEXT             = enum(if(state & 1, operstate, 2),
                                    'UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP')
                                                        'RFC 2863 operational state as ip link shows it: UNKNOWN, NOTPRESENT, DOWN, LOWERLAYERDOWN, TESTING, DORMANT or UP',
  -- netdev_master_upper_dev_get(): a master is always first among the upper devices.
  master    INT              = if(first(adj_list.upper OF struct netdev_adjacent VIA list).master,
                                  first(adj_list.upper OF struct netdev_adjacent VIA list).dev->ifindex)
                                                        'ifindex of the master device it is enslaved to (a bridge, a bond, a VRF); NULL if none',
  qdisc     TEXT             = qdisc->ops->id           'kind of its root queueing discipline (noqueue, noop, fq_codel, …)',
  type      INT UNSIGNED     = type                     'ARPHRD_* hardware type (1 ethernet, 772 loopback)'
);
