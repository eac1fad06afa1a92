//! Plain representations of PF_KEY messages and extensions, with
//! `parse` (bytes -> value) and `emit` (value -> bytes) per [`Dialect`].

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{EncodeError, WireError};
use super::field;
use super::view::{be_u16, be_u32, ne_u16, ne_u32, ne_u64, MsgView, RawExt};
use super::{
    flags, Dialect, ExtKind, MsgType, AF_INET, BASE_LEN, PF_KEY_V2, SOCKADDR_IN_LEN, WORD,
};
use crate::key::KeyMaterial;

/// Rounds `n` up to a whole number of 64-bit words.
pub const fn pad8(n: usize) -> usize {
    n.div_ceil(WORD) * WORD
}

/// `sadb_sa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaExt {
    /// SPI as a host value (network order on the wire).
    pub spi: u32,
    /// Replay window size in packets.
    pub replay: u8,
    /// `sadb_sa_state`, kept as a number: kernels may send states this
    /// codec does not name.
    pub state: u8,
    /// Authentication algorithm id, in the simulator's (illumos) numbering.
    pub auth: u8,
    /// Encryption algorithm id, in the simulator's (illumos) numbering.
    pub encrypt: u8,
    /// Semantic flags (see [`super::flags`]).
    pub flags: u64,
}

/// `sadb_lifetime` (CURRENT, HARD, SOFT, and illumos IDLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub allocations: u32,
    pub bytes: u64,
    pub addtime: u64,
    pub usetime: u64,
}

impl Lifetime {
    pub fn is_zero(&self) -> bool {
        *self == Lifetime::default()
    }
}

/// The socket address inside an address extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockAddr {
    /// The address as on the wire: an IPv4-mapped IPv6 address stays IPv6
    /// (ipseckey sends IPv4 that way) so that it round-trips.
    pub ip: IpAddr,
    pub port: u16,
    pub flowinfo: u32,
    pub scope_id: u32,
    /// illumos `__sin6_src_id`.
    pub src_id: u32,
}

impl SockAddr {
    pub fn new(ip: IpAddr, port: u16) -> SockAddr {
        SockAddr {
            ip,
            port,
            flowinfo: 0,
            scope_id: 0,
            src_id: 0,
        }
    }

    /// The address with IPv4-mapped IPv6 turned into IPv4, as kernels store it.
    pub fn canonical_ip(&self) -> IpAddr {
        self.ip.to_canonical()
    }
}

/// `sadb_address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Upper-layer protocol, 0 = any.
    pub proto: u8,
    pub prefix_len: u8,
    pub addr: SockAddr,
}

impl Address {
    pub fn new(ip: IpAddr, port: u16, proto: u8) -> Address {
        Address {
            proto,
            prefix_len: 0,
            addr: SockAddr::new(ip, port),
        }
    }
}

/// `sadb_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Key length in bits (for illumos encryption keys: key + salt).
    pub bits: u16,
    /// illumos: IV bits in requests, salt bits in replies (encryption keys).
    pub reserved: u16,
    /// `ceil(bits / 8)` bytes, or `ceil((bits + reserved) / 8)` when the
    /// extension has room for them (an illumos reply's key + salt).
    pub material: KeyMaterial,
}

/// `sadb_ident`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id_type: u16,
    pub id: u64,
    /// The string, without its terminating NUL.
    pub text: Vec<u8>,
}

/// `sadb_sens` (SENSITIVITY, illumos OUTER_SENS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sensitivity {
    pub dpd: u32,
    pub sens_level: u8,
    pub integ_level: u8,
    /// illumos flags (reserved word elsewhere).
    pub flags: u32,
    pub sens_bitmap: Vec<u64>,
    pub integ_bitmap: Vec<u64>,
}

/// `sadb_comb` (72 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Comb {
    pub auth: u8,
    pub encrypt: u8,
    pub flags: u16,
    pub auth_minbits: u16,
    pub auth_maxbits: u16,
    pub encrypt_minbits: u16,
    pub encrypt_maxbits: u16,
    pub reserved: u32,
    pub soft_allocations: u32,
    pub hard_allocations: u32,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_addtime: u64,
    pub hard_addtime: u64,
    pub soft_usetime: u64,
    pub hard_usetime: u64,
}

/// `sadb_prop`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proposal {
    pub replay: u8,
    pub combs: Vec<Comb>,
}

/// `sadb_alg` inside SUPPORTED_AUTH / SUPPORTED_ENCRYPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgDesc {
    pub id: u8,
    pub ivlen: u8,
    pub minbits: u16,
    pub maxbits: u16,
    /// illumos: increment (low byte on the wire first) and salt bits.
    pub increment: u8,
    pub saltbits: u8,
}

/// `sadb_spirange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpiRange {
    pub min: u32,
    pub max: u32,
}

/// Linux `sadb_x_filter` (DUMP filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filter {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub family: u16,
    pub splen: u8,
    pub dplen: u8,
}

/// One PF_KEY extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    Sa(SaExt),
    /// `kind` is one of the lifetime kinds.
    Lifetime(ExtKind, Lifetime),
    /// `kind` is one of the address kinds.
    Address(ExtKind, Address),
    /// `kind` is `KeyAuth` or `KeyEncrypt`.
    Key(ExtKind, Key),
    /// `kind` is `IdentitySrc` or `IdentityDst`.
    Identity(ExtKind, Identity),
    /// `kind` is `Sensitivity` or `OuterSensitivity`.
    Sensitivity(ExtKind, Sensitivity),
    Proposal(Proposal),
    /// `kind` is `SupportedAuth` or `SupportedEncrypt`.
    Supported(ExtKind, Vec<AlgDesc>),
    SpiRange(SpiRange),
    /// illumos X_EREG: the SA types to register for.
    ExtRegister(Vec<u8>),
    /// illumos X_EPROP, carried as its bytes after the generic header.
    ExtProposal(Vec<u8>),
    /// illumos X_KM_COOKIE.
    KmCookie {
        proto: u32,
        cookie: u64,
    },
    /// illumos X_PAIR: the partner's SPI.
    Pair {
        spi: u32,
    },
    /// illumos X_REPLAY_VALUE.
    ReplayValue {
        r32: u32,
        r64: u64,
    },
    /// illumos X_EDUMP.
    ExtDump {
        timeout: u64,
    },
    /// Linux X_SA2.
    Sa2 {
        mode: u8,
        sequence: u32,
        reqid: u32,
    },
    /// Linux X_NAT_T_TYPE.
    NatTType(u8),
    /// Linux X_NAT_T_SPORT / X_NAT_T_DPORT.
    NatTPort(ExtKind, u16),
    /// Linux X_SEC_CTX.
    SecCtx {
        alg: u8,
        doi: u8,
        ctx: Vec<u8>,
    },
    /// Linux X_FILTER.
    Filter(Filter),
    /// A known extension this codec carries without interpreting
    /// (Linux X_KMPRIVATE, X_POLICY, X_KMADDRESS): the bytes after the
    /// generic header, padding included.
    Opaque(ExtKind, Vec<u8>),
    /// A type the dialect does not know: kept verbatim and re-emitted.
    Unknown {
        wire_type: u16,
        body: Vec<u8>,
    },
}

impl Extension {
    /// The kind, or `None` for an unknown wire type.
    pub fn kind(&self) -> Option<ExtKind> {
        Some(match self {
            Extension::Sa(_) => ExtKind::Sa,
            Extension::Lifetime(k, _)
            | Extension::Address(k, _)
            | Extension::Key(k, _)
            | Extension::Identity(k, _)
            | Extension::Sensitivity(k, _)
            | Extension::Supported(k, _)
            | Extension::NatTPort(k, _)
            | Extension::Opaque(k, _) => *k,
            Extension::Proposal(_) => ExtKind::Proposal,
            Extension::SpiRange(_) => ExtKind::SpiRange,
            Extension::ExtRegister(_) => ExtKind::ExtRegister,
            Extension::ExtProposal(_) => ExtKind::ExtProposal,
            Extension::KmCookie { .. } => ExtKind::KmCookie,
            Extension::Pair { .. } => ExtKind::Pair,
            Extension::ReplayValue { .. } => ExtKind::ReplayValue,
            Extension::ExtDump { .. } => ExtKind::ExtDump,
            Extension::Sa2 { .. } => ExtKind::Sa2,
            Extension::NatTType(_) => ExtKind::NatTType,
            Extension::SecCtx { .. } => ExtKind::SecCtx,
            Extension::Filter(_) => ExtKind::Filter,
            Extension::Unknown { .. } => return None,
        })
    }

    /// Parses one extension whose generic header `raw` has been checked.
    pub fn parse(raw: &RawExt<'_>, dialect: Dialect) -> Result<Extension, WireError> {
        let Some(kind) = ExtKind::from_number(raw.wire_type, dialect) else {
            return Ok(Extension::Unknown {
                wire_type: raw.wire_type,
                body: raw.bytes[field::ext::HEADER_LEN..].to_vec(),
            });
        };
        let b = raw.bytes;
        let need = |min: usize| -> Result<(), WireError> {
            if b.len() < min {
                Err(WireError::ExtTooShort {
                    kind,
                    min,
                    got: b.len(),
                })
            } else {
                Ok(())
            }
        };
        Ok(match kind {
            ExtKind::Sa => {
                need(field::sa::LEN)?;
                let wire_flags = ne_u32(b, field::sa::FLAGS);
                SaExt {
                    spi: be_u32(b, field::sa::SPI),
                    replay: b[field::sa::REPLAY],
                    state: b[field::sa::STATE],
                    auth: b[field::sa::AUTH],
                    encrypt: b[field::sa::ENCRYPT],
                    flags: match dialect {
                        Dialect::Illumos => wire_flags as u64,
                        Dialect::Linux => flags::from_linux(wire_flags),
                    },
                }
                .into()
            }
            k if k.is_lifetime() => {
                need(field::lifetime::LEN)?;
                Extension::Lifetime(
                    k,
                    Lifetime {
                        allocations: ne_u32(b, field::lifetime::ALLOCATIONS),
                        bytes: ne_u64(b, field::lifetime::BYTES),
                        addtime: ne_u64(b, field::lifetime::ADDTIME),
                        usetime: ne_u64(b, field::lifetime::USETIME),
                    },
                )
            }
            k if k.is_address() => Extension::Address(k, parse_address(k, b, dialect)?),
            ExtKind::KeyAuth | ExtKind::KeyEncrypt => {
                need(field::key::MATERIAL)?;
                let bits = ne_u16(b, field::key::BITS);
                let reserved = ne_u16(b, field::key::RESERVED);
                let bytes = (bits as usize).div_ceil(8);
                let room = b.len() - field::key::MATERIAL;
                if bytes > room {
                    return Err(WireError::KeyLenMismatch {
                        kind,
                        bits,
                        bytes: room,
                    });
                }
                // illumos replies carry the salt after the key and count it
                // in `reserved`, not in `bits` (ipseckey-behaviour.md 3.1).
                let with_salt = (bits as usize + reserved as usize).div_ceil(8).min(room);
                let bytes = bytes.max(with_salt);
                Extension::Key(
                    kind,
                    Key {
                        bits,
                        reserved,
                        material: KeyMaterial::from_slice(
                            &b[field::key::MATERIAL..field::key::MATERIAL + bytes],
                        ),
                    },
                )
            }
            ExtKind::IdentitySrc | ExtKind::IdentityDst => {
                need(field::ident::STRING)?;
                let s = &b[field::ident::STRING..];
                let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                Extension::Identity(
                    kind,
                    Identity {
                        id_type: ne_u16(b, field::ident::TYPE),
                        id: ne_u64(b, field::ident::ID),
                        text: s[..end].to_vec(),
                    },
                )
            }
            ExtKind::Sensitivity | ExtKind::OuterSensitivity => {
                need(field::sens::BITMAPS)?;
                let sl = b[field::sens::SENS_LEN] as usize;
                let il = b[field::sens::INTEG_LEN] as usize;
                let room = (b.len() - field::sens::BITMAPS) / WORD;
                if sl + il > room {
                    return Err(WireError::BadCount {
                        kind,
                        count: sl + il,
                        room,
                    });
                }
                let words: Vec<u64> = (0..sl + il)
                    .map(|i| {
                        let o = field::sens::BITMAPS + i * WORD;
                        ne_u64(b, o..o + WORD)
                    })
                    .collect();
                Extension::Sensitivity(
                    kind,
                    Sensitivity {
                        dpd: ne_u32(b, field::sens::DPD),
                        sens_level: b[field::sens::SENS_LEVEL],
                        integ_level: b[field::sens::INTEG_LEVEL],
                        flags: ne_u32(b, field::sens::FLAGS),
                        sens_bitmap: words[..sl].to_vec(),
                        integ_bitmap: words[sl..].to_vec(),
                    },
                )
            }
            ExtKind::Proposal => {
                need(field::prop::COMBS)?;
                let n = (b.len() - field::prop::COMBS) / field::prop::COMB_LEN;
                let combs = (0..n)
                    .map(|i| parse_comb(&b[field::prop::COMBS + i * field::prop::COMB_LEN..]))
                    .collect();
                Extension::Proposal(Proposal {
                    replay: b[field::prop::REPLAY],
                    combs,
                })
            }
            ExtKind::SupportedAuth | ExtKind::SupportedEncrypt => {
                need(field::supported::ALGS)?;
                let n = (b.len() - field::supported::ALGS) / field::supported::ALG_LEN;
                let algs = (0..n)
                    .map(|i| {
                        let a = &b[field::supported::ALGS + i * field::supported::ALG_LEN..];
                        let r = &a[field::supported::ALG_RESERVED];
                        AlgDesc {
                            id: a[field::supported::ALG_ID],
                            ivlen: a[field::supported::ALG_IVLEN],
                            minbits: ne_u16(a, field::supported::ALG_MINBITS),
                            maxbits: ne_u16(a, field::supported::ALG_MAXBITS),
                            increment: r[0],
                            saltbits: r[1],
                        }
                    })
                    .collect();
                Extension::Supported(kind, algs)
            }
            ExtKind::SpiRange => {
                need(field::spirange::LEN)?;
                let (min, max) = if dialect.spirange_network_order() {
                    (
                        be_u32(b, field::spirange::MIN),
                        be_u32(b, field::spirange::MAX),
                    )
                } else {
                    (
                        ne_u32(b, field::spirange::MIN),
                        ne_u32(b, field::spirange::MAX),
                    )
                };
                if min > max {
                    return Err(WireError::SpiRangeInverted { min, max });
                }
                Extension::SpiRange(SpiRange { min, max })
            }
            ExtKind::ExtRegister => {
                let s = &b[field::ext::HEADER_LEN..];
                let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                Extension::ExtRegister(s[..end].to_vec())
            }
            ExtKind::ExtProposal => Extension::ExtProposal(b[field::ext::HEADER_LEN..].to_vec()),
            ExtKind::KmCookie => {
                need(field::km_cookie::LEN)?;
                Extension::KmCookie {
                    proto: ne_u32(b, field::km_cookie::PROTO),
                    cookie: ne_u64(b, field::km_cookie::COOKIE),
                }
            }
            ExtKind::Pair => {
                need(field::pair::LEN)?;
                Extension::Pair {
                    spi: be_u32(b, field::pair::SPI),
                }
            }
            ExtKind::ReplayValue => {
                need(field::replay_value::LEN)?;
                Extension::ReplayValue {
                    r32: ne_u32(b, field::replay_value::R32),
                    r64: ne_u64(b, field::replay_value::R64),
                }
            }
            ExtKind::ExtDump => {
                need(field::edump::LEN)?;
                Extension::ExtDump {
                    timeout: ne_u64(b, field::edump::TIMEOUT),
                }
            }
            ExtKind::Sa2 => {
                need(field::sa2::LEN)?;
                Extension::Sa2 {
                    mode: b[field::sa2::MODE],
                    sequence: ne_u32(b, field::sa2::SEQUENCE),
                    reqid: ne_u32(b, field::sa2::REQID),
                }
            }
            ExtKind::NatTType => {
                need(field::nat_t::LEN)?;
                Extension::NatTType(b[field::nat_t::TYPE])
            }
            ExtKind::NatTSport | ExtKind::NatTDport => {
                need(field::nat_t::LEN)?;
                Extension::NatTPort(kind, be_u16(b, field::nat_t::PORT))
            }
            ExtKind::SecCtx => {
                need(field::sec_ctx::CTX)?;
                let len = ne_u16(b, field::sec_ctx::CTX_LEN) as usize;
                let expected = pad8(field::sec_ctx::CTX + len);
                if expected != b.len() {
                    return Err(WireError::ExtWrongLength {
                        kind,
                        expected,
                        got: b.len(),
                    });
                }
                Extension::SecCtx {
                    alg: b[field::sec_ctx::ALG],
                    doi: b[field::sec_ctx::DOI],
                    ctx: b[field::sec_ctx::CTX..field::sec_ctx::CTX + len].to_vec(),
                }
            }
            ExtKind::Filter => {
                need(field::filter::LEN)?;
                let mut f = Filter::default();
                f.saddr.copy_from_slice(&b[field::filter::SADDR]);
                f.daddr.copy_from_slice(&b[field::filter::DADDR]);
                f.family = ne_u16(b, field::filter::FAMILY);
                f.splen = b[field::filter::SPLEN];
                f.dplen = b[field::filter::DPLEN];
                Extension::Filter(f)
            }
            ExtKind::KmPrivate | ExtKind::Policy | ExtKind::KmAddress => {
                Extension::Opaque(kind, b[field::ext::HEADER_LEN..].to_vec())
            }
            // Every remaining kind is an address or lifetime, handled above.
            _ => Extension::Unknown {
                wire_type: raw.wire_type,
                body: b[field::ext::HEADER_LEN..].to_vec(),
            },
        })
    }

    /// Bytes this extension takes on the wire (a whole number of words).
    pub fn buffer_len(&self, dialect: Dialect) -> usize {
        let body = match self {
            Extension::Sa(_) => field::sa::LEN,
            Extension::Lifetime(..) => field::lifetime::LEN,
            Extension::Address(_, a) => field::address::SOCKADDR + sockaddr_len(&a.addr, dialect),
            Extension::Key(_, k) => field::key::MATERIAL + k.material.len(),
            Extension::Identity(_, i) => field::ident::STRING + i.text.len() + 1,
            Extension::Sensitivity(_, s) => {
                field::sens::BITMAPS + WORD * (s.sens_bitmap.len() + s.integ_bitmap.len())
            }
            Extension::Proposal(p) => field::prop::COMBS + field::prop::COMB_LEN * p.combs.len(),
            Extension::Supported(_, a) => {
                field::supported::ALGS + field::supported::ALG_LEN * a.len()
            }
            Extension::SpiRange(_) => field::spirange::LEN,
            Extension::ExtRegister(t) => field::ext::HEADER_LEN + t.len() + 1,
            Extension::ExtProposal(b)
            | Extension::Opaque(_, b)
            | Extension::Unknown { body: b, .. } => field::ext::HEADER_LEN + b.len(),
            Extension::KmCookie { .. } => field::km_cookie::LEN,
            Extension::Pair { .. } => field::pair::LEN,
            Extension::ReplayValue { .. } => field::replay_value::LEN,
            Extension::ExtDump { .. } => field::edump::LEN,
            Extension::Sa2 { .. } => field::sa2::LEN,
            Extension::NatTType(_) | Extension::NatTPort(..) => field::nat_t::LEN,
            Extension::SecCtx { ctx, .. } => field::sec_ctx::CTX + ctx.len(),
            Extension::Filter(_) => field::filter::LEN,
        };
        pad8(body)
    }

    /// Appends the wire form to `out`.
    pub fn emit(&self, out: &mut Vec<u8>, dialect: Dialect) -> Result<(), EncodeError> {
        let wire_type = match self {
            Extension::Unknown { wire_type, .. } => *wire_type,
            _ => {
                let kind = self.kind().unwrap_or(ExtKind::Sa);
                kind.number(dialect)
                    .ok_or_else(|| EncodeError::Unsupported {
                        feature: feature_name(kind).to_string(),
                        dialect,
                    })?
            }
        };
        let len = self.buffer_len(dialect);
        if len / WORD > u16::MAX as usize {
            return Err(EncodeError::TooLarge { bytes: len });
        }
        let start = out.len();
        out.resize(start + len, 0);
        let b = &mut out[start..];
        put_ne16(b, field::ext::LEN, (len / WORD) as u16);
        put_ne16(b, field::ext::TYPE, wire_type);
        match self {
            Extension::Sa(sa) => {
                if dialect == Dialect::Linux {
                    // Same numbers where both kernels have the algorithm;
                    // Linux PF_KEY cannot configure AEAD ones (ENOSYS).
                    if let Some(alg) = crate::alg::EncrAlg::from_id(sa.encrypt, Dialect::Illumos) {
                        if alg.id(Dialect::Linux).is_none() {
                            return Err(EncodeError::Unsupported {
                                feature: format!("encryption algorithm {}", alg.name()),
                                dialect,
                            });
                        }
                    }
                }
                b[field::sa::SPI].copy_from_slice(&sa.spi.to_be_bytes());
                b[field::sa::REPLAY] = sa.replay;
                b[field::sa::STATE] = sa.state;
                b[field::sa::AUTH] = sa.auth;
                b[field::sa::ENCRYPT] = sa.encrypt;
                let wire_flags = match dialect {
                    Dialect::Illumos => flags::to_illumos(sa.flags),
                    Dialect::Linux => flags::to_linux(sa.flags),
                }
                .map_err(|name| EncodeError::Unsupported {
                    feature: format!("SA flag {name}"),
                    dialect,
                })?;
                put_ne32(b, field::sa::FLAGS, wire_flags);
            }
            Extension::Lifetime(_, l) => {
                put_ne32(b, field::lifetime::ALLOCATIONS, l.allocations);
                put_ne64(b, field::lifetime::BYTES, l.bytes);
                put_ne64(b, field::lifetime::ADDTIME, l.addtime);
                put_ne64(b, field::lifetime::USETIME, l.usetime);
            }
            Extension::Address(_, a) => {
                b[field::address::PROTO] = a.proto;
                b[field::address::PREFIXLEN] = a.prefix_len;
                emit_sockaddr(&a.addr, &mut b[field::address::SOCKADDR..], dialect);
            }
            Extension::Key(_, k) => {
                put_ne16(b, field::key::BITS, k.bits);
                put_ne16(b, field::key::RESERVED, k.reserved);
                let m = k.material.expose();
                b[field::key::MATERIAL..field::key::MATERIAL + m.len()].copy_from_slice(m);
            }
            Extension::Identity(_, i) => {
                put_ne16(b, field::ident::TYPE, i.id_type);
                put_ne64(b, field::ident::ID, i.id);
                b[field::ident::STRING..field::ident::STRING + i.text.len()]
                    .copy_from_slice(&i.text);
            }
            Extension::Sensitivity(_, s) => {
                let sl =
                    u8::try_from(s.sens_bitmap.len()).map_err(|_| EncodeError::ValueTooLarge {
                        what: "sensitivity bitmap",
                    })?;
                let il =
                    u8::try_from(s.integ_bitmap.len()).map_err(|_| EncodeError::ValueTooLarge {
                        what: "integrity bitmap",
                    })?;
                put_ne32(b, field::sens::DPD, s.dpd);
                b[field::sens::SENS_LEVEL] = s.sens_level;
                b[field::sens::SENS_LEN] = sl;
                b[field::sens::INTEG_LEVEL] = s.integ_level;
                b[field::sens::INTEG_LEN] = il;
                put_ne32(b, field::sens::FLAGS, s.flags);
                for (i, w) in s.sens_bitmap.iter().chain(&s.integ_bitmap).enumerate() {
                    let o = field::sens::BITMAPS + i * WORD;
                    put_ne64(b, o..o + WORD, *w);
                }
            }
            Extension::Proposal(p) => {
                b[field::prop::REPLAY] = p.replay;
                for (i, c) in p.combs.iter().enumerate() {
                    emit_comb(c, &mut b[field::prop::COMBS + i * field::prop::COMB_LEN..]);
                }
            }
            Extension::Supported(_, algs) => {
                for (i, a) in algs.iter().enumerate() {
                    let o = &mut b[field::supported::ALGS + i * field::supported::ALG_LEN..];
                    o[field::supported::ALG_ID] = a.id;
                    o[field::supported::ALG_IVLEN] = a.ivlen;
                    put_ne16(o, field::supported::ALG_MINBITS, a.minbits);
                    put_ne16(o, field::supported::ALG_MAXBITS, a.maxbits);
                    o[6] = a.increment;
                    o[7] = a.saltbits;
                }
            }
            Extension::SpiRange(r) => {
                if dialect.spirange_network_order() {
                    b[field::spirange::MIN].copy_from_slice(&r.min.to_be_bytes());
                    b[field::spirange::MAX].copy_from_slice(&r.max.to_be_bytes());
                } else {
                    put_ne32(b, field::spirange::MIN, r.min);
                    put_ne32(b, field::spirange::MAX, r.max);
                }
            }
            Extension::ExtRegister(t) => {
                b[field::ext::HEADER_LEN..field::ext::HEADER_LEN + t.len()].copy_from_slice(t);
            }
            Extension::ExtProposal(body)
            | Extension::Opaque(_, body)
            | Extension::Unknown { body, .. } => {
                b[field::ext::HEADER_LEN..field::ext::HEADER_LEN + body.len()]
                    .copy_from_slice(body);
            }
            Extension::KmCookie { proto, cookie } => {
                put_ne32(b, field::km_cookie::PROTO, *proto);
                put_ne64(b, field::km_cookie::COOKIE, *cookie);
            }
            Extension::Pair { spi } => b[field::pair::SPI].copy_from_slice(&spi.to_be_bytes()),
            Extension::ReplayValue { r32, r64 } => {
                put_ne32(b, field::replay_value::R32, *r32);
                put_ne64(b, field::replay_value::R64, *r64);
            }
            Extension::ExtDump { timeout } => put_ne64(b, field::edump::TIMEOUT, *timeout),
            Extension::Sa2 {
                mode,
                sequence,
                reqid,
            } => {
                b[field::sa2::MODE] = *mode;
                put_ne32(b, field::sa2::SEQUENCE, *sequence);
                put_ne32(b, field::sa2::REQID, *reqid);
            }
            Extension::NatTType(t) => b[field::nat_t::TYPE] = *t,
            Extension::NatTPort(_, p) => b[field::nat_t::PORT].copy_from_slice(&p.to_be_bytes()),
            Extension::SecCtx { alg, doi, ctx } => {
                let l = u16::try_from(ctx.len()).map_err(|_| EncodeError::ValueTooLarge {
                    what: "security context",
                })?;
                b[field::sec_ctx::ALG] = *alg;
                b[field::sec_ctx::DOI] = *doi;
                put_ne16(b, field::sec_ctx::CTX_LEN, l);
                b[field::sec_ctx::CTX..field::sec_ctx::CTX + ctx.len()].copy_from_slice(ctx);
            }
            Extension::Filter(f) => {
                b[field::filter::SADDR].copy_from_slice(&f.saddr);
                b[field::filter::DADDR].copy_from_slice(&f.daddr);
                put_ne16(b, field::filter::FAMILY, f.family);
                b[field::filter::SPLEN] = f.splen;
                b[field::filter::DPLEN] = f.dplen;
            }
        }
        Ok(())
    }
}

impl From<SaExt> for Extension {
    fn from(sa: SaExt) -> Extension {
        Extension::Sa(sa)
    }
}

/// What a user calls the feature behind an extension, for "not supported" errors.
pub fn feature_name(kind: ExtKind) -> &'static str {
    match kind {
        ExtKind::Pair => "SA pairing (pair-spi)",
        ExtKind::ReplayValue => "replay_value",
        ExtKind::LifetimeIdle => "idle lifetimes (idle_addtime/idle_usetime)",
        ExtKind::KmCookie => "key-management cookie",
        ExtKind::AddressInnerDst => "inner destination address (idst)",
        ExtKind::AddressNattLoc => "NAT-T local address (nat_loc)",
        ExtKind::AddressNattRem => "NAT-T remote address (nat_rem)",
        ExtKind::ExtDump => "extended dump (X_EDUMP)",
        ExtKind::ExtRegister => "extended register (X_EREG)",
        ExtKind::ExtProposal => "extended proposal (X_EPROP)",
        ExtKind::OuterSensitivity => "outer sensitivity label",
        ExtKind::KmPrivate => "key-management private data (X_KMPRIVATE)",
        ExtKind::Policy => "security policy extension (X_POLICY)",
        ExtKind::Sa2 => "SA mode/reqid extension (X_SA2)",
        ExtKind::NatTType | ExtKind::NatTSport | ExtKind::NatTDport | ExtKind::NatTOa => {
            "Linux NAT-T extensions"
        }
        ExtKind::SecCtx => "security context (X_SEC_CTX)",
        ExtKind::KmAddress => "key-management addresses (X_KMADDRESS)",
        ExtKind::Filter => "dump filter (X_FILTER)",
        _ => "this extension",
    }
}

fn parse_address(kind: ExtKind, b: &[u8], dialect: Dialect) -> Result<Address, WireError> {
    let sa = field::address::SOCKADDR;
    if b.len() < sa + 2 {
        return Err(WireError::ExtTooShort {
            kind,
            min: sa + 2,
            got: b.len(),
        });
    }
    let s = &b[sa..];
    let family = ne_u16(s, field::sockaddr::FAMILY);
    let prefix_len = b[field::address::PREFIXLEN];
    let addr = if family == AF_INET {
        if s.len() < SOCKADDR_IN_LEN {
            return Err(WireError::ShortSockaddr {
                kind,
                family,
                need: SOCKADDR_IN_LEN,
                have: s.len(),
            });
        }
        if prefix_len > 32 {
            return Err(WireError::PrefixTooLong {
                kind,
                prefix: prefix_len,
            });
        }
        let mut a = [0u8; 4];
        a.copy_from_slice(&s[field::sockaddr::IN_ADDR]);
        SockAddr::new(
            IpAddr::V4(Ipv4Addr::from(a)),
            be_u16(s, field::sockaddr::PORT),
        )
    } else if family == dialect.af_inet6() {
        let need = dialect.sockaddr_in6_len();
        if s.len() < need {
            return Err(WireError::ShortSockaddr {
                kind,
                family,
                need,
                have: s.len(),
            });
        }
        if prefix_len > 128 {
            return Err(WireError::PrefixTooLong {
                kind,
                prefix: prefix_len,
            });
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&s[field::sockaddr::IN6_ADDR]);
        SockAddr {
            ip: IpAddr::V6(Ipv6Addr::from(a)),
            port: be_u16(s, field::sockaddr::PORT),
            flowinfo: ne_u32(s, field::sockaddr::IN6_FLOWINFO),
            scope_id: ne_u32(s, field::sockaddr::IN6_SCOPE_ID),
            src_id: match dialect {
                Dialect::Illumos => ne_u32(s, field::sockaddr::IN6_SRC_ID),
                Dialect::Linux => 0,
            },
        }
    } else {
        return Err(WireError::BadAddressFamily { kind, family });
    };
    Ok(Address {
        proto: b[field::address::PROTO],
        prefix_len,
        addr,
    })
}

fn sockaddr_len(a: &SockAddr, dialect: Dialect) -> usize {
    match a.ip {
        IpAddr::V4(_) => SOCKADDR_IN_LEN,
        IpAddr::V6(_) => dialect.sockaddr_in6_len(),
    }
}

fn emit_sockaddr(a: &SockAddr, s: &mut [u8], dialect: Dialect) {
    s[field::sockaddr::PORT].copy_from_slice(&a.port.to_be_bytes());
    match a.ip {
        IpAddr::V4(v4) => {
            put_ne16(s, field::sockaddr::FAMILY, AF_INET);
            s[field::sockaddr::IN_ADDR].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            put_ne16(s, field::sockaddr::FAMILY, dialect.af_inet6());
            put_ne32(s, field::sockaddr::IN6_FLOWINFO, a.flowinfo);
            s[field::sockaddr::IN6_ADDR].copy_from_slice(&v6.octets());
            put_ne32(s, field::sockaddr::IN6_SCOPE_ID, a.scope_id);
            if dialect == Dialect::Illumos {
                put_ne32(s, field::sockaddr::IN6_SRC_ID, a.src_id);
            }
        }
    }
}

fn parse_comb(c: &[u8]) -> Comb {
    Comb {
        auth: c[0],
        encrypt: c[1],
        flags: ne_u16(c, 2..4),
        auth_minbits: ne_u16(c, 4..6),
        auth_maxbits: ne_u16(c, 6..8),
        encrypt_minbits: ne_u16(c, 8..10),
        encrypt_maxbits: ne_u16(c, 10..12),
        reserved: ne_u32(c, 12..16),
        soft_allocations: ne_u32(c, 16..20),
        hard_allocations: ne_u32(c, 20..24),
        soft_bytes: ne_u64(c, 24..32),
        hard_bytes: ne_u64(c, 32..40),
        soft_addtime: ne_u64(c, 40..48),
        hard_addtime: ne_u64(c, 48..56),
        soft_usetime: ne_u64(c, 56..64),
        hard_usetime: ne_u64(c, 64..72),
    }
}

fn emit_comb(c: &Comb, o: &mut [u8]) {
    o[0] = c.auth;
    o[1] = c.encrypt;
    put_ne16(o, 2..4, c.flags);
    put_ne16(o, 4..6, c.auth_minbits);
    put_ne16(o, 6..8, c.auth_maxbits);
    put_ne16(o, 8..10, c.encrypt_minbits);
    put_ne16(o, 10..12, c.encrypt_maxbits);
    put_ne32(o, 12..16, c.reserved);
    put_ne32(o, 16..20, c.soft_allocations);
    put_ne32(o, 20..24, c.hard_allocations);
    put_ne64(o, 24..32, c.soft_bytes);
    put_ne64(o, 32..40, c.hard_bytes);
    put_ne64(o, 40..48, c.soft_addtime);
    put_ne64(o, 48..56, c.hard_addtime);
    put_ne64(o, 56..64, c.soft_usetime);
    put_ne64(o, 64..72, c.hard_usetime);
}

fn put_ne16(b: &mut [u8], f: field::Field, v: u16) {
    b[f].copy_from_slice(&v.to_ne_bytes());
}
fn put_ne32(b: &mut [u8], f: field::Field, v: u32) {
    b[f].copy_from_slice(&v.to_ne_bytes());
}
fn put_ne64(b: &mut [u8], f: field::Field, v: u64) {
    b[f].copy_from_slice(&v.to_ne_bytes());
}

/// A whole PF_KEY message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msg_type: MsgType,
    /// `sadb_msg_errno`, in the sending kernel's errno numbering.
    pub errno: u8,
    pub satype: u8,
    /// `sadb_msg_reserved`: 0 in requests; the diagnostic code in illumos
    /// error replies; kernel refcounts elsewhere. Kept verbatim.
    pub reserved: u16,
    pub seq: u32,
    pub pid: u32,
    /// Extensions in wire order.
    pub exts: Vec<Extension>,
}

impl Message {
    /// A message with no extensions.
    pub fn new(msg_type: MsgType, satype: u8, seq: u32, pid: u32) -> Message {
        Message {
            msg_type,
            errno: 0,
            satype,
            reserved: 0,
            seq,
            pid,
            exts: Vec::new(),
        }
    }

    /// Adds an extension (builder style).
    pub fn with(mut self, ext: impl Into<Extension>) -> Message {
        self.exts.push(ext.into());
        self
    }

    /// Decodes `bytes` in `dialect`. Duplicate extensions are an error, as
    /// in every kernel; unknown ones are kept as [`Extension::Unknown`].
    pub fn parse(bytes: &[u8], dialect: Dialect) -> Result<Message, WireError> {
        let view = MsgView::new_checked(bytes)?;
        let msg_type = MsgType::from_number(view.msg_type(), dialect)
            .ok_or(WireError::UnknownMsgType(view.msg_type()))?;
        let mut exts = Vec::new();
        let mut seen = HashSet::new();
        for raw in view.extensions() {
            let raw = raw?;
            let ext = Extension::parse(&raw, dialect)?;
            if let Some(kind) = ext.kind() {
                if !seen.insert(kind) {
                    return Err(WireError::DuplicateExt(kind));
                }
            }
            exts.push(ext);
        }
        Ok(Message {
            msg_type,
            errno: view.errno(),
            satype: view.satype(),
            reserved: view.reserved(),
            seq: view.seq(),
            pid: view.pid(),
            exts,
        })
    }

    /// Total bytes on the wire.
    pub fn buffer_len(&self, dialect: Dialect) -> usize {
        BASE_LEN
            + self
                .exts
                .iter()
                .map(|e| e.buffer_len(dialect))
                .sum::<usize>()
    }

    /// Encodes the message in `dialect`. A feature the dialect cannot
    /// express is an error that names it.
    pub fn emit(&self, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
        let msg_type = self
            .msg_type
            .number(dialect)
            .ok_or_else(|| EncodeError::Unsupported {
                feature: format!("message type {:?}", self.msg_type),
                dialect,
            })?;
        let total = self.buffer_len(dialect);
        if total / WORD > u16::MAX as usize {
            return Err(EncodeError::TooLarge { bytes: total });
        }
        let mut out = Vec::with_capacity(total);
        out.resize(BASE_LEN, 0);
        out[field::msg::VERSION] = PF_KEY_V2;
        out[field::msg::TYPE] = msg_type;
        out[field::msg::ERRNO] = self.errno;
        out[field::msg::SATYPE] = self.satype;
        put_ne16(&mut out, field::msg::LEN, (total / WORD) as u16);
        put_ne16(&mut out, field::msg::RESERVED, self.reserved);
        put_ne32(&mut out, field::msg::SEQ, self.seq);
        put_ne32(&mut out, field::msg::PID, self.pid);
        for e in &self.exts {
            e.emit(&mut out, dialect)?;
        }
        Ok(out)
    }

    /// The first extension of `kind`.
    pub fn ext(&self, kind: ExtKind) -> Option<&Extension> {
        self.exts.iter().find(|e| e.kind() == Some(kind))
    }

    pub fn has(&self, kind: ExtKind) -> bool {
        self.ext(kind).is_some()
    }

    pub fn sa(&self) -> Option<&SaExt> {
        match self.ext(ExtKind::Sa) {
            Some(Extension::Sa(sa)) => Some(sa),
            _ => None,
        }
    }

    pub fn sa_mut(&mut self) -> Option<&mut SaExt> {
        self.exts.iter_mut().find_map(|e| match e {
            Extension::Sa(sa) => Some(sa),
            _ => None,
        })
    }

    pub fn address(&self, kind: ExtKind) -> Option<&Address> {
        match self.ext(kind) {
            Some(Extension::Address(_, a)) => Some(a),
            _ => None,
        }
    }

    pub fn lifetime(&self, kind: ExtKind) -> Option<&Lifetime> {
        match self.ext(kind) {
            Some(Extension::Lifetime(_, l)) => Some(l),
            _ => None,
        }
    }

    pub fn key(&self, kind: ExtKind) -> Option<&Key> {
        match self.ext(kind) {
            Some(Extension::Key(_, k)) => Some(k),
            _ => None,
        }
    }

    /// Removes every extension of `kind`.
    pub fn remove(&mut self, kind: ExtKind) {
        self.exts.retain(|e| e.kind() != Some(kind));
    }
}
