//! [`SymbolTable`]: symbol names found through a table of their 64-bit hashes, with their
//! addresses. A kernel has up to ~200,000 symbols and a walk asks for a handful, so the names
//! stay as they came ([`NameSource`]: packed text, or kallsyms' compressed tables) and only
//! their hashes are indexed: building a `HashMap<String, u64>` (an allocation, a copy and a
//! SipHash per name) cost more than decoding the names. The hash is polynomial
//! ([`NameHash`]), so a compressed name is hashed a token at a time without expanding it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A list of names that can hash and compare each one in place.
pub trait NameSource: Send {
    /// How many names.
    fn len(&self) -> usize;
    /// [`NameHash`] of name `index`.
    fn hash(&self, index: usize) -> u64;
    /// Whether name `index` is `name`.
    fn is(&self, index: usize, name: &[u8]) -> bool;
    /// Name `index`.
    fn name(&self, index: usize) -> String;
}

/// Names packed end to end (from `/proc/kallsyms`).
#[derive(Default)]
pub struct Names {
    bytes: Vec<u8>,
    /// `ends[i]`: where name `i` ends in `bytes`.
    ends: Vec<u32>,
}

impl Names {
    /// Room for `count` names of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Names {
        Names { bytes: Vec::with_capacity(bytes), ends: Vec::with_capacity(count) }
    }

    /// Appends a name.
    pub fn push(&mut self, name: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len() as u32);
    }

    fn get(&self, index: usize) -> &[u8] {
        let start = index.checked_sub(1).map_or(0, |previous| self.ends[previous] as usize);
        &self.bytes[start..self.ends[index] as usize]
    }
}

impl NameSource for Names {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn hash(&self, index: usize) -> u64 {
        NameHash::of(self.get(index))
    }

    fn is(&self, index: usize, name: &[u8]) -> bool {
        self.get(index) == name
    }

    fn name(&self, index: usize) -> String {
        String::from_utf8_lossy(self.get(index)).into_owned()
    }
}

/// Names by hash: the first index of each.
pub struct NameIndex {
    names: Box<dyn NameSource>,
    index: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
}

impl NameIndex {
    /// Hashes every name of `names`.
    pub fn new(names: impl NameSource + 'static) -> NameIndex {
        let count = names.len();
        let mut index = HashMap::with_capacity_and_hasher(count, BuildHasherDefault::default());
        for i in 0..count {
            index.entry(names.hash(i)).or_insert(i as u32);
        }
        NameIndex { names: Box::new(names), index }
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The first index of `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        let first = *self.index.get(&NameHash::of(name))? as usize;
        if self.names.is(first, name) {
            return Some(first);
        }
        // Two names with one hash: look at every name.
        (0..self.names.len()).find(|&i| self.names.is(i, name))
    }

    /// Name `index`.
    pub fn name(&self, index: usize) -> String {
        self.names.name(index)
    }
}

/// Symbols by name: the first address listed for each; and by address, once asked.
pub struct SymbolTable {
    names: NameIndex,
    addresses: Vec<u64>,
    /// Symbol indexes sorted by address (listing order among equal addresses), made on the
    /// first [`SymbolTable::containing`].
    by_address: OnceLock<Vec<u32>>,
}

impl SymbolTable {
    /// Name `i` of `names` is at `addresses[i]`.
    pub fn new(names: NameIndex, addresses: Vec<u64>) -> SymbolTable {
        SymbolTable { names, addresses, by_address: OnceLock::new() }
    }

    /// How many symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The address of `name`, if listed.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.addresses.get(self.names.position(name)?).copied()
    }

    /// The symbol containing `address`, its name and start: the last at or below it, if the
    /// next symbol is above it and at most `max_span` bytes after that one (kallsyms has no
    /// sizes, so neither an address past the last symbol nor one in a wide gap between
    /// symbols, such as the heap between per-cpu offsets and the kernel's text, is in one).
    pub fn containing(&self, address: u64, max_span: u64) -> Option<(String, u64)> {
        let order = self.by_address.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.addresses.len() as u32).collect();
            order.sort_by_key(|&i| self.addresses[i as usize]);
            order
        });
        let at = |position: usize| self.addresses[order[position] as usize];
        let after = order.partition_point(|&i| self.addresses[i as usize] <= address);
        let start = at(after.checked_sub(1)?);
        let first = order.partition_point(|&i| self.addresses[i as usize] < start);
        let next = *order.get(after).map(|&i| &self.addresses[i as usize])?;
        (next - start <= max_span).then(|| (self.names.name(order[first] as usize), start))
    }
}

/// A polynomial hash, `h = h * BASE + byte` (mod 2^64), of a name: appending a piece whose
/// own hash is `p` and whose length is `n` is `h * BASE^n + p`, so a name made of tokens is
/// hashed from its tokens' hashes. Collisions only cost a comparison ([`NameIndex::position`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameHash {
    /// The hash so far.
    pub value: u64,
    /// `BASE^len` of what was hashed.
    pub scale: u64,
}

const BASE: u64 = 0x0000_0100_0000_01b3;

impl NameHash {
    /// Nothing hashed yet.
    pub fn new() -> NameHash {
        NameHash { value: 0, scale: 1 }
    }

    /// The hash value of `bytes`.
    pub fn of(bytes: &[u8]) -> u64 {
        NameHash::new().bytes(bytes).value
    }

    /// Appends `bytes`.
    pub fn bytes(self, bytes: &[u8]) -> NameHash {
        bytes.iter().fold(self, |h, &b| NameHash {
            value: h.value.wrapping_mul(BASE).wrapping_add(u64::from(b)),
            scale: h.scale.wrapping_mul(BASE),
        })
    }

    /// Appends a piece hashed on its own.
    pub fn then(self, piece: NameHash) -> NameHash {
        NameHash {
            value: self.value.wrapping_mul(piece.scale).wrapping_add(piece.value),
            scale: self.scale.wrapping_mul(piece.scale),
        }
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = NameHash::of(bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_and_the_first_of_two_wins() {
        let mut names = Names::default();
        for name in ["_stext", "init_task", "init_task", ""] {
            names.push(name.as_bytes());
        }
        let index = NameIndex::new(names);
        assert_eq!(index.position("init_task"), Some(1));
        let table = SymbolTable::new(index, vec![10, 20, 30, 40]);
        assert_eq!(
            (table.get("_stext"), table.get("init_task"), table.get("")),
            (Some(10), Some(20), Some(40))
        );
        assert_eq!(table.get("missing"), None);
        assert_eq!(table.containing(25, 100), Some(("init_task".to_string(), 20)), "the first of two");
        assert_eq!(table.containing(10, 100), Some(("_stext".to_string(), 10)));
        assert_eq!(table.containing(5, 100), None, "below the first symbol");
        assert_eq!(table.containing(45, 100), None, "past the last symbol");
        assert_eq!(table.containing(15, 5), None, "in a gap wider than a symbol may be");
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn a_name_hashed_in_pieces_hashes_as_a_whole() {
        let whole = NameHash::new().bytes(b"tcp_hashinfo");
        let pieces = NameHash::new()
            .bytes(b"tcp")
            .then(NameHash::new().bytes(b"_hash"))
            .then(NameHash::new().bytes(b"info"));
        assert_eq!(pieces, whole);
        assert_ne!(NameHash::of(b"ab"), NameHash::of(b"ba"));
    }
}
