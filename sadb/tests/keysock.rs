//! The socket layer's checks on every message (ipseckey-behaviour.md 5.2
//! steps 1-3, pfkey-v2-wire.md 1.4 and 6.3), on raw PF_KEY bytes.

mod common;
use common::*;

/// An extension given as raw bytes after its 4-byte generic header.
fn raw(wire_type: u16, body_len: usize) -> Extension {
    Extension::Unknown {
        wire_type,
        body: vec![0x11; body_len],
    }
}

#[test]
fn declared_length_not_matching_the_bytes_written_is_emsgsize_without_diagnostic() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let mut req = esp_add(0x200, Some(ME), PEER);
    req.seq = 7;
    req.pid = PID;
    let good = bytes(&req);

    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 8]);
    k.refused_bytes(&longer, MsgType::Add, T0, Errno::Emsgsize, Diagnostic::None);

    let shorter = &good[..good.len() - 8];
    k.refused_bytes(shorter, MsgType::Add, T0, Errno::Emsgsize, Diagnostic::None);

    // Not even a base header: nothing of the request can be echoed.
    let r = k.send_bytes(&good[..12], T0);
    assert_eq!(r.only().errno, errno(Errno::Emsgsize));
    assert_eq!(r.only().msg_type, MsgType::Reserved);
    k.gone(satype::ESP, 0x200, PEER, T0);
}

#[test]
fn extension_type_0_or_above_27_is_unknown_ext_2() {
    let mut k = kernel();
    for wire_type in [28u16, 29, 200] {
        let b = bytes(&esp_add(0x100, Some(ME), PEER).with(raw(wire_type, 4)));
        k.refused_bytes(&b, MsgType::Add, T0, Errno::Einval, Diagnostic::UnknownExt);
    }
    // Type 27 (X_OUTER_SENS) is the last one illumos knows: not "unknown".
    let b = bytes(&esp_add(0x100, Some(ME), PEER).with(raw(27, 12)));
    assert_ne!(
        k.send_bytes(&b, T0).only().reserved,
        Diagnostic::UnknownExt.code()
    );
    k.ok(&base(MsgType::Flush, satype::UNSPEC), T0);

    let mut b = bytes(&esp_add(0x100, Some(ME), PEER));
    let at = ext_offset(&b, ExtKind::AddressSrc);
    put_u16(&mut b, at + 2, 0);
    k.refused_bytes(&b, MsgType::Add, T0, Errno::Einval, Diagnostic::UnknownExt);
}

#[test]
fn extension_length_0_or_past_the_end_is_bad_extlen_3() {
    let mut k = kernel();
    let good = bytes(&esp_add(0x100, Some(ME), PEER));
    let at = ext_offset(&good, ExtKind::AddressDst);

    let mut zero = good.clone();
    put_u16(&mut zero, at, 0);
    k.refused_bytes(
        &zero,
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::BadExtlen,
    );

    let mut overrun = good.clone();
    put_u16(&mut overrun, at, (good.len() / 8) as u16);
    k.refused_bytes(
        &overrun,
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::BadExtlen,
    );
}

#[test]
fn duplicate_src_dst_sa_keys_range_and_inner_addresses_have_their_own_diagnostics() {
    let mut k = kernel();
    let add = esp_add(0x100, Some(ME), PEER);
    let cases = [
        (addr(ExtKind::AddressSrc, ME), Diagnostic::DuplicateSrc),
        (addr(ExtKind::AddressDst, PEER), Diagnostic::DuplicateDst),
        (
            Extension::Sa(SaExt {
                spi: 0x100,
                state: MATURE,
                ..SaExt::default()
            }),
            Diagnostic::DuplicateSa,
        ),
        (
            key(ExtKind::KeyEncrypt, 128, AES128),
            Diagnostic::DuplicateEkey,
        ),
        (
            key(ExtKind::KeyAuth, 160, SHA1_KEY),
            Diagnostic::DuplicateAkey,
        ),
    ];
    for (ext, diag) in cases {
        let b = bytes(&add.clone().with(ext));
        k.refused_bytes(&b, MsgType::Add, T0, Errno::Einval, diag);
    }

    let tunnel = add
        .clone()
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    let b = bytes(
        &tunnel
            .clone()
            .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24)),
    );
    k.refused_bytes(
        &b,
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::DuplicateInnerSrc,
    );
    let b = bytes(&tunnel.with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24)));
    k.refused_bytes(
        &b,
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::DuplicateInnerDst,
    );

    let gs = getspi(satype::ESP, PEER, ME, 0x1000, 0x2000);
    let b = bytes(&gs.with(Extension::SpiRange(SpiRange {
        min: 0x3000,
        max: 0x4000,
    })));
    k.refused_bytes(
        &b,
        MsgType::GetSpi,
        T0,
        Errno::Einval,
        Diagnostic::DuplicateRange,
    );
}

#[test]
fn duplicate_of_any_other_extension_is_diagnostic_0() {
    let mut k = kernel();
    let add = esp_add(0x100, Some(ME), PEER);
    let ident = Extension::Identity(
        ExtKind::IdentitySrc,
        Identity {
            id_type: 2,
            id: 0,
            text: b"a.example".to_vec(),
        },
    );
    let nat = addr(ExtKind::AddressNattLoc, "192.0.2.7");
    let dups = [
        vec![hard_add(100), hard_add(200)],
        vec![soft_add(100), soft_add(50)],
        vec![
            Extension::Pair { spi: 0x300 },
            Extension::Pair { spi: 0x301 },
        ],
        vec![nat.clone(), nat],
        vec![ident.clone(), ident],
        vec![
            Extension::ReplayValue { r32: 1, r64: 0 },
            Extension::ReplayValue { r32: 2, r64: 0 },
        ],
    ];
    for pair in dups {
        let mut m = add.clone();
        m.exts.extend(pair);
        k.refused_bytes(
            &bytes(&m),
            MsgType::Add,
            T0,
            Errno::Einval,
            Diagnostic::None,
        );
    }
}

#[test]
fn address_extension_not_longer_than_its_header_is_malformed_30_31_62_63() {
    let mut k = kernel();
    let add = esp_add(0x100, Some(ME), PEER);
    let tunnel = add
        .clone()
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    let cases = [
        (
            add.clone().without(ExtKind::AddressSrc),
            ExtKind::AddressSrc,
            Diagnostic::MalformedSrc,
        ),
        (
            add.clone().without(ExtKind::AddressDst),
            ExtKind::AddressDst,
            Diagnostic::MalformedDst,
        ),
        (
            tunnel.clone().without(ExtKind::AddressInnerSrc),
            ExtKind::AddressInnerSrc,
            Diagnostic::MalformedInnerSrc,
        ),
        (
            tunnel.without(ExtKind::AddressInnerDst),
            ExtKind::AddressInnerDst,
            Diagnostic::MalformedInnerDst,
        ),
    ];
    for (m, kind, diag) in cases {
        let n = kind.number(Dialect::Illumos).expect("illumos kind");
        // 8 bytes: the address header with no sockaddr at all.
        k.refused_bytes(
            &bytes(&m.with(raw(n, 4))),
            MsgType::Add,
            T0,
            Errno::Einval,
            diag,
        );
    }
}

#[test]
fn hard_soft_and_current_lifetimes_must_be_exactly_32_bytes_else_diagnostic_0() {
    let mut k = kernel();
    for kind in [
        ExtKind::LifetimeHard,
        ExtKind::LifetimeSoft,
        ExtKind::LifetimeCurrent,
    ] {
        let n = kind.number(Dialect::Illumos).expect("illumos kind");
        for body in [20usize, 36] {
            let b = bytes(&esp_add(0x100, Some(ME), PEER).with(raw(n, body)));
            k.refused_bytes(&b, MsgType::Add, T0, Errno::Einval, Diagnostic::None);
        }
    }
    // The idle lifetime is not size-checked by keysock: 40 bytes pass.
    let idle = Extension::Unknown {
        wire_type: ExtKind::LifetimeIdle
            .number(Dialect::Illumos)
            .expect("illumos kind"),
        body: [vec![0u8; 12], 30u64.to_ne_bytes().to_vec(), vec![0u8; 16]].concat(),
    };
    k.ok(&esp_add(0x100, Some(ME), PEER).with(idle), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        got.lifetime(ExtKind::LifetimeIdle).map(|l| l.addtime),
        Some(30)
    );
}

#[test]
fn key_with_zero_bits_is_malformed_33_34() {
    let mut k = kernel();
    let enc = esp_add(0x100, Some(ME), PEER).set(Extension::Key(
        ExtKind::KeyEncrypt,
        Key {
            bits: 0,
            reserved: 0,
            material: hex(AES128),
        },
    ));
    k.refused_bytes(
        &bytes(&enc),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedEkey,
    );
    let auth = esp_add(0x100, Some(ME), PEER).set(Extension::Key(
        ExtKind::KeyAuth,
        Key {
            bits: 0,
            reserved: 0,
            material: hex(SHA1_KEY),
        },
    ));
    k.refused_bytes(
        &bytes(&auth),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedAkey,
    );
}

#[test]
fn key_length_must_be_floor_of_bits_over_8_rounded_to_words_so_odd_bit_counts_are_malformed() {
    let mut k = kernel();
    // `encrkey e/3`: ipseckey sends one byte, the kernel expects none.
    let e3 = esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyEncrypt, 3, "e0"));
    k.refused_bytes(
        &bytes(&e3),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedEkey,
    );
    // 65 bits: ipseckey sends 9 bytes (two words), the kernel expects one.
    let a65 = esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyAuth, 65, "0123456789abcdef80"));
    k.refused_bytes(
        &bytes(&a65),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedAkey,
    );
    // A 128-bit key in a three-word payload is one word too long.
    let long = esp_add(0x100, Some(ME), PEER).set(key(
        ExtKind::KeyEncrypt,
        128,
        &format!("{AES128}0102030405060708"),
    ));
    k.refused_bytes(
        &bytes(&long),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedEkey,
    );
    // 136 bits (17 bytes) fill three words exactly: keysock lets them
    // through and the algorithm check refuses the size instead.
    let ok_len =
        esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyEncrypt, 136, &format!("{AES128}01")));
    k.refused(&ok_len, T0, Errno::Einval, Diagnostic::BadEkeybits);
}

#[test]
fn all_zero_key_is_malformed_33_34() {
    let mut k = kernel();
    let enc = esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyEncrypt, 128, &"00".repeat(16)));
    k.refused_bytes(
        &bytes(&enc),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedEkey,
    );
    let auth = esp_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyAuth, 160, &"00".repeat(20)));
    k.refused_bytes(
        &bytes(&auth),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedAkey,
    );
    let ah = ah_add(0x100, Some(ME), PEER).set(key(ExtKind::KeyAuth, 128, &"00".repeat(16)));
    k.refused_bytes(
        &bytes(&ah),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::MalformedAkey,
    );
}

#[test]
fn sa_type_0_on_add_update_delete_get_and_getspi_is_satype_needed_5() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let reqs = [
        esp_add(0x200, Some(ME), PEER),
        update(MsgType::Update, satype::ESP, 0x100, Some(ME), PEER),
        update(MsgType::UpdatePair, satype::ESP, 0x100, Some(ME), PEER),
        by_spi(MsgType::Delete, satype::ESP, 0x100, PEER),
        by_spi(MsgType::DelPair, satype::ESP, 0x100, PEER),
        by_spi(MsgType::Get, satype::ESP, 0x100, PEER),
        getspi(satype::ESP, PEER, ME, 0x1000, 0x2000),
    ];
    for mut req in reqs {
        req.satype = satype::UNSPEC;
        k.refused(&req, T0, Errno::Einval, Diagnostic::SatypeNeeded);
    }
}

#[test]
fn sa_type_without_an_sadb_is_unknown_satype_4() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let reqs = [
        esp_add(0x200, Some(ME), PEER),
        by_spi(MsgType::Get, satype::ESP, 0x100, PEER),
        by_spi(MsgType::Delete, satype::ESP, 0x100, PEER),
        base(MsgType::Flush, satype::ESP),
        base(MsgType::Dump, satype::ESP),
        base(MsgType::Register, satype::ESP),
    ];
    for mut req in reqs {
        req.satype = satype::RSVP;
        k.refused(&req, T0, Errno::Einval, Diagnostic::UnknownSatype);
    }
}

#[test]
fn sa_type_checks_come_after_extension_checks_and_before_address_checks() {
    let mut k = kernel();
    // Step 2 before step 3: a duplicate extension wins over satype 0.
    let mut dup = esp_add(0x100, Some(ME), PEER).with(addr(ExtKind::AddressSrc, ME));
    dup.satype = satype::UNSPEC;
    k.refused_bytes(
        &bytes(&dup),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::DuplicateSrc,
    );
    // Step 3 before step 4: satype 0 wins over a bad source family.
    let mut fam = esp_add(0x100, Some(ME), PEER);
    fam.satype = satype::UNSPEC;
    let mut b = bytes(&fam);
    let at = ext_offset(&b, ExtKind::AddressSrc);
    put_u16(&mut b, at + 8, 99);
    k.refused_bytes(
        &b,
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::SatypeNeeded,
    );
    // ... and satype 5 wins over a too-long inner prefix.
    let mut pfx = esp_add(0x100, Some(ME), PEER)
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 33))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    pfx.satype = satype::RSVP;
    k.refused_bytes(
        &bytes(&pfx),
        MsgType::Add,
        T0,
        Errno::Einval,
        Diagnostic::UnknownSatype,
    );
}

#[test]
fn unknown_message_type_is_unknown_msg_1_with_the_type_forced_to_0() {
    let mut k = kernel();
    for t in [0u8, 16, 24, 255] {
        let mut b = bytes(&esp_add(0x100, Some(ME), PEER));
        b[1] = t;
        k.refused_bytes(
            &b,
            MsgType::Reserved,
            T0,
            Errno::Einval,
            Diagnostic::UnknownMsg,
        );
    }
}

#[test]
fn identity_strings_are_forced_to_be_nul_terminated() {
    let mut k = kernel();
    let ident = Extension::Identity(
        ExtKind::IdentitySrc,
        Identity {
            id_type: 2,
            id: 0,
            text: b"abcdefg".to_vec(),
        },
    );
    let mut b = bytes(&esp_add(0x100, Some(ME), PEER).with(ident));
    // Overwrite the terminating NUL: the string now fills its extension.
    let at = ext_offset(&b, ExtKind::IdentitySrc);
    assert_eq!(b[at + 16 + 7], 0);
    b[at + 16 + 7] = b'h';
    let r = k.send_bytes(&b, T0);
    assert_eq!(r.only().errno, 0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    match got.ext(ExtKind::IdentitySrc) {
        Some(Extension::Identity(_, i)) => {
            assert_eq!(i.text, b"abcdefg".to_vec(), "last byte forced to NUL")
        }
        other => panic!("GET has no source identity: {other:?}"),
    }
}
