//! FLUSH and DUMP (ipseckey-behaviour.md 5.9, pfkey-v2-wire.md 1.8).

mod common;
use common::*;

fn spis(records: &[Message]) -> Vec<(u8, u32)> {
    records
        .iter()
        .map(|m| (m.satype, m.sa().map(|s| s.spi).unwrap_or_default()))
        .collect()
}

/// AH and ESP SAs, IPv4 and IPv6, and a larval one.
fn populate(k: &mut Kernel) {
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&esp_add(0x101, Some("2001:db8::1"), "2001:db8::2"), T0);
    k.ok(&ah_add(0x200, Some(PEER), ME), T0);
    k.ok(&getspi(satype::ESP, PEER, ME, 0x3000, 0x3000), T0);
}

#[test]
fn flush_with_sa_type_0_empties_every_sadb() {
    let mut k = kernel();
    populate(&mut k);
    assert_eq!(k.dump(satype::UNSPEC, T0).len(), 4);
    k.ok(&base(MsgType::Flush, satype::UNSPEC), T0);
    assert!(k.dump(satype::UNSPEC, T0).is_empty());
    assert!(k.db.is_empty());
}

#[test]
fn flush_of_one_sa_type_leaves_the_other() {
    let mut k = kernel();
    populate(&mut k);
    k.ok(&base(MsgType::Flush, satype::AH), T0);
    assert!(k.dump(satype::AH, T0).is_empty());
    assert_eq!(k.dump(satype::ESP, T0).len(), 3);
    k.ok(&base(MsgType::Flush, satype::ESP), T0);
    assert!(k.dump(satype::UNSPEC, T0).is_empty());
}

#[test]
fn flush_with_any_extension_is_no_ext_7() {
    let mut k = kernel();
    populate(&mut k);
    let exts = [
        Extension::Sa(SaExt {
            spi: 0x100,
            ..SaExt::default()
        }),
        addr(ExtKind::AddressDst, PEER),
        Extension::ExtDump { timeout: 0 },
    ];
    for e in exts {
        for t in [satype::UNSPEC, satype::ESP] {
            k.refused(
                &base(MsgType::Flush, t).with(e.clone()),
                T0,
                Errno::Einval,
                Diagnostic::NoExt,
            );
        }
    }
}

#[test]
fn flush_is_echoed_to_every_socket() {
    let mut k = kernel();
    populate(&mut k);
    let r = k.send(&base(MsgType::Flush, satype::ESP), T0);
    assert_eq!(r.audience(), Audience::All);
    let echo = r.only();
    assert_eq!(
        (echo.msg_type, echo.satype, echo.errno, echo.seq, echo.pid),
        (MsgType::Flush, satype::ESP, 0, r.seq, PID)
    );
    assert!(echo.exts.is_empty());
}

#[test]
fn flushed_sas_send_no_expire_messages() {
    let mut k = kernel();
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(soft_add(10))
            .with(hard_add(20)),
        T0,
    );
    k.ok(&base(MsgType::Flush, satype::UNSPEC), T0 + 1);
    assert!(k.age(T0 + 10).is_empty());
    assert!(k.age(T0 + 20).is_empty());
}

#[test]
fn dump_records_carry_the_request_seq_and_pid_then_a_base_only_terminator_with_seq_0() {
    let mut k = kernel();
    populate(&mut k);
    let r = k.send(&base(MsgType::Dump, satype::UNSPEC), T0);
    assert_eq!(r.deliveries.len(), 5);
    let (end, records) = r.deliveries.split_last().expect("terminator");
    for (to, m) in records {
        assert_eq!(
            (*to, m.msg_type, m.errno, m.seq, m.pid),
            (Audience::Sender, MsgType::Dump, 0, r.seq, PID)
        );
        assert!(
            m.has(ExtKind::Sa) && m.has(ExtKind::LifetimeCurrent),
            "each record describes one SA"
        );
    }
    assert_ne!(r.seq, 0);
    let (to, m) = end;
    assert_eq!(
        (*to, m.msg_type, m.satype, m.errno, m.seq, m.pid),
        (Audience::Sender, MsgType::Dump, 0, 0, 0, PID)
    );
    assert!(m.exts.is_empty(), "the terminator is base-only");
}

#[test]
fn empty_dump_is_just_the_terminator() {
    let mut k = kernel();
    let r = k.send(&base(MsgType::Dump, satype::ESP), T0);
    let m = r.only();
    assert_eq!(
        (m.msg_type, m.errno, m.seq, m.pid),
        (MsgType::Dump, 0, 0, PID)
    );
    assert!(m.exts.is_empty());
}

#[test]
fn dump_with_anything_but_one_edump_is_no_ext_7() {
    let mut k = kernel();
    populate(&mut k);
    let others = [
        Extension::Sa(SaExt {
            spi: 0x100,
            ..SaExt::default()
        }),
        addr(ExtKind::AddressDst, PEER),
        hard_add(10),
    ];
    for e in others {
        k.refused(
            &base(MsgType::Dump, satype::UNSPEC).with(e.clone()),
            T0,
            Errno::Einval,
            Diagnostic::NoExt,
        );
        let with_edump = base(MsgType::Dump, satype::ESP)
            .with(Extension::ExtDump { timeout: 60 })
            .with(e);
        k.refused(&with_edump, T0, Errno::Einval, Diagnostic::NoExt);
    }
    // Two EDUMPs are a duplicate extension, caught by keysock first.
    let two = base(MsgType::Dump, satype::ESP)
        .with(Extension::ExtDump { timeout: 60 })
        .with(Extension::ExtDump { timeout: 9 });
    k.refused(&two, T0, Errno::Einval, Diagnostic::None);
}

#[test]
fn edump_lists_only_sas_used_within_its_timeout() {
    let mut k = kernel();
    for spi in [0x100, 0x101, 0x102] {
        k.ok(&esp_add(spi, Some(ME), PEER), T0);
    }
    assert!(k.account(satype::ESP, 0x101, PEER, 100, T0 + 100).is_ok());
    assert!(k.account(satype::ESP, 0x102, PEER, 100, T0 + 20).is_ok());
    let r = k.send(
        &base(MsgType::Dump, satype::ESP).with(Extension::ExtDump { timeout: 60 }),
        T0 + 150,
    );
    let listed: Vec<u32> = r
        .deliveries
        .iter()
        .filter_map(|(_, m)| m.sa().map(|s| s.spi))
        .collect();
    assert_eq!(listed, vec![0x101]);
    let last = &r.deliveries.last().expect("terminator").1;
    assert!(last.exts.is_empty() && last.seq == 0);
}

#[test]
fn dump_of_one_sa_type_lists_only_it_and_dump_of_all_lists_ah_then_esp() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&ah_add(0x200, Some(ME), PEER), T0);
    k.ok(&esp_add(0x300, Some(ME), PEER), T0);
    assert_eq!(spis(&k.dump(satype::AH, T0)), vec![(satype::AH, 0x200)]);
    let esp = spis(&k.dump(satype::ESP, T0));
    assert_eq!(esp.len(), 2);
    assert!(esp.iter().all(|(t, _)| *t == satype::ESP));
    let all = spis(&k.dump(satype::UNSPEC, T0));
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], (satype::AH, 0x200), "AH first: {all:x?}");
}

#[test]
fn dump_lists_ipv4_sas_before_ipv6_ones() {
    let mut k = kernel();
    k.ok(&esp_add(0x101, Some("2001:db8::1"), "2001:db8::2"), T0);
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    assert_eq!(
        spis(&k.dump(satype::ESP, T0)),
        vec![(satype::ESP, 0x100), (satype::ESP, 0x101)]
    );
}

#[test]
fn dump_includes_larval_dying_and_dead_sas() {
    let mut k = kernel_with(|c| {
        c.reap_delay = 60;
        c.idle_default = false;
    });
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&esp_add(0x200, Some(ME), PEER).with(soft_add(10)), T0);
    k.ok(&esp_add(0x300, Some(ME), PEER).with(hard_add(10)), T0);
    k.ok(&getspi(satype::ESP, PEER, ME, 0x400, 0x400), T0);
    assert_eq!(k.age(T0 + 10).len(), 2);
    let mut states: Vec<(u32, u8)> = k
        .dump(satype::ESP, T0 + 10)
        .iter()
        .filter_map(|m| m.sa().map(|s| (s.spi, s.state)))
        .collect();
    states.sort_unstable();
    let want = [
        (0x100, SaState::Mature),
        (0x200, SaState::Dying),
        (0x300, SaState::Dead),
        (0x400, SaState::Larval),
    ];
    assert_eq!(
        states,
        want.iter()
            .map(|(s, st)| (*s, *st as u8))
            .collect::<Vec<_>>()
    );
}

#[test]
fn dump_records_carry_the_keys() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let records = k.dump(satype::ESP, T0);
    let m = &records[0];
    assert_eq!(
        m.key(ExtKind::KeyAuth)
            .map(|k| k.material.expose().to_vec()),
        Some(hex(SHA1_KEY).expose().to_vec())
    );
    assert_eq!(
        m.key(ExtKind::KeyEncrypt)
            .map(|k| k.material.expose().to_vec()),
        Some(hex(AES128).expose().to_vec())
    );
}
