//! kql on damaged vmcores, as a crash-dump user meets them: each [`crate::damage`] of the 6.1
//! `basic` guest's vmcore (a list link into itself, to garbage, to unmapped memory, to user
//! space; a socket's wild `sk_socket`; a task's garbage `files`; a zeroed page of listening
//! buckets; a bucket count of 2^31; a file cut short) is read by the `kql` binary with the
//! vmcore's BTF, on the socket and process tables, `ss-nlpt-all` and three declared tables.
//!
//! Every run must end in bounded time (killed after [`TIMEOUT`]: a failure), without a
//! signal or panic, and either print rows — each one the undamaged vmcore also has, those
//! away from the damage all there, anything missing named in a warning — or fail in one
//! `kql:` line. A vmcore never changes: no warning may say "changing while read?", and no
//! error may carry DataFusion's "Execution error:".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use kql_rig::kernels::Series;
use serde_json::Value;

use crate::damage::{Damage, Landmarks, Rng, SEED};
use crate::support::{Bounded, TempDir, kql_within};

/// How long one kql run on a damaged vmcore may take (they take 0.2–0.5 s).
const TIMEOUT: Duration = Duration::from_secs(60);

type Row = BTreeMap<String, Value>;
/// Whether a query's row of the undamaged vmcore may be missing (or changed) after a damage.
type MayLose = Box<dyn Fn(&str, &Row) -> bool>;

/// A statement run on each damaged vmcore, with the columns that identify a row.
struct Query {
    name: &'static str,
    args: &'static [&'static str],
    key: &'static [&'static str],
}

const QUERIES: &[Query] = &[
    Query { name: "tcp_listeners", args: &["select * from tcp_listeners"], key: &["sk_addr"] },
    Query { name: "tcp_sockets", args: &["select * from tcp_sockets"], key: &["sk_addr"] },
    Query { name: "ss-nlpt-all", args: &["-q", "ss-nlpt-all"], key: &["Netns", "Local Address:Port"] },
    Query { name: "processes", args: &["select * from processes"], key: &["pid"] },
    Query { name: "proc_fds", args: &["select * from proc_fds"], key: &["pid", "fd"] },
    Query { name: "threads", args: &["select * from threads"], key: &["tid"] },
    Query { name: "kernel_modules", args: &["select * from kernel_modules"], key: &[] },
    Query { name: "net_devices", args: &["select * from net_devices"], key: &[] },
    Query { name: "mounts", args: &["select * from mounts"], key: &[] },
];

/// What one damage must do to each query.
struct Case {
    name: &'static str,
    damage: Damage,
    /// Queries that must warn (with `mention` in a warning) or fail (with it in the error).
    affects: &'static [&'static str],
    /// Those of them that must fail in one line.
    must_fail: &'static [&'static str],
    mention: Vec<String>,
    /// Rows of the undamaged vmcore the damage may take away (or change), per query.
    may_lose: MayLose,
}

/// The statements run on each damaged copy of the `sockets` vmcore.
const SOCKET_QUERIES: &[Query] = &[
    Query { name: "udp_sockets", args: &["select * from udp_sockets"], key: &["sk_addr"] },
    Query { name: "unix_sockets", args: &["select * from unix_sockets"], key: &["sk_addr"] },
];

/// The vmcore and its kernel's debug vmlinux.
fn vmcore() -> &'static (PathBuf, PathBuf) {
    static VMCORE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    VMCORE.get_or_init(|| kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the 6.1 vmcore"))
}

/// How kql gets the kernel's types: the vmcore's own BTF, or DWARF (for the queries in
/// [`DWARF_QUERIES`], as DWARF costs 0.4 s per run).
#[derive(Clone, Copy, Debug)]
enum Types {
    Btf,
    Dwarf,
}

const DWARF_QUERIES: &[&str] = &["tcp_listeners", "processes", "proc_fds"];

const TASKS: &[&str] = &["processes", "proc_fds", "threads", "ss-nlpt-all"];
const LISTENERS: &[&str] = &["tcp_listeners", "tcp_sockets", "ss-nlpt-all"];

fn cases(landmarks: &Landmarks) -> Vec<Case> {
    let mut rng = Rng::new(SEED);
    let workload: Vec<_> = landmarks.leaders.iter().filter(|l| l.comm.starts_with("kqlw")).cloned().collect();
    let victim = rng.pick(&workload).clone();
    let link = victim.task + landmarks.task_tasks;
    let listener = rng.pick(&landmarks.listeners).clone();
    let node = listener.sk + landmarks.sk_node;
    let nothing = || Box::new(|_: &str, _: &Row| false) as MayLose;
    let tasks_case = |name, value| Case {
        name,
        damage: Damage::word(link, value),
        affects: TASKS,
        must_fail: &[],
        mention: vec!["init_task.tasks".into(), format!("{link:#x}")],
        may_lose: nothing(),
    };
    let chain_case = |name, value| Case {
        name,
        damage: Damage::word(node, value),
        affects: LISTENERS,
        must_fail: &[],
        mention: vec!["tcp_hashinfo listening buckets".into(), format!("bucket {}", listener.bucket)],
        may_lose: nothing(),
    };

    // The 2 KiB around the victim's bucket: the rig's lhash2 (256 buckets) is one page.
    let zeroed = (landmarks.lhash2 + listener.bucket as u64 * landmarks.lhash2_bucket) & !0x7ff;
    let in_page = |bucket: usize| {
        let at = landmarks.lhash2 + bucket as u64 * landmarks.lhash2_bucket + landmarks.lhash2_head;
        (zeroed..zeroed + 2048).contains(&at)
    };
    let zeroed_ports: Vec<u16> =
        landmarks.listeners.iter().filter(|l| in_page(l.bucket)).map(|l| l.port).collect();
    let (wild_sk, wild_port) = (listener.sk, listener.port);
    let len = std::fs::metadata(&vmcore().0).unwrap().len();
    let pid = victim.pid;
    vec![
        tasks_case("tasks-next-to-itself", link),
        tasks_case("tasks-next-to-garbage", rng.next() & 0x00ff_ffff_ffff_fff8),
        tasks_case("tasks-next-to-unmapped", landmarks.unmapped(&mut rng)),
        tasks_case("tasks-next-to-user-space", 0x7ffc_0000_0000 + (rng.next() % (1 << 30)) * 8),
        chain_case("listener-next-to-itself", node),
        chain_case("listener-next-to-garbage", landmarks.leaders[1].task + 64),
        chain_case("listener-next-to-unmapped", landmarks.unmapped(&mut rng)),
        Case {
            name: "sock-wild-sk_socket",
            damage: Damage::word(listener.sk + landmarks.sk_socket, landmarks.unmapped(&mut rng)),
            affects: LISTENERS,
            must_fail: &[],
            mention: vec![format!("{wild_sk:#x}"), "sk_socket".into()],
            may_lose: Box::new(move |_, row| port_of(row) == Some(wild_port)),
        },
        Case {
            name: "task-garbage-files",
            damage: Damage::word(victim.task + landmarks.task_files, landmarks.unmapped(&mut rng) + 3),
            affects: &["proc_fds", "ss-nlpt-all"],
            must_fail: &[],
            mention: vec![format!("PID {pid}"), "files".into()],
            may_lose: Box::new(move |query, row| match query {
                "proc_fds" => row["pid"] == pid,
                _ => row.get("Process").is_some_and(|p| p.to_string().contains(&format!("pid={pid},"))),
            }),
        },
        Case {
            name: "lhash2-zeroed-half-page",
            damage: Damage { writes: vec![(zeroed, vec![0; 2048])], cut_to: None },
            affects: LISTENERS,
            must_fail: &[],
            mention: vec!["NULL where a nulls hash always has a marker".into()],
            may_lose: Box::new(move |_, row| port_of(row).is_some_and(|p| zeroed_ports.contains(&p))),
        },
        Case {
            name: "lhash2-mask-2^31",
            damage: Damage {
                writes: vec![(landmarks.lhash2_mask, 0x7fff_ffffu32.to_le_bytes().to_vec())],
                cut_to: None,
            },
            affects: LISTENERS,
            must_fail: LISTENERS,
            mention: vec!["2147483648 buckets".into(), "implausible".into()],
            may_lose: nothing(),
        },
        Case {
            name: "file-cut-short",
            damage: Damage { writes: Vec::new(), cut_to: Some(len / 2) },
            affects: &[
                "tcp_listeners",
                "tcp_sockets",
                "ss-nlpt-all",
                "processes",
                "proc_fds",
                "threads",
                "kernel_modules",
                "net_devices",
                "mounts",
            ],
            must_fail: &[
                "tcp_listeners",
                "tcp_sockets",
                "ss-nlpt-all",
                "processes",
                "proc_fds",
                "threads",
                "kernel_modules",
                "net_devices",
                "mounts",
            ],
            mention: vec!["truncated".into()],
            may_lose: nothing(),
        },
    ]
}

/// Damage to the UDP and unix hashes of the `sockets` vmcore: a chain's last link to
/// unmapped memory (the bucket is named, every socket stays), and a socket's wild
/// `sk_socket` (that socket is named and only its row may go — and, for unix, its peer's,
/// whose `peer_inode` is read through it). `baseline_inode` is a socket's undamaged inode.
fn socket_cases(landmarks: &Landmarks, baseline_inode: &dyn Fn(u64) -> Option<u64>) -> Vec<Case> {
    let mut rng = Rng::new(SEED);
    let mut cases = Vec::new();
    for (table, hash, sockets) in [
        ("udp_sockets", "udp_table hash", &landmarks.udp),
        ("unix_sockets", "net->unx.table.buckets", &landmarks.unix),
    ] {
        let chained = *rng.pick(sockets);
        let wild = *rng.pick(sockets);
        let wild_inode = baseline_inode(wild.sk);
        let affects: &'static [&'static str] =
            if table == "udp_sockets" { &["udp_sockets"] } else { &["unix_sockets"] };
        cases.push(Case {
            name: if table == "udp_sockets" { "udp-chain-to-unmapped" } else { "unix-chain-to-unmapped" },
            damage: Damage::word(chained.sk + landmarks.sk_plain_node, landmarks.unmapped(&mut rng)),
            affects,
            must_fail: &[],
            mention: vec![hash.into(), format!("bucket {}", chained.bucket)],
            may_lose: Box::new(|_, _| false),
        });
        cases.push(Case {
            name: if table == "udp_sockets" { "udp-wild-sk_socket" } else { "unix-wild-sk_socket" },
            damage: Damage::word(wild.sk + landmarks.sk_socket, landmarks.unmapped(&mut rng)),
            affects,
            must_fail: &[],
            mention: vec![format!("{:#x}", wild.sk)],
            may_lose: Box::new(move |_, row| {
                let peer = row.get("peer_inode").and_then(Value::as_u64);
                row.get("sk_addr").and_then(Value::as_u64) == Some(wild.sk)
                    || (peer.is_some() && peer == wild_inode)
            }),
        });
    }
    cases
}

/// The local port of a socket row (`local_port`, or ss's `Local Address:Port`).
fn port_of(row: &Row) -> Option<u16> {
    if let Some(port) = row.get("local_port") {
        return port.as_u64().map(|p| p as u16);
    }
    let text = row.get("Local Address:Port")?.as_str()?;
    text.rsplit(':').next()?.parse().ok()
}

/// Runs kql on `core`, killed after [`TIMEOUT`] (a hang is a failure).
fn run_on(core: &Path, types: Types, query: &Query) -> Bounded {
    let mut args = vec!["--core", core.to_str().unwrap(), "--format", "json"];
    if let Types::Dwarf = types {
        args.extend(["--vmlinux", vmcore().1.to_str().unwrap()]);
    }
    args.extend(query.args);
    kql_within(&args, TIMEOUT)
}

fn rows(run: &Bounded) -> Vec<Row> {
    serde_json::from_slice(&run.stdout).expect("kql prints a JSON array")
}

fn key(query: &Query, row: &Row) -> Vec<Value> {
    match query.key {
        [] => vec![serde_json::to_value(row).unwrap()],
        columns => columns.iter().map(|c| row.get(*c).cloned().unwrap_or(Value::Null)).collect(),
    }
}

/// Checks one run on a damaged vmcore against the undamaged rows of the same query.
fn check(case: &Case, query: &Query, baseline: &[Row], run: &Bounded) {
    let who = format!("{} / {}", case.name, query.name);
    let stderr = &run.stderr;
    assert!(!stderr.contains("panicked"), "{who}: a panic: {stderr}");
    assert!(!stderr.contains("Execution error"), "{who}: DataFusion's words: {stderr}");
    assert!(!stderr.contains("changing while read"), "{who}: a vmcore does not change: {stderr}");
    let affected = case.affects.contains(&query.name);
    if affected && std::env::var_os("KQL_DAMAGE_SHOW").is_some() {
        eprintln!("{who}: {stderr}");
    }
    if affected {
        for mention in &case.mention {
            assert!(stderr.contains(mention.as_str()), "{who}: stderr should name {mention:?}: {stderr}");
        }
    }
    if case.must_fail.contains(&query.name) || !run.success {
        assert!(case.must_fail.contains(&query.name), "{who}: kql failed: {stderr}");
        assert!(!run.success && run.stdout.is_empty(), "{who}: a failure prints no rows");
        assert_eq!(stderr.lines().count(), 1, "{who}: one line: {stderr}");
        assert!(stderr.starts_with("kql: "), "{who}: {stderr}");
        return;
    }
    if !affected {
        assert!(stderr.is_empty(), "{who}: nothing to warn about away from the damage: {stderr}");
    }
    let got = rows(run);
    let lost: Vec<&Row> = baseline.iter().filter(|row| !got.contains(row)).collect();
    for row in &lost {
        assert!((case.may_lose)(query.name, row), "{who}: a row away from the damage is missing: {row:?}");
    }
    for row in &got {
        let known = baseline.contains(row)
            || baseline.iter().any(|b| key(query, b) == key(query, row) && (case.may_lose)(query.name, b));
        assert!(known, "{who}: a row the undamaged vmcore does not have: {row:?}");
    }
}

#[test]
fn damaged_vmcores_give_every_readable_row_and_name_what_is_missing() {
    let original = &vmcore().0;
    let landmarks = Landmarks::find(original);
    let runs: Vec<(Types, &Query)> = QUERIES
        .iter()
        .map(|query| (Types::Btf, query))
        .chain(QUERIES.iter().filter(|q| DWARF_QUERIES.contains(&q.name)).map(|query| (Types::Dwarf, query)))
        .collect();
    let baselines: Vec<Vec<Row>> = runs
        .iter()
        .map(|&(types, query)| {
            let run = run_on(original, types, query);
            assert!(run.success && run.stderr.is_empty(), "{} ({types:?}): {}", query.name, run.stderr);
            rows(&run)
        })
        .collect();
    let dir = TempDir::new();
    let cases = cases(&landmarks);
    for case in &cases {
        let copy = dir.0.join(format!("{}.vmcore", case.name));
        case.damage.apply(&landmarks, original, &copy);
        for (&(types, query), baseline) in runs.iter().zip(&baselines) {
            check(case, query, baseline, &run_on(&copy, types, query));
        }
        std::fs::remove_file(&copy).unwrap();
    }
    eprintln!("{} damaged vmcores, {} runs each: all survived", cases.len(), runs.len());
}

#[test]
fn damaged_udp_and_unix_hashes_give_every_readable_row_and_name_the_bucket() {
    let (original, _) = kql_rig::vmcores::of(Series::Bookworm61, "sockets").expect("the 6.1 sockets vmcore");
    let landmarks = Landmarks::find(&original);
    assert!(!landmarks.udp.is_empty() && !landmarks.unix.is_empty(), "the vmcore holds UDP and unix sockets");
    let baselines: Vec<Vec<Row>> = SOCKET_QUERIES
        .iter()
        .map(|query| {
            let run = run_on(&original, Types::Btf, query);
            assert!(run.success && run.stderr.is_empty(), "{}: {}", query.name, run.stderr);
            rows(&run)
        })
        .collect();
    let dir = TempDir::new();
    let inode = |sk: u64| {
        let rows = baselines.iter().flatten();
        let mut found = rows.filter(|row| row.get("sk_addr").and_then(Value::as_u64) == Some(sk));
        found.next().and_then(|row| row.get("inode").and_then(Value::as_u64))
    };
    let cases = socket_cases(&landmarks, &inode);
    for case in &cases {
        let copy = dir.0.join(format!("{}.vmcore", case.name));
        case.damage.apply(&landmarks, &original, &copy);
        for (query, baseline) in SOCKET_QUERIES.iter().zip(&baselines) {
            check(case, query, baseline, &run_on(&copy, Types::Btf, query));
        }
        std::fs::remove_file(&copy).unwrap();
    }
    eprintln!("{} damaged socket hashes, {} runs each: all survived", cases.len(), SOCKET_QUERIES.len());
}
