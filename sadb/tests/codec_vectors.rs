//! Decode the PF_KEY fixtures under `vectors/pfkey/` (built from the
//! reference layouts by `make_vectors.py`, not by this codec) and emit them
//! back bit for bit.

use std::net::IpAddr;

use sadb::pfkey::{Dialect, ExtKind, Extension, Message, MsgType};

fn load(name: &str) -> (Dialect, Vec<u8>) {
    let path = format!("{}/../vectors/pfkey/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dialect = if text.contains("# dialect: linux") {
        Dialect::Linux
    } else {
        Dialect::Illumos
    };
    let bytes = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect();
    (dialect, bytes)
}

fn round_trip(name: &str) -> Message {
    let (dialect, bytes) = load(name);
    let msg = Message::parse(&bytes, dialect).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = msg.emit(dialect).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        hex::encode(&again),
        hex::encode(&bytes),
        "{name} did not re-emit bit for bit"
    );
    msg
}

#[test]
fn every_fixture_round_trips() {
    let dir = format!("{}/../vectors/pfkey", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("vectors/pfkey") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if name.ends_with(".hex") {
            round_trip(&name);
            n += 1;
        }
    }
    assert!(n >= 8, "expected the fixtures, found {n}");
}

#[test]
fn ipseckey_add_with_mapped_addresses() {
    let m = round_trip("illumos-add-esp-mapped.hex");
    assert_eq!(m.msg_type, MsgType::Add);
    assert_eq!((m.satype, m.seq, m.pid), (3, 1, 4242));
    let sa = m.sa().expect("SA");
    assert_eq!((sa.spi, sa.auth, sa.encrypt, sa.state), (0x2112, 2, 2, 1));
    let src = m.address(ExtKind::AddressSrc).expect("src");
    assert!(src.addr.ip.is_ipv6(), "ipseckey sends AF_INET6");
    assert_eq!(
        src.addr.canonical_ip(),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        m.lifetime(ExtKind::LifetimeHard).expect("hard").usetime,
        28800
    );
    let k = m.key(ExtKind::KeyEncrypt).expect("encr key");
    assert_eq!(
        (k.bits, k.material.expose()),
        (64, &hex::decode("be02938e7def2839").unwrap()[..])
    );
}

#[test]
fn illumos_get_reply_carries_salt_after_key() {
    let m = round_trip("illumos-get-reply-gcm.hex");
    let k = m.key(ExtKind::KeyEncrypt).expect("key");
    assert_eq!((k.bits, k.reserved, k.material.len()), (128, 32, 20));
    assert_eq!(&k.material.expose()[16..], &[0xca, 0xfe, 0xba, 0xbe]);
    assert_eq!(m.ext(ExtKind::Pair), Some(&Extension::Pair { spi: 0x1001 }));
    assert_eq!(
        m.ext(ExtKind::ReplayValue),
        Some(&Extension::ReplayValue { r32: 5, r64: 0 })
    );
    assert_eq!(m.sa().expect("sa").flags, 0x8000_8000);
    assert_eq!(
        m.lifetime(ExtKind::LifetimeCurrent).expect("current").bytes,
        1500
    );
}

#[test]
fn error_reply_keeps_the_diagnostic() {
    let m = round_trip("illumos-error-reply.hex");
    assert_eq!((m.errno, m.reserved), (22, 73));
    assert!(m.exts.is_empty());
}

#[test]
fn tunnel_and_natt_extensions() {
    let m = round_trip("illumos-tunnel-natt.hex");
    let idst = m.address(ExtKind::AddressInnerDst).expect("inner dst");
    assert_eq!((idst.prefix_len, idst.addr.port, idst.proto), (24, 80, 6));
    let loc = m.address(ExtKind::AddressNattLoc).expect("natt loc");
    assert_eq!(loc.addr.port, 4500);
    assert_eq!(m.lifetime(ExtKind::LifetimeIdle).expect("idle").usetime, 50);
    assert_eq!(
        m.ext(ExtKind::KmCookie),
        Some(&Extension::KmCookie {
            proto: 1,
            cookie: 0x1122334455667788
        })
    );
    match m.ext(ExtKind::IdentitySrc) {
        Some(Extension::Identity(_, i)) => {
            assert_eq!((i.id_type, i.text.as_slice()), (2, &b"a.example"[..]))
        }
        other => panic!("identity: {other:?}"),
    }
}

#[test]
fn linux_dialect_decodes_its_own_numbers() {
    let m = round_trip("linux-add-esp-v6-natt.hex");
    assert_eq!(
        m.ext(ExtKind::Sa2),
        Some(&Extension::Sa2 {
            mode: 2,
            sequence: 0,
            reqid: 7
        })
    );
    assert_eq!(m.ext(ExtKind::NatTType), Some(&Extension::NatTType(2)));
    assert_eq!(
        m.ext(ExtKind::NatTDport),
        Some(&Extension::NatTPort(ExtKind::NatTDport, 4501))
    );
    let dst = m.address(ExtKind::AddressDst).expect("dst");
    assert_eq!(dst.addr.ip, "2001:db8::2".parse::<IpAddr>().unwrap());
    // The same bytes read as illumos mean something else (type 20 is NATT_LOC
    // there) and fail: AF_INET6 is 26 on illumos, so the addresses are bad.
    let (_, bytes) = load("linux-add-esp-v6-natt.hex");
    assert!(Message::parse(&bytes, Dialect::Illumos).is_err());
}

#[test]
fn register_reply_and_getspi() {
    let m = round_trip("illumos-register-reply.hex");
    match m.ext(ExtKind::SupportedEncrypt) {
        Some(Extension::Supported(_, algs)) => {
            assert_eq!(algs.len(), 2);
            assert_eq!(
                (algs[1].id, algs[1].saltbits, algs[1].increment),
                (20, 32, 64)
            );
        }
        other => panic!("supported: {other:?}"),
    }
    let g = round_trip("illumos-getspi.hex");
    match g.ext(ExtKind::SpiRange) {
        Some(Extension::SpiRange(r)) => assert_eq!((r.min, r.max), (0x100, 0x1ff)),
        other => panic!("spirange: {other:?}"),
    }
}

#[test]
fn illumos_only_features_refuse_to_encode_for_linux() {
    let m = round_trip("illumos-tunnel-natt.hex");
    let err = m
        .emit(Dialect::Linux)
        .expect_err("Linux has no NATT_LOC/flags");
    let text = err.to_string();
    assert!(text.contains("Linux"), "{text}");
    let mut m = round_trip("illumos-get-reply-gcm.hex");
    let err = m
        .emit(Dialect::Linux)
        .expect_err("AES-GCM through Linux PF_KEY");
    assert!(err.to_string().contains("aes-gcm"), "{err}");
    if let Some(sa) = m.sa_mut() {
        sa.encrypt = 12;
    }
    let err = m.emit(Dialect::Linux).expect_err("X_OUTBOUND flag");
    assert!(err.to_string().contains("X_OUTBOUND"), "{err}");
}

#[test]
fn aead_algorithms_refuse_to_encode_for_linux_pfkey() {
    let m = Message::new(MsgType::Add, 3, 1, 1).with(sadb::pfkey::SaExt {
        spi: 1,
        state: 1,
        encrypt: 20,
        ..Default::default()
    });
    let err = m
        .emit(Dialect::Linux)
        .expect_err("Linux PF_KEY has no AES-GCM");
    assert_eq!(
        err.to_string(),
        "encryption algorithm aes-gcm is not supported by the Linux kernel's PF_KEY"
    );
    assert!(m.emit(Dialect::Illumos).is_ok());
}
