//! [`Pages`]: the page entries of one transfer, kept inline for the common one- and two-page
//! transfers (no allocation on the submit path) and on the heap beyond.

use alloc::vec::Vec;

/// One page entry: the address of its first byte and the bytes of the transfer in it.
pub(super) type Page = (u64, usize);

/// The page entries of a transfer, in order.
///
/// # Invariant
/// With `n <= 2` the entries are `head[..n]` (and `rest` is empty); with `n > 2` they are all
/// of `rest` (`rest.len() == n`), `head` unused.
pub(super) struct Pages {
    head: [Page; 2],
    n: usize,
    rest: Vec<Page>,
}

impl Pages {
    /// No entries.
    pub(super) const fn new() -> Self {
        Pages {
            head: [(0, 0); 2],
            n: 0,
            rest: Vec::new(),
        }
    }

    /// Appends an entry.
    #[inline]
    pub(super) fn push(&mut self, page: Page) {
        match self.n {
            0 | 1 => self.head[self.n] = page,
            2 => {
                self.rest.reserve(4);
                self.rest.extend_from_slice(&self.head);
                self.rest.push(page);
            }
            _ => self.rest.push(page),
        }
        self.n += 1;
    }

    /// The entries.
    #[inline]
    pub(super) fn as_slice(&self) -> &[Page] {
        match self.head.get(..self.n) {
            Some(inline) => inline,
            None => &self.rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_then_heap() {
        let mut p = Pages::new();
        assert!(p.as_slice().is_empty());
        let all: Vec<Page> = (0..5).map(|k| (k * 4096, 4096)).collect();
        for (k, &e) in all.iter().enumerate() {
            p.push(e);
            assert_eq!(p.as_slice(), &all[..=k]);
        }
    }
}
