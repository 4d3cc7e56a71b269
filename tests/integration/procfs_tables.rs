//! `proc_fds` and `processes` against what /proc says directly.

use std::collections::BTreeSet;

use crate::support::*;

#[test]
fn proc_fds_lists_every_fd_of_a_process_with_socket_inodes() {
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let holder = Holder::start("kqlt-fds", &[&listener], false, None);
    drop(listener);
    let pid = holder.pid();
    let truth: BTreeSet<(i64, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let fd = entry.file_name().to_str().unwrap().parse().unwrap();
            (fd, std::fs::read_link(entry.path()).unwrap().to_string_lossy().into_owned())
        })
        .collect();
    let sql = format!("select fd, target, kind, inode, comm from proc_fds where pid = {pid}");
    let rows = kql_rows(&[&sql]);
    let listed: BTreeSet<(i64, String)> = rows
        .iter()
        .map(|row| (row["fd"].as_i64().unwrap(), row["target"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(listed, truth);
    let socket = rows.iter().find(|row| row["kind"] == "socket").expect("the listener's fd");
    let target = socket["target"].as_str().unwrap();
    assert_eq!(target, format!("socket:[{}]", socket["inode"]));
    assert!(rows.iter().all(|row| row["comm"] == "kqlt-fds"));
    assert!(rows.iter().filter(|row| row["kind"] != "socket").all(|row| row["inode"].is_null()));
}

#[test]
fn pid_and_inode_predicates_reach_the_scan() {
    let plan = kql(&["--format", "csv", "explain select fd from proc_fds where pid in (1, 2) and inode = 7"]);
    let plan = String::from_utf8(plan.stdout).unwrap();
    assert!(plan.contains("KernelScanExec: table=proc_fds"), "{plan}");
    assert!(plan.contains("key_predicates=["), "{plan}");
    let join = kql(&["--format", "csv", "explain select * from tcp_listeners join proc_fds using (inode)"]);
    let join = String::from_utf8(join.stdout).unwrap();
    assert!(join.contains("DynamicFilter"), "the join's keys reach the proc_fds scan: {join}");
}

#[test]
fn processes_reports_parent_name_command_line_and_namespace() {
    let holder = Holder::start("kqlt-proc", &[], true, None);
    let child = holder.children()[0];
    let sql = format!(
        "select pid, ppid, comm, cmdline, threads, uid, netns from processes where pid in ({}, {child}) order by pid",
        holder.pid()
    );
    let rows = kql_rows(&[&sql]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let by_pid = |pid: i32| rows.iter().find(|row| row["pid"] == pid).unwrap();
    let (parent, forked) = (by_pid(holder.pid()), by_pid(child));
    assert_eq!(parent["comm"], "kqlt-proc");
    assert_eq!(forked["comm"], "sleep");
    assert_eq!(forked["ppid"], holder.pid());
    assert_eq!(forked["cmdline"], "sleep 1000");
    assert_eq!(parent["ppid"], std::process::id());
    assert_eq!(forked["threads"], 1);
    assert_eq!(parent["uid"], 0);
    assert_eq!(parent["netns"], inode_of("/proc/self/ns/net"));
}

#[test]
fn threads_lists_every_thread_of_a_process() {
    let script = "import threading, sys\nfor _ in range(3): threading.Thread(target=sys.stdin.read, daemon=True).start()\nsys.stdin.read()";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let pid = child.id();
    let task_dir = format!("/proc/{pid}/task");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&task_dir).map_or(0, Iterator::count) < 4 {
        assert!(std::time::Instant::now() < deadline, "python never started its threads");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let truth: BTreeSet<i64> = std::fs::read_dir(&task_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    let rows = kql_rows(&[&format!("select tid, state from threads where pid = {pid}")]);
    let _ = child.kill();
    let _ = child.wait();
    let listed: BTreeSet<i64> = rows.iter().map(|row| row["tid"].as_i64().unwrap()).collect();
    assert_eq!(listed, truth);
    assert!(listed.contains(&i64::from(pid)), "the main thread is listed");
}
