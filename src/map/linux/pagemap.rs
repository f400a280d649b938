//! Physical addresses of this process's pages, from `/proc/self/pagemap`
//! (`Documentation/admin-guide/mm/pagemap.rst`: one little-endian 64-bit entry per virtual page;
//! bit 63 "present", bits 0–54 the page frame number).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::vec::Vec;

use super::error::io_err;
use super::{Error, Result};

/// Bit 63 of an entry: the page is present in RAM.
const PM_PRESENT: u64 = 1 << 63;
/// Bits 0–54 of an entry: the page frame number, when present.
const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// Physical addresses of `pages` pages of `page` bytes starting at virtual address `va`.
pub(super) fn pagemap_frames(va: usize, pages: usize, page: usize) -> Result<Vec<u64>> {
    let path = Path::new("/proc/self/pagemap");
    let file = File::open(path).map_err(|e| io_err("open", path, e))?;
    let too_far = || {
        Error::Iomem(crate::Error::Overflow {
            offset: va,
            len: pages.saturating_mul(page),
        })
    };
    let bytes = pages.checked_mul(8).ok_or_else(too_far)?;
    let at = u64::try_from(va / page)
        .ok()
        .and_then(|i| i.checked_mul(8))
        .ok_or_else(too_far)?;
    let mut raw = std::vec![0u8; bytes];
    file.read_exact_at(&mut raw, at)
        .map_err(|e| io_err("read", path, e))?;
    frames(&raw, page, path)
}

/// Decodes pagemap entries `raw` (8 bytes each) into the physical address of each page.
/// `path` is for messages.
fn frames(raw: &[u8], page: usize, path: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(raw.len() / 8);
    for (i, chunk) in raw.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let entry = u64::from_le_bytes(b);
        let bad = Error::BadFrame { page: i, entry };
        if entry & PM_PRESENT == 0 {
            return Err(bad);
        }
        let pfn = entry & PM_PFN_MASK;
        // Without CAP_SYS_ADMIN the kernel reports every frame number as 0.
        if pfn == 0 {
            return Err(Error::PermissionDenied {
                path: path.to_path_buf(),
            });
        }
        out.push(pfn.checked_mul(page as u64).ok_or(bad)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[u64]) -> Vec<u8> {
        entries.iter().flat_map(|e| e.to_le_bytes()).collect()
    }

    #[test]
    fn entries_decode_to_physical_addresses() {
        let p = Path::new("pagemap");
        let flags = PM_PRESENT | 1 << 62 | 1 << 56; // present, plus bits that are not the frame
        assert_eq!(
            frames(&raw(&[flags | 0x1234, flags | 0x10]), 4096, p).unwrap(),
            [0x1234 << 12, 0x10 << 12]
        );
        assert!(frames(&[], 4096, p).unwrap().is_empty());
    }

    #[test]
    fn a_missing_hidden_or_impossible_frame_is_an_error_not_a_panic() {
        let p = Path::new("pagemap");
        assert!(matches!(
            frames(&raw(&[PM_PRESENT | 1, 0x1234]), 4096, p),
            Err(Error::BadFrame {
                page: 1,
                entry: 0x1234
            })
        ));
        assert!(matches!(
            frames(&raw(&[PM_PRESENT]), 4096, p),
            Err(Error::PermissionDenied { .. })
        ));
        // A 55-bit frame number times a 4 KiB page does not fit in 64 bits.
        assert!(matches!(
            frames(&raw(&[PM_PRESENT | PM_PFN_MASK]), 4096, p),
            Err(Error::BadFrame { page: 0, .. })
        ));
    }
}
