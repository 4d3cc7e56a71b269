//! Bounded walks and lookups of XArrays (`include/linux/xarray.h`, `lib/xarray.c`):
//! `struct xarray { spinlock_t xa_lock; gfp_t xa_flags; void *xa_head; }` and its nodes,
//! `struct xa_node { unsigned char shift, offset, …; struct xa_node *parent; …; void
//! *slots[XA_CHUNK_SIZE]; … }`. Since 4.20 the radix tree is the same structure
//! (`#define radix_tree_root xarray`), so an IDR's `idr_rt` is read here too. Every kernel kql
//! reads (5.10 to 6.18) has `xa_head`; the member offsets and `XA_CHUNK_SIZE` (the length
//! of `slots`: 64, or 16 under `CONFIG_BASE_SMALL`) come from the types, not the version.
//!
//! An entry is a pointer (low bits `00`), a value (bit 0 set, `xa_is_value`) or internal
//! (low bits `10`): a node pointer (`xa_is_node`: above 4096), a sibling of a multi-index
//! entry (`xa_is_sibling`: below `XA_CHUNK_SIZE - 1`), or a retry or zero entry. Only
//! pointers are yielded; values and internal entries are skipped as `xa_for_each` without
//! the advanced API does (zero entries) and as callers of pointer arrays want (values).
//!
//! Memory of a live kernel changes under the walk and a vmcore may be corrupt, so walks are
//! bounded: each node is read once, a child's `shift` must be its parent's less
//! `XA_CHUNK_SHIFT`, the root's must leave at most 64 index bits (11 levels of 6 bits), a
//! child's `parent` and `offset` must name the node and slot it hangs from (the root's
//! `parent` must be NULL), and at most [`MAX_NODES`] nodes and entries are visited.

use std::borrow::Cow;

use kql_drgn::{Error, ErrorKind, Field, Result};

use crate::list::MAX_NODES;
use crate::{Layout, Memory, Types};

/// Internal entries above this are node pointers (`xa_is_node`).
const NODE_MIN: u64 = 4096;

/// Offsets of `struct xarray` and `struct xa_node`, looked up once.
#[derive(Debug, Clone)]
pub struct XArray {
    head: Field,
    node: Layout,
    /// `XA_CHUNK_SHIFT`: log2 of the number of slots per node.
    chunk_shift: u32,
}

/// Member indexes of [`XArray::node`].
mod n {
    pub const SHIFT: usize = 0;
    pub const OFFSET: usize = 1;
    pub const PARENT: usize = 2;
    pub const SLOTS: usize = 3;
}

/// One `struct xa_node` as read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    shift: u64,
    offset: u64,
    parent: u64,
    slots: Vec<u64>,
}

/// What an entry of a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Empty,
    /// A pointer: what the array stores.
    Pointer(u64),
    /// A child node (the entry less its tag).
    Node(u64),
    /// The canonical slot of a multi-index entry.
    Sibling(u64),
    /// A value, retry or zero entry, or another internal entry.
    Other,
}

impl Entry {
    fn of(entry: u64, chunk_size: u64) -> Entry {
        match entry & 3 {
            _ if entry == 0 => Entry::Empty,
            0 => Entry::Pointer(entry),
            2 if entry > NODE_MIN => Entry::Node(entry - 2),
            2 if entry >> 2 < chunk_size - 1 => Entry::Sibling(entry >> 2),
            _ => Entry::Other,
        }
    }
}

impl XArray {
    /// Looks up `struct xarray` and `struct xa_node`.
    pub fn new(types: &Types) -> Result<XArray> {
        let head =
            types.find_type("struct xarray")?.field("xa_head").map_err(|e| e.context("struct xarray"))?;
        let node = Layout::new(types, "struct xa_node", &["shift", "offset", "parent", "slots"], &[])?;
        let slots = node.field(n::SLOTS).expect("slots is not optional");
        let chunk_size = slots.size / 8;
        if head.size != 8 || !slots.size.is_multiple_of(8) || !chunk_size.is_power_of_two() || chunk_size < 4
        {
            let message = format!(
                "struct xa_node: {} bytes of slots (and an xa_head of {}) are no XArray kql knows",
                slots.size, head.size
            );
            return Err(Error::new(ErrorKind::Type, message));
        }
        Ok(XArray { head, node, chunk_shift: chunk_size.trailing_zeros() })
    }

    /// Every pointer entry `(index, entry)` of the XArray at `xa`, in index order
    /// (`xa_for_each`): values, zero, retry and sibling entries skipped; a multi-index entry
    /// once, at its first index. A corrupt array is a `BadData` error naming `what`.
    pub fn entries(&self, mem: &Memory, xa: u64, what: &str) -> Result<Vec<(u64, u64)>> {
        let head = self.head(mem, xa, what)?;
        Walk { chunk_shift: self.chunk_shift, what, read: |node| self.read_node(mem, node, what) }
            .entries(head, MAX_NODES)
    }

    /// The pointer entry at `index` of the XArray at `xa` (`xa_load`); `None` if there is
    /// none or it is a value or an internal entry. Checks the nodes it passes as
    /// [`XArray::entries`] does.
    pub fn load(&self, mem: &Memory, xa: u64, index: u64, what: &str) -> Result<Option<u64>> {
        let head = self.head(mem, xa, what)?;
        Walk { chunk_shift: self.chunk_shift, what, read: |node| self.read_node(mem, node, what) }
            .load(head, index)
    }

    fn head(&self, mem: &Memory, xa: u64, what: &str) -> Result<u64> {
        mem.read_field(xa, self.head).map_err(|e| e.context(format!("{what}: xa_head of {xa:#x}")))
    }

    /// The node at `address`, in one read.
    fn read_node(&self, mem: &Memory, address: u64, what: &str) -> Result<Node> {
        let bytes: Cow<[u8]> = self.node.read(mem, address).map_err(|e| e.context(what))?;
        let slots = self.node.field(n::SLOTS).expect("slots is not optional").slice(&bytes)?;
        Ok(Node {
            shift: self.node.u64(&bytes, n::SHIFT)?,
            offset: self.node.u64(&bytes, n::OFFSET)?,
            parent: self.node.u64(&bytes, n::PARENT)?,
            slots: slots
                .chunks_exact(8)
                .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
                .collect(),
        })
    }
}

/// A walk of one XArray, reading nodes with `read`.
struct Walk<'a, R> {
    chunk_shift: u32,
    what: &'a str,
    read: R,
}

impl<R: FnMut(u64) -> Result<Node>> Walk<'_, R> {
    fn chunk_size(&self) -> u64 {
        1 << self.chunk_shift
    }

    fn corrupt(&self, message: String) -> Error {
        Error::new(ErrorKind::BadData, format!("{}: {message}; the XArray looks corrupt", self.what))
    }

    /// The root node at `address`, checked: no parent, a shift that is a multiple of
    /// `XA_CHUNK_SHIFT` and leaves no more than 64 index bits.
    fn root(&mut self, address: u64) -> Result<Node> {
        let root = self.node(address)?;
        let top = 64u64.div_ceil(u64::from(self.chunk_shift)) - 1;
        if root.parent != 0 {
            return Err(self.corrupt(format!("root xa_node {address:#x} has parent {:#x}", root.parent)));
        }
        if !root.shift.is_multiple_of(u64::from(self.chunk_shift))
            || root.shift / u64::from(self.chunk_shift) > top
        {
            return Err(self.corrupt(format!("root xa_node {address:#x} has shift {}", root.shift)));
        }
        Ok(root)
    }

    fn node(&mut self, address: u64) -> Result<Node> {
        let node = (self.read)(address)?;
        if node.slots.len() as u64 != self.chunk_size() {
            let message = format!("xa_node {address:#x}: {} slots read", node.slots.len());
            return Err(Error::new(ErrorKind::Other, message));
        }
        Ok(node)
    }

    /// The child at `address` of `parent_address` (a node of shift `parent_shift`), in its
    /// slot `slot`, checked.
    fn child(&mut self, address: u64, parent_address: u64, parent_shift: u64, slot: u64) -> Result<Node> {
        if parent_shift == 0 {
            return Err(
                self.corrupt(format!("leaf xa_node {parent_address:#x} points to a node {address:#x}"))
            );
        }
        let child = self.node(address)?;
        if child.parent != parent_address || child.offset != slot {
            let message = format!(
                "xa_node {address:#x} in slot {slot} of {parent_address:#x} names slot {} of {:#x}",
                child.offset, child.parent
            );
            return Err(self.corrupt(message));
        }
        if child.shift + u64::from(self.chunk_shift) != parent_shift {
            let message = format!(
                "xa_node {address:#x} has shift {} below a node of shift {parent_shift}",
                child.shift
            );
            return Err(self.corrupt(message));
        }
        Ok(child)
    }

    /// Every pointer entry below `head` (`xa_head`), at most `limit` nodes and entries.
    fn entries(mut self, head: u64, limit: usize) -> Result<Vec<(u64, u64)>> {
        let address = match Entry::of(head, self.chunk_size()) {
            Entry::Node(address) => address,
            Entry::Pointer(entry) => return Ok(vec![(0, entry)]),
            _ => return Ok(Vec::new()),
        };
        let root = self.root(address)?;
        let mut entries = Vec::new();
        let mut nodes = 1;
        // Nodes being walked: address, contents, first index, next slot.
        let mut stack = vec![(address, root, 0u64, 0usize)];
        while let Some((address, node, base, slot)) = stack.last_mut() {
            let Some(&entry) = node.slots.get(*slot) else {
                stack.pop();
                continue;
            };
            let (address, shift, base, at) = (*address, node.shift, *base, *slot as u64);
            *slot += 1;
            let kind = Entry::of(entry, self.chunk_size());
            if kind == Entry::Empty {
                continue;
            }
            // Slots past index 2^64 - 1 (of a root of shift 60) must be empty.
            let index = u64::try_from(u128::from(at) << shift)
                .ok()
                .and_then(|offset| base.checked_add(offset))
                .ok_or_else(|| {
                    self.corrupt(format!("slot {at} of xa_node {address:#x} is past index 2^64"))
                })?;
            match kind {
                Entry::Node(child_address) => {
                    nodes += 1;
                    if nodes > limit {
                        return Err(self.corrupt(format!("more than {limit} nodes")));
                    }
                    let child = self.child(child_address, address, shift, at)?;
                    stack.push((child_address, child, index, 0));
                }
                Entry::Pointer(entry) => {
                    if entries.len() == limit {
                        return Err(self.corrupt(format!("more than {limit} entries")));
                    }
                    entries.push((index, entry));
                }
                Entry::Empty | Entry::Sibling(_) | Entry::Other => {}
            }
        }
        Ok(entries)
    }

    /// The pointer entry at `index` below `head` (`xa_head`).
    fn load(mut self, head: u64, index: u64) -> Result<Option<u64>> {
        let mask = self.chunk_size() - 1;
        let mut address = match Entry::of(head, self.chunk_size()) {
            Entry::Node(address) => address,
            Entry::Pointer(entry) if index == 0 => return Ok(Some(entry)),
            _ => return Ok(None),
        };
        let mut node = self.root(address)?;
        if index >> node.shift > mask {
            return Ok(None);
        }
        loop {
            let mut slot = (index >> node.shift) & mask;
            let mut entry = Entry::of(node.slots[slot as usize], self.chunk_size());
            if let Entry::Sibling(canonical) = entry {
                slot = canonical;
                entry = Entry::of(node.slots[slot as usize], self.chunk_size());
            }
            match entry {
                Entry::Node(child) => {
                    node = self.child(child, address, node.shift, slot)?;
                    address = child;
                }
                Entry::Pointer(entry) => return Ok(Some(entry)),
                Entry::Empty | Entry::Sibling(_) | Entry::Other => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// `XA_CHUNK_SHIFT` of every distribution kernel.
    const SHIFT: u32 = 6;

    /// An XArray built in a map from node address to node, like `lib/xarray.c` lays it out.
    #[derive(Default)]
    struct Array {
        nodes: HashMap<u64, Node>,
        next: u64,
    }

    impl Array {
        /// A new empty node of `shift` in slot `offset` of `parent`; returns its address.
        fn node(&mut self, shift: u64, parent: u64, offset: u64) -> u64 {
            self.next += 0x1000;
            let address = 0xffff_8880_0000_0000 + self.next;
            self.nodes.insert(address, Node { shift, offset, parent, slots: vec![0; 64] });
            if let Some(parent) = self.nodes.get_mut(&parent) {
                parent.slots[offset as usize] = address + 2;
            }
            address
        }

        fn set(&mut self, node: u64, slot: usize, entry: u64) {
            self.nodes.get_mut(&node).unwrap().slots[slot] = entry;
        }

        fn walk(&self) -> Walk<'static, impl FnMut(u64) -> Result<Node> + '_> {
            Walk {
                chunk_shift: SHIFT,
                what: "test array",
                read: |address| {
                    self.nodes.get(&address).cloned().ok_or_else(|| Error::new(ErrorKind::Fault, "unmapped"))
                },
            }
        }

        fn entries(&self, head: u64) -> Result<Vec<(u64, u64)>> {
            self.walk().entries(head, MAX_NODES)
        }

        fn load(&self, head: u64, index: u64) -> Result<Option<u64>> {
            self.walk().load(head, index)
        }
    }

    /// A two-level array: entries at 3, 64 + 5, 4095, a value at 7, a multi-index entry at
    /// 128..132 (with siblings), a zero entry at 9 and a retry entry at 10.
    fn two_levels() -> (Array, u64) {
        let mut array = Array::default();
        let root = array.node(6, 0, 0);
        let (low, mid, high) = (array.node(0, root, 0), array.node(0, root, 1), array.node(0, root, 63));
        let two = array.node(0, root, 2);
        array.set(low, 3, 0xffff_8880_0000_0a00);
        array.set(low, 7, (42 << 1) | 1);
        array.set(low, 9, (257 << 2) | 2);
        array.set(low, 10, (256 << 2) | 2);
        array.set(mid, 5, 0xffff_8880_0000_0b00);
        array.set(high, 63, 0xffff_8880_0000_0c00);
        array.set(two, 0, 0xffff_8880_0000_0d00);
        for slot in 1..4 {
            array.set(two, slot, 2);
        }
        (array, root + 2)
    }

    #[test]
    fn entries_come_in_index_order_without_values_or_internal_entries() {
        let (array, head) = two_levels();
        let entries = array.entries(head).unwrap();
        let expected = [(3, 0xa00), (69, 0xb00), (128, 0xd00), (4095, 0xc00)];
        assert_eq!(entries, expected.map(|(i, e)| (i, 0xffff_8880_0000_0000 + e)));
        for (index, entry) in entries {
            assert_eq!(array.load(head, index).unwrap(), Some(entry), "index {index}");
        }
    }

    #[test]
    fn load_follows_siblings_and_misses_what_is_absent() {
        let (array, head) = two_levels();
        assert_eq!(array.load(head, 130).unwrap(), Some(0xffff_8880_0000_0d00));
        for index in [0, 4, 7, 9, 10, 132, 4094, 4096, 1 << 40, u64::MAX] {
            assert_eq!(array.load(head, index).unwrap(), None, "index {index}");
        }
    }

    #[test]
    fn a_head_that_is_no_node_is_index_0() {
        let array = Array::default();
        assert_eq!(array.entries(0xffff_8880_0000_0a00).unwrap(), [(0, 0xffff_8880_0000_0a00)]);
        assert_eq!(array.load(0xffff_8880_0000_0a00, 0).unwrap(), Some(0xffff_8880_0000_0a00));
        assert_eq!(array.load(0xffff_8880_0000_0a00, 1).unwrap(), None);
        assert_eq!(array.entries(0).unwrap(), []);
        assert_eq!(array.entries((5 << 1) | 1).unwrap(), [], "a value");
        assert_eq!(array.load((257 << 2) | 2, 0).unwrap(), None, "a zero entry");
    }

    #[test]
    fn the_highest_indexes_are_reached() {
        // Eleven levels: the root's shift is 60 and its slot 15 leads to index 2^64 - 1.
        let mut array = Array::default();
        let root = array.node(60, 0, 0);
        let mut node = root;
        for level in (0..10).rev() {
            node = array.node(level * 6, node, if level == 9 { 15 } else { 63 });
        }
        array.set(node, 63, 0xffff_8880_0000_0a00);
        assert_eq!(array.entries(root + 2).unwrap(), [(u64::MAX, 0xffff_8880_0000_0a00)]);
        assert_eq!(array.load(root + 2, u64::MAX).unwrap(), Some(0xffff_8880_0000_0a00));
        // A root slot past 2^64 - 1 holding anything is corrupt.
        array.set(root, 16, 0xffff_8880_0000_0a00);
        assert!(array.entries(root + 2).unwrap_err().message.contains("past index"));
    }

    #[test]
    fn a_child_naming_another_parent_or_slot_is_an_error() {
        let (mut array, head) = two_levels();
        let root = head - 2;
        let mid = array.nodes[&root].slots[1] - 2;
        array.nodes.get_mut(&mid).unwrap().parent = 0x1234_0000;
        let error = array.entries(head).unwrap_err();
        assert!(
            error.kind == ErrorKind::BadData && error.message.contains("names slot 1 of 0x12340000"),
            "{error}"
        );
        assert!(array.load(head, 69).is_err());
        assert_eq!(array.load(head, 3).unwrap(), Some(0xffff_8880_0000_0a00), "other paths still load");

        // The same child in two slots: its offset matches only one.
        let (mut array, head) = two_levels();
        let low = array.nodes[&root].slots[0];
        array.set(root, 5, low);
        assert!(array.entries(head).unwrap_err().message.contains("in slot 5"));
    }

    #[test]
    fn shifts_must_step_down_by_the_chunk_shift() {
        let (mut array, head) = two_levels();
        let low = array.nodes[&(head - 2)].slots[0] - 2;
        array.nodes.get_mut(&low).unwrap().shift = 6;
        assert!(array.entries(head).unwrap_err().message.contains("has shift 6 below"));

        // A node below a leaf, a root of a shift no kernel uses, and a root with a parent.
        let (mut array, head) = two_levels();
        let low = array.nodes[&(head - 2)].slots[0] - 2;
        array.set(low, 20, head);
        assert!(array.entries(head).unwrap_err().message.contains("leaf"));
        for (shift, parent) in [(66, 0), (7, 0), (6, 0x1000)] {
            let mut array = Array::default();
            let root = array.node(shift, parent, 0);
            let error = array.entries(root + 2).unwrap_err();
            assert!(error.message.contains("root xa_node"), "{error}");
        }
    }

    #[test]
    fn more_entries_than_the_limit_is_an_error() {
        let (array, head) = two_levels();
        assert_eq!(array.walk().entries(head, 5).unwrap().len(), 4);
        let error = array.walk().entries(head, 4).unwrap_err();
        assert!(error.message.contains("more than 4 nodes"), "{error}");
        let mut array = Array::default();
        let root = array.node(0, 0, 0);
        for slot in 0..10 {
            array.set(root, slot, 0xffff_8880_0001_0000 + 8 * slot as u64);
        }
        assert_eq!(array.walk().entries(root + 2, 10).unwrap().len(), 10);
        assert!(array.walk().entries(root + 2, 9).unwrap_err().message.contains("more than 9 entries"));
    }
}
