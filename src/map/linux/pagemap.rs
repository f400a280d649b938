//! Physical addresses of this process's pages, from `/proc/self/pagemap`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::string::ToString;
use std::vec::Vec;

use super::error::io_err;
use super::{Error, Result};

/// Physical addresses of `pages` pages starting at virtual address `va`, from
/// `/proc/self/pagemap` (8 bytes per page: bit 63 present, bits 0–54 frame number).
pub(super) fn pagemap_frames(va: usize, pages: usize, page: usize) -> Result<Vec<u64>> {
    let path = Path::new("/proc/self/pagemap");
    let file = File::open(path).map_err(|e| io_err("open", path, e))?;
    let mut raw = std::vec![0u8; pages * 8];
    file.read_exact_at(&mut raw, (va / page) as u64 * 8)
        .map_err(|e| io_err("read", path, e))?;
    let mut out = Vec::with_capacity(pages);
    for chunk in raw.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let entry = u64::from_le_bytes(b);
        let pfn = entry & ((1 << 55) - 1);
        if entry >> 63 == 0 {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                why: "a locked page is reported not present".to_string(),
            });
        }
        if pfn == 0 {
            return Err(Error::PermissionDenied {
                path: path.to_path_buf(),
            });
        }
        out.push(pfn * page as u64);
    }
    Ok(out)
}
