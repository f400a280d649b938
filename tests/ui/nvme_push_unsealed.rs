// A queue pushes only what holds the memory its command names: a `Request` (its memory lent,
// or vouched for with the unsafe `Request::new`) or a bare `Command` naming none. `Push` is
// sealed, so no type outside the crate can hand a queue a bare command with a copied data
// pointer and claim it names nothing; and `Request::new` needs `unsafe`.
use iomem::backend::MockIo;
use iomem::nvme::cmd::{Command, Lent, Push, Request};

struct Smuggled(Command);

impl Push<MockIo> for Smuggled {
    fn names_unheld_memory(&self) -> bool {
        false
    }
    fn into_parts(self) -> (Command, Lent<MockIo>) {
        (self.0, Lent::none())
    }
}

fn vouch(cmd: Command) -> Request<MockIo> {
    Request::new(cmd, Lent::none())
}

fn main() {}
