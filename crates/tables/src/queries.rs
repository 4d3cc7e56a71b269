//! Saved queries: the `.sql` files of the repository's `queries/`, built in. Each is also a
//! view named like the query with `_` for `-` (`ss-nlpt-all` → `ss_nlpt_all`), so queries can
//! build on one another and users can filter them in SQL.
//!
//! Each file starts with a header of SQL comments:
//! ```sql
//! -- name: ss-nlpt
//! -- description: Listening TCP sockets and their processes, as `ss -nlpt` prints them
//! ```
//! The name must equal the file name without `.sql`.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/saved_queries.rs"));
}

/// One saved query.
#[derive(Debug, Clone, Copy)]
pub struct SavedQuery {
    /// Name given to `kql -q`.
    pub name: &'static str,
    /// One-line description from the header.
    pub description: &'static str,
    /// The SQL text, header included.
    pub sql: &'static str,
}

impl SavedQuery {
    /// Name of the view that holds this query.
    pub fn view(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// Every saved query, sorted by name.
pub fn all() -> Vec<SavedQuery> {
    embedded::SAVED
        .iter()
        .map(|&(file, sql)| SavedQuery {
            name: header(sql, "name").unwrap_or(file),
            description: header(sql, "description").unwrap_or(""),
            sql,
        })
        .collect()
}

/// The saved query called `name`.
pub fn find(name: &str) -> Option<SavedQuery> {
    all().into_iter().find(|q| q.name == name)
}

/// The value of a `-- key: value` line in the leading comment block of `sql`.
fn header(sql: &'static str, key: &str) -> Option<&'static str> {
    sql.lines()
        .map_while(|line| line.trim().strip_prefix("--"))
        .filter_map(|comment| comment.trim().split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_saved_query_is_named_after_its_file_and_described() {
        for &(file, sql) in super::embedded::SAVED {
            assert_eq!(super::header(sql, "name"), Some(file), "name header of {file}.sql");
            assert!(
                super::header(sql, "description").is_some_and(|d| !d.is_empty()),
                "description header of {file}.sql"
            );
        }
    }
}
