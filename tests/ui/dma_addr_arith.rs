// A DMA address comes from the memory that owns it: it has no arithmetic (PRP2 as `addr + 4096`
// across scattered pages would point at the wrong page), and DMA memory gives no slice to
// `memcpy` into.
use iomem::dma::MockDma;

fn main() {
    let dma = MockDma::new(1 << 16);
    let buf = dma.alloc(8192).unwrap();
    let lease = buf.lease();
    let prp1 = lease.addr(0).unwrap();
    let _prp2 = prp1 + 4096;
    let _bytes: &[u8] = &buf.mem();
}
