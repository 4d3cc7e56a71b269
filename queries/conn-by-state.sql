-- name: conn-by-state
-- description: TCP sockets per process and state, every network namespace; sockets no process holds (time-wait, requests, orphans) count under an empty Process
select
  coalesce(f.comm, '') as "Process",
  f.pid as "PID",
  s.state as "State",
  count(*) as "Sockets"
from tcp_sockets s
left join proc_fds f on f.inode = s.inode
group by f.comm, f.pid, s.state
order by "Sockets" desc, f.pid, s.state
