//! Shared set-up for the criterion benches in `benches/`.

use std::net::{IpAddr, Ipv4Addr};

use sadb::pfkey::{Address, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::KeyMaterial;

/// The destination address of the `i`-th benchmark SA (spread over a /8).
pub fn dst(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)))
}

/// An ESP ADD for SA number `i`: AES-CBC + HMAC-SHA1, outbound, like a
/// line of `ipseckey -f`.
pub fn add_msg(i: u32) -> Message {
    Message::new(MsgType::Add, sadb::pfkey::satype::ESP, i, 1)
        .with(SaExt {
            spi: 0x1000 + i,
            state: 1,
            auth: 3,
            encrypt: 12,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(
                "192.0.2.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                0,
                0,
            ),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(dst(i), 0, 0),
        ))
        .with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: 160,
                reserved: 0,
                material: KeyMaterial::new((1..=20).collect()),
            },
        ))
        .with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: 128,
                reserved: 0,
                material: KeyMaterial::new((11..=26).collect()),
            },
        ))
}
