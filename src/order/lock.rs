//! `IoLock` (work in progress).
