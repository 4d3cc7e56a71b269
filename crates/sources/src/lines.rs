//! Line-oriented files of `/proc`: each line decoded on its own, and a line that cannot be
//! an error naming the file, the line number and what is wrong.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

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

/// Stream the lines of `reader` (the file `path`) to `on_line` with their 1-based numbers,
/// without the line feed, holding one line at a time. A line longer than `max_len` bytes
/// is an error rather than an unbounded allocation.
pub(crate) fn for_each_line(
    reader: impl Read,
    path: &str,
    max_len: usize,
    mut on_line: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    for line_no in 1.. {
        line.clear();
        let limit = u64::try_from(max_len + 1).unwrap_or(u64::MAX);
        if (&mut reader).take(limit).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.len() > max_len {
            return Err(malformed(path, line_no, &format!("line longer than {max_len} bytes")));
        }
        on_line(line_no, text)?;
    }
    Ok(())
}

/// [`for_each_line`] over the file at `path`; `Ok(false)` if it does not exist.
pub(crate) fn for_each_line_of(
    path: &str,
    max_len: usize,
    on_line: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    match File::open(path) {
        Ok(file) => for_each_line(file, path, max_len, on_line).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &[u8], max_len: usize) -> io::Result<Vec<(usize, String)>> {
        let mut out = Vec::new();
        for_each_line(text, "sample", max_len, |n, l| {
            out.push((n, String::from_utf8_lossy(l).into_owned()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn streams_lines_with_numbers() {
        assert_eq!(collect(b"a\nbc\n", 8).unwrap(), [(1, "a".into()), (2, "bc".into())]);
        assert_eq!(collect(b"a\nbc", 8).unwrap(), [(1, "a".into()), (2, "bc".into())]);
        assert!(collect(b"", 8).unwrap().is_empty());
        assert_eq!(collect(b"abcd\n", 4).unwrap().len(), 1);
        let err = collect(b"ok\nabcde\n", 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("sample line 2: malformed: line longer"), "{err}");
    }
}
