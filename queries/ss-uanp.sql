-- name: ss-uanp
-- description: UDP sockets and the processes holding them, as `ss -uanp` prints them (kql's own network namespace; every namespace on a kernel walk)
select
  u.state as "State",
  u.recv_q as "Recv-Q",
  u.send_q as "Send-Q",
  u.local_addr || coalesce('%' || u.bound_dev, '') || ':' || case when u.local_port = 0 then '*' else cast(u.local_port as varchar) end as "Local Address:Port",
  u.peer_addr || ':' || case when u.peer_port = 0 then '*' else cast(u.peer_port as varchar) end as "Peer Address:Port",
  coalesce(ss_users(f.comm, f.pid, f.fd), '') as "Process"
from udp_sockets u
left join proc_fds f on f.inode = u.inode
where kql_netns() is null or u.netns = kql_netns()
group by u.netns, u.inode, u.family, u.state, u.recv_q, u.send_q, u.local_addr, u.bound_dev, u.local_port, u.peer_addr, u.peer_port
order by u.netns, u.family, u.local_addr, u.local_port, u.inode
