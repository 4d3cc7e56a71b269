//! Bounded walks of the kernel's intrusive lists (`include/linux/list.h`,
//! `list_nulls.h`): `struct list_head`, `struct hlist_head` and `struct hlist_nulls_head`.
//! In all three the `next` pointer is the node's first member. A cycle that does not pass
//! the head, or a list longer than [`MAX_NODES`], is an error instead of a hang (memory of a
//! live kernel changes under the walk; a vmcore may be corrupt).
//!
//! The tolerant walks ([`list_nodes_tolerant`], [`hlist_chain`]) go past damage instead:
//! each link is checked the way `CONFIG_DEBUG_LIST` checks it (the next node's back link
//! must point at the node it came from, every pointer must be a kernel pointer), a bad link
//! ends the walk in that direction with a note naming the node, and a circular list is then
//! walked backwards from its head through `prev` to recover the nodes beyond the damage.

use std::collections::HashSet;

use crate::Memory;
use crate::net::is_kernel_pointer;
use crate::skipped::Skipped;
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
        if !is_kernel_pointer(node) {
            let message = format!("{what}: {node:#x} in a circular list is not a kernel pointer");
            return Err(Error::new(ErrorKind::BadData, message));
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
        if !is_kernel_pointer(node) {
            let message = format!("{what}: {node:#x} in a chain is not a kernel pointer");
            return Err(Error::new(ErrorKind::BadData, message));
        }
        guard.visit(node)?;
        nodes.push(node);
        node = mem.read_u64(node).map_err(|e| e.context(what))?;
    }
    Ok(nodes)
}

/// Offset of `prev` in `struct list_head` and of `pprev` in `hlist_node` / `hlist_nulls_node`.
const BACK_LINK: u64 = 8;

/// Nodes of a circular `struct list_head` list like [`list_nodes`], going past damage:
/// forward from the head through `next`, and if a link is bad, backward from the head
/// through `prev` until a node already found or another bad link. Each bad link is noted
/// in `skipped`; the nodes are in list order (those found backward last).
pub fn list_nodes_tolerant(mem: &Memory, head: u64, what: &str, skipped: &mut Skipped) -> Vec<u64> {
    let mut seen = HashSet::new();
    let forward = checked_links(mem, head, Direction::Forward, what, &mut seen);
    let Err((mut nodes, problem)) = forward else { return forward.unwrap_or_default() };
    skipped.note(problem);
    let mut backward = match checked_links(mem, head, Direction::Backward, what, &mut seen) {
        Ok(backward) => backward,
        Err((backward, problem)) => {
            skipped.note(problem);
            backward
        }
    };
    backward.reverse();
    nodes.extend(backward);
    nodes
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Forward,
    Backward,
}

/// The nodes from `head` one way round, each link checked against the node's back link;
/// stops at the head or a node in `seen`, else at a bad link (`Err` with the nodes so far
/// and what is wrong where).
fn checked_links(
    mem: &Memory,
    head: u64,
    direction: Direction,
    what: &str,
    seen: &mut HashSet<u64>,
) -> std::result::Result<Vec<u64>, (Vec<u64>, String)> {
    let (link, back) = match direction {
        Direction::Forward => (0, BACK_LINK),
        Direction::Backward => (BACK_LINK, 0),
    };
    let name = if direction == Direction::Forward { "next" } else { "prev" };
    let mut nodes = Vec::new();
    let mut from = head;
    loop {
        let node = match mem.read_u64(from + link) {
            Ok(node) => node,
            Err(e) => return Err((nodes, format!("{what}: {name} of {from:#x} cannot be read: {e}"))),
        };
        if node == head || (direction == Direction::Backward && seen.contains(&node)) {
            return Ok(nodes);
        }
        let bad = |why: String| format!("{what}: {name} of {from:#x} is {node:#x}, {why}");
        if !is_kernel_pointer(node) {
            return Err((nodes, bad("not a kernel pointer".into())));
        }
        match mem.read_u64(node + back) {
            Ok(back) if back == from => {}
            Ok(back) => return Err((nodes, bad(format!("whose back link is {back:#x}: a broken link")))),
            Err(e) => return Err((nodes, bad(format!("which cannot be read: {e}")))),
        }
        if !seen.insert(node) {
            return Err((nodes, bad("already visited: the list loops".into())));
        }
        if nodes.len() >= MAX_NODES {
            return Err((nodes, format!("{what}: more than {MAX_NODES} nodes; the list looks corrupt")));
        }
        nodes.push(node);
        from = node;
    }
}

/// How an `hlist` chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEnd {
    /// At NULL.
    Null,
    /// At an odd "nulls" marker.
    Nulls,
    /// At a bad link, described.
    Broken(String),
}

/// The nodes of the `hlist` or `hlist_nulls` chain whose head (a bucket's `first`) is at
/// `head`, each link checked against the next node's `pprev` (which must point at the `next`
/// it was reached through, or at the head), never visiting a node twice. Returns the nodes up
/// to the end or the first bad link, and how the chain ended.
pub fn hlist_chain(mem: &Memory, head: u64, what: &str) -> (Vec<u64>, ChainEnd) {
    let mut nodes = Vec::new();
    let mut seen = HashSet::new();
    let mut from = head;
    loop {
        let node = match mem.read_u64(from) {
            Ok(node) => node,
            Err(e) => {
                return (nodes, ChainEnd::Broken(format!("{what}: next of {from:#x} cannot be read: {e}")));
            }
        };
        if node == 0 {
            return (nodes, ChainEnd::Null);
        }
        if node & 1 == 1 {
            return (nodes, ChainEnd::Nulls);
        }
        let bad = |why: String| ChainEnd::Broken(format!("{what}: next of {from:#x} is {node:#x}, {why}"));
        if !is_kernel_pointer(node) {
            return (nodes, bad("not a kernel pointer".into()));
        }
        match mem.read_u64(node + BACK_LINK) {
            Ok(pprev) if pprev == from => {}
            Ok(pprev) => return (nodes, bad(format!("whose pprev is {pprev:#x}: a broken link"))),
            Err(e) => return (nodes, bad(format!("which cannot be read: {e}"))),
        }
        if !seen.insert(node) {
            return (nodes, bad("already visited: the chain loops".into()));
        }
        if nodes.len() >= MAX_NODES {
            return (nodes, bad(format!("more than {MAX_NODES} nodes: the chain looks corrupt")));
        }
        nodes.push(node);
        from = node;
    }
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
