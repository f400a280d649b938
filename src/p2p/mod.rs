//! Peer-to-peer memory: a sub-allocator over a region of device memory, handing out owned
//! buffers with their PCI bus addresses.
//!
//! A [`P2pPool`] manages a region of a backend (an NVMe Controller Memory Buffer, a GPU BAR)
//! whose bus address is known. [`P2pPool::alloc`] returns a [`P2pBuf`]: an owned piece of the
//! region that frees itself on drop, gives access only through an [`IoMem`](crate::IoMem) handle (never a
//! `&mut [u8]`), and knows the bus address a device uses to reach it by DMA.
//!
//! # Design
//! - **Metadata out of band.** The allocator's state lives in host RAM; device memory is never
//!   read or written by the allocator (it may be slow, write-combining, or shared with a device
//!   that would see and corrupt allocator state).
//! - **Two-level segregated fit** (TLSF): free blocks sit in 29 × 16 size classes with a bitmap
//!   per level, so finding a block, splitting it, freeing and coalescing with both neighbours
//!   are O(1) — no scan of the region, unlike a bitmap allocator (Linux `lib/genalloc.c`).
//!   A request is served from the class it falls in when one of that class's first two
//!   blocks fits (the smaller, then the higher), else from the first class whose every block
//!   fits ("good fit": at most 1/16 larger than best fit), so that a block close to the
//!   request's size is not passed over for a cut from a larger one. Only when both fail are
//!   the blocks of the classes in between
//!   examined one by one, so an allocation fails only if no free block can hold it. The
//!   allocation takes the top of the chosen block and a freed block merges into a free
//!   neighbour in place, so the surviving free block changes lists only when its size class
//!   changes. Blocks are 24-byte nodes in an arena (indices, not pointers); free lists are
//!   circular with a head node per class, and an edge node stands for the region's ends, so
//!   list and neighbour updates need no end-of-list tests.
//! - **Granularity.** Sizes are rounded up to the pool's granularity (a power of two ≥ 64 bytes,
//!   4 KiB by default) and to nothing more: no power-of-two rounding.
//! - **Alignment** is of the **bus address**, which is what a device checks (PRP entries, queue
//!   bases). The bus address of the region must itself be aligned to the granularity, so any
//!   alignment up to the granularity costs nothing; larger alignments are served by carving the
//!   front of a block off as a free block.
//! - **Ownership.** The pool is a cheap handle on shared state (`Arc`): it owns the backend `B`
//!   (the mapping), and every [`P2pBuf`] keeps that state alive, so a buffer cannot outlive its
//!   mapping. The live buffers of a pool hold one reference count between them (taken by the
//!   first, given back by the last, under the allocator's lock; one such count per arena that
//!   has live buffers), so an allocation costs no reference counting of its own. A [`P2pBuf`] is not `Clone` and is freed only by its own drop, so a double free
//!   cannot be written: there is no API that frees by offset or handle.
//! - **Threads.** `P2pPool<B>` and `P2pBuf<B>` are `Send + Sync` when `B` is. The region is cut
//!   into **arenas** (by default one per CPU, each at least 4096 granules; see
//!   [`P2pConfig::arenas`]), each a TLSF behind a spin lock of its own on a cache line of its
//!   own: the crate's spin lock, the one [`IoSpinLock`](crate::publish::IoSpinLock) is built on
//!   (a compare-exchange to take, a release store to give back; with `std`, a waiter yields its
//!   CPU after a short spin). Threads get home arenas in turn as they first allocate, and
//!   allocate from their home, filling it before they spill into the next, so threads on
//!   different CPUs share no lock and no allocator state, and one thread alone keeps the other
//!   arenas free in one piece. A free goes to the arena its buffer is in. Nothing is cached
//!   outside the allocators, so a freed block coalesces at once. When no arena alone can hold
//!   a request, every arena is locked and free space that runs across arena boundaries serves
//!   it: an allocation fails only if no run of free granules of the region holds it, and the
//!   statistics (every arena locked) are those of one allocator over the region, exact
//!   whenever no other thread is inside an allocation or a free. The lock and the buffers'
//!   counts of the pool are model-checked with loom (`tests/loom.rs`).
//!
//! # Example
//! ```
//! use iomem::{backend::MockIo, p2p::{P2pConfig, P2pPool}, Error};
//!
//! // A 1 MiB device region at bus address 0xfd00_0000 (a CMB, say).
//! // SAFETY: a mock at a made-up bus address: no device is given its addresses.
//! let pool = unsafe { P2pPool::with_config(MockIo::new(1 << 20), P2pConfig::new(0xfd00_0000)) }?;
//! let buf = pool.alloc(6000, 4096)?;            // rounded to 8 KiB, bus address 4 KiB aligned
//! assert_eq!(buf.len(), 8192);
//! assert_eq!(buf.bus_addr() % 4096, 0);
//! buf.io().fill(0)?;                            // device memory only through IoMem
//! let stats = pool.stats();
//! assert_eq!(stats.free, (1 << 20) - 8192);
//! assert!(matches!(pool.alloc(2 << 20, 64), Err(Error::Exhausted { .. })));
//! drop(buf);                                    // freed; the pool lives on while buffers do
//! assert_eq!(pool.stats().free, 1 << 20);
//! # Ok::<(), iomem::Error>(())
//! ```

// `config`: how a pool covers its backend. `tlsf`: the allocator proper, in granules. `arena`: the
// region cut into parts with a TLSF and a lock each. `pool`: the shared state and the handle that
// allocates. `buf`: the buffers and their shared counts of the pool.
mod arena;
mod buf;
mod config;
mod lease;
mod pool;
mod tlsf;

pub use buf::P2pBuf;
pub use config::{P2pConfig, DEFAULT_GRANULARITY, MIN_GRANULARITY};
pub use lease::P2pLease;
pub use pool::{P2pPool, P2pStats};
