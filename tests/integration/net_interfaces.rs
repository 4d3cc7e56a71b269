//! `net_devices`, `net_addresses` and the `ip-addr` saved query from this host's rtnetlink
//! (`--source netlink`), compared with what `ip -j -d link`, `ip -j addr` and `ip -br addr`
//! print: in a network namespace the test creates (a bridge with a veth port, an ifb with
//! IPv4 and IPv6 addresses, a veth pair with one end down) and in kql's own namespace (an
//! ifb the test creates, and `lo`; the machine's other devices are not compared). ifb and
//! veth, not dummy: this machine's kernel has no dummy driver.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

type Row = BTreeMap<String, Value>;

/// `ip` names of the flags `dev_get_flags()` derives from the operational state (plus its
/// own NO-CARRIER), which net_devices' flags — the device's own — leave out.
const DERIVED_FLAGS: &[&str] = &["LOWER_UP", "DORMANT", "RUNNING", "NO-CARRIER", "M-DOWN"];

/// A device the test adds to kql's own namespace, deleted on drop.
struct HostDevice(String);

impl HostDevice {
    fn ifb(name: &str) -> HostDevice {
        ip(None, &["link", "add", name, "type", "ifb"]);
        HostDevice(name.to_string())
    }
}

impl Drop for HostDevice {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// `ip [-n NS] ARGS`; panics if it fails.
fn ip(netns: Option<&str>, args: &[&str]) -> String {
    let mut all: Vec<&str> = netns.map_or_else(Vec::new, |ns| vec!["-n", ns]);
    all.extend(args);
    command_stdout("ip", &all)
}

/// `ip [-n NS] -j ARGS` as JSON objects.
fn ip_json(netns: Option<&str>, args: &[&str]) -> Vec<Row> {
    let mut all = vec!["-j"];
    all.extend(args);
    serde_json::from_str(&ip(netns, &all)).expect("ip prints a JSON array")
}

/// IPv4 and IPv6 addresses on `dev`, without DAD (so no flag changes while the test reads).
fn add_addresses(netns: Option<&str>, dev: &str, v4: &[&str], v6: &[&str]) {
    for address in v4 {
        ip(netns, &["addr", "add", address, "dev", dev]);
    }
    for address in v6 {
        ip(netns, &["addr", "add", address, "dev", dev, "nodad"]);
    }
}

/// The test devices of [`populated_namespace`].
const NAMESPACE_DEVICES: &[&str] =
    &["lo", "kqlt-br", "kqlt-port", "kqlt-peer", "kqlt-ifb", "kqlt-veth0", "kqlt-veth1"];

/// A namespace of the test (`tag` names it): a bridge with a veth port (its peer up too),
/// an ifb with addresses (a secondary, a label, a link-local), and a veth pair with
/// addresses and its second end down.
fn populated_namespace(tag: &str) -> NetNs {
    let ns = NetNs::add(tag);
    let n = Some(ns.0.as_str());
    ip(n, &["link", "add", "kqlt-br", "type", "bridge"]);
    ip(n, &["link", "add", "kqlt-port", "type", "veth", "peer", "name", "kqlt-peer"]);
    ip(n, &["link", "add", "kqlt-ifb", "mtu", "1400", "type", "ifb"]);
    ip(n, &["link", "add", "kqlt-veth0", "type", "veth", "peer", "name", "kqlt-veth1"]);
    for dev in &NAMESPACE_DEVICES[1..] {
        ip(n, &["link", "set", dev, "addrgenmode", "none"]);
    }
    ip(n, &["link", "set", "kqlt-port", "master", "kqlt-br"]);
    for dev in ["kqlt-br", "kqlt-port", "kqlt-peer", "kqlt-ifb", "kqlt-veth0"] {
        ip(n, &["link", "set", dev, "up"]);
    }
    add_addresses(
        n,
        "kqlt-ifb",
        &["10.77.0.1/24", "10.77.0.2/24", "10.78.0.1/16"],
        &["fd77::1/64", "fd77::2/64", "fe80::77/64"],
    );
    ip(n, &["addr", "add", "10.79.0.1/8", "dev", "kqlt-ifb", "label", "kqlt-ifb:1"]);
    add_addresses(n, "kqlt-veth0", &["192.0.2.77/32"], &["2001:db8::77/128"]);
    settle(&ns, &[("kqlt-br", "UP"), ("kqlt-port", "UP"), ("kqlt-veth0", "LOWERLAYERDOWN")]);
    ns
}

/// Waits (5 s at most) until the devices of `ns` are in the operational states `wanted`:
/// the kernel's link watch sets them shortly after a device goes up.
fn settle(ns: &NetNs, wanted: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let links = ip_json(Some(&ns.0), &["link"]);
        let state = |name: &str| links.iter().find(|l| l["ifname"] == name).map(|l| text(&l["operstate"]));
        if wanted.iter().all(|(name, want)| state(name).as_deref() == Some(*want)) {
            return;
        }
        assert!(Instant::now() < deadline, "devices did not settle in {wanted:?}: {links:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kql's rows of `sql` (`{netns}` replaced by `netns`) from rtnetlink.
fn kql_netlink(sql: &str, netns: u64) -> Vec<Row> {
    kql_rows(&["--source", "netlink", &sql.replace("{netns}", &netns.to_string())])
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// Names in `value`, a JSON array of strings.
fn names(value: &Value) -> BTreeSet<String> {
    value.as_array().expect("an array").iter().map(text).collect()
}

/// A `net_devices` row as `ip -j -d link` describes the device, in the columns compared.
fn device_from_ip(link: &Row, index_of: &BTreeMap<String, i64>) -> String {
    let mut flags = names(&link["flags"]);
    flags.retain(|f| !DERIVED_FLAGS.contains(&f.as_str()));
    for (flag, counter) in [("PROMISC", "promiscuity"), ("ALLMULTI", "allmulti")] {
        if let Some(count) = link.get(counter).and_then(Value::as_u64) {
            match count > 0 {
                true => flags.insert(flag.to_string()),
                false => flags.remove(flag),
            };
        }
    }
    let kind = link.get("linkinfo").and_then(|info| info.get("info_kind")).map_or("NULL".into(), text);
    let master = link.get("master").map_or("NULL".into(), |m| index_of[&text(m)].to_string());
    let link_type = match text(&link["link_type"]).as_str() {
        "ether" => "1",
        "loopback" => "772",
        other => panic!("a test device of link type {other}"),
    };
    format!(
        "{} {} kind={kind} mac={} mtu={} flags={flags:?} {} master={master} qdisc={} type={link_type}",
        link["ifindex"],
        text(&link["ifname"]),
        link.get("address").map_or("NULL".into(), text),
        link["mtu"],
        text(&link["operstate"]),
        text(&link["qdisc"]),
    )
}

/// A `net_devices` row of kql, in the columns compared.
fn device_from_kql(row: &Row) -> String {
    let flags: BTreeSet<String> =
        text(&row["flags"]).split('|').filter(|f| !f.is_empty()).map(String::from).collect();
    format!(
        "{} {} kind={} mac={} mtu={} flags={flags:?} {} master={} qdisc={} type={}",
        row["ifindex"],
        text(&row["name"]),
        text(&row["kind"]),
        text(&row["mac"]),
        row["mtu"],
        text(&row["operstate"]),
        text(&row["master"]),
        text(&row["qdisc"]),
        row["type"],
    )
}

/// The `net_addresses` rows `ip -j addr` describes for `link`, in the columns compared.
fn addresses_from_ip(link: &Row) -> Vec<String> {
    const FLAGS: &[&str] = &[
        "secondary",
        "temporary",
        "tentative",
        "deprecated",
        "home",
        "nodad",
        "mngtmpaddr",
        "noprefixroute",
        "dadfailed",
        "optimistic",
        "autojoin",
        "stable-privacy",
    ];
    let infos = link["addr_info"].as_array().expect("addr_info");
    infos
        .iter()
        .map(|info| {
            let mut flags: BTreeSet<String> = FLAGS
                .iter()
                .filter(|f| info.get(**f) == Some(&Value::Bool(true)))
                .map(|f| f.to_string())
                .collect();
            if info.get("dynamic") != Some(&Value::Bool(true)) {
                flags.insert("permanent".into());
            }
            format!(
                "{} {} {}/{} {} flags={flags:?} label={}",
                link["ifindex"],
                text(&info["family"]),
                text(&info["local"]),
                info["prefixlen"],
                text(&info["scope"]),
                info.get("label").map_or("NULL".into(), text),
            )
        })
        .collect()
}

/// A `net_addresses` row of kql, in the columns compared.
fn address_from_kql(row: &Row) -> String {
    let flags: BTreeSet<String> =
        text(&row["flags"]).split('|').filter(|f| !f.is_empty()).map(String::from).collect();
    format!(
        "{} {} {}/{} {} flags={flags:?} label={}",
        row["ifindex"],
        text(&row["family"]),
        text(&row["addr"]),
        row["prefix_len"],
        text(&row["scope"]),
        text(&row["label"]),
    )
}

/// kql's devices and addresses of namespace `netns` (opened by `ip` as `ip_netns`) equal
/// `ip`'s, for the devices named in `devices`.
fn assert_like_ip(ip_netns: Option<&str>, netns: u64, devices: &[&str]) {
    let links: Vec<Row> = ip_json(ip_netns, &["-d", "link"])
        .into_iter()
        .filter(|l| devices.contains(&text(&l["ifname"]).as_str()))
        .collect();
    assert_eq!(links.len(), devices.len(), "ip lists every test device: {links:?}");
    let index_of: BTreeMap<String, i64> = ip_json(ip_netns, &["link"])
        .iter()
        .map(|l| (text(&l["ifname"]), l["ifindex"].as_i64().unwrap()))
        .collect();
    let indexes: BTreeSet<String> = links.iter().map(|l| l["ifindex"].to_string()).collect();

    let expected: BTreeSet<String> = links.iter().map(|l| device_from_ip(l, &index_of)).collect();
    let rows = kql_netlink("select * from net_devices where netns = {netns}", netns);
    assert!(rows.iter().all(|r| r["netns"] == netns), "only the namespace asked for: {rows:?}");
    let listed: BTreeSet<String> =
        rows.iter().filter(|r| indexes.contains(&r["ifindex"].to_string())).map(device_from_kql).collect();
    assert_eq!(listed, expected, "net_devices vs ip -d link in netns {netns}");

    let expected: BTreeSet<String> = ip_json(ip_netns, &["addr"])
        .iter()
        .filter(|l| indexes.contains(&l["ifindex"].to_string()))
        .flat_map(addresses_from_ip)
        .collect();
    assert!(expected.len() > devices.len(), "the test devices have addresses: {expected:?}");
    let rows = kql_netlink("select * from net_addresses where netns = {netns}", netns);
    let listed: BTreeSet<String> =
        rows.iter().filter(|r| indexes.contains(&r["ifindex"].to_string())).map(address_from_kql).collect();
    assert_eq!(listed, expected, "net_addresses vs ip addr in netns {netns}");
}

#[test]
fn devices_and_addresses_of_a_new_namespace_are_those_ip_shows() {
    let ns = populated_namespace("ifaces");
    let netns = inode_of(&ns.path());
    assert_like_ip(Some(&ns.0), netns, NAMESPACE_DEVICES);

    // The columns that make a difference here, spelled out.
    let sql =
        "select name, ifindex, kind, operstate, master from net_devices where netns = {netns} order by name";
    let rows = kql_netlink(sql, netns);
    let seen: Vec<String> =
        rows.iter().map(|r| ["name", "kind", "operstate"].map(|k| text(&r[k])).join(" ")).collect();
    assert_eq!(
        seen,
        [
            "kqlt-br bridge UP",
            "kqlt-ifb ifb UNKNOWN",
            "kqlt-peer veth UP",
            "kqlt-port veth UP",
            "kqlt-veth0 veth LOWERLAYERDOWN",
            "kqlt-veth1 veth DOWN",
            "lo NULL UNKNOWN"
        ]
    );
    let column =
        |name: &str, column: &str| rows.iter().find(|r| r["name"] == name).map(|r| r[column].clone());
    assert_eq!(
        column("kqlt-port", "master"),
        column("kqlt-br", "ifindex"),
        "the port's master is the bridge"
    );
    assert_eq!(column("kqlt-br", "master"), Some(Value::Null));
    let labels = kql_netlink(
        "select addr, label, flags from net_addresses where netns = {netns} and family = 'inet' order by addr",
        netns,
    );
    let labels: Vec<String> =
        labels.iter().map(|r| ["addr", "label", "flags"].map(|k| text(&r[k])).join(" ")).collect();
    assert_eq!(
        labels,
        [
            "10.77.0.1 kqlt-ifb permanent",
            "10.77.0.2 kqlt-ifb secondary|permanent",
            "10.78.0.1 kqlt-ifb permanent",
            "10.79.0.1 kqlt-ifb:1 permanent",
            "127.0.0.1 lo permanent",
            "192.0.2.77 kqlt-veth0 permanent"
        ]
    );
}

#[test]
fn devices_and_addresses_of_kqls_own_namespace_are_those_ip_shows() {
    let name = format!("kqlt-d{}", std::process::id());
    let device = HostDevice::ifb(&name);
    ip(None, &["link", "set", &device.0, "addrgenmode", "none"]);
    ip(None, &["link", "set", &device.0, "up"]);
    add_addresses(None, &device.0, &["10.76.0.1/24"], &["fd76::1/64", "fe80::76/64"]);
    let netns = inode_of("/proc/self/ns/net");
    assert_like_ip(None, netns, &["lo", &device.0]);
}

/// `ip -br addr` of namespace `ns`: interface (without its `@peer`), state, addresses.
fn ip_brief(ns: &NetNs) -> Vec<String> {
    ip(Some(&ns.0), &["-br", "addr"])
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default();
            let name = name.split('@').next().unwrap_or_default();
            let state = fields.next().unwrap_or_default();
            let addresses: Vec<&str> = fields.collect();
            format!("{name} {state} [{}]", addresses.join(" "))
        })
        .collect()
}

#[test]
fn the_ip_addr_query_prints_what_ip_br_addr_prints() {
    let ns = populated_namespace("ipbr");
    let netns = inode_of(&ns.path());
    let rows = kql_rows(&["--source", "netlink", "-q", "ip-addr"]);
    let listed: Vec<String> = rows
        .iter()
        .filter(|r| r["Netns"] == netns)
        .map(|r| format!("{} {} [{}]", text(&r["Interface"]), text(&r["State"]), text(&r["Addresses"])))
        .collect();
    assert_eq!(listed, ip_brief(&ns), "ip-addr vs ip -br addr in netns {netns}");
    let view = kql_rows(&[
        "--source",
        "netlink",
        &format!("select \"Interface\" from ip_addr where \"Netns\" = {netns} and \"Addresses\" = ''"),
    ]);
    let empty: BTreeSet<String> = view.iter().map(|r| text(&r["Interface"])).collect();
    let expected = ["kqlt-br", "kqlt-peer", "kqlt-port", "kqlt-veth1"].map(String::from);
    assert_eq!(empty, BTreeSet::from(expected), "the view: devices without addresses");
}
