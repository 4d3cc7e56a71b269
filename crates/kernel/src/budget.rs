//! A walk's row budget: however many objects a kernel (or a damaged vmcore) claims to hold,
//! one hand-written walk builds at most [`MAX_ROWS`] rows before it stops with an error that
//! names the cap, so a statement's memory stays bounded before DataFusion's pool sees a row.
//! (Declared tables have their own budget of objects, bytes and time in `kql-declare`.)

use kql_drgn::{Error, ErrorKind, Result};

/// The most rows one walk builds (each chain, hash and list is capped too).
pub const MAX_ROWS: usize = 1 << 24;

/// `Ok` while `rows` is within [`MAX_ROWS`], else an error naming the walk (`what`) and the cap.
pub fn within_row_budget(rows: usize, what: &str) -> Result<()> {
    if rows <= MAX_ROWS {
        return Ok(());
    }
    let message = format!(
        "{what}: more than {MAX_ROWS} rows, the row budget of a walk; it stops there (a corrupt kernel? narrow the query with a key column)"
    );
    Err(Error::new(ErrorKind::BadData, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_past_the_budget_stops_with_the_cap_named() {
        assert!(within_row_budget(MAX_ROWS, "tcp walk").is_ok());
        let error = within_row_budget(MAX_ROWS + 1, "tcp walk").unwrap_err();
        assert!(
            error.message.contains("tcp walk") && error.message.contains("16777216 rows"),
            "{}",
            error.message
        );
    }
}
