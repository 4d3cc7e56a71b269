//! A progress line on stderr while a statement runs longer than ~200 ms: elapsed time and
//! the tables being scanned. Only when stderr is a terminal; the line is erased when the
//! statement ends, so results and piped output never contain it.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kql_engine::ScanLog;

/// How long a statement runs before the line appears.
const QUIET: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(100);
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// Shows progress until dropped.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts watching `log` for one statement; does nothing unless stderr is a terminal.
    pub fn start(log: &ScanLog) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let (log, done) = (log.clone(), Arc::clone(&done));
            std::thread::spawn(move || show(&log, &done))
        });
        Progress { done, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Redraws the line every tick after the quiet period; erases it at the end.
fn show(log: &ScanLog, done: &AtomicBool) {
    let started = Instant::now();
    let mut shown = false;
    let mut tick = 0;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        if started.elapsed() < QUIET {
            continue;
        }
        let running = log.running();
        let what = if running.is_empty() {
            "running".to_string()
        } else {
            format!("scanning {}", running.join(", "))
        };
        eprint!(
            "\r\x1b[2K{} {what} … {:.1} s",
            SPINNER[tick % SPINNER.len()],
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        shown = true;
        tick += 1;
    }
    if shown {
        eprint!("\r\x1b[2K");
    }
}
