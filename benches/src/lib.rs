//! Shared measuring code for the criterion benches in `benches/` and the
//! `ipsec-bench` command: the same SAs, packets, loops and baselines, so
//! both report the same thing.

use std::net::{IpAddr, Ipv4Addr};

use sadb::pfkey::{Address, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::KeyMaterial;

pub mod alloc;
pub mod e2e_mode;
pub mod esp;
pub mod machine;
pub mod pfkey_mode;
pub mod sadb_mode;
pub mod stats;

/// The source address of every benchmark SA (the simulated host's own).
pub const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The destination address of the `i`-th benchmark SA (spread over a /8).
pub fn dst(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)))
}

/// The SPI of the `i`-th benchmark SA.
pub fn spi(i: u32) -> u32 {
    0x1000u32.wrapping_add(i)
}

/// An ESP ADD for SA number `i`: AES-CBC + HMAC-SHA1, outbound, like a
/// line of `ipseckey -f` (see [`add_line`]).
pub fn add_msg(i: u32) -> Message {
    Message::new(MsgType::Add, sadb::pfkey::satype::ESP, i, 1)
        .with(SaExt {
            spi: spi(i),
            state: 1,
            auth: 3,
            encrypt: 12,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(IpAddr::V4(SRC), 0, 0),
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
                material: KeyMaterial::new(AUTH_KEY.to_vec()),
            },
        ))
        .with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: 128,
                reserved: 0,
                material: KeyMaterial::new(ENCR_KEY.to_vec()),
            },
        ))
}

/// The DELETE of SA number `i` (by SPI and destination, as `ipseckey
/// delete esp spi ... dst ...` sends it).
pub fn delete_msg(i: u32) -> Message {
    Message::new(MsgType::Delete, sadb::pfkey::satype::ESP, i, 1)
        .with(SaExt {
            spi: spi(i),
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(dst(i), 0, 0),
        ))
}

/// The HMAC-SHA1 key of every benchmark SA.
const AUTH_KEY: [u8; 20] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
];
/// The AES-128 key of every benchmark SA.
const ENCR_KEY: [u8; 16] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SA number `i` as an `ipseckey` command: the same SA as [`add_msg`].
pub fn add_line(i: u32) -> String {
    format!(
        "add esp spi {:#x} src {} dst {} auth_alg sha1 authkey {} encr_alg aes encrkey {}\n",
        spi(i),
        SRC,
        dst(i),
        hex(&AUTH_KEY),
        hex(&ENCR_KEY)
    )
}
