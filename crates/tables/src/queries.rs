//! Saved queries: the `.sql` files of the repository's `queries/`, built in. Each is also a
//! view named like the query with `_` for `-` (`ss-nlpt-all` → `ss_nlpt_all`), so queries can
//! build on one another and users can filter them in SQL.
//!
//! Each file starts with a header of SQL comments:
//! ```sql
//! -- name: who-listens
//! -- description: Processes listening on a TCP port, in every network namespace
//! -- param: port port 22
//! ```
//! The name must equal the file name without `.sql`. Each `-- param: NAME TYPE [DEFAULT]`
//! line declares a parameter (TYPE `int`, `port` — an int from 0 to 65535, as a port
//! column holds —, `text` or `bool`; without a default it must be given), used in the SQL as `$NAME` and bound as a typed value by [`SavedQuery::bind`] —
//! never pasted into the text. A query with parameters is not a view.

use std::collections::HashMap;

use datafusion::common::{ParamValues, ScalarValue};

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

/// A parameter a saved query declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Name, used as `$name` in the SQL and `name=value` by the user.
    pub name: &'static str,
    /// Type of its values.
    pub kind: ParamKind,
    /// Value when not given; `None` makes it required.
    pub default: Option<&'static str>,
}

/// Types of saved-query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A 64-bit signed integer.
    Int,
    /// A TCP or UDP port: an integer from 0 to 65535 (a value outside could match nothing).
    Port,
    /// Any text.
    Text,
    /// `true` or `false`.
    Bool,
}

impl ParamKind {
    fn parse(name: &str) -> Option<ParamKind> {
        match name {
            "int" => Some(ParamKind::Int),
            "port" => Some(ParamKind::Port),
            "text" => Some(ParamKind::Text),
            "bool" => Some(ParamKind::Bool),
            _ => None,
        }
    }

    /// `value` as this type, or why not.
    fn value(self, param: &str, value: &str) -> Result<ScalarValue, String> {
        let wrong = |kind: &str| format!("parameter {param} must be {kind}, not '{value}'");
        match self {
            ParamKind::Int => {
                value.parse::<i64>().map(|v| ScalarValue::Int64(Some(v))).map_err(|_| wrong("an int"))
            }
            ParamKind::Port => value
                .parse::<u16>()
                .map(|v| ScalarValue::Int64(Some(i64::from(v))))
                .map_err(|_| wrong("a port, an int from 0 to 65535")),
            ParamKind::Text => Ok(ScalarValue::Utf8(Some(value.to_string()))),
            ParamKind::Bool => value
                .parse::<bool>()
                .map(|v| ScalarValue::Boolean(Some(v)))
                .map_err(|_| wrong("true or false")),
        }
    }
}

impl SavedQuery {
    /// Name of the view that holds this query.
    pub fn view(&self) -> String {
        self.name.replace('-', "_")
    }

    /// The parameters its header declares, in order.
    pub fn params(&self) -> Vec<Param> {
        headers(self.sql, "param").filter_map(parse_param).collect()
    }

    /// Binds `given` (`name`, `value` pairs as typed) and the defaults to the parameters:
    /// every value checked against its type, every required parameter present, no unknown one.
    pub fn bind(&self, given: &[(String, String)]) -> Result<ParamValues, String> {
        let params = self.params();
        let names = || params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
        if let Some((name, _)) = given.iter().find(|(name, _)| !params.iter().any(|p| p.name == name)) {
            return Err(match params.is_empty() {
                true => format!("saved query {} takes no parameters, not '{name}'", self.name),
                false => format!("saved query {} has no parameter '{name}' (it has: {})", self.name, names()),
            });
        }
        let mut values = HashMap::new();
        for param in &params {
            let value = given.iter().rev().find(|(name, _)| name == param.name).map(|(_, v)| v.as_str());
            let value = value.or(param.default).ok_or_else(|| {
                format!("saved query {} needs parameter {} ({})", self.name, param.name, names())
            })?;
            values.insert(param.name.to_string(), param.kind.value(param.name, value)?);
        }
        Ok(ParamValues::Map(values.into_iter().map(|(k, v)| (k, v.into())).collect()))
    }
}

/// `NAME TYPE [DEFAULT]` of a `-- param:` line; malformed lines are caught by a test.
fn parse_param(text: &'static str) -> Option<Param> {
    let mut words = text.splitn(3, char::is_whitespace).filter(|w| !w.is_empty());
    let (name, kind) = (words.next()?, ParamKind::parse(words.next()?)?);
    Some(Param { name, kind, default: words.next().map(str::trim) })
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

/// The value of the first `-- key: value` line in the leading comment block of `sql`.
fn header(sql: &'static str, key: &str) -> Option<&'static str> {
    headers(sql, key).next()
}

/// The values of every `-- key: value` line in the leading comment block of `sql`.
fn headers<'k>(sql: &'static str, key: &'k str) -> impl Iterator<Item = &'static str> + 'k {
    sql.lines()
        .map_while(|line| line.trim().strip_prefix("--"))
        .filter_map(|comment| comment.trim().split_once(':'))
        .filter(move |(k, _)| k.trim() == key)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_param_line_is_well_formed() {
        for query in all() {
            let declared = headers(query.sql, "param").count();
            assert_eq!(
                query.params().len(),
                declared,
                "-- param: NAME int|port|text|bool [DEFAULT] in {}",
                query.name
            );
        }
    }

    #[test]
    fn parameters_are_typed_checked_and_defaulted() {
        let query = find("who-listens").expect("the who-listens query");
        let bound = |given: &[(&str, &str)]| {
            let given: Vec<(String, String)> =
                given.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            query.bind(&given)
        };
        let port = |values: ParamValues| match values {
            ParamValues::Map(map) => map["port"].value.clone(),
            ParamValues::List(_) => unreachable!("named parameters"),
        };
        assert_eq!(port(bound(&[]).unwrap()), ScalarValue::Int64(Some(22)));
        assert_eq!(port(bound(&[("port", "2024")]).unwrap()), ScalarValue::Int64(Some(2024)));
        assert!(bound(&[("port", "22; drop table x")]).unwrap_err().contains("must be a port"));
        assert!(bound(&[("port", "-1")]).unwrap_err().contains("an int from 0 to 65535"));
        assert!(bound(&[("port", "65536")]).unwrap_err().contains("an int from 0 to 65535"));
        assert!(bound(&[("prot", "22")]).unwrap_err().contains("no parameter 'prot'"));
        assert!(
            find("ss-nlpt")
                .unwrap()
                .bind(&[("port".into(), "1".into())])
                .unwrap_err()
                .contains("no parameters")
        );
    }

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
