//! How deep a statement may nest, and the stack it is parsed and planned on.
//!
//! sqlparser builds a chain such as `a OR b OR c …` or `SELECT … UNION SELECT …` as a tree
//! one level deeper per term, without counting it against its recursion limit. DataFusion
//! then clones and types that tree recursively (its planning time grows with the square of
//! the depth) and dropping it recurses too, so a 10,000-term chain overflowed the stack.
//! Statements therefore run on a thread with [`STACK_BYTES`] of stack, and a tree deeper than
//! [`MAX_EXPR_DEPTH`] expressions or longer than [`MAX_SET_OPERATIONS`] set operations is
//! refused in one line — and taken apart piece by piece, so that even its drop stays shallow.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Table, Value, VisitMut, VisitorMut};

use crate::error::CliError;

/// Stack of the threads that parse, plan and run statements.
pub const STACK_BYTES: usize = 64 << 20;
/// Deepest expression tree planned (a chain of N `OR`s is N deep).
pub const MAX_EXPR_DEPTH: usize = 1_000;
/// Most set operations (`UNION`, `EXCEPT`, `INTERSECT`) chained in one query.
pub const MAX_SET_OPERATIONS: usize = 1_000;

/// Runs `work` on a thread with [`STACK_BYTES`] of stack and returns its result.
pub fn on_big_stack<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> Result<T, CliError> + Send + 'static,
) -> Result<T, CliError> {
    let thread = std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK_BYTES)
        .spawn(work)
        .map_err(|e| CliError::new(format!("cannot start a thread for {name}: {e}")))?;
    thread.join().unwrap_or_else(|_| Err(CliError::new(format!("{name} failed unexpectedly"))))
}

/// Fails if `statement` nests deeper than kql plans; a refused statement is dismantled here.
pub fn check(statement: Statement) -> Result<Statement, CliError> {
    let mut cutter = Cutter::default();
    let mut statement = statement;
    cutter.visit_statement(&mut statement);
    if cutter.expressions.is_empty() && cutter.set_chains.is_empty() {
        return Ok(statement);
    }
    drop(statement);
    let message = match cutter.set_chains.is_empty() {
        true => format!(
            "an expression nests deeper than {MAX_EXPR_DEPTH} levels (a long OR chain? \
             `x IN (…)` says the same in one level)"
        ),
        false => format!("a query chains more than {MAX_SET_OPERATIONS} UNION/EXCEPT/INTERSECT operations"),
    };
    cutter.dismantle();
    Err(CliError::new(message))
}

/// Cuts every subtree deeper than the limits out of the statement it visits and keeps it.
#[derive(Default)]
struct Cutter {
    depth: usize,
    expressions: Vec<Expr>,
    set_chains: Vec<SetExpr>,
}

impl Cutter {
    fn visit_statement(&mut self, statement: &mut Statement) {
        let _ = match statement {
            Statement::Statement(inner) => inner.visit(self),
            Statement::CopyTo(copy) => match &mut copy.source {
                CopyToSource::Query(query) => query.visit(self),
                CopyToSource::Relation(_) => ControlFlow::Continue(()),
            },
            Statement::Explain(explain) => {
                self.visit_statement(&mut explain.statement);
                ControlFlow::Continue(())
            }
            Statement::CreateExternalTable(_) | Statement::Reset(_) => ControlFlow::Continue(()),
        };
    }

    /// Drops what was cut without deep recursion: each piece is cut again before it goes.
    fn dismantle(&mut self) {
        loop {
            if let Some(mut expression) = self.expressions.pop() {
                self.depth = 0;
                let _ = expression.visit(self);
            } else if let Some(mut chain) = self.set_chains.pop() {
                while let SetExpr::SetOperation { left, mut right, .. } = chain {
                    self.depth = 0;
                    let _ = right.visit(self);
                    chain = *left;
                }
                self.depth = 0;
                let _ = chain.visit(self);
            } else {
                return;
            }
        }
    }
}

impl VisitorMut for Cutter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut chained = 0;
        let mut body = query.body.as_ref();
        while let SetExpr::SetOperation { left, .. } = body {
            chained += 1;
            body = left;
        }
        if chained > MAX_SET_OPERATIONS {
            let empty = SetExpr::Table(Box::new(Table { table_name: None, schema_name: None }));
            self.set_chains.push(*std::mem::replace(&mut query.body, Box::new(empty)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            self.expressions.push(std::mem::replace(expr, Expr::value(Value::Null)));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
