-- Every network namespace the kernel has, in use by a process or not.
CREATE KERNEL TABLE net_namespaces 'Network namespaces, one row per namespace'
FROM LIST net_namespace_list OF struct net VIA list
COLUMNS (
  netns    BIGINT UNSIGNED KEY = ns.inum               'inode of the namespace, as in /proc/PID/ns/net',
  cookie   BIGINT UNSIGNED ?   = net_cookie            'namespace cookie (SO_NETNS_COOKIE); NULL before Linux 5.12',
  user_ns  BIGINT UNSIGNED     = user_ns->ns.inum      'inode of the user namespace that owns it',
  loopback TEXT                = loopback_dev->name    'its loopback device'
);
