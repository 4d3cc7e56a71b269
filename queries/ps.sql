-- name: ps
-- description: Every process with its parent, owner, state, threads, start time and command line, like `ps -eo pid,ppid,uid,stat,nlwp,lstart,args`
select pid, ppid, uid, state, threads, start_time, comm, cmdline
from processes
order by pid
