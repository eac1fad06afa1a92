//! A guided walk through the simulated kernel: PF_KEY v2 bytes in, PF_KEY v2
//! bytes out, with a virtual clock. This is the project's main command until
//! the `ipseckey` front end exists.
//!
//!     cargo run -p sadb --example sadb-demo

use std::net::IpAddr;

use sadb::pfkey::{
    satype, Address, Dialect, ExtKind, Extension, Key, Lifetime, Message, MsgType, SaExt,
};
use sadb::{Audience, Config, Diagnostic, Jitter, KeyMaterial, Response, Sadb};

const T0: u64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

fn hex(s: &str) -> KeyMaterial {
    let bytes = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect();
    KeyMaterial::new(bytes)
}

/// An ESP ADD as ipseckey would send it (addresses as v4-mapped AF_INET6).
fn add(spi: u32, src: &str, dst: &str, seq: u32) -> Message {
    let mapped = |s: &str| match ip(s) {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    Message::new(MsgType::Add, satype::ESP, seq, std::process::id())
        .with(SaExt {
            spi,
            replay: 32,
            state: 1,
            auth: 5,
            encrypt: 12,
            ..SaExt::default()
        })
        .with(Extension::Lifetime(
            ExtKind::LifetimeHard,
            Lifetime {
                addtime: 3600,
                bytes: 10_000_000,
                ..Lifetime::default()
            },
        ))
        .with(Extension::Lifetime(
            ExtKind::LifetimeSoft,
            Lifetime {
                addtime: 3000,
                ..Lifetime::default()
            },
        ))
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(mapped(src), 0, 0),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(mapped(dst), 0, 0),
        ))
        .with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: 256,
                reserved: 0,
                material: hex("8f3a1c5e9b2d4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"),
            },
        ))
        .with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: 128,
                reserved: 0,
                material: hex("00112233445566778899aabbccddeeff"),
            },
        ))
}

fn show(title: &str, req: Option<&[u8]>, resp: &Response) {
    println!("== {title}");
    if let Some(bytes) = req {
        println!("   request: {} bytes", bytes.len());
    }
    for d in &resp.deliveries {
        let m = &d.msg;
        let to = match d.to {
            Audience::Sender => "sender",
            Audience::All => "all sockets",
            Audience::Registered(_) => "registered sockets",
        };
        print!(
            "   -> {:?} to {to}, satype {}, seq {}",
            m.msg_type, m.satype, m.seq
        );
        if m.errno != 0 {
            let diag = Diagnostic::from_code(m.reserved);
            print!(
                ", errno {} ({}), {}",
                m.errno,
                sadb::Errno::from_number(m.errno, Dialect::Illumos)
                    .map(|e| e.name())
                    .unwrap_or("?"),
                diag
            );
        }
        if let Some(sa) = m.sa() {
            print!(
                ", spi {:#x} state {} flags {:#x}",
                sa.spi, sa.state, sa.flags
            );
        }
        if let Some(cur) = m.lifetime(ExtKind::LifetimeCurrent) {
            print!(", bytes {}", cur.bytes);
        }
        for k in [
            ExtKind::LifetimeSoft,
            ExtKind::LifetimeHard,
            ExtKind::LifetimeIdle,
        ] {
            if m.msg_type == MsgType::Expire && m.has(k) {
                print!(", {k:?} fired");
            }
        }
        if m.has(ExtKind::KeyEncrypt) {
            print!(
                ", keys {:?}",
                m.key(ExtKind::KeyEncrypt).map(|k| &k.material)
            );
        }
        println!();
    }
}

fn main() {
    let mut cfg = Config {
        jitter: Jitter::Off,
        ..Config::default()
    };
    cfg.local_addrs.insert(ip("192.0.2.1"));
    let mut kernel = Sadb::new(cfg);
    println!("Simulated host 192.0.2.1, virtual clock at {T0}.\n");

    // Outbound SA, then the inbound one paired with it.
    let out = add(0x1001, "192.0.2.1", "192.0.2.2", 1)
        .emit(Dialect::Illumos)
        .unwrap_or_default();
    show(
        "add esp spi 0x1001 src 192.0.2.1 dst 192.0.2.2 (outbound)",
        Some(&out),
        &kernel.handle_bytes(&out, T0),
    );
    let inb = add(0x2002, "192.0.2.2", "192.0.2.1", 2).with(Extension::Pair { spi: 0x1001 });
    let inb = inb.emit(Dialect::Illumos).unwrap_or_default();
    show(
        "add esp spi 0x2002 src 192.0.2.2 dst 192.0.2.1 pair-spi 0x1001 (inbound)",
        Some(&inb),
        &kernel.handle_bytes(&inb, T0),
    );

    // The same SPI and destination again: EEXIST, as ipseckey reports it.
    show(
        "add esp spi 0x1001 ... again",
        None,
        &kernel.handle_bytes(&out, T0),
    );

    // A weak DES key is refused with diagnostic 47.
    let mut weak = add(0x3003, "192.0.2.1", "192.0.2.3", 3);
    weak.remove(ExtKind::KeyEncrypt);
    if let Some(sa) = weak.sa_mut() {
        sa.encrypt = 2;
    }
    let weak = weak.with(Extension::Key(
        ExtKind::KeyEncrypt,
        Key {
            bits: 64,
            reserved: 0,
            material: hex("0101010101010101"),
        },
    ));
    show(
        "add esp ... encr_alg des encrkey 0101010101010101",
        None,
        &kernel.handle(&weak, T0),
    );

    // GET shows the SA with its keys (redacted here).
    let get = Message::new(MsgType::Get, satype::ESP, 4, 1)
        .with(SaExt {
            spi: 0x1001,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(ip("192.0.2.2"), 0, 0),
        ));
    show(
        "get esp spi 0x1001 dst 192.0.2.2",
        None,
        &kernel.handle(&get, T0),
    );

    // Traffic: 6 MB through the outbound SA, then time passes.
    if let Some(id) = kernel.lookup(satype::ESP, 0x1001, ip("192.0.2.2")) {
        let _ = kernel.account(id, 6_000_000, T0 + 10);
    }
    for (label, t) in [
        ("50 minutes later", T0 + 3000),
        ("one hour later", T0 + 3600),
        ("one second after that", T0 + 3601),
    ] {
        let expires = kernel.age(t);
        println!(
            "== ager, {label}: {} EXPIRE message(s), {} SA(s) left",
            expires.len(),
            kernel.len()
        );
        for m in &expires {
            show(
                "   EXPIRE",
                None,
                &Response {
                    deliveries: vec![sadb::Delivery {
                        to: Audience::All,
                        msg: m.clone(),
                    }],
                    effect: None,
                },
            );
        }
    }

    let dump = Message::new(MsgType::Dump, satype::UNSPEC, 9, 1);
    show("dump", None, &kernel.handle(&dump, T0 + 3601));
}
