//! Heap bytes per stored SA with 1,000,000 SAs (target: at most 1 KiB).
//! `ipsec-bench sadb` reports the same figure with the same allocator.
//!
//!     cargo run --release -p ipsec-benches --example sa_memory [N]

use ipsec_benches::add_msg;
use ipsec_benches::alloc::{live_bytes, CountingAlloc};
use sadb::{Config, Jitter, Sadb};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

fn main() {
    CountingAlloc::installed();
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let before = live_bytes().unwrap_or(0);
    let mut db = Sadb::new(Config {
        jitter: Jitter::Off,
        ..Config::default()
    });
    for i in 0..n {
        db.handle(&add_msg(i), 1_700_000_000);
    }
    let used = live_bytes().unwrap_or(0).saturating_sub(before);
    println!(
        "{} SAs: {} bytes live, {:.0} bytes per SA (Sa struct: {} bytes)",
        db.len(),
        used,
        used as f64 / db.len().max(1) as f64,
        std::mem::size_of::<sadb::Sa>()
    );
}
