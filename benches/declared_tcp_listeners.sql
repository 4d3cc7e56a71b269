-- The walk of the hand-written tcp_listeners (crates/kernel/src/net.rs, ListeningHash and
-- SockWalker) on kernels since 5.19, declared: tcp_hashinfo's lhash2 array of
-- lhash2_mask + 1 listening buckets, each an hlist_nulls chain of struct sock through
-- __sk_common.skc_nulls_node. The columns read what SockWalker reads. Used by
-- benches/kernel_walk.rs (declared against hand-written) and by kql-declare's
-- tests/tcp_listeners.rs (the same rows).
CREATE KERNEL TABLE declared_tcp_listeners 'Listening TCP sockets of every network namespace, declared (ss -ltn)'
FROM ARRAY CAST(tcp_hashinfo AS struct inet_hashinfo).lhash2
       COUNT CAST(tcp_hashinfo AS struct inet_hashinfo).lhash2_mask + 1
     THEN HLIST nulls_head OF struct sock VIA __sk_common.skc_nulls_node
COLUMNS (
  netns        BIGINT UNSIGNED   = __sk_common.skc_net.net->ns.inum   'inode of its network namespace (sock_net(sk)->ns.inum)',
  family       INT UNSIGNED      = __sk_common.skc_family             '2 (AF_INET) or 10 (AF_INET6)',
  state        INT UNSIGNED      = __sk_common.skc_state              'TCP state: 10 (TCP_LISTEN)',
  local_port   INT UNSIGNED      = __sk_common.skc_num                'local port, host order',
  local_v4     BIGINT UNSIGNED   = __sk_common.skc_rcv_saddr          'IPv4 local address as the kernel holds it (network order, read little-endian)',
  local_v6     TEXT ?            = hex(__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8)
                                                                      'IPv6 local address, 32 hex digits',
  peer_port    INT UNSIGNED      = ((__sk_common.skc_dport & 0xff) << 8) + (__sk_common.skc_dport >> 8)
                                                                      'peer port, host order (0 while listening)',
  recv_q       BIGINT UNSIGNED   = sk_ack_backlog                     'connections waiting in the accept queue (ss Recv-Q)',
  send_q       BIGINT UNSIGNED   = sk_max_ack_backlog                 'the listen() backlog (ss Send-Q)',
  uid          BIGINT UNSIGNED   = sk_uid.val                         'owner uid',
  inode        BIGINT UNSIGNED   = CAST(sk_socket AS struct socket_alloc *)->vfs_inode.i_ino
                                                                      'inode of its socket (SOCK_INODE(sk->sk_socket)->i_ino)',
  v6only       BOOLEAN           = __sk_common.skc_ipv6only           'IPV6_V6ONLY',
  reuseport    BOOLEAN           = __sk_common.skc_reuseport          'SO_REUSEPORT',
  bound_dev_if INT               = __sk_common.skc_bound_dev_if       'ifindex of the device it is bound to, 0 if none',
  cookie       BIGINT UNSIGNED ? = __sk_common.skc_cookie.counter     'socket cookie, 0 while none is assigned',
  cgroup_id    BIGINT UNSIGNED ? = sk_cgrp_data.cgroup->kn->id        'cgroup v2 id of its cgroup'
);
