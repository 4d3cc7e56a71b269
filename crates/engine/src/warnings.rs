//! Non-fatal problems reported by scans while a statement runs.
//!
//! A scan that had to skip something (an fd it may not read, a namespace it could not enter)
//! still returns its rows, and says what it skipped here; the front end prints and clears the
//! list after each statement.

use std::sync::{Arc, Mutex};

/// A shared, append-only list of warning lines, drained by the front end.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Record one warning line.
    pub fn push(&self, warning: String) {
        self.lock().push(warning);
    }

    /// Take every warning recorded so far, leaving the list empty.
    pub fn drain(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A panic while holding the lock leaves a Vec that is still valid: keep using it.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
