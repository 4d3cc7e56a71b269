//! The REPL driven as a person would, in tmux: keys in with `send-keys`, the screen read back
//! with `capture-pane`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::TempDir;

/// kql's REPL running in a private tmux server, with its history in `state`.
pub(crate) struct Terminal {
    socket: String,
}

impl Terminal {
    pub(crate) fn start(name: &str, state: &Path) -> Terminal {
        Terminal::start_with(name, state, "")
    }

    /// Starts kql with extra `NAME=VALUE ` environment assignments.
    fn start_with(name: &str, state: &Path, environment: &str) -> Terminal {
        let terminal = Terminal { socket: format!("kqlt-{}-{name}", std::process::id()) };
        let command =
            format!("{environment}XDG_STATE_HOME={} exec {}", state.display(), env!("CARGO_BIN_EXE_kql"));
        terminal.tmux(&["new-session", "-d", "-x", "200", "-y", "80", &command]);
        terminal.wait_for("kql>");
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` literally (tmux would take a trailing `;` as a command separator).
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", &text.replace(';', "\\;")]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Types `line`, presses Enter and waits for the next prompt, as a person would.
    pub(crate) fn run(&self, line: &str) {
        let prompts = || self.screen().matches("kql>").count();
        let before = prompts();
        self.type_text(line);
        self.keys(&["Enter"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while prompts() <= before {
            assert!(Instant::now() < deadline, "no prompt after {line:?}:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-200"])
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never saw {text:?} on the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

#[test]
fn tab_completes_a_column_of_the_table_in_the_statement() {
    let state = TempDir::new();
    let terminal = Terminal::start("complete", &state.0);
    terminal.type_text("select local_p from tcp_listeners");
    terminal.keys(&["Left"; 19]);
    terminal.keys(&["Tab"]);
    terminal.wait_for("kql> select local_port from tcp_listeners");
    terminal.keys(&["End"]);
    terminal.type_text(" where local_p");
    terminal.keys(&["Tab"]);
    terminal.wait_for("from tcp_listeners where local_port");
}

#[test]
fn statements_span_lines_until_the_semicolon() {
    let state = TempDir::new();
    let terminal = Terminal::start("multiline", &state.0);
    terminal.type_text("select 40");
    terminal.keys(&["Enter"]);
    terminal.type_text("+ 2 as answer;");
    terminal.keys(&["Enter"]);
    let screen = terminal.wait_for("| 42     |");
    assert!(screen.contains("| answer |"), "{screen}");
}

#[test]
fn describe_shows_columns_descriptions_and_source() {
    let state = TempDir::new();
    let terminal = Terminal::start("describe", &state.0);
    terminal.type_text("\\d tcp_listeners");
    terminal.keys(&["Enter"]);
    let screen = terminal.wait_for("source: ");
    assert!(screen.contains("| local_port ") && screen.contains("accept queue"), "{screen}");
}

#[test]
fn ctrl_c_cancels_a_long_query_and_the_session_goes_on() {
    let state = TempDir::new();
    let terminal = Terminal::start("cancel", &state.0);
    terminal.type_text(
        "select count(*) from proc_fds a, proc_fds b, proc_fds c, proc_fds d, proc_fds e, proc_fds f;",
    );
    terminal.keys(&["Enter"]);
    terminal.wait_for("running …"); // the progress line: "| running … 0.3 s"
    terminal.keys(&["C-c"]);
    let screen = terminal.wait_for("query cancelled");
    assert!(!screen.contains("running …"), "the progress line is erased: {screen}");
    terminal.type_text("select 6 * 7 as answer;");
    terminal.keys(&["Enter"]);
    terminal.wait_for("| 42     |");
}

#[test]
fn history_survives_a_restart() {
    let state = TempDir::new();
    {
        let terminal = Terminal::start("history1", &state.0);
        terminal.type_text("select 4242 as remembered;");
        terminal.keys(&["Enter"]);
        terminal.wait_for("| 4242       |");
        terminal.type_text("\\q");
        terminal.keys(&["Enter"]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let history = state.0.join("kql/history");
    while !std::fs::read_to_string(&history).is_ok_and(|h| h.contains("4242")) {
        assert!(Instant::now() < deadline, "history was not written to {}", history.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let terminal = Terminal::start("history2", &state.0);
    terminal.keys(&["Up", "Up"]);
    terminal.wait_for("kql> select 4242 as remembered;");
}

#[test]
fn meta_commands_change_format_output_target_and_explain_sources() {
    let state = TempDir::new();
    let terminal = Terminal::start("meta", &state.0);
    let run = |line: &str| terminal.run(line);
    run("\\format csv");
    run("select 1 as one;");
    terminal.wait_for("one\n1\n");
    let output = state.0.join("out.csv");
    run(&format!("\\o {}", output.display()));
    run("select 2 as two;");
    run("\\o");
    let script = state.0.join("three.sql");
    std::fs::write(&script, "select 3 as three;\n").unwrap();
    run(&format!("\\i {}", script.display()));
    terminal.wait_for("three\n3\n");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "two\n2\n");
    run("\\run ss-nlpt");
    terminal.wait_for("Local Address:Port");
    run("\\run who-listens port=notaport");
    terminal.wait_for("parameter port must be a port");
    run("\\queries");
    terminal.wait_for("ss-nlpt-all");
    run("\\sources");
    let screen = terminal.wait_for("  procfs ");
    assert!(screen.contains("tcp_listeners\n  drgn "), "{screen}");
    run("\\target core /etc/passwd");
    terminal.wait_for("not a vmcore");
    run("\\target");
    terminal.wait_for("inspecting the live host");
}

/// The line of the coloured screen (`capture-pane -e`) that mentions `text`.
fn coloured_line(terminal: &Terminal, text: &str) -> String {
    terminal.wait_for(text);
    let screen = terminal.tmux(&["capture-pane", "-p", "-e"]);
    screen.lines().find(|line| line.contains(text)).unwrap_or_default().to_string()
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let state = TempDir::new();
    let coloured = Terminal::start("colour", &state.0);
    coloured.type_text("\\bogus");
    coloured.keys(&["Enter"]);
    let line = coloured_line(&coloured, "malformed meta command");
    assert!(line.contains('\x1b'), "the kql: prefix is coloured: {line:?}");
    let plain = Terminal::start_with("plain", &state.0, "NO_COLOR=1 ");
    plain.type_text("\\bogus");
    plain.keys(&["Enter"]);
    let line = coloured_line(&plain, "malformed meta command");
    assert!(!line.contains('\x1b'), "NO_COLOR turns colour off: {line:?}");
}

#[test]
fn target_switches_to_a_vmcore_and_its_sources() {
    let (vmcore, vmlinux) =
        kql_rig::vmcores::of(kql_rig::kernels::Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let state = TempDir::new();
    let terminal = Terminal::start("target", &state.0);
    terminal.run(&format!("\\target core {} {}", vmcore.display(), vmlinux.display()));
    terminal.wait_for(&format!("inspecting the vmcore {}", vmcore.display()));
    terminal.run("\\sources");
    let screen = terminal.wait_for("reads this host, not the vmcore");
    assert!(screen.contains("  drgn     in use"), "{screen}");
    terminal.run("\\run ss-nlpt");
    terminal.wait_for("users:((\"kqlw-netns\"");
}

#[test]
fn a_kernel_table_declared_in_the_shell_is_queried_described_and_dropped() {
    let (vmcore, _) =
        kql_rig::vmcores::of(kql_rig::kernels::Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let terminal_state = TempDir::new();
    let terminal = Terminal::start("declare", &terminal_state.0);
    terminal.run(&format!("\\target core {}", vmcore.display()));
    terminal.wait_for("inspecting the vmcore");
    terminal.type_text(
        "CREATE KERNEL TABLE fs_types 'File system types' FROM LIST super_blocks OF struct super_block",
    );
    terminal.keys(&["Enter"]);
    terminal.run("VIA s_list COLUMNS (fstype TEXT KEY = s_type->name 'its type');");
    terminal.run("select count(*) as sb_count from fs_types where fstype = 'proc';");
    terminal.wait_for("sb_count");
    terminal.run("\\d+ fs_types");
    let screen = terminal.wait_for("defined: this session");
    assert!(screen.contains("| fstype ") && screen.contains("VIA s_list COLUMNS"), "{screen}");
    terminal.run("DROP KERNEL TABLE fs_types;");
    terminal.run("select * from fs_types;");
    terminal.wait_for("unknown table 'fs_types'");
}
