//! Key-column constraints extracted from SQL predicates, for scans that can do less work.
//!
//! DataFusion hands a scan physical predicates: `WHERE pid = 42` or `inode IN (…)` from the
//! query, and at run time the dynamic filter a hash join derives from its build side (for
//! `tcp_listeners JOIN proc_fds USING (inode)`, the inodes of the listeners). Only `=`, `IN`
//! and `AND` of those on a key column are understood; anything else constrains nothing.
//! Constraints only ever let a scan skip rows that cannot match: the engine still evaluates
//! every predicate on what the scan returns.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, Literal};
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;

/// For each constrained key column, the only values a matching row can have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyFilter(BTreeMap<String, HashSet<ScalarValue>>);

impl KeyFilter {
    /// Constraints implied by `predicate` on the columns named in `keys`. Dynamic filters are
    /// read as they are now, so call this when the scan starts, not when it is planned.
    pub fn from_predicate(predicate: &Arc<dyn PhysicalExpr>, keys: &[&str]) -> Self {
        let mut filter = KeyFilter::default();
        if let Ok(current) = snapshot_physical_expr(Arc::clone(predicate)) {
            filter.collect(&current, keys);
        }
        filter
    }

    /// Add the constraints of `other`; both must hold.
    pub fn and(&mut self, other: KeyFilter) {
        for (column, values) in other.0 {
            self.constrain(column, values);
        }
    }

    /// The constraints that hold when `self` or `other` holds: a column constrained on both
    /// sides may take a value of either side; a column constrained on one side only is free.
    fn or(mut self, other: KeyFilter) -> KeyFilter {
        let mut either = KeyFilter::default();
        for (column, values) in other.0 {
            if let Some(mut mine) = self.0.remove(&column) {
                mine.extend(values);
                either.0.insert(column, mine);
            }
        }
        either
    }

    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The allowed values of `column` converted to `T`, or `None` if it is unconstrained.
    /// Values that do not fit `T` cannot match a row of that type and are left out.
    pub fn values<T>(&self, column: &str) -> Option<HashSet<T>>
    where
        T: TryFrom<ScalarValue> + Eq + Hash + KeyType,
    {
        let values = self.0.get(column)?;
        Some(
            values
                .iter()
                .filter_map(|value| value.cast_to(&T::DATA_TYPE).ok())
                .filter_map(|value| T::try_from(value).ok())
                .collect(),
        )
    }

    /// The allowed values of `column` as SQL scalars, or `None` if it is unconstrained.
    pub fn scalars(&self, column: &str) -> Option<&HashSet<ScalarValue>> {
        self.0.get(column)
    }

    fn constrain(&mut self, column: String, values: HashSet<ScalarValue>) {
        match self.0.get_mut(&column) {
            Some(existing) => existing.retain(|value| values.contains(value)),
            None => {
                self.0.insert(column, values);
            }
        }
    }

    fn collect(&mut self, expr: &Arc<dyn PhysicalExpr>, keys: &[&str]) {
        if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
            match binary.op() {
                Operator::And => {
                    self.collect(binary.left(), keys);
                    self.collect(binary.right(), keys);
                }
                Operator::Or => {
                    let mut left = KeyFilter::default();
                    left.collect(binary.left(), keys);
                    let mut right = KeyFilter::default();
                    right.collect(binary.right(), keys);
                    self.and(left.or(right));
                }
                Operator::Eq => self.collect_equality(binary.left(), binary.right(), keys),
                _ => {}
            }
        } else if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
            self.collect_in_list(in_list, keys);
        }
    }

    fn collect_equality(
        &mut self,
        left: &Arc<dyn PhysicalExpr>,
        right: &Arc<dyn PhysicalExpr>,
        keys: &[&str],
    ) {
        let pair =
            key_column(left, keys).zip(literal(right)).or_else(|| key_column(right, keys).zip(literal(left)));
        if let Some((column, value)) = pair {
            self.constrain(column, HashSet::from([value]));
        }
    }

    fn collect_in_list(&mut self, in_list: &InListExpr, keys: &[&str]) {
        if in_list.negated() {
            return;
        }
        let Some(column) = key_column(in_list.expr(), keys) else {
            return;
        };
        let values: Option<HashSet<ScalarValue>> = in_list.list().iter().map(literal).collect();
        if let Some(values) = values {
            self.constrain(column, values);
        }
    }
}

/// Rust types a key column's values convert to, with the Arrow type they come from.
pub trait KeyType {
    /// The Arrow type literals are cast to before conversion.
    const DATA_TYPE: DataType;
}

impl KeyType for u64 {
    const DATA_TYPE: DataType = DataType::UInt64;
}

impl KeyType for i32 {
    const DATA_TYPE: DataType = DataType::Int32;
}

impl KeyType for u32 {
    const DATA_TYPE: DataType = DataType::UInt32;
}

impl KeyType for u16 {
    const DATA_TYPE: DataType = DataType::UInt16;
}

fn key_column(expr: &Arc<dyn PhysicalExpr>, keys: &[&str]) -> Option<String> {
    let column = expr.downcast_ref::<Column>()?;
    keys.contains(&column.name()).then(|| column.name().to_string())
}

fn literal(expr: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    let value = expr.downcast_ref::<Literal>()?.value();
    (!value.is_null()).then(|| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::{col, in_list, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("pid", DataType::Int32, false),
            Field::new("inode", DataType::UInt64, true),
            Field::new("comm", DataType::Utf8, false),
        ])
    }

    fn eq(column: &str, value: ScalarValue) -> Arc<dyn PhysicalExpr> {
        let column = col(column, &schema()).unwrap();
        Arc::new(BinaryExpr::new(column, Operator::Eq, lit(value)))
    }

    fn and(left: Arc<dyn PhysicalExpr>, right: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(left, Operator::And, right))
    }

    #[test]
    fn equality_and_in_list_on_keys_constrain() {
        let inodes =
            in_list(col("inode", &schema()).unwrap(), vec![lit(7u64), lit(9u64)], &false, &schema()).unwrap();
        let predicate = and(eq("pid", ScalarValue::Int32(Some(42))), inodes);
        let filter = KeyFilter::from_predicate(&predicate, &["pid", "inode"]);
        assert_eq!(filter.values::<i32>("pid"), Some(HashSet::from([42])));
        assert_eq!(filter.values::<u64>("inode"), Some(HashSet::from([7, 9])));
    }

    #[test]
    fn disjunctions_on_one_key_unite() {
        let either = Arc::new(BinaryExpr::new(
            eq("pid", ScalarValue::Int32(Some(1))),
            Operator::Or,
            and(eq("pid", ScalarValue::Int32(Some(2))), eq("inode", ScalarValue::UInt64(Some(3)))),
        )) as Arc<dyn PhysicalExpr>;
        let filter = KeyFilter::from_predicate(&either, &["pid", "inode"]);
        assert_eq!(filter.values::<i32>("pid"), Some(HashSet::from([1, 2])));
        assert_eq!(filter.values::<u64>("inode"), None, "inode is free when pid = 1");
    }

    #[test]
    fn non_keys_mixed_disjunctions_and_negations_constrain_nothing() {
        let on_comm = eq("comm", ScalarValue::from("sshd"));
        let either = Arc::new(BinaryExpr::new(
            eq("pid", ScalarValue::Int32(Some(1))),
            Operator::Or,
            eq("inode", ScalarValue::UInt64(Some(2))),
        )) as Arc<dyn PhysicalExpr>;
        let not_in = in_list(col("pid", &schema()).unwrap(), vec![lit(3i32)], &true, &schema()).unwrap();
        for predicate in [on_comm, either, not_in] {
            assert!(KeyFilter::from_predicate(&predicate, &["pid", "inode"]).is_empty());
        }
    }

    #[test]
    fn repeated_constraints_intersect() {
        let mut filter = KeyFilter::from_predicate(&eq("pid", ScalarValue::Int32(Some(1))), &["pid"]);
        filter.and(KeyFilter::from_predicate(&eq("pid", ScalarValue::Int32(Some(2))), &["pid"]));
        assert_eq!(filter.values::<i32>("pid"), Some(HashSet::new()));
    }
}
