//! The DMA providers on bad input: sizes and address bases at the top of their ranges, pools too
//! small, and a builder called on a provider that is already shared. Each gets a typed error or
//! a provider that is still right, never a panic, a wrapped address or memory one side cannot see.

use iomem::dma::{DmaProvider, MockDma, RamDma, MOCK_PAGE};
use iomem::order::Arch;
use iomem::Error;

#[test]
fn ram_dma_refuses_a_length_that_cannot_be_rounded_to_pages() {
    // SAFETY: no address of this provider is given to a device.
    let dma = unsafe { RamDma::new(0x1_0000_0000) };
    for len in [usize::MAX, usize::MAX - 4094, usize::MAX - 100] {
        assert!(
            matches!(dma.alloc(len), Err(Error::Overflow { offset: 0, len: l }) if l == len),
            "{len:#x}"
        );
    }
    // The provider still works after refusing.
    assert_eq!(dma.alloc(1).unwrap().len(), 4096);
}

#[test]
fn ram_dma_refuses_addresses_past_the_top_of_the_address_space() {
    // SAFETY: as above.
    let dma = unsafe { RamDma::new(u64::MAX - 0x7ff) };
    assert!(matches!(dma.alloc(4096), Err(Error::Overflow { .. })));

    // One page fits below the top; the next does not, and refusing it moves nothing.
    // SAFETY: as above.
    let dma = unsafe { RamDma::new(u64::MAX - 0x1fff) };
    let r = dma.alloc(4096).unwrap();
    let l = r.lease();
    assert_eq!(l.addr(0xfff).unwrap().get(), u64::MAX - 0x1000);
    assert!(l.addr(0x1000).is_err());
    for _ in 0..2 {
        assert!(matches!(dma.alloc(4096), Err(Error::Overflow { .. })));
    }
}

#[test]
fn mock_dma_exhaustion_names_the_largest_free_run() {
    let dma = MockDma::new(4 * MOCK_PAGE);
    let a = dma.alloc(MOCK_PAGE).unwrap();
    let _b = dma.alloc(MOCK_PAGE).unwrap();
    drop(a); // free: page 0, pages 2 and 3
    match dma.alloc(3 * MOCK_PAGE) {
        Err(Error::Exhausted {
            size,
            free,
            largest,
            ..
        }) => {
            assert_eq!(size, 3 * MOCK_PAGE);
            assert_eq!(free, 3 * MOCK_PAGE);
            assert_eq!(largest, 2 * MOCK_PAGE);
        }
        other => panic!("{other:?}"),
    }

    // Device-contiguous requests see the gaps: 4 free pages, in runs of 2.
    let dma = MockDma::new(4 * MOCK_PAGE).with_scatter(2);
    match dma.alloc_contiguous(3 * MOCK_PAGE) {
        Err(Error::Exhausted { free, largest, .. }) => {
            assert_eq!(free, 4 * MOCK_PAGE);
            assert_eq!(largest, 2 * MOCK_PAGE);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        dma.alloc_contiguous(2 * MOCK_PAGE).unwrap().len(),
        2 * MOCK_PAGE
    );
}

/// A clone is another handle on the same memory (a device model's): a builder called on it
/// must not leave it allocating from shared pages while its device side reaches other memory.
#[test]
fn a_builder_on_a_shared_mock_makes_an_independent_provider() {
    let dma = MockDma::new(4 * MOCK_PAGE);
    let dev = dma.clone().with_arch(Arch::Aarch64);
    let r = dma.alloc(MOCK_PAGE).unwrap();
    let l = r.lease();
    let addr = l.addr(0).unwrap();
    // `dev` is not a view of `dma`'s memory: its device side refuses the address rather than
    // writing memory the CPU never reads.
    assert!(dev.device_write(addr, &[0xab; 8]).is_err());
    // And it allocates from its own pages: `dma`'s allocation is not counted there.
    assert_eq!(dev.allocated(), 0);
    assert_eq!(dma.allocated(), MOCK_PAGE);
    let d = dev.alloc(4 * MOCK_PAGE).unwrap();
    assert_eq!(d.len(), 4 * MOCK_PAGE);

    // The same for a new base: `dma`'s own device side still finds its memory where it was.
    let moved = dma.clone().with_base(0x8000_0000);
    assert!(moved.device_write(addr, &[1; 8]).is_err());
    dma.device_write(addr, &[0xcd; 8]).unwrap();
    assert_eq!(r.mem().try_read::<u64>(0), Ok(0xcdcd_cdcd_cdcd_cdcd));

    // An unshared provider is configured in place, as before.
    let alone = MockDma::new(2 * MOCK_PAGE).with_base(0x8000_0000);
    let a = alone.alloc(MOCK_PAGE).unwrap();
    assert_eq!(a.lease().addr(0).unwrap().get(), 0x8000_0000);
}

#[test]
fn a_scatter_run_longer_than_the_arena_is_no_scatter() {
    for run in [usize::MAX - 1, usize::MAX / MOCK_PAGE, 1 << 40] {
        let dma = MockDma::new(2 * MOCK_PAGE).with_scatter(run);
        let r = dma.alloc(2 * MOCK_PAGE).unwrap();
        assert!(r.contiguous(0..2 * MOCK_PAGE).unwrap());
        let l = r.lease();
        let addr = l.addr(MOCK_PAGE).unwrap();
        dma.device_write(addr, &[7; 4]).unwrap();
        assert_eq!(r.mem().try_read::<u32>(MOCK_PAGE), Ok(0x0707_0707));
        // An address past the memory is refused, not a panic.
        let past = l.addr(2 * MOCK_PAGE - 1).unwrap().get() + 1;
        // SAFETY: the address is only given to the mock's device side, which checks it.
        let past = unsafe { iomem::dma::DmaAddr::from_raw(past) };
        assert!(dma.device_write(past, &[0]).is_err());
    }
}
