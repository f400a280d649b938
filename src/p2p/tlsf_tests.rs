//! Tests of the TLSF allocator proper.
use super::*;

impl Tlsf {
    fn alloc_node(&mut self, n: u64, align_g: u64) -> Option<u32> {
        self.alloc(n, align_g).map(|(i, start)| {
            assert_eq!(self.start(i), start);
            i
        })
    }
}

#[test]
fn classes_round_as_documented() {
    // the branch-free class equals the two-level definition
    let two_level = |n: u64| {
        if n < SL as u64 {
            n as usize
        } else {
            let f = 63 - n.leading_zeros();
            let sl = (n >> (f - SL_BITS)) as usize - SL;
            (f - SL_BITS + 1) as usize * SL + sl
        }
    };
    let samples = (1..5000u64)
        .chain((4..32).flat_map(|b| [(1u64 << b) - 1, 1 << b, (1 << b) + 1, 3 << (b - 1)]))
        .chain([u32::MAX as u64]);
    for n in samples {
        let c = class_of(n as u32);
        assert_eq!(c, two_level(n), "n={n}");
        assert!(c < CLASSES);
        let cu = class_at_least(n);
        assert!(cu >= c);
        // every size in the round-up class is ≥ n, and the class below has smaller sizes
        let lo = if cu < SL {
            cu as u64
        } else {
            let e = (cu / SL) as u32 + SL_BITS - 1;
            (1u64 << e) + (((cu % SL) as u64) << (e - SL_BITS))
        };
        assert!(lo >= n, "n={n} class {cu} starts at {lo}");
        if lo < 1 << 32 {
            assert_eq!(class_of(lo as u32), cu);
        }
        assert!(cu == c || cu == c + 1, "n={n}");
    }
    assert_eq!(class_of(MAX_GRANULES as u32) / SL, FL - 1);
    assert_eq!(class_at_least(MAX_GRANULES), class_of(MAX_GRANULES as u32));
    assert!(class_at_least(u32::MAX as u64 + 1) >= CLASSES);
}

#[test]
fn a_close_block_of_the_request_class_is_preferred() {
    // classes: 100..=103 is one, 104..=107 the next; free blocks of 103 and 200 granules
    let mut t = Tlsf::new(305, 0);
    let _a = t.alloc_node(1, 1).unwrap();
    let b = t.alloc_node(200, 1).unwrap();
    let _c = t.alloc_node(1, 1).unwrap();
    let d = t.alloc_node(103, 1).unwrap();
    assert_eq!((t.start(b), t.start(d)), (104, 0));
    assert!(t.free(d));
    assert!(t.free(b));
    assert_eq!(class_of(103), class_of(101));
    assert!(class_at_least(101) > class_of(103));
    // 101 granules: the 103-granule block of its own class, not a cut from the 200
    let x = t.alloc_node(101, 1).unwrap();
    assert_eq!(t.start(x), 2);
    assert!(t.free(x));
    // 104 granules fit no block of their class: the 200-granule block
    let y = t.alloc_node(104, 1).unwrap();
    assert_eq!(t.start(y), 200);
    // of two fitting blocks of the class, the smaller (the exact fit)
    let mut t = Tlsf::new(1000, 0);
    let nodes: Vec<u32> = [1, 102, 1, 103, 1]
        .iter()
        .map(|&n| t.alloc_node(n, 1).unwrap())
        .collect();
    let exact = t.start(nodes[1]);
    assert!(t.free(nodes[1]));
    assert!(t.free(nodes[3])); // first on the list
    let z = t.alloc_node(102, 1).unwrap();
    assert_eq!(t.start(z), exact);
}

#[test]
fn split_and_coalesce() {
    // allocations take the top of the free block they come from
    let mut t = Tlsf::new(100, 0);
    let a = t.alloc_node(10, 1).unwrap();
    let b = t.alloc_node(20, 1).unwrap();
    let c = t.alloc_node(30, 1).unwrap();
    assert_eq!((t.start(a), t.start(b), t.start(c)), (90, 70, 40));
    assert_eq!((t.free, t.free_blocks), (40, 1));
    assert!(t.free(b)); // neither neighbour free
    assert!(!t.free(b));
    assert_eq!((t.largest_free(), t.free_blocks), (40, 2));
    assert!(t.free(a)); // merges into b's block (prev free)
    assert_eq!((t.largest_free(), t.free_blocks), (40, 2));
    assert!(t.free(c)); // both neighbours free
    assert_eq!((t.free, t.largest_free(), t.free_blocks), (100, 100, 1));
    // next grows down over a freed block
    let x = t.alloc_node(50, 1).unwrap();
    let y = t.alloc_node(50, 1).unwrap();
    assert_eq!((t.start(x), t.start(y)), (50, 0));
    assert!(t.free(x));
    assert!(t.free(y));
    assert_eq!((t.free, t.largest_free(), t.free_blocks), (100, 100, 1));
    // aligned: base 3 granules, align 8 → highest start with (3 + start) % 8 == 0 below 60
    let mut t = Tlsf::new(64, 3);
    let x = t.alloc_node(4, 8).unwrap();
    assert_eq!(t.start(x), 53);
    assert_eq!(t.free_blocks, 2); // below it, and the 7-granule slack above it
    assert!(t.free(x));
    assert_eq!((t.free_blocks, t.largest_free()), (1, 64));
    // an alignment that only the region's first granule meets
    let mut t = Tlsf::new(64, 0);
    assert_eq!(t.alloc_node(1, 1 << 40).map(|i| t.start(i)), Some(0));
    assert!(t.alloc_node(1, 1 << 40).is_none());
}
