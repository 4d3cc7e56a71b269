//! [`Skipped`]: what a walk went past instead of failing — a chain, a bucket or an object
//! it could not read — each named with where it is (bucket index, object address, field),
//! so a damaged vmcore yields every row that can be read plus the list of what is missing.

use kql_drgn::{Error, ErrorKind, Result};

/// How many skipped places are kept word for word; the rest are only counted.
const KEPT: usize = 8;

/// The places a walk skipped, in walk order.
#[derive(Debug, Default)]
pub struct Skipped {
    places: Vec<String>,
    count: usize,
}

impl Skipped {
    /// Records one skipped place: what it is and why (`bucket 17 of …: …`).
    pub fn note(&mut self, place: String) {
        self.count += 1;
        if self.places.len() < KEPT {
            self.places.push(place);
        }
    }

    /// The value, or `None` after noting `place` with the error.
    pub fn check<T>(&mut self, result: Result<T>, place: impl FnOnce() -> String) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.note(format!("{}: {e}", place()));
                None
            }
        }
    }

    /// How many places were skipped.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The first places skipped (at most eight), in walk order.
    pub fn places(&self) -> &[String] {
        &self.places
    }

    /// Moves `other`'s places into this list.
    pub fn absorb(&mut self, other: Skipped) {
        let unkept = other.count - other.places.len();
        other.places.into_iter().for_each(|place| self.note(place));
        self.count += unkept;
    }

    /// `value` if nothing was skipped, else an error naming the first place: for callers
    /// that want all or nothing.
    pub fn all_or_error<T>(self, value: T) -> Result<T> {
        match self.places.first() {
            None => Ok(value),
            Some(first) => Err(Error::new(ErrorKind::BadData, first.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_beyond_the_kept_ones_are_counted() {
        let mut skipped = Skipped::default();
        (0..10).for_each(|i| skipped.note(format!("bucket {i}")));
        let mut more = Skipped::default();
        (0..10).for_each(|i| more.note(format!("task {i}")));
        skipped.absorb(more);
        assert_eq!((skipped.count(), skipped.places().len()), (20, KEPT));
        assert_eq!(skipped.all_or_error(()).unwrap_err().message, "bucket 0");
    }
}
