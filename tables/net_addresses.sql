-- IPv4 and IPv6 addresses of each network device: a child of net_devices, walked once per
-- device. IPv4's are a singly linked chain (in_device.ifa_list, then ifa_next), IPv6's a
-- list (inet6_dev.addr_list); the UNION restates each column for the IPv6 objects.
-- Paired with a host source (rtnetlink RTM_GETADDR in each namespace) for a live host
-- without a kernel walk.
CREATE KERNEL TABLE net_addresses 'IPv4 and IPv6 addresses of every network device, one row per address (ip addr)'
PARENT net_devices AS d
FROM CHAIN d.ip_ptr->ifa_list OF struct in_ifaddr VIA ifa_next
COLUMNS (
  family     TEXT         = 'inet'                     'inet (IPv4) or inet6 (IPv6)',
  addr       TEXT         = ipv4(ifa_local)            'the local IP address: dotted IPv4, compressed IPv6',
  prefix_len INT UNSIGNED = ifa_prefixlen              'prefix length',
  scope      TEXT         = enum(ifa_scope, 'global', 200, 'site', 253, 'link', 'host', 'nowhere')
                                                       'scope as ip addr names it: global, site, link, host or nowhere',
  flags      TEXT         = flags(ifa_flags, 'secondary', 'nodad', 'optimistic', 'dadfailed', 'home',
                                  'deprecated', 'tentative', 'permanent', 'mngtmpaddr', 'noprefixroute',
                                  'autojoin', 'stable-privacy')
                                                       'IFA_F_* flags, set bits by the names ip addr uses (temporary for IPv6''s secondary); ip prints dynamic where permanent is missing',
  label      TEXT         = ifa_label                  'IPv4 label: the device''s name, or an alias like eth0:1; NULL for IPv6'
)
UNION FROM LIST d.ip6_ptr->addr_list OF struct inet6_ifaddr VIA if_list
COLUMNS (
  family     = 'inet6',
  addr       = ipv6(addr),
  prefix_len = prefix_len,
  -- IPv6 keeps the address type's scope bits (IPV6_ADDR_LOOPBACK 0x10, _LINKLOCAL 0x20,
  -- _SITELOCAL 0x40); ip shows them as the RT_SCOPE_* names rt_scope() maps them to.
  scope      = enum(scope & 0x70, 'global', 16, 'host', 32, 'link', 64, 'site'),
  flags      = flags(flags, 'temporary', 'nodad', 'optimistic', 'dadfailed', 'home', 'deprecated',
                     'tentative', 'permanent', 'mngtmpaddr', 'noprefixroute', 'autojoin', 'stable-privacy'),
  label      = NULL
);
