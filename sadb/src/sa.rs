//! One security association as the kernel stores it, and the PF_KEY
//! description of it that GET, DUMP, DELETE and EXPIRE carry.

use std::net::IpAddr;

use crate::alg::{AuthAlg, EncrAlg};
use crate::key::KeyMaterial;
use crate::pfkey::{
    flags, Address, ExtKind, Extension, Identity, Key, Lifetime, Message, MsgType, SaExt, SaState,
    Sensitivity, SockAddr,
};
use crate::replay::ReplayWindow;

/// Seconds since the Unix epoch, the unit of every PF_KEY time.
pub type Now = u64;

/// An address with its port, as an SA stores it (IPv4-mapped already
/// turned into IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// A tunnel-mode inner selector: an address or prefix, and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerSelector {
    pub ip: IpAddr,
    pub prefix_len: u8,
    pub port: u16,
}

/// Hard or soft limits (`sadb_lifetime` HARD/SOFT); 0 means no limit.
pub type Limits = Lifetime;

/// The stored SA.
#[derive(Debug, Clone)]
pub struct Sa {
    /// Unique for every SA this SADB has stored: lets a data-path cache
    /// keyed by [`crate::SaId`] (a reusable slot) notice a replaced SA.
    pub serial: u64,
    pub satype: u8,
    pub spi: u32,
    pub state: SaState,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// Upper-layer protocol of SRC/DST (4 or 41 in tunnel mode).
    pub proto: u8,
    pub inner_src: Option<InnerSelector>,
    pub inner_dst: Option<InnerSelector>,
    /// Upper-layer protocol of the inner header (tunnel mode).
    pub inner_proto: u8,
    pub natt_loc: Option<Endpoint>,
    pub natt_rem: Option<Endpoint>,
    /// Semantic flags (illumos bits), including the kernel's own.
    pub flags: u64,
    pub auth_alg: u8,
    pub encr_alg: u8,
    pub auth_key: Option<KeyMaterial>,
    pub auth_key_bits: u16,
    /// Encryption key followed by the algorithm's salt.
    pub encr_key: Option<KeyMaterial>,
    /// Bits of key + salt.
    pub encr_key_bits: u16,
    pub replay_window: u8,
    /// Inbound anti-replay state (window of `replay_window` packets).
    pub replay: ReplayWindow,
    /// Outbound sequence counter: the last number sent.
    pub seq_out: u64,
    pub hard: Limits,
    pub soft: Limits,
    /// idle limits: only `addtime` and `usetime` are used.
    pub idle: Limits,
    /// The idle limits were not given and come from the manual's default.
    pub idle_defaulted: bool,
    pub add_time: Now,
    /// Time of first use, 0 if never used.
    pub use_time: Now,
    pub last_use: Now,
    pub bytes: u64,
    /// Absolute expiry times, 0 = none.
    pub hard_expire: Now,
    pub soft_expire: Now,
    /// When a DEAD SA is removed by the ager.
    pub reap_at: Now,
    /// `last_use` when the last idle EXPIRE was sent (one per idle period).
    pub idle_notified: Option<Now>,
    pub ident_src: Option<Identity>,
    pub ident_dst: Option<Identity>,
    pub sens: Option<Sensitivity>,
    pub outer_sens: Option<Sensitivity>,
    pub kmc: (u32, u64),
    /// SPI of the paired SA, if paired.
    pub pair_spi: Option<u32>,
    /// Which hash tables hold the SA (both = cloned).
    pub in_inbound: bool,
    pub in_outbound: bool,
}

impl Sa {
    /// Tunnel mode per the manual: inner addresses present.
    pub fn is_tunnel(&self) -> bool {
        self.inner_src.is_some() || self.inner_dst.is_some()
    }

    pub fn auth(&self) -> Option<AuthAlg> {
        AuthAlg::from_id(self.auth_alg, crate::pfkey::Dialect::Illumos)
    }

    pub fn encr(&self) -> Option<EncrAlg> {
        EncrAlg::from_id(self.encr_alg, crate::pfkey::Dialect::Illumos)
    }

    /// The current replay counter as GET reports it.
    pub fn replay_counter(&self) -> u64 {
        if self.in_inbound && !self.in_outbound {
            self.replay.highest()
        } else {
            self.seq_out.max(self.replay.highest())
        }
    }

    /// The SA extension describing this SA.
    pub fn sa_ext(&self) -> SaExt {
        SaExt {
            spi: self.spi,
            replay: self.replay_window,
            state: self.state as u8,
            auth: self.auth_alg,
            encrypt: self.encr_alg,
            flags: self.flags,
        }
    }

    fn current(&self) -> Lifetime {
        Lifetime {
            allocations: 0,
            bytes: self.bytes,
            addtime: self.add_time,
            usetime: self.use_time,
        }
    }

    fn addresses(&self, m: &mut Message) {
        let tunnel = self.is_tunnel();
        let port = |p: u16| if tunnel { 0 } else { p };
        m.exts.push(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(self.src.ip, port(self.src.port), self.proto),
        ));
        m.exts.push(Extension::Address(
            ExtKind::AddressDst,
            Address::new(self.dst.ip, port(self.dst.port), self.proto),
        ));
    }

    fn inner(&self, m: &mut Message) {
        for (kind, sel) in [
            (ExtKind::AddressInnerSrc, self.inner_src),
            (ExtKind::AddressInnerDst, self.inner_dst),
        ] {
            if let Some(s) = sel {
                m.exts.push(Extension::Address(
                    kind,
                    Address {
                        proto: self.inner_proto,
                        prefix_len: s.prefix_len,
                        addr: SockAddr::new(s.ip, s.port),
                    },
                ));
            }
        }
    }

    /// The description GET and DUMP return (ipseckey-behaviour.md 3.1);
    /// keys only when `with_keys`.
    pub fn describe(&self, msg_type: MsgType, seq: u32, pid: u32, with_keys: bool) -> Message {
        let mut m = Message::new(msg_type, self.satype, seq, pid);
        m.exts.push(Extension::Sa(self.sa_ext()));
        m.exts.push(Extension::Lifetime(
            ExtKind::LifetimeCurrent,
            self.current(),
        ));
        if !self.hard.is_zero() {
            m.exts
                .push(Extension::Lifetime(ExtKind::LifetimeHard, self.hard));
        }
        if !self.soft.is_zero() {
            m.exts
                .push(Extension::Lifetime(ExtKind::LifetimeSoft, self.soft));
        }
        if self.idle.addtime != 0 || self.idle.usetime != 0 {
            m.exts.push(Extension::Lifetime(
                ExtKind::LifetimeIdle,
                Lifetime {
                    addtime: self.idle.addtime,
                    usetime: self.idle.usetime,
                    ..Lifetime::default()
                },
            ));
        }
        self.addresses(&mut m);
        if self.flags & flags::X_NATT_LOC != 0 {
            if let Some(e) = self.natt_loc {
                m.exts.push(Extension::Address(
                    ExtKind::AddressNattLoc,
                    Address::new(e.ip, e.port, 0),
                ));
            }
        }
        if self.flags & flags::X_NATT_REM != 0 {
            if let Some(e) = self.natt_rem {
                m.exts.push(Extension::Address(
                    ExtKind::AddressNattRem,
                    Address::new(e.ip, e.port, 0),
                ));
            }
        }
        self.inner(&mut m);
        if self.kmc != (0, 0) {
            m.exts.push(Extension::KmCookie {
                proto: self.kmc.0,
                cookie: self.kmc.1,
            });
        }
        if with_keys {
            if let Some(k) = &self.auth_key {
                m.exts.push(Extension::Key(
                    ExtKind::KeyAuth,
                    Key {
                        bits: self.auth_key_bits,
                        reserved: 0,
                        material: k.clone(),
                    },
                ));
            }
            if let Some(k) = &self.encr_key {
                let salt = self.encr().map(|a| a.salt_bits()).unwrap_or(0);
                m.exts.push(Extension::Key(
                    ExtKind::KeyEncrypt,
                    Key {
                        bits: self.encr_key_bits.saturating_sub(salt),
                        reserved: salt,
                        material: k.clone(),
                    },
                ));
            }
        }
        if let Some(i) = &self.ident_src {
            m.exts
                .push(Extension::Identity(ExtKind::IdentitySrc, i.clone()));
        }
        if let Some(i) = &self.ident_dst {
            m.exts
                .push(Extension::Identity(ExtKind::IdentityDst, i.clone()));
        }
        if let Some(s) = &self.sens {
            m.exts
                .push(Extension::Sensitivity(ExtKind::Sensitivity, s.clone()));
        }
        if let Some(s) = &self.outer_sens {
            m.exts
                .push(Extension::Sensitivity(ExtKind::OuterSensitivity, s.clone()));
        }
        if let Some(p) = self.pair_spi {
            m.exts.push(Extension::Pair { spi: p });
        }
        let ctr = self.replay_counter();
        if ctr != 0 {
            m.exts.push(Extension::ReplayValue {
                r32: ctr as u32,
                r64: 0,
            });
        }
        m
    }

    /// The EXPIRE message for this SA: `which` is the limit that fired
    /// (HARD, SOFT or IDLE) (ipseckey-behaviour.md 5.6).
    pub fn expire_msg(&self, which: ExtKind) -> Message {
        let mut m = Message::new(MsgType::Expire, self.satype, 0, 0);
        m.exts.push(Extension::Sa(self.sa_ext()));
        m.exts.push(Extension::Lifetime(
            ExtKind::LifetimeCurrent,
            self.current(),
        ));
        let limits = match which {
            ExtKind::LifetimeHard => self.hard,
            ExtKind::LifetimeSoft => self.soft,
            _ => Lifetime {
                addtime: self.idle.addtime,
                usetime: self.idle.usetime,
                ..Lifetime::default()
            },
        };
        m.exts.push(Extension::Lifetime(which, limits));
        self.addresses(&mut m);
        self.inner(&mut m);
        m
    }
}
