-- name: top-retrans
-- description: The 20 TCP sockets that retransmitted the most segments over their life (tcpi_total_retrans), with round-trip time, congestion window and processes, every network namespace
select
  s.netns as "Netns",
  s.state as "State",
  s.local_addr || ':' || cast(s.local_port as varchar) as "Local Address:Port",
  s.peer_addr || ':' || case when s.peer_port = 0 then '*' else cast(s.peer_port as varchar) end as "Peer Address:Port",
  s.total_retrans as "Retrans",
  s.retransmits as "Unrecovered",
  s.lost as "Lost",
  s.bytes_retrans as "Bytes retrans",
  s.rtt_us as "RTT us",
  s.cwnd as "Cwnd",
  s.congestion as "CC",
  coalesce(ss_users(f.comm, f.pid, f.fd), '') as "Process"
from tcp_sockets s
left join proc_fds f on f.inode = s.inode
where s.total_retrans > 0
group by s.netns, s.inode, s.state, s.local_addr, s.local_port, s.peer_addr, s.peer_port, s.total_retrans, s.retransmits, s.lost, s.bytes_retrans, s.rtt_us, s.cwnd, s.congestion
order by "Retrans" desc, s.netns, s.local_port, s.inode
limit 20
