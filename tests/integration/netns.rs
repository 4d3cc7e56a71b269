//! A listener in a second network namespace: shown by `ss-nlpt-all` with its namespace,
//! hidden from `ss-nlpt` (which, like `ss`, shows kql's own namespace only).

use crate::support::*;

#[test]
fn second_namespace_listener_is_in_ss_nlpt_all_only() {
    let ns = NetNs::add("ns");
    let listener = listen_in(&ns.path(), "0.0.0.0", ListenOptions { backlog: 21, ..Default::default() });
    let endpoints = [endpoint("0.0.0.0", &listener)];
    let holder = Holder::start("kqlt-netns", &[&listener], false, Some(&ns.path()));
    drop(listener);
    let ns_inode = inode_of(&ns.path());
    assert_eq!(inode_of(&format!("/proc/{}/ns/net", holder.pid())), ns_inode);

    let all = rows_at(kql_rows(&["-q", "ss-nlpt-all"]), &endpoints);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["Netns"], ns_inode);
    assert_eq!(
        vec![ss_columns(&all[0])],
        ss_rows(&endpoints, Some(&ns.0)),
        "as ss shows it inside the namespace"
    );

    let own = rows_at(kql_rows(&["-q", "ss-nlpt"]), &endpoints);
    assert!(own.is_empty(), "ss-nlpt shows only kql's namespace: {own:?}");
    assert!(ss_rows(&endpoints, None).is_empty(), "and so does ss");

    let sql = format!("select pid, netns from processes where pid = {}", holder.pid());
    let processes = kql_rows(&[&sql]);
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0]["netns"], ns_inode);
}
