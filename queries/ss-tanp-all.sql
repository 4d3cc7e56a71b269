-- name: ss-tanp-all
-- description: Every TCP socket and the processes holding it in every network namespace, as `ss -tanp` would print them in each, with a Netns column
select
  s.netns as "Netns",
  s.state as "State",
  s.recv_q as "Recv-Q",
  s.send_q as "Send-Q",
  s.local_addr || coalesce('%' || s.bound_dev, '') || ':' || case when s.local_port = 0 then '*' else cast(s.local_port as varchar) end as "Local Address:Port",
  s.peer_addr || ':' || case when s.peer_port = 0 then '*' else cast(s.peer_port as varchar) end as "Peer Address:Port",
  coalesce(ss_users(f.comm, f.pid, f.fd), '') as "Process"
from tcp_sockets s
left join proc_fds f on f.inode = s.inode
group by s.netns, s.inode, s.family, s.state, s.recv_q, s.send_q, s.local_addr, s.bound_dev, s.local_port, s.peer_addr, s.peer_port
order by s.netns, s.family, s.local_addr, s.local_port, s.peer_addr, s.peer_port, s.inode
