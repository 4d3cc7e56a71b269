-- name: ss-xp
-- description: Connected unix sockets and the processes holding them, as `ss -xp` prints them (no listening or unconnected ones; kql's own network namespace, every namespace on a kernel walk)
select
  'u_' || x.type as "Netid",
  x.state as "State",
  x.recv_q as "Recv-Q",
  x.send_q as "Send-Q",
  coalesce(x.path, '*') || ' ' || cast(x.inode as varchar) as "Local Address:Port",
  '* ' || cast(coalesce(x.peer_inode, 0) as varchar) as "Peer Address:Port",
  coalesce(ss_users(f.comm, f.pid, f.fd), '') as "Process"
from unix_sockets x
left join proc_fds f on f.inode = x.inode
where (kql_netns() is null or x.netns = kql_netns())
  and x.state not in ('LISTEN', 'UNCONN', 'TIME-WAIT', 'SYN-RECV')
group by x.netns, x.inode, x.type, x.state, x.recv_q, x.send_q, x.path, x.peer_inode
order by x.netns, x.type, x.inode
