//! A queue pair's command identifiers: a command's cid is its submission queue slot while that
//! cid is free, another free cid when a command completing out of order still holds it, and a
//! cid is never given to two commands in flight, nor while a kept completion holds it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use iomem::backend::MockIo;
use iomem::dma::MockDma;
use iomem::nvme::cmd::nvm;
use iomem::nvme::cq::CompletionQueue;
use iomem::nvme::ctrl::QueuePair;
use iomem::nvme::regs::{offsets, Cap};
use iomem::nvme::sq::{HostSqRing, SubmissionQueue};
use iomem::nvme::Error;

const CAP: u64 = 0x20_0a01_0fff;
const ENTRIES: u16 = 8;

type Qp<'a> = QueuePair<HostSqRing<Arc<MockIo>>, Arc<MockIo>, &'a MockIo>;

fn bar() -> MockIo {
    let bar = MockIo::new(0x2000);
    bar.poke(offsets::CAP, &CAP.to_le_bytes());
    bar.poke(offsets::CSTS, &1u32.to_le_bytes());
    bar
}

fn pair<'a>(bar: &'a MockIo, dma: &MockDma) -> Qp<'a> {
    let cap = Cap::decode(CAP).unwrap();
    let ring = HostSqRing::new(dma.alloc_contiguous(usize::from(ENTRIES) * 64).unwrap()).unwrap();
    let sq = SubmissionQueue::new(ring, ENTRIES.into(), bar, cap, 1).unwrap();
    let cq =
        CompletionQueue::new(dma.alloc_contiguous(4096).unwrap(), ENTRIES, bar, cap, 1).unwrap();
    QueuePair::new(sq, cq, bar, Duration::from_secs(30))
}

/// The device side: posts completions into the pair's CQ in the order it is told.
struct Device {
    tail: u16,
    phase: bool,
}

impl Device {
    fn complete(&mut self, qp: &Qp<'_>, dma: &MockDma, cid: u16) {
        // Everything pushed was fetched: the SQ head is the tail.
        // CAST: the tail is a slot of an 8-entry queue.
        let sq_head = qp.sq().tail() as u16;
        let mut e = [0u8; 16];
        e[8..10].copy_from_slice(&sq_head.to_le_bytes());
        e[10..12].copy_from_slice(&1u16.to_le_bytes());
        e[12..14].copy_from_slice(&cid.to_le_bytes());
        e[14..16].copy_from_slice(&u16::from(self.phase).to_le_bytes());
        dma.device_write(qp.cq().entry_addr(self.tail).unwrap(), &e)
            .unwrap();
        self.tail += 1;
        if self.tail == ENTRIES {
            self.tail = 0;
            self.phase = !self.phase;
        }
    }
}

#[test]
fn in_order_completions_keep_the_slot_as_cid() {
    let (bar, dma) = (bar(), MockDma::new(1 << 20));
    let mut qp = pair(&bar, &dma);
    let mut dev = Device {
        tail: 0,
        phase: true,
    };
    for k in 0..3 * u32::from(ENTRIES) {
        let slot = qp.sq().tail();
        let cid = qp.push(nvm::flush(1)).unwrap();
        assert_eq!(u32::from(cid), slot, "command {k}");
        qp.ring().unwrap();
        dev.complete(&qp, &dma, cid);
        let mut got = Vec::new();
        assert_eq!(qp.poll(4, |d| got.push(d.cid)).unwrap(), 1);
        assert_eq!(got, [cid]);
    }
    assert_eq!(qp.in_flight(), 0);
}

#[test]
fn out_of_order_completions_never_give_a_cid_out_twice() {
    let (bar, dma) = (bar(), MockDma::new(1 << 20));
    let mut qp = pair(&bar, &dma);
    let mut dev = Device {
        tail: 0,
        phase: true,
    };
    let mut out = BTreeSet::new();
    let mut seed = 0x2545_f491u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut not_slot = 0;
    for round in 0..400 {
        // Push until full (or a few), each cid new among those in flight.
        let pushes = rand() % 5;
        for _ in 0..pushes {
            let slot = qp.sq().tail();
            match qp.push(nvm::flush(1)) {
                Ok(cid) => {
                    assert!(out.insert(cid), "round {round}: cid {cid} given out twice");
                    not_slot += usize::from(u32::from(cid) != slot);
                }
                Err(Error::QueueFull { .. }) => {
                    assert_eq!(qp.free_slots(), 0, "round {round}");
                    // Full at `entries - 1` taken cids.
                    assert_eq!(out.len(), usize::from(ENTRIES) - 1, "round {round}");
                    break;
                }
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        qp.ring().unwrap();
        assert_eq!(qp.in_flight(), out.len());
        // Complete a random command in flight (out of order), sometimes two.
        for _ in 0..1 + rand() % 2 {
            if out.is_empty() {
                break;
            }
            let pick = *out.iter().nth(rand() as usize % out.len()).unwrap();
            dev.complete(&qp, &dma, pick);
            let mut got = Vec::new();
            assert_eq!(qp.poll(8, |d| got.push(d.cid)).unwrap(), 1);
            assert_eq!(got, [pick], "round {round}");
            out.remove(&pick);
        }
    }
    // The out-of-order completions made the pair take cids other than the slot.
    assert!(not_slot > 0);
}

#[test]
fn a_kept_completion_holds_its_cid_until_it_is_handed_out() {
    let (bar, dma) = (bar(), MockDma::new(1 << 20));
    let mut qp = pair(&bar, &dma);
    let mut dev = Device {
        tail: 0,
        phase: true,
    };
    let a = qp.push(nvm::flush(1)).unwrap();
    let b = qp.push(nvm::flush(1)).unwrap();
    qp.ring().unwrap();
    // `a` completes first, while the caller waits for `b`: `a`'s completion is kept.
    dev.complete(&qp, &dma, a);
    dev.complete(&qp, &dma, b);
    assert_eq!(qp.wait(b).unwrap().cid, b);
    assert_eq!(qp.in_flight(), 1);
    // Pushes until full never take `a`'s cid while its completion is kept.
    let mut cids = Vec::new();
    while let Ok(cid) = qp.push(nvm::flush(1)) {
        cids.push(cid);
    }
    assert_eq!(cids.len(), usize::from(ENTRIES) - 2);
    assert!(!cids.contains(&a), "{cids:?}");
    // A duplicate completion for `a` names no command in flight.
    dev.complete(&qp, &dma, a);
    let mut got = Vec::new();
    let r = qp.poll(8, |d| got.push(d.cid));
    // The kept completion is handed out first, then the duplicate is refused.
    assert_eq!(got, [a]);
    assert!(
        matches!(r, Err(Error::UnknownCid { cid, .. }) if cid == a),
        "{r:?}"
    );
    // Now `a` is free again and the next push can take it.
    assert_eq!(qp.in_flight(), usize::from(ENTRIES) - 2);
    assert_eq!(qp.push(nvm::flush(1)).unwrap(), a);
}

/// A completion a `wait` kept is handed out only after the barrier its data needs: on x86_64
/// a pair whose data may be in device memory (a write-combining CMB) issues `rmb` after a
/// batch of such completions, also when the batch was reaped by a `wait` that then timed out
/// and the completion is handed out later, by a poll or a wait for it, with no new completion
/// in between.
#[test]
fn a_kept_completion_is_handed_out_after_the_read_barrier() {
    let bar = bar().with_arch(iomem::Arch::X86_64);
    let dma = MockDma::new(1 << 20);
    let mut qp = pair(&bar, &dma);
    qp.set_device_data(true);
    qp.set_timeout(Duration::from_millis(20));
    let mut dev = Device {
        tail: 0,
        phase: true,
    };
    let rmb_issued = || bar.barriers().contains(&iomem::Barrier::Rmb);
    // Poll, then wait: each hands out the kept completion.
    for by_poll in [true, false] {
        let a = qp.push(nvm::flush(1)).unwrap();
        let b = qp.push(nvm::flush(1)).unwrap();
        qp.ring().unwrap();
        dev.complete(&qp, &dma, b);
        assert!(matches!(qp.wait(a), Err(Error::Timeout { cid, .. }) if cid == a));
        bar.clear_events();
        if by_poll {
            let mut seen = Vec::new();
            assert_eq!(qp.poll(4, |d| seen.push((d.cid, rmb_issued()))).unwrap(), 1);
            assert_eq!(seen, [(b, true)], "the kept completion came before rmb");
        } else {
            assert_eq!(qp.wait(b).unwrap().cid, b);
            assert!(rmb_issued(), "the kept completion came before rmb");
        }
        dev.complete(&qp, &dma, a);
        assert_eq!(qp.poll(4, |_| {}).unwrap(), 1);
    }
}
