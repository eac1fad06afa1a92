//! ESP and AH per algorithm and packet size: the engine's encap and decap
//! next to the bare cipher and MAC, measured in the same run.
//!
//! "Bare" uses the engine's own crypto objects (`esp_ah::crypto`: the same
//! crates, the same expanded keys) on exactly the bytes the engine
//! encrypts and authenticates for a packet of that size, without the
//! framing: no SA state, sequence number, lifetime accounting, IV choice,
//! padding or header moves. Both sides copy their input into the work
//! buffer first (the engine works in place, so a loop must reload the
//! packet), which keeps the ratio a measure of the framing alone.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use esp_ah::crypto::{self, EspCipher, Integrity};
use esp_ah::packet::HEADROOM;
use esp_ah::{Engine, PacketBuf, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::{Config, Jitter, KeyMaterial, SaId, Sadb};
use serde::Serialize;

use crate::stats::{Measured, Rep, Settings, Worker};

/// PF_KEY time of every benchmark SA (no lifetimes are set).
pub const NOW: u64 = 1_700_000_000;
/// The default packet sizes (bytes of the IPv4 packet before protection).
pub const DEFAULT_SIZES: [usize; 4] = [64, 512, 1400, 8192];
/// Smallest packet: an IPv4 header and a UDP header.
pub const MIN_SIZE: usize = 28;
/// Largest packet: room for ESP or AH inside IPv4's 65535 bytes.
pub const MAX_SIZE: usize = 65000;

const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const RECEIVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SPI: u32 = 0x100;

/// ESP or AH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Esp,
    Ah,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Esp => "esp",
            Proto::Ah => "ah",
        }
    }
    fn satype(self) -> u8 {
        match self {
            Proto::Esp => satype::ESP,
            Proto::Ah => satype::AH,
        }
    }
}

/// One algorithm suite: what an SA of the engine can be keyed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub proto: Proto,
    /// `EncrAlg::None` for AH.
    pub encr: EncrAlg,
    /// Encryption key bits, salt excluded (0 for NULL and AH).
    pub encr_bits: u16,
    pub auth: AuthAlg,
}

impl Suite {
    /// ESP with `encr` keyed with its smallest key, and `auth`.
    pub fn esp(encr: EncrAlg, auth: AuthAlg) -> Suite {
        Suite {
            proto: Proto::Esp,
            encr,
            encr_bits: encr.key_bits().min,
            auth,
        }
    }

    /// ESP with an `bits`-bit encryption key.
    pub fn esp_bits(encr: EncrAlg, bits: u16, auth: AuthAlg) -> Suite {
        Suite {
            encr_bits: bits,
            ..Suite::esp(encr, auth)
        }
    }

    /// AH with `auth`.
    pub fn ah(auth: AuthAlg) -> Suite {
        Suite {
            proto: Proto::Ah,
            encr: EncrAlg::None,
            encr_bits: 0,
            auth,
        }
    }

    /// The name `--algs` accepts and the tables print: `aes-gcm16/128`,
    /// `aes-cbc/128+hmac-sha1`, `null+hmac-md5`, `hmac-sha256` (AH).
    pub fn name(&self) -> String {
        if self.proto == Proto::Ah {
            return self.auth.name().to_string();
        }
        let mut s = self.encr.name().to_string();
        let k = self.encr.key_bits();
        if k.min != k.max {
            s += &format!("/{}", self.encr_bits);
        }
        if self.auth != AuthAlg::None {
            s += "+";
            s += self.auth.name();
        }
        s
    }

    /// Parses a name as [`name`](Self::name) prints it; algorithm names
    /// are ipseckey's (any synonym), a missing key size is the smallest.
    pub fn parse(proto: Proto, text: &str) -> Result<Suite, String> {
        let text = text.trim();
        if proto == Proto::Ah {
            return match AuthAlg::from_name(text) {
                Some(a) if a != AuthAlg::None => Ok(Suite::ah(a)),
                _ => Err(format!(
                    "unknown AH algorithm `{text}` (known: {})",
                    known_auth()
                )),
            };
        }
        let (encr_part, auth_part) = match text.split_once('+') {
            Some((e, a)) => (e, Some(a)),
            None => (text, None),
        };
        let (encr_name, bits) = match encr_part.split_once('/') {
            Some((n, b)) => (n, Some(b)),
            None => (encr_part, None),
        };
        let encr = EncrAlg::from_name(encr_name)
            .filter(|e| *e != EncrAlg::None)
            .ok_or_else(|| {
                format!(
                    "unknown ESP encryption algorithm `{encr_name}` (known: {})",
                    known_encr()
                )
            })?;
        let kb = encr.key_bits();
        let encr_bits = match bits {
            None => kb.min,
            Some(b) => {
                let b: u16 = b
                    .parse()
                    .map_err(|_| format!("`{b}` is not a key size in bits"))?;
                if !kb.allows(b) {
                    return Err(format!(
                        "{} takes keys of {}..{} bits, not {b}",
                        encr.name(),
                        kb.min,
                        kb.max
                    ));
                }
                b
            }
        };
        let auth = match auth_part {
            None => AuthAlg::None,
            Some(a) => AuthAlg::from_name(a)
                .filter(|x| *x != AuthAlg::None)
                .ok_or_else(|| {
                    format!(
                        "unknown authentication algorithm `{a}` (known: {})",
                        known_auth()
                    )
                })?,
        };
        if encr.is_aead() && auth != AuthAlg::None {
            return Err(format!(
                "{} authenticates by itself; drop `+{}`",
                encr.name(),
                auth.name()
            ));
        }
        if !encr.is_aead() && auth == AuthAlg::None {
            return Err(format!(
                "{} needs an authentication algorithm, e.g. `{}+hmac-sha1`",
                encr.name(),
                encr_part
            ));
        }
        Ok(Suite {
            proto: Proto::Esp,
            encr,
            encr_bits,
            auth,
        })
    }

    /// Every algorithm the engine has, each at least once: the AEADs, each
    /// CBC cipher and AES-CTR with HMAC-SHA1 (AES-CBC also with SHA-256),
    /// and ESP NULL with every HMAC (the MAC alone).
    pub fn default_esp() -> Vec<Suite> {
        use AuthAlg as A;
        use EncrAlg as E;
        vec![
            Suite::esp_bits(E::AesGcm16, 128, A::None),
            Suite::esp_bits(E::AesGcm16, 256, A::None),
            Suite::esp(E::AesGcm12, A::None),
            Suite::esp(E::AesGcm8, A::None),
            Suite::esp(E::AesCcm16, A::None),
            Suite::esp(E::AesCcm12, A::None),
            Suite::esp(E::AesCcm8, A::None),
            Suite::esp(E::AesGmac, A::None),
            Suite::esp(E::ChaCha20Poly1305, A::None),
            Suite::esp(E::AesCbc, A::HmacSha1),
            Suite::esp(E::AesCbc, A::HmacSha256),
            Suite::esp_bits(E::AesCbc, 256, A::HmacSha256),
            Suite::esp(E::AesCtr, A::HmacSha1),
            Suite::esp(E::TripleDesCbc, A::HmacSha1),
            Suite::esp(E::DesCbc, A::HmacSha1),
            Suite::esp(E::BlowfishCbc, A::HmacSha1),
            Suite::esp(E::Null, A::HmacMd5),
            Suite::esp(E::Null, A::HmacSha1),
            Suite::esp(E::Null, A::HmacSha256),
            Suite::esp(E::Null, A::HmacSha384),
            Suite::esp(E::Null, A::HmacSha512),
        ]
    }

    /// AH with every HMAC.
    pub fn default_ah() -> Vec<Suite> {
        AuthAlg::ALL
            .iter()
            .filter(|a| **a != AuthAlg::None)
            .map(|a| Suite::ah(*a))
            .collect()
    }

    fn encr_key(&self) -> Vec<u8> {
        let n = (self.encr_bits + self.encr.salt_bits()) as usize / 8;
        key_bytes(n, 0x3c)
    }

    fn auth_key(&self) -> Vec<u8> {
        key_bytes(self.auth.key_bits().min as usize / 8, 0x5a)
    }
}

fn known_encr() -> String {
    EncrAlg::ALL
        .iter()
        .filter(|e| **e != EncrAlg::None)
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_auth() -> String {
    AuthAlg::ALL
        .iter()
        .filter(|a| **a != AuthAlg::None)
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key bytes with no repeated 8-byte blocks (3DES refuses K1 = K2) and no
/// weak DES key.
fn key_bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

/// An IPv4 UDP packet of `size` bytes in total.
pub fn packet(size: usize) -> Vec<u8> {
    let payload = vec![0xa5u8; size.saturating_sub(MIN_SIZE)];
    let mut out = Vec::with_capacity(size);
    let _ = etherparse::PacketBuilder::ipv4(SENDER.octets(), RECEIVER.octets(), 64)
        .udp(5000, 7)
        .write(&mut out, &payload);
    out
}

/// Adds the suite's SA (SPI 0x100, 10.0.0.1 -> 10.0.0.2) to `db`.
/// `replay` 0 lets one captured packet be verified again and again.
pub fn add_sa(db: &mut Sadb, suite: &Suite, replay: u8) -> Result<SaId, String> {
    let mut m = Message::new(MsgType::Add, suite.proto.satype(), 1, 1)
        .with(SaExt {
            spi: SPI,
            replay,
            state: 1,
            auth: suite.auth.id(Dialect::Illumos).unwrap_or(0),
            encrypt: if suite.proto == Proto::Esp {
                suite.encr.id(Dialect::Illumos).unwrap_or(0)
            } else {
                0
            },
            flags: 0,
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(IpAddr::V4(SENDER), 0, 0),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(IpAddr::V4(RECEIVER), 0, 0),
        ));
    if suite.auth != AuthAlg::None {
        let k = suite.auth_key();
        m = m.with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: (k.len() * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(k),
            },
        ));
    }
    let ek = suite.encr_key();
    if suite.proto == Proto::Esp && !ek.is_empty() {
        m = m.with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: (ek.len() * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(ek),
            },
        ));
    }
    let r = db.handle(&m, NOW);
    match r.reply() {
        Some(rep) if rep.errno == 0 => {}
        Some(rep) => {
            return Err(format!(
                "the SADB refused the {} SA: errno {}, diagnostic {}",
                suite.name(),
                rep.errno,
                rep.reserved
            ))
        }
        None => return Err(format!("the SADB did not answer the {} ADD", suite.name())),
    }
    db.lookup(suite.proto.satype(), SPI, IpAddr::V4(RECEIVER))
        .ok_or_else(|| format!("the {} SA was added but cannot be found", suite.name()))
}

/// A simulated host holding the suite's SA, with its engine.
pub struct Host {
    pub db: Sadb,
    pub engine: Engine,
    pub id: SaId,
}

impl Host {
    /// The sending (`outbound`) or receiving host of the suite's SA.
    pub fn new(suite: &Suite, outbound: bool) -> Result<Host, String> {
        let mut cfg = Config {
            jitter: Jitter::Off,
            ..Config::default()
        };
        cfg.local_addrs
            .insert(IpAddr::V4(if outbound { SENDER } else { RECEIVER }));
        let mut db = Sadb::new(cfg);
        let id = add_sa(&mut db, suite, 0)?;
        let mut engine = Engine::with_seed(1);
        engine
            .install(&db, id, SaOptions::default())
            .map_err(|e| format!("{}: {e}", suite.name()))?;
        Ok(Host { db, engine, id })
    }
}

/// The bytes ESP encrypts and authenticates for a transport-mode IPv4
/// packet of `size` bytes: (IV, ciphertext with padding and trailer, ICV).
fn esp_layout(size: usize, cipher: &dyn EspCipher, icv: usize) -> (usize, usize, usize) {
    let payload = size.saturating_sub(20);
    let block = cipher.block_len().max(4);
    let pad = (block - (payload + 2) % block) % block;
    (cipher.iv_len(), payload + pad + 2, icv)
}

/// The bare primitives of a suite on a buffer laid out as the engine's:
/// ESP header (8), IV, body, ICV for ESP; packet plus AH header for AH.
pub struct Bare {
    cipher: Option<Box<dyn EspCipher>>,
    integ: Option<Box<dyn Integrity>>,
    /// ESP: (IV, body, ICV) lengths. AH: (0, bytes authenticated, ICV).
    iv: usize,
    body: usize,
    icv: usize,
    /// The clear input and the sealed one (reloaded before each operation).
    clear: Vec<u8>,
    sealed: Vec<u8>,
    work: Vec<u8>,
}

impl Bare {
    pub fn new(suite: &Suite, size: usize) -> Result<Bare, String> {
        let err = |e: crypto::BuildError| format!("{}: {e}", suite.name());
        let integ = crypto::integrity(suite.auth, &suite.auth_key(), None).map_err(err)?;
        let integ_icv = integ.as_ref().map_or(0, |i| i.icv_len());
        let (cipher, iv, body, icv) = match suite.proto {
            Proto::Esp => {
                let c = crypto::cipher(suite.encr, &suite.encr_key()).map_err(err)?;
                let icv = if c.icv_len() != 0 {
                    c.icv_len()
                } else {
                    integ_icv
                };
                let (iv, body, icv) = esp_layout(size, c.as_ref(), icv);
                (Some(c), iv, body, icv)
            }
            // RFC 4302 2.2: the AH header is 12 bytes plus the ICV, padded
            // to 4 bytes on IPv4; the MAC covers it and the whole packet.
            Proto::Ah => (None, 0, size + (12 + integ_icv).div_ceil(4) * 4, integ_icv),
        };
        let mut clear = vec![0u8; 8 + iv + body + icv];
        for (i, b) in clear.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut b = Bare {
            cipher,
            integ,
            iv,
            body,
            icv,
            work: clear.clone(),
            sealed: Vec::new(),
            clear,
        };
        b.seal();
        b.sealed = b.work.clone();
        if !b.open() {
            return Err(format!(
                "{}: the bare primitives do not verify their own output",
                suite.name()
            ));
        }
        Ok(b)
    }

    /// Encrypt and authenticate (or compute the AH ICV).
    pub fn seal(&mut self) {
        self.work.copy_from_slice(&self.clear);
        let (iv, body) = (self.iv, self.body);
        let Some(c) = self.cipher.as_deref() else {
            // AH: the MAC of the packet and header.
            if let Some(m) = self.integ.as_deref() {
                let (head, tail) = self.work.split_at_mut(8 + body);
                m.compute(&[&head[8..]], &mut tail[..self.icv]);
            }
            return;
        };
        let (head, icv) = self.work.split_at_mut(8 + iv + body);
        if c.icv_len() != 0 && c.auth_only() {
            // GMAC (RFC 4543 3.3): everything is AAD.
            let (ivb, _) = head[8..].split_at(iv);
            let _ = c.seal(ivb, head, &mut [], icv);
        } else if c.icv_len() != 0 {
            let (hdr, rest) = head.split_at_mut(8);
            let (ivb, data) = rest.split_at_mut(iv);
            let _ = c.seal(ivb, hdr, data, icv);
        } else {
            {
                let (ivb, data) = head[8..].split_at_mut(iv);
                let _ = c.seal(ivb, &[], data, &mut []);
            }
            if let Some(m) = self.integ.as_deref() {
                m.compute(&[head], icv);
            }
        }
    }

    /// Verify and decrypt; false if the ICV does not verify.
    pub fn open(&mut self) -> bool {
        self.work.copy_from_slice(&self.sealed);
        let (iv, body) = (self.iv, self.body);
        let Some(c) = self.cipher.as_deref() else {
            return match self.integ.as_deref() {
                Some(m) => {
                    let (head, tail) = self.work.split_at(8 + body);
                    m.verify(&[&head[8..]], &tail[..self.icv]).is_ok()
                }
                None => false,
            };
        };
        let (head, icv) = self.work.split_at_mut(8 + iv + body);
        if c.icv_len() != 0 && c.auth_only() {
            let (ivb, _) = head[8..].split_at(iv);
            c.open(ivb, head, &mut [], icv).is_ok()
        } else if c.icv_len() != 0 {
            let (hdr, rest) = head.split_at_mut(8);
            let (ivb, data) = rest.split_at_mut(iv);
            c.open(ivb, hdr, data, icv).is_ok()
        } else {
            // RFC 4303 3.4.4: the ICV is checked before decrypting.
            if let Some(m) = self.integ.as_deref() {
                if m.verify(&[head], icv).is_err() {
                    return false;
                }
            }
            let (ivb, data) = head[8..].split_at_mut(iv);
            c.open(ivb, &[], data, &[]).is_ok()
        }
    }
}

/// Everything one thread needs to measure one suite at one size.
pub struct PathBench {
    pub size: usize,
    clear: Vec<u8>,
    wire: Vec<u8>,
    buf: Vec<u8>,
    out: Host,
    inb: Host,
    expires: Vec<Message>,
    pub bare: Bare,
}

impl PathBench {
    /// Sets up both hosts and checks one packet end to end (the decap of
    /// the encap gives back the packet) before anything is timed.
    pub fn new(suite: &Suite, size: usize) -> Result<PathBench, String> {
        let mut b = PathBench {
            size,
            clear: packet(size),
            wire: Vec::new(),
            buf: vec![0u8; HEADROOM + size + 512],
            out: Host::new(suite, true)?,
            inb: Host::new(suite, false)?,
            expires: Vec::new(),
            bare: Bare::new(suite, size)?,
        };
        let mut p = PacketBuf::load(&mut b.buf, &b.clear).ok_or("no room for the packet")?;
        let v = b
            .out
            .engine
            .outbound(&mut b.out.db, b.out.id, &mut p, NOW, &mut b.expires);
        if v != Verdict::Send {
            return Err(format!("{} encap of {size} B: {v:?}", suite.name()));
        }
        b.wire = p.data().to_vec();
        let mut p = PacketBuf::load(&mut b.buf, &b.wire).ok_or("no room for the packet")?;
        let v = b
            .inb
            .engine
            .inbound(&mut b.inb.db, &mut p, NOW, &mut b.expires);
        if v != Verdict::Deliver || p.data() != b.clear.as_slice() {
            return Err(format!(
                "{} decap of {size} B did not give the packet back: {v:?}",
                suite.name()
            ));
        }
        Ok(b)
    }

    /// Protects the clear packet (loaded into the work buffer first).
    pub fn encap(&mut self) -> bool {
        let Some(mut p) = PacketBuf::load(&mut self.buf, &self.clear) else {
            return false;
        };
        let v = self.out.engine.outbound(
            &mut self.out.db,
            self.out.id,
            &mut p,
            NOW,
            &mut self.expires,
        );
        black_box(p.len());
        self.expires.clear();
        v == Verdict::Send
    }

    /// Verifies and removes ESP/AH from the protected packet (the receiving
    /// SA has no replay window, so the same packet verifies every time).
    pub fn decap(&mut self) -> bool {
        let Some(mut p) = PacketBuf::load(&mut self.buf, &self.wire) else {
            return false;
        };
        let v = self
            .inb
            .engine
            .inbound(&mut self.inb.db, &mut p, NOW, &mut self.expires);
        black_box(p.len());
        self.expires.clear();
        v == Verdict::Deliver
    }
}

/// The four operations measured per suite and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Encap,
    Decap,
    BareSeal,
    BareOpen,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Encap, Op::Decap, Op::BareSeal, Op::BareOpen];

    pub fn run(self, b: &mut PathBench) -> bool {
        match self {
            Op::Encap => b.encap(),
            Op::Decap => b.decap(),
            Op::BareSeal => {
                b.bare.seal();
                true
            }
            Op::BareOpen => b.bare.open(),
        }
    }
}

/// One operation's numbers: per-packet time and the rates it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpResult {
    /// Nanoseconds per packet (per thread).
    pub ns: crate::stats::Stat,
    /// Million packets per second (all threads).
    pub mpps: crate::stats::Stat,
    /// Gbit/s of the packets before protection (all threads).
    pub gbps: crate::stats::Stat,
}

impl OpResult {
    fn of(m: Measured, size: usize) -> OpResult {
        OpResult {
            ns: m.ns,
            mpps: m.mops,
            gbps: m.mops.scale(size as f64 * 8.0 / 1000.0),
        }
    }
}

/// One suite at one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathResult {
    pub proto: Proto,
    pub alg: String,
    pub size: usize,
    pub threads: usize,
    pub encap: OpResult,
    pub decap: OpResult,
    /// Cipher + MAC alone on the bytes encap protects.
    pub bare_seal: OpResult,
    /// MAC check + decryption alone on the bytes decap verifies.
    pub bare_open: OpResult,
    /// Median encap time over median bare seal time.
    pub encap_vs_bare: f64,
    /// Median decap time over median bare open time.
    pub decap_vs_bare: f64,
}

/// Measures `suite` at `size`: warm-up, then `reps` rounds in which each
/// operation runs for `time` in turn (interleaved, so drift in the
/// machine's speed hits all four alike).
pub fn measure(
    suite: &Suite,
    size: usize,
    set: &Settings,
    mut tick: impl FnMut(),
) -> Result<PathResult, String> {
    let mut workers = (0..set.threads.max(1))
        .map(|_| PathBench::new(suite, size).map(Worker::new))
        .collect::<Result<Vec<_>, _>>()?;
    let per_op = set.warmup / Op::ALL.len() as u32;
    for op in Op::ALL {
        let (_, bad) = crate::stats::run_workers(&mut workers, per_op, &|b| op.run(b));
        if bad != 0 {
            return Err(format!("{} {op:?} at {size} B failed", suite.name()));
        }
    }
    let mut reps: [Vec<Rep>; 4] = Default::default();
    for _ in 0..set.reps.max(1) {
        for (k, op) in Op::ALL.into_iter().enumerate() {
            let (samples, bad) = crate::stats::run_workers(&mut workers, set.time, &|b| op.run(b));
            if bad != 0 {
                return Err(format!(
                    "{} {op:?} at {size} B: {bad} packets failed",
                    suite.name()
                ));
            }
            reps[k].push(Rep::of(&samples));
        }
        tick();
    }
    let [e, d, s, o] = reps.map(|r| OpResult::of(Measured::of(&r), size));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(PathResult {
        proto: suite.proto,
        alg: suite.name(),
        size,
        threads: set.threads.max(1),
        encap_vs_bare: ratio(e.ns.median, s.ns.median),
        decap_vs_bare: ratio(d.ns.median, o.ns.median),
        encap: e,
        decap: d,
        bare_seal: s,
        bare_open: o,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Suite::default_esp()
            .iter()
            .chain(Suite::default_ah().iter())
        {
            assert_eq!(
                Suite::parse(s.proto, &s.name()).as_ref(),
                Ok(s),
                "{}",
                s.name()
            );
        }
    }

    #[test]
    fn bad_names_say_why() {
        let e = Suite::parse(Proto::Esp, "aes-cbc").unwrap_err();
        assert!(e.contains("needs an authentication algorithm"), "{e}");
        let e = Suite::parse(Proto::Esp, "aes-gcm/100").unwrap_err();
        assert!(e.contains("128..256"), "{e}");
        let e = Suite::parse(Proto::Esp, "rot13").unwrap_err();
        assert!(
            e.starts_with("unknown ESP encryption algorithm `rot13`"),
            "{e}"
        );
        let e = Suite::parse(Proto::Ah, "aes-gcm").unwrap_err();
        assert!(e.starts_with("unknown AH algorithm"), "{e}");
    }

    /// Every default suite builds, round-trips a packet, and its bare
    /// primitives verify their own output.
    #[test]
    fn every_default_suite_works_at_every_size() {
        for s in Suite::default_esp()
            .iter()
            .chain(Suite::default_ah().iter())
        {
            for size in [MIN_SIZE, 64, 1400] {
                let mut b = PathBench::new(s, size).unwrap();
                for op in Op::ALL {
                    assert!(op.run(&mut b), "{} {op:?} {size}", s.name());
                }
            }
        }
    }
}
