//! SQL functions kql adds: facts about the target that queries need, e.g. which network
//! namespace `ss` would show.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// A SQL function with its one-line description.
pub struct Function {
    /// The function, ready to register.
    pub udf: ScalarUDF,
    /// Its call form and what it returns, for the README and `kql tables`.
    pub doc: &'static str,
}

/// Every function kql adds.
pub fn functions() -> Vec<Function> {
    vec![kql_netns()]
}

/// `kql_netns()`: inode of the network namespace kql runs in, which is the one `ss` shows.
fn kql_netns() -> Function {
    let inode = kql_sources::netns::current_netns_inode().ok();
    let udf = create_udf(
        "kql_netns",
        vec![],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::UInt64(inode)))),
    );
    Function {
        udf,
        doc: "kql_netns() → BIGINT UNSIGNED: inode of the network namespace kql runs in (the one `ss` shows); NULL when it cannot be read",
    }
}
