// A backend that forwards to another but forgets `barrier_after_read` must not compile: with a
// default body it would silently drop the loaded value powerpc's `readl` barrier depends on.
use iomem::backend::Word;
use iomem::order::{Arch, Barrier};
use iomem::{Backend, Caching, Mmio};

struct Wrapper(Mmio);

// SAFETY: forwards to the `Mmio`.
unsafe impl Backend for Wrapper {
    fn size(&self) -> usize {
        self.0.size()
    }
    fn base_align(&self) -> usize {
        self.0.base_align()
    }
    fn caching(&self) -> Caching {
        self.0.caching()
    }
    fn arch(&self) -> Arch {
        self.0.arch()
    }
    unsafe fn read<W: Word>(&self, off: usize) -> W {
        // SAFETY: the caller upholds the same contract.
        unsafe { self.0.read(off) }
    }
    unsafe fn write<W: Word>(&self, off: usize, value: W) {
        // SAFETY: the caller upholds the same contract.
        unsafe { self.0.write(off, value) }
    }
    fn barrier(&self, barrier: Barrier) {
        self.0.barrier(barrier)
    }
}

fn main() {}
