//! SQL functions kql adds: facts about the target that queries need, e.g. which network
//! namespace `ss` would show, and `ss_users`, the aggregate behind ss's Process column.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::ss_users::SsUsers;
use crate::target::Target;

/// A scalar or aggregate SQL function.
pub enum Udf {
    /// One value per row.
    Scalar(ScalarUDF),
    /// One value per group.
    Aggregate(AggregateUDF),
}

/// A SQL function with its one-line description.
pub struct Function {
    /// The function, ready to register.
    pub udf: Udf,
    /// Its call form and what it returns, for the README and `kql tables`.
    pub doc: &'static str,
}

/// Every function kql adds, answering for `target`.
pub fn functions(target: &Target) -> Vec<Function> {
    vec![kql_netns(target.own_netns()), ss_users()]
}

/// `ss_users(comm, pid, fd)`: the processes holding a socket, rendered as ss's Process column.
fn ss_users() -> Function {
    Function {
        udf: Udf::Aggregate(AggregateUDF::from(SsUsers::new())),
        doc: "ss_users(comm, pid, fd) → VARCHAR, aggregate: `users:((\"comm\",pid=P,fd=F),…)` as `ss -p` prints the holders of a socket, highest pid first; NULL for none",
    }
}

/// `kql_netns()`: inode of the network namespace kql runs in, which is the one `ss` shows;
/// NULL for a whole-kernel walk, so saved queries show every namespace there.
fn kql_netns(inode: Option<u64>) -> Function {
    let udf = create_udf(
        "kql_netns",
        vec![],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::UInt64(inode)))),
    );
    Function {
        udf: Udf::Scalar(udf),
        doc: "kql_netns() → BIGINT UNSIGNED: inode of the network namespace kql runs in (the one `ss` shows) when tables come from this host's netlink and procfs; NULL for a libdrgn walk (live, vmcore or guest), whose queries then span every namespace",
    }
}
