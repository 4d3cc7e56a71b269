-- name: who-listens
-- description: Processes listening on a TCP port, in every network namespace
-- param: port port 22
select l.netns, l.family, l.local_addr, l.local_port, l.recv_q, l.send_q, f.comm, f.pid, f.fd
from tcp_listeners l
left join proc_fds f on f.inode = l.inode
where l.local_port = $port
order by l.netns, l.family, l.local_addr, f.pid, f.fd
