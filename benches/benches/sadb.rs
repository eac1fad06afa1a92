//! SADB add and lookup with 1,000,000 SAs, next to a bare HashMap lookup
//! measured in the same run (targets: lookup < 100 ns and <= 1.5x bare).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use ipsec_benches::{add_msg, dst, spi};
use sadb::pfkey::satype;
use sadb::{Config, Jitter, Sadb};

const N: u32 = 1_000_000;

fn loaded() -> Sadb {
    let mut db = Sadb::new(Config {
        jitter: Jitter::Off,
        ..Config::default()
    });
    for i in 0..N {
        let r = db.handle(&add_msg(i), 1_700_000_000);
        debug_assert_eq!(r.reply().map(|m| m.errno), Some(0));
    }
    assert_eq!(db.len(), N as usize, "every ADD must succeed");
    db
}

fn bench(c: &mut Criterion) {
    let db = loaded();
    let bare: HashMap<(u32, IpAddr), usize> =
        (0..N).map(|i| ((spi(i), dst(i)), i as usize)).collect();
    let mut g = c.benchmark_group("sadb_1M");
    let mut i = 0u32;
    g.bench_function("lookup", |b| {
        b.iter(|| {
            i = (i.wrapping_mul(2_654_435_761).wrapping_add(1)) % N;
            black_box(db.lookup(satype::ESP, spi(i), dst(i)))
        })
    });
    let mut j = 0u32;
    g.bench_function("bare_hashmap_lookup", |b| {
        b.iter(|| {
            j = (j.wrapping_mul(2_654_435_761).wrapping_add(1)) % N;
            black_box(bare.get(&(spi(j), dst(j))))
        })
    });
    // The same map with the SADB's hasher, to separate hashing from the rest.
    let fold: HashMap<(u32, IpAddr), usize, foldhash::fast::RandomState> =
        (0..N).map(|i| ((spi(i), dst(i)), i as usize)).collect();
    let mut f = 0u32;
    g.bench_function("bare_hashmap_foldhash_lookup", |b| {
        b.iter(|| {
            f = (f.wrapping_mul(2_654_435_761).wrapping_add(1)) % N;
            black_box(fold.get(&(spi(f), dst(f))))
        })
    });
    drop(fold);
    drop(bare);
    let mut db = db;
    let mut k = N;
    g.bench_function("add_and_delete_at_1M", |b| {
        b.iter(|| {
            k += 1;
            let r = db.handle(&add_msg(k), 1_700_000_000);
            if let Some(id) = db.lookup(satype::ESP, spi(k), dst(k)) {
                db.remove(id);
            }
            black_box(r)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
