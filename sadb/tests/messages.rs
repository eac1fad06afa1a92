//! GETSPI, REGISTER, X_PROMISC, EXPIRE from a user, and who receives
//! replies and errors (pfkey-v2-wire.md 1.6, 1.7, 6.3;
//! ipseckey-behaviour.md 5.2, 5.6).

mod common;
use common::*;

use sadb::pfkey::AlgDesc;

fn supported(m: &Message, kind: ExtKind) -> Vec<AlgDesc> {
    match m.ext(kind) {
        Some(Extension::Supported(_, algs)) => algs.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn getspi_creates_a_larval_sa_with_an_spi_from_the_range_and_tells_every_socket() {
    let mut k = kernel_with(|c| c.seed = 42);
    let r = k.send(&getspi(satype::ESP, PEER, ME, 0x1000, 0x10ff), T0);
    assert_eq!(r.audience(), Audience::All);
    let m = r.only();
    assert_eq!(
        (m.msg_type, m.errno, m.satype, m.seq, m.pid),
        (MsgType::GetSpi, 0, satype::ESP, r.seq, PID)
    );
    let sa = m.sa().copied().expect("the reply names the SPI");
    assert!((0x1000..=0x10ff).contains(&sa.spi), "{:#x}", sa.spi);
    assert_eq!(sa.state, SaState::Larval as u8);
    assert_eq!(reply_ip(m, ExtKind::AddressSrc), ip(PEER));
    assert_eq!(reply_ip(m, ExtKind::AddressDst), ip(ME));
    let got = k.get(satype::ESP, sa.spi, ME, T0);
    assert_eq!(
        got.sa().map(|s| (s.state, s.flags)),
        Some((SaState::Larval as u8, flags::X_INBOUND))
    );
    assert!(!got.has(ExtKind::KeyAuth) && !got.has(ExtKind::KeyEncrypt));
}

#[test]
fn getspi_never_hands_out_an_spi_already_in_use() {
    let mut k = kernel();
    k.ok(&esp_add(0x500, Some(PEER), ME), T0);
    for _ in 0..4 {
        let r = k.send(&getspi(satype::ESP, PEER, ME, 0x500, 0x501), T0);
        if r.only().errno == 0 {
            assert_eq!(r.only().sa().map(|s| s.spi), Some(0x501));
        }
    }
    assert_eq!(k.dump(satype::ESP, T0).len(), 2);
}

#[test]
fn getspi_without_spi_range_is_missing_range_23() {
    let mut k = kernel();
    k.refused(
        &getspi(satype::ESP, PEER, ME, 1, 2).without(ExtKind::SpiRange),
        T0,
        Errno::Einval,
        Diagnostic::MissingRange,
    );
}

#[test]
fn getspi_without_src_is_18_and_without_dst_19() {
    let mut k = kernel();
    let gs = getspi(satype::AH, PEER, ME, 0x1000, 0x2000);
    k.refused(
        &gs.clone().without(ExtKind::AddressSrc),
        T0,
        Errno::Einval,
        Diagnostic::MissingSrc,
    );
    k.refused(
        &gs.without(ExtKind::AddressDst),
        T0,
        Errno::Einval,
        Diagnostic::MissingDst,
    );
}

#[test]
fn getspi_with_an_inverted_range_is_malformed_range_35() {
    let mut k = kernel();
    k.refused(
        &getspi(satype::ESP, PEER, ME, 0x2000, 0x1000),
        T0,
        Errno::Einval,
        Diagnostic::MalformedRange,
    );
}

#[test]
fn larval_sa_expires_after_90_seconds_without_an_expire_message() {
    let mut k = kernel();
    let r = k.send(&getspi(satype::ESP, PEER, ME, 0x1000, 0x1000), T0);
    assert_eq!(r.only().sa().map(|s| s.spi), Some(0x1000));
    assert!(k.age(T0 + 89).is_empty());
    assert_eq!(
        k.sa(satype::ESP, 0x1000, ME, T0 + 89).state,
        SaState::Larval as u8
    );
    assert!(k.age(T0 + 90).is_empty(), "no EXPIRE for a larval SA");
    k.gone(satype::ESP, 0x1000, ME, T0 + 90);
}

#[test]
fn register_replies_to_registered_sockets_with_supported_auth_and_encrypt() {
    let mut k = kernel();
    let r = k.send(&base(MsgType::Register, satype::ESP), T0);
    assert_eq!(r.effect, Some(SocketEffect::Register(satype::ESP)));
    assert_eq!(r.audience(), Audience::Registered(satype::ESP));
    let m = r.only();
    assert_eq!(
        (m.msg_type, m.satype, m.errno, m.seq, m.pid),
        (MsgType::Register, satype::ESP, 0, r.seq, PID)
    );
    let auth = supported(m, ExtKind::SupportedAuth);
    let sha1 = auth
        .iter()
        .find(|a| a.id == AALG_SHA1)
        .expect("hmac-sha1 listed");
    assert_eq!((sha1.minbits, sha1.maxbits), (160, 160));
    assert!(
        auth.iter().all(|a| a.id != AALG_NONE),
        "no 'none' authentication algorithm"
    );
    let encr = supported(m, ExtKind::SupportedEncrypt);
    let aes = encr
        .iter()
        .find(|a| a.id == EALG_AES)
        .expect("aes-cbc listed");
    assert_eq!(
        (aes.ivlen, aes.minbits, aes.maxbits, aes.increment),
        (16, 128, 256, 64)
    );
    let gcm = encr
        .iter()
        .find(|a| a.id == EALG_AES_GCM16)
        .expect("aes-gcm16 listed");
    assert_eq!(gcm.saltbits, 32);
    let des = encr.iter().find(|a| a.id == EALG_DES).expect("des listed");
    assert_eq!((des.minbits, des.maxbits), (64, 64));
}

#[test]
fn register_for_ah_lists_only_authentication_algorithms() {
    let mut k = kernel();
    let r = k.send(&base(MsgType::Register, satype::AH), T0);
    assert_eq!(
        (r.effect.clone(), r.audience()),
        (
            Some(SocketEffect::Register(satype::AH)),
            Audience::Registered(satype::AH)
        )
    );
    let m = r.only();
    assert!(supported(m, ExtKind::SupportedAuth)
        .iter()
        .any(|a| a.id == AALG_MD5));
    assert!(!m.has(ExtKind::SupportedEncrypt));
}

#[test]
fn extended_register_with_sa_type_0_registers_the_listed_types() {
    let mut k = kernel();
    let r = k.send(
        &base(MsgType::Register, satype::UNSPEC)
            .with(Extension::ExtRegister(vec![satype::AH, satype::ESP])),
        T0,
    );
    assert_eq!(
        r.effect,
        Some(SocketEffect::RegisterExtended(vec![
            satype::AH,
            satype::ESP
        ]))
    );
    assert_eq!(r.audience(), Audience::Registered(satype::UNSPEC));
    assert!(r.only().has(ExtKind::SupportedEncrypt));
    // Normal REGISTER needs a type; extended needs the type list.
    k.refused(
        &base(MsgType::Register, satype::UNSPEC),
        T0,
        Errno::Einval,
        Diagnostic::SatypeNeeded,
    );
    let bad =
        base(MsgType::Register, satype::UNSPEC).with(Extension::ExtRegister(vec![satype::RSVP]));
    k.refused(&bad, T0, Errno::Einval, Diagnostic::UnknownSatype);
}

#[test]
fn promisc_turns_promiscuous_receive_on_and_off_and_answers_the_sender() {
    let mut k = kernel();
    for (st, on) in [(1u8, true), (7, true), (0, false)] {
        let r = k.send(&base(MsgType::Promisc, st), T0);
        assert_eq!(r.effect, Some(SocketEffect::Promisc(on)), "satype {st}");
        assert_eq!(r.audience(), Audience::Sender);
        let m = r.only();
        assert_eq!(
            (m.msg_type, m.errno, m.satype, m.seq, m.pid),
            (MsgType::Promisc, 0, st, r.seq, PID)
        );
    }
}

#[test]
fn expire_from_a_user_process_is_eopnotsupp() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let req = by_spi(MsgType::Expire, satype::ESP, 0x100, PEER).with(lifetime(
        ExtKind::LifetimeHard,
        0,
        0,
        10,
        0,
    ));
    k.refused(&req, T0, Errno::Eopnotsupp, Diagnostic::None);
    assert_eq!(k.sa(satype::ESP, 0x100, PEER, T0).state, MATURE);
}

#[test]
fn error_replies_go_to_every_socket_for_add_update_delete_getspi_flush_and_to_the_sender_for_get_dump(
) {
    let mut k = kernel();
    let missing = |t: MsgType| by_spi(t, satype::ESP, 0x999, PEER);
    let cases = [
        (esp_add(0x100, Some(ME), "0.0.0.0"), Audience::All),
        (
            update(MsgType::Update, satype::ESP, 0x999, Some(ME), PEER),
            Audience::All,
        ),
        (
            update(MsgType::UpdatePair, satype::ESP, 0x999, Some(ME), PEER),
            Audience::All,
        ),
        (missing(MsgType::Delete), Audience::All),
        (missing(MsgType::DelPair), Audience::All),
        (
            getspi(satype::ESP, PEER, ME, 1, 2).without(ExtKind::SpiRange),
            Audience::All,
        ),
        (
            base(MsgType::Flush, satype::ESP).with(hard_add(1)),
            Audience::All,
        ),
        (missing(MsgType::Expire), Audience::All),
        (missing(MsgType::Get), Audience::Sender),
        (
            base(MsgType::Dump, satype::ESP).with(hard_add(1)),
            Audience::Sender,
        ),
        (base(MsgType::Register, satype::RSVP), Audience::Sender),
    ];
    for (req, want) in cases {
        let r = k.send(&req, T0);
        assert_ne!(r.only().errno, 0, "{:?} should fail", req.msg_type);
        assert_eq!(r.audience(), want, "{:?}", req.msg_type);
    }
    // Success replies: ADD/DELETE to all, GET to the sender.
    assert_eq!(
        k.send(&esp_add(0x100, Some(ME), PEER), T0).audience(),
        Audience::All
    );
    assert_eq!(
        k.send(&missing(MsgType::Get).sa_edit(|s| s.spi = 0x100), T0)
            .audience(),
        Audience::Sender
    );
    assert_eq!(
        k.send(&missing(MsgType::Delete).sa_edit(|s| s.spi = 0x100), T0)
            .audience(),
        Audience::All
    );
}

#[test]
fn a_refused_request_leaves_the_sadb_unchanged() {
    let mut k = kernel_with(|c| c.jitter = Jitter::Seeded(5));
    // Something of everything: paired, cloned, dying, larval, used.
    k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(100)), T0);
    k.ok(
        &esp_add(0x200, Some(PEER), ME).with(Extension::Pair { spi: 0x100 }),
        T0,
    );
    k.ok(&esp_add(0x300, None, PEER).with(soft_add(5)), T0);
    k.ok(&ah_add(0x400, None, ME), T0);
    k.ok(&getspi(satype::ESP, PEER, ME, 0x500, 0x500), T0);
    assert_eq!(k.age(T0 + 5).len(), 1);
    assert!(k.account(satype::ESP, 0x200, ME, 1000, T0 + 6).is_ok());
    let now = T0 + 7;
    let before = k.snapshot(now);
    let paired = |m: Message, spi: u32| m.with(Extension::Pair { spi });
    let refusals = [
        (
            esp_add(0x100, Some(ME), PEER),
            Errno::Eexist,
            Diagnostic::None,
        ),
        (
            paired(esp_add(0x600, Some(PEER), ME), 0x999),
            Errno::Einval,
            Diagnostic::PairInappropriate,
        ),
        (
            paired(esp_add(0x600, None, PEER), 0x200),
            Errno::Einval,
            Diagnostic::PairInappropriate,
        ),
        (
            esp_add(0x600, Some(ME), PEER)
                .set(key(ExtKind::KeyEncrypt, 64, "0101010101010101"))
                .sa_edit(|s| s.encrypt = EALG_DES),
            Errno::Einval,
            Diagnostic::WeakEkey,
        ),
        (
            update(MsgType::Update, satype::ESP, 0x100, Some(ME), PEER).with(key(
                ExtKind::KeyAuth,
                160,
                SHA1_KEY,
            )),
            Errno::Einval,
            Diagnostic::AkeyPresent,
        ),
        (
            update(MsgType::Update, satype::ESP, 0x300, None, PEER)
                .with(hard_add(10))
                .with(soft_add(20)),
            Errno::Einval,
            Diagnostic::AddtimeHserr,
        ),
        (
            by_spi(MsgType::Delete, satype::AH, 0x999, ME),
            Errno::Esrch,
            Diagnostic::SaNotfound,
        ),
        (
            base(MsgType::Flush, satype::UNSPEC).with(hard_add(1)),
            Errno::Einval,
            Diagnostic::NoExt,
        ),
        (
            getspi(satype::ESP, PEER, ME, 0x500, 0x500).without(ExtKind::SpiRange),
            Errno::Einval,
            Diagnostic::MissingRange,
        ),
        (
            esp_add(0x600, Some("224.0.0.1"), PEER),
            Errno::Einval,
            Diagnostic::BadSrc,
        ),
    ];
    for (req, e, d) in refusals {
        k.refused(&req, now, e, d);
    }
    assert_eq!(k.snapshot(now), before);
}

#[test]
fn inverse_acquire_answers_enoent_because_policy_is_not_in_the_sadb() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let req = base(MsgType::InverseAcquire, satype::ESP);
    k.refused(
        &req.clone().with(addr(ExtKind::AddressDst, PEER)),
        T0,
        Errno::Einval,
        Diagnostic::MissingSrc,
    );
    k.refused(
        &req.clone().with(addr(ExtKind::AddressSrc, ME)),
        T0,
        Errno::Einval,
        Diagnostic::MissingDst,
    );
    let full = req
        .with(addr(ExtKind::AddressSrc, ME))
        .with(addr(ExtKind::AddressDst, PEER));
    let r = k.refused(&full, T0, Errno::Enoent, Diagnostic::None);
    assert_eq!(r.msg_type, MsgType::InverseAcquire);
}
