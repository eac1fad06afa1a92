//! SADB structure, insertion and lookup (ipseckey-behaviour.md 5.1, 5.2
//! step 14).

mod common;
use common::*;

use std::net::{IpAddr, Ipv4Addr};

fn get_hint(spi: u32, dst: &str, hint: u64) -> Message {
    by_spi(MsgType::Get, satype::ESP, spi, dst).sa_edit(|s| s.flags = hint)
}

#[test]
fn add_duplicate_spi_and_dst_is_eexist_regardless_of_source() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    for src in [Some(ME), Some("10.0.0.3"), None] {
        k.refused(
            &esp_add(0x100, src, PEER),
            T0,
            Errno::Eexist,
            Diagnostic::None,
        );
    }
    assert_eq!(k.dump(satype::ESP, T0).len(), 1);
}

#[test]
fn inbound_and_outbound_sas_with_the_same_spi_and_dst_cannot_coexist() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(PEER), ME), T0);
    assert_eq!(k.sa(satype::ESP, 0x100, ME, T0).flags, flags::X_INBOUND);
    let outbound = esp_add(0x100, Some("10.0.0.3"), ME).sa_edit(|s| s.flags = flags::X_OUTBOUND);
    k.refused(&outbound, T0, Errno::Eexist, Diagnostic::None);
}

#[test]
fn same_spi_with_another_destination_family_or_sa_type_is_another_sa() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&esp_add(0x100, Some(ME), "10.0.0.3"), T0);
    k.ok(&esp_add(0x100, Some("2001:db8::1"), "2001:db8::2"), T0);
    k.ok(&ah_add(0x100, Some(ME), PEER), T0);
    assert_eq!(k.dump(satype::ESP, T0).len(), 3);
    assert_eq!(k.dump(satype::AH, T0).len(), 1);
    assert_eq!(k.sa(satype::AH, 0x100, PEER, T0).auth, AALG_MD5);
    assert_eq!(k.sa(satype::ESP, 0x100, PEER, T0).auth, AALG_SHA1);
}

#[test]
fn lookup_needs_the_same_spi_and_destination_else_esrch_78() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.gone(satype::ESP, 0x101, PEER, T0);
    k.gone(satype::ESP, 0x100, "10.0.0.3", T0);
    k.gone(satype::AH, 0x100, PEER, T0);
    k.refused(
        &by_spi(MsgType::Delete, satype::ESP, 0x101, PEER),
        T0,
        Errno::Esrch,
        Diagnostic::SaNotfound,
    );
    assert_eq!(k.sa(satype::ESP, 0x100, PEER, T0).spi, 0x100);
}

#[test]
fn lookup_source_must_match_unless_either_source_is_unspecified() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    k.ok(&esp_add(0x200, None, PEER), T0);
    let get = |spi: u32, src: Extension| by_spi(MsgType::Get, satype::ESP, spi, PEER).with(src);
    k.ok(&get(0x100, addr(ExtKind::AddressSrc, ME)), T0);
    k.ok(&get(0x100, unspec_src()), T0);
    k.refused(
        &get(0x100, addr(ExtKind::AddressSrc, "10.0.0.3")),
        T0,
        Errno::Esrch,
        Diagnostic::SaNotfound,
    );
    // The SA's source is unspecified: any requested source matches.
    k.ok(&get(0x200, addr(ExtKind::AddressSrc, "10.0.0.3")), T0);
}

#[test]
fn ipv4_mapped_addresses_are_converted_to_ipv4_before_anything_else() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    // A plain AF_INET destination names the SA added with a mapped one.
    let plain = Message::new(MsgType::Get, satype::ESP, 0, 0)
        .with(SaExt {
            spi: 0x100,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 0, 0),
        ));
    let got = k.ok(&plain, T0);
    assert_eq!(reply_ip(&got, ExtKind::AddressSrc), ip(ME));
    assert_eq!(reply_ip(&got, ExtKind::AddressDst), ip(PEER));
    // An IPv6 SA to the mapped form's IPv6 twin does not exist.
    k.gone(satype::ESP, 0x100, "::a00:2", T0);
}

#[test]
fn a_cloned_sa_is_dumped_once_and_deleted_with_both_copies() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, None, PEER), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, PEER, T0).flags,
        flags::X_INBOUND | flags::X_OUTBOUND
    );
    assert_eq!(
        k.dump(satype::ESP, T0).len(),
        1,
        "DUMP lists a cloned SA once"
    );
    for hint in [flags::X_INBOUND, flags::X_OUTBOUND] {
        assert_eq!(
            k.ok(&get_hint(0x100, PEER, hint), T0).sa().map(|s| s.spi),
            Some(0x100)
        );
    }
    let del = k.ok(&by_spi(MsgType::Delete, satype::ESP, 0x100, PEER), T0);
    assert_eq!(del.msg_type, MsgType::Delete);
    for hint in [flags::X_INBOUND, flags::X_OUTBOUND] {
        k.refused(
            &get_hint(0x100, PEER, hint),
            T0,
            Errno::Esrch,
            Diagnostic::SaNotfound,
        );
    }
    assert!(k.dump(satype::UNSPEC, T0).is_empty());
}

#[test]
fn loopback_addresses_are_always_this_host() {
    // Config::local_addrs is empty here: 127.0.0.1 and ::1 are still "me".
    let mut k = kernel_with(|c| c.local_addrs.clear());
    k.ok(&esp_add(0x100, Some(PEER), "127.0.0.1"), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, "127.0.0.1", T0).flags,
        flags::X_INBOUND
    );
    k.ok(&esp_add(0x100, Some("2001:db8::2"), "::1"), T0);
    assert_eq!(k.sa(satype::ESP, 0x100, "::1", T0).flags, flags::X_INBOUND);
    // ... and 10.0.0.1 is not: the same SA is outbound-and-cloned there.
    k.ok(&esp_add(0x100, Some(PEER), ME), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, ME, T0).flags,
        flags::X_INBOUND | flags::X_OUTBOUND
    );
}
