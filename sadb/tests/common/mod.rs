//! Shared harness for the SADB behaviour tests (ipseckey-behaviour.md 5).
//!
//! Every request is built the way illumos `ipseckey` builds it (IPv4
//! addresses as IPv4-mapped AF_INET6 sockaddrs, state MATURE, an explicit
//! unspecified `::` source when no `src` was given), emitted as illumos
//! PF_KEY bytes and fed to `Sadb::handle_bytes`. Every message the kernel
//! delivers is emitted and parsed again, so the tests see exactly what a
//! PF_KEY socket would read. Time is a plain `u64` that the tests advance.

#![allow(dead_code, unused_imports)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};

pub use sadb::diag::BAD_LABEL;
pub use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Identity, Key, Lifetime, Message, MsgType,
    MsgView, Proposal, SaExt, SaState, Sensitivity, SockAddr, SpiRange,
};
pub use sadb::{
    Audience, Config, Diagnostic, Errno, Jitter, KeyMaterial, SaId, Sadb, SocketEffect,
};

/// The virtual clock's start (seconds since the epoch).
pub const T0: u64 = 1_700_000_000;
/// The pid ipseckey puts in every request.
pub const PID: u32 = 4242;
/// This host.
pub const ME: &str = "10.0.0.1";
/// A peer that is not this host.
pub const PEER: &str = "10.0.0.2";

// Algorithm numbers (illumos, ipseckey-behaviour.md 1.8).
pub const AALG_NONE: u8 = 0;
pub const AALG_MD5: u8 = 2;
pub const AALG_SHA1: u8 = 3;
pub const AALG_SHA256: u8 = 5;
pub const EALG_NONE: u8 = 0;
pub const EALG_DES: u8 = 2;
pub const EALG_3DES: u8 = 3;
pub const EALG_BLOWFISH: u8 = 7;
pub const EALG_NULL: u8 = 11;
pub const EALG_AES: u8 = 12;
pub const EALG_AES_CCM8: u8 = 14;
pub const EALG_AES_GCM16: u8 = 20;

pub const MATURE: u8 = SaState::Mature as u8;

pub const AES128: &str = "00112233445566778899aabbccddeeff";
pub const SHA1_KEY: &str = "0123456789abcdef0123456789abcdef01234567";
pub const MD5_KEY: &str = "8f3a1c5e9b2d4f60718293a4b5c6d7e8";

// ---------------------------------------------------------------------------
// Values

/// An address as the tests write it.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("bad address {s}: {e}"))
}

/// The address as ipseckey puts it on the wire: IPv4 as IPv4-mapped IPv6.
pub fn wire_ip(s: &str) -> IpAddr {
    match ip(s) {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// An address extension for `s` (no port, no protocol).
pub fn addr(kind: ExtKind, s: &str) -> Extension {
    Extension::Address(kind, Address::new(wire_ip(s), 0, 0))
}

/// An address extension with a port and an upper-layer protocol.
pub fn addr_pp(kind: ExtKind, s: &str, port: u16, proto: u8) -> Extension {
    Extension::Address(kind, Address::new(wire_ip(s), port, proto))
}

/// An inner (tunnel-mode) address with a prefix, in ipseckey's form: IPv4
/// prefixes are sent offset by 96 with the mapped address.
pub fn inner(kind: ExtKind, s: &str, prefix: u8) -> Extension {
    let wire_prefix = if ip(s).is_ipv4() { prefix + 96 } else { prefix };
    Extension::Address(
        kind,
        Address {
            proto: 0,
            prefix_len: wire_prefix,
            addr: SockAddr::new(wire_ip(s), 0),
        },
    )
}

/// The source ipseckey sends when the user gave none: AF_INET6 `::`.
pub fn unspec_src() -> Extension {
    Extension::Address(
        ExtKind::AddressSrc,
        Address::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, 0),
    )
}

pub fn hex(s: &str) -> KeyMaterial {
    KeyMaterial::new(hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s}: {e}")))
}

pub fn key(kind: ExtKind, bits: u16, hex_str: &str) -> Extension {
    Extension::Key(
        kind,
        Key {
            bits,
            reserved: 0,
            material: hex(hex_str),
        },
    )
}

pub fn lifetime(
    kind: ExtKind,
    allocations: u32,
    bytes: u64,
    addtime: u64,
    usetime: u64,
) -> Extension {
    Extension::Lifetime(
        kind,
        Lifetime {
            allocations,
            bytes,
            addtime,
            usetime,
        },
    )
}

pub fn hard_add(secs: u64) -> Extension {
    lifetime(ExtKind::LifetimeHard, 0, 0, secs, 0)
}

pub fn soft_add(secs: u64) -> Extension {
    lifetime(ExtKind::LifetimeSoft, 0, 0, secs, 0)
}

pub fn errno(e: Errno) -> u8 {
    e.number(Dialect::Illumos)
}

// ---------------------------------------------------------------------------
// Requests, as ipseckey builds them (ipseckey-behaviour.md 2.2)

fn with_src(m: Message, src: Option<&str>) -> Message {
    match src {
        Some(s) => m.with(addr(ExtKind::AddressSrc, s)),
        None => m.with(unspec_src()),
    }
}

/// `add esp spi SPI [src SRC] dst DST auth_alg sha1 authkey .. encr_alg aes encrkey ..`
pub fn esp_add(spi: u32, src: Option<&str>, dst: &str) -> Message {
    let m = Message::new(MsgType::Add, satype::ESP, 0, 0)
        .with(SaExt {
            spi,
            state: MATURE,
            auth: AALG_SHA1,
            encrypt: EALG_AES,
            ..SaExt::default()
        })
        .with(key(ExtKind::KeyEncrypt, 128, AES128))
        .with(key(ExtKind::KeyAuth, 160, SHA1_KEY))
        .with(addr(ExtKind::AddressDst, dst));
    with_src(m, src)
}

/// `add ah spi SPI [src SRC] dst DST auth_alg md5 authkey ..`
pub fn ah_add(spi: u32, src: Option<&str>, dst: &str) -> Message {
    let m = Message::new(MsgType::Add, satype::AH, 0, 0)
        .with(SaExt {
            spi,
            state: MATURE,
            auth: AALG_MD5,
            ..SaExt::default()
        })
        .with(key(ExtKind::KeyAuth, 128, MD5_KEY))
        .with(addr(ExtKind::AddressDst, dst));
    with_src(m, src)
}

/// `update|update-pair TYPE spi SPI [src SRC] dst DST` (no lifetimes yet).
pub fn update(t: MsgType, sa_type: u8, spi: u32, src: Option<&str>, dst: &str) -> Message {
    let m = Message::new(t, sa_type, 0, 0)
        .with(SaExt {
            spi,
            state: MATURE,
            ..SaExt::default()
        })
        .with(addr(ExtKind::AddressDst, dst));
    with_src(m, src)
}

/// `get|delete|delete-pair TYPE spi SPI dst DST`: SA (spi only), DST.
pub fn by_spi(t: MsgType, sa_type: u8, spi: u32, dst: &str) -> Message {
    Message::new(t, sa_type, 0, 0)
        .with(SaExt {
            spi,
            ..SaExt::default()
        })
        .with(addr(ExtKind::AddressDst, dst))
}

pub fn getspi(sa_type: u8, src: &str, dst: &str, min: u32, max: u32) -> Message {
    Message::new(MsgType::GetSpi, sa_type, 0, 0)
        .with(Extension::SpiRange(SpiRange { min, max }))
        .with(addr(ExtKind::AddressSrc, src))
        .with(addr(ExtKind::AddressDst, dst))
}

pub fn base(t: MsgType, sa_type: u8) -> Message {
    Message::new(t, sa_type, 0, 0)
}

/// Small edits of a request.
pub trait Edit: Sized {
    /// Drops every extension of `kind`.
    fn without(self, kind: ExtKind) -> Message;
    /// Replaces the extension of the same kind as `ext` (or adds it).
    fn set(self, ext: Extension) -> Message;
    /// Edits the SA extension.
    fn sa_edit(self, f: impl FnOnce(&mut SaExt)) -> Message;
}

impl Edit for Message {
    fn without(mut self, kind: ExtKind) -> Message {
        self.remove(kind);
        self
    }

    fn set(mut self, ext: Extension) -> Message {
        let kind = ext.kind().expect("a known extension");
        match self.exts.iter().position(|e| e.kind() == Some(kind)) {
            Some(i) => self.exts[i] = ext,
            None => self.exts.push(ext),
        }
        self
    }

    fn sa_edit(mut self, f: impl FnOnce(&mut SaExt)) -> Message {
        f(self.sa_mut().expect("request has an SA extension"));
        self
    }
}

// ---------------------------------------------------------------------------
// Bytes

pub fn bytes(m: &Message) -> Vec<u8> {
    m.emit(Dialect::Illumos)
        .unwrap_or_else(|e| panic!("cannot emit {m:?}: {e}"))
}

/// Bytes out: what a PF_KEY socket reads for a message the kernel sent.
pub fn decode(m: &Message) -> Message {
    let b = bytes(m);
    Message::parse(&b, Dialect::Illumos)
        .unwrap_or_else(|e| panic!("kernel sent undecodable bytes ({e}): {m:?}"))
}

/// Offset of the first extension of `kind` in `b`.
pub fn ext_offset(b: &[u8], kind: ExtKind) -> usize {
    let n = kind.number(Dialect::Illumos).expect("illumos extension");
    MsgView::new_checked(b)
        .expect("well-framed")
        .extensions()
        .map(|r| r.expect("well-formed extension"))
        .find(|r| r.wire_type == n)
        .unwrap_or_else(|| panic!("no {kind:?} extension"))
        .offset
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}

/// Who sees an error reply (pfkey-v2-wire.md 1.6, 1.7).
pub fn error_audience(t: MsgType) -> Audience {
    match t {
        MsgType::Add
        | MsgType::Update
        | MsgType::UpdatePair
        | MsgType::Delete
        | MsgType::DelPair
        | MsgType::GetSpi
        | MsgType::Flush
        | MsgType::Expire => Audience::All,
        _ => Audience::Sender,
    }
}

// ---------------------------------------------------------------------------
// The simulated kernel

/// The decoded answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request's seq (the harness numbers requests like ipseckey).
    pub seq: u32,
    pub deliveries: Vec<(Audience, Message)>,
    pub effect: Option<SocketEffect>,
}

impl Reply {
    /// The single message delivered.
    pub fn only(&self) -> &Message {
        assert_eq!(
            self.deliveries.len(),
            1,
            "expected one delivery, got {:#?}",
            self.deliveries
        );
        &self.deliveries[0].1
    }

    pub fn audience(&self) -> Audience {
        assert_eq!(
            self.deliveries.len(),
            1,
            "expected one delivery, got {:#?}",
            self.deliveries
        );
        self.deliveries[0].0
    }
}

pub struct Kernel {
    pub db: Sadb,
    seq: u32,
}

/// A host whose address is 10.0.0.1, no jitter.
pub fn kernel() -> Kernel {
    kernel_with(|_| {})
}

pub fn kernel_with(f: impl FnOnce(&mut Config)) -> Kernel {
    let mut cfg = Config {
        jitter: Jitter::Off,
        ..Config::default()
    };
    cfg.local_addrs = HashSet::from([ip(ME)]);
    f(&mut cfg);
    Kernel {
        db: Sadb::new(cfg),
        seq: 0,
    }
}

impl Kernel {
    /// Sends `req` with the next seq and ipseckey's pid.
    pub fn send(&mut self, req: &Message, now: u64) -> Reply {
        self.seq += 1;
        let mut req = req.clone();
        req.seq = self.seq;
        req.pid = PID;
        self.send_bytes(&bytes(&req), now)
    }

    /// Sends raw bytes (seq and pid as they are in the bytes).
    pub fn send_bytes(&mut self, b: &[u8], now: u64) -> Reply {
        let seq = MsgView::<&[u8]>::peek_header(b).map(|h| h.seq).unwrap_or(0);
        let resp = self.db.handle_bytes(b, now);
        Reply {
            seq,
            deliveries: resp
                .deliveries
                .iter()
                .map(|d| (d.to, decode(&d.msg)))
                .collect(),
            effect: resp.effect,
        }
    }

    /// Sends `req` and checks it succeeded with one reply; returns it.
    pub fn ok(&mut self, req: &Message, now: u64) -> Message {
        let r = self.send(req, now);
        let m = r.only().clone();
        assert_eq!(
            (m.errno, m.reserved),
            (0, 0),
            "{:?} refused: {m:?}",
            req.msg_type
        );
        assert_eq!(
            (m.msg_type, m.seq, m.pid),
            (req.msg_type, r.seq, PID),
            "reply does not match the request"
        );
        m
    }

    /// Sends `req`, checks the refusal (errno, diagnostic, base-only reply
    /// to the right audience with the request's type, satype, seq and pid)
    /// and that the SADB is exactly as before.
    pub fn refused(&mut self, req: &Message, now: u64, e: Errno, d: Diagnostic) -> Message {
        let before = self.snapshot(now);
        let r = self.send(req, now);
        check_refusal(&r, req.msg_type, req.satype, PID, e, d);
        assert_eq!(
            self.snapshot(now),
            before,
            "a refused {:?} changed the SADB",
            req.msg_type
        );
        r.only().clone()
    }

    /// The same for raw bytes; `t` is the message type the reply must carry.
    pub fn refused_bytes(
        &mut self,
        b: &[u8],
        t: MsgType,
        now: u64,
        e: Errno,
        d: Diagnostic,
    ) -> Message {
        let before = self.snapshot(now);
        let r = self.send_bytes(b, now);
        let hdr = MsgView::<&[u8]>::peek_header(b).expect("a base header");
        check_refusal(&r, t, hdr.satype, hdr.pid, e, d);
        assert_eq!(self.snapshot(now), before, "refused bytes changed the SADB");
        r.only().clone()
    }

    /// GET `spi` `dst`: the reply, which must be a success.
    pub fn get(&mut self, sa_type: u8, spi: u32, dst: &str, now: u64) -> Message {
        let r = self.send(&by_spi(MsgType::Get, sa_type, spi, dst), now);
        assert_eq!(
            r.audience(),
            Audience::Sender,
            "GET answers go to the sender only"
        );
        let m = r.only().clone();
        assert_eq!(
            (m.errno, m.reserved),
            (0, 0),
            "GET spi {spi:#x} dst {dst} failed: {m:?}"
        );
        assert_eq!((m.msg_type, m.seq, m.pid), (MsgType::Get, r.seq, PID));
        m
    }

    /// Asserts that GET finds no such SA (ESRCH, diagnostic 78).
    pub fn gone(&mut self, sa_type: u8, spi: u32, dst: &str, now: u64) {
        self.refused(
            &by_spi(MsgType::Get, sa_type, spi, dst),
            now,
            Errno::Esrch,
            Diagnostic::SaNotfound,
        );
    }

    /// The SA extension of a GET.
    pub fn sa(&mut self, sa_type: u8, spi: u32, dst: &str, now: u64) -> SaExt {
        *self
            .get(sa_type, spi, dst, now)
            .sa()
            .expect("GET reply has an SA extension")
    }

    /// DUMP of `sa_type`: the SA records (the terminator is checked here).
    pub fn dump(&mut self, sa_type: u8, now: u64) -> Vec<Message> {
        let r = self.send(&base(MsgType::Dump, sa_type), now);
        let (last, records) = r
            .deliveries
            .split_last()
            .expect("DUMP always ends with a terminator");
        let (to, end) = last;
        assert_eq!(*to, Audience::Sender);
        assert_eq!(
            (end.msg_type, end.errno, end.seq, end.pid),
            (MsgType::Dump, 0, 0, PID),
            "terminator {end:?}"
        );
        assert!(end.exts.is_empty(), "the terminator is base-only");
        for (to, m) in records {
            assert_eq!(*to, Audience::Sender);
            assert_eq!(
                (m.msg_type, m.seq, m.pid, m.errno),
                (MsgType::Dump, r.seq, PID, 0)
            );
        }
        records.iter().map(|(_, m)| m.clone()).collect()
    }

    /// Everything the SADB holds, as DUMP shows it, with seq/pid cleared.
    pub fn snapshot(&mut self, now: u64) -> Vec<Message> {
        let r = self
            .db
            .handle_bytes(&bytes(&base(MsgType::Dump, satype::UNSPEC)), now);
        r.deliveries
            .iter()
            .map(|d| {
                let mut m = decode(&d.msg);
                m.seq = 0;
                m.pid = 0;
                m
            })
            .collect()
    }

    /// One ager pass; the EXPIREs as a socket reads them.
    pub fn age(&mut self, now: u64) -> Vec<Message> {
        self.db.age(now).iter().map(decode).collect()
    }

    pub fn id(&self, sa_type: u8, spi: u32, dst: &str) -> SaId {
        self.db
            .lookup(sa_type, spi, ip(dst))
            .unwrap_or_else(|| panic!("no SA {spi:#x} -> {dst}"))
    }

    /// Passes `n` bytes through the SA (the packet engine's hook).
    pub fn account(
        &mut self,
        sa_type: u8,
        spi: u32,
        dst: &str,
        n: u64,
        now: u64,
    ) -> Result<Vec<Message>, Vec<Message>> {
        let id = self.id(sa_type, spi, dst);
        match self.db.account(id, n, now) {
            Ok(v) => Ok(v.iter().map(decode).collect()),
            Err(v) => Err(v.iter().map(decode).collect()),
        }
    }
}

pub fn check_refusal(r: &Reply, t: MsgType, sa_type: u8, pid: u32, e: Errno, d: Diagnostic) {
    let m = r.only();
    assert_eq!(
        (m.errno, m.reserved),
        (errno(e), d.code()),
        "expected {} diagnostic {} ({}), got errno {} diagnostic {} ({})",
        e.name(),
        d.code(),
        d.text(),
        m.errno,
        m.reserved,
        Diagnostic::from_code(m.reserved).text()
    );
    assert!(m.exts.is_empty(), "an error reply is base-only: {m:?}");
    assert_eq!(
        (m.msg_type, m.satype, m.seq, m.pid),
        (t, sa_type, r.seq, pid),
        "error reply header"
    );
    assert_eq!(
        r.audience(),
        error_audience(t),
        "error reply to {t:?} delivered to the wrong sockets"
    );
}

/// The limit extensions an EXPIRE carries (exactly one is expected).
pub fn expire_limits(m: &Message) -> Vec<ExtKind> {
    [
        ExtKind::LifetimeHard,
        ExtKind::LifetimeSoft,
        ExtKind::LifetimeIdle,
    ]
    .into_iter()
    .filter(|k| m.has(*k))
    .collect()
}

/// The address of an address extension in a reply, as the kernel stores it.
pub fn reply_ip(m: &Message, kind: ExtKind) -> IpAddr {
    m.address(kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {m:?}"))
        .addr
        .ip
}
