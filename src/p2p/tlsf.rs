//! Two-level segregated fit (TLSF) over granule indices: the pool's allocator proper, pure
//! bookkeeping in host RAM that never touches device memory.
//!
//! Free blocks sit in [`CLASSES`] size classes (29 powers of two × 16 subdivisions) with a
//! bitmap per level, so finding a block, splitting it, freeing and coalescing with both
//! neighbours are O(1). Blocks are 24-byte [`Node`]s in an arena (indices, not pointers); free
//! lists are circular with a head node per class, and an [`EDGE`] node stands for the region's
//! ends, so list and neighbour updates need no end-of-list tests. See the
//! [module docs](super) for the fit policy.

use alloc::vec::Vec;

/// "No node": the end of the spare list, and the `next_free` of a node that is not free.
const NONE: u32 = u32::MAX;
const SL_BITS: u32 = 4;
const SL: usize = 1 << SL_BITS;
/// First-level classes: 0 holds sizes 1..16 exactly, then one class per power of two up to 2^31.
const FL: usize = 32 - SL_BITS as usize + 1;
/// Size classes, numbered `fl * SL + sl`: every `u32` size has one below this.
const CLASSES: usize = FL * SL;
/// The node that stands for "outside the region" as the physical neighbour of the first and
/// last blocks: never free, so coalescing needs no test for the region's ends. Nodes
/// `0..CLASSES` are the heads of the free lists, one per class.
const EDGE: u32 = CLASSES as u32;
/// The first node that can be a block.
const FIRST_BLOCK: u32 = EDGE + 1;
/// The largest number of granules a pool may have.
pub(super) const MAX_GRANULES: u64 = 1 << 31;
/// How many blocks of the class a request falls in an allocation examines before it takes
/// a block of the next class up (see [`Tlsf::alloc`]).
const EXACT_PROBES: u32 = 2;

/// A block of the region, or a free-list head, or the region edge. 24 bytes.
///
/// Free blocks are on circular doubly linked lists, one per size class, whose head is node
/// `class`; so linking and unlinking never test for the end of a list.
#[derive(Clone, Copy)]
struct Node {
    start: u32,
    size: u32,
    /// Physical neighbours ([`EDGE`] at the ends). A spare node's `prev_phys` links the spare
    /// list.
    prev_phys: u32,
    next_phys: u32,
    /// Free-list neighbours while free; `next_free` is [`NONE`] while not free.
    prev_free: u32,
    next_free: u32,
}

impl Node {
    /// An allocated block (not on a free list).
    const fn used(start: u32, size: u32) -> Self {
        Node {
            start,
            size,
            prev_phys: EDGE,
            next_phys: EDGE,
            prev_free: NONE,
            next_free: NONE,
        }
    }
    #[inline(always)]
    fn is_free(&self) -> bool {
        self.next_free != NONE
    }
}

/// Size class of `n ≥ 1` granules, rounding down: `n` exactly below 16, else the power of two
/// below `n` and the next [`SL_BITS`] bits of `n`. (Branch-free: with `e = msb(n | 16) - 4`,
/// the class is `16·e + (n >> e)` for every `n`.)
#[inline(always)]
fn class_of(n: u32) -> usize {
    let e = 27 - (n | SL as u32).leading_zeros();
    (e as usize) * SL + (n >> e) as usize
}

/// The smallest class whose every block holds at least `n ≥ 1` granules (rounding up); may be
/// `CLASSES` or more when no class is large enough.
#[inline(always)]
fn class_at_least(n: u64) -> usize {
    let e = 59 - (n | SL as u64).leading_zeros();
    let up = n + (1 << e) - 1;
    let e = 59 - (up | SL as u64).leading_zeros();
    (e as usize) * SL + (up >> e) as usize
}

/// The allocator proper, in granule units. Pure bookkeeping: it never touches device memory.
pub(super) struct Tlsf {
    /// Free-list heads (`0..CLASSES`), the [`EDGE`], then blocks and spare nodes.
    nodes: Vec<Node>,
    /// First spare node ([`NONE`] if none), linked through `prev_phys`.
    spare: u32,
    fl_map: u32,
    /// Bit `sl` of `sl_map[fl]`: class `fl * SL + sl` has free blocks. (32 entries, so that
    /// any index masked with 31 is in bounds.)
    sl_map: [u32; 32],
    /// Bus address of the region in granules (for alignment).
    base_g: u64,
    /// Granules managed.
    pub(super) total: u32,
    /// Granules free.
    pub(super) free: u32,
    /// Live allocations.
    pub(super) allocations: u32,
    /// Granules of quarantined blocks: allocated for good, with no buffer (a device may still
    /// write them), not counted in `allocations`.
    pub(super) quarantined: u32,
    /// Free blocks.
    pub(super) free_blocks: u32,
}

impl Tlsf {
    /// A region of `total` granules (1..=2^31) whose bus address is `base_g` granules.
    pub(super) fn new(total: u32, base_g: u64) -> Self {
        let mut nodes = Vec::with_capacity(FIRST_BLOCK as usize + 64);
        // empty lists: each head is its own neighbour both ways
        nodes.extend((0..CLASSES as u32).map(|c| Node {
            prev_free: c,
            next_free: c,
            ..Node::used(0, 0)
        }));
        nodes.push(Node::used(0, 0)); // EDGE
        let mut t = Tlsf {
            nodes,
            spare: NONE,
            fl_map: 0,
            sl_map: [0; 32],
            base_g,
            total,
            free: total,
            allocations: 0,
            quarantined: 0,
            free_blocks: 0,
        };
        let n = t.new_node(0, total);
        // the edge's neighbours are the first and the last block
        t.nodes[EDGE as usize].next_phys = n;
        t.nodes[EDGE as usize].prev_phys = n;
        t.insert_free(n);
        t
    }

    #[inline(always)]
    fn new_node(&mut self, start: u32, size: u32) -> u32 {
        let node = Node::used(start, size);
        if self.spare != NONE {
            let i = self.spare;
            self.spare = self.nodes[i as usize].prev_phys;
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Puts free block `i` at the head of its class's list.
    #[inline(always)]
    fn insert_free(&mut self, i: u32) {
        let c = class_of(self.nodes[i as usize].size);
        let head = self.nodes[c].next_free;
        self.nodes[i as usize].prev_free = c as u32;
        self.nodes[i as usize].next_free = head;
        self.nodes[head as usize].prev_free = i;
        self.nodes[c].next_free = i;
        let (f, s) = (c / SL, c % SL);
        self.fl_map |= 1 << f;
        self.sl_map[f & 31] |= 1 << s;
        self.free_blocks += 1;
    }

    /// Takes free block `i` off its list.
    #[inline(always)]
    fn remove_free(&mut self, i: u32) {
        let Node {
            prev_free: p,
            next_free: q,
            ..
        } = self.nodes[i as usize];
        self.nodes[p as usize].next_free = q;
        self.nodes[q as usize].prev_free = p;
        self.nodes[i as usize].next_free = NONE;
        self.free_blocks -= 1;
        // The list is now empty iff both neighbours are its head, node `p = class`: then clear
        // the class's bit (and the first level's if it was the last). Branch-free: otherwise
        // `empty` is 0 and an arbitrary `sl_map` word is left as it was (its first-level bit is
        // already clear if it is 0).
        let empty = (p == q) as u32;
        let f = (p as usize / SL) & 31;
        self.sl_map[f] &= !(empty << (p as usize % SL));
        self.fl_map &= !(((self.sl_map[f] == 0) as u32) << f);
    }

    /// Re-files free block `i`, which had `old` granules, after its size changed, if its size
    /// class changed.
    #[inline(always)]
    fn refile(&mut self, i: u32, old: u32) {
        if class_of(old) != class_of(self.nodes[i as usize].size) {
            self.remove_free(i);
            self.insert_free(i);
        }
    }

    /// Where an allocation of `n` granules aligned to `align_g` goes in free block `i`: as high
    /// as possible (at its end, or below it by the alignment's slack). `None` if it does not fit.
    #[inline(always)]
    fn place(&self, i: u32, n: u64, align_g: u64) -> Option<u32> {
        let node = &self.nodes[i as usize];
        let end = node.start as u64 + node.size as u64;
        let mut at = end.checked_sub(n)?;
        if align_g > 1 {
            at = at.checked_sub((self.base_g + at) & (align_g - 1))?;
        }
        (at >= node.start as u64).then_some(at as u32)
    }

    /// Links node `j` into the physical order right after `i`.
    #[inline(always)]
    fn link_after(&mut self, i: u32, j: u32) {
        let next = self.nodes[i as usize].next_phys;
        self.nodes[j as usize].prev_phys = i;
        self.nodes[j as usize].next_phys = next;
        self.nodes[next as usize].prev_phys = j;
        self.nodes[i as usize].next_phys = j;
    }

    /// Unlinks node `j` (not free) from the physical order and makes it spare.
    #[inline(always)]
    fn unlink(&mut self, j: u32) {
        let Node {
            prev_phys,
            next_phys,
            ..
        } = self.nodes[j as usize];
        self.nodes[prev_phys as usize].next_phys = next_phys;
        self.nodes[next_phys as usize].prev_phys = prev_phys;
        let n = &mut self.nodes[j as usize];
        n.size = 0;
        n.prev_phys = self.spare;
        self.spare = j;
    }

    /// First non-empty class at or above `c`.
    #[inline(always)]
    fn find_class(&self, c: usize) -> Option<usize> {
        let (f, s) = (c / SL, c % SL);
        if f >= FL {
            return None;
        }
        let sl = self.sl_map[f] & (u32::MAX << s);
        if sl != 0 {
            return Some(f * SL + sl.trailing_zeros() as usize);
        }
        // f + 1 ≤ FL < 32
        let fl = self.fl_map & (u32::MAX << (f + 1));
        if fl == 0 {
            return None;
        }
        let f = fl.trailing_zeros() as usize;
        Some(f * SL + self.sl_map[f & 31].trailing_zeros() as usize)
    }

    /// Allocates `n ≥ 1` granules whose bus address is aligned to `align_g` (a power of two)
    /// granules. Returns the node index and the start granule, or `None`.
    #[inline]
    pub(super) fn alloc(&mut self, n: u64, align_g: u64) -> Option<(u32, u32)> {
        if n == 0 || n > self.free as u64 {
            return None;
        }
        // Worst-case need: a block this large fits whatever its alignment.
        let worst = n.checked_add(align_g - 1)?;
        // The class `worst` falls in holds blocks both smaller and larger than it; the first
        // class above it holds only blocks large enough.
        let (ce, cw) = if worst < MAX_GRANULES {
            (class_of(worst as u32), class_at_least(worst))
        } else {
            (CLASSES, CLASSES)
        };
        // 1. The snuggest of the first few blocks of the class `worst` falls in, if one fits:
        //    a block no more than 1/16 larger than the request is not cut from a larger one.
        // 2. The first block of the first class whose blocks are all large enough.
        // 3. Near exhaustion: every block of the classes in between, so that an allocation
        //    fails only if no free block can hold it. (Smaller classes hold only blocks < n.)
        let exact = if ce < cw && self.sl_map[(ce / SL) & 31] & (1 << (ce % SL)) != 0 {
            self.snuggest(ce, n, align_g)
        } else {
            None
        };
        let found = match exact {
            Some(i) => i,
            None => match self.find_class(cw) {
                Some(c) => self.nodes[c].next_free,
                None => self.scan_classes(class_of(n as u32), cw, n, align_g)?,
            },
        };
        // The allocation takes the top of the block: the rest of the block stays where it is
        // (often in the same size class, so no list operation at all).
        let at = self.place(found, n, align_g)?;
        // CAST: `n ≤ free`, a `u32`
        Some((self.carve(found, at, n as u32), at))
    }

    /// Allocates granules `at..at + n` of free block `found` (which holds them): the rest of the
    /// block stays where it is (often in the same size class, so no list operation at all), any
    /// part above the allocation becomes a free block of its own. Returns the allocation's node.
    #[inline(always)]
    fn carve(&mut self, found: u32, at: u32, n: u32) -> u32 {
        let Node { start, size, .. } = self.nodes[found as usize];
        let front = at - start;
        let after = start + size - (at + n);
        let a = if front == 0 {
            self.remove_free(found);
            self.nodes[found as usize].size = n;
            found
        } else {
            self.nodes[found as usize].size = front;
            self.refile(found, size);
            let a = self.new_node(at, n);
            self.link_after(found, a);
            a
        };
        if after > 0 {
            // Alignment slack above the allocation. Its right neighbour is in use (free blocks
            // are coalesced), so it stays a block of its own.
            let t = self.new_node(at + n, after);
            self.link_after(a, t);
            self.insert_free(t);
        }
        self.free -= n;
        self.allocations += 1;
        a
    }

    /// Allocates exactly granules `at..at + n` (`n ≥ 1`), which must lie in the free block at
    /// the region's start or its end. Returns the node, or `None` (nothing changed) if they do
    /// not.
    pub(super) fn alloc_at(&mut self, at: u32, n: u32) -> Option<u32> {
        let end = at.checked_add(n)?;
        let edge = self.nodes[EDGE as usize];
        [edge.next_phys, edge.prev_phys].into_iter().find_map(|i| {
            let b = self.nodes[i as usize];
            (n > 0 && b.is_free() && at >= b.start && end as u64 <= b.start as u64 + b.size as u64)
                .then(|| self.carve(i, at, n))
        })
    }

    /// The first block of the region: its node, and its size if it is free (else 0).
    pub(super) fn head(&self) -> (u32, u32) {
        self.edge_block(self.nodes[EDGE as usize].next_phys)
    }

    /// The last block of the region: its node, and its size if it is free (else 0).
    pub(super) fn tail(&self) -> (u32, u32) {
        self.edge_block(self.nodes[EDGE as usize].prev_phys)
    }

    fn edge_block(&self, i: u32) -> (u32, u32) {
        let b = &self.nodes[i as usize];
        (i, if b.is_free() { b.size } else { 0 })
    }

    /// Bus address of the region in granules.
    pub(super) fn base_g(&self) -> u64 {
        self.base_g
    }

    /// The smallest of the first [`EXACT_PROBES`] blocks of class `c` that holds `n` granules
    /// aligned to `align_g`, the highest of those of that size (an exact fit ends the search).
    #[inline(always)]
    fn snuggest(&self, c: usize, n: u64, align_g: u64) -> Option<u32> {
        let mut i = self.nodes[c].next_free;
        let mut best = NONE;
        let mut best_key = u64::MAX;
        let mut k = 0;
        while i != c as u32 && k < EXACT_PROBES {
            let node = &self.nodes[i as usize];
            // smaller first, then higher
            let key = ((node.size as u64) << 32) | (u32::MAX - node.start) as u64;
            if key < best_key && self.place(i, n, align_g).is_some() {
                best = i;
                best_key = key;
                if node.size as u64 == n {
                    break;
                }
            }
            i = node.next_free;
            k += 1;
        }
        (best != NONE).then_some(best)
    }

    /// The first block in classes `[from, to)` that holds `n` granules aligned to `align_g`.
    fn scan_classes(&self, from: usize, to: usize, n: u64, align_g: u64) -> Option<u32> {
        for c in from..to.min(CLASSES) {
            let mut i = self.nodes[c].next_free;
            while i != c as u32 {
                if self.place(i, n, align_g).is_some() {
                    return Some(i);
                }
                i = self.nodes[i as usize].next_free;
            }
        }
        None
    }

    /// Start granule of allocated node `i`.
    #[cfg(test)]
    fn start(&self, i: u32) -> u32 {
        self.nodes[i as usize].start
    }

    /// Quarantines allocated node `i`: it stays allocated for as long as the allocator lives but
    /// is no longer a live allocation. Returns `false` (and changes nothing) if `i` is not an
    /// allocated block.
    pub(super) fn quarantine(&mut self, i: u32) -> bool {
        let Some(&node) = self.nodes.get(i as usize) else {
            return false;
        };
        if i < FIRST_BLOCK || node.is_free() || node.size == 0 {
            return false;
        }
        self.allocations -= 1;
        self.quarantined += node.size;
        true
    }

    /// Frees allocated node `i`, coalescing with free neighbours. Returns `false` (and changes
    /// nothing) if `i` is not an allocated block.
    #[inline]
    pub(super) fn free(&mut self, i: u32) -> bool {
        let Some(&node) = self.nodes.get(i as usize) else {
            return false;
        };
        if i < FIRST_BLOCK || node.is_free() || node.size == 0 {
            return false;
        }
        let Node {
            start,
            size,
            prev_phys: prev,
            next_phys: next,
            ..
        } = node;
        self.free += size;
        self.allocations -= 1;
        // The edge is never free: no test for the region's ends.
        let prev_free = self.nodes[prev as usize].is_free();
        let next_free = self.nodes[next as usize].is_free();
        match (prev_free, next_free) {
            (true, true) => {
                // prev absorbs this block and next
                let next_size = self.nodes[next as usize].size;
                self.remove_free(next);
                self.unlink(next);
                self.unlink(i);
                let old = self.nodes[prev as usize].size;
                self.nodes[prev as usize].size = old + size + next_size;
                self.refile(prev, old);
            }
            (true, false) => {
                self.unlink(i);
                let old = self.nodes[prev as usize].size;
                self.nodes[prev as usize].size = old + size;
                self.refile(prev, old);
            }
            (false, true) => {
                // next grows down over this block
                self.unlink(i);
                let old = self.nodes[next as usize].size;
                self.nodes[next as usize].start = start;
                self.nodes[next as usize].size = old + size;
                self.refile(next, old);
            }
            (false, false) => self.insert_free(i),
        }
        true
    }

    /// Largest free block in granules.
    pub(super) fn largest_free(&self) -> u32 {
        if self.fl_map == 0 {
            return 0;
        }
        let f = 31 - self.fl_map.leading_zeros() as usize;
        let s = 31 - self.sl_map[f & 31].leading_zeros() as usize;
        let c = f * SL + s;
        let mut best = 0;
        let mut i = self.nodes[c].next_free;
        while i != c as u32 {
            best = best.max(self.nodes[i as usize].size);
            i = self.nodes[i as usize].next_free;
        }
        best
    }
}

#[cfg(test)]
#[path = "tlsf_tests.rs"]
mod tests;
