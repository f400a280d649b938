//! Access plans: for any (offset, length, width policy), `copy::plan` either reports the
//! overflow of `offset + len` or covers `[offset, offset + len)` exactly once, in ascending
//! order, with naturally aligned accesses no wider than the policy.
#![no_main]

use iomem::copy::plan;
use iomem::{Error, WidthPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let offset = usize::from_le_bytes(data[0..8].try_into().unwrap());
    // keep most lengths small enough to walk, but let some overflow
    let raw_len = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let len = if data[16] & 0x80 != 0 { raw_len as usize } else { (raw_len % 4096) as usize };
    let width = 1usize << (data[16] & 7);
    let Ok(policy) = WidthPolicy::new(width) else {
        // only 1, 2, 4, 8 and (where the CPU has it) 16 are policies
        assert!(width > 8);
        return;
    };
    match plan(offset, len, policy) {
        Err(Error::Overflow { .. }) => assert!(offset.checked_add(len).is_none()),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(p) => {
            let end = offset.checked_add(len).expect("plan of an overflowing range");
            if len > 1 << 16 {
                return; // too long to walk every access; the short cases cover the shapes
            }
            let mut at = offset;
            let mut n = 0;
            for a in p.accesses() {
                assert_eq!(a.offset, at, "gap or overlap");
                assert!(a.width.is_power_of_two() && a.width <= policy.max_width());
                assert_eq!(a.offset % a.width, 0, "misaligned access");
                at += a.width;
                n += 1;
            }
            assert_eq!(at, end, "plan does not end at the range's end");
            assert_eq!(n, p.len());
            assert_eq!(p.is_empty(), len == 0);
        }
    }
});
