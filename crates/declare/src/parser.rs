//! The declaration language's parser: sqlparser's tokenizer (with [`DeclarationDialect`]: C
//! identifiers, `@` a token of its own), then recursive descent over the tokens. Keywords are matched without
//! regard to case; every error names the line and column of the token it stopped at.
//!
//! ```text
//! declaration := CREATE KERNEL TABLE name ['doc'] [PARENT table [AS alias]]
//!                FROM walk COLUMNS '(' column {',' column} ')'
//!                {UNION FROM walk COLUMNS '(' name '=' expr {',' name '=' expr} ')'} [';']
//! walk        := chain {'|' chain}
//! chain       := step {THEN step}
//! step        := (LIST|HLIST|RBTREE) place OF ctype VIA designator
//!              | (XARRAY|IDR|PERCPU) place [OF ctype]
//!              | ARRAY place [COUNT expr] [OF ctype]
//!              | TREE place OF ctype VIA designator CHILDREN designator
//!              | CHAIN place OF ctype VIA designator
//! column      := name [sqltype] [KEY] ['?'] '=' expr ['doc']
//! expr        := and {'|' and}          (alternatives)
//! and         := shift {'&' shift};  shift := sum {('<<'|'>>') sum}
//! sum         := product {('+'|'-') product};  product := postfix {'*' postfix}
//! postfix     := primary {'.' name | '->' name | '[' (number|'*') ']'}
//! primary     := number | 'text' | NULL | name | '@' | '@index' | '@cpu' | '@depth' | '@parent'
//!              | CAST '(' expr AS ctype ['*'] ')' | function '(' args ')' | '(' expr ')'
//! args        := expr {',' expr} [OF ctype] [STRIP 'text'] [VIA designator]
//! ```

use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use kql_engine::ColumnType;

use crate::DeclareError;
use crate::ast::*;

/// Every declaration in `text` (one or more statements, each ending with `;` or the text).
pub fn parse(text: &str) -> Result<Vec<Declaration>, DeclareError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0, text };
    let mut declarations = Vec::new();
    while !parser.done() {
        declarations.push(parser.declaration()?);
    }
    Ok(declarations)
}

/// The byte offset in `text` of `line` and `column` (both from 1; columns count characters).
pub(crate) fn byte_offset(text: &str, line: u64, column: u64) -> usize {
    let mut lines = text.split_inclusive('\n');
    let before: usize = lines.by_ref().take(line.saturating_sub(1) as usize).map(str::len).sum();
    let line = lines.next().unwrap_or_default();
    let within: usize = line.chars().take(column.saturating_sub(1) as usize).map(char::len_utf8).sum();
    before + within
}

/// How the tokenizer reads declarations: identifiers as C writes them (`__sk_common`), and
/// `@` never part of one (`@index` is `@` then `index`).
#[derive(Debug)]
pub(crate) struct DeclarationDialect;

impl Dialect for DeclarationDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_'
    }
}

/// How deep expressions may nest (a bound on recursion, whatever the input).
const MAX_NESTING: usize = 64;

fn tokenize(text: &str) -> Result<Vec<TokenWithSpan>, DeclareError> {
    let tokens = Tokenizer::new(&DeclarationDialect, text)
        .tokenize_with_location()
        .map_err(|e| DeclareError::new(None, format!("cannot read the declaration: {e}")))?;
    Ok(tokens.into_iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect())
}

struct Parser<'t> {
    tokens: Vec<TokenWithSpan>,
    at: usize,
    text: &'t str,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.token)
    }

    fn pos(&self) -> Pos {
        match self.tokens.get(self.at).or(self.tokens.last()) {
            Some(t) => Pos { line: t.span.start.line, column: t.span.start.column },
            None => Pos::default(),
        }
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, DeclareError> {
        let found = match self.peek() {
            Some(token) => format!("found '{token}'"),
            None => "found the end".to_string(),
        };
        Err(DeclareError::new(Some(self.pos()), format!("{}, {found}", message.into())))
    }

    /// Whether the next token is the keyword `word`, consuming it if so.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let matches = matches!(self.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
        if matches {
            self.at += 1;
        }
        matches
    }

    fn keyword(&mut self, word: &str) -> Result<(), DeclareError> {
        match self.eat_keyword(word) {
            true => Ok(()),
            false => self.error(format!("expected {word}")),
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        let matches = self.peek() == Some(token);
        if matches {
            self.at += 1;
        }
        matches
    }

    fn expect(&mut self, token: &Token) -> Result<(), DeclareError> {
        match self.eat(token) {
            true => Ok(()),
            false => self.error(format!("expected '{token}'")),
        }
    }

    fn name(&mut self, what: &str) -> Result<String, DeclareError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = w.value.clone();
                self.at += 1;
                Ok(name)
            }
            _ => self.error(format!("expected {what}")),
        }
    }

    fn string(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(text)) => {
                let text = text.clone();
                self.at += 1;
                Some(text)
            }
            _ => None,
        }
    }

    fn offset(&self, pos: Pos) -> usize {
        byte_offset(self.text, pos.line, pos.column)
    }

    fn declaration(&mut self) -> Result<Declaration, DeclareError> {
        let at = self.pos();
        self.keyword("CREATE")?;
        self.keyword("KERNEL")?;
        self.keyword("TABLE")?;
        let name = self.name("the table's name")?;
        let doc = self.string().unwrap_or_default();
        let parent = self.parent()?;
        self.keyword("FROM")?;
        let mut walk = vec![self.chain()?];
        while self.eat(&Token::Pipe) {
            walk.push(self.chain()?);
        }
        self.keyword("COLUMNS")?;
        self.expect(&Token::LParen)?;
        let mut columns = vec![self.column()?];
        while self.eat(&Token::Comma) {
            columns.push(self.column()?);
        }
        self.expect(&Token::RParen)?;
        let union = self.union_parts()?;
        let end = match self.tokens.get(self.at - 1) {
            Some(t) => self.offset(Pos { line: t.span.end.line, column: t.span.end.column }),
            None => self.text.len(),
        };
        if !self.done() && !self.eat(&Token::SemiColon) {
            return self.error("expected ';' after the columns");
        }
        let text = format!("{};", self.text[self.offset(at)..end].trim());
        Ok(Declaration { name, doc, parent, walk, columns, union, text, at })
    }

    /// `{UNION FROM walk COLUMNS (name = expr, …)}`: each part's columns carry only their
    /// expressions (the first `COLUMNS` types and describes them).
    fn union_parts(&mut self) -> Result<Vec<UnionPart>, DeclareError> {
        let mut parts = Vec::new();
        loop {
            let at = self.pos();
            if !self.eat_keyword("UNION") {
                return Ok(parts);
            }
            self.keyword("FROM")?;
            let mut walk = vec![self.chain()?];
            while self.eat(&Token::Pipe) {
                walk.push(self.chain()?);
            }
            self.keyword("COLUMNS")?;
            self.expect(&Token::LParen)?;
            let mut columns = vec![self.union_column()?];
            while self.eat(&Token::Comma) {
                columns.push(self.union_column()?);
            }
            self.expect(&Token::RParen)?;
            parts.push(UnionPart { walk, columns, at });
        }
    }

    /// `name = expr`, a column of a `UNION` part.
    fn union_column(&mut self) -> Result<ColumnDecl, DeclareError> {
        let column = self.column()?;
        if column.sql_type.is_some() || column.key || column.optional || !column.doc.is_empty() {
            return Err(DeclareError::new(
                Some(column.at),
                format!(
                    "column {} of a UNION part: write only name = expr (types, KEY, ? and descriptions are the first COLUMNS')",
                    column.name
                ),
            ));
        }
        Ok(column)
    }

    fn parent(&mut self) -> Result<Option<ParentRef>, DeclareError> {
        let at = self.pos();
        if !self.eat_keyword("PARENT") {
            return Ok(None);
        }
        let table = self.name("the parent table's name")?;
        let alias = match self.eat_keyword("AS") {
            true => Some(self.name("an alias")?),
            false => None,
        };
        Ok(Some(ParentRef { table, alias, at }))
    }

    fn chain(&mut self) -> Result<Chain, DeclareError> {
        let mut steps = vec![self.step()?];
        while self.eat_keyword("THEN") {
            steps.push(self.step()?);
        }
        Ok(steps)
    }

    fn step(&mut self) -> Result<Step, DeclareError> {
        let at = self.pos();
        let kinds = [
            StepKind::List,
            StepKind::Hlist,
            StepKind::Rbtree,
            StepKind::Xarray,
            StepKind::Idr,
            StepKind::Array,
            StepKind::Percpu,
            StepKind::Tree,
            StepKind::Chain,
        ];
        let Some(kind) = kinds.into_iter().find(|kind| self.eat_keyword(kind.keyword())) else {
            return self.error(
                "expected a container: LIST, HLIST, RBTREE, XARRAY, IDR, ARRAY, PERCPU, TREE or CHAIN",
            );
        };
        let source = self.postfix(0)?;
        let count = match kind == StepKind::Array && self.eat_keyword("COUNT") {
            true => Some(self.sum(0)?),
            false => None,
        };
        let linked = matches!(
            kind,
            StepKind::List | StepKind::Hlist | StepKind::Rbtree | StepKind::Tree | StepKind::Chain
        );
        let of = match linked {
            true => {
                self.keyword("OF")?;
                Some(self.type_ref()?)
            }
            false if self.eat_keyword("OF") => Some(self.type_ref()?),
            false => None,
        };
        let via = match linked {
            true => {
                self.keyword("VIA")?;
                self.designator()?
            }
            false => Vec::new(),
        };
        let children = match kind {
            StepKind::Tree => {
                self.keyword("CHILDREN")?;
                self.designator()?
            }
            _ => Vec::new(),
        };
        Ok(Step { kind, source, of, via, count, children, at })
    }

    /// `a.b.c`: members of a struct, as `offsetof` takes them.
    fn designator(&mut self) -> Result<Vec<(String, Pos)>, DeclareError> {
        let mut parts = Vec::new();
        loop {
            let at = self.pos();
            parts.push((self.name("a member name")?, at));
            if !self.eat(&Token::Period) {
                return Ok(parts);
            }
        }
    }

    /// `struct name`, `union name`, `enum name` or a typedef, then an optional `*`.
    fn type_ref(&mut self) -> Result<TypeRef, DeclareError> {
        let at = self.pos();
        let tag = ["struct", "union", "enum"].into_iter().find(|tag| self.eat_keyword(tag));
        let name = self.name("a type name")?;
        let name = match tag {
            Some(tag) => format!("{tag} {name}"),
            None => name,
        };
        let pointer = self.eat(&Token::Mul);
        Ok(TypeRef { name, pointer, at })
    }

    fn column(&mut self) -> Result<ColumnDecl, DeclareError> {
        let at = self.pos();
        let name = self.name("a column name")?;
        let sql_type = self.sql_type()?;
        let key = self.eat_keyword("KEY");
        let optional = self.eat(&Token::Placeholder("?".into()));
        self.expect(&Token::Eq)?;
        let expr = self.expr(0)?;
        let doc = self.string().unwrap_or_default();
        Ok(ColumnDecl { name, sql_type, key, optional, expr, doc, at })
    }

    /// An SQL type, if one is written: `TEXT`, `BIGINT UNSIGNED`, `BOOLEAN`, …
    fn sql_type(&mut self) -> Result<Option<ColumnType>, DeclareError> {
        let types: &[(&str, ColumnType, Option<ColumnType>)] = &[
            ("TEXT", ColumnType::Utf8, None),
            ("VARCHAR", ColumnType::Utf8, None),
            ("BOOLEAN", ColumnType::Boolean, None),
            ("BOOL", ColumnType::Boolean, None),
            ("SMALLINT", ColumnType::UInt16, Some(ColumnType::UInt16)),
            ("INT", ColumnType::Int32, Some(ColumnType::UInt32)),
            ("INTEGER", ColumnType::Int32, Some(ColumnType::UInt32)),
            ("BIGINT", ColumnType::Int64, Some(ColumnType::UInt64)),
            ("TIMESTAMP", ColumnType::Timestamp, None),
        ];
        let Some(&(word, signed, unsigned)) = types.iter().find(|(word, ..)| self.eat_keyword(word)) else {
            return Ok(None);
        };
        if !self.eat_keyword("UNSIGNED") {
            if word == "SMALLINT" {
                return self.error("SMALLINT is only available as SMALLINT UNSIGNED");
            }
            return Ok(Some(signed));
        }
        match unsigned {
            Some(unsigned) => Ok(Some(unsigned)),
            None => self.error(format!("{word} has no UNSIGNED form")),
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, DeclareError> {
        match depth < MAX_NESTING {
            true => Ok(depth + 1),
            false => self.error(format!("expressions nest more than {MAX_NESTING} deep")),
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        let at = self.pos();
        let first = self.and(depth)?;
        if self.peek() != Some(&Token::Pipe) {
            return Ok(first);
        }
        let mut choices = vec![first];
        while self.eat(&Token::Pipe) {
            choices.push(self.and(depth)?);
        }
        Ok(Expr { kind: ExprKind::Alternatives(choices), at })
    }

    fn binary(
        &mut self,
        depth: usize,
        operators: &[(Token, BinOp)],
        operand: fn(&mut Self, usize) -> Result<Expr, DeclareError>,
    ) -> Result<Expr, DeclareError> {
        let mut left = operand(self, depth)?;
        'more: loop {
            for (token, op) in operators {
                if self.eat(token) {
                    let right = operand(self, depth)?;
                    let at = left.at;
                    left = Expr { kind: ExprKind::Binary(Box::new(left), *op, Box::new(right)), at };
                    continue 'more;
                }
            }
            return Ok(left);
        }
    }

    fn and(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        self.binary(depth, &[(Token::Ampersand, BinOp::And)], Self::shift)
    }

    fn shift(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        self.binary(depth, &[(Token::ShiftLeft, BinOp::Shl), (Token::ShiftRight, BinOp::Shr)], Self::sum)
    }

    fn sum(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        self.binary(depth, &[(Token::Plus, BinOp::Add), (Token::Minus, BinOp::Sub)], Self::product)
    }

    fn product(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        self.binary(depth, &[(Token::Mul, BinOp::Mul)], Self::postfix)
    }

    fn postfix(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        let depth = self.deeper(depth)?;
        let mut expr = self.primary(depth)?;
        loop {
            let at = expr.at;
            let kind = if self.eat(&Token::Period) {
                ExprKind::Member(Box::new(expr), self.name("a member name")?)
            } else if self.eat(&Token::Arrow) {
                ExprKind::Arrow(Box::new(expr), self.name("a member name")?)
            } else if self.eat(&Token::LBracket) {
                let index = match self.eat(&Token::Mul) {
                    true => None,
                    false => Some(self.unsigned()?),
                };
                self.expect(&Token::RBracket)?;
                ExprKind::Subscript(Box::new(expr), index)
            } else {
                return Ok(expr);
            };
            expr = Expr { kind, at };
        }
    }

    fn unsigned(&mut self) -> Result<u64, DeclareError> {
        match self.number()? {
            Some(n) if (0..=i128::from(u64::MAX)).contains(&n) => Ok(n as u64),
            _ => self.error("expected an index"),
        }
    }

    /// A decimal or `0x` number, if the next token is one.
    fn number(&mut self) -> Result<Option<i128>, DeclareError> {
        let parsed = match self.peek() {
            Some(Token::Number(text, _)) => text.parse::<i128>().ok(),
            Some(Token::HexStringLiteral(hex)) => i128::from_str_radix(hex, 16).ok(),
            _ => return Ok(None),
        };
        match parsed {
            Some(n) => {
                self.at += 1;
                Ok(Some(n))
            }
            None => self.error("expected an integer"),
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, DeclareError> {
        let at = self.pos();
        if let Some(n) = self.number()? {
            return Ok(Expr { kind: ExprKind::Number(n), at });
        }
        if let Some(text) = self.string() {
            return Ok(Expr { kind: ExprKind::Text(text), at });
        }
        if self.eat(&Token::AtSign) {
            return self.bound_name(at);
        }
        if self.eat(&Token::LParen) {
            let inner = self.expr(depth)?;
            self.expect(&Token::RParen)?;
            return Ok(inner);
        }
        if self.eat_keyword("CAST") {
            return self.cast(depth, at);
        }
        if self.eat_keyword("NULL") {
            return Ok(Expr { kind: ExprKind::Null, at });
        }
        let name = self.name("a member, a global or a function")?;
        if self.peek() == Some(&Token::LParen) {
            return self.call(&name, depth, at);
        }
        Ok(Expr { kind: ExprKind::Name(name), at })
    }

    /// What follows `@`: nothing (the object), `index`, `cpu`, `depth` or `parent`.
    fn bound_name(&mut self, at: Pos) -> Result<Expr, DeclareError> {
        let names = [
            ("index", ExprKind::Bound(BoundName::Index)),
            ("cpu", ExprKind::Bound(BoundName::Cpu)),
            ("depth", ExprKind::Bound(BoundName::Depth)),
            ("parent", ExprKind::Parent),
        ];
        let adjacent = self
            .tokens
            .get(self.at)
            .is_some_and(|t| t.span.start.line == at.line && t.span.start.column == at.column + 1);
        if adjacent && let Some(Token::Word(word)) = self.peek() {
            let word = word.value.clone();
            return match names.into_iter().find(|(name, _)| word.eq_ignore_ascii_case(name)) {
                Some((_, kind)) => {
                    self.at += 1;
                    Ok(Expr { kind, at })
                }
                None => self.error("expected @index, @cpu, @depth, @parent or @ alone"),
            };
        }
        Ok(Expr { kind: ExprKind::This, at })
    }

    fn cast(&mut self, depth: usize, at: Pos) -> Result<Expr, DeclareError> {
        self.expect(&Token::LParen)?;
        let inner = self.expr(depth)?;
        self.keyword("AS")?;
        let to = self.type_ref()?;
        self.expect(&Token::RParen)?;
        Ok(Expr { kind: ExprKind::Cast(Box::new(inner), to), at })
    }

    fn call(&mut self, name: &str, depth: usize, at: Pos) -> Result<Expr, DeclareError> {
        let Some(function) = Function::named(name) else {
            let known: Vec<&str> = Function::ALL.iter().map(|(n, _)| *n).collect();
            return self.error(format!("unknown function '{name}' (there are {})", known.join(", ")));
        };
        self.expect(&Token::LParen)?;
        let mut call =
            Call { function, args: vec![self.expr(depth)?], of: None, strip: None, via: Vec::new() };
        loop {
            if self.eat(&Token::RParen) {
                break;
            } else if self.eat_keyword("OF") {
                call.of = Some(self.type_ref()?);
            } else if self.eat_keyword("STRIP") {
                call.strip =
                    Some(self.string().map_or_else(|| self.error("expected 'PREFIX' after STRIP"), Ok)?);
            } else if self.eat_keyword("VIA") {
                call.via = self.designator()?;
            } else if self.eat(&Token::Comma) {
                if !self.eat_keyword("STRIP") {
                    call.args.push(self.expr(depth)?);
                    continue;
                }
                call.strip =
                    Some(self.string().map_or_else(|| self.error("expected 'PREFIX' after STRIP"), Ok)?);
            } else {
                return self.error(format!("expected ',' or ')' in {name}()"));
            }
        }
        if !call.via.is_empty() && function != Function::First {
            return Err(DeclareError::new(Some(at), format!("{name}(): VIA is for first() only")));
        }
        let (least, most) = function.arity();
        if !(least..=most).contains(&call.args.len()) {
            let want = if least == most { least.to_string() } else { format!("{least} to {most}") };
            return Err(DeclareError::new(
                Some(at),
                format!("{name}() takes {want} arguments, not {}", call.args.len()),
            ));
        }
        Ok(Expr { kind: ExprKind::Call(call), at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_declaration_parses_with_alternatives_options_and_docs() {
        let text = "-- modules\nCREATE KERNEL TABLE m 'Modules'\nFROM LIST modules OF struct module VIA list\n\
                    COLUMNS (name TEXT KEY = name 'its name', size BIGINT UNSIGNED = core_layout.size | sum(mem[*].size),\n\
                    refcount ? = refcnt.counter - 1, state = enum(state STRIP 'MODULE_STATE_'));";
        let declaration = parse(text).unwrap().remove(0);
        assert_eq!((declaration.name.as_str(), declaration.doc.as_str()), ("m", "Modules"));
        assert_eq!(declaration.at, Pos { line: 2, column: 1 });
        assert!(declaration.text.starts_with("CREATE KERNEL TABLE m") && declaration.text.ends_with(");"));
        let [name, size, refcount, state] = &declaration.columns[..] else { panic!("four columns") };
        assert!(name.key && name.sql_type == Some(ColumnType::Utf8) && name.doc == "its name");
        assert_eq!(size.sql_type, Some(ColumnType::UInt64));
        assert!(matches!(&size.expr.kind, ExprKind::Alternatives(choices) if choices.len() == 2));
        assert!(refcount.optional && refcount.sql_type.is_none());
        assert!(
            matches!(&state.expr.kind, ExprKind::Call(call) if call.strip.as_deref() == Some("MODULE_STATE_"))
        );
        let step = &declaration.walk[0][0];
        assert_eq!((step.kind, step.of.as_ref().unwrap().name.as_str()), (StepKind::List, "struct module"));
    }

    #[test]
    fn chains_parents_and_bound_names_parse() {
        let text = "CREATE KERNEL TABLE t PARENT p AS n FROM PERCPU timer_bases THEN ARRAY @ THEN \
                    HLIST @ OF struct timer_list VIA __sk_common.entry COLUMNS (cpu = @cpu, i = @index, x = n.a->b[3] << 2)";
        let declaration = parse(text).unwrap().remove(0);
        assert_eq!(declaration.parent.unwrap().alias.as_deref(), Some("n"));
        let kinds: Vec<StepKind> = declaration.walk[0].iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [StepKind::Percpu, StepKind::Array, StepKind::Hlist]);
        assert!(matches!(declaration.walk[0][1].source.kind, ExprKind::This));
        assert!(matches!(declaration.columns[0].expr.kind, ExprKind::Bound(BoundName::Cpu)));
        assert!(matches!(declaration.columns[2].expr.kind, ExprKind::Binary(_, BinOp::Shl, _)));
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        let cases = [
            (
                "CREATE KERNEL TABLE t FROM LIST modules VIA list COLUMNS (a = b)",
                "line 1, column 41: expected OF",
            ),
            ("CREATE KERNEL TABLE t\nFROM QUEUE x COLUMNS (a = b)", "line 2, column 6: expected a container"),
            (
                "CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = )",
                "expected a member, a global or a function",
            ),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = nope(b))", "unknown function 'nope'"),
            (
                "CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = d_path(b))",
                "d_path() takes 2 arguments",
            ),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a SMALLINT = b)", "SMALLINT UNSIGNED"),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = @nope)", "expected @index"),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = b[x])", "expected an index"),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = b) garbage", "expected ';'"),
            ("CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = 'unterminated)", "cannot read"),
        ];
        for (text, expected) in cases {
            let error = error_of(text);
            assert!(error.contains(expected), "{text}\n  gave: {error}\n  wanted: {expected}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!(
            "CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = {}b{})",
            "(".repeat(500),
            ")".repeat(500)
        );
        assert!(error_of(&deep).contains("nest more than"));
    }

    #[test]
    fn chains_unions_null_and_first_parse() {
        let text = "CREATE KERNEL TABLE a PARENT d AS d FROM CHAIN d.ip_ptr->ifa_list OF struct in_ifaddr VIA ifa_next \
                    COLUMNS (f TEXT = 'inet' 'family', m INT = if(first(u OF struct adj VIA list).master, 1, 0), \
                    s TEXT = enum(x, 'global', 200, 'site')) \
                    UNION FROM LIST d.ip6_ptr->addr_list OF struct inet6_ifaddr VIA if_list \
                    COLUMNS (f = 'inet6', m = NULL, s = ipv6(addr));";
        let declaration = parse(text).unwrap().remove(0);
        assert_eq!(declaration.walk[0][0].kind, StepKind::Chain);
        assert!(declaration.text.ends_with("s = ipv6(addr));"), "{}", declaration.text);
        let [part] = &declaration.union[..] else { panic!("one UNION part") };
        assert_eq!(part.walk[0][0].kind, StepKind::List);
        assert!(matches!(part.columns[1].expr.kind, ExprKind::Null));
        let ExprKind::Call(condition) = &declaration.columns[1].expr.kind else { panic!("if()") };
        assert_eq!(condition.function, Function::If);
        let ExprKind::Member(first, _) = &condition.args[0].kind else { panic!("first(…).master") };
        assert!(
            matches!(&first.kind, ExprKind::Call(c) if c.function == Function::First && c.via[0].0 == "list")
        );
        let typed_part = text.replace("m = NULL", "m INT = NULL");
        assert!(error_of(&typed_part).contains("column m of a UNION part: write only name = expr"));
        let via = "CREATE KERNEL TABLE t FROM IDR x OF struct a COLUMNS (a = enum(b VIA c))";
        assert!(error_of(via).contains("enum(): VIA is for first() only"));
    }

    #[test]
    fn every_prefix_of_a_declaration_fails_cleanly() {
        let text = "CREATE KERNEL TABLE t 'd' PARENT p AS n FROM ARRAY n.a COUNT n.c + 1 OF struct s \
                    | XARRAY x OF struct s COLUMNS (a INT KEY ? = enum(b OF enum e STRIP 'E_') 'doc', c = CAST(d AS struct s *)->e);";
        assert!(parse(text).is_ok());
        for end in (0..text.len()).filter(|&end| text.is_char_boundary(end)) {
            let _ = parse(&text[..end]);
        }
    }
}
