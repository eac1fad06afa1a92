//! Heap bytes per stored SA with 1,000,000 SAs (target: at most 1 KiB).
//!
//!     cargo run --release -p ipsec-benches --example sa_memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipsec_benches::add_msg;
use sadb::{Config, Jitter, Sadb};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let before = LIVE.load(Ordering::Relaxed);
    let mut db = Sadb::new(Config {
        jitter: Jitter::Off,
        ..Config::default()
    });
    for i in 0..n {
        db.handle(&add_msg(i), 1_700_000_000);
    }
    let used = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{} SAs: {} bytes live, {:.0} bytes per SA (Sa struct: {} bytes)",
        db.len(),
        used,
        used as f64 / db.len().max(1) as f64,
        std::mem::size_of::<sadb::Sa>()
    );
}
