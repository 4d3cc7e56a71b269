-- name: ss-nlpt
-- description: Listening TCP sockets and the processes holding them, as `ss -nlpt` prints them (kql's own network namespace; every namespace on a kernel walk)
select "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"
from ss_nlpt_all
where kql_netns() is null or "Netns" = kql_netns()
