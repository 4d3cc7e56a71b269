//! The command line: formats, saved queries, catalog commands, and one-line errors for bad input.

use crate::support::*;

#[test]
fn bad_input_is_one_line_and_a_failure() {
    assert!(kql_failure(&["select * fromm tcp_listeners"]).contains("Line: 1, Column: "));
    assert!(kql_failure(&["select * from no_such_table"]).contains("unknown table 'no_such_table'"));
    assert!(kql_failure(&["select nope from proc_fds"]).contains("nope"));
    assert!(kql_failure(&["-q", "no-such-query"]).contains("unknown saved query 'no-such-query'"));
    assert!(kql_failure(&["-f", "/nonexistent/q.sql"]).contains("cannot read /nonexistent/q.sql"));
    assert!(kql_failure(&["describe", "no_such_table"]).contains("unknown table"));
    let dir = TempDir::new();
    let comments = dir.0.join("comments.sql");
    std::fs::write(&comments, "-- nothing but a comment\n").unwrap();
    assert!(kql_failure(&["-f", comments.to_str().unwrap()]).contains("no SQL statement"));
    assert!(kql_failure(&["--format", "xml", "select 1"]).contains("xml"));
}

#[test]
fn formats_print_the_same_rows() {
    let sql = "select 1 as a, 'x,y' as b union all select 2, 'z' order by a";
    let csv = String::from_utf8(kql(&["--format", "csv", sql]).stdout).unwrap();
    assert_eq!(csv, "a,b\n1,\"x,y\"\n2,z\n");
    let ndjson = String::from_utf8(kql(&["--format", "ndjson", sql]).stdout).unwrap();
    assert_eq!(ndjson, "{\"a\":1,\"b\":\"x,y\"}\n{\"a\":2,\"b\":\"z\"}\n");
    let json = kql_rows(&[sql]);
    assert_eq!(json.len(), 2);
    let table = String::from_utf8(kql(&[sql]).stdout).unwrap();
    assert!(table.contains("| a | b   |") && table.contains("| 1 | x,y |"), "{table}");
}

#[test]
fn the_table_format_cuts_long_text_and_csv_keeps_it() {
    let sql = "select repeat('x', 150) as long";
    let table = String::from_utf8(kql(&[sql]).stdout).unwrap();
    assert!(table.contains(&format!("| {}… |", "x".repeat(100))), "{table}");
    let csv = String::from_utf8(kql(&["--format", "csv", sql]).stdout).unwrap();
    assert_eq!(csv, format!("long\n{}\n", "x".repeat(150)));
}

#[test]
fn saved_queries_files_and_stdin_run() {
    let listed = String::from_utf8(kql(&["queries"]).stdout).unwrap();
    for name in ["ss-nlpt", "ss-nlpt-all", "lsof-i", "ps"] {
        assert!(listed.lines().any(|line| line.starts_with(name)), "{name} in {listed}");
        assert!(kql(&["-q", name, "--format", "csv"]).status.success(), "{name} runs");
    }
    let dir = TempDir::new();
    let file = dir.0.join("two.sql");
    std::fs::write(&file, "select 1 as one;\nselect 2 as two;\n").unwrap();
    let out = String::from_utf8(kql(&["--format", "csv", "-f", file.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(out, "one\n1\ntwo\n2\n");
    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_kql"))
        .args(["--format", "csv"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(piped.stdout).unwrap(), "one\n1\ntwo\n2\n");
}

#[test]
fn catalog_commands_describe_every_table() {
    let tables = kql_rows(&["tables"]);
    let names: Vec<&str> = tables.iter().map(|t| t["table"].as_str().unwrap()).collect();
    let shipped: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tables"))
        .unwrap()
        .map(|entry| entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut expected = vec![
        "tcp_listeners",
        "tcp_sockets",
        "proc_fds",
        "processes",
        "threads",
        "udp_sockets",
        "unix_sockets",
    ];
    let mut declared: Vec<&str> = shipped.iter().map(String::as_str).collect();
    declared.sort();
    expected.extend(declared);
    assert_eq!(names, expected, "the built-in tables, then one per tables/*.sql");
    for name in names {
        let columns = kql_rows(&["describe", name]);
        assert!(!columns.is_empty());
        assert!(columns.iter().all(|c| !c["description"].as_str().unwrap().is_empty()));
        let sql = format!("select column_name from information_schema.columns where table_name = '{name}'");
        assert_eq!(kql_rows(&[&sql]).len(), columns.len(), "information_schema agrees for {name}");
    }
}

#[test]
fn global_flags_go_before_or_after_a_subcommand() {
    let before = kql(&["--format", "csv", "tables"]);
    let after = kql(&["tables", "--format", "csv"]);
    assert!(before.status.success(), "{}", String::from_utf8_lossy(&before.stderr));
    assert_eq!(before.stdout, after.stdout);
    assert!(String::from_utf8_lossy(&before.stdout).starts_with("table,source,"));
    let error = kql_failure(&["-q", "ss-nlpt", "--format", "csv", "tables"]);
    assert!(error.contains("takes no SQL, -f, -q or --param"), "{error}");
}

#[test]
fn completion_scripts_and_man_page_come_from_the_cli_definition() {
    let script = |shell: &str| String::from_utf8(kql(&["completions", shell]).stdout).unwrap();
    let bash = script("bash");
    assert!(bash.contains("--core") && bash.contains("--qmp") && bash.contains("describe"), "{bash}");
    let checked = std::process::Command::new("bash").args(["-n", "-c", &bash]).status().unwrap();
    assert!(checked.success(), "the bash script parses");
    assert!(script("zsh").starts_with("#compdef kql"));
    assert!(script("fish").contains("complete -c kql"));
    let man = String::from_utf8(kql(&["man"]).stdout).unwrap();
    assert!(man.contains(".TH kql 1"), "{man}");
    assert!(man.contains("\\-\\-vmlinux") && man.contains("completions"), "options and subcommands: {man}");
    assert!(kql_failure(&["completions", "tcsh"]).contains("tcsh"));
}

#[test]
fn saved_query_parameters_are_typed_values_not_sql_text() {
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let port = local_port(&listener).to_string();
    let holder = Holder::start("kqlt-param", &[&listener], false, None);
    drop(listener);
    let rows = kql_rows(&["-q", "who-listens", "--param", &format!("port={port}")]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["comm"], "kqlt-param");
    assert_eq!(rows[0]["pid"], holder.pid());
    assert!(
        kql_failure(&["-q", "who-listens", "--param", &format!("port={port} or 1=1")])
            .contains("must be a port")
    );
    assert!(kql_failure(&["-q", "who-listens", "--param", "prot=1"]).contains("no parameter 'prot'"));
    assert!(kql_failure(&["-q", "who-listens", "--param", "port"]).contains("NAME=VALUE"));
    assert!(kql_failure(&["--param", "port=1", "select 1"]).contains("-q NAME"));
    let listed = String::from_utf8(kql(&["queries"]).stdout).unwrap();
    assert!(listed.contains("who-listens") && listed.contains("(port port = 22)"), "{listed}");
}

#[test]
fn no_progress_line_when_stderr_is_not_a_terminal() {
    let slow = "select count(*) from proc_fds a, proc_fds b, proc_fds c, proc_fds d";
    let output = kql(&[slow]);
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains('\r') && !stderr.contains("running"), "{stderr:?}");
}

#[test]
fn output_files_in_every_format_hold_the_rows() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let sql =
        format!("select local_port, inode from tcp_listeners where local_port = {}", local_port(&listener));
    let expected = kql_rows(&[&sql]);
    assert_eq!(expected.len(), 1);
    let dir = TempDir::new();
    let file = dir.0.join("rows.parquet");
    let path = file.to_str().unwrap();
    let output = kql(&["--format", "parquet", "--output", path, &sql]);
    assert!(output.status.success() && output.stdout.is_empty(), "{output:?}");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let inode = batches[0].column_by_name("inode").unwrap();
    let inode = inode.as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap().value(0);
    assert_eq!(serde_json::json!(inode), expected[0]["inode"]);

    let csv = dir.0.join("rows.csv");
    assert!(kql(&["--format", "csv", "-o", csv.to_str().unwrap(), &sql]).status.success());
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        format!("local_port,inode\n{},{}\n", expected[0]["local_port"], expected[0]["inode"])
    );
    assert!(
        kql_failure(&["--format", "parquet", "-o", path, "select 1; select 2"]).contains("one statement")
    );
    assert!(
        kql_failure(&["-o", "/nonexistent/dir/x", "select 1"]).contains("cannot write /nonexistent/dir/x")
    );
}
