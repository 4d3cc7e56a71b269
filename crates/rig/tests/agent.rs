//! The guest agent and the tools share on a real guest (Debian 6.1, `idle`): commands run
//! inside the guest as root and as nobody, with their output, exit codes, environment and
//! timeouts coming back; bad requests do not kill the agent; a host directory is readable at
//! `/tools`, read-only and page-cached, and a host binary put there (iproute2's `ip`, which the
//! rig's tests need anyway) runs with the shared libraries `libraries_for` brought. One boot
//! serves every check.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kql_rig::agent_protocol::{self, AGENT_DIR};
use kql_rig::guest::{BootOptions, Guest, GuestCommand, GuestOutput};
use kql_rig::kernels::{self, Series};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_kql-rig-workload");

/// What the tools share holds.
const TOOLS_FILE: (&str, &str) = ("hello.txt", "hello from the host tools dir\n");

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("kql-rig-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn exec(guest: &Guest, command: GuestCommand) -> GuestOutput {
    guest.exec(&command).unwrap_or_else(|e| panic!("{:?}: {e}", command.argv))
}

fn shell(guest: &Guest, script: &str) -> GuestOutput {
    guest.shell(script).unwrap_or_else(|e| panic!("{script:?}: {e}"))
}

#[test]
fn agent_and_tools_share_on_a_6_1_guest() {
    let kernel = kernels::fetch(Series::Bookworm61).expect("fetch 6.1");
    let tools = TempDir::new("tools");
    fs::write(tools.0.join(TOOLS_FILE.0), TOOLS_FILE.1).unwrap();
    let ip = on_path("ip");
    fs::copy(&ip, tools.0.join("ip")).unwrap();
    let options = BootOptions {
        tools: Some(&tools.0),
        libraries_for: &[&ip],
        ..BootOptions::new(&kernel, "idle", Path::new(WORKLOAD))
    };
    let guest = Guest::boot(&options).unwrap_or_else(|e| panic!("boot 6.1: {e}"));

    let uname = exec(&guest, GuestCommand::new(["uname", "-r"]));
    assert!(uname.success(), "{uname:?}");
    assert_eq!(uname.stdout.trim(), kernel.release, "the command ran in the guest");
    report_round_trip(&guest);

    commands_run_as_other_users(&guest);
    failures_come_back(&guest);
    environment_is_clean_plus_given(&guest);
    timeouts_kill_the_command(&guest);
    bad_requests_leave_the_agent_serving(&guest);
    concurrent_callers_get_their_own_output(&guest);
    tools_are_readable_read_only_and_cached(&guest, &tools.0);
    host_binaries_run_from_tools(&guest);
}

/// Where `program` is on this host's `PATH`.
fn on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(program)).find(|file| file.is_file());
    found.unwrap_or_else(|| panic!("the rig's tests need `{program}` on PATH"))
}

/// Prints the median round trip of a trivial command (host → agent → host).
fn report_round_trip(guest: &Guest) {
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let started = Instant::now();
            assert!(exec(guest, GuestCommand::new(["true"])).success());
            started.elapsed()
        })
        .collect();
    times.sort();
    eprintln!("agent round trip of `true`: median {:?} (min {:?}, max {:?})", times[4], times[0], times[8]);
}

fn commands_run_as_other_users(guest: &Guest) {
    let nobody = exec(guest, GuestCommand::new(["/bin/sh", "-c", "id -u; id -g; id -G"]).uid(65534));
    assert!(nobody.success(), "{nobody:?}");
    assert_eq!(nobody.stdout, "65534\n65534\n65534\n", "uid, gid and no other groups");
    assert_eq!(shell(guest, "id -u").stdout, "0\n", "root by default");
}

fn failures_come_back(guest: &Guest) {
    let failed = shell(guest, "echo out; echo oops >&2; exit 3");
    assert_eq!((failed.code, failed.signal, failed.timed_out), (Some(3), None, false), "{failed:?}");
    assert_eq!((failed.stdout.as_str(), failed.stderr.as_str()), ("out\n", "oops\n"));
    assert!(!failed.success());
    let killed = shell(guest, "kill -TERM $$");
    assert_eq!((killed.code, killed.signal), (None, Some(libc::SIGTERM)), "{killed:?}");
    let missing = guest.exec(&GuestCommand::new(["/no/such/program"]));
    let error = missing.expect_err("a program that does not exist is an error").to_string();
    assert!(error.contains("/no/such/program"), "{error}");
}

fn environment_is_clean_plus_given(guest: &Guest) {
    let env = exec(guest, GuestCommand::new(["/bin/sh", "-c", "env | sort"]).env("KQL_TEST", "a b"));
    let mut lines: Vec<&str> = env.stdout.lines().filter(|line| !line.starts_with("PWD=")).collect();
    lines.retain(|line| !line.starts_with("SHLVL="));
    assert_eq!(
        lines,
        ["HOME=/root", "KQL_TEST=a b", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"],
        "{env:?}"
    );
    let path = exec(guest, GuestCommand::new(["/bin/sh", "-c", "echo $PATH"]).env("PATH", "/tools:/bin"));
    assert_eq!(path.stdout, "/tools:/bin\n", "the given environment wins");
}

fn timeouts_kill_the_command(guest: &Guest) {
    let started = Instant::now();
    let slept = exec(guest, GuestCommand::new(["sleep", "100"]).timeout(Duration::from_secs(2)));
    assert!(slept.timed_out, "{slept:?}");
    assert_eq!((slept.code, slept.signal), (None, Some(libc::SIGKILL)), "{slept:?}");
    assert!(slept.wall >= Duration::from_secs(2) && slept.wall < Duration::from_secs(30), "{slept:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "came back after {:?}", started.elapsed());
    // The whole process group goes, not just its leader.
    let group =
        exec(guest, GuestCommand::new(["/bin/sh", "-c", "sleep 101 & wait"]).timeout(Duration::from_secs(1)));
    assert!(group.timed_out, "{group:?}");
    assert_eq!(shell(guest, "pgrep -f 'sleep 10[01]' || true").stdout, "", "no sleep survives");
}

/// A request that is not JSON, written by hand: the agent answers it with an error and goes on.
fn bad_requests_leave_the_agent_serving(guest: &Guest) {
    let dir = guest.share().join(AGENT_DIR);
    let n = 1_000_000;
    agent_protocol::write_atomically(&agent_protocol::request_path(&dir, n), b"{not json").unwrap();
    let result = agent_protocol::result_path(&dir, n);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !result.exists() {
        assert!(Instant::now() < deadline, "no result for a bad request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&result).unwrap()).unwrap();
    assert!(
        json["code"].is_null() && json["error"].as_str().is_some_and(|e| e.contains("not JSON")),
        "{json}"
    );
    assert!(shell(guest, "true").success(), "the agent still serves");
}

fn concurrent_callers_get_their_own_output(guest: &Guest) {
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..3)
            .map(|caller| {
                scope.spawn(move || {
                    for round in 0..3 {
                        let echoed = shell(guest, &format!("echo {caller}-{round}"));
                        assert_eq!(echoed.stdout, format!("{caller}-{round}\n"));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
    });
}

fn tools_are_readable_read_only_and_cached(guest: &Guest, tools: &Path) {
    let (name, content) = TOOLS_FILE;
    let read = exec(guest, GuestCommand::new(["cat", &format!("/tools/{name}")]).uid(65534));
    assert_eq!((read.code, read.stdout.as_str()), (Some(0), content), "{read:?}");

    let mounts = shell(guest, "cat /proc/mounts").stdout;
    let options = |mount_point: &str| -> Vec<String> {
        let line = mounts.lines().find(|line| line.split(' ').nth(1) == Some(mount_point));
        let line = line.unwrap_or_else(|| panic!("{mount_point} is not mounted: {mounts}"));
        line.split(' ').nth(3).unwrap_or_default().split(',').map(String::from).collect()
    };
    // 6.1 shows the cache mode as a bare word.
    let cached = |options: &[String]| options.iter().any(|o| ["loose", "cache=loose"].contains(&o.as_str()));
    let tools_options = options("/tools");
    assert!(tools_options.contains(&"ro".to_string()) && cached(&tools_options), "{tools_options:?}");
    let share_options = options("/share");
    assert!(share_options.contains(&"rw".to_string()) && !cached(&share_options), "{share_options:?}");

    let write = shell(guest, "echo x > /tools/new");
    assert!(!write.success() && write.stderr.contains("Read-only"), "{write:?}");
    assert!(!tools.join("new").exists(), "the guest wrote into the host's tools dir");
}

/// The host's `ip` (libbpf, libmnl, ...: libraries the workload does not need) runs from /tools.
fn host_binaries_run_from_tools(guest: &Guest) {
    let version = exec(guest, GuestCommand::new(["/tools/ip", "-V"]).uid(65534));
    assert!(version.success() && version.stdout.contains("iproute2"), "{version:?}");
}
