//! Anti-replay window: check + commit per packet, in order and with
//! reordering inside a 64- and a 4096-packet window.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sadb::replay::ReplayWindow;

fn bench(c: &mut Criterion) {
    for size in [64u32, 4096] {
        let mut w = ReplayWindow::new(size).expect("window");
        let mut seq = 0u64;
        c.bench_function(&format!("replay_in_order_w{size}"), |b| {
            b.iter(|| {
                seq += 1;
                if w.check(seq).is_ok() {
                    let _ = w.commit(seq);
                }
                black_box(&w);
            })
        });
        let mut w = ReplayWindow::new(size).expect("window");
        let mut n = 0u64;
        c.bench_function(&format!("replay_reordered_w{size}"), |b| {
            b.iter(|| {
                n += 1;
                // Pairs swapped: 2,1,4,3,...
                let seq = if n % 2 == 1 { n + 1 } else { n - 1 };
                if w.check(seq).is_ok() {
                    let _ = w.commit(seq);
                }
                black_box(&w);
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
