//! Bounded walks of the kernel's intrusive lists (`include/linux/list.h`,
//! `list_nulls.h`): `struct list_head`, `struct hlist_head` and `struct hlist_nulls_head`.
//! In all three the `next` pointer is the node's first member. A cycle that does not pass
//! the head, or a list longer than [`MAX_NODES`], is an error instead of a hang (memory of a
//! live kernel changes under the walk; a vmcore may be corrupt).

use crate::Memory;
use kql_drgn::{Error, ErrorKind, Result};

/// The most nodes any one list walk follows.
pub const MAX_NODES: usize = 1 << 22;

/// Detects cycles with Brent's algorithm (constant memory) and runaway lists.
struct Guard<'a> {
    what: &'a str,
    checkpoint: u64,
    power: usize,
    since_checkpoint: usize,
    visited: usize,
}

impl<'a> Guard<'a> {
    fn new(what: &'a str) -> Self {
        Guard { what, checkpoint: 0, power: 1, since_checkpoint: 0, visited: 0 }
    }

    fn visit(&mut self, node: u64) -> Result<()> {
        if node == self.checkpoint {
            return Err(Error::new(
                ErrorKind::BadData,
                format!("{}: the list loops at {node:#x}", self.what),
            ));
        }
        self.visited += 1;
        if self.visited > MAX_NODES {
            let message = format!("{}: more than {MAX_NODES} nodes; the list looks corrupt", self.what);
            return Err(Error::new(ErrorKind::BadData, message));
        }
        self.since_checkpoint += 1;
        if self.since_checkpoint == self.power {
            self.checkpoint = node;
            self.power *= 2;
            self.since_checkpoint = 0;
        }
        Ok(())
    }
}

/// Nodes of a circular `struct list_head` list, the head at `head` excluded (`list_for_each`).
pub fn list_nodes(mem: &Memory, head: u64, what: &str) -> Result<Vec<u64>> {
    let mut guard = Guard::new(what);
    let mut nodes = Vec::new();
    let mut node = mem.read_u64(head).map_err(|e| e.context(what))?;
    while node != head {
        if node == 0 {
            return Err(Error::new(ErrorKind::BadData, format!("{what}: NULL in a circular list")));
        }
        guard.visit(node)?;
        nodes.push(node);
        node = mem.read_u64(node).map_err(|e| e.context(what))?;
    }
    Ok(nodes)
}

/// Nodes of an `hlist` or `hlist_nulls` chain starting at `first` (the head's `first`):
/// ends at NULL (`hlist_for_each`) or at a "nulls" marker, a pointer with bit 0 set
/// (`hlist_nulls_for_each`).
pub fn hlist_nodes(mem: &Memory, first: u64, what: &str) -> Result<Vec<u64>> {
    let mut guard = Guard::new(what);
    let mut nodes = Vec::new();
    let mut node = first;
    while node != 0 && node & 1 == 0 {
        guard.visit(node)?;
        nodes.push(node);
        node = mem.read_u64(node).map_err(|e| e.context(what))?;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Visits the nodes `next` yields from `start` until the guard objects or `steps` pass.
    fn walk(start: u64, next: impl Fn(u64) -> u64, steps: usize) -> Result<usize> {
        let mut guard = Guard::new("test list");
        let mut node = start;
        for visited in 0..steps {
            guard.visit(node)?;
            node = next(node);
            if node == 0 {
                return Ok(visited + 1);
            }
        }
        Ok(steps)
    }

    #[test]
    fn a_list_without_a_loop_passes() {
        assert_eq!(walk(8, |n| if n < 800 { n + 8 } else { 0 }, 1000).unwrap(), 100);
    }

    #[test]
    fn a_loop_that_misses_the_head_is_an_error_soon() {
        // 8 → 16 → … → 800 → 400 → … : a tail of 50 nodes, then a loop of 51.
        let error = walk(8, |n| if n < 800 { n + 8 } else { 400 }, 10_000).unwrap_err();
        assert!(error.message.contains("loops"), "{error}");
    }

    #[test]
    fn a_runaway_list_is_an_error() {
        let error = walk(8, |n| n + 8, MAX_NODES + 10).unwrap_err();
        assert!(error.message.contains("corrupt"), "{error}");
    }
}
