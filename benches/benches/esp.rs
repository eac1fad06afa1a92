//! ESP and AH encap and decap per algorithm and packet size, each next to
//! the bare cipher + MAC (the engine's own crypto objects on the same
//! bytes, `ipsec_benches::esp::Bare`), measured in the same run (targets:
//! framing <= 10% over the primitives at 1400 B; AES-128-GCM 20 Gbit/s
//! and 3 Mpps at 64 B per core). `ipsec-bench esp` measures the same
//! operations with the same code.

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipsec_benches::esp::{Op, PathBench, Suite, DEFAULT_SIZES};
use sadb::alg::{AuthAlg, EncrAlg};

fn bench(c: &mut Criterion) {
    let suites = [
        Suite::esp(EncrAlg::AesGcm16, AuthAlg::None),
        Suite::esp(EncrAlg::AesCbc, AuthAlg::HmacSha1),
        Suite::esp(EncrAlg::AesCbc, AuthAlg::HmacSha256),
        Suite::esp(EncrAlg::ChaCha20Poly1305, AuthAlg::None),
        Suite::esp(EncrAlg::AesCtr, AuthAlg::HmacSha1),
        Suite::esp(EncrAlg::Null, AuthAlg::HmacSha1),
        Suite::ah(AuthAlg::HmacSha1),
        Suite::ah(AuthAlg::HmacSha256),
    ];
    for suite in suites {
        let mut g = c.benchmark_group(format!(
            "{}/{}",
            suite.proto.name(),
            suite.name().replace('/', "-")
        ));
        for size in DEFAULT_SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut b = match PathBench::new(&suite, size) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: {e}", suite.name());
                    continue;
                }
            };
            for (name, op) in [
                ("encap", Op::Encap),
                ("decap", Op::Decap),
                ("bare", Op::BareSeal),
                ("bare_open", Op::BareOpen),
            ] {
                g.bench_with_input(BenchmarkId::new(name, size), &size, |bn, _| {
                    bn.iter(|| black_box(op.run(&mut b)))
                });
            }
            // For reference: the portable RustCrypto AES-GCM, which the
            // engine uses without its `ring` feature.
            if suite.encr == EncrAlg::AesGcm16 {
                let rc = aes_gcm::Aes128Gcm::new_from_slice(&[0x3c; 16]);
                let mut data = vec![0u8; size];
                if let Ok(rc) = rc {
                    g.bench_with_input(
                        BenchmarkId::new("rustcrypto_aes_gcm", size),
                        &size,
                        |bn, _| {
                            bn.iter(|| {
                                black_box(rc.encrypt_in_place_detached(
                                    (&[7u8; 12]).into(),
                                    &[1u8; 8],
                                    &mut data,
                                ))
                            })
                        },
                    );
                }
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
