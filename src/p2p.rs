//! Peer-to-peer memory allocator over device memory (work in progress).
