//! Turns a parsed command into the PF_KEY messages ipseckey sends
//! (ipseckey-behaviour.md 2.2): one per destination address, addresses as
//! 32-byte AF_INET6 sockaddrs with IPv4 mapped, extensions in ipseckey's
//! order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sadb::alg::EncrAlg;
use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Identity, Key, Lifetime, Message, MsgType,
    SaExt, SaState, SockAddr,
};

use crate::parse::{CmdKind, Command, Inner};

fn mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

fn addr(kind: ExtKind, ip: IpAddr, port: u16, proto: u8) -> Extension {
    Extension::Address(
        kind,
        Address {
            proto,
            prefix_len: 0,
            addr: SockAddr::new(mapped(ip), port),
        },
    )
}

fn inner(kind: ExtKind, i: Option<Inner>, port: Option<u16>, proto: u8) -> Extension {
    let (ip, prefix) = match i {
        // IPv4 prefixes travel in mapped form, offset by 96 (1.7).
        Some(Inner {
            ip: IpAddr::V4(v4),
            prefix,
        }) => (
            IpAddr::V6(v4.to_ipv6_mapped()),
            prefix.map(|p| p + 96).unwrap_or(128),
        ),
        Some(Inner { ip, prefix }) => (ip, prefix.unwrap_or(128)),
        None => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    Extension::Address(
        kind,
        Address {
            proto,
            prefix_len: prefix,
            addr: SockAddr::new(ip, port.unwrap_or(0)),
        },
    )
}

/// The messages for `cmd`: one per destination address (a name may have
/// several), each with `seq` from `next_seq`.
pub fn build(
    cmd: &Command,
    pid: u32,
    next_seq: &mut impl FnMut() -> u32,
) -> Vec<(IpAddr, Message)> {
    let dsts = cmd.sa.dst.clone().unwrap_or_default();
    dsts.into_iter()
        .map(|d| {
            let m = match cmd.kind {
                k if k.is_add_like() => add_like(cmd, d, pid, next_seq()),
                _ => lookup(cmd, d, pid, next_seq()),
            };
            (d, m)
        })
        .collect()
}

fn msg_type(k: CmdKind) -> MsgType {
    match k {
        CmdKind::Add => MsgType::Add,
        CmdKind::Update => MsgType::Update,
        CmdKind::UpdatePair => MsgType::UpdatePair,
        CmdKind::Delete => MsgType::Delete,
        CmdKind::DeletePair => MsgType::DelPair,
        _ => MsgType::Get,
    }
}

/// The source that goes with destination `d`: the given source of the same
/// family, else the unspecified address (1.7).
fn source_for(cmd: &Command, d: IpAddr) -> Option<IpAddr> {
    let srcs = cmd.sa.src.as_ref()?;
    let same: Vec<&IpAddr> = srcs.iter().filter(|s| s.is_ipv4() == d.is_ipv4()).collect();
    match same.as_slice() {
        [one] => Some(**one),
        _ => Some(if d.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }),
    }
}

fn add_like(cmd: &Command, d: IpAddr, pid: u32, seq: u32) -> Message {
    let sa = &cmd.sa;
    let mut m = Message::new(msg_type(cmd.kind), cmd.satype, seq, pid);
    let mut fl = 0u64;
    if sa.pair_spi.is_some() {
        fl |= flags::X_PAIRED;
    }
    if sa.inbound {
        fl |= flags::X_INBOUND;
    }
    if sa.outbound {
        fl |= flags::X_OUTBOUND;
    }
    if sa.encap {
        if sa.nat_rem.is_some() || sa.nat_rport.is_some() {
            fl |= flags::X_NATT_REM;
        }
        if sa.nat_loc.is_some() || sa.nat_lport.is_some() {
            fl |= flags::X_NATT_LOC;
        }
    }
    if sa.tunnel() {
        fl |= flags::X_TUNNEL;
    }
    let null = EncrAlg::Null.id(Dialect::Illumos).unwrap_or(11);
    m.exts.push(Extension::Sa(SaExt {
        spi: sa.spi.unwrap_or(0),
        replay: sa.replay.unwrap_or(0),
        state: sa.state.unwrap_or(SaState::Mature as u8),
        auth: sa.auth.unwrap_or(0),
        encrypt: match sa.encr {
            Some(e) => e,
            None if cmd.satype == satype::ESP => null,
            None => 0,
        },
        flags: fl,
    }));
    if let Some(p) = sa.pair_spi {
        m.exts.push(Extension::Pair { spi: p });
    }
    for (kind, g) in [
        (ExtKind::LifetimeHard, &sa.hard),
        (ExtKind::LifetimeSoft, &sa.soft),
    ] {
        if g.given {
            m.exts.push(Extension::Lifetime(kind, g.lt));
        }
    }
    if sa.idle.given {
        m.exts.push(Extension::Lifetime(
            ExtKind::LifetimeIdle,
            Lifetime {
                addtime: sa.idle.lt.addtime,
                usetime: sa.idle.lt.usetime,
                ..Lifetime::default()
            },
        ));
    }
    if let Some(k) = &sa.encr_key {
        m.exts.push(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: k.bits,
                reserved: sa.reserved_bits.unwrap_or(0),
                material: k.material.clone(),
            },
        ));
    }
    if let Some(k) = &sa.auth_key {
        m.exts.push(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: k.bits,
                reserved: 0,
                material: k.material.clone(),
            },
        ));
    }
    for (kind, id) in [
        (ExtKind::IdentitySrc, &sa.srcid),
        (ExtKind::IdentityDst, &sa.dstid),
    ] {
        if let Some((t, v)) = id {
            m.exts.push(Extension::Identity(
                kind,
                Identity {
                    id_type: *t,
                    id: 0,
                    text: v.as_bytes().to_vec(),
                },
            ));
        }
    }
    let proto = sa.proto.unwrap_or(0);
    m.exts
        .push(addr(ExtKind::AddressDst, d, sa.dport.unwrap_or(0), proto));
    // NAT-T: port-only extensions use an AF_INET sockaddr (2.2).
    if sa.nat_rem.is_some() || sa.nat_rport.is_some() {
        let ip = sa.nat_rem.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        m.exts.push(Extension::Address(
            ExtKind::AddressNattRem,
            Address::new(ip, sa.nat_rport.unwrap_or(0), 0),
        ));
    }
    if sa.nat_loc.is_some() || sa.nat_lport.is_some() {
        let ip = sa.nat_loc.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        m.exts.push(Extension::Address(
            ExtKind::AddressNattLoc,
            Address::new(ip, sa.nat_lport.unwrap_or(0), 0),
        ));
    }
    let src = source_for(cmd, d).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    m.exts
        .push(addr(ExtKind::AddressSrc, src, sa.sport.unwrap_or(0), proto));
    if sa.tunnel() {
        let ip = sa.iproto.unwrap_or(0);
        m.exts
            .push(inner(ExtKind::AddressInnerSrc, sa.isrc, sa.isport, ip));
        m.exts
            .push(inner(ExtKind::AddressInnerDst, sa.idst, sa.idport, ip));
    }
    if let Some(v) = sa.replay_value {
        m.exts.push(Extension::ReplayValue { r32: v, r64: 0 });
    }
    m
}

fn lookup(cmd: &Command, d: IpAddr, pid: u32, seq: u32) -> Message {
    let sa = &cmd.sa;
    let mut m = Message::new(msg_type(cmd.kind), cmd.satype, seq, pid);
    let mut fl = 0u64;
    if sa.inbound {
        fl |= flags::X_INBOUND;
    }
    if sa.outbound {
        fl |= flags::X_OUTBOUND;
    }
    m.exts.push(Extension::Sa(SaExt {
        spi: sa.spi.unwrap_or(0),
        flags: fl,
        ..SaExt::default()
    }));
    let proto = sa.proto.unwrap_or(0);
    if sa.src.is_some() || sa.sport.is_some() {
        let s = source_for(cmd, d).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        m.exts
            .push(addr(ExtKind::AddressSrc, s, sa.sport.unwrap_or(0), proto));
    }
    m.exts
        .push(addr(ExtKind::AddressDst, d, sa.dport.unwrap_or(0), proto));
    m
}
