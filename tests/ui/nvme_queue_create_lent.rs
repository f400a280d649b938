// A Create I/O Queue command is not a `Command`: its ring is used by the controller until the
// queue is deleted, so neither a request that hands the ring back at the create's completion
// (`Prp::into_request`) nor a queue's bare push takes it. (`QueueCreate::into_command` does,
// and it is `unsafe`.)
use iomem::dma::MockDma;
use iomem::nvme::cmd::admin;
use iomem::nvme::prp::{no_list, PageSize, PrpBuilder};

fn main() -> Result<(), iomem::nvme::Error> {
    let dma = MockDma::new(1 << 16);
    let ring = dma.alloc_contiguous(4096)?;
    let prp = PrpBuilder::new(PageSize::new(4096)?, None).lend(ring.lease(), 0..4096, no_list)?;
    let request = prp.into_request(|d| admin::create_io_cq(1, 64, d.prp1(), None))?;
    let bare: iomem::nvme::cmd::Command = admin::create_io_sq(1, 64, ring.lease().addr(0)?, 1,
                                                              admin::Priority::Medium)?;
    drop((request, bare));
    Ok(())
}
