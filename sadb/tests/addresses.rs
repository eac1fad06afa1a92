//! The address and message-level checks every AH/ESP request goes through
//! (ipseckey-behaviour.md 5.1 address classes, 5.2 steps 4-5).

mod common;
use common::*;

use std::net::{IpAddr, Ipv4Addr};

fn tunnel(m: Message) -> Message {
    m.with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24))
}

fn inner_pp(kind: ExtKind, s: &str, prefix: u8, port: u16, proto: u8) -> Extension {
    match inner(kind, s, prefix) {
        Extension::Address(k, mut a) => {
            a.addr.port = port;
            a.proto = proto;
            Extension::Address(k, a)
        }
        other => other,
    }
}

fn port_only(kind: ExtKind, port: u16) -> Extension {
    Extension::Address(
        kind,
        Address::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port, 0),
    )
}

#[test]
fn address_family_other_than_inet_or_inet6_is_8_9_10_or_66() {
    let mut k = kernel();
    let cases = [
        (ExtKind::AddressSrc, Diagnostic::BadSrcAf),
        (ExtKind::AddressDst, Diagnostic::BadDstAf),
        (ExtKind::AddressInnerSrc, Diagnostic::BadInnerSrcAf),
        (ExtKind::AddressInnerDst, Diagnostic::BadInnerDstAf),
    ];
    for (kind, diag) in cases {
        let mut b = bytes(&tunnel(esp_add(0x100, Some(ME), PEER)));
        let at = ext_offset(&b, kind);
        put_u16(&mut b, at + 8, 99);
        k.refused_bytes(&b, MsgType::Add, T0, Errno::Einval, diag);
    }
}

#[test]
fn multicast_or_broadcast_source_is_bad_src_12() {
    let mut k = kernel();
    for src in ["224.0.0.5", "239.1.2.3", "255.255.255.255", "ff02::1"] {
        let dst = if src.contains(':') {
            "2001:db8::2"
        } else {
            PEER
        };
        k.refused(
            &esp_add(0x100, Some(src), dst),
            T0,
            Errno::Einval,
            Diagnostic::BadSrc,
        );
        k.refused(
            &by_spi(MsgType::Get, satype::ESP, 0x100, dst).with(addr(ExtKind::AddressSrc, src)),
            T0,
            Errno::Einval,
            Diagnostic::BadSrc,
        );
    }
}

#[test]
fn unspecified_destination_is_bad_dst_13() {
    let mut k = kernel();
    for dst in ["0.0.0.0", "::"] {
        k.refused(
            &esp_add(0x100, None, dst),
            T0,
            Errno::Einval,
            Diagnostic::BadDst,
        );
        k.refused(
            &by_spi(MsgType::Get, satype::ESP, 0x100, dst),
            T0,
            Errno::Einval,
            Diagnostic::BadDst,
        );
        k.refused(
            &by_spi(MsgType::Delete, satype::ESP, 0x100, dst),
            T0,
            Errno::Einval,
            Diagnostic::BadDst,
        );
    }
}

#[test]
fn natt_local_address_that_is_me_is_malformed_natt_loc_55() {
    let mut k = kernel();
    let natt = |a: Extension| {
        esp_add(0x100, Some(ME), PEER)
            .sa_edit(|s| s.flags = flags::X_NATT_LOC)
            .with(a)
    };
    k.refused(
        &natt(addr(ExtKind::AddressNattLoc, ME)),
        T0,
        Errno::Einval,
        Diagnostic::MalformedNattLoc,
    );
    k.refused(
        &natt(addr(ExtKind::AddressNattLoc, "127.0.0.1")),
        T0,
        Errno::Einval,
        Diagnostic::MalformedNattLoc,
    );
    // Not-me and unspecified (port-only) are what NAT-T local may be.
    k.ok(&natt(addr(ExtKind::AddressNattLoc, "192.0.2.7")), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(reply_ip(&got, ExtKind::AddressNattLoc), ip("192.0.2.7"));
    k.ok(
        &natt(port_only(ExtKind::AddressNattLoc, 4500)).sa_edit(|s| s.spi = 0x101),
        T0,
    );
}

#[test]
fn natt_local_address_that_is_ipv6_is_bad_natt_loc_af_69() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).with(addr(ExtKind::AddressNattLoc, "2001:db8::7"));
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadNattLocAf);
}

#[test]
fn natt_remote_address_that_is_me_is_56_and_unspecified_only_with_inner_addresses() {
    let mut k = kernel();
    let req = |a: Extension| esp_add(0x100, Some(ME), PEER).with(a);
    k.refused(
        &req(addr(ExtKind::AddressNattRem, ME)),
        T0,
        Errno::Einval,
        Diagnostic::MalformedNattRem,
    );
    k.refused(
        &req(port_only(ExtKind::AddressNattRem, 4500)),
        T0,
        Errno::Einval,
        Diagnostic::MalformedNattRem,
    );
    k.ok(&tunnel(req(port_only(ExtKind::AddressNattRem, 4500))), T0);
    k.ok(
        &req(addr(ExtKind::AddressNattRem, "198.51.100.9")).sa_edit(|s| s.spi = 0x101),
        T0,
    );
}

#[test]
fn natt_remote_address_that_is_ipv6_is_bad_natt_rem_af_68() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).with(addr(ExtKind::AddressNattRem, "2001:db8::9"));
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadNattRemAf);
}

#[test]
fn inner_source_without_inner_destination_is_59_and_the_reverse_58() {
    let mut k = kernel();
    let only_src =
        esp_add(0x100, Some(ME), PEER).with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24));
    k.refused(&only_src, T0, Errno::Einval, Diagnostic::MissingInnerDst);
    let only_dst =
        esp_add(0x100, Some(ME), PEER).with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    k.refused(&only_dst, T0, Errno::Einval, Diagnostic::MissingInnerSrc);
}

#[test]
fn inner_address_families_that_differ_are_inner_af_mismatch_67() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER)
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "2001:db8:1::", 48));
    k.refused(&req, T0, Errno::Einval, Diagnostic::InnerAfMismatch);
}

#[test]
fn inner_prefix_longer_than_the_family_allows_is_64_for_source_and_65_for_destination() {
    let mut k = kernel();
    let v4 = |sp: u8, dp: u8| {
        esp_add(0x100, Some(ME), PEER)
            .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", sp))
            .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", dp))
    };
    k.refused(&v4(33, 24), T0, Errno::Einval, Diagnostic::PrefixInnerSrc);
    k.refused(&v4(24, 33), T0, Errno::Einval, Diagnostic::PrefixInnerDst);
    let v6 = esp_add(0x100, Some(ME), PEER)
        .with(inner(ExtKind::AddressInnerSrc, "2001:db8:1::", 48))
        .with(inner(ExtKind::AddressInnerDst, "2001:db8:2::", 129));
    k.refused(&v6, T0, Errno::Einval, Diagnostic::PrefixInnerDst);
    k.ok(&v4(32, 32), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        got.address(ExtKind::AddressInnerSrc).map(|a| a.prefix_len),
        Some(32)
    );
}

#[test]
fn inner_protocols_that_differ_are_inner_proto_mismatch_71() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER)
        .with(inner_pp(ExtKind::AddressInnerSrc, "192.168.1.0", 24, 0, 6))
        .with(inner_pp(ExtKind::AddressInnerDst, "192.168.2.0", 24, 0, 17));
    k.refused(&req, T0, Errno::Einval, Diagnostic::InnerProtoMismatch);
}

#[test]
fn inner_and_outer_ports_both_set_is_dual_port_sets_72() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER)
        .set(addr_pp(ExtKind::AddressDst, PEER, 500, 0))
        .with(inner_pp(ExtKind::AddressInnerSrc, "192.168.1.0", 24, 80, 0))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    k.refused(&req, T0, Errno::Einval, Diagnostic::DualPortSets);
}

#[test]
fn source_and_destination_of_different_families_are_af_mismatch_11() {
    let mut k = kernel();
    k.refused(
        &esp_add(0x100, Some("2001:db8::1"), PEER),
        T0,
        Errno::Einval,
        Diagnostic::AfMismatch,
    );
    k.refused(
        &esp_add(0x100, Some(ME), "2001:db8::2"),
        T0,
        Errno::Einval,
        Diagnostic::AfMismatch,
    );
    // Only an unspecified IPv6 source is converted; an unspecified IPv4
    // source with an IPv6 destination is a mismatch like any other.
    k.refused(
        &esp_add(0x100, Some("0.0.0.0"), "2001:db8::2"),
        T0,
        Errno::Einval,
        Diagnostic::AfMismatch,
    );
}

#[test]
fn unspecified_ipv6_source_with_ipv4_destination_is_converted_to_ipv4() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, None, PEER), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        reply_ip(&got, ExtKind::AddressSrc),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    );
    assert_eq!(
        reply_ip(&got, ExtKind::AddressDst),
        ip(PEER),
        "IPv4 SAs are reported as AF_INET"
    );
}

#[test]
fn source_and_destination_protocol_mismatch_is_70_whatever_the_families() {
    let mut k = kernel();
    let req = esp_add(0x100, None, PEER)
        .set(addr_pp(ExtKind::AddressSrc, ME, 0, 6))
        .set(addr_pp(ExtKind::AddressDst, PEER, 0, 17));
    k.refused(&req, T0, Errno::Einval, Diagnostic::ProtoMismatch);
    // One side 0 means "any": no conflict.
    let req = esp_add(0x100, None, PEER).set(addr_pp(ExtKind::AddressSrc, ME, 0, 6));
    k.ok(&req, T0);
}

#[test]
fn proposal_extension_in_a_request_is_prop_present_38() {
    let mut k = kernel();
    let prop = Extension::Proposal(Proposal::default());
    k.refused(
        &esp_add(0x100, Some(ME), PEER).with(prop.clone()),
        T0,
        Errno::Einval,
        Diagnostic::PropPresent,
    );
    k.refused(
        &by_spi(MsgType::Get, satype::AH, 0x100, PEER).with(prop),
        T0,
        Errno::Einval,
        Diagnostic::PropPresent,
    );
}

#[test]
fn supported_extension_in_a_request_is_supp_present_39() {
    let mut k = kernel();
    for kind in [ExtKind::SupportedAuth, ExtKind::SupportedEncrypt] {
        let sup = Extension::Supported(kind, vec![]);
        k.refused(
            &esp_add(0x100, Some(ME), PEER).with(sup.clone()),
            T0,
            Errno::Einval,
            Diagnostic::SuppPresent,
        );
        k.refused(
            &by_spi(MsgType::Delete, satype::ESP, 0x100, PEER).with(sup),
            T0,
            Errno::Einval,
            Diagnostic::SuppPresent,
        );
    }
}

#[test]
fn ah_message_with_an_encryption_key_is_ekey_present_37_for_every_ah_message_type() {
    let mut k = kernel();
    k.ok(&ah_add(0x100, Some(ME), PEER), T0);
    let ekey = key(ExtKind::KeyEncrypt, 128, AES128);
    let reqs = [
        ah_add(0x200, Some(ME), PEER),
        update(MsgType::Update, satype::AH, 0x100, Some(ME), PEER),
        by_spi(MsgType::Delete, satype::AH, 0x100, PEER),
        by_spi(MsgType::Get, satype::AH, 0x100, PEER),
        getspi(satype::AH, PEER, ME, 0x1000, 0x2000),
    ];
    for req in reqs {
        k.refused(
            &req.with(ekey.clone()),
            T0,
            Errno::Einval,
            Diagnostic::EkeyPresent,
        );
    }
}

#[test]
fn address_checks_run_before_the_message_level_checks() {
    let mut k = kernel();
    let prop = Extension::Proposal(Proposal::default());
    let sup = Extension::Supported(ExtKind::SupportedAuth, vec![]);
    k.refused(
        &esp_add(0x100, Some("224.0.0.5"), PEER).with(prop.clone()),
        T0,
        Errno::Einval,
        Diagnostic::BadSrc,
    );
    k.refused(
        &esp_add(0x100, None, "0.0.0.0").with(sup),
        T0,
        Errno::Einval,
        Diagnostic::BadDst,
    );
    k.refused(
        &esp_add(0x100, Some("2001:db8::1"), PEER).with(prop),
        T0,
        Errno::Einval,
        Diagnostic::AfMismatch,
    );
    let ah =
        ah_add(0x100, Some("255.255.255.255"), PEER).with(key(ExtKind::KeyEncrypt, 128, AES128));
    k.refused(&ah, T0, Errno::Einval, Diagnostic::BadSrc);
}

#[test]
fn address_checks_run_in_the_documented_order() {
    let mut k = kernel();
    // 12 before 13.
    k.refused(
        &esp_add(0x100, Some("224.0.0.5"), "0.0.0.0"),
        T0,
        Errno::Einval,
        Diagnostic::BadSrc,
    );
    // 13 before NAT-T.
    let req = esp_add(0x100, None, "0.0.0.0").with(addr(ExtKind::AddressNattLoc, "2001:db8::7"));
    k.refused(&req, T0, Errno::Einval, Diagnostic::BadDst);
    // NAT-T local before NAT-T remote before the inner checks.
    let req = esp_add(0x100, Some(ME), PEER)
        .with(addr(ExtKind::AddressNattLoc, ME))
        .with(addr(ExtKind::AddressNattRem, ME))
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24));
    k.refused(&req, T0, Errno::Einval, Diagnostic::MalformedNattLoc);
    let req = req.without(ExtKind::AddressNattLoc);
    k.refused(&req, T0, Errno::Einval, Diagnostic::MalformedNattRem);
    // Inner checks before the outer family check.
    let req = req
        .without(ExtKind::AddressNattRem)
        .set(addr(ExtKind::AddressSrc, "2001:db8::1"));
    k.refused(&req, T0, Errno::Einval, Diagnostic::MissingInnerDst);
    // 72 before 11, 11 before 70.
    let req = req
        .with(inner_pp(ExtKind::AddressInnerDst, "192.168.2.0", 24, 80, 0))
        .set(addr_pp(ExtKind::AddressDst, PEER, 500, 17))
        .set(addr_pp(ExtKind::AddressSrc, "2001:db8::1", 0, 6));
    k.refused(&req, T0, Errno::Einval, Diagnostic::DualPortSets);
    let req = req
        .without(ExtKind::AddressInnerSrc)
        .without(ExtKind::AddressInnerDst);
    k.refused(&req, T0, Errno::Einval, Diagnostic::AfMismatch);
    let req = req.set(addr_pp(ExtKind::AddressSrc, ME, 0, 6));
    k.refused(&req, T0, Errno::Einval, Diagnostic::ProtoMismatch);
}
