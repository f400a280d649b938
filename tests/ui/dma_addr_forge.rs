// A DMA address cannot be made from a number without `unsafe`: the caller would be vouching that
// a device may use the memory behind it.
use iomem::dma::DmaAddr;

fn main() {
    let _forged = DmaAddr::from_raw(0x1000);
}
