//! Every inbound drop reason is counted exactly, per SA where the SA is
//! known; lifetimes fire from real traffic; sequence numbers never wrap.

mod common;

use common::*;
use esp_ah::{DropReason, PacketBuf, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{ExtKind, MsgType, SaState};

fn pair(spec: &SaSpec, opts: SaOptions) -> (Host, sadb::SaId, Host, sadb::SaId) {
    let mut a = Host::new(&spec.src.to_string());
    let mut b = Host::new(&spec.dst.to_string());
    let o = a.add(spec, opts);
    let i = b.add(spec, opts);
    (a, o, b, i)
}

fn drops(h: &Host, id: sadb::SaId) -> Vec<(DropReason, u64)> {
    let c = &h.engine.transform(id).expect("transform").counters;
    DropReason::ALL
        .iter()
        .map(|&r| (r, c.dropped(r)))
        .filter(|&(_, n)| n != 0)
        .collect()
}

#[test]
fn replay_too_old_and_zero_sequence() {
    let mut spec = SaSpec::esp(
        0x10,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    spec.replay = 4;
    let (mut a, o, mut b, i) = pair(&spec, SaOptions::default());
    let pkts: Vec<Vec<u8>> = (0..8)
        .map(|n| {
            a.send(o, &udp_packet("10.0.0.1", "10.0.0.2", &[n]))
                .expect("send")
        })
        .collect();
    // 8 arrives first; 4 (8 - 4) is then too old; 5 is inside the window.
    assert!(b.receive(&pkts[7]).is_ok());
    assert_eq!(b.receive(&pkts[3]), Err(Verdict::Drop(DropReason::TooOld)));
    assert!(b.receive(&pkts[4]).is_ok());
    assert_eq!(b.receive(&pkts[4]), Err(Verdict::Drop(DropReason::Replay)));
    // Sequence number 0 never appears on the wire of a windowed SA.
    let mut zero = pkts[6].clone();
    zero[24..28].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        b.receive(&zero),
        Err(Verdict::Drop(DropReason::ZeroSequence))
    );
    assert_eq!(
        drops(&b, i),
        vec![
            (DropReason::Replay, 1),
            (DropReason::TooOld, 1),
            (DropReason::ZeroSequence, 1)
        ]
    );
}

#[test]
fn bad_padding_is_caught_even_without_integrity() {
    // Encryption without integrity: a wrong key decrypts to garbage, which
    // the padding check (RFC 4303 2.4) catches.
    let spec = SaSpec::esp(0x11, "10.0.0.1", "10.0.0.2", EncrAlg::AesCbc, AuthAlg::None);
    let mut wrong = spec.clone();
    wrong.encr_key[0] ^= 0xff;
    let mut a = Host::new("10.0.0.1");
    let mut b = Host::new("10.0.0.2");
    let o = a.add(&spec, SaOptions::default());
    let i = b.add(&wrong, SaOptions::default());
    let mut bad = 0;
    for n in 0..16u8 {
        let w = a
            .send(o, &udp_packet("10.0.0.1", "10.0.0.2", &[n; 30]))
            .expect("send");
        match b.receive(&w) {
            Err(Verdict::Drop(DropReason::BadPadding)) => bad += 1,
            other => assert!(
                other.is_ok() || matches!(other, Err(Verdict::Drop(DropReason::Malformed))),
                "{other:?}"
            ),
        }
    }
    assert!(
        bad >= 14,
        "a wrong key must nearly always show as bad padding ({bad}/16)"
    );
    assert_eq!(
        drops(&b, i)
            .iter()
            .find(|d| d.0 == DropReason::BadPadding)
            .map(|d| d.1),
        Some(bad)
    );
}

#[test]
fn truncated_packets_are_malformed_not_panics() {
    let spec = SaSpec::esp(
        0x12,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesCbc,
        AuthAlg::HmacSha256,
    );
    let (mut a, o, mut b, i) = pair(&spec, SaOptions::default());
    let w = a
        .send(o, &udp_packet("10.0.0.1", "10.0.0.2", b"truncate me"))
        .expect("send");
    let mut malformed = 0;
    for cut in 28..w.len() {
        let mut t = w[..cut].to_vec();
        // Keep the IP length consistent so the packet reaches ESP.
        t[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
        esp_ah::packet::ipv4_checksum(&mut t[..20]);
        match b.receive(&t) {
            Err(Verdict::Drop(DropReason::Malformed)) => malformed += 1,
            Err(Verdict::Drop(DropReason::BadIcv)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert!(malformed > 0);
    assert_eq!(
        drops(&b, i).iter().map(|d| d.1).sum::<u64>(),
        (w.len() - 28) as u64
    );
    // Shorter than an ESP header: malformed before any SA is known.
    let mut t = w[..24].to_vec();
    t[2..4].copy_from_slice(&24u16.to_be_bytes());
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    assert_eq!(b.receive(&t), Err(Verdict::Drop(DropReason::Malformed)));
    assert_eq!(b.engine.global.drops[DropReason::Malformed as usize], 1);
}

#[test]
fn fragments_are_refused_both_ways() {
    let spec = SaSpec::esp(
        0x13,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let (mut a, o, mut b, _) = pair(&spec, SaOptions::default());
    let mut frag = udp_packet("10.0.0.1", "10.0.0.2", b"fragment");
    frag[6] = 0x20; // more fragments
    esp_ah::packet::ipv4_checksum(&mut frag[..20]);
    assert_eq!(a.send(o, &frag), Err(Verdict::Drop(DropReason::Fragment)));
    let mut w = a
        .send(o, &udp_packet("10.0.0.1", "10.0.0.2", b"whole"))
        .expect("send");
    w[6] = 0x20;
    esp_ah::packet::ipv4_checksum(&mut w[..20]);
    assert_eq!(b.receive(&w), Err(Verdict::Drop(DropReason::Fragment)));
    assert_eq!(b.engine.global.drops[DropReason::Fragment as usize], 1);
}

#[test]
fn tunnel_inner_addresses_must_match_the_selectors() {
    let mut spec = SaSpec::esp(
        0x14,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    spec.tunnel = Some(((ip("172.16.1.0"), 24), (ip("172.16.2.0"), 24)));
    let (mut a, o, mut b, i) = pair(&spec, SaOptions::default());
    let ok = a
        .send(o, &udp_packet("172.16.1.5", "172.16.2.9", b"in policy"))
        .expect("send");
    assert!(b.receive(&ok).is_ok());
    let spoofed = a
        .send(o, &udp_packet("192.168.9.9", "172.16.2.9", b"spoofed"))
        .expect("send");
    assert_eq!(b.receive(&spoofed), Err(Verdict::Drop(DropReason::Policy)));
    assert_eq!(drops(&b, i), vec![(DropReason::Policy, 1)]);
}

#[test]
fn nat_t_keepalive_and_ike_marker() {
    let spec = SaSpec::esp(
        0x15,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let (_, _, mut b, _) = pair(&spec, SaOptions::default());
    let keepalive = {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4500, 4500)
            .write(&mut out, &[0xff])
            .expect("build");
        out
    };
    assert_eq!(
        b.receive(&keepalive),
        Err(Verdict::Drop(DropReason::Keepalive))
    );
    let ike = {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4500, 4500)
            .write(&mut out, &[0, 0, 0, 0, 1, 2, 3, 4])
            .expect("build");
        out
    };
    assert_eq!(
        b.receive(&ike),
        Err(Verdict::NotIpsec),
        "non-ESP marker: IKE goes to the host"
    );
}

#[test]
fn byte_lifetimes_fire_from_traffic() {
    let spec = SaSpec::esp(
        0x16,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let mut msg = spec.add_msg();
    msg.exts.push(sadb::pfkey::Extension::Lifetime(
        ExtKind::LifetimeSoft,
        sadb::pfkey::Lifetime {
            bytes: 1000,
            ..Default::default()
        },
    ));
    msg.exts.push(sadb::pfkey::Extension::Lifetime(
        ExtKind::LifetimeHard,
        sadb::pfkey::Lifetime {
            bytes: 2000,
            ..Default::default()
        },
    ));
    let mut a = Host::new("10.0.0.1");
    let r = a.db.handle(&msg, NOW);
    assert_eq!(r.reply().map(|m| m.errno), Some(0));
    let id = a.db.lookup(spec.satype, spec.spi, spec.dst).expect("sa");
    a.engine
        .install(&a.db, id, SaOptions::default())
        .expect("install");
    let clear = udp_packet("10.0.0.1", "10.0.0.2", &[0u8; 272]); // 300 bytes
    let mut expires = Vec::new();
    let mut verdicts = Vec::new();
    for _ in 0..8 {
        let mut buf = vec![0u8; 1024];
        let mut p = PacketBuf::load(&mut buf, &clear).expect("room");
        verdicts.push(a.engine.outbound(&mut a.db, id, &mut p, NOW, &mut expires));
    }
    // 300 * 4 = 1200 >= 1000: soft after the 4th packet; the 7th would reach 2100 >= 2000.
    assert_eq!(&verdicts[..6], &[Verdict::Send; 6]);
    assert_eq!(verdicts[6], Verdict::Drop(DropReason::Expired));
    let kinds: Vec<(MsgType, bool, bool)> = expires
        .iter()
        .map(|m| {
            (
                m.msg_type,
                m.has(ExtKind::LifetimeSoft),
                m.has(ExtKind::LifetimeHard),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MsgType::Expire, true, false),
            (MsgType::Expire, false, true)
        ]
    );
    assert_eq!(a.db.sa(id).map(|s| s.state), Some(SaState::Dead));
    assert_eq!(drops(&a, id), vec![(DropReason::Expired, 2)]);
}

#[test]
fn sequence_counter_never_wraps() {
    let spec = SaSpec::esp(
        0x17,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let mut a = Host::new("10.0.0.1");
    let o = a.add(&spec, SaOptions::default());
    if let Some(sa) = a.db.sa_mut(o) {
        sa.seq_out = u64::from(u32::MAX) - 1;
    }
    assert!(a
        .send(o, &udp_packet("10.0.0.1", "10.0.0.2", b"last"))
        .is_ok());
    let mut buf = vec![0u8; 512];
    let clear = udp_packet("10.0.0.1", "10.0.0.2", b"one too many");
    let mut p = PacketBuf::load(&mut buf, &clear).expect("room");
    let mut ex = Vec::new();
    assert_eq!(
        a.engine.outbound(&mut a.db, o, &mut p, NOW, &mut ex),
        Verdict::Drop(DropReason::SeqOverflow)
    );
    assert_eq!(ex.len(), 1, "the SA hard-expires instead of wrapping");
    assert!(ex[0].has(ExtKind::LifetimeHard));
    assert_eq!(a.db.sa(o).map(|s| s.state), Some(SaState::Dead));
}

#[test]
fn esn_carries_across_the_32_bit_boundary() {
    let spec = SaSpec::esp(
        0x18,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesCbc,
        AuthAlg::HmacSha256,
    );
    let opts = SaOptions {
        esn: true,
        icv_len: None,
    };
    let (mut a, o, mut b, i) = pair(&spec, opts);
    let start = u64::from(u32::MAX) - 3;
    a.db.sa_mut(o).expect("sa").seq_out = start;
    b.db.sa_mut(i).expect("sa").replay.set_highest(start);
    for n in 0..8u8 {
        let w = a
            .send(o, &udp_packet("10.0.0.1", "10.0.0.2", &[n]))
            .expect("send");
        assert!(b.receive(&w).is_ok(), "packet {n} across the boundary");
    }
    assert_eq!(b.db.sa(i).map(|s| s.replay.highest()), Some(start + 8));
    // Without ESN on the receiver the high bits are missing from the ICV.
    let (mut a2, o2, _, _) = pair(&spec, opts);
    a2.db.sa_mut(o2).expect("sa").seq_out = 1 << 32;
    let w = a2
        .send(o2, &udp_packet("10.0.0.1", "10.0.0.2", b"x"))
        .expect("send");
    let mut plain_rx = Host::new("10.0.0.2");
    plain_rx.add(&spec, SaOptions::default());
    assert_eq!(plain_rx.receive(&w), Err(Verdict::Drop(DropReason::BadIcv)));
}

#[test]
fn a_replaced_sa_never_uses_the_old_keys() {
    let spec = SaSpec::esp(
        0x19,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let mut a = Host::new("10.0.0.1");
    let o = a.add(&spec, SaOptions::default());
    a.db.remove(o);
    // Same SPI, new keys, same SADB slot, transform not (yet) rebuilt.
    let mut again = spec.clone();
    again.encr_key[0] ^= 0x55;
    let r = a.db.handle(&again.add_msg(), NOW);
    assert_eq!(r.reply().map(|m| m.errno), Some(0));
    let o2 = a.db.lookup(spec.satype, spec.spi, spec.dst).expect("sa");
    assert_eq!(o2, o, "the slab reuses the slot (what this test is about)");
    assert_eq!(
        a.send(o2, &udp_packet("10.0.0.1", "10.0.0.2", b"x")),
        Err(Verdict::Drop(DropReason::NoSa))
    );
    a.engine
        .install(&a.db, o2, SaOptions::default())
        .expect("install");
    assert!(a
        .send(o2, &udp_packet("10.0.0.1", "10.0.0.2", b"x"))
        .is_ok());
}

/// A packet that would outgrow IP's 16-bit length field once protected
/// is refused (NoRoom) before anything is sent, instead of leaving with a
/// wrong length the peer drops as malformed; the sequence number is not
/// used up, and the next packet that fits goes out and verifies.
#[test]
fn a_protected_packet_must_fit_the_ip_length_field() {
    for (src, dst, max) in [
        ("10.0.0.1", "10.0.0.2", 65_535 - 20 - 8),
        ("2001:db8::1", "2001:db8::2", 65_535 - 8),
    ] {
        for spec in [
            SaSpec::esp(0x20, src, dst, EncrAlg::AesCbc, AuthAlg::HmacSha256),
            SaSpec::ah(0x21, src, dst, AuthAlg::HmacSha1),
        ] {
            let (mut a, o, mut b, _) = pair(&spec, SaOptions::default());
            let big = udp_packet(src, dst, &vec![7u8; max]);
            assert_eq!(
                a.send(o, &big),
                Err(Verdict::Drop(DropReason::NoRoom)),
                "{src} sat {}",
                spec.satype
            );
            assert_eq!(drops(&a, o), vec![(DropReason::NoRoom, 1)]);
            let w = a
                .send(o, &udp_packet(src, dst, &vec![7u8; 60_000]))
                .expect("a packet that fits is sent");
            assert!(b.receive(&w).is_ok(), "and verifies: {src}");
        }
    }
}
