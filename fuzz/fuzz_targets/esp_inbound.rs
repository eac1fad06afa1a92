//! ESP/AH inbound processing: any packet never panics the engine, against
//! SAs of several algorithms and modes.
#![no_main]



use libfuzzer_sys::fuzz_target;
use sadb::pfkey::{satype, Address, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::{Config, KeyMaterial, Sadb};

fn add(db: &mut Sadb, ty: u8, spi: u32, auth: u8, alen: usize, encr: u8, elen: usize) {
    let mut m = Message::new(MsgType::Add, ty, 1, 1)
        .with(SaExt { spi, state: 1, auth, encrypt: encr, replay: 32, ..SaExt::default() })
        .with(Extension::Address(ExtKind::AddressSrc, Address::new("10.0.0.1".parse().unwrap(), 0, 0)))
        .with(Extension::Address(ExtKind::AddressDst, Address::new("10.0.0.2".parse().unwrap(), 0, 0)));
    if alen > 0 {
        m = m.with(Extension::Key(ExtKind::KeyAuth, Key { bits: (alen * 8) as u16, reserved: 0, material: KeyMaterial::new(vec![0x5a; alen]) }));
    }
    if elen > 0 {
        m = m.with(Extension::Key(ExtKind::KeyEncrypt, Key { bits: (elen * 8) as u16, reserved: 0, material: KeyMaterial::new(vec![0x3c; elen]) }));
    }
    db.handle(&m, 1_700_000_000);
}

fn setup() -> Sadb {
    let mut cfg = Config::default();
    cfg.local_addrs.insert("10.0.0.2".parse().unwrap());
    let mut db = Sadb::new(cfg);
    add(&mut db, satype::ESP, 1, 3, 20, 12, 16); // AES-CBC + HMAC-SHA1
    add(&mut db, satype::ESP, 2, 0, 0, 20, 20); // AES-GCM-16
    add(&mut db, satype::ESP, 3, 5, 32, 11, 0); // NULL + HMAC-SHA256
    add(&mut db, satype::AH, 4, 2, 16, 0, 0); // AH HMAC-MD5
    db
}



fuzz_target!(|data: &[u8]| {

    let mut db = setup();
    let mut engine = esp_ah::Engine::with_seed(1);
    engine.sync(&db, esp_ah::SaOptions::default());
    let mut buf = vec![0u8; data.len() + 256];
    if let Some(mut p) = esp_ah::PacketBuf::load(&mut buf, data) {
        let mut ex = Vec::new();
        let _ = engine.inbound(&mut db, &mut p, 1_700_000_001, &mut ex);
    }
});
