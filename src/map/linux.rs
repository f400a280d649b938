//! Linux sysfs BAR mappings (work in progress).
