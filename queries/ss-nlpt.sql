-- name: ss-nlpt
-- description: Listening TCP sockets and the processes holding them, as `ss -nlpt` prints them (kql's own network namespace)
select
  l.state as "State",
  l.recv_q as "Recv-Q",
  l.send_q as "Send-Q",
  l.local_addr || coalesce('%' || l.bound_dev, '') || ':' || l.local_port as "Local Address:Port",
  l.peer_addr || ':' || case when l.peer_port = 0 then '*' else cast(l.peer_port as varchar) end as "Peer Address:Port",
  coalesce(
    'users:(' || string_agg('("' || f.comm || '",pid=' || f.pid || ',fd=' || f.fd || ')', ',' order by f.pid desc, f.fd desc) || ')',
    ''
  ) as "Process"
from tcp_listeners l
left join proc_fds f on f.inode = l.inode
where kql_netns() is null or l.netns = kql_netns()
group by l.netns, l.inode, l.family, l.state, l.recv_q, l.send_q, l.local_addr, l.bound_dev, l.local_port, l.peer_addr, l.peer_port
order by l.family, l.local_addr, l.local_port, l.inode
