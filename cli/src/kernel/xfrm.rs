//! Linux XFRM netlink (`NETLINK_XFRM`), what `ip xfrm` speaks: the kernel
//! interface that stays when PF_KEY goes (Linux announced its removal for
//! 2027) and the only one that configures AEAD algorithms and RFC 4868
//! ICV lengths.
//!
//! The front end's PF_KEY requests map onto XFRM state messages: ADD ->
//! `XFRM_MSG_NEWSA`, UPDATE -> `XFRM_MSG_GETSA` then `XFRM_MSG_UPDSA` (XFRM
//! replaces a whole state, so the current one is read and only the
//! lifetimes change, as an illumos UPDATE does), DELETE -> `XFRM_MSG_DELSA`,
//! GET -> `XFRM_MSG_GETSA`, FLUSH -> `XFRM_MSG_FLUSHSA`, DUMP -> a
//! `XFRM_MSG_GETSA` dump, monitor -> the `XFRMNLGRP_SA` and
//! `XFRMNLGRP_EXPIRE` multicast groups. Answers come back as the PF_KEY
//! messages the simulator would send, so one set of printers serves both.
//!
//! The message bodies are `netlink-packet-xfrm`'s (rust-netlink); the
//! 16-byte netlink header is framed here, with its lengths checked before
//! a body is handed to the crate.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_xfrm::state::{DelGetMessage, FlushMessage, ModifyMessage};
use netlink_packet_xfrm::{
    Address as XAddress, Alg, AlgAead, AlgAuth, EncapTmpl, LifetimeConfig, Selector, UserSaId,
    UserSaInfo, XfrmAttrs, XFRMNLGRP_EXPIRE, XFRMNLGRP_SA, XFRM_INF, XFRM_MODE_TRANSPORT,
    XFRM_MODE_TUNNEL,
};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::errno::Errno;
use sadb::key::KeyMaterial;
use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Key, Lifetime, Message, MsgType, SaExt,
    SaState, SockAddr,
};
use sadb::Diagnostic;
use zeroize::Zeroize;

use super::linux::{
    common_refusals, errno_to_illumos, is_local, natt_linux_order, unmap, Refusal, NATT_PORT,
};
use super::{open_error, KernelKind};
use crate::transport::Transport;

/// The kernel named in XFRM refusals.
pub const LINUX_XFRM: &str = "the Linux kernel's XFRM interface";

// Netlink and XFRM numbers (linux/netlink.h, linux/xfrm.h).
const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
pub const XFRM_MSG_NEWSA: u16 = 0x10;
pub const XFRM_MSG_DELSA: u16 = 0x11;
pub const XFRM_MSG_GETSA: u16 = 0x12;
pub const XFRM_MSG_EXPIRE: u16 = 0x18;
pub const XFRM_MSG_UPDSA: u16 = 0x1a;
pub const XFRM_MSG_FLUSHSA: u16 = 0x1c;
const IPPROTO_ESP: u8 = 50;
const IPPROTO_AH: u8 = 51;
const IPSEC_PROTO_ANY: u8 = 255;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const UDP_ENCAP_ESPINUDP: u16 = 2;
const USER_SA_INFO_LEN: usize = 224;
const USER_SA_ID_LEN: usize = 24;
const USER_EXPIRE_LEN: usize = 232;

/// The kernel's name of an authentication algorithm and the ICV length in
/// bits this front end asks for: RFC 2403/2404 96, RFC 4868 half the digest.
pub fn auth_name(a: AuthAlg) -> Option<(&'static str, u32)> {
    let name = match a {
        AuthAlg::None => return None,
        AuthAlg::HmacMd5 => "hmac(md5)",
        AuthAlg::HmacSha1 => "hmac(sha1)",
        AuthAlg::HmacSha256 => "hmac(sha256)",
        AuthAlg::HmacSha384 => "hmac(sha384)",
        AuthAlg::HmacSha512 => "hmac(sha512)",
    };
    Some((name, (a.icv_len() * 8) as u32))
}

/// How the kernel names an encryption algorithm.
pub enum CryptName {
    /// `XFRMA_ALG_CRYPT`.
    Cipher(&'static str),
    /// `XFRMA_ALG_AEAD` with its ICV length in bits.
    Aead(&'static str, u32),
}

/// The kernel's name (`net/xfrm/xfrm_algo.c`) of an encryption algorithm.
pub fn crypt_name(e: EncrAlg) -> Option<CryptName> {
    let icv = (e.icv_len() * 8) as u32;
    Some(match e {
        EncrAlg::None => return None,
        EncrAlg::DesCbc => CryptName::Cipher("cbc(des)"),
        EncrAlg::TripleDesCbc => CryptName::Cipher("cbc(des3_ede)"),
        EncrAlg::BlowfishCbc => CryptName::Cipher("cbc(blowfish)"),
        EncrAlg::Null => CryptName::Cipher("ecb(cipher_null)"),
        EncrAlg::AesCbc => CryptName::Cipher("cbc(aes)"),
        EncrAlg::AesCtr => CryptName::Cipher("rfc3686(ctr(aes))"),
        EncrAlg::AesCcm8 | EncrAlg::AesCcm12 | EncrAlg::AesCcm16 => {
            CryptName::Aead("rfc4309(ccm(aes))", icv)
        }
        EncrAlg::AesGcm8 | EncrAlg::AesGcm12 | EncrAlg::AesGcm16 => {
            CryptName::Aead("rfc4106(gcm(aes))", icv)
        }
        EncrAlg::AesGmac => CryptName::Aead("rfc4543(gcm(aes))", icv),
        EncrAlg::ChaCha20Poly1305 => CryptName::Aead("rfc7539esp(chacha20,poly1305)", icv),
    })
}

fn name_bytes(s: &str) -> [u8; 64] {
    let mut b = [0u8; 64];
    let n = s.len().min(63);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

fn name_str(b: &[u8; 64]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap_or("")
}

fn auth_from_name(name: &str) -> Option<AuthAlg> {
    AuthAlg::ALL
        .iter()
        .copied()
        .find(|a| auth_name(*a).is_some_and(|(n, _)| n == name))
}

fn crypt_from_name(name: &str, icv_bits: Option<u32>) -> Option<EncrAlg> {
    EncrAlg::ALL
        .iter()
        .copied()
        .find(|e| match (crypt_name(*e), icv_bits) {
            (Some(CryptName::Cipher(n)), None) => n == name,
            (Some(CryptName::Aead(n, icv)), Some(i)) => n == name && icv == i,
            _ => false,
        })
}

fn proto_of(sat: u8) -> Option<u8> {
    match sat {
        satype::ESP => Some(IPPROTO_ESP),
        satype::AH => Some(IPPROTO_AH),
        _ => None,
    }
}

fn satype_of(proto: u8) -> u8 {
    match proto {
        IPPROTO_ESP => satype::ESP,
        IPPROTO_AH => satype::AH,
        _ => satype::UNSPEC,
    }
}

fn family(ip: IpAddr) -> u16 {
    if ip.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

fn ip_of(a: &XAddress, fam: u16) -> IpAddr {
    if fam == AF_INET {
        IpAddr::V4(a.to_ipv4())
    } else {
        IpAddr::V6(a.to_ipv6())
    }
}

fn limit(v: u64) -> u64 {
    if v == 0 {
        XFRM_INF
    } else {
        v
    }
}

fn unlimit(v: u64) -> u64 {
    if v == XFRM_INF {
        0
    } else {
        v
    }
}

fn refuse(feature: impl Into<String>) -> Refusal {
    Refusal {
        feature: feature.into(),
        kernel: LINUX_XFRM,
    }
}

/// Checks a request before anything is sent; `Ok` carries notes.
pub fn vet(msg: &Message) -> Result<Vec<String>, Refusal> {
    common_refusals(msg, LINUX_XFRM)?;
    match msg.msg_type {
        MsgType::Add | MsgType::Update | MsgType::Delete | MsgType::Get => {
            if proto_of(msg.satype).is_none() {
                return Err(refuse(format!("SA type {}", msg.satype)));
            }
        }
        MsgType::Flush | MsgType::Dump | MsgType::Promisc => {}
        other => return Err(refuse(format!("the PF_KEY message {other:?}"))),
    }
    if msg.msg_type == MsgType::Add {
        sa_request(msg)?;
    }
    if msg.msg_type == MsgType::Update
        && (msg.has(ExtKind::KeyAuth) || msg.has(ExtKind::KeyEncrypt))
    {
        return Err(refuse(
            "changing keys with update (delete the SA and add it again)",
        ));
    }
    Ok(Vec::new())
}

/// An ADD (or the merged UPDATE) as an XFRM state: `xfrm_usersa_info` plus
/// attributes.
pub fn sa_request(msg: &Message) -> Result<ModifyMessage, Refusal> {
    let sa = msg
        .sa()
        .ok_or_else(|| refuse("an SA without its SA extension"))?;
    let proto = proto_of(msg.satype).ok_or_else(|| refuse(format!("SA type {}", msg.satype)))?;
    let dst = msg
        .address(ExtKind::AddressDst)
        .map(unmap)
        .ok_or_else(|| refuse("an SA without dst"))?;
    let src = msg
        .address(ExtKind::AddressSrc)
        .map(unmap)
        .map(|a| a.addr.ip)
        // ipseckey sends `::` when no source was typed.
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or_else(|| super::linux::unspecified_like(dst.addr.ip));
    if src.is_ipv4() != dst.addr.ip.is_ipv4() {
        return Err(refuse("src and dst of different address families"));
    }
    let tunnel = sa.flags & flags::X_TUNNEL != 0;
    let mut info = UserSaInfo::default();
    info.id.daddr = XAddress::from_ip(&dst.addr.ip);
    info.id.spi = sa.spi;
    info.id.proto = proto;
    info.saddr = XAddress::from_ip(&src);
    info.family = family(dst.addr.ip);
    info.mode = if tunnel {
        XFRM_MODE_TUNNEL
    } else {
        XFRM_MODE_TRANSPORT
    };
    info.replay_window = sa.replay;
    let hard = msg
        .lifetime(ExtKind::LifetimeHard)
        .copied()
        .unwrap_or_default();
    let soft = msg
        .lifetime(ExtKind::LifetimeSoft)
        .copied()
        .unwrap_or_default();
    info.lifetime_cfg = LifetimeConfig {
        soft_byte_limit: limit(soft.bytes),
        hard_byte_limit: limit(hard.bytes),
        soft_packet_limit: limit(u64::from(soft.allocations)),
        hard_packet_limit: limit(u64::from(hard.allocations)),
        soft_add_expires_seconds: soft.addtime,
        hard_add_expires_seconds: hard.addtime,
        soft_use_expires_seconds: soft.usetime,
        hard_use_expires_seconds: hard.usetime,
    };
    info.selector = selector(msg, tunnel, src, &dst);
    let mut nlas = Vec::new();
    if let Some(a) = AuthAlg::from_id(sa.auth, Dialect::Illumos) {
        if let Some((name, trunc)) = auth_name(a) {
            let k = msg.key(ExtKind::KeyAuth);
            nlas.push(XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
                alg_name: name_bytes(name),
                alg_key_len: k.map(|k| u32::from(k.bits)).unwrap_or(0),
                alg_trunc_len: trunc,
                alg_key: k.map(|k| k.material.expose().to_vec()).unwrap_or_default(),
            }));
        }
    } else {
        return Err(refuse(format!("authentication algorithm {}", sa.auth)));
    }
    if proto == IPPROTO_ESP {
        let e = EncrAlg::from_id(sa.encrypt, Dialect::Illumos)
            .ok_or_else(|| refuse(format!("encryption algorithm {}", sa.encrypt)))?;
        let k = msg.key(ExtKind::KeyEncrypt);
        let key_len = k.map(|k| u32::from(k.bits)).unwrap_or(0);
        let key = k.map(|k| k.material.expose().to_vec()).unwrap_or_default();
        match crypt_name(e) {
            Some(CryptName::Cipher(name)) => nlas.push(XfrmAttrs::EncryptionAlg(Alg {
                alg_name: name_bytes(name),
                alg_key_len: key_len,
                alg_key: key,
            })),
            Some(CryptName::Aead(name, icv)) => nlas.push(XfrmAttrs::EncryptionAlgAead(AlgAead {
                alg_name: name_bytes(name),
                alg_key_len: key_len,
                alg_icv_len: icv,
                alg_key: key,
            })),
            None => {}
        }
    }
    if sa.flags & (flags::X_NATT_LOC | flags::X_NATT_REM) != 0 {
        if proto != IPPROTO_ESP {
            return Err(refuse("NAT-T encapsulation of AH"));
        }
        let port = |k| {
            msg.address(k)
                .map(|a| a.addr.port)
                .filter(|p| *p != 0)
                .unwrap_or(NATT_PORT)
        };
        // This host's port and the peer's, as the SA's (source, destination).
        let (encap_sport, encap_dport) = natt_linux_order(
            (port(ExtKind::AddressNattLoc), port(ExtKind::AddressNattRem)),
            is_local(dst.addr.ip),
        );
        nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
            encap_type: UDP_ENCAP_ESPINUDP,
            encap_sport,
            encap_dport,
            encap_oa: XAddress::default(),
        }));
    }
    Ok(ModifyMessage {
        user_sa_info: info,
        nlas,
    })
}

/// The SA's selector: the inner addresses of a tunnel, or the outer ones
/// when ports or a protocol narrow a transport SA; else none.
fn selector(msg: &Message, tunnel: bool, src: IpAddr, dst: &Address) -> Selector {
    let mut sel = Selector::default();
    let set = |sel: &mut Selector, s: Option<Address>, d: Option<Address>| {
        let pick = |a: &Address| {
            let mapped = matches!(a.addr.ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            let ip = a.addr.ip.to_canonical();
            let full = if ip.is_ipv4() { 32 } else { 128 };
            let p = match a.prefix_len {
                0 => full,
                p if mapped => p.saturating_sub(96),
                p => p,
            };
            (ip, p, a.addr.port)
        };
        if let Some(a) = s {
            let (ip, p, port) = pick(&a);
            sel.source_prefix(&ip, p);
            sel.family = family(ip);
            if port != 0 {
                sel.sport = port;
                sel.sport_mask = 0xffff;
            }
            sel.proto = a.proto;
        }
        if let Some(a) = d {
            let (ip, p, port) = pick(&a);
            sel.destination_prefix(&ip, p);
            sel.family = family(ip);
            if port != 0 {
                sel.dport = port;
                sel.dport_mask = 0xffff;
            }
            sel.proto = a.proto;
        }
    };
    if tunnel {
        let is = msg.address(ExtKind::AddressInnerSrc).copied();
        let id = msg.address(ExtKind::AddressInnerDst).copied();
        // An unspecified inner address with prefix 0 means "any".
        let real =
            |a: Option<Address>| a.filter(|a| !(a.addr.ip.is_unspecified() && a.prefix_len == 0));
        set(&mut sel, real(is), real(id));
    } else if dst.proto != 0
        || dst.addr.port != 0
        || msg
            .address(ExtKind::AddressSrc)
            .is_some_and(|a| a.addr.port != 0)
    {
        let s = msg
            .address(ExtKind::AddressSrc)
            .map(unmap)
            .unwrap_or(Address::new(src, 0, dst.proto));
        set(&mut sel, Some(s), Some(*dst));
    }
    sel
}

/// An XFRM state (from a GETSA answer, a dump or a notification) as the
/// PF_KEY message the simulator would send about it.
pub fn sa_message(
    msg_type: MsgType,
    seq: u32,
    pid: u32,
    info: &UserSaInfo,
    nlas: &[XfrmAttrs],
) -> Message {
    let fam = info.family;
    let mut auth = AuthAlg::None;
    let mut encr = None;
    let mut auth_key = None;
    let mut encr_key: Option<(u32, Vec<u8>)> = None;
    let mut encap = None;
    for n in nlas {
        match n {
            XfrmAttrs::AuthenticationAlgTrunc(a) => {
                auth = auth_from_name(name_str(&a.alg_name)).unwrap_or(AuthAlg::None);
                auth_key = Some((a.alg_key_len, a.alg_key.clone()));
            }
            XfrmAttrs::AuthenticationAlg(a) if auth_key.is_none() => {
                auth = auth_from_name(name_str(&a.alg_name)).unwrap_or(AuthAlg::None);
                auth_key = Some((a.alg_key_len, a.alg_key.clone()));
            }
            XfrmAttrs::EncryptionAlg(a) => {
                encr = crypt_from_name(name_str(&a.alg_name), None);
                encr_key = Some((a.alg_key_len, a.alg_key.clone()));
            }
            XfrmAttrs::EncryptionAlgAead(a) => {
                encr = crypt_from_name(name_str(&a.alg_name), Some(a.alg_icv_len));
                encr_key = Some((a.alg_key_len, a.alg_key.clone()));
            }
            XfrmAttrs::EncapsulationTemplate(t) => encap = Some(*t),
            _ => {}
        }
    }
    let mut fl = 0u64;
    if info.mode == XFRM_MODE_TUNNEL {
        fl |= flags::X_TUNNEL;
    }
    if encap.is_some() {
        fl |= flags::X_NATT_LOC | flags::X_NATT_REM;
    }
    let sat = satype_of(info.id.proto);
    let mut m = Message::new(msg_type, sat, seq, pid);
    m.exts.push(Extension::Sa(SaExt {
        spi: info.id.spi,
        replay: info.replay_window,
        state: SaState::Mature as u8,
        auth: auth.id(Dialect::Illumos).unwrap_or(0),
        encrypt: encr.and_then(|e| e.id(Dialect::Illumos)).unwrap_or(0),
        flags: fl,
    }));
    let cur = &info.lifetime_cur;
    m.exts.push(Extension::Lifetime(
        ExtKind::LifetimeCurrent,
        Lifetime {
            allocations: u32::try_from(cur.packets).unwrap_or(u32::MAX),
            bytes: cur.bytes,
            addtime: cur.add_time,
            usetime: cur.use_time,
        },
    ));
    let c = &info.lifetime_cfg;
    let hard = Lifetime {
        allocations: u32::try_from(unlimit(c.hard_packet_limit)).unwrap_or(u32::MAX),
        bytes: unlimit(c.hard_byte_limit),
        addtime: c.hard_add_expires_seconds,
        usetime: c.hard_use_expires_seconds,
    };
    let soft = Lifetime {
        allocations: u32::try_from(unlimit(c.soft_packet_limit)).unwrap_or(u32::MAX),
        bytes: unlimit(c.soft_byte_limit),
        addtime: c.soft_add_expires_seconds,
        usetime: c.soft_use_expires_seconds,
    };
    if !hard.is_zero() {
        m.exts
            .push(Extension::Lifetime(ExtKind::LifetimeHard, hard));
    }
    if !soft.is_zero() {
        m.exts
            .push(Extension::Lifetime(ExtKind::LifetimeSoft, soft));
    }
    let sel = &info.selector;
    let transport_ports = info.mode != XFRM_MODE_TUNNEL && sel.family != 0;
    let (sport, dport, proto) = if transport_ports {
        (sel.sport, sel.dport, sel.proto)
    } else {
        (0, 0, 0)
    };
    m.exts.push(Extension::Address(
        ExtKind::AddressSrc,
        Address::new(ip_of(&info.saddr, fam), sport, proto),
    ));
    m.exts.push(Extension::Address(
        ExtKind::AddressDst,
        Address::new(ip_of(&info.id.daddr, fam), dport, proto),
    ));
    if let Some(t) = encap {
        let (loc, rem) = natt_linux_order(
            (t.encap_sport, t.encap_dport),
            is_local(ip_of(&info.id.daddr, fam)),
        );
        for (kind, port) in [
            (ExtKind::AddressNattLoc, loc),
            (ExtKind::AddressNattRem, rem),
        ] {
            m.exts.push(Extension::Address(
                kind,
                Address::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port, 0),
            ));
        }
    }
    if info.mode == XFRM_MODE_TUNNEL && sel.family != 0 {
        for (kind, a, plen, port) in [
            (
                ExtKind::AddressInnerSrc,
                &sel.saddr,
                sel.prefixlen_s,
                sel.sport,
            ),
            (
                ExtKind::AddressInnerDst,
                &sel.daddr,
                sel.prefixlen_d,
                sel.dport,
            ),
        ] {
            m.exts.push(Extension::Address(
                kind,
                Address {
                    proto: sel.proto,
                    prefix_len: plen,
                    addr: SockAddr::new(ip_of(a, sel.family), port),
                },
            ));
        }
    }
    if let Some((bits, mut key)) = auth_key {
        if !key.is_empty() {
            m.exts.push(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: u16::try_from(bits).unwrap_or(u16::MAX),
                    reserved: 0,
                    material: KeyMaterial::from_slice(&key),
                },
            ));
        }
        key.zeroize();
    }
    if let Some((bits, mut key)) = encr_key {
        if !key.is_empty() {
            let salt = encr.map(|e| e.salt_bits()).unwrap_or(0);
            let bits = u16::try_from(bits).unwrap_or(u16::MAX);
            m.exts.push(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: bits.saturating_sub(salt),
                    reserved: salt,
                    material: KeyMaterial::from_slice(&key),
                },
            ));
        }
        key.zeroize();
    }
    m
}

/// Overwrites the key bytes the crate's structures hold.
fn scrub(nlas: &mut [XfrmAttrs]) {
    for n in nlas {
        match n {
            XfrmAttrs::AuthenticationAlgTrunc(a) => a.alg_key.zeroize(),
            XfrmAttrs::AuthenticationAlg(a) | XfrmAttrs::EncryptionAlg(a) => a.alg_key.zeroize(),
            XfrmAttrs::EncryptionAlgAead(a) => a.alg_key.zeroize(),
            _ => {}
        }
    }
}

/// The `xfrm_usersa_id` of a GET or DELETE.
pub fn sa_id(msg: &Message) -> Option<UserSaId> {
    let dst = msg.address(ExtKind::AddressDst).map(unmap)?;
    let mut id = UserSaId::default();
    id.destination(&dst.addr.ip);
    id.spi = msg.sa()?.spi;
    id.proto = proto_of(msg.satype)?;
    id.family = family(dst.addr.ip);
    Some(id)
}

/// One netlink message: type, flags, seq, portid and body.
#[derive(Debug, Clone)]
pub struct NlMsg {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub body: Vec<u8>,
}

/// A request's bytes.
pub fn frame(ty: u16, fl: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + body.len();
    let mut b = Vec::with_capacity(len.div_ceil(4) * 4);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&fl.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(body);
    b.resize(len.div_ceil(4) * 4, 0);
    b
}

/// Splits a datagram into netlink messages; stops at the first one whose
/// length does not fit.
pub fn split(mut b: &[u8]) -> Vec<NlMsg> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDR {
        let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u16_at = |o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
        let len = u32_at(0) as usize;
        if len < NLMSG_HDR || len > b.len() {
            break;
        }
        out.push(NlMsg {
            ty: u16_at(4),
            flags: u16_at(6),
            seq: u32_at(8),
            pid: u32_at(12),
            body: b[NLMSG_HDR..len].to_vec(),
        });
        let next = len.div_ceil(4) * 4;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    out
}

/// The errno of an `NLMSG_ERROR` body (0 = acknowledgement).
fn nl_errno(body: &[u8]) -> Option<i32> {
    let b: [u8; 4] = body.get(..4)?.try_into().ok()?;
    Some(-i32::from_ne_bytes(b))
}

fn parse_state(body: &[u8]) -> Option<ModifyMessage> {
    if body.len() < USER_SA_INFO_LEN {
        return None;
    }
    ModifyMessage::parse(body).ok()
}

/// A notification from the `XFRMNLGRP_SA`/`EXPIRE` groups as the PF_KEY
/// broadcast Linux PF_KEY would send, or `None` for other messages.
pub fn notification(m: &NlMsg) -> Option<Message> {
    match m.ty {
        XFRM_MSG_NEWSA | XFRM_MSG_UPDSA => {
            let s = parse_state(&m.body)?;
            let ty = if m.ty == XFRM_MSG_NEWSA {
                MsgType::Add
            } else {
                MsgType::Update
            };
            Some(sa_message(ty, m.seq, m.pid, &s.user_sa_info, &s.nlas))
        }
        XFRM_MSG_DELSA => {
            if m.body.len() < USER_SA_ID_LEN {
                return None;
            }
            let d = DelGetMessage::parse(&m.body).ok()?;
            // The kernel appends the whole state as XFRMA_SA.
            let full = d.nlas.iter().find_map(|n| match n {
                XfrmAttrs::SaInfo(i) => Some(*i),
                _ => None,
            });
            match full {
                Some(info) => Some(sa_message(MsgType::Delete, m.seq, m.pid, &info, &[])),
                None => {
                    let id = d.user_sa_id;
                    let mut out = Message::new(MsgType::Delete, satype_of(id.proto), m.seq, m.pid);
                    out.exts.push(Extension::Sa(SaExt {
                        spi: id.spi,
                        ..SaExt::default()
                    }));
                    out.exts.push(Extension::Address(
                        ExtKind::AddressDst,
                        Address::new(ip_of(&id.daddr, id.family), 0, 0),
                    ));
                    Some(out)
                }
            }
        }
        XFRM_MSG_FLUSHSA => {
            let f = FlushMessage::parse(m.body.get(..1)?).ok()?;
            Some(Message::new(
                MsgType::Flush,
                satype_of(f.protocol),
                m.seq,
                m.pid,
            ))
        }
        XFRM_MSG_EXPIRE => {
            if m.body.len() < USER_EXPIRE_LEN {
                return None;
            }
            let e = netlink_packet_xfrm::monitor::ExpireMessage::parse(&m.body).ok()?;
            let mut msg = sa_message(MsgType::Expire, 0, 0, &e.expire.state, &[]);
            // af_key's EXPIRE carries CURRENT and the limit that fired.
            let which = if e.expire.hard != 0 {
                ExtKind::LifetimeHard
            } else {
                ExtKind::LifetimeSoft
            };
            msg.exts.retain(|x| match x {
                Extension::Lifetime(k, _) => *k == ExtKind::LifetimeCurrent || *k == which,
                _ => true,
            });
            if let Some(sa) = msg.sa_mut() {
                sa.state = if e.expire.hard != 0 {
                    SaState::Dead as u8
                } else {
                    SaState::Dying as u8
                };
            }
            Some(msg)
        }
        _ => None,
    }
}

/// The PF_KEY answer to `req` when the kernel said `errno` (Linux
/// numbering; 0 = done).
pub fn answer(req: &Message, errno: i32) -> Message {
    let mut r = Message {
        exts: Vec::new(),
        ..req.clone()
    };
    if errno != 0 {
        let n = u8::try_from(errno).unwrap_or(u8::MAX);
        r.errno = errno_to_illumos(n);
        if n == Errno::Esrch.number(Dialect::Linux)
            && matches!(
                req.msg_type,
                MsgType::Get | MsgType::Delete | MsgType::Update
            )
        {
            r.reserved = Diagnostic::SaNotfound.code();
        }
    } else {
        // The kernel did it: echo the request without its keys.
        r.exts = req
            .exts
            .iter()
            .filter(|e| !matches!(e, Extension::Key(..)))
            .cloned()
            .collect();
    }
    r
}

/// The XFRM transport.
pub struct Xfrm {
    sock: netlink_sys::Socket,
    inbox: VecDeque<Vec<u8>>,
    seq: u32,
    joined: bool,
}

/// How long to wait for the kernel.
const WAIT: Duration = Duration::from_secs(10);

impl Xfrm {
    pub fn open() -> Result<Xfrm, String> {
        let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_XFRM)
            .map_err(|e| open_error(KernelKind::Xfrm, e))?;
        sock.bind_auto()
            .map_err(|e| open_error(KernelKind::Xfrm, e))?;
        Ok(Xfrm {
            sock,
            inbox: VecDeque::new(),
            seq: 0,
            joined: false,
        })
    }

    fn push(&mut self, m: &Message) {
        if let Ok(b) = m.emit(Dialect::Illumos) {
            self.inbox.push_back(b);
        }
    }

    fn read(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<NlMsg>>> {
        if !sim::client::wait_readable(self.sock.as_fd(), timeout)? {
            return Ok(None);
        }
        let (mut buf, _) = self.sock.recv_from_full()?;
        let msgs = split(&buf);
        buf.zeroize();
        Ok(Some(msgs))
    }

    /// Sends one request and collects the messages that answer it, up to
    /// the acknowledgement, error or end of dump. Notifications that arrive
    /// meanwhile are queued for a monitor.
    fn exchange(&mut self, ty: u16, fl: u16, body: &[u8]) -> io::Result<Vec<NlMsg>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = frame(ty, fl | NLM_F_REQUEST, seq, body);
        let sent = self.sock.send(&req, 0);
        req.zeroize();
        sent?;
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(msgs) = self.read(Some(left))? else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from the kernel's XFRM interface",
                ));
            };
            for m in msgs {
                if m.seq != seq || m.pid == 0 {
                    if let Some(n) = notification(&m) {
                        self.push(&n);
                    }
                    continue;
                }
                match m.ty {
                    NLMSG_ERROR => {
                        if nl_errno(&m.body) == Some(libc::EPERM) {
                            return Err(io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                "the kernel's XFRM interface needs root (CAP_NET_ADMIN): Operation not permitted",
                            ));
                        }
                        got.push(m);
                        return Ok(got);
                    }
                    NLMSG_DONE => {
                        got.push(m);
                        return Ok(got);
                    }
                    _ => {
                        let multi = m.flags & 0x2 != 0;
                        got.push(m);
                        if !multi && fl & NLM_F_ACK == 0 && fl & NLM_F_DUMP == 0 {
                            return Ok(got);
                        }
                    }
                }
            }
        }
    }

    fn status(got: &[NlMsg]) -> i32 {
        got.iter()
            .find(|m| m.ty == NLMSG_ERROR)
            .and_then(|m| nl_errno(&m.body))
            .unwrap_or(0)
    }

    fn modify(&mut self, req: &Message, ty: u16, fl: u16) -> io::Result<()> {
        let mut sa = sa_request(req)
            .map_err(|r| io::Error::new(io::ErrorKind::Unsupported, r.to_string()))?;
        let mut body = vec![0u8; sa.buffer_len()];
        sa.emit(&mut body);
        scrub(&mut sa.nlas);
        let got = self.exchange(ty, fl | NLM_F_ACK, &body);
        body.zeroize();
        let got = got?;
        let a = answer(req, Self::status(&got));
        self.push(&a);
        Ok(())
    }

    fn get(&mut self, req: &Message) -> io::Result<Option<Message>> {
        let id = sa_id(req)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "GET without dst"))?;
        let mut body = vec![0u8; id.buffer_len()];
        id.emit(&mut body);
        let got = self.exchange(XFRM_MSG_GETSA, 0, &body)?;
        for m in &got {
            if m.ty == XFRM_MSG_NEWSA {
                if let Some(mut s) = parse_state(&m.body) {
                    let msg = sa_message(req.msg_type, req.seq, req.pid, &s.user_sa_info, &s.nlas);
                    scrub(&mut s.nlas);
                    return Ok(Some(msg));
                }
            }
        }
        self.push(&answer(req, Self::status(&got).max(libc::ESRCH)));
        Ok(None)
    }

    fn update(&mut self, req: &Message) -> io::Result<()> {
        let probe = Message {
            msg_type: MsgType::Get,
            ..req.clone()
        };
        let Some(mut cur) = self.get(&probe)? else {
            // get() queued the GET's error; answer as UPDATE instead.
            self.inbox.pop_back();
            self.push(&answer(req, libc::ESRCH));
            return Ok(());
        };
        // An illumos UPDATE changes the lifetimes (and may set the replay
        // window); the rest of the SA stays.
        for kind in [ExtKind::LifetimeHard, ExtKind::LifetimeSoft] {
            if let Some(l) = req.lifetime(kind).copied() {
                cur.remove(kind);
                cur.exts.push(Extension::Lifetime(kind, l));
            }
        }
        cur.remove(ExtKind::LifetimeCurrent);
        self.modify(
            &Message {
                seq: req.seq,
                pid: req.pid,
                msg_type: MsgType::Update,
                ..cur
            },
            XFRM_MSG_UPDSA,
            0,
        )
        .map(|_| {
            // modify() echoed the merged SA; answer with the request.
            if let Some(last) = self.inbox.pop_back() {
                let ok = Message::parse(&last, Dialect::Illumos)
                    .map(|m| m.errno)
                    .unwrap_or(1);
                let mut a = answer(req, 0);
                a.errno = ok;
                self.push(&a);
            }
        })
    }

    fn dump(&mut self, req: &Message) -> io::Result<()> {
        let got = self.exchange(XFRM_MSG_GETSA, NLM_F_DUMP, &[])?;
        let want = proto_of(req.satype);
        for m in &got {
            if m.ty != XFRM_MSG_NEWSA {
                continue;
            }
            if let Some(mut s) = parse_state(&m.body) {
                if want.is_none_or(|p| p == s.user_sa_info.id.proto) {
                    let msg = sa_message(MsgType::Dump, req.seq, req.pid, &s.user_sa_info, &s.nlas);
                    self.push(&msg);
                }
                scrub(&mut s.nlas);
            }
        }
        let mut end = answer(req, Self::status(&got));
        end.exts.clear();
        end.seq = 0;
        self.push(&end);
        Ok(())
    }

    fn join(&mut self) -> io::Result<()> {
        if !self.joined {
            self.sock.add_membership(XFRMNLGRP_SA)?;
            self.sock.add_membership(XFRMNLGRP_EXPIRE)?;
            self.joined = true;
        }
        Ok(())
    }
}

impl Transport for Xfrm {
    fn vet(&mut self, msg: &Message) -> Result<Vec<String>, String> {
        vet(msg).map_err(|r| r.to_string())
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let req = Message::parse(msg, Dialect::Illumos)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        vet(&req).map_err(|r| io::Error::new(io::ErrorKind::Unsupported, r.to_string()))?;
        match req.msg_type {
            MsgType::Add => self.modify(&req, XFRM_MSG_NEWSA, NLM_F_CREATE | NLM_F_EXCL),
            MsgType::Update => self.update(&req),
            MsgType::Get => {
                if let Some(m) = self.get(&req)? {
                    self.push(&m);
                }
                Ok(())
            }
            MsgType::Delete => {
                let id = sa_id(&req).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "DELETE without dst")
                })?;
                let mut body = vec![0u8; id.buffer_len()];
                id.emit(&mut body);
                let got = self.exchange(XFRM_MSG_DELSA, NLM_F_ACK, &body)?;
                self.push(&answer(&req, Self::status(&got)));
                Ok(())
            }
            MsgType::Flush => {
                let f = FlushMessage {
                    protocol: proto_of(req.satype).unwrap_or(IPSEC_PROTO_ANY),
                };
                let mut body = vec![0u8; f.buffer_len()];
                f.emit(&mut body);
                let got = self.exchange(XFRM_MSG_FLUSHSA, NLM_F_ACK, &body)?;
                self.push(&answer(&req, Self::status(&got)));
                Ok(())
            }
            MsgType::Dump => self.dump(&req),
            MsgType::Promisc => {
                self.join()?;
                self.push(&answer(&req, 0));
                Ok(())
            }
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{other:?} is not supported by {LINUX_XFRM}"),
            )),
        }
    }

    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        if let Some(b) = self.inbox.pop_front() {
            return Ok(Some(b));
        }
        if timeout.is_none() {
            // A passive monitor: listen to the SA and EXPIRE groups.
            self.join()?;
        }
        if !self.joined {
            return Ok(None);
        }
        loop {
            let Some(msgs) = self.read(timeout)? else {
                return Ok(None);
            };
            for m in msgs {
                if let Some(n) = notification(&m) {
                    self.push(&n);
                }
            }
            if let Some(b) = self.inbox.pop_front() {
                return Ok(Some(b));
            }
        }
    }

    fn describe(&self) -> String {
        "the Linux kernel's XFRM netlink interface".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(encrypt: EncrAlg, auth: AuthAlg, ekey: &[u8], akey: &[u8]) -> Message {
        let mut m = Message::new(MsgType::Add, satype::ESP, 4, 77)
            .with(SaExt {
                spi: 0x1234,
                replay: 32,
                state: SaState::Mature as u8,
                auth: auth.id(Dialect::Illumos).unwrap(),
                encrypt: encrypt.id(Dialect::Illumos).unwrap(),
                flags: 0,
            })
            .with(Extension::Lifetime(
                ExtKind::LifetimeHard,
                Lifetime {
                    bytes: 16_000_000,
                    addtime: 28800,
                    ..Lifetime::default()
                },
            ))
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new(
                    IpAddr::V6(Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped()),
                    0,
                    0,
                ),
            ))
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(
                    IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
                    0,
                    0,
                ),
            ));
        if !ekey.is_empty() {
            m.exts.push(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: (ekey.len() * 8) as u16,
                    reserved: 0,
                    material: KeyMaterial::from_slice(ekey),
                },
            ));
        }
        if !akey.is_empty() {
            m.exts.push(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: (akey.len() * 8) as u16,
                    reserved: 0,
                    material: KeyMaterial::from_slice(akey),
                },
            ));
        }
        m
    }

    /// Emit, parse back with the crate, and map to PF_KEY again.
    fn round_trip(m: &Message) -> Message {
        let mut sa = sa_request(m).unwrap();
        let mut body = vec![0u8; sa.buffer_len()];
        sa.emit(&mut body);
        let framed = frame(XFRM_MSG_NEWSA, NLM_F_REQUEST, 9, &body);
        let msgs = split(&framed);
        assert_eq!(msgs.len(), 1);
        let s = parse_state(&msgs[0].body).unwrap();
        scrub(&mut sa.nlas);
        sa_message(MsgType::Get, m.seq, m.pid, &s.user_sa_info, &s.nlas)
    }

    #[test]
    fn natt_ports_follow_the_sa_direction_in_the_encap_template() {
        // nat_lport 4501 (this host), nat_rport 4500 (the peer): an SA to
        // this machine carries packets from the peer's port to ours.
        for (dst, want) in [("127.0.0.1", (4500, 4501)), ("198.51.100.2", (4501, 4500))] {
            let mut m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
            m.exts.retain(|e| {
                !matches!(
                    e,
                    Extension::Address(ExtKind::AddressDst | ExtKind::AddressSrc, _)
                )
            });
            let peer = if dst == "127.0.0.1" {
                "198.51.100.2"
            } else {
                "127.0.0.1"
            };
            for (k, ip, port) in [
                (ExtKind::AddressDst, dst, 0),
                (ExtKind::AddressSrc, peer, 0),
                (ExtKind::AddressNattLoc, "0.0.0.0", 4501),
                (ExtKind::AddressNattRem, "0.0.0.0", 4500),
            ] {
                m.exts.push(Extension::Address(
                    k,
                    Address::new(ip.parse().unwrap(), port, 0),
                ));
            }
            if let Some(sa) = m.sa_mut() {
                sa.flags |= flags::X_NATT_LOC | flags::X_NATT_REM;
            }
            let t = sa_request(&m).unwrap();
            let tmpl = t
                .nlas
                .iter()
                .find_map(|n| match n {
                    XfrmAttrs::EncapsulationTemplate(t) => Some(*t),
                    _ => None,
                })
                .expect("an encap template");
            assert_eq!((tmpl.encap_sport, tmpl.encap_dport), want, "to {dst}");
            let back = round_trip(&m);
            let p = |k| back.address(k).map(|a| a.addr.port);
            assert_eq!(
                (p(ExtKind::AddressNattLoc), p(ExtKind::AddressNattRem)),
                (Some(4501), Some(4500)),
                "to {dst}"
            );
        }
    }

    #[test]
    fn aes_gcm_goes_as_aead_with_its_icv_and_salt() {
        let key = [0x11u8; 20]; // 128-bit key + 32-bit salt
        let m = add(EncrAlg::AesGcm12, AuthAlg::None, &key, &[]);
        let sa = sa_request(&m).unwrap();
        let aead = sa
            .nlas
            .iter()
            .find_map(|n| match n {
                XfrmAttrs::EncryptionAlgAead(a) => Some(a.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(name_str(&aead.alg_name), "rfc4106(gcm(aes))");
        assert_eq!((aead.alg_key_len, aead.alg_icv_len), (160, 96));
        let back = round_trip(&m);
        assert_eq!(
            back.sa().unwrap().encrypt,
            EncrAlg::AesGcm12.id(Dialect::Illumos).unwrap()
        );
        let k = back.key(ExtKind::KeyEncrypt).unwrap();
        assert_eq!((k.bits, k.reserved), (128, 32));
        assert_eq!(k.material.expose(), &key);
    }

    #[test]
    fn hmac_sha256_gets_rfc4868_128_bits() {
        let m = add(EncrAlg::AesCbc, AuthAlg::HmacSha256, &[1; 16], &[2; 32]);
        let sa = sa_request(&m).unwrap();
        let auth = sa
            .nlas
            .iter()
            .find_map(|n| match n {
                XfrmAttrs::AuthenticationAlgTrunc(a) => Some(a.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(name_str(&auth.alg_name), "hmac(sha256)");
        assert_eq!(auth.alg_trunc_len, 128);
        assert!(vet(&m).unwrap().is_empty());
    }

    #[test]
    fn sa_fields_survive_the_round_trip() {
        let m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
        let sa = sa_request(&m).unwrap();
        assert_eq!(sa.user_sa_info.family, AF_INET);
        assert_eq!(sa.user_sa_info.lifetime_cfg.hard_byte_limit, 16_000_000);
        assert_eq!(sa.user_sa_info.lifetime_cfg.soft_byte_limit, XFRM_INF);
        assert_eq!(sa.user_sa_info.selector.family, 0);
        let back = round_trip(&m);
        let s = back.sa().unwrap();
        assert_eq!((s.spi, s.replay), (0x1234, 32));
        assert_eq!(s.auth, 3);
        assert_eq!(s.encrypt, 12);
        assert_eq!(
            back.address(ExtKind::AddressDst).unwrap().addr.ip,
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))
        );
        let h = back.lifetime(ExtKind::LifetimeHard).unwrap();
        assert_eq!((h.bytes, h.addtime, h.allocations), (16_000_000, 28800, 0));
        assert!(back.lifetime(ExtKind::LifetimeSoft).is_none());
        // The printers' input must encode as the simulator's messages do.
        back.emit(Dialect::Illumos).unwrap();
    }

    #[test]
    fn tunnel_inner_addresses_become_the_selector() {
        let mut m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
        if let Some(sa) = m.sa_mut() {
            sa.flags = flags::X_TUNNEL;
        }
        m.exts.push(Extension::Address(
            ExtKind::AddressInnerSrc,
            Address {
                proto: 0,
                prefix_len: 96 + 24,
                addr: SockAddr::new(IpAddr::V6(Ipv4Addr::new(10, 1, 0, 0).to_ipv6_mapped()), 0),
            },
        ));
        let sa = sa_request(&m).unwrap();
        assert_eq!(sa.user_sa_info.mode, XFRM_MODE_TUNNEL);
        assert_eq!(sa.user_sa_info.selector.prefixlen_s, 24);
        assert_eq!(sa.user_sa_info.selector.family, AF_INET);
        let back = round_trip(&m);
        assert!(back.sa().unwrap().flags & flags::X_TUNNEL != 0);
        let ins = back.address(ExtKind::AddressInnerSrc).unwrap();
        assert_eq!(ins.addr.ip, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)));
        assert_eq!(ins.prefix_len, 24);
    }

    #[test]
    fn refusals_name_the_feature_and_xfrm() {
        let m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20])
            .with(Extension::Pair { spi: 3 });
        let e = vet(&m).unwrap_err().to_string();
        assert_eq!(
            e,
            "SA pairing (pair-spi) is not supported by the Linux kernel's XFRM interface; nothing was sent."
        );
        let mut upd = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
        upd.msg_type = MsgType::Update;
        assert!(vet(&upd).unwrap_err().to_string().contains("changing keys"));
    }

    #[test]
    fn errors_read_like_the_simulators() {
        let m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
        let a = answer(&m, libc::EEXIST);
        assert_eq!(a.errno, 17);
        assert!(a.exts.is_empty());
        let mut g = m.clone();
        g.msg_type = MsgType::Get;
        assert_eq!(
            answer(&g, libc::ESRCH).reserved,
            Diagnostic::SaNotfound.code()
        );
        assert_eq!(answer(&m, libc::EPROTONOSUPPORT).errno, 120);
        // Success echoes the request but never its keys.
        assert!(!answer(&m, 0).has(ExtKind::KeyAuth));
    }

    #[test]
    fn split_stops_at_bad_lengths() {
        let mut b = frame(NLMSG_DONE, 0, 1, &[0; 4]);
        b.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 2]);
        assert_eq!(split(&b).len(), 1);
        assert!(split(&[1, 2, 3]).is_empty());
        let mut short = frame(XFRM_MSG_NEWSA, 0, 1, &[0; 8]);
        short.truncate(20);
        let ms = split(&short);
        assert!(ms.is_empty() || notification(&ms[0]).is_none());
    }

    #[test]
    fn expire_and_delete_notifications_map_to_pfkey() {
        let m = add(EncrAlg::AesCbc, AuthAlg::HmacSha1, &[1; 16], &[2; 20]);
        let sa = sa_request(&m).unwrap();
        let mut body = vec![0u8; sa.user_sa_info.buffer_len()];
        sa.user_sa_info.emit(&mut body);
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // hard = 1
        let n = notification(&NlMsg {
            ty: XFRM_MSG_EXPIRE,
            flags: 0,
            seq: 0,
            pid: 0,
            body,
        })
        .unwrap();
        assert_eq!(n.msg_type, MsgType::Expire);
        assert_eq!(n.sa().unwrap().state, SaState::Dead as u8);
        assert!(n.has(ExtKind::LifetimeHard));
        let f = notification(&NlMsg {
            ty: XFRM_MSG_FLUSHSA,
            flags: 0,
            seq: 5,
            pid: 42,
            body: vec![IPPROTO_AH, 0, 0, 0],
        })
        .unwrap();
        assert_eq!(
            (f.msg_type, f.satype, f.pid),
            (MsgType::Flush, satype::AH, 42)
        );
    }
}
