-- name: lsof-i
-- description: Processes with listening TCP sockets, like `lsof -nP -iTCP -sTCP:LISTEN`
select
  f.comm as "COMMAND",
  f.pid as "PID",
  f.uid as "USER",
  f.fd || 'u' as "FD",
  case l.family when 'inet6' then 'IPv6' else 'IPv4' end as "TYPE",
  l.inode as "DEVICE",
  'TCP' as "NODE",
  l.local_addr || ':' || l.local_port || ' (LISTEN)' as "NAME"
from tcp_listeners l
join proc_fds f on f.inode = l.inode
where kql_netns() is null or l.netns = kql_netns()
order by f.pid, f.fd
