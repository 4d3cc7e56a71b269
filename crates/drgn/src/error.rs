//! [`Error`]: a libdrgn `struct drgn_error` turned into an owned Rust value, or an error of
//! kql's own about a target (a mismatched vmlinux, a truncated vmcore).

use std::ffi::CStr;
use std::fmt;

use drgn_sys as sys;

/// Result of every fallible call of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What kind of failure an [`Error`] is, after libdrgn's `enum drgn_error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Out of memory.
    NoMemory,
    /// A system call failed (e.g. opening a file or socket).
    Os,
    /// No usable debug info (DWARF) for the kernel.
    MissingDebugInfo,
    /// A name (symbol, type, member) does not exist.
    Lookup,
    /// Memory at an address could not be read.
    Fault,
    /// An operation does not apply to the object's type.
    Type,
    /// A mismatch between files, or bad data in them.
    BadData,
    /// Anything else libdrgn reports (its code is kept in [`Error::code`]).
    Other,
}

impl ErrorKind {
    fn from_code(code: sys::drgn_error_code) -> Self {
        match code {
            sys::DRGN_ERROR_NO_MEMORY => ErrorKind::NoMemory,
            sys::DRGN_ERROR_OS => ErrorKind::Os,
            sys::DRGN_ERROR_MISSING_DEBUG_INFO => ErrorKind::MissingDebugInfo,
            sys::DRGN_ERROR_LOOKUP => ErrorKind::Lookup,
            sys::DRGN_ERROR_FAULT => ErrorKind::Fault,
            sys::DRGN_ERROR_TYPE => ErrorKind::Type,
            sys::DRGN_ERROR_BAD_DATA => ErrorKind::BadData,
            _ => ErrorKind::Other,
        }
    }
}

/// A failure reported by libdrgn or by this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// libdrgn's numeric `drgn_error_code`.
    pub code: u8,
    /// The full message, as drgn prints it.
    pub message: String,
    /// For [`ErrorKind::Fault`], the address that could not be read.
    pub fault_address: Option<u64>,
}

impl Error {
    /// An error of this crate's own, with libdrgn's code for `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let code = match kind {
            ErrorKind::NoMemory => sys::DRGN_ERROR_NO_MEMORY,
            ErrorKind::Os => sys::DRGN_ERROR_OS,
            ErrorKind::MissingDebugInfo => sys::DRGN_ERROR_MISSING_DEBUG_INFO,
            ErrorKind::Lookup => sys::DRGN_ERROR_LOOKUP,
            ErrorKind::Fault => sys::DRGN_ERROR_FAULT,
            ErrorKind::Type => sys::DRGN_ERROR_TYPE,
            ErrorKind::BadData => sys::DRGN_ERROR_BAD_DATA,
            ErrorKind::Other => sys::DRGN_ERROR_OTHER,
        };
        Error { kind, code, message: message.into(), fault_address: None }
    }

    /// Takes ownership of a libdrgn error; `NULL` (success) gives `Ok`.
    pub(crate) fn check(raw: *mut sys::drgn_error) -> Result<()> {
        if raw.is_null() {
            return Ok(());
        }
        // SAFETY: `raw` is a non-NULL error just returned by libdrgn and not yet destroyed;
        // the accessors only read it, `drgn_error_string` returns a malloc'd copy we free,
        // and `drgn_error_destroy` is its single release (also valid for static errors).
        unsafe {
            let code = sys::drgn_error_code(raw);
            let text = sys::drgn_error_string(raw);
            let message = if text.is_null() {
                CStr::from_ptr(sys::drgn_error_message(raw)).to_string_lossy().into_owned()
            } else {
                let owned = CStr::from_ptr(text).to_string_lossy().into_owned();
                libc::free(text.cast());
                owned
            };
            let fault_address = (code == sys::DRGN_ERROR_FAULT).then(|| sys::drgn_error_fault_address(raw));
            sys::drgn_error_destroy(raw);
            Err(Error { kind: ErrorKind::from_code(code), code, message, fault_address })
        }
    }

    /// The same error with `context: ` in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error { message: format!("{context}: {}", self.message), ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
