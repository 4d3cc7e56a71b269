-- name: ss-tanp
-- description: Every TCP socket and the processes holding it, as `ss -tanp` prints them (kql's own network namespace; every namespace on a kernel walk)
select "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"
from ss_tanp_all
where kql_netns() is null or "Netns" = kql_netns()
order by "Netns", "Local Address:Port", "Peer Address:Port"
