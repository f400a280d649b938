//! Report section `copy` (work in progress).

use crate::{Opts, Row};

pub fn run(_opts: Opts) -> Vec<Row> {
    Vec::new()
}
