//! UPDATE and UPDATE-PAIR (ipseckey-behaviour.md 5.4).

mod common;
use common::*;

fn upd(spi: u32, src: Option<&str>, dst: &str) -> Message {
    update(MsgType::Update, satype::ESP, spi, src, dst)
}

fn limits(m: &Message, kind: ExtKind) -> Lifetime {
    m.lifetime(kind).copied().unwrap_or_default()
}

/// An SA made DYING by its soft add time at T0 + 10.
fn dying(k: &mut Kernel, req: Message, dst: &str) {
    let spi = req.sa().map(|s| s.spi).unwrap_or_default();
    k.ok(&req.with(soft_add(10)).with(hard_add(10_000)), T0);
    assert_eq!(k.age(T0 + 10).len(), 1);
    assert_eq!(
        k.sa(satype::ESP, spi, dst, T0 + 10).state,
        SaState::Dying as u8
    );
}

#[test]
fn update_without_dst_is_19_then_without_src_18_then_without_sa_20() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let m = base(MsgType::Update, satype::ESP);
    k.refused(&m, T0, Errno::Einval, Diagnostic::MissingDst);
    let m = m.with(addr(ExtKind::AddressDst, PEER));
    k.refused(&m, T0, Errno::Einval, Diagnostic::MissingSrc);
    let m = m.with(addr(ExtKind::AddressSrc, ME));
    k.refused(&m, T0, Errno::Einval, Diagnostic::MissingSa);
    k.ok(
        &m.with(SaExt {
            spi: 0x100,
            state: MATURE,
            ..SaExt::default()
        }),
        T0,
    );
}

#[test]
fn update_of_a_missing_sa_is_esrch_78() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.refused(
        &upd(0x101, None, PEER).with(hard_add(10)),
        T0,
        Errno::Esrch,
        Diagnostic::SaNotfound,
    );
    k.refused(
        &upd(0x100, Some("10.0.0.3"), PEER).with(hard_add(10)),
        T0,
        Errno::Esrch,
        Diagnostic::SaNotfound,
    );
    let pair = update(MsgType::UpdatePair, satype::ESP, 0x101, None, PEER).with(hard_add(10));
    k.refused(&pair, T0, Errno::Esrch, Diagnostic::SaNotfound);
}

#[test]
fn update_of_a_mature_sa_checks_in_order_36_37_43_42_82_hserr_83_then_replay_value_43() {
    let mut k = kernel();
    k.ok(
        &esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.replay = 32),
        T0,
    );
    let einval = |k: &mut Kernel, m: &Message, d: Diagnostic| {
        k.refused(m, T0 + 5, Errno::Einval, d);
    };
    let m = upd(0x100, Some(ME), PEER)
        .sa_edit(|s| {
            s.state = SaState::Larval as u8;
            s.flags = flags::X_TUNNEL;
        })
        .with(key(ExtKind::KeyAuth, 160, SHA1_KEY))
        .with(key(ExtKind::KeyEncrypt, 128, AES128))
        .with(lifetime(ExtKind::LifetimeCurrent, 0, 0, T0, 0))
        .with(hard_add(100))
        .with(soft_add(200))
        .with(Extension::Sensitivity(
            ExtKind::Sensitivity,
            Sensitivity::default(),
        ))
        .with(Extension::ReplayValue { r32: 5, r64: 0 });
    einval(&mut k, &m, Diagnostic::AkeyPresent);
    let m = m.without(ExtKind::KeyAuth);
    einval(&mut k, &m, Diagnostic::EkeyPresent);
    let m = m.without(ExtKind::KeyEncrypt);
    einval(&mut k, &m, Diagnostic::BadSastate);
    let m = m.sa_edit(|s| s.state = MATURE);
    einval(&mut k, &m, Diagnostic::BadSaflags);
    let m = m.sa_edit(|s| s.flags = 0);
    k.refused(&m, T0 + 5, Errno::Eopnotsupp, Diagnostic::MissingLifetime);
    let m = m.without(ExtKind::LifetimeCurrent);
    einval(&mut k, &m, Diagnostic::AddtimeHserr);
    let m = m.set(soft_add(50));
    einval(&mut k, &m, BAD_LABEL);
    let m = m.without(ExtKind::Sensitivity);
    // replay_value is refused on a MATURE SA (accepted only once DYING).
    einval(&mut k, &m, Diagnostic::BadSastate);
    let m = m.without(ExtKind::ReplayValue);
    k.ok(&m, T0 + 5);
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 5);
    assert_eq!(
        (
            limits(&got, ExtKind::LifetimeHard).addtime,
            limits(&got, ExtKind::LifetimeSoft).addtime
        ),
        (100, 50)
    );
}

#[test]
fn update_key_management_cookie_conflicts_are_49_and_50() {
    let mut k = kernel();
    k.ok(
        &esp_add(0x100, Some(ME), PEER).with(Extension::KmCookie {
            proto: 1,
            cookie: 7,
        }),
        T0,
    );
    k.refused(
        &upd(0x100, Some(ME), PEER).with(Extension::KmCookie {
            proto: 2,
            cookie: 7,
        }),
        T0,
        Errno::Einval,
        Diagnostic::DuplicateKmp,
    );
    k.refused(
        &upd(0x100, Some(ME), PEER).with(Extension::KmCookie {
            proto: 1,
            cookie: 8,
        }),
        T0,
        Errno::Einval,
        Diagnostic::DuplicateKmc,
    );
    k.ok(
        &upd(0x100, Some(ME), PEER).with(Extension::KmCookie {
            proto: 1,
            cookie: 7,
        }),
        T0,
    );
}

#[test]
fn update_with_a_current_lifetime_is_eopnotsupp_82() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let m = upd(0x100, Some(ME), PEER).with(lifetime(ExtKind::LifetimeCurrent, 0, 5, T0, 0));
    k.refused(&m, T0, Errno::Eopnotsupp, Diagnostic::MissingLifetime);
}

#[test]
fn update_with_only_a_64_bit_replay_value_is_eopnotsupp_81() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let m = upd(0x100, Some(ME), PEER).with(Extension::ReplayValue { r32: 0, r64: 9 });
    k.refused(&m, T0, Errno::Eopnotsupp, Diagnostic::InvalidReplay);
}

#[test]
fn update_changes_lifetimes_but_never_the_add_time() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&upd(0x100, Some(ME), PEER).with(hard_add(1000)), T0 + 100);
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 100);
    assert_eq!(limits(&got, ExtKind::LifetimeCurrent).addtime, T0);
    assert_eq!(limits(&got, ExtKind::LifetimeHard).addtime, 1000);
}

#[test]
fn update_recomputes_the_hard_expiry_from_the_original_add_time() {
    // No idle default, so that only the hard limit can fire.
    let mut k = kernel_with(|c| c.idle_default = false);
    k.ok(&esp_add(0x100, Some(ME), PEER).with(hard_add(1000)), T0);
    k.ok(&upd(0x100, Some(ME), PEER).with(hard_add(600)), T0 + 500);
    assert!(k.age(T0 + 599).is_empty());
    let ex = k.age(T0 + 600);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeHard]);
    // Non-zero fields overwrite, zero fields leave the old value.
    k.ok(
        &esp_add(0x200, Some(ME), PEER).with(lifetime(ExtKind::LifetimeHard, 0, 5000, 1000, 0)),
        T0,
    );
    k.ok(
        &upd(0x200, Some(ME), PEER).with(lifetime(ExtKind::LifetimeHard, 0, 0, 2000, 300)),
        T0,
    );
    let got = k.get(satype::ESP, 0x200, PEER, T0);
    assert_eq!(
        limits(&got, ExtKind::LifetimeHard),
        Lifetime {
            allocations: 0,
            bytes: 5000,
            addtime: 2000,
            usetime: 300
        }
    );
}

#[test]
fn update_soft_limit_above_the_hard_limit_is_clamped_to_the_hard_limit() {
    let mut k = kernel();
    k.ok(
        &esp_add(0x100, Some(ME), PEER).with(lifetime(ExtKind::LifetimeHard, 0, 1000, 100, 50)),
        T0,
    );
    // SOFT alone is not checked against HARD (no 14-17) but clamped.
    k.ok(
        &upd(0x100, Some(ME), PEER).with(lifetime(ExtKind::LifetimeSoft, 0, 5000, 300, 80)),
        T0,
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let soft = limits(&got, ExtKind::LifetimeSoft);
    assert_eq!((soft.bytes, soft.addtime, soft.usetime), (1000, 100, 50));
}

#[test]
fn update_soft_limit_without_any_hard_limit_is_kept() {
    // illumos clamps to 0 here (a bug); the simulator keeps the value.
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(
        &upd(0x100, Some(ME), PEER).with(lifetime(ExtKind::LifetimeSoft, 0, 5000, 300, 80)),
        T0,
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let soft = limits(&got, ExtKind::LifetimeSoft);
    assert_eq!((soft.bytes, soft.addtime, soft.usetime), (5000, 300, 80));
    assert!(k.age(T0 + 299).is_empty());
    assert_eq!(
        expire_limits(&k.age(T0 + 300)[0]),
        vec![ExtKind::LifetimeSoft]
    );
}

#[test]
fn update_replay_value_on_a_dying_outbound_sa_sets_the_counter() {
    let mut k = kernel();
    dying(
        &mut k,
        esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.replay = 32),
        PEER,
    );
    k.ok(
        &upd(0x100, Some(ME), PEER).with(Extension::ReplayValue { r32: 1000, r64: 0 }),
        T0 + 20,
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 20);
    assert_eq!(
        got.ext(ExtKind::ReplayValue),
        Some(&Extension::ReplayValue { r32: 1000, r64: 0 })
    );
}

#[test]
fn update_replay_value_on_a_dying_inbound_sa_goes_through_the_window_else_81() {
    let mut k = kernel();
    dying(
        &mut k,
        esp_add(0x100, Some(PEER), ME).sa_edit(|s| s.replay = 32),
        ME,
    );
    let id = k.id(satype::ESP, 0x100, ME);
    k.db.sa_mut(id)
        .expect("SA")
        .replay
        .commit(100)
        .expect("first packet");
    let rv = |v: u32| upd(0x100, Some(PEER), ME).with(Extension::ReplayValue { r32: v, r64: 0 });
    k.refused(&rv(50), T0 + 20, Errno::Einval, Diagnostic::InvalidReplay);
    k.refused(&rv(100), T0 + 20, Errno::Einval, Diagnostic::InvalidReplay);
    k.ok(&rv(200), T0 + 20);
    let got = k.get(satype::ESP, 0x100, ME, T0 + 20);
    assert_eq!(
        got.ext(ExtKind::ReplayValue),
        Some(&Extension::ReplayValue { r32: 200, r64: 0 })
    );
}

#[test]
fn update_replay_value_is_ignored_when_the_replay_window_is_0() {
    let mut k = kernel();
    dying(&mut k, esp_add(0x100, Some(ME), PEER), PEER);
    k.ok(
        &upd(0x100, Some(ME), PEER).with(Extension::ReplayValue { r32: 77, r64: 0 }),
        T0 + 20,
    );
    assert!(!k
        .get(satype::ESP, 0x100, PEER, T0 + 20)
        .has(ExtKind::ReplayValue));
}

#[test]
fn update_does_not_move_a_dying_sa_back_to_mature() {
    let mut k = kernel();
    dying(&mut k, esp_add(0x100, Some(ME), PEER), PEER);
    k.ok(
        &upd(0x100, Some(ME), PEER)
            .with(soft_add(5000))
            .with(hard_add(9000)),
        T0 + 20,
    );
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0 + 20).state,
        SaState::Dying as u8
    );
    assert!(k.age(T0 + 5000).is_empty(), "no second soft EXPIRE");
}

#[test]
fn update_is_echoed_to_all_sockets() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let r = k.send(&upd(0x100, Some(ME), PEER).with(hard_add(100)), T0);
    assert_eq!(r.audience(), Audience::All);
    let echo = r.only();
    assert_eq!(
        (echo.msg_type, echo.errno, echo.reserved, echo.seq, echo.pid),
        (MsgType::Update, 0, 0, r.seq, PID)
    );
    assert_eq!(
        echo.lifetime(ExtKind::LifetimeHard).map(|l| l.addtime),
        Some(100)
    );
}

#[test]
fn update_pair_applies_the_lifetime_update_to_both_sas() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(
        &esp_add(0x200, Some(PEER), ME).with(Extension::Pair { spi: 0x100 }),
        T0,
    );
    let m = update(MsgType::UpdatePair, satype::ESP, 0x100, Some(ME), PEER).with(hard_add(500));
    let r = k.send(&m, T0);
    assert_eq!(
        (r.only().errno, r.only().msg_type, r.audience()),
        (0, MsgType::UpdatePair, Audience::All)
    );
    for (spi, dst) in [(0x100, PEER), (0x200, ME)] {
        let got = k.get(satype::ESP, spi, dst, T0);
        assert_eq!(
            limits(&got, ExtKind::LifetimeHard).addtime,
            500,
            "spi {spi:#x}"
        );
    }
    // A plain UPDATE touches only the SA it names.
    k.ok(&upd(0x100, Some(ME), PEER).with(hard_add(300)), T0);
    assert_eq!(
        limits(&k.get(satype::ESP, 0x200, ME, T0), ExtKind::LifetimeHard).addtime,
        500
    );
}

#[test]
fn update_pair_without_a_partner_is_esrch_76_after_updating_the_sa() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let m = update(MsgType::UpdatePair, satype::ESP, 0x100, Some(ME), PEER).with(hard_add(500));
    let r = k.send(&m, T0);
    check_refusal(
        &r,
        MsgType::UpdatePair,
        satype::ESP,
        PID,
        Errno::Esrch,
        Diagnostic::PairSaNotfound,
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        limits(&got, ExtKind::LifetimeHard).addtime,
        500,
        "the SA itself was updated"
    );
}

#[test]
fn update_of_a_larval_sa_from_getspi_completes_it() {
    let mut k = kernel();
    let r = k.send(&getspi(satype::ESP, PEER, ME, 0x1000, 0x1fff), T0);
    let spi = r
        .only()
        .sa()
        .map(|s| s.spi)
        .expect("GETSPI reply carries the SPI");
    assert_eq!(k.sa(satype::ESP, spi, ME, T0).state, SaState::Larval as u8);
    let complete = upd(spi, Some(PEER), ME)
        .sa_edit(|s| {
            s.auth = AALG_SHA1;
            s.encrypt = EALG_AES;
            s.replay = 64;
        })
        .with(key(ExtKind::KeyEncrypt, 128, AES128))
        .with(key(ExtKind::KeyAuth, 160, SHA1_KEY))
        .with(hard_add(3600));
    let echo = k.ok(&complete, T0 + 30);
    assert!(!echo.has(ExtKind::KeyAuth) && !echo.has(ExtKind::KeyEncrypt));
    let got = k.get(satype::ESP, spi, ME, T0 + 30);
    let sa = *got.sa().expect("SA");
    assert_eq!(
        (sa.state, sa.auth, sa.encrypt, sa.replay),
        (MATURE, AALG_SHA1, EALG_AES, 64)
    );
    assert_eq!(
        got.key(ExtKind::KeyEncrypt)
            .map(|k| k.material.expose().to_vec()),
        Some(hex(AES128).expose().to_vec())
    );
    // No longer larval: it outlives the 90-second larval lifetime.
    assert!(k.age(T0 + 200).is_empty());
    assert_eq!(k.sa(satype::ESP, spi, ME, T0 + 200).state, MATURE);
    // A refused completion leaves the larval SA as it was.
    let r = k.send(&getspi(satype::ESP, PEER, ME, 0x2000, 0x2000), T0);
    assert_eq!(r.only().sa().map(|s| s.spi), Some(0x2000));
    let bad = upd(0x2000, Some(PEER), ME)
        .sa_edit(|s| s.encrypt = EALG_AES)
        .with(key(ExtKind::KeyEncrypt, 64, "0123456789abcdef"));
    k.refused(&bad, T0, Errno::Einval, Diagnostic::BadEkeybits);
}
