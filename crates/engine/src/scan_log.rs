//! What scans report while a statement runs: which tables are being scanned right now (for a
//! progress line), and non-fatal problems.
//!
//! A scan that had to skip something (an fd it may not read, a namespace it could not enter)
//! still returns its rows, and says what it skipped here; the front end prints and clears the
//! warnings after each statement.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Log {
    warnings: Vec<String>,
    running: Vec<&'static str>,
}

/// A shared log of the current statement's scans, read by the front end.
#[derive(Debug, Clone, Default)]
pub struct ScanLog(Arc<Mutex<Log>>);

/// A scan in progress; it leaves the log's running list when dropped.
pub struct Running {
    log: ScanLog,
    table: &'static str,
}

impl ScanLog {
    /// Record one warning line.
    pub fn warn(&self, warning: String) {
        self.lock().warnings.push(warning);
    }

    /// Take every warning recorded so far, leaving the list empty.
    pub fn drain_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().warnings)
    }

    /// Note that a scan of `table` runs until the returned guard is dropped.
    pub fn start(&self, table: &'static str) -> Running {
        self.lock().running.push(table);
        Running { log: self.clone(), table }
    }

    /// The tables being scanned right now.
    pub fn running(&self) -> Vec<&'static str> {
        self.lock().running.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves lists that are still valid: keep using them.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut log = self.log.lock();
        if let Some(index) = log.running.iter().position(|&t| t == self.table) {
            log.running.remove(index);
        }
    }
}
