//! Linux PF_KEY's dialect, translated to and from the messages the front
//! end builds and prints (illumos-style, pfkey-v2-wire.md 1-5).
//!
//! The front end speaks illumos PF_KEY: IPv4 as mapped IPv6 addresses,
//! direction and NAT-T in SA flags, tunnels as inner addresses, pairing,
//! idle lifetimes. [`to_linux`] turns such a request into what Linux
//! `af_key` understands, or refuses it before anything is sent, naming the
//! feature the Linux kernel lacks. [`from_linux`] turns Linux's answers back
//! into the form the printers know. Both are pure (no socket, so they are
//! tested anywhere) but for one question, [`is_local`]: which addresses
//! are this machine's, for the direction of NAT-T ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sadb::alg::{AuthAlg, EncrAlg};
use sadb::errno::Errno;
use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt, SaState,
};
use sadb::Diagnostic;

/// Linux `IPSEC_MODE_TUNNEL` in `sadb_x_sa2_mode` (`ipsec.h`).
pub const IPSEC_MODE_TUNNEL: u8 = 2;
/// Linux `IPSEC_MODE_TRANSPORT`.
pub const IPSEC_MODE_TRANSPORT: u8 = 1;
/// `UDP_ENCAP_ESPINUDP` (RFC 3948), Linux's `sadb_x_nat_t_type_type`.
pub const UDP_ENCAP_ESPINUDP: u8 = 2;
/// The IKE NAT-T port, used when `encap udp` names no ports.
pub const NATT_PORT: u16 = 4500;

/// A request translated for a Linux kernel, with what the user should know.
#[derive(Debug, Clone)]
pub struct Translated {
    pub msg: Message,
    /// Things that work differently on Linux (printed as notes).
    pub notes: Vec<String>,
}

/// Why a request is not sent: a feature `kernel` lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub feature: String,
    pub kernel: &'static str,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not supported by {}; nothing was sent.",
            self.feature, self.kernel
        )
    }
}

/// The kernel named in PF_KEY refusals.
pub const LINUX_PFKEY: &str = "the Linux kernel's PF_KEY";

/// The refusals and notes both Linux transports share: what the request
/// asks for that no Linux SA has (pairing, direction, state, idle
/// lifetimes, replay_value, identities). `kernel` names the interface.
pub fn common_refusals(msg: &Message, kernel: &'static str) -> Result<(), Refusal> {
    let refuse = |feature: &str| {
        Err(Refusal {
            feature: feature.to_string(),
            kernel,
        })
    };
    match msg.msg_type {
        MsgType::UpdatePair => return refuse("update-pair (SA pairing)"),
        MsgType::DelPair => return refuse("delete-pair (SA pairing)"),
        MsgType::DelPairState => return refuse("deleting a pair by state"),
        MsgType::InverseAcquire => return refuse("inverse ACQUIRE"),
        _ => {}
    }
    let add_like = matches!(msg.msg_type, MsgType::Add | MsgType::Update);
    for e in &msg.exts {
        match e {
            Extension::Sa(sa) => {
                if sa.flags & flags::X_PAIRED != 0 {
                    return refuse("SA pairing (pair-spi)");
                }
                if sa.flags & (flags::X_INBOUND | flags::X_OUTBOUND) != 0 {
                    return refuse("an SA direction (inbound/outbound): Linux SAs have none");
                }
                if add_like && sa.state != SaState::Mature as u8 {
                    return refuse("an SA state other than mature (state)");
                }
            }
            Extension::Pair { .. } => return refuse("SA pairing (pair-spi)"),
            Extension::ReplayValue { .. } => return refuse("replay_value"),
            Extension::Lifetime(ExtKind::LifetimeIdle, _) => {
                return refuse("idle lifetimes (idle_addtime/idle_usetime)")
            }
            Extension::Identity(..) => return refuse("identities (srcidtype/dstidtype)"),
            Extension::Sensitivity(..) => return refuse("sensitivity labels"),
            Extension::KmCookie { .. } => return refuse("key-management cookies"),
            Extension::Address(ExtKind::AddressNattLoc | ExtKind::AddressNattRem, a)
                if !a.addr.ip.is_unspecified() =>
            {
                return refuse("NAT-T original addresses (nat_loc/nat_rem; only the ports are)")
            }
            _ => {}
        }
    }
    Ok(())
}

/// IPv4-mapped IPv6 (how ipseckey sends IPv4) back to IPv4.
pub fn unmap(a: &Address) -> Address {
    let mut a = *a;
    a.addr.ip = a.addr.ip.to_canonical();
    a
}

/// The unspecified address of `ip`'s family.
pub fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The note ipseckey prints when an SA Linux PF_KEY makes differs from
/// what the same command makes on illumos.
pub fn sha256_note() -> String {
    "note: Linux PF_KEY gives hmac-sha256 a 96-bit ICV, not the 128 bits of RFC 4868 \
     (illumos, FreeBSD, the simulator): the peer must use 96 too; --kernel=xfrm makes a 128-bit one."
        .to_string()
}

/// Whether `ip` is one of this machine's addresses (loopback included).
/// illumos gives an SA its direction this way (an SA to a local address
/// is inbound); Linux SAs have none, so the NAT-T ports need it.
pub fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return true;
    }
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return false;
    };
    addrs.into_iter().any(|a| {
        a.address.as_ref().and_then(|s| {
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        }) == Some(ip)
    })
}

/// illumos's NAT-T ports, (this host's, the peer's) as `nat_lport` and
/// `nat_rport` say whatever the SA's direction, in Linux's order: the
/// encapsulating UDP header's (source, destination) on the SA's own way
/// from src to dst. An inbound SA (`dst_is_local`) has the peer's port as
/// its source: Linux compares an inbound SA's `encap_sport` with the
/// source port of every packet it opens and reports a new NAT mapping
/// when they differ (`esp_input_done2`). The swap is its own inverse:
/// the same call turns Linux's order back into illumos's.
pub fn natt_linux_order<T>(loc_rem: (T, T), dst_is_local: bool) -> (T, T) {
    if dst_is_local {
        (loc_rem.1, loc_rem.0)
    } else {
        loc_rem
    }
}

/// The NAT-T ports of an illumos request: (sport, dport) of the packets
/// this SA covers, from nat_lport/nat_rport (4500 when not given).
fn natt_ports(msg: &Message) -> Option<(u16, u16)> {
    let sa = msg.sa()?;
    if sa.flags & (flags::X_NATT_LOC | flags::X_NATT_REM) == 0 {
        return None;
    }
    let port = |k| {
        msg.address(k)
            .map(|a| a.addr.port)
            .filter(|p| *p != 0)
            .unwrap_or(NATT_PORT)
    };
    let inbound = msg
        .address(ExtKind::AddressDst)
        .is_some_and(|d| is_local(d.addr.ip));
    Some(natt_linux_order(
        (port(ExtKind::AddressNattLoc), port(ExtKind::AddressNattRem)),
        inbound,
    ))
}

/// An illumos-style request as Linux `af_key` wants it, or the feature it
/// lacks.
pub fn to_linux(msg: &Message) -> Result<Translated, Refusal> {
    common_refusals(msg, LINUX_PFKEY)?;
    let refuse = |feature: String| Refusal {
        feature,
        kernel: LINUX_PFKEY,
    };
    let mut notes = Vec::new();
    let mut out = Message {
        exts: Vec::new(),
        ..msg.clone()
    };
    let add_like = matches!(msg.msg_type, MsgType::Add | MsgType::Update);
    let tunnel = msg.sa().is_some_and(|s| s.flags & flags::X_TUNNEL != 0);
    let natt = natt_ports(msg);
    for e in &msg.exts {
        match e {
            Extension::Sa(sa) => {
                if let Some(alg) = EncrAlg::from_id(sa.encrypt, Dialect::Illumos) {
                    if alg.id(Dialect::Linux).is_none() {
                        return Err(refuse(format!(
                            "the AEAD algorithm {} (Linux answers ENOSYS; use --kernel=xfrm)",
                            alg.name()
                        )));
                    }
                } else if sa.encrypt != 0 {
                    return Err(refuse(format!("encryption algorithm {}", sa.encrypt)));
                }
                if add_like && sa.auth == AuthAlg::HmacSha256.id(Dialect::Illumos).unwrap_or(5) {
                    notes.push(sha256_note());
                }
                let kept = flags::PFS | flags::NOREPLAY;
                let rest =
                    sa.flags & !(kept | flags::X_TUNNEL | flags::X_NATT_LOC | flags::X_NATT_REM);
                if let Some(&(_, name)) = flags::NAMES.iter().find(|(b, _)| rest & b != 0) {
                    return Err(refuse(format!("the SA flag {name}")));
                }
                out.exts.push(Extension::Sa(SaExt {
                    flags: sa.flags & kept,
                    ..*sa
                }));
            }
            Extension::Address(k @ (ExtKind::AddressSrc | ExtKind::AddressDst), a) => {
                let mut a = unmap(a);
                a.prefix_len = 0;
                out.exts.push(Extension::Address(*k, a));
            }
            Extension::Address(ExtKind::AddressInnerSrc | ExtKind::AddressInnerDst, _) => {
                // Linux PF_KEY SAs carry no inner selector; the policy has it.
            }
            Extension::Address(ExtKind::AddressNattLoc | ExtKind::AddressNattRem, _) => {}
            Extension::Key(k, key) => out.exts.push(Extension::Key(
                *k,
                Key {
                    bits: key.bits,
                    reserved: 0,
                    material: key.material.clone(),
                },
            )),
            other => out.exts.push(other.clone()),
        }
    }
    if tunnel {
        if msg.has(ExtKind::AddressInnerSrc) || msg.has(ExtKind::AddressInnerDst) {
            notes.push(
                "note: Linux PF_KEY SAs have no inner addresses: the SA is made in tunnel mode \
                 and the inner addresses (isrc/idst) belong in the policy."
                    .to_string(),
            );
        }
        out.exts.push(Extension::Sa2 {
            mode: IPSEC_MODE_TUNNEL,
            sequence: 0,
            reqid: 0,
        });
    }
    if let Some((sport, dport)) = natt {
        if msg.satype != satype::ESP {
            return Err(refuse("NAT-T encapsulation of AH".to_string()));
        }
        out.exts.push(Extension::NatTType(UDP_ENCAP_ESPINUDP));
        out.exts
            .push(Extension::NatTPort(ExtKind::NatTSport, sport));
        out.exts
            .push(Extension::NatTPort(ExtKind::NatTDport, dport));
    }
    // af_key wants a source of the destination's family on ADD, UPDATE,
    // GET and DELETE (present_and_same_family); ipseckey sends `::` when
    // none was typed, which must follow an IPv4 destination.
    if let Some(d) = out.address(ExtKind::AddressDst).copied() {
        let src = out.address(ExtKind::AddressSrc).copied();
        let fix = match src {
            None => matches!(
                msg.msg_type,
                MsgType::Get | MsgType::Delete | MsgType::Add | MsgType::Update
            ),
            Some(s) => s.addr.ip.is_unspecified() && s.addr.ip.is_ipv4() != d.addr.ip.is_ipv4(),
        };
        if fix {
            out.remove(ExtKind::AddressSrc);
            out.exts.push(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(unspecified_like(d.addr.ip), 0, 0),
            ));
        }
    }
    if add_like {
        // af_key wants HARD and SOFT together or neither; a zero lifetime
        // is no limit there, as here.
        let hard = out.has(ExtKind::LifetimeHard);
        let soft = out.has(ExtKind::LifetimeSoft);
        if hard != soft {
            let missing = if hard {
                ExtKind::LifetimeSoft
            } else {
                ExtKind::LifetimeHard
            };
            out.exts.push(Extension::Lifetime(
                missing,
                sadb::pfkey::Lifetime::default(),
            ));
        }
        // ... and an encryption key extension on every ESP SA, empty for
        // ESP NULL.
        if msg.satype == satype::ESP && !out.has(ExtKind::KeyEncrypt) {
            out.exts.push(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: 0,
                    reserved: 0,
                    material: sadb::key::KeyMaterial::from_slice(&[]),
                },
            ));
        }
    }
    Ok(Translated { msg: out, notes })
}

/// Linux's errno byte in the simulator's (illumos) numbering.
pub fn errno_to_illumos(n: u8) -> u8 {
    Errno::from_number(n, Dialect::Linux)
        .map(|e| e.number(Dialect::Illumos))
        .unwrap_or(n)
}

/// A Linux message (reply, broadcast, dump record) in the form the printers
/// know, or `None` for one the front end has no words for (SPD messages).
///
/// Linux has no diagnostic codes; an ESRCH answer to GET or DELETE can
/// only mean the SA does not exist, so it gets that diagnostic, which makes
/// ipseckey print the manual's "does not exist" text.
pub fn from_linux(m: &Message) -> Option<Message> {
    m.msg_type.number(Dialect::Illumos)?;
    let mut out = Message {
        exts: Vec::new(),
        errno: errno_to_illumos(m.errno),
        reserved: 0,
        ..m.clone()
    };
    if m.errno == Errno::Esrch.number(Dialect::Linux)
        && matches!(m.msg_type, MsgType::Get | MsgType::Delete)
    {
        out.reserved = Diagnostic::SaNotfound.code();
    }
    let mut extra_flags = 0u64;
    let (mut sport, mut dport) = (None, None);
    let mut encr_alg = None;
    for e in &m.exts {
        match e {
            Extension::Sa(sa) => {
                encr_alg = EncrAlg::from_id(sa.encrypt, Dialect::Linux);
                out.exts.push(Extension::Sa(SaExt {
                    // NOECN and friends have no illumos bit.
                    flags: sa.flags & 0xffff_ffff,
                    ..*sa
                }))
            }
            Extension::Sa2 { mode, .. } => {
                if *mode == IPSEC_MODE_TUNNEL {
                    extra_flags |= flags::X_TUNNEL;
                }
            }
            Extension::NatTPort(k, port) => {
                if *k == ExtKind::NatTSport {
                    sport = Some(*port);
                } else {
                    dport = Some(*port);
                }
            }
            // af_key reports the selector's source as PROXY whenever it
            // differs from the SA's source, even when it is "any".
            Extension::Address(ExtKind::AddressInnerSrc, a)
                if a.addr.ip.is_unspecified() && a.prefix_len == 0 => {}
            // HARD and SOFT always come; all zero means no limits, which
            // illumos leaves out.
            Extension::Lifetime(ExtKind::LifetimeHard | ExtKind::LifetimeSoft, l)
                if l.is_zero() => {}
            Extension::Address(k, a) if k.number(Dialect::Illumos).is_some() => {
                let mut a = *a;
                if matches!(k, ExtKind::AddressSrc | ExtKind::AddressDst) {
                    // illumos reports SA addresses without a prefix.
                    a.prefix_len = 0;
                }
                out.exts.push(Extension::Address(*k, a));
            }
            Extension::Key(ExtKind::KeyEncrypt, k) => {
                // Linux counts the AES-CTR nonce in the key bits; illumos
                // reports key and salt apart.
                let salt = encr_alg.map(|a| a.salt_bits()).unwrap_or(0);
                let mut k = k.clone();
                if salt != 0 && k.bits > salt && k.reserved == 0 {
                    k.bits -= salt;
                    k.reserved = salt;
                }
                out.exts.push(Extension::Key(ExtKind::KeyEncrypt, k));
            }
            Extension::Unknown { .. } => out.exts.push(e.clone()),
            other => {
                if other
                    .kind()
                    .and_then(|k| k.number(Dialect::Illumos))
                    .is_some()
                {
                    out.exts.push(other.clone());
                }
            }
        }
    }
    if sport.is_some() || dport.is_some() {
        // Back to this host's port and the peer's (see natt_linux_order).
        let inbound = out
            .address(ExtKind::AddressDst)
            .is_some_and(|d| is_local(d.addr.ip));
        let (loc, rem) = natt_linux_order((sport, dport), inbound);
        for (kind, flag, port) in [
            (ExtKind::AddressNattLoc, flags::X_NATT_LOC, loc),
            (ExtKind::AddressNattRem, flags::X_NATT_REM, rem),
        ] {
            if let Some(port) = port {
                extra_flags |= flag;
                out.exts.push(Extension::Address(
                    kind,
                    Address::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port, 0),
                ));
            }
        }
    }
    if extra_flags != 0 {
        if let Some(sa) = out.sa_mut() {
            sa.flags |= extra_flags;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadb::key::KeyMaterial;
    use sadb::pfkey::Lifetime;

    fn add(sa: SaExt) -> Message {
        Message::new(MsgType::Add, satype::ESP, 7, 99)
            .with(sa)
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new(
                    IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped()),
                    0,
                    0,
                ),
            ))
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(
                    IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
                    0,
                    0,
                ),
            ))
    }

    fn esp(encrypt: u8, auth: u8) -> SaExt {
        SaExt {
            spi: 0x2112,
            state: SaState::Mature as u8,
            encrypt,
            auth,
            ..SaExt::default()
        }
    }

    fn refusal(m: &Message) -> String {
        match to_linux(m) {
            Err(r) => r.to_string(),
            Ok(t) => panic!("sent: {:?}", t.msg.msg_type),
        }
    }

    #[test]
    fn ipv4_goes_as_af_inet_and_encodes_in_linux_numbering() {
        let t = to_linux(&add(esp(12, 3))).unwrap();
        let dst = t.msg.address(ExtKind::AddressDst).unwrap();
        assert_eq!(dst.addr.ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let bytes = t.msg.emit(Dialect::Linux).unwrap();
        // DST extension: sockaddr family AF_INET (2) right after its 8-byte header.
        let back = Message::parse(&bytes, Dialect::Linux).unwrap();
        assert_eq!(
            back.address(ExtKind::AddressSrc)
                .unwrap()
                .addr
                .ip
                .to_string(),
            "10.0.0.1"
        );
        assert!(t.notes.is_empty());
    }

    #[test]
    fn features_linux_lacks_are_refused_by_name() {
        let mut m = add(esp(12, 3));
        m.exts.push(Extension::Pair { spi: 5 });
        assert_eq!(
            refusal(&m),
            "SA pairing (pair-spi) is not supported by the Linux kernel's PF_KEY; nothing was sent."
        );
        let m = add(esp(12, 3)).with(Extension::ReplayValue { r32: 4, r64: 0 });
        assert!(
            refusal(&m).starts_with("replay_value is not supported by the Linux kernel's PF_KEY")
        );
        let m = add(esp(12, 3)).with(Extension::Lifetime(
            ExtKind::LifetimeIdle,
            Lifetime {
                addtime: 5,
                ..Lifetime::default()
            },
        ));
        assert!(refusal(&m).starts_with("idle lifetimes"));
        let mut dying = esp(12, 3);
        dying.state = SaState::Dying as u8;
        assert!(refusal(&add(dying)).starts_with("an SA state other than mature"));
        // aes-gcm16 (20 in the simulator's numbering) has no PF_KEY number on Linux.
        let r = refusal(&add(esp(20, 0)));
        assert!(r.contains("AEAD algorithm aes-gcm"), "{r}");
        assert!(r.contains("Linux kernel's PF_KEY"), "{r}");
        let mut inbound = esp(12, 3);
        inbound.flags = flags::X_INBOUND;
        assert!(refusal(&add(inbound)).contains("direction"));
        let pair = Message::new(MsgType::UpdatePair, satype::ESP, 1, 1);
        assert!(refusal(&pair).starts_with("update-pair"));
    }

    #[test]
    fn hmac_sha256_adds_the_96_bit_note() {
        let t = to_linux(&add(esp(12, 5))).unwrap();
        assert_eq!(t.notes.len(), 1);
        assert!(t.notes[0].contains("96-bit ICV"));
        let get = Message::new(MsgType::Get, satype::ESP, 1, 1).with(esp(0, 5));
        assert!(to_linux(&get).unwrap().notes.is_empty());
    }

    #[test]
    fn get_gets_a_source_of_the_destination_family() {
        let m = Message::new(MsgType::Get, satype::ESP, 1, 1)
            .with(esp(0, 0))
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new("2001:db8::2".parse().unwrap(), 0, 0),
            ));
        let t = to_linux(&m).unwrap();
        assert_eq!(
            t.msg.address(ExtKind::AddressSrc).unwrap().addr.ip,
            "::".parse::<IpAddr>().unwrap()
        );
    }

    /// An ESP ADD from `src` to `dst` with nat_lport 4501, nat_rport 4500.
    fn natt_add(src: &str, dst: &str) -> Message {
        let mut sa = esp(12, 3);
        sa.flags = flags::X_NATT_LOC | flags::X_NATT_REM;
        let port_only =
            |k, p| Extension::Address(k, Address::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p, 0));
        Message::new(MsgType::Add, satype::ESP, 7, 99)
            .with(sa)
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new(dst.parse().unwrap(), 0, 0),
            ))
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(src.parse().unwrap(), 0, 0),
            ))
            .with(port_only(ExtKind::AddressNattLoc, 4501))
            .with(port_only(ExtKind::AddressNattRem, 4500))
    }

    #[test]
    fn natt_ports_follow_the_sa_direction_on_linux() {
        // illumos: nat_lport is this host's port, nat_rport the peer's,
        // whatever the direction. Linux: the SA's UDP source and
        // destination, so an inbound SA (to this machine) has the peer's
        // port as its source. 127.0.0.1 is local everywhere; TEST-NET-2
        // is nobody's.
        for (src, dst, linux) in [
            ("198.51.100.2", "127.0.0.1", (4500, 4501)),
            ("127.0.0.1", "198.51.100.2", (4501, 4500)),
        ] {
            let t = to_linux(&natt_add(src, dst)).unwrap();
            let bytes = t.msg.emit(Dialect::Linux).unwrap();
            let l = Message::parse(&bytes, Dialect::Linux).unwrap();
            let port = |k| match l.ext(k) {
                Some(Extension::NatTPort(_, p)) => *p,
                other => panic!("{k:?}: {other:?}"),
            };
            assert_eq!(
                (port(ExtKind::NatTSport), port(ExtKind::NatTDport)),
                linux,
                "{src} -> {dst}"
            );
            // Read back: this host's port and the peer's again.
            let back = from_linux(&l).unwrap();
            let p = |k| back.address(k).map(|a| a.addr.port);
            assert_eq!(
                (p(ExtKind::AddressNattLoc), p(ExtKind::AddressNattRem)),
                (Some(4501), Some(4500)),
                "{src} -> {dst}"
            );
        }
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(is_local("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_local("198.51.100.2".parse().unwrap()));
    }

    #[test]
    fn tunnel_and_natt_become_linux_extensions_and_come_back_as_flags() {
        let mut sa = esp(12, 3);
        sa.flags = flags::X_TUNNEL | flags::X_NATT_REM;
        let m = add(sa)
            .with(Extension::Address(
                ExtKind::AddressNattRem,
                Address::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4501, 0),
            ))
            .with(Extension::Address(
                ExtKind::AddressInnerSrc,
                Address::new("10.1.0.0".parse().unwrap(), 0, 0),
            ));
        let t = to_linux(&m).unwrap();
        assert!(t.msg.has(ExtKind::Sa2));
        assert!(!t.msg.has(ExtKind::AddressInnerSrc));
        assert!(t.notes.iter().any(|n| n.contains("tunnel mode")));
        assert_eq!(t.msg.sa().unwrap().flags, 0);
        let bytes = t.msg.emit(Dialect::Linux).unwrap();
        let linux = Message::parse(&bytes, Dialect::Linux).unwrap();
        assert_eq!(
            linux.ext(ExtKind::NatTDport),
            Some(&Extension::NatTPort(ExtKind::NatTDport, 4501))
        );
        let back = from_linux(&linux).unwrap();
        let f = back.sa().unwrap().flags;
        assert_eq!(
            f & (flags::X_TUNNEL | flags::X_NATT_LOC | flags::X_NATT_REM),
            flags::X_TUNNEL | flags::X_NATT_LOC | flags::X_NATT_REM
        );
        assert_eq!(
            back.address(ExtKind::AddressNattLoc).unwrap().addr.port,
            4500
        );
        back.emit(Dialect::Illumos).unwrap();
    }

    #[test]
    fn esrch_on_get_reads_as_not_found_and_errnos_are_renumbered() {
        let mut r = Message::new(MsgType::Get, satype::ESP, 3, 9);
        r.errno = 3;
        assert_eq!(
            from_linux(&r).unwrap().reserved,
            Diagnostic::SaNotfound.code()
        );
        let mut r = Message::new(MsgType::Add, satype::ESP, 3, 9);
        r.errno = 38; // Linux ENOSYS
        assert_eq!(from_linux(&r).unwrap().errno, 89);
        let spd = Message::new(MsgType::SpdAdd, 0, 0, 0);
        assert!(from_linux(&spd).is_none());
    }

    #[test]
    fn aes_ctr_nonce_is_reported_as_salt() {
        let m = Message::new(MsgType::Get, satype::ESP, 1, 1)
            .with(esp(13, 3))
            .with(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: 160,
                    reserved: 0,
                    material: KeyMaterial::from_slice(&[7; 20]),
                },
            ));
        let back = from_linux(&m).unwrap();
        let k = back.key(ExtKind::KeyEncrypt).unwrap();
        assert_eq!((k.bits, k.reserved), (128, 32));
    }
}
