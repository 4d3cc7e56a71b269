//! SQL text from outside — `-f FILE`, `\i FILE`, standard input, the command line — read
//! with a bound: at most [`MAX_SQL_BYTES`], UTF-8, no NUL byte, and a file must be a regular
//! file (a FIFO, a device such as `/dev/zero`, a socket or a directory is refused before it
//! is opened, so nothing blocks or reads without end).

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::error::CliError;

/// The most SQL kql reads from one source: far above any real statement, and small enough
/// that tokenizing and parsing it stays near 1 GiB even for the densest SQL (`1+1+…`).
pub const MAX_SQL_BYTES: usize = 2 << 20;

/// The SQL in the regular file `path`.
pub fn read_file(path: &Path) -> Result<String, CliError> {
    let name = path.display();
    let cannot = |why: String| CliError::new(format!("cannot read {name}: {why}"));
    let metadata = std::fs::metadata(path).map_err(|e| cannot(e.to_string()))?;
    let kind = metadata.file_type();
    let odd = match () {
        _ if kind.is_dir() => Some("a directory"),
        _ if kind.is_fifo() => Some("a FIFO"),
        _ if kind.is_socket() => Some("a socket"),
        _ if kind.is_char_device() || kind.is_block_device() => Some("a device"),
        _ => None,
    };
    if let Some(odd) = odd {
        return Err(cannot(format!("it is {odd}, not a file of SQL")));
    }
    if metadata.len() > MAX_SQL_BYTES as u64 {
        return Err(cannot(too_large()));
    }
    let file = std::fs::File::open(path).map_err(|e| cannot(e.to_string()))?;
    read_bounded(file).map_err(cannot)
}

/// The SQL on standard input (a pipe or a file; a terminal opens the REPL instead).
pub fn read_stdin() -> Result<String, CliError> {
    read_bounded(std::io::stdin().lock())
        .map_err(|why| CliError::new(format!("cannot read standard input: {why}")))
}

/// SQL given on the command line, held to the same rules as a file's.
pub fn check_text(sql: &str) -> Result<(), CliError> {
    match () {
        _ if sql.len() > MAX_SQL_BYTES => Err(CliError::new(format!("the SQL given: {}", too_large()))),
        _ => match sql.find('\0') {
            Some(at) => Err(CliError::new(format!("the SQL given has a NUL byte at offset {at}"))),
            None => Ok(()),
        },
    }
}

/// Reads `source` to its end, stopping early at the limit or at a NUL byte; the error is a
/// phrase.
fn read_bounded(source: impl Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut source = source.take(MAX_SQL_BYTES as u64 + 1);
    loop {
        let got = match source.read(&mut chunk) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        if let Some(at) = chunk[..got].iter().position(|&b| b == 0) {
            return Err(format!("it has a NUL byte at offset {}: binary, not SQL", bytes.len() + at));
        }
        bytes.extend_from_slice(&chunk[..got]);
        if bytes.len() > MAX_SQL_BYTES {
            return Err(too_large());
        }
    }
    String::from_utf8(bytes).map_err(|e| {
        format!("it is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())
    })
}

fn too_large() -> String {
    format!("it is larger than kql's limit of {} MiB of SQL", MAX_SQL_BYTES >> 20)
}
