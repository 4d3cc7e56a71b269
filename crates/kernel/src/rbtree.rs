//! Bounded in-order walks of the kernel's red-black trees (`include/linux/rbtree.h`,
//! `rbtree_types.h`): `struct rb_root { struct rb_node *rb_node; }`, the
//! `struct rb_root_cached` that adds `rb_leftmost`, and `struct rb_node { unsigned long
//! __rb_parent_color; struct rb_node *rb_right, *rb_left; }`, whose parent pointer shares
//! its word with the colour (bit 0; bit 1 is unused). The layout has not changed since
//! 2.6; the member offsets are still looked up (DWARF or BTF), never assumed. Every kernel
//! kql reads (5.10 to 6.18) is handled alike.
//!
//! Like `rb_first()`/`rb_next()`, the walk yields nodes leftmost first. Memory of a live
//! kernel changes under the walk and a vmcore may be corrupt, so it is bounded: at most
//! [`MAX_NODES`] nodes, at most [`MAX_DEPTH`] deep, every child's parent pointer must name
//! the node it hangs from (the root's must be NULL), and no node may be reached twice.

use std::collections::HashSet;

use kql_drgn::{Error, ErrorKind, Field, Result};

use crate::list::MAX_NODES;
use crate::{Memory, Types};

/// The deepest node a walk accepts: a red-black tree of n nodes is at most 2·log2(n+1)
/// deep, under 48 for the 2^22 nodes of [`MAX_NODES`].
pub const MAX_DEPTH: usize = 128;

/// Offsets of `struct rb_node`'s members, looked up once.
#[derive(Debug, Clone)]
pub struct RbTree {
    parent_color: Field,
    right: Field,
    left: Field,
    /// Bytes read per node: up to the end of the last of the three members.
    span: usize,
}

/// What one node says about its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Links {
    /// `__rb_parent_color` without the colour bits.
    parent: u64,
    left: u64,
    right: u64,
}

impl RbTree {
    /// Looks up `struct rb_node`.
    pub fn new(types: &Types) -> Result<RbTree> {
        let node = types.find_type("struct rb_node")?;
        let field = |name: &str| -> Result<Field> {
            let field = node.field(name).map_err(|e| e.context("struct rb_node"))?;
            if field.size != 8 || field.bits.is_some() {
                let message = format!("struct rb_node: {name} is {} bytes, not a 64-bit word", field.size);
                return Err(Error::new(ErrorKind::Type, message));
            }
            Ok(field)
        };
        let (parent_color, right, left) =
            (field("__rb_parent_color")?, field("rb_right")?, field("rb_left")?);
        let span = [parent_color, right, left].iter().map(Field::end).max().unwrap_or(0);
        Ok(RbTree { parent_color, right, left, span })
    }

    /// Nodes (`struct rb_node` addresses) of the tree whose root node is `root_node`
    /// (`rb_root.rb_node`; 0 for an empty tree), in order: leftmost first, like
    /// `rb_first()` then `rb_next()`. One read per node. A corrupt tree — a parent pointer
    /// that does not match, a node reached twice, a misaligned pointer, more than
    /// [`MAX_NODES`] nodes or deeper than [`MAX_DEPTH`] — is a `BadData` error naming `what`.
    pub fn nodes(&self, mem: &Memory, root_node: u64, what: &str) -> Result<Vec<u64>> {
        in_order(root_node, what, MAX_NODES, |node| {
            let bytes =
                mem.bytes(node, self.span).map_err(|e| e.context(format!("{what}: rb_node at {node:#x}")))?;
            Ok(Links {
                parent: self.parent_color.read_u64(&bytes)? & !3,
                left: self.left.read_u64(&bytes)?,
                right: self.right.read_u64(&bytes)?,
            })
        })
    }
}

/// A `BadData` error about the tree `what`.
fn corrupt(what: &str, message: String) -> Error {
    Error::new(ErrorKind::BadData, format!("{what}: {message}; the red-black tree looks corrupt"))
}

/// The in-order walk of the tree at `root` of at most `limit` nodes, reading each node's
/// links with `read`.
fn in_order(
    root: u64,
    what: &str,
    limit: usize,
    mut read: impl FnMut(u64) -> Result<Links>,
) -> Result<Vec<u64>> {
    let mut nodes = Vec::new();
    let mut seen = HashSet::new();
    // Nodes whose left subtree is being walked: the node, its right child and its depth.
    let mut pending: Vec<(u64, u64, usize)> = Vec::new();
    // Goes down the left spine from `node` (at `depth`, hanging from `parent`).
    let mut descend =
        |mut node: u64, mut parent: u64, mut depth: usize, pending: &mut Vec<_>| -> Result<()> {
            while node != 0 {
                if depth > MAX_DEPTH {
                    return Err(corrupt(what, format!("rb_node {node:#x} is deeper than {MAX_DEPTH}")));
                }
                if !node.is_multiple_of(8) {
                    return Err(corrupt(
                        what,
                        format!("rb_node pointer {node:#x} below {parent:#x} is misaligned"),
                    ));
                }
                if !seen.insert(node) {
                    return Err(corrupt(what, format!("rb_node {node:#x} is reached twice")));
                }
                if seen.len() > limit {
                    return Err(corrupt(what, format!("more than {limit} nodes")));
                }
                let links = read(node)?;
                if links.parent != parent {
                    let message = format!(
                        "rb_node {node:#x} names {:#x} as its parent, but hangs from {parent:#x}",
                        links.parent
                    );
                    return Err(corrupt(what, message));
                }
                pending.push((node, links.right, depth));
                (parent, node, depth) = (node, links.left, depth + 1);
            }
            Ok(())
        };
    descend(root, 0, 1, &mut pending)?;
    while let Some((node, right, depth)) = pending.pop() {
        nodes.push(node);
        descend(right, node, depth + 1, &mut pending)?;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A tree in a map from node address to links.
    struct Tree(HashMap<u64, Links>);

    impl Tree {
        /// The balanced binary search tree of nodes `lo..=hi` (addresses are keys × 8),
        /// hanging from `parent`; returns its root.
        fn balanced(&mut self, lo: u64, hi: u64, parent: u64) -> u64 {
            if lo > hi {
                return 0;
            }
            let mid = (lo + hi) / 2;
            let node = mid * 8;
            let left = if mid > lo { self.balanced(lo, mid - 1, node) } else { 0 };
            let right = self.balanced(mid + 1, hi, node);
            self.0.insert(node, Links { parent, left, right });
            node
        }

        fn walk(&self, root: u64) -> Result<Vec<u64>> {
            self.walk_at_most(root, MAX_NODES)
        }

        fn walk_at_most(&self, root: u64, limit: usize) -> Result<Vec<u64>> {
            in_order(root, "test tree", limit, |node| {
                self.0.get(&node).copied().ok_or_else(|| Error::new(ErrorKind::Fault, format!("{node:#x}")))
            })
        }
    }

    fn balanced(n: u64) -> (Tree, u64) {
        let mut tree = Tree(HashMap::new());
        let root = tree.balanced(1, n, 0);
        (tree, root)
    }

    #[test]
    fn a_tree_is_walked_in_order() {
        let (tree, root) = balanced(1000);
        assert_eq!(tree.walk(root).unwrap(), (1..=1000).map(|k| k * 8).collect::<Vec<_>>());
        assert_eq!(tree.walk(0).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn a_wrong_parent_pointer_is_an_error() {
        let (mut tree, root) = balanced(100);
        tree.0.get_mut(&(10 * 8)).unwrap().parent = 8;
        let error = tree.walk(root).unwrap_err();
        assert!(error.kind == ErrorKind::BadData && error.message.contains("0x50 names 0x8"), "{error}");
        // The root must hang from nothing.
        let (mut tree, root) = balanced(3);
        tree.0.get_mut(&root).unwrap().parent = 8;
        assert!(tree.walk(root).unwrap_err().message.contains("parent"));
    }

    #[test]
    fn a_node_reached_twice_is_an_error() {
        // Node 8's both children are node 16, whose parent is 8: parent checks pass.
        let mut tree = Tree(HashMap::new());
        tree.0.insert(8, Links { parent: 0, left: 16, right: 16 });
        tree.0.insert(16, Links { parent: 8, left: 0, right: 0 });
        let error = tree.walk(8).unwrap_err();
        assert!(error.message.contains("twice"), "{error}");
    }

    #[test]
    fn a_loop_is_an_error() {
        // 8 → 16 → 8 …: 16's left is 8 again, and 8's parent (16) does not match.
        let mut tree = Tree(HashMap::new());
        tree.0.insert(8, Links { parent: 0, left: 16, right: 0 });
        tree.0.insert(16, Links { parent: 8, left: 8, right: 0 });
        assert!(tree.walk(8).unwrap_err().kind == ErrorKind::BadData);
    }

    #[test]
    fn a_too_deep_tree_is_an_error() {
        // A chain of left children: fine at MAX_DEPTH, an error one deeper.
        let chain = |depth: u64| {
            let mut tree = Tree(HashMap::new());
            for k in 1..=depth {
                let left = if k < depth { (k + 1) * 8 } else { 0 };
                tree.0.insert(k * 8, Links { parent: (k - 1) * 8, left, right: 0 });
            }
            tree
        };
        assert_eq!(chain(MAX_DEPTH as u64).walk(8).unwrap().len(), MAX_DEPTH);
        let error = chain(MAX_DEPTH as u64 + 1).walk(8).unwrap_err();
        assert!(error.message.contains("deeper"), "{error}");
    }

    #[test]
    fn a_tree_larger_than_the_limit_is_an_error() {
        let (tree, root) = balanced(100);
        assert_eq!(tree.walk_at_most(root, 100).unwrap().len(), 100);
        let error = tree.walk_at_most(root, 99).unwrap_err();
        assert!(error.message.contains("more than 99 nodes"), "{error}");
    }

    #[test]
    fn a_misaligned_pointer_is_an_error() {
        let mut tree = Tree(HashMap::new());
        tree.0.insert(8, Links { parent: 0, left: 0, right: 0x13 });
        assert!(tree.walk(8).unwrap_err().message.contains("misaligned"));
    }

    #[test]
    fn a_read_failure_is_passed_on() {
        let mut tree = Tree(HashMap::new());
        tree.0.insert(8, Links { parent: 0, left: 0x1000, right: 0 });
        assert_eq!(tree.walk(8).unwrap_err().kind, ErrorKind::Fault);
    }
}
