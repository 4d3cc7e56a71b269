-- name: ip-addr
-- description: Each interface's state and addresses, as `ip -br addr` prints them in each network namespace (without ip's @peer suffix), with a Netns column
select
  d.netns as "Netns",
  d.name as "Interface",
  d.operstate as "State",
  coalesce(string_agg(a.addr || '/' || cast(a.prefix_len as varchar), ' '), '') as "Addresses"
from net_devices d
left join net_addresses a on a.netns = d.netns and a.ifindex = d.ifindex
group by d.netns, d.ifindex, d.name, d.operstate
order by d.netns, d.ifindex
