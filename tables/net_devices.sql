-- Network devices of each network namespace: a child table, walked once per namespace.
CREATE KERNEL TABLE net_devices 'Network interfaces of every network namespace, one row per device (ip link)'
PARENT net_namespaces AS n
FROM LIST n.dev_base_head OF struct net_device VIA dev_list
COLUMNS (
  ifindex INT KEY          = ifindex                  'interface index, unique within its namespace',
  name    TEXT             = name                     'interface name',
  mtu     INT UNSIGNED     = mtu                      'MTU in bytes',
  flags   TEXT             = flags(flags, 'UP', 'BROADCAST', 'DEBUG', 'LOOPBACK', 'POINTOPOINT', 'NOTRAILERS',
                                   'RUNNING', 'NOARP', 'PROMISC', 'ALLMULTI', 'MASTER', 'SLAVE', 'MULTICAST',
                                   'PORTSEL', 'AUTOMEDIA', 'DYNAMIC')
                                                      'interface flags (IFF_*) as the kernel holds them, set bits by name',
  mac     TEXT             = mac(dev_addr)            'hardware address',
  type    INT UNSIGNED     = type                     'ARPHRD_* hardware type (1 ethernet, 772 loopback)'
);
