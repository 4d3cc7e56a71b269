//! Kernel tables declared at run time: `CREATE KERNEL TABLE` over any kernel list, tree or
//! array, queried at once, with no Rust and no rebuild.
//!
//! - [`ast`]: what a declaration says, as written;
//! - [`parser`]: its text to an [`ast::Declaration`] (sqlparser's tokenizer, then recursive
//!   descent);
//! - [`bind`]: a declaration bound to one kernel's types — every symbol, type and member
//!   looked up once, offsets computed — as a [`bind::Plan`] of plain data;
//! - [`walk`]: a plan run over the kernel's memory, bounded and read-only, into rows.
//!
//! [`statements`] splits a session's text into SQL for DataFusion and the kernel-table
//! statements (`CREATE KERNEL TABLE`, `DROP KERNEL TABLE`) kql runs itself.

pub mod ast;
pub mod bind;
mod column;
mod eval;
mod memo;
pub mod parser;
mod reader;
mod span;
pub mod walk;

use std::fmt;

use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

pub use ast::{Declaration, Pos};

/// A declaration that cannot be read or bound: one line, pointing at where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareError {
    /// Where in the declaration, when known.
    pub at: Option<Pos>,
    /// What is wrong.
    pub message: String,
}

impl DeclareError {
    /// An error at `at`.
    pub fn new(at: Option<Pos>, message: impl Into<String>) -> Self {
        DeclareError { at, message: message.into() }
    }
}

impl fmt::Display for DeclareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeclareError {}

/// One statement of a session's text.
#[derive(Debug)]
pub enum Statement {
    /// `CREATE KERNEL TABLE …`.
    Create(Declaration),
    /// `DROP KERNEL TABLE [IF EXISTS] name`.
    Drop {
        /// The table.
        name: String,
        /// `IF EXISTS` was written.
        if_exists: bool,
    },
    /// Anything else: SQL for DataFusion, as written.
    Sql(String),
}

/// The statements of `text`, split at top-level `;`.
pub fn statements(text: &str) -> Result<Vec<Statement>, DeclareError> {
    let tokens = Tokenizer::new(&parser::DeclarationDialect, text)
        .tokenize_with_location()
        .map_err(|e| DeclareError::new(None, e.to_string()))?;
    let mut pieces = Vec::new();
    let mut piece: Vec<&Token> = Vec::new();
    let mut start = 0;
    for token in &tokens {
        if token.token == Token::SemiColon {
            let end = parser::byte_offset(text, token.span.start.line, token.span.start.column);
            pieces.push((std::mem::take(&mut piece), &text[start..end]));
            start = end + 1;
        } else if !matches!(token.token, Token::Whitespace(_)) {
            piece.push(&token.token);
        }
    }
    pieces.push((piece, &text[start.min(text.len())..]));
    pieces
        .into_iter()
        .filter(|(words, _)| !words.is_empty())
        .map(|(words, sql)| statement(&words, sql))
        .collect()
}

fn statement(words: &[&Token], sql: &str) -> Result<Statement, DeclareError> {
    let is = |i: usize, word: &str| matches!(words.get(i), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word));
    if is(0, "CREATE") && is(1, "KERNEL") {
        let mut declarations = parser::parse(sql)?;
        return Ok(Statement::Create(declarations.remove(0)));
    }
    if !(is(0, "DROP") && is(1, "KERNEL")) {
        return Ok(Statement::Sql(sql.to_string()));
    }
    let if_exists = is(3, "IF") && is(4, "EXISTS");
    let name_at = if if_exists { 5 } else { 3 };
    match (is(2, "TABLE"), words.get(name_at), words.len() == name_at + 1) {
        (true, Some(Token::Word(name)), true) => Ok(Statement::Drop { name: name.value.clone(), if_exists }),
        _ => Err(DeclareError::new(None, "expected DROP KERNEL TABLE [IF EXISTS] name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_top_level_semicolons() {
        let text = "CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = 'x;y');\n\
                    select ';' from t; -- a comment; still a comment\n DROP KERNEL TABLE IF EXISTS t; drop kernel table u";
        let statements = statements(text).unwrap();
        assert_eq!(statements.len(), 4, "{statements:?}");
        assert!(matches!(&statements[0], Statement::Create(d) if d.name == "t"));
        assert!(matches!(&statements[1], Statement::Sql(sql) if sql.trim() == "select ';' from t"));
        assert!(matches!(&statements[2], Statement::Drop { name, if_exists: true } if name == "t"));
        assert!(matches!(&statements[3], Statement::Drop { name, if_exists: false } if name == "u"));
    }

    #[test]
    fn a_malformed_drop_is_an_error() {
        assert!(statements("DROP KERNEL TABLE").is_err());
        assert!(statements("DROP KERNEL TABLE a b").is_err());
        assert!(matches!(&statements("drop table t").unwrap()[0], Statement::Sql(_)));
    }
}
