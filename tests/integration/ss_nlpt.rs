//! `kql -q ss-nlpt` against real `ss -nlpt`, row for row, on listeners the test creates.

use crate::support::*;

#[test]
fn ss_nlpt_matches_ss_for_every_kind_of_listener() {
    let v4_loopback = listen("127.0.0.1", ListenOptions { backlog: 17, ..Default::default() }).unwrap();
    let v4_any = listen("0.0.0.0", ListenOptions::default()).unwrap();
    let v6_loopback = listen("::1", ListenOptions { backlog: 33, ..Default::default() }).unwrap();
    let dual_stack = listen("::", ListenOptions::default()).unwrap();
    let v6_only = listen("::", ListenOptions { v6only: true, ..Default::default() }).unwrap();
    let shared = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let reuse_a = listen("127.0.0.1", ListenOptions { reuseport: true, ..Default::default() }).unwrap();
    let reuse_port = local_port(&reuse_a);
    let reuse_b =
        listen("127.0.0.1", ListenOptions { reuseport: true, port: reuse_port, ..Default::default() })
            .unwrap();
    let queued = listen("127.0.0.1", ListenOptions { backlog: 9, ..Default::default() }).unwrap();

    let _alpha = Holder::start("kqlt-alpha", &[&v4_loopback, &v4_any], false, None);
    let _spaced = Holder::start("kqlt web srv", &[&v6_loopback, &dual_stack, &v6_only], false, None);
    let forker = Holder::start("kqlt-forker", &[&shared], true, None);
    let _reuse_1 = Holder::start("kqlt-reuse1", &[&reuse_a], false, None);
    let _reuse_2 = Holder::start("kqlt-reuse2", &[&reuse_b], false, None);
    let _queue = Holder::start("kqlt-queue", &[&queued], false, None);
    let endpoints: Vec<String> = [
        ("127.0.0.1", &v4_loopback),
        ("0.0.0.0", &v4_any),
        ("::1", &v6_loopback),
        ("::", &dual_stack),
        ("::", &v6_only),
        ("127.0.0.1", &shared),
        ("127.0.0.1", &reuse_a),
        ("127.0.0.1", &queued),
    ]
    .iter()
    .map(|(ip, socket)| endpoint(ip, socket))
    .collect();
    let queued_port = local_port(&queued);
    drop((v4_loopback, v4_any, v6_loopback, dual_stack, v6_only, shared, reuse_a, reuse_b, queued));
    let _waiting = queue_connections("127.0.0.1", queued_port, 3);
    assert_eq!(forker.children().len(), 1, "the forker has its child");

    let expected = ss_rows(&endpoints, None);
    let mut actual: Vec<Vec<String>> =
        rows_at(kql_rows(&["-q", "ss-nlpt"]), &endpoints).iter().map(ss_columns).collect();
    actual.sort();
    assert_eq!(expected.len(), 9, "ss sees every test listener: {expected:#?}");
    assert_eq!(actual, expected);

    let row_of = |endpoint: &String| actual.iter().find(|row| &row[3] == endpoint).unwrap();
    let queued_row = row_of(&endpoints[7]);
    assert_eq!((queued_row[1].as_str(), queued_row[2].as_str()), ("3", "9"), "accept queue and backlog");
    let shared_row = row_of(&endpoints[5]);
    assert!(shared_row[5].contains("\"sleep\"") && shared_row[5].contains("\"kqlt-forker\""));
}

#[test]
fn tcp_listeners_agree_with_proc_net_tcp() {
    let listener = listen("127.0.0.1", ListenOptions { backlog: 5, ..Default::default() }).unwrap();
    let port = local_port(&listener);
    let _waiting = queue_connections("127.0.0.1", port, 2);
    let proc_row = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields[1] == format!("0100007F:{port:04X}") && fields[3] == "0A")
        .expect("/proc/net/tcp lists the listener");
    let accept_queue = u32::from_str_radix(proc_row[4].split(':').nth(1).unwrap(), 16).unwrap();
    let sql = format!(
        "select recv_q, send_q, inode, uid, family, local_addr from tcp_listeners where local_port = {port}"
    );
    let rows = kql_rows(&[&sql]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["recv_q"], accept_queue);
    assert_eq!(row["recv_q"], 2);
    assert_eq!(row["send_q"], 5);
    assert_eq!(row["inode"].to_string(), proc_row[9]);
    assert_eq!(row["uid"].to_string(), proc_row[7]);
    assert_eq!(row["family"], "inet");
    assert_eq!(row["local_addr"], "127.0.0.1");
}
