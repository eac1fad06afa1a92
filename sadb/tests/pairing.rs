//! SA pairing (ipseckey-behaviour.md 5.5, decisions.md simulated kernel #6
//! and #9).

mod common;
use common::*;

/// `... pair-spi SPI`: ipseckey adds the X_PAIR extension and sets X_PAIRED.
fn paired_with(m: Message, spi: u32) -> Message {
    m.sa_edit(|s| s.flags |= flags::X_PAIRED)
        .with(Extension::Pair { spi })
}

fn pair_of(m: &Message) -> Option<u32> {
    match m.ext(ExtKind::Pair) {
        Some(Extension::Pair { spi }) => Some(*spi),
        _ => None,
    }
}

/// Asserts the SA is paired with `partner` (or unpaired for `None`).
fn assert_pairing(k: &mut Kernel, spi: u32, dst: &str, partner: Option<u32>, now: u64) {
    let got = k.get(satype::ESP, spi, dst, now);
    let paired_flag = got
        .sa()
        .map(|s| s.flags & flags::X_PAIRED != 0)
        .unwrap_or_default();
    assert_eq!(
        (paired_flag, pair_of(&got)),
        (partner.is_some(), partner),
        "pairing of spi {spi:#x}: {got:?}"
    );
}

/// Outbound 0x100 (me -> peer) and inbound 0x200 (peer -> me), paired.
fn pair(k: &mut Kernel) {
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&paired_with(esp_add(0x200, Some(PEER), ME), 0x100), T0);
}

#[test]
fn pair_spi_pairs_sas_in_opposite_directions_and_get_shows_x_paired_and_the_pair_extension() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let echo = k.ok(&paired_with(esp_add(0x200, Some(PEER), ME), 0x100), T0);
    assert_eq!(
        echo.sa().map(|s| s.flags),
        Some(flags::X_INBOUND | flags::X_PAIRED)
    );
    assert_pairing(&mut k, 0x100, PEER, Some(0x200), T0);
    assert_pairing(&mut k, 0x200, ME, Some(0x100), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0).flags,
        flags::X_OUTBOUND | flags::X_PAIRED
    );

    // The other way round: the outbound SA names the inbound one.
    k.ok(&esp_add(0x300, Some(PEER), ME), T0);
    k.ok(&paired_with(esp_add(0x400, Some(ME), PEER), 0x300), T0);
    assert_pairing(&mut k, 0x300, ME, Some(0x400), T0);
    assert_pairing(&mut k, 0x400, PEER, Some(0x300), T0);
}

#[test]
fn man_page_same_direction_pair_example_fails_73_and_the_added_sa_is_gone() {
    // Example 7, with me.example.com = 10.0.0.1 and you.example.com = 10.0.0.2.
    let mut k = kernel();
    let ex = |spi: u32| {
        esp_add(spi, Some(ME), PEER)
            .sa_edit(|s| {
                s.auth = AALG_MD5;
                s.encrypt = EALG_DES;
            })
            .set(key(
                ExtKind::KeyAuth,
                128,
                "bde359723576fdea08e56cbe876e24ad",
            ))
            .set(key(ExtKind::KeyEncrypt, 64, "be02938e7def2839"))
    };
    k.ok(&ex(0x2345), T0);
    k.refused(
        &paired_with(ex(0x5432), 0x2345),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    k.gone(satype::ESP, 0x5432, PEER, T0);
    assert_pairing(&mut k, 0x2345, PEER, None, T0);
}

#[test]
fn pair_spi_0_or_the_sas_own_spi_is_73() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    for p in [0, 0x200] {
        k.refused(
            &paired_with(esp_add(0x200, Some(PEER), ME), p),
            T0,
            Errno::Einval,
            Diagnostic::PairInappropriate,
        );
    }
    k.ok(&esp_add(0x200, Some(PEER), ME), T0);
    for p in [0, 0x200] {
        let upd = paired_with(
            update(MsgType::Update, satype::ESP, 0x200, Some(PEER), ME),
            p,
        );
        k.refused(&upd, T0, Errno::Einval, Diagnostic::PairInappropriate);
    }
}

#[test]
fn pairing_with_a_missing_partner_is_73_and_the_added_sa_is_gone() {
    let mut k = kernel();
    k.refused(
        &paired_with(esp_add(0x200, Some(PEER), ME), 0x100),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    k.gone(satype::ESP, 0x200, ME, T0);
    // The partner must be the same type ...
    k.ok(&ah_add(0x100, Some(ME), PEER), T0);
    k.refused(
        &paired_with(esp_add(0x200, Some(PEER), ME), 0x100),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    // ... between the same two addresses ...
    k.ok(&esp_add(0x100, Some(ME), "10.0.0.3"), T0);
    k.refused(
        &paired_with(esp_add(0x200, Some(PEER), ME), 0x100),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    // ... in the opposite direction.
    k.ok(&esp_add(0x300, Some(PEER), ME), T0);
    k.refused(
        &paired_with(esp_add(0x400, Some(PEER), ME), 0x300),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
}

#[test]
fn pairing_with_a_dying_or_dead_partner_is_73_with_errno_0_and_leaves_the_sa_unpaired() {
    let mut k = kernel_with(|c| c.reap_delay = 5);
    k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(10)), T0);
    k.ok(&esp_add(0x300, Some(ME), PEER).with(hard_add(10)), T0);
    assert_eq!(k.age(T0 + 10).len(), 2);
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0 + 10).state,
        SaState::Dying as u8
    );
    assert_eq!(
        k.sa(satype::ESP, 0x300, PEER, T0 + 10).state,
        SaState::Dead as u8
    );
    for (spi, partner) in [(0x200, 0x100), (0x400, 0x300)] {
        let r = k.send(&paired_with(esp_add(spi, Some(PEER), ME), partner), T0 + 10);
        let echo = r.only();
        assert_eq!(
            (echo.errno, echo.reserved),
            (0, Diagnostic::PairInappropriate.code())
        );
        assert_eq!(r.audience(), Audience::All);
        assert_eq!(
            echo.sa().map(|s| s.flags),
            Some(flags::X_INBOUND),
            "pairing undone"
        );
        assert_pairing(&mut k, spi, ME, None, T0 + 10);
        assert_pairing(&mut k, partner, PEER, None, T0 + 10);
    }
}

#[test]
fn pairing_with_a_cloned_partner_is_73_with_errno_0() {
    let mut k = kernel();
    let cloned =
        esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.flags = flags::X_INBOUND | flags::X_OUTBOUND);
    k.ok(&cloned, T0);
    let r = k.send(&paired_with(esp_add(0x200, Some(PEER), ME), 0x100), T0);
    assert_eq!(
        (r.only().errno, r.only().reserved),
        (0, Diagnostic::PairInappropriate.code())
    );
    assert_pairing(&mut k, 0x200, ME, None, T0);
    assert_pairing(&mut k, 0x100, PEER, None, T0);
}

#[test]
fn pairing_with_an_already_paired_partner_is_75_with_errno_0() {
    let mut k = kernel();
    pair(&mut k);
    let r = k.send(&paired_with(esp_add(0x300, Some(ME), PEER), 0x200), T0);
    assert_eq!(
        (r.only().errno, r.only().reserved),
        (0, Diagnostic::PairAlready.code())
    );
    assert_pairing(&mut k, 0x300, PEER, None, T0);
    assert_pairing(&mut k, 0x200, ME, Some(0x100), T0);
    assert_pairing(&mut k, 0x100, PEER, Some(0x200), T0);
}

#[test]
fn a_new_sa_that_will_be_cloned_cannot_carry_pair_spi_73_and_nothing_is_inserted() {
    let mut k = kernel();
    k.ok(&esp_add(0x200, Some(PEER), ME), T0);
    // dst not-me without src, and dst me without src: both cloned.
    k.refused(
        &paired_with(esp_add(0x100, None, PEER), 0x200),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    k.refused(
        &paired_with(esp_add(0x100, None, ME), 0x200),
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    k.gone(satype::ESP, 0x100, PEER, T0);
}

#[test]
fn partner_lookup_accepts_a_partner_with_an_unspecified_source() {
    let mut k = kernel();
    let inbound_any_src = esp_add(0x200, None, ME).sa_edit(|s| s.flags = flags::X_INBOUND);
    k.ok(&inbound_any_src, T0);
    k.ok(&paired_with(esp_add(0x100, Some(ME), PEER), 0x200), T0);
    assert_pairing(&mut k, 0x100, PEER, Some(0x200), T0);
    assert_pairing(&mut k, 0x200, ME, Some(0x100), T0);
}

#[test]
fn update_with_pair_spi_pairs_sas_in_opposite_directions() {
    // Example 12: update esp spi 0x123456 dst 192.168.99.2 pair-spi 0x654321
    let mut k = kernel();
    k.ok(&esp_add(0x123456, Some(ME), "192.168.99.2"), T0);
    k.ok(&esp_add(0x654321, Some("192.168.99.2"), ME), T0);
    let upd = paired_with(
        update(MsgType::Update, satype::ESP, 0x123456, None, "192.168.99.2"),
        0x654321,
    );
    let echo = k.ok(&upd, T0);
    assert_eq!(echo.msg_type, MsgType::Update);
    assert_pairing(&mut k, 0x123456, "192.168.99.2", Some(0x654321), T0);
    assert_pairing(&mut k, 0x654321, ME, Some(0x123456), T0);
}

#[test]
fn delete_of_one_half_of_a_pair_leaves_the_partner_unpaired() {
    let mut k = kernel();
    pair(&mut k);
    let r = k.send(&by_spi(MsgType::Delete, satype::ESP, 0x200, ME), T0);
    assert_eq!(r.audience(), Audience::All);
    assert_eq!((r.only().msg_type, r.only().errno), (MsgType::Delete, 0));
    k.gone(satype::ESP, 0x200, ME, T0);
    assert_pairing(&mut k, 0x100, PEER, None, T0);
}

#[test]
fn delete_pair_removes_the_sa_and_its_partner() {
    let mut k = kernel();
    pair(&mut k);
    k.ok(&esp_add(0x300, Some(ME), "10.0.0.3"), T0);
    let r = k.send(&by_spi(MsgType::DelPair, satype::ESP, 0x100, PEER), T0);
    assert!(!r.deliveries.is_empty());
    for (to, m) in &r.deliveries {
        assert_eq!(
            (*to, m.msg_type, m.errno, m.seq),
            (Audience::All, MsgType::DelPair, 0, r.seq)
        );
    }
    k.gone(satype::ESP, 0x100, PEER, T0);
    k.gone(satype::ESP, 0x200, ME, T0);
    assert_eq!(k.dump(satype::ESP, T0).len(), 1, "the unrelated SA stays");
}

#[test]
fn delete_pair_without_a_partner_is_esrch_76_but_the_sa_is_deleted() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let r = k.send(&by_spi(MsgType::DelPair, satype::ESP, 0x100, PEER), T0);
    check_refusal(
        &r,
        MsgType::DelPair,
        satype::ESP,
        PID,
        Errno::Esrch,
        Diagnostic::PairSaNotfound,
    );
    k.gone(satype::ESP, 0x100, PEER, T0);
}

#[test]
fn delete_pair_of_a_cloned_sa_removes_both_copies() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, None, PEER), T0);
    k.ok(&esp_add(0x200, None, ME), T0);
    for (spi, dst) in [(0x100, PEER), (0x200, ME)] {
        let r = k.send(&by_spi(MsgType::DelPair, satype::ESP, spi, dst), T0);
        assert!(
            r.deliveries.iter().all(|(_, m)| m.errno == 0),
            "the clone is the pair: {r:?}"
        );
        k.gone(satype::ESP, spi, dst, T0);
    }
    assert!(k.dump(satype::UNSPEC, T0).is_empty());
}

#[test]
fn get_never_modifies_anything() {
    let mut k = kernel();
    pair(&mut k);
    k.ok(&esp_add(0x300, None, PEER).with(soft_add(100)), T0);
    let before = k.snapshot(T0 + 5);
    let first = k.get(satype::ESP, 0x200, ME, T0 + 5);
    for _ in 0..3 {
        for (spi, dst) in [(0x100, PEER), (0x200, ME), (0x300, PEER)] {
            k.get(satype::ESP, spi, dst, T0 + 5);
        }
    }
    let mut again = k.get(satype::ESP, 0x200, ME, T0 + 5);
    again.seq = first.seq;
    assert_eq!(again, first);
    assert_eq!(k.snapshot(T0 + 5), before);
}

#[test]
fn soft_expiry_of_an_inbound_paired_sa_breaks_the_pairing_on_both_sides() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(
        &paired_with(esp_add(0x200, Some(PEER), ME), 0x100).with(soft_add(10)),
        T0,
    );
    let ex = k.age(T0 + 10);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].sa().map(|s| s.spi), Some(0x200));
    assert_pairing(&mut k, 0x200, ME, None, T0 + 10);
    assert_pairing(&mut k, 0x100, PEER, None, T0 + 10);
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0 + 10).state,
        MATURE,
        "the outbound partner stays MATURE"
    );
}
