//! Migrating from `volatile-register` (work in progress).
