//! ADD processing (ipseckey-behaviour.md 5.2 steps 6-17).

mod common;
use common::*;

fn bad_lifetimes(m: Message) -> Message {
    m.with(lifetime(ExtKind::LifetimeHard, 1, 100, 100, 100))
        .with(lifetime(ExtKind::LifetimeSoft, 2, 200, 200, 200))
}

fn set_soft(m: Message, allocations: u32, bytes: u64, addtime: u64, usetime: u64) -> Message {
    m.set(lifetime(
        ExtKind::LifetimeSoft,
        allocations,
        bytes,
        addtime,
        usetime,
    ))
}

fn current() -> Extension {
    lifetime(ExtKind::LifetimeCurrent, 0, 0, T0, 0)
}

fn label() -> Extension {
    Extension::Sensitivity(
        ExtKind::Sensitivity,
        Sensitivity {
            dpd: 1,
            sens_level: 2,
            ..Sensitivity::default()
        },
    )
}

#[test]
fn esp_add_checks_run_in_order_18_19_20_21_43_41_40_42_hserr_51_52_current_83_then_keys() {
    let mut k = kernel();
    let einval = |k: &mut Kernel, m: &Message, d: Diagnostic| {
        k.refused(m, T0, Errno::Einval, d);
    };
    let m = bad_lifetimes(base(MsgType::Add, satype::ESP))
        .with(current())
        .with(label());
    einval(&mut k, &m, Diagnostic::MissingSrc);
    let m = m.with(addr(ExtKind::AddressSrc, ME));
    einval(&mut k, &m, Diagnostic::MissingDst);
    let m = m.with(addr(ExtKind::AddressDst, PEER));
    einval(&mut k, &m, Diagnostic::MissingSa);
    let m = m.with(SaExt {
        spi: 0x100,
        state: SaState::Larval as u8,
        flags: flags::PFS | flags::X_NATT_LOC,
        ..SaExt::default()
    });
    einval(&mut k, &m, Diagnostic::MissingEkey);
    let m = m.with(key(ExtKind::KeyEncrypt, 128, AES128));
    einval(&mut k, &m, Diagnostic::BadSastate);
    let m = m.sa_edit(|s| s.state = MATURE);
    einval(&mut k, &m, Diagnostic::BadEalg);
    let m = m.sa_edit(|s| s.encrypt = EALG_NULL);
    einval(&mut k, &m, Diagnostic::BadAalg);
    let m = m
        .sa_edit(|s| s.auth = AALG_SHA1)
        .with(key(ExtKind::KeyAuth, 160, SHA1_KEY));
    einval(&mut k, &m, Diagnostic::BadSaflags);
    let m = m.sa_edit(|s| s.flags = flags::X_NATT_LOC);
    einval(&mut k, &m, Diagnostic::AllocHserr);
    let m = set_soft(m, 1, 200, 200, 200);
    einval(&mut k, &m, Diagnostic::BytesHserr);
    let m = set_soft(m, 1, 100, 200, 200);
    einval(&mut k, &m, Diagnostic::AddtimeHserr);
    let m = set_soft(m, 1, 100, 100, 200);
    einval(&mut k, &m, Diagnostic::UsetimeHserr);
    let m = set_soft(m, 1, 100, 100, 100);
    einval(&mut k, &m, Diagnostic::MissingNattLoc);
    let m = m.sa_edit(|s| s.flags = flags::X_NATT_REM);
    einval(&mut k, &m, Diagnostic::MissingNattRem);
    let m = m.sa_edit(|s| s.flags = 0);
    k.refused(&m, T0, Errno::Eopnotsupp, Diagnostic::None);
    let m = m.without(ExtKind::LifetimeCurrent);
    einval(&mut k, &m, BAD_LABEL);
    let m = m.without(ExtKind::Sensitivity);
    // Step 8: NULL encryption takes no key.
    einval(&mut k, &m, Diagnostic::BadEkeybits);
    let m = m.without(ExtKind::KeyEncrypt);
    k.ok(&m, T0);
    let sa = k.sa(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        (sa.auth, sa.encrypt, sa.state),
        (AALG_SHA1, EALG_NULL, MATURE)
    );
}

#[test]
fn ah_add_checks_run_in_order_18_19_20_22_43_46_42_hserr_current_83_40_44() {
    let mut k = kernel();
    let einval = |k: &mut Kernel, m: &Message, d: Diagnostic| {
        k.refused(m, T0, Errno::Einval, d);
    };
    let m = bad_lifetimes(base(MsgType::Add, satype::AH))
        .with(current())
        .with(label());
    einval(&mut k, &m, Diagnostic::MissingSrc);
    let m = m.with(addr(ExtKind::AddressSrc, ME));
    einval(&mut k, &m, Diagnostic::MissingDst);
    let m = m.with(addr(ExtKind::AddressDst, PEER));
    einval(&mut k, &m, Diagnostic::MissingSa);
    let m = m.with(SaExt {
        spi: 0x100,
        state: SaState::Dying as u8,
        auth: 99,
        encrypt: EALG_3DES,
        flags: flags::X_NATT_LOC,
        ..SaExt::default()
    });
    einval(&mut k, &m, Diagnostic::MissingAkey);
    let m = m.with(key(ExtKind::KeyAuth, 160, SHA1_KEY));
    einval(&mut k, &m, Diagnostic::BadSastate);
    let m = m.sa_edit(|s| s.state = MATURE);
    einval(&mut k, &m, Diagnostic::EncrNotsupp);
    let m = m.sa_edit(|s| s.encrypt = EALG_NONE);
    einval(&mut k, &m, Diagnostic::BadSaflags);
    let m = m.sa_edit(|s| s.flags = 0);
    einval(&mut k, &m, Diagnostic::AllocHserr);
    let m = set_soft(m, 1, 200, 200, 200);
    einval(&mut k, &m, Diagnostic::BytesHserr);
    let m = set_soft(m, 1, 100, 200, 200);
    einval(&mut k, &m, Diagnostic::AddtimeHserr);
    let m = set_soft(m, 1, 100, 100, 200);
    einval(&mut k, &m, Diagnostic::UsetimeHserr);
    let m = set_soft(m, 1, 100, 100, 100);
    k.refused(&m, T0, Errno::Eopnotsupp, Diagnostic::None);
    let m = m.without(ExtKind::LifetimeCurrent);
    einval(&mut k, &m, BAD_LABEL);
    let m = m.without(ExtKind::Sensitivity);
    einval(&mut k, &m, Diagnostic::BadAalg);
    let m = m.sa_edit(|s| s.auth = AALG_MD5);
    einval(&mut k, &m, Diagnostic::BadAkeybits);
    let m = m.sa_edit(|s| s.auth = AALG_SHA1);
    k.ok(&m, T0);
    assert_eq!(k.sa(satype::AH, 0x100, PEER, T0).auth, AALG_SHA1);
}

#[test]
fn esp_authentication_key_checks_run_before_encryption_key_checks() {
    let mut k = kernel();
    let both_bad = esp_add(0x100, Some(ME), PEER)
        .set(key(ExtKind::KeyAuth, 128, MD5_KEY))
        .set(key(ExtKind::KeyEncrypt, 64, "0123456789abcdef"));
    k.refused(&both_bad, T0, Errno::Einval, Diagnostic::BadAkeybits);
    let enc_bad = both_bad.set(key(ExtKind::KeyAuth, 160, SHA1_KEY));
    k.refused(&enc_bad, T0, Errno::Einval, Diagnostic::BadEkeybits);
}

#[test]
fn esp_unknown_authentication_algorithm_is_bad_aalg_40() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.auth = 99);
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadAalg);
    k.refused(
        &req.without(ExtKind::KeyAuth),
        T0,
        Errno::Einval,
        Diagnostic::BadAalg,
    );
}

#[test]
fn esp_authentication_key_of_the_wrong_size_is_bad_akeybits_44() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.auth = AALG_SHA256);
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadAkeybits);
}

#[test]
fn esp_unknown_encryption_algorithm_is_bad_ealg_41() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.encrypt = 99);
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadEalg);
    // Without a key the missing key is reported first (step 6).
    k.refused(
        &req.without(ExtKind::KeyEncrypt),
        T0,
        Errno::Einval,
        Diagnostic::MissingEkey,
    );
}

#[test]
fn esp_encryption_key_of_the_wrong_size_is_bad_ekeybits_45() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyEncrypt, 64, "0123456789abcdef"));
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadEkeybits);
}

#[test]
fn esp_authentication_algorithm_without_its_key_is_missing_akey_22() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).without(ExtKind::KeyAuth);
    k.refused(&req, T0, Errno::Einval, Diagnostic::MissingAkey);
    // Encryption only (auth_alg none) is fine.
    k.ok(&req.sa_edit(|s| s.auth = AALG_NONE), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert!(!got.has(ExtKind::KeyAuth));
    assert_eq!(got.sa().map(|s| s.auth), Some(AALG_NONE));
}

#[test]
fn flags_outside_the_add_set_are_bad_saflags_42() {
    let mut k = kernel();
    for f in [
        flags::PFS,
        flags::X_UNIQUE,
        flags::X_USED,
        flags::X_KRES1,
        flags::X_KRES2,
    ] {
        k.refused(
            &esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.flags = f),
            T0,
            Errno::Einval,
            Diagnostic::BadSaflags,
        );
    }
    for f in [flags::X_NATT_LOC, flags::X_NATTED, flags::X_EALG1] {
        k.refused(
            &ah_add(0x100, Some(ME), PEER).sa_edit(|s| s.flags = f),
            T0,
            Errno::Einval,
            Diagnostic::BadSaflags,
        );
    }
    let settable =
        flags::NOREPLAY | flags::X_KM1 | flags::X_AALG1 | flags::X_EALG2 | flags::X_NATTED;
    k.ok(
        &esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.flags = settable),
        T0,
    );
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0).flags,
        settable | flags::X_OUTBOUND
    );
}

#[test]
fn state_other_than_mature_or_active_elsewhere_is_bad_sastate_43() {
    let mut k = kernel();
    for st in [
        SaState::Larval as u8,
        SaState::Dying as u8,
        SaState::Dead as u8,
        SaState::Idle as u8,
        7,
        200,
    ] {
        k.refused(
            &esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.state = st),
            T0,
            Errno::Einval,
            Diagnostic::BadSastate,
        );
    }
    // The cluster state ACTIVE_ELSEWHERE is the other one allowed, and kept.
    k.ok(
        &esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.state = SaState::ActiveElsewhere as u8),
        T0,
    );
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0).state,
        SaState::ActiveElsewhere as u8
    );
}

#[test]
fn current_lifetime_in_an_add_is_eopnotsupp_without_diagnostic() {
    let mut k = kernel();
    k.refused(
        &esp_add(0x100, Some(ME), PEER).with(current()),
        T0,
        Errno::Eopnotsupp,
        Diagnostic::None,
    );
    k.refused(
        &ah_add(0x100, Some(ME), PEER).with(current()),
        T0,
        Errno::Eopnotsupp,
        Diagnostic::None,
    );
}

#[test]
fn security_labels_on_this_unlabeled_host_are_bad_label_83() {
    let mut k = kernel();
    k.refused(
        &esp_add(0x100, Some(ME), PEER).with(label()),
        T0,
        Errno::Einval,
        BAD_LABEL,
    );
    let outer = Extension::Sensitivity(ExtKind::OuterSensitivity, Sensitivity::default());
    k.refused(
        &ah_add(0x100, Some(ME), PEER).with(outer),
        T0,
        Errno::Einval,
        BAD_LABEL,
    );
}

#[test]
fn tunnel_mode_fills_in_outer_protocol_4_or_41_and_sets_x_tunnel() {
    let mut k = kernel();
    let v4 = esp_add(0x100, Some(ME), PEER)
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    let echo = k.ok(&v4, T0);
    assert_eq!(
        echo.sa().map(|s| s.flags),
        Some(flags::X_TUNNEL | flags::X_OUTBOUND)
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    for kind in [ExtKind::AddressSrc, ExtKind::AddressDst] {
        assert_eq!(
            got.address(kind).map(|a| a.proto),
            Some(4),
            "IPv4 inside: IP-in-IP"
        );
    }
    let isrc = got.address(ExtKind::AddressInnerSrc).expect("inner source");
    assert_eq!(
        (isrc.addr.ip, isrc.prefix_len),
        (ip("192.168.1.0"), 24),
        "stored as IPv4 with its real prefix"
    );

    let v6 = esp_add(0x200, Some(ME), PEER)
        .with(inner(ExtKind::AddressInnerSrc, "2001:db8:1::", 48))
        .with(inner(ExtKind::AddressInnerDst, "2001:db8:2::", 48));
    k.ok(&v6, T0);
    let got = k.get(satype::ESP, 0x200, PEER, T0);
    assert_eq!(
        got.address(ExtKind::AddressSrc).map(|a| a.proto),
        Some(41),
        "IPv6 inside"
    );
    assert_eq!(
        got.sa().map(|s| s.flags & flags::X_TUNNEL),
        Some(flags::X_TUNNEL)
    );
}

#[test]
fn tunnel_mode_with_a_conflicting_outer_protocol_is_eprototype_67() {
    let mut k = kernel();
    let req = |proto: u8, v6_inside: bool| {
        let (s, d, p) = if v6_inside {
            ("2001:db8:1::", "2001:db8:2::", 48)
        } else {
            ("192.168.1.0", "192.168.2.0", 24)
        };
        esp_add(0x100, Some(ME), PEER)
            .set(addr_pp(ExtKind::AddressDst, PEER, 0, proto))
            .with(inner(ExtKind::AddressInnerSrc, s, p))
            .with(inner(ExtKind::AddressInnerDst, d, p))
    };
    k.refused(
        &req(41, false),
        T0,
        Errno::Eprototype,
        Diagnostic::InnerAfMismatch,
    );
    k.refused(
        &req(4, true),
        T0,
        Errno::Eprototype,
        Diagnostic::InnerAfMismatch,
    );
    k.refused(
        &req(6, false),
        T0,
        Errno::Eprototype,
        Diagnostic::InnerAfMismatch,
    );
    k.ok(&req(4, false), T0);
}

#[test]
fn tunnel_mode_keeps_inner_ports_and_protocol_and_reports_no_outer_ports() {
    let mut k = kernel();
    let isrc = Extension::Address(
        ExtKind::AddressInnerSrc,
        Address {
            proto: 6,
            prefix_len: 120,
            addr: SockAddr::new(wire_ip("192.168.1.0"), 80),
        },
    );
    let req = esp_add(0x100, Some(ME), PEER).with(isrc).with(inner(
        ExtKind::AddressInnerDst,
        "192.168.2.0",
        24,
    ));
    k.ok(&req, T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let s = got.address(ExtKind::AddressInnerSrc).expect("inner source");
    assert_eq!((s.addr.port, s.proto), (80, 6));
    assert_eq!(
        got.address(ExtKind::AddressInnerDst).map(|a| a.proto),
        Some(6)
    );
    assert_eq!(
        got.address(ExtKind::AddressSrc).map(|a| a.addr.port),
        Some(0)
    );
    let f = got.sa().map(|s| s.flags).unwrap_or_default();
    assert_eq!(
        f,
        flags::X_TUNNEL | flags::X_UNIQUE | flags::X_OUTBOUND,
        "inner ports make a unique SA"
    );
}

#[test]
fn tunnel_flag_without_inner_source_is_missing_inner_src_58() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).sa_edit(|s| s.flags = flags::X_TUNNEL);
    k.refused(&req, T0, Errno::Einval, Diagnostic::MissingInnerSrc);
}

#[test]
fn ports_or_protocol_make_the_sa_unique() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0).flags & flags::X_UNIQUE,
        0
    );
    k.ok(
        &esp_add(0x200, Some(ME), PEER).set(addr_pp(ExtKind::AddressDst, PEER, 500, 0)),
        T0,
    );
    let got = k.get(satype::ESP, 0x200, PEER, T0);
    assert_eq!(
        got.sa().map(|s| s.flags & flags::X_UNIQUE),
        Some(flags::X_UNIQUE)
    );
    assert_eq!(
        got.address(ExtKind::AddressDst).map(|a| a.addr.port),
        Some(500)
    );
    k.ok(
        &esp_add(0x300, Some(ME), PEER).set(addr_pp(ExtKind::AddressSrc, ME, 0, 17)),
        T0,
    );
    let got = k.get(satype::ESP, 0x300, PEER, T0);
    assert_eq!(
        got.sa().map(|s| s.flags & flags::X_UNIQUE),
        Some(flags::X_UNIQUE)
    );
    assert_eq!(got.address(ExtKind::AddressDst).map(|a| a.proto), Some(17));
}

#[test]
fn add_time_is_now() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0 + 1234);
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 5000);
    let cur = got
        .lifetime(ExtKind::LifetimeCurrent)
        .copied()
        .expect("GET always carries CURRENT");
    assert_eq!(
        cur,
        Lifetime {
            allocations: 0,
            bytes: 0,
            addtime: T0 + 1234,
            usetime: 0
        }
    );
}

#[test]
fn successful_add_is_echoed_to_all_sockets_without_keys_and_with_the_sas_real_flags() {
    let mut k = kernel();
    let req = esp_add(0x100, None, ME)
        .set(addr_pp(ExtKind::AddressDst, ME, 4500, 17))
        .with(hard_add(100));
    let r = k.send(&req, T0);
    assert_eq!(r.audience(), Audience::All);
    let echo = r.only();
    assert_eq!(
        (echo.msg_type, echo.errno, echo.reserved, echo.seq, echo.pid),
        (MsgType::Add, 0, 0, r.seq, PID)
    );
    assert!(
        !echo.has(ExtKind::KeyAuth) && !echo.has(ExtKind::KeyEncrypt),
        "keys are stripped: {echo:?}"
    );
    for kind in [
        ExtKind::Sa,
        ExtKind::AddressSrc,
        ExtKind::AddressDst,
        ExtKind::LifetimeHard,
    ] {
        assert!(echo.has(kind), "the echo keeps {kind:?}");
    }
    // Destination is me, no source: cloned, flagged X_INBOUND only; the
    // port makes it unique.
    assert_eq!(
        echo.sa().map(|s| s.flags),
        Some(flags::X_INBOUND | flags::X_UNIQUE)
    );
    assert_eq!(echo.sa().map(|s| s.spi), Some(0x100));
}

#[test]
fn keys_and_identities_are_stored_and_shown_by_get() {
    let mut k = kernel();
    let ident = Identity {
        id_type: 2,
        id: 0,
        text: b"gw.example.com".to_vec(),
    };
    let req = esp_add(0x100, Some(ME), PEER)
        .with(Extension::Identity(ExtKind::IdentityDst, ident.clone()));
    k.ok(&req, T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let a = got.key(ExtKind::KeyAuth).expect("auth key");
    assert_eq!((a.bits, a.material.expose()), (160, hex(SHA1_KEY).expose()));
    let e = got.key(ExtKind::KeyEncrypt).expect("encryption key");
    assert_eq!(
        (e.bits, e.reserved, e.material.expose()),
        (128, 0, hex(AES128).expose())
    );
    assert_eq!(
        got.ext(ExtKind::IdentityDst),
        Some(&Extension::Identity(ExtKind::IdentityDst, ident))
    );
}

#[test]
fn cloned_sa_with_pair_spi_is_refused_before_the_tunnel_protocol_and_replay_value_checks() {
    let mut k = kernel();
    k.ok(&esp_add(0x200, Some(PEER), ME), T0);
    // dst not-me without src: will be cloned (step 10 comes before 11 and 12).
    let cloned = esp_add(0x100, None, PEER).with(Extension::Pair { spi: 0x200 });
    let bad_tunnel = cloned
        .clone()
        .set(addr_pp(ExtKind::AddressDst, PEER, 0, 41))
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    k.refused(
        &bad_tunnel,
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    let bad_replay = cloned
        .clone()
        .with(Extension::ReplayValue { r32: 0, r64: 5 });
    k.refused(
        &bad_replay,
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
    let bad_tunnel_flag = cloned.sa_edit(|s| s.flags = flags::X_TUNNEL);
    k.refused(
        &bad_tunnel_flag,
        T0,
        Errno::Einval,
        Diagnostic::PairInappropriate,
    );
}
