//! Line-oriented files of `/proc`: each line decoded on its own, and a line that cannot be
//! an error naming the file, the line number and what is wrong.

use std::io;

/// Every line of `text` (read from `path`) decoded by `parse`; the first it rejects is an
/// error quoting that line.
pub(crate) fn parse_each<T>(text: &str, path: &str, parse: impl Fn(&str) -> Option<T>) -> io::Result<Vec<T>> {
    text.lines()
        .enumerate()
        .map(|(index, line)| parse(line).ok_or_else(|| malformed(path, index + 1, &format!("{line:?}"))))
        .collect()
}

/// An `InvalidData` error for line `line_no` (1-based) of `path`.
pub(crate) fn malformed(path: &str, line_no: usize, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{path} line {line_no}: malformed: {what}"))
}
