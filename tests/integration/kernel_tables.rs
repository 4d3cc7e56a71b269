//! The declared kernel tables (`tables/*.sql`) checked against what a guest says about
//! itself: /proc/modules, its mountinfo, /proc/slabinfo, each namespace's sysfs net devices
//! (and what the kernel implies of their state) and IPv6 addresses (/proc/net/if_inet6), its
//! cgroup2 tree, the fdinfo of the BPF program and map its workload loaded, the
//! workqueues sysfs lists. The guest has no truth for `timers` (/proc/timer_list lists
//! hrtimers, not the timer wheel): its rows are checked for being plausible only, and where
//! the kernel's BTF does not type the per-cpu `timer_bases` (5.10's) for failing in one line.

use std::collections::{BTreeMap, BTreeSet};

use kql_rig::truth::Truth;
use serde_json::Value;

type Row = BTreeMap<String, Value>;

const MODULES: &str = "select name, state, size, refcount, base from kernel_modules";
const MOUNTS: &str =
    "select mount_id, parent_id, major, minor, root, mount_point, fstype, source from mounts";
const NAMESPACES: &str = "select netns from net_namespaces";
const DEVICES: &str =
    "select netns, ifindex, name, kind, mac, mtu, flags, operstate, master, qdisc, type from net_devices";
const ADDRESSES: &str =
    "select netns, ifindex, family, addr, prefix_len, scope, flags, label from net_addresses";
const SUPER_BLOCKS: &str = "select major, minor, fstype from super_blocks";
const SLABS: &str = "select name, size, objects_per_slab, \"order\" from slab_caches";
const CGROUPS: &str = "select id, path, level from cgroups";
const WORKQUEUES: &str = "select name from workqueues";
const BPF_PROGRAMS: &str = "select id, type, name, tag from bpf_programs";
const BPF_MAPS: &str = "select id, type, name, key_size, value_size, max_entries from bpf_maps";
const TIMERS: &str = "select cpu, expires, function from timers";
/// Key pushdown: a direct IDR lookup and a parent-narrowed child walk.
const BY_KEY: &str =
    "select p.id, m.id as map from bpf_programs p, bpf_maps m where p.id = 1 and m.id in (1, 99)";

/// What runs statements in one kql process: each one's rows, or kql's stderr.
pub type Run<'a> = &'a dyn Fn(&[&str]) -> Result<Vec<Vec<Row>>, String>;

/// Every declared table read by `run` equals the truth, of which a guest skips no part.
pub fn assert_kernel_tables(run: Run, truth: &Truth, who: &str) {
    let skipped = truth.skipped_parts().expect("the guest's skipped.tsv");
    assert!(skipped.is_empty(), "{who}: the guest skipped parts of its truth: {skipped:?}");
    let statements = [
        MODULES,
        MOUNTS,
        NAMESPACES,
        DEVICES,
        ADDRESSES,
        SUPER_BLOCKS,
        SLABS,
        CGROUPS,
        WORKQUEUES,
        BPF_PROGRAMS,
        BPF_MAPS,
        BY_KEY,
    ];
    let results = run(&statements).unwrap_or_else(|stderr| panic!("{who}: {stderr}"));
    let [
        modules,
        mounts,
        namespaces,
        devices,
        addresses,
        super_blocks,
        slabs,
        cgroups,
        workqueues,
        programs,
        maps,
        by_key,
    ] = &results[..]
    else {
        panic!("{who}: one result per statement")
    };
    assert_modules(modules, truth, who);
    assert_mounts(mounts, truth, who);
    assert_net(namespaces, devices, truth, who);
    assert_device_states(devices, truth, who);
    assert_addresses(addresses, devices, truth, who);
    assert_super_blocks(super_blocks, truth, who);
    assert_slabs(slabs, truth, who);
    assert_cgroups(cgroups, truth, who);
    let expected: BTreeSet<String> = truth.workqueues().expect("workqueue truth").into_iter().collect();
    let listed: BTreeSet<String> = workqueues.iter().map(|r| text(r, "name")).collect();
    assert!(expected.is_subset(&listed), "{who}: sysfs workqueues {expected:?} missing from {listed:?}");
    assert_bpf(programs, maps, by_key, truth, who);
    match run(&[TIMERS]) {
        Ok(timers) => assert_timers(&timers[0], who),
        Err(stderr) => assert!(
            stderr.contains("PERCPU timer_bases: its type is unknown here") && stderr.lines().count() == 1,
            "{who}: timers: {stderr}"
        ),
    }
}

pub fn text(row: &Row, key: &str) -> String {
    match &row[key] {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

pub fn number(row: &Row, key: &str) -> u64 {
    row[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number in {row:?}"))
}

fn assert_modules(rows: &[Row], truth: &Truth, who: &str) {
    let state = |s: &str| match s {
        "Live" => "LIVE",
        "Loading" => "COMING",
        _ => "GOING",
    };
    let expected: BTreeSet<String> = truth
        .modules()
        .expect("module truth")
        .iter()
        .map(|m| {
            let refcount = m.refcount.map_or("NULL".into(), |r| r.to_string());
            format!("{} {} {} {} {}", m.name, state(&m.state), m.size, refcount, m.address)
        })
        .collect();
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let row = ["name", "state", "size", "refcount", "base"].map(|k| text(r, k));
            row.join(" ")
        })
        .collect();
    assert_eq!(listed, expected, "{who}: kernel_modules vs /proc/modules");
}

fn assert_mounts(rows: &[Row], truth: &Truth, who: &str) {
    let expected: BTreeSet<String> = truth
        .mounts()
        .expect("mount truth")
        .iter()
        .map(|m| {
            format!(
                "{} {} {}:{} {} {} {} {}",
                m.mount_id, m.parent_id, m.major, m.minor, m.root, m.mount_point, m.fstype, m.source
            )
        })
        .collect();
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {}:{} {} {} {} {}",
                text(r, "mount_id"),
                text(r, "parent_id"),
                text(r, "major"),
                text(r, "minor"),
                text(r, "root"),
                text(r, "mount_point"),
                text(r, "fstype"),
                text(r, "source")
            )
        })
        .collect();
    assert_eq!(listed, expected, "{who}: mounts vs mountinfo");
}

fn assert_net(namespaces: &[Row], devices: &[Row], truth: &Truth, who: &str) {
    let listed: BTreeSet<u64> = namespaces.iter().map(|r| number(r, "netns")).collect();
    let expected: BTreeSet<u64> = truth.net_namespaces().expect("netns truth").into_iter().collect();
    assert!(expected.is_subset(&listed), "{who}: namespaces {expected:?} missing from {listed:?}");
    let device_truth = truth.net_devices().expect("device truth");
    let seen: BTreeSet<u64> = device_truth.iter().map(|d| d.netns).collect();
    let flag = |flags: u32, bit: u32, name: &'static str| if flags & (1 << bit) != 0 { name } else { "" };
    let expected: BTreeSet<String> = device_truth
        .iter()
        .map(|d| {
            let names = [flag(d.flags, 0, "UP"), flag(d.flags, 3, "LOOPBACK")].concat();
            format!("{} {} {} {} {} {names}", d.netns, d.ifindex, d.name, d.mtu, d.mac)
        })
        .collect();
    let listed: BTreeSet<String> = devices
        .iter()
        .filter(|r| seen.contains(&number(r, "netns")))
        .map(|r| {
            let flags = text(r, "flags");
            let has = |name: &'static str| if flags.split('|').any(|f| f == name) { name } else { "" };
            let names = [has("UP"), has("LOOPBACK")].concat();
            let row = ["netns", "ifindex", "name", "mtu", "mac"].map(|k| text(r, k)).join(" ");
            format!("{row} {names}")
        })
        .collect();
    assert_eq!(listed, expected, "{who}: net_devices vs each namespace's sysfs");
    assert!(devices.iter().any(|r| text(r, "name") == "kqlw-dummy"), "{who}: the workload's dummy device");
}

/// net_devices' columns sysfs's truth has no file for, checked against what the kernel implies
/// of the guest's devices (lo, the `dummy` module's, the workload's `kqlw-dummy`): a device
/// that is not up is DOWN with the noop qdisc; lo and dummies are UNKNOWN with noqueue when
/// up (they never report an operational state), have no master, and only lo has no kind.
fn assert_device_states(devices: &[Row], truth: &Truth, who: &str) {
    let device_truth = truth.net_devices().expect("device truth");
    for device in &device_truth {
        let row = devices
            .iter()
            .find(|r| number(r, "netns") == device.netns && text(r, "ifindex") == device.ifindex.to_string())
            .unwrap_or_else(|| panic!("{who}: {device:?} missing from net_devices"));
        let up = device.flags & 1 != 0;
        let state = ["kind", "operstate", "master", "qdisc", "type"].map(|k| text(row, k)).join(" ");
        let expected = match (device.name.as_str(), up) {
            ("lo", true) => "NULL UNKNOWN NULL noqueue 772",
            ("lo", false) => "NULL DOWN NULL noop 772",
            (_, true) => "dummy UNKNOWN NULL noqueue 1",
            (_, false) => "dummy DOWN NULL noop 1",
        };
        assert_eq!(state, expected, "{who}: net_devices of {device:?}");
    }
}

/// net_addresses' IPv6 rows equal each namespace's /proc/net/if_inet6 (whose flags are only
/// the low eight bits); its IPv4 rows are those of lo, 127.0.0.1/8, where lo is up (the
/// guests configure no other IPv4 address).
fn assert_addresses(addresses: &[Row], devices: &[Row], truth: &Truth, who: &str) {
    const LOW_FLAGS: [&str; 8] =
        ["temporary", "nodad", "optimistic", "dadfailed", "home", "deprecated", "tentative", "permanent"];
    let scope = |bits: u32| match bits & 0x70 {
        0x10 => "host",
        0x20 => "link",
        0x40 => "site",
        _ => "global",
    };
    let v6 = truth.inet6_addresses().expect("if_inet6 truth");
    let namespaces: BTreeSet<u64> =
        truth.net_devices().expect("device truth").iter().map(|d| d.netns).collect();
    let expected: BTreeSet<String> = v6
        .iter()
        .filter(|a| namespaces.contains(&a.netns))
        .map(|a| {
            let flags: Vec<&str> = LOW_FLAGS
                .iter()
                .enumerate()
                .filter(|(bit, _)| a.flags & (1 << bit) != 0)
                .map(|(_, f)| *f)
                .collect();
            let flags = flags.join("|");
            format!("{} {} {}/{} {} {flags}", a.netns, a.ifindex, a.address, a.prefix_len, scope(a.scope))
        })
        .collect();
    let listed: BTreeSet<String> = addresses
        .iter()
        .filter(|r| text(r, "family") == "inet6" && namespaces.contains(&number(r, "netns")))
        .map(|r| {
            let flags: Vec<String> =
                text(r, "flags").split('|').filter(|f| LOW_FLAGS.contains(f)).map(String::from).collect();
            let place = ["netns", "ifindex", "addr"].map(|k| text(r, k)).join(" ");
            format!("{place}/{} {} {}", text(r, "prefix_len"), text(r, "scope"), flags.join("|"))
        })
        .collect();
    assert!(!expected.is_empty(), "{who}: the guest has IPv6 addresses (::1 at least)");
    assert_eq!(listed, expected, "{who}: net_addresses (IPv6) vs /proc/net/if_inet6");

    let lo_up: BTreeSet<u64> = devices
        .iter()
        .filter(|r| text(r, "name") == "lo" && text(r, "operstate") != "DOWN")
        .map(|r| number(r, "netns"))
        .filter(|netns| namespaces.contains(netns))
        .collect();
    let expected: BTreeSet<String> =
        lo_up.iter().map(|netns| format!("{netns} 1 127.0.0.1/8 host permanent lo")).collect();
    let listed: BTreeSet<String> = addresses
        .iter()
        .filter(|r| text(r, "family") == "inet" && namespaces.contains(&number(r, "netns")))
        .map(|r| {
            let place = ["netns", "ifindex", "addr"].map(|k| text(r, k)).join(" ");
            let rest = ["scope", "flags", "label"].map(|k| text(r, k)).join(" ");
            format!("{place}/{} {rest}", text(r, "prefix_len"))
        })
        .collect();
    assert!(!expected.is_empty(), "{who}: lo is up somewhere");
    assert_eq!(listed, expected, "{who}: net_addresses (IPv4): lo's 127.0.0.1/8 where lo is up");
}

fn assert_super_blocks(rows: &[Row], truth: &Truth, who: &str) {
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{}:{} {}", text(r, "major"), text(r, "minor"), text(r, "fstype")))
        .collect();
    for sb in truth.mounted_super_blocks().expect("super block truth") {
        let key = format!("{}:{} {}", sb.major, sb.minor, sb.fstype);
        assert!(listed.contains(&key), "{who}: mounted {key} missing from super_blocks");
    }
}

fn assert_slabs(rows: &[Row], truth: &Truth, who: &str) {
    let expected: BTreeSet<String> = truth
        .slab_caches()
        .expect("slabinfo truth")
        .iter()
        .map(|s| format!("{} {} {} {}", s.name, s.size, s.objects_per_slab, s.pages_per_slab))
        .collect();
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let pages = 1u64 << number(r, "order");
            format!("{} {} {} {pages}", text(r, "name"), text(r, "size"), text(r, "objects_per_slab"))
        })
        .collect();
    assert_eq!(listed, expected, "{who}: slab_caches vs /proc/slabinfo");
}

fn assert_cgroups(rows: &[Row], truth: &Truth, who: &str) {
    let expected: BTreeSet<String> =
        truth.cgroups().expect("cgroup truth").iter().map(|c| format!("{} {}", c.id, c.path)).collect();
    let listed: BTreeSet<String> =
        rows.iter().map(|r| format!("{} {}", text(r, "id"), text(r, "path"))).collect();
    assert_eq!(listed, expected, "{who}: cgroups vs /sys/fs/cgroup");
    for row in rows {
        let depth = text(row, "path").matches('/').count() as u64 - u64::from(text(row, "path") == "/");
        assert_eq!(number(row, "level"), depth, "{who}: level of {row:?}");
    }
}

fn assert_bpf(programs: &[Row], maps: &[Row], by_key: &[Row], truth: &Truth, who: &str) {
    let bpf = truth.bpf().expect("BPF truth");
    let program = programs.iter().find(|r| number(r, "id") == u64::from(bpf.prog_id));
    let program =
        program.unwrap_or_else(|| panic!("{who}: program {} missing from {programs:?}", bpf.prog_id));
    assert_eq!(
        (text(program, "type"), text(program, "name"), text(program, "tag")),
        ("SOCKET_FILTER".to_string(), bpf.prog_name.clone(), bpf.prog_tag.clone()),
        "{who}: bpf_programs vs fdinfo"
    );
    let map = maps.iter().find(|r| number(r, "id") == u64::from(bpf.map_id));
    let map = map.unwrap_or_else(|| panic!("{who}: map {} missing from {maps:?}", bpf.map_id));
    let sizes = ["key_size", "value_size", "max_entries"].map(|k| number(map, k));
    assert_eq!(
        (text(map, "type"), text(map, "name"), sizes),
        (
            "ARRAY".to_string(),
            bpf.map_name.clone(),
            [bpf.key_size, bpf.value_size, bpf.max_entries].map(u64::from)
        ),
        "{who}: bpf_maps vs fdinfo"
    );
    if bpf.prog_id == 1 && bpf.map_id == 1 {
        assert_eq!(by_key.len(), 1, "{who}: direct IDR lookups of ids 1 and 99: {by_key:?}");
    }
}

fn assert_timers(rows: &[Row], who: &str) {
    assert!(!rows.is_empty(), "{who}: a running kernel has pending timers");
    for row in rows {
        let function = text(row, "function");
        assert!(!function.is_empty() && !function.starts_with("0x"), "{who}: timer function {function}");
        assert_eq!(number(row, "cpu"), 0, "{who}: the guests have one cpu");
    }
}
