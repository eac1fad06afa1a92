//! The engine split for a multi-threaded data path: the SADB work
//! (sequence numbers, replay windows, lifetimes) is done under one lock,
//! the crypto by several threads at once with the SA's shared cipher
//! state. Sequence numbers stay unique per SA (RFC 4303 3.3.3), and of
//! two copies of a packet opened at once only one is delivered (3.4.3).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};

use common::*;
use esp_ah::{DropReason, PacketBuf, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};

const THREADS: usize = 4;
const PER_THREAD: usize = 500;

fn gcm() -> SaSpec {
    let mut s = SaSpec::esp(
        0x51,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    s.replay = 32;
    s
}

/// Sends PER_THREAD packets from each of THREADS threads through one
/// outbound SA, locking the host only for begin and end.
fn send_from_threads(spec: &SaSpec) -> (Vec<(u64, Vec<u8>)>, Host, sadb::SaId) {
    let mut a = Host::new(&spec.src.to_string());
    let o = a.add(spec, SaOptions::default());
    let shared = Arc::new(Mutex::new(a));
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (shared, start) = (Arc::clone(&shared), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut out = Vec::new();
                start.wait();
                for n in 0..PER_THREAD {
                    let clear = udp_packet("10.0.0.1", "10.0.0.2", &[t as u8, n as u8, 0, 0]);
                    let mut buf = vec![0u8; clear.len() + 512];
                    let mut p = PacketBuf::load(&mut buf, &clear).expect("room");
                    let mut ex = Vec::new();
                    let job = {
                        let mut h = shared.lock().expect("lock");
                        let h = &mut *h;
                        h.engine
                            .outbound_begin(&mut h.db, o, p.len(), NOW, &mut ex)
                            .expect("begin")
                    };
                    // The crypto, outside the lock.
                    let sealed = job.seal(&mut p);
                    let v = shared
                        .lock()
                        .expect("lock")
                        .engine
                        .outbound_end(&job, sealed);
                    assert_eq!(v, Verdict::Send);
                    out.push((job.seq(), p.data().to_vec()));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("thread"));
    }
    let a = Arc::try_unwrap(shared)
        .ok()
        .expect("threads done")
        .into_inner()
        .expect("lock");
    (all, a, o)
}

#[test]
fn sequence_numbers_stay_unique_and_dense_across_threads() {
    let spec = gcm();
    let (sent, a, o) = send_from_threads(&spec);
    let n = THREADS * PER_THREAD;
    let seqs: HashSet<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), n, "a sequence number was used twice");
    assert_eq!(seqs, (1..=n as u64).collect::<HashSet<u64>>());
    // The number on the wire is the one the job took.
    for (seq, wire) in &sent {
        assert_eq!(
            u64::from(u32::from_be_bytes(wire[24..28].try_into().unwrap())),
            *seq
        );
    }
    assert_eq!(a.db.sa(o).expect("sa").seq_out, n as u64);
    let c = &a.engine.transform(o).expect("transform").counters;
    assert_eq!(c.packets_out, n as u64);
    // The receiver opens every one of them, once, in the order sent.
    let mut b = Host::new("10.0.0.2");
    b.add(&spec, SaOptions::default());
    let mut in_order = sent.clone();
    in_order.sort_by_key(|(s, _)| *s);
    for (seq, wire) in &in_order {
        assert!(b.receive(wire).is_ok(), "packet {seq}");
    }
    assert_eq!(
        b.receive(&in_order[n - 1].1),
        Err(Verdict::Drop(DropReason::Replay))
    );
}

#[test]
fn two_copies_opened_at_once_are_delivered_once() {
    let spec = gcm();
    let mut a = Host::new("10.0.0.1");
    let o = a.add(&spec, SaOptions::default());
    let wires: Vec<Vec<u8>> = (0..200u8)
        .map(|n| {
            a.send(o, &udp_packet("10.0.0.1", "10.0.0.2", &[n]))
                .expect("send")
        })
        .collect();
    let mut b = Host::new("10.0.0.2");
    let i = b.add(&spec, SaOptions::default());
    // Both copies of each packet pass the window check before either is
    // committed, as when two threads receive them at the same moment.
    let mut delivered = 0;
    for w in &wires {
        let mut bufs = [vec![0u8; w.len() + 512], vec![0u8; w.len() + 512]];
        let [b0, b1] = &mut bufs;
        let mut p0 = PacketBuf::load(b0, w).expect("room");
        let mut p1 = PacketBuf::load(b1, w).expect("room");
        let j0 = b.engine.inbound_begin(&b.db, p0.data()).expect("begin");
        let j1 = b.engine.inbound_begin(&b.db, p1.data()).expect("begin");
        assert_eq!(j0.seq(), j1.seq());
        let (r0, r1) = (j0.open(&mut p0), j1.open(&mut p1));
        let mut ex = Vec::new();
        for (j, r, p) in [(&j0, r0, &p0), (&j1, r1, &p1)] {
            if b.engine.inbound_end(&mut b.db, j, r, p.len(), NOW, &mut ex) == Verdict::Deliver {
                delivered += 1;
            }
        }
    }
    assert_eq!(delivered, wires.len());
    let c = &b.engine.transform(i).expect("transform").counters;
    assert_eq!(c.packets_in, wires.len() as u64);
    assert_eq!(c.dropped(DropReason::Replay), wires.len() as u64);
}

#[test]
fn a_job_for_an_sa_replaced_meanwhile_is_not_counted_on_the_new_one() {
    let spec = gcm();
    let mut a = Host::new("10.0.0.1");
    let o = a.add(&spec, SaOptions::default());
    let wire = a
        .send(o, &udp_packet("10.0.0.1", "10.0.0.2", b"x"))
        .expect("send");
    let mut b = Host::new("10.0.0.2");
    let i = b.add(&spec, SaOptions::default());
    let mut buf = vec![0u8; wire.len() + 512];
    let mut p = PacketBuf::load(&mut buf, &wire).expect("room");
    let job = b.engine.inbound_begin(&b.db, p.data()).expect("begin");
    let opened = job.open(&mut p);
    assert!(opened.is_ok());
    // Meanwhile, PF_KEY replaces the SA (same slot, new serial).
    let del = sadb::pfkey::Message::new(sadb::pfkey::MsgType::Delete, spec.satype, 9, 1)
        .with(sadb::pfkey::SaExt {
            spi: spec.spi,
            ..sadb::pfkey::SaExt::default()
        })
        .with(sadb::pfkey::Extension::Address(
            sadb::pfkey::ExtKind::AddressDst,
            sadb::pfkey::Address::new(spec.dst, 0, 0),
        ));
    let bytes = del.emit(sadb::pfkey::Dialect::Illumos).expect("emit");
    b.db.handle_bytes(&bytes, NOW);
    let i2 = b.add(&spec, SaOptions::default());
    assert_eq!(i2, i, "the slot is reused");
    let mut ex = Vec::new();
    assert_eq!(
        b.engine
            .inbound_end(&mut b.db, &job, opened, p.len(), NOW, &mut ex),
        Verdict::Drop(DropReason::NoSa)
    );
    let c = &b.engine.transform(i2).expect("transform").counters;
    assert_eq!(c.packets_in, 0, "counted on the new SA");
    // The new SA's window never saw that number.
    assert!(b.receive(&wire).is_ok());
}
