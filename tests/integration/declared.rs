//! Declared kernel tables from the command line: `CREATE` and `DROP KERNEL TABLE` in one
//! session, `--tables DIR`, `kql tables` and `\d+`; every bad declaration one clear line
//! (syntax, unknown symbol, type or member, a path through a non-pointer, a parent cycle);
//! and on this host, where no kernel walk is possible, the host sources paired with
//! `kernel_modules` and `mounts` checked against /proc, the others failing in one line.
//! Kernel walks read the 6.1 guest's vmcore with its BTF.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use kql_rig::kernels::Series;

use crate::support::{TempDir, kql, kql_failure, kql_rows};

fn vmcore() -> &'static str {
    static VMCORE: OnceLock<PathBuf> = OnceLock::new();
    let path =
        VMCORE.get_or_init(|| kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the 6.1 vmcore").0);
    path.to_str().unwrap()
}

const MODULE_NAMES: &str = "CREATE KERNEL TABLE module_names 'Module names' \
    FROM LIST modules OF struct module VIA list COLUMNS (name TEXT KEY = name 'its name')";

#[test]
fn a_session_declares_queries_and_drops_a_table() {
    let sql = format!(
        "{MODULE_NAMES}; select count(*) as n from module_names; DROP KERNEL TABLE module_names; \
         DROP KERNEL TABLE IF EXISTS module_names; {MODULE_NAMES}; select name from module_names where name = '9p'"
    );
    let output = kql(&["--core", vmcore(), "--format", "ndjson", &sql]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout).unwrap().lines().collect();
    let shipped = kql_rows(&["--core", vmcore(), "select count(*) as n from kernel_modules"]);
    assert_eq!(
        lines[0],
        format!("{{\"n\":{}}}", shipped[0]["n"]),
        "the declared list is the shipped table's"
    );
    assert_eq!(lines[1..], ["{\"name\":\"9p\"}"]);

    let error = kql_failure(&["--core", vmcore(), &format!("{MODULE_NAMES}; {MODULE_NAMES}")]);
    assert!(error.contains("table module_names exists (this session)"), "{error}");
    let error = kql_failure(&["--core", vmcore(), "DROP KERNEL TABLE processes"]);
    assert!(error.contains("built into kql"), "{error}");
    let error = kql_failure(&["--core", vmcore(), "DROP KERNEL TABLE nothing_here"]);
    assert!(error.contains("no declared kernel table nothing_here"), "{error}");
}

/// Each bad declaration: (text, what the one error line must say).
const BAD: &[(&str, &str)] = &[
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = nmae)",
        "line 1, column 80: column n: struct module has no member 'nmae' (nearest: name",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST no_such_global OF struct module VIA list COLUMNS (n = name)",
        "unknown symbol 'no_such_global'",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct no_such_type VIA list COLUMNS (n = name)",
        "unknown type struct no_such_type",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA name COLUMNS (n = name)",
        "VIA name is a char [56], not a struct list_head",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = list->next)",
        "'->' through a non-pointer: list is a struct list_head",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = mkobj.kobj.parent.name)",
        "is a pointer (struct kobject *): write",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = list)",
        "list is a struct list_head: name one of its members",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = @index)",
        "@index: no step of this walk binds it",
    ),
    (
        "CREATE KERNEL TABLE t FROM ARRAY CAST(init_task AS struct task_struct).comm OF struct module COLUMNS (n = name)",
        "ARRAY CAST(init_task AS struct task_struct).comm: its elements are char, not struct module",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST CAST(init_task AS struct task_struct).tasks.nope OF struct task_struct VIA tasks COLUMNS (n = pid)",
        "struct list_head has no member 'nope'",
    ),
    (
        "CREATE KERNEL TABLE t FROM LIST init_task.tasks OF struct task_struct VIA tasks COLUMNS (n = pid)",
        "write CAST(init_task AS struct",
    ),
    (
        "CREATE KERNEL TABLE t PARENT t AS p FROM LIST p.list OF struct module VIA list COLUMNS (n KEY = name)",
        "PARENT tables nest more than 8 deep",
    ),
    (
        "CREATE KERNEL TABLE t PARENT nope AS p FROM LIST p.list OF struct module VIA list COLUMNS (n KEY = name)",
        "PARENT nope: no such declared table",
    ),
    ("CREATE KERNEL TABLE t FROM LIST modules OF struct module VIA list COLUMNS (n = name", "expected ')'"),
    (
        "CREATE KERNEL TABLE processes FROM LIST modules OF struct module VIA list COLUMNS (n = name)",
        "table processes is built into kql; choose another name",
    ),
];

#[test]
fn a_bad_declaration_is_one_clear_line() {
    for (declaration, expected) in BAD {
        let error = kql_failure(&["--core", vmcore(), declaration]);
        assert!(error.contains(expected), "{declaration}\n  gave: {error}  wanted: {expected}");
    }
}

#[test]
fn a_parent_cycle_in_a_tables_directory_fails_in_one_line_at_scan() {
    let dir = TempDir::new();
    let cycle = "CREATE KERNEL TABLE a PARENT b AS p FROM LIST p.list OF struct module VIA list COLUMNS (n KEY = name);\n\
                 CREATE KERNEL TABLE b PARENT a AS p FROM LIST p.list OF struct module VIA list COLUMNS (m KEY = name);";
    std::fs::write(dir.0.join("cycle.sql"), cycle).unwrap();
    std::fs::write(dir.0.join("broken.sql"), "CREATE KERNEL TABLE oops FROM").unwrap();
    let tables = dir.0.to_str().unwrap();
    // A file named through --tables is the user's explicit choice: a bad one stops kql.
    let error = kql_failure(&["--core", vmcore(), "--tables", tables, "select count(*) from kernel_modules"]);
    assert!(error.contains("broken.sql: line 1, column 26: expected a container"), "{error}");
    std::fs::remove_file(dir.0.join("broken.sql")).unwrap();
    let error = kql_failure(&["--core", vmcore(), "--tables", tables, "select * from a"]);
    assert!(error.contains("PARENT tables nest more than 8 deep"), "{error}");
}

#[test]
fn tables_from_a_directory_are_listed_with_their_origin_and_declaration() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("names.sql"), format!("-- module names\n{MODULE_NAMES};")).unwrap();
    let tables = dir.0.to_str().unwrap();
    let rows = kql_rows(&["tables", "--core", vmcore(), "--tables", tables]);
    let row = rows.iter().find(|r| r["table"] == "module_names").expect("module_names is listed");
    assert_eq!(row["defined"], dir.0.join("names.sql").display().to_string());
    assert!(row["types"].as_str().unwrap().starts_with("btf: "), "{row:?}");
    let shipped = rows.iter().find(|r| r["table"] == "slab_caches").expect("slab_caches is listed");
    assert_eq!(shipped["defined"], "shipped: tables/slab_caches.sql");
    let columns = kql_rows(&["describe", "module_names", "--core", vmcore(), "--tables", tables]);
    let names: Vec<&str> = columns.iter().map(|c| c["column"].as_str().unwrap()).collect();
    assert_eq!(names, ["name", "address"]);
}

#[test]
fn key_columns_narrow_the_walk_and_index_keys_are_lookups() {
    let all = kql_rows(&["--core", vmcore(), "select name, address from slab_caches"]);
    let one = &all[all.len() / 2];
    let name = one["name"].as_str().unwrap();
    let rows = kql_rows(&[
        "--core",
        vmcore(),
        &format!("select name, address from slab_caches where name = '{name}'"),
    ]);
    assert_eq!(rows, vec![one.clone()]);
    let rows = kql_rows(&[
        "--core",
        vmcore(),
        "select netns, name from net_devices where netns in (select min(netns) from net_namespaces)",
    ]);
    let namespaces: BTreeSet<String> = rows.iter().map(|r| r["netns"].to_string()).collect();
    assert_eq!(namespaces.len(), 1, "{rows:?}");
}

#[test]
fn on_this_host_the_paired_tables_come_from_proc_and_the_others_fail_in_one_line() {
    let rows = kql_rows(&["select mount_id, parent_id, mount_point, fstype from mounts"]);
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["mount_id"],
                r["parent_id"],
                r["mount_point"].as_str().unwrap(),
                r["fstype"].as_str().unwrap()
            )
        })
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let expected: BTreeSet<String> = mountinfo
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-").unwrap();
            let point = fields[4].replace("\\040", " ");
            format!("{} {} {point} {}", fields[0], fields[1], fields[dash + 1])
        })
        .collect();
    assert_eq!(listed, expected, "mounts vs /proc/self/mountinfo");
    let modules = kql_rows(&["select name from kernel_modules"]);
    let expected = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    assert_eq!(modules.len(), expected.lines().count(), "kernel_modules vs /proc/modules");

    let error = kql_failure(&["select * from slab_caches"]);
    assert!(
        error.contains("slab_caches: it is a kernel walk, and libdrgn cannot read the live host"),
        "{error}"
    );
    let error = kql_failure(&[MODULE_NAMES]);
    assert!(error.contains("module_names: it is a kernel walk"), "{error}");
}
