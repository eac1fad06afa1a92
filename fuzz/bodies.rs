//! The bodies of the cargo-fuzz targets, shared with `cargo test`, which
//! replays every input under `fuzz/regressions/TARGET/` through them
//! (`tests/fuzz_regressions.rs`). Each panics only on a real bug.
#![allow(dead_code)]

use sadb::pfkey::{satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::{Config, KeyMaterial, Sadb};

/// The PF_KEY decoder in both dialects: never panics, and whatever it
/// accepts re-encodes to bytes that decode to the same message.
pub fn pfkey_decode(data: &[u8]) {
    for d in [Dialect::Illumos, Dialect::Linux] {
        if let Ok(m) = Message::parse(data, d) {
            if let Ok(bytes) = m.emit(d) {
                let again = Message::parse(&bytes, d).expect("re-emitted message must decode");
                assert_eq!(again, m);
            }
        }
    }
}

/// The simulated kernel's request path: arbitrary bytes (split into
/// several messages at 0xff) never panic it, and every reply it builds
/// encodes.
pub fn sadb_handle(data: &[u8]) {
    let mut db = Sadb::new(Config::default());
    let mut now = 1_000;
    for chunk in data.split(|&b| b == 0xff) {
        let r = db.handle_bytes(chunk, now);
        for d in &r.deliveries {
            d.msg
                .emit(Dialect::Illumos)
                .expect("the kernel's own replies encode");
        }
        now += 10;
        let _ = db.age(now);
    }
}

/// The ipseckey command language: any text never panics the line reader,
/// the parser or the message builder.
pub fn command_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut j = ipseckey::lexer::Joiner::new();
    for line in text.lines() {
        if let Ok(Some(c)) = j.push(line) {
            if let Ok(cmd) = ipseckey::parse::parse_command(
                &c.tokens,
                ipseckey::parse::ParseOpts { numeric: true },
            ) {
                let mut seq = 0;
                for (_, m) in ipseckey::request::build(&cmd, 1, &mut || {
                    seq += 1;
                    seq
                }) {
                    let _ = m.emit(Dialect::Illumos);
                }
            }
        }
    }
}

fn add(db: &mut Sadb, ty: u8, spi: u32, auth: u8, alen: usize, encr: u8, elen: usize) {
    let ip = |s: &str| s.parse().expect("literal address");
    let mut m = Message::new(MsgType::Add, ty, 1, 1)
        .with(SaExt {
            spi,
            state: 1,
            auth,
            encrypt: encr,
            replay: 32,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(ip("10.0.0.1"), 0, 0),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(ip("10.0.0.2"), 0, 0),
        ));
    if alen > 0 {
        m = m.with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: (alen * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(vec![0x5a; alen]),
            },
        ));
    }
    if elen > 0 {
        m = m.with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: (elen * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(vec![0x3c; elen]),
            },
        ));
    }
    db.handle(&m, 1_700_000_000);
}

fn esp_setup() -> Sadb {
    let mut cfg = Config::default();
    cfg.local_addrs
        .insert("10.0.0.2".parse().expect("literal address"));
    let mut db = Sadb::new(cfg);
    add(&mut db, satype::ESP, 1, 3, 20, 12, 16); // AES-CBC + HMAC-SHA1
    add(&mut db, satype::ESP, 2, 0, 0, 20, 20); // AES-GCM-16
    add(&mut db, satype::ESP, 3, 5, 32, 11, 0); // NULL + HMAC-SHA256
    add(&mut db, satype::AH, 4, 2, 16, 0, 0); // AH HMAC-MD5
    db
}

/// ESP/AH inbound processing: any packet never panics the engine, against
/// SAs of several algorithms and modes.
pub fn esp_inbound(data: &[u8]) {
    let mut db = esp_setup();
    let mut engine = esp_ah::Engine::with_seed(1);
    engine.sync(&db, esp_ah::SaOptions::default());
    let mut buf = vec![0u8; data.len() + 256];
    if let Some(mut p) = esp_ah::PacketBuf::load(&mut buf, data) {
        let mut ex = Vec::new();
        let _ = engine.inbound(&mut db, &mut p, 1_700_000_001, &mut ex);
    }
}
