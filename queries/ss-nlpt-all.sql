-- name: ss-nlpt-all
-- description: Listening TCP sockets and their processes in every network namespace, as `ss -nlpt` would print them in each, with a Netns column
select
  l.netns as "Netns",
  l.state as "State",
  l.recv_q as "Recv-Q",
  l.send_q as "Send-Q",
  l.local_addr || coalesce('%' || l.bound_dev, '') || ':' || l.local_port as "Local Address:Port",
  l.peer_addr || ':' || case when l.peer_port = 0 then '*' else cast(l.peer_port as varchar) end as "Peer Address:Port",
  coalesce(ss_users(f.comm, f.pid, f.fd), '') as "Process"
from tcp_listeners l
left join proc_fds f on f.inode = l.inode
group by l.netns, l.inode, l.family, l.state, l.recv_q, l.send_q, l.local_addr, l.bound_dev, l.local_port, l.peer_addr, l.peer_port
order by l.netns, l.family, l.local_addr, l.local_port, l.inode
