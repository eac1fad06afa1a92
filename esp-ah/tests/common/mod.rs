//! Shared test set-up: SADBs filled through PF_KEY messages, as ipseckey
//! would, and clear-text packets built with etherparse.
#![allow(dead_code)]

use std::net::IpAddr;

use esp_ah::{Engine, PacketBuf, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt,
};
use sadb::{Config, Jitter, KeyMaterial, SaId, Sadb};

pub const NOW: u64 = 1_700_000_000;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// A UDP datagram in an IPv4 or IPv6 packet.
pub fn udp_packet(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let b = match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
        }
        _ => panic!("mixed families"),
    }
    .udp(5000, 7);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build packet");
    out
}

/// Key material of `bytes` bytes that is not weak for any algorithm.
pub fn key(bytes: usize, seed: u8) -> Vec<u8> {
    (0..bytes)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed) | 0x10)
        .collect()
}

#[derive(Debug, Clone)]
pub struct SaSpec {
    pub satype: u8,
    pub spi: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub auth: AuthAlg,
    pub encr: EncrAlg,
    pub auth_key: Vec<u8>,
    pub encr_key: Vec<u8>,
    /// Inner source and destination prefixes: tunnel mode.
    pub tunnel: Option<((IpAddr, u8), (IpAddr, u8))>,
    pub natt: bool,
    pub replay: u8,
}

impl SaSpec {
    pub fn esp(spi: u32, src: &str, dst: &str, encr: EncrAlg, auth: AuthAlg) -> SaSpec {
        let kbits = encr.key_bits();
        let ebytes = (kbits.min as usize + encr.salt_bits() as usize) / 8;
        let abytes = auth.key_bits().min as usize / 8;
        SaSpec {
            satype: satype::ESP,
            spi,
            src: ip(src),
            dst: ip(dst),
            auth,
            encr,
            auth_key: key(abytes, 1),
            encr_key: key(ebytes, 2),
            tunnel: None,
            natt: false,
            replay: 32,
        }
    }

    pub fn ah(spi: u32, src: &str, dst: &str, auth: AuthAlg) -> SaSpec {
        let mut s = SaSpec::esp(spi, src, dst, EncrAlg::None, auth);
        s.satype = satype::AH;
        s.encr_key.clear();
        s
    }

    pub fn add_msg(&self) -> Message {
        let mut fl = 0;
        let outer_proto = match self.tunnel {
            Some(((i, _), _)) => {
                fl |= flags::X_TUNNEL;
                if i.is_ipv4() {
                    4
                } else {
                    41
                }
            }
            None => 0,
        };
        if self.natt {
            fl |= flags::X_NATT_LOC | flags::X_NATT_REM;
        }
        let mut m = Message::new(MsgType::Add, self.satype, 1, 1)
            .with(SaExt {
                spi: self.spi,
                replay: self.replay,
                state: 1,
                auth: self.auth.id(Dialect::Illumos).unwrap_or(0),
                encrypt: if self.satype == satype::ESP {
                    self.encr.id(Dialect::Illumos).unwrap_or(0)
                } else {
                    0
                },
                flags: fl,
            })
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(self.src, 0, outer_proto),
            ))
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new(self.dst, 0, outer_proto),
            ));
        if let Some(((is, ip_), (id, dp))) = self.tunnel {
            m = m
                .with(Extension::Address(
                    ExtKind::AddressInnerSrc,
                    Address {
                        proto: 0,
                        prefix_len: ip_,
                        addr: sadb::pfkey::SockAddr::new(is, 0),
                    },
                ))
                .with(Extension::Address(
                    ExtKind::AddressInnerDst,
                    Address {
                        proto: 0,
                        prefix_len: dp,
                        addr: sadb::pfkey::SockAddr::new(id, 0),
                    },
                ));
        }
        if self.natt {
            m = m
                .with(Extension::Address(
                    ExtKind::AddressNattLoc,
                    Address::new(ip("0.0.0.0"), 4500, 0),
                ))
                .with(Extension::Address(
                    ExtKind::AddressNattRem,
                    Address::new(ip("192.0.2.99"), 4500, 0),
                ));
        }
        if self.auth != AuthAlg::None {
            m = m.with(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: (self.auth_key.len() * 8) as u16,
                    reserved: 0,
                    material: KeyMaterial::new(self.auth_key.clone()),
                },
            ));
        }
        if !self.encr_key.is_empty() {
            m = m.with(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: (self.encr_key.len() * 8) as u16,
                    reserved: 0,
                    material: KeyMaterial::new(self.encr_key.clone()),
                },
            ));
        }
        m
    }
}

/// One simulated host: an SADB and an engine.
pub struct Host {
    pub db: Sadb,
    pub engine: Engine,
}

impl Host {
    pub fn new(local: &str) -> Host {
        let mut cfg = Config {
            jitter: Jitter::Off,
            ..Config::default()
        };
        cfg.local_addrs.insert(ip(local));
        Host {
            db: Sadb::new(cfg),
            engine: Engine::with_seed(7),
        }
    }

    /// Adds the SA through PF_KEY bytes and installs its transform.
    pub fn add(&mut self, spec: &SaSpec, opts: SaOptions) -> SaId {
        let bytes = spec.add_msg().emit(Dialect::Illumos).expect("emit ADD");
        let r = self.db.handle_bytes(&bytes, NOW);
        let reply = r.reply().expect("reply");
        assert_eq!(
            (reply.errno, reply.reserved),
            (0, 0),
            "ADD of {spec:?} refused"
        );
        let id = self
            .db
            .lookup(spec.satype, spec.spi, spec.dst)
            .expect("added SA");
        self.engine
            .install(&self.db, id, opts)
            .expect("install transform");
        id
    }

    pub fn send(&mut self, id: SaId, packet: &[u8]) -> Result<Vec<u8>, Verdict> {
        let mut buf = vec![0u8; packet.len() + 512];
        let mut p = PacketBuf::load(&mut buf, packet).expect("room");
        let mut ex = Vec::new();
        match self.engine.outbound(&mut self.db, id, &mut p, NOW, &mut ex) {
            Verdict::Send => Ok(p.data().to_vec()),
            v => Err(v),
        }
    }

    pub fn receive(&mut self, packet: &[u8]) -> Result<Vec<u8>, Verdict> {
        let mut buf = vec![0u8; packet.len() + 512];
        let mut p = PacketBuf::load(&mut buf, packet).expect("room");
        let mut ex = Vec::new();
        match self.engine.inbound(&mut self.db, &mut p, NOW, &mut ex) {
            Verdict::Deliver => Ok(p.data().to_vec()),
            v => Err(v),
        }
    }
}
