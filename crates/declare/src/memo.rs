//! Values read through a row object's pointer (`sk->sk_net->ns.inum`), remembered for the
//! scan: many rows share the pointed-to object (one network namespace, a few cgroups), so
//! the value is read once per object. Each place has a small direct-mapped cache indexed
//! by the pointer's bits: a hit costs one compare, and a place whose pointers are all
//! different (`sk->sk_socket`, one per row) costs one store per row, not a growing map.

use crate::walk::Value;

/// Cache slots per place (a power of two).
const SLOTS: usize = 64;

/// One place's slots, each a pointer and the value read through it.
type Slots = Box<[(u64, Value)]>;

/// The remembered values of every place read through a pointer in one scan.
#[derive(Default)]
pub(crate) struct Memo {
    /// Per place (by its address in the plan): the slots, each a pointer and its value.
    places: Vec<(usize, Slots)>,
}

impl Memo {
    /// The value remembered for `place` and `pointer`.
    #[inline]
    pub fn get(&self, place: usize, pointer: u64) -> Option<&Value> {
        let (_, slots) = self.places.iter().find(|(p, _)| *p == place)?;
        let (remembered, value) = &slots[slot(pointer)];
        (*remembered == pointer).then_some(value)
    }

    /// Remembers `value` for `place` and `pointer`, in place of what shared its slot.
    pub fn put(&mut self, place: usize, pointer: u64, value: Value) {
        let index = match self.places.iter().position(|(p, _)| *p == place) {
            Some(index) => index,
            None => {
                self.places.push((place, vec![(0, Value::Null); SLOTS].into_boxed_slice()));
                self.places.len() - 1
            }
        };
        self.places[index].1[slot(pointer)] = (pointer, value);
    }
}

/// The slot of `pointer`: kernel objects are at least 64-byte aligned more often than not,
/// so the bits above the sixth spread them.
#[inline]
fn slot(pointer: u64) -> usize {
    ((pointer >> 6) ^ (pointer >> 12)) as usize & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_value_is_found_until_its_slot_is_reused() {
        let mut memo = Memo::default();
        let (place, a) = (1usize, 0xffff_8880_0000_1000u64);
        assert_eq!(memo.get(place, a), None);
        memo.put(place, a, Value::Int(7));
        assert_eq!(memo.get(place, a), Some(&Value::Int(7)));
        assert_eq!(memo.get(2, a), None, "another place");
        let b = (1..).map(|i| a + i * 64).find(|&b| slot(b) == slot(a)).expect("a pointer sharing the slot");
        memo.put(place, b, Value::Int(8));
        assert_eq!(memo.get(place, a), None);
        assert_eq!(memo.get(place, b), Some(&Value::Int(8)));
    }

    #[test]
    fn a_null_pointer_is_never_a_hit_on_an_empty_slot() {
        // Empty slots hold pointer 0; callers never look up NULL (it reads as NULL first).
        let memo = Memo::default();
        assert_eq!(memo.get(1, 0), None);
    }
}
