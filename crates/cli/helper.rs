//! The REPL's line editor helper: completion in context, SQL highlighting, and the rule that a
//! statement ends with `;` (so Enter inside one continues it on the next line).
//!
//! Completion offers meta commands after `\`, table names after `from`/`join`/`\d`, saved
//! query names after `\run`, formats after `\format`, file names after `\i`/`\o`, and
//! elsewhere the columns of the tables the statement mentions, then keywords and tables.

use std::borrow::Cow;

use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::meta;

/// What completion knows about the target's tables and saved queries.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Table and view names with their columns (views without).
    pub tables: Vec<(String, Vec<String>)>,
    /// Saved query names.
    pub queries: Vec<String>,
}

/// The rustyline helper of kql's REPL.
pub struct KqlHelper {
    /// Names to complete.
    pub catalog: Catalog,
    colour: bool,
    files: FilenameCompleter,
}

impl KqlHelper {
    /// A helper completing from `catalog`, highlighting when `colour`.
    pub fn new(catalog: Catalog, colour: bool) -> Self {
        KqlHelper { catalog, colour, files: FilenameCompleter::new() }
    }

    fn table_names(&self) -> impl Iterator<Item = &str> {
        self.catalog.tables.iter().map(|(name, _)| name.as_str())
    }

    /// Columns of the tables named anywhere in `line`.
    fn columns_in(&self, line: &str) -> Vec<&str> {
        let words: Vec<String> = words(line).map(str::to_ascii_lowercase).collect();
        let mentioned = self.catalog.tables.iter().filter(|(name, _)| words.iter().any(|w| w == name));
        mentioned.flat_map(|(_, columns)| columns.iter().map(String::as_str)).collect()
    }

    /// Candidates for the word `prefix` before the cursor, given the text `before` it and the
    /// whole `line` (whose tables give the columns, wherever they are named).
    fn candidates(&self, line: &str, before: &str, prefix: &str) -> Vec<String> {
        let previous = words(before).last().map(str::to_ascii_lowercase);
        let first = before.trim_start();
        let lower = prefix.chars().all(|c| !c.is_ascii_uppercase());
        let names: Vec<String> = if first.is_empty() && prefix.starts_with('\\') {
            meta::COMMANDS.iter().map(|c| c.to_string()).collect()
        } else if first.starts_with("\\run ") {
            self.catalog.queries.clone()
        } else if first.starts_with("\\format ") {
            ["table", "csv", "json", "ndjson", "parquet"].map(String::from).to_vec()
        } else if first.starts_with("\\target ") {
            ["live", "core", "qmp"].map(String::from).to_vec()
        } else if first.starts_with("\\timing ") {
            ["on", "off"].map(String::from).to_vec()
        } else if first.starts_with("\\d ") || matches!(previous.as_deref(), Some("from" | "join")) {
            self.table_names().map(String::from).collect()
        } else {
            let keywords =
                ALL_KEYWORDS.iter().map(|k| if lower { k.to_ascii_lowercase() } else { k.to_string() });
            let columns = self.columns_in(line).into_iter().map(String::from);
            columns.chain(self.table_names().map(String::from)).chain(keywords).collect()
        };
        let mut matching: Vec<String> = Vec::new();
        for name in names {
            if name.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase())
                && !matching.contains(&name)
            {
                matching.push(name);
            }
        }
        matching
    }
}

/// The words of `text`: runs of letters, digits and `_`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

impl Completer for KqlHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let trimmed = before.trim_start();
        if trimmed.starts_with("\\i ") || trimmed.starts_with("\\o ") {
            return self.files.complete(line, pos, ctx);
        }
        let word_char = |c: char| {
            c.is_alphanumeric() || c == '_' || c == '\\' || (trimmed.starts_with("\\run ") && c == '-')
        };
        let start = before.rfind(|c: char| !word_char(c)).map_or(0, |i| i + 1);
        let prefix = &before[start..];
        let pairs = self
            .candidates(line, &before[..start], prefix)
            .into_iter()
            .map(|name| Pair { display: name.clone(), replacement: name })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for KqlHelper {
    type Hint = String;
}

impl Highlighter for KqlHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.colour || line.trim_start().starts_with('\\') {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight_sql(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.colour
    }
}

impl Validator for KqlHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if statement_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for KqlHelper {}

/// Whether `input` is ready to run: empty, a meta command, or SQL ending with `;`.
pub fn statement_complete(input: &str) -> bool {
    let text = input.trim();
    text.is_empty() || text.starts_with('\\') || text.ends_with(';')
}

const KEYWORD: &str = "\x1b[1;34m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[33m";
const COMMENT: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

/// `line` with ANSI colours: keywords, 'strings', numbers and -- comments.
fn highlight_sql(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let (token, colour) = if rest.starts_with("--") {
            (rest, Some(COMMENT))
        } else if c == '\'' {
            let end = rest[1..].find('\'').map_or(rest.len(), |i| i + 2);
            (&rest[..end], Some(STRING))
        } else if c.is_ascii_digit() {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            (&rest[..end], Some(NUMBER))
        } else if c.is_alphanumeric() || c == '_' {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..end];
            let keyword = ALL_KEYWORDS.binary_search(&word.to_ascii_uppercase().as_str()).is_ok();
            (word, keyword.then_some(KEYWORD))
        } else {
            (&rest[..c.len_utf8()], None)
        };
        match colour {
            Some(colour) => {
                out.push_str(colour);
                out.push_str(token);
                out.push_str(RESET);
            }
            None => out.push_str(token),
        }
        rest = &rest[token.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> KqlHelper {
        let catalog = Catalog {
            tables: vec![
                ("tcp_listeners".into(), vec!["local_port".into(), "local_addr".into(), "inode".into()]),
                ("proc_fds".into(), vec!["pid".into(), "inode".into()]),
            ],
            queries: vec!["ss-nlpt".into(), "ss-nlpt-all".into()],
        };
        KqlHelper::new(catalog, false)
    }

    #[test]
    fn columns_of_the_mentioned_tables_come_first() {
        let line = "select * from tcp_listeners where local_p";
        assert_eq!(
            helper().candidates(line, "select * from tcp_listeners where ", "local_p"),
            ["local_port"]
        );
        let found = helper().candidates("select p from proc_fds", "select ", "p");
        assert!(found.starts_with(&["pid".to_string()]), "{found:?}");
    }

    #[test]
    fn tables_after_from_meta_commands_after_a_backslash() {
        assert_eq!(helper().candidates("select * from tcp", "select * from ", "tcp"), ["tcp_listeners"]);
        assert!(helper().candidates("\\d", "", "\\d").contains(&"\\dt".to_string()));
        assert_eq!(helper().candidates("\\run ss-nlpt-", "\\run ", "ss-nlpt-"), ["ss-nlpt-all"]);
    }

    #[test]
    fn keywords_follow_the_case_typed() {
        assert!(helper().candidates("sel", "", "sel").contains(&"select".to_string()));
        assert!(helper().candidates("SEL", "", "SEL").contains(&"SELECT".to_string()));
    }

    #[test]
    fn statements_end_with_a_semicolon() {
        assert!(!statement_complete("select 1\n+ 1"));
        assert!(statement_complete("select 1\n+ 1;"));
        assert!(statement_complete("\\dt"));
    }

    #[test]
    fn highlighting_colours_keywords_strings_and_numbers_only() {
        let shown = highlight_sql("select 'a b', 42 from t");
        assert_eq!(
            shown.replace(KEYWORD, "<k>").replace(STRING, "<s>").replace(NUMBER, "<n>").replace(RESET, "/"),
            "<k>select/ <s>'a b'/, <n>42/ <k>from/ t"
        );
    }
}
