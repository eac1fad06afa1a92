//! PF_KEY codec: decode and encode of an ADD, and a full ADD through the
//! SADB from bytes (the work behind one `ipseckey` add).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ipsec_benches::add_msg;
use sadb::pfkey::{Dialect, Message};
use sadb::{Config, Jitter, Sadb};

fn bench(c: &mut Criterion) {
    let bytes = add_msg(7).emit(Dialect::Illumos).expect("emit");
    c.bench_function("pfkey_parse_add", |b| {
        b.iter(|| black_box(Message::parse(black_box(&bytes), Dialect::Illumos)))
    });
    let msg = add_msg(7);
    c.bench_function("pfkey_emit_add", |b| {
        b.iter(|| black_box(msg.emit(Dialect::Illumos)))
    });
    let mut db = Sadb::new(Config {
        jitter: Jitter::Off,
        ..Config::default()
    });
    let mut i = 0u32;
    c.bench_function("sadb_add_from_bytes", |b| {
        b.iter(|| {
            i += 1;
            let bytes = add_msg(i).emit(Dialect::Illumos).expect("emit");
            black_box(db.handle_bytes(&bytes, 1_700_000_000))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
