//! The CLI writes nothing and keeps kql's names unless `--allow-writes`: each refused
//! statement is one line naming what was refused, and leaves no file behind.

use crate::support::*;

#[test]
fn statements_that_write_or_rename_are_refused() {
    let dir = TempDir::new();
    let target = dir.0.join("out.csv");
    let copy = format!("copy (select 1 as a) to '{}'", target.display());
    let explain_copy = format!("explain analyze {copy}");
    let refused = [
        (copy.as_str(), "COPY"),
        (explain_copy.as_str(), "COPY"),
        ("insert into tcp_listeners select * from tcp_listeners", "INSERT INTO tcp_listeners"),
        ("drop table tcp_listeners", "DROP TABLE"),
        ("drop view ss_nlpt_all", "DROP VIEW"),
        ("create view proc_fds as select 1", "CREATE VIEW over the kql name proc_fds"),
        ("create or replace view ss_nlpt_all as select 1", "CREATE VIEW over the kql name ss_nlpt_all"),
        ("create table processes as select 1", "CREATE TABLE over the kql name processes"),
    ];
    for (sql, what) in refused {
        let error = kql_failure(&[sql]);
        assert!(error.starts_with("kql: refused: ") && error.contains(what), "{sql}: {error}");
        assert!(error.contains("-o FILE") && error.contains("--allow-writes"), "{sql}: {error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    assert!(!target.exists(), "a refused COPY wrote {}", target.display());
}

#[test]
fn allow_writes_lets_copy_write_its_file() {
    let dir = TempDir::new();
    let target = dir.0.join("out.csv");
    let copy = format!("copy (select 7 as a) to '{}' stored as csv", target.display());
    let out = kql(&["--allow-writes", &copy]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "a\n7\n");
}

#[test]
fn an_external_table_reads_the_users_file_and_ddl_prints_no_box() {
    let dir = TempDir::new();
    let inventory = dir.0.join("inventory.csv");
    std::fs::write(&inventory, "port,owner\n22,ops\n8080,web\n").unwrap();
    let sql = format!(
        "create external table inventory stored as csv location '{}' options ('format.has_header' 'true'); \
         create view mine as select owner from inventory where port = 8080; select * from mine",
        inventory.display()
    );
    let out = kql(&["--format", "csv", &sql]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "owner\nweb\n");
    let table = kql(&["create view v as select 1"]);
    assert!(table.status.success() && table.stdout.is_empty(), "{:?}", table);
}
