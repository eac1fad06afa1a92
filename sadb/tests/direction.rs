//! Which hash table an SA goes into, and the flags it shows
//! (ipseckey-behaviour.md 5.3; this host is 10.0.0.1).
//!
//! The tables are observed from the outside: DUMP walks the outbound table
//! before the inbound one and lists a cloned SA once (pfkey-v2-wire.md 1.8),
//! and only SAs that live in the outbound table alone get the soft-lifetime
//! jitter (5.6). Each test adds an inbound-only reference SA before the SA
//! under test and an outbound-only one after it:
//! - in the outbound table  <=> dumped before the inbound-only reference;
//! - in the inbound table only <=> dumped after the outbound-only reference;
//! - in both (cloned)       <=> in the outbound table, and no jitter.

mod common;
use common::*;

const SOFT: u64 = 1000;

#[derive(Debug, PartialEq, Eq)]
enum Tables {
    InboundOnly,
    OutboundOnly,
    Both,
}

/// Adds `req` (SPI 0x100) between the two references; returns where it
/// went and the flags GET shows.
fn place(req: Message) -> (Tables, u64) {
    let mut k = kernel_with(|c| c.jitter = Jitter::Seeded(7));
    let dst = match req.address(ExtKind::AddressDst) {
        Some(a) => a.addr.canonical_ip(),
        None => panic!("request without destination"),
    };
    // DUMP walks the IPv4 tables before the IPv6 ones: the references
    // must be of the same family as the SA under test.
    let (a, b, c) = if dst.is_ipv4() {
        ("10.0.0.7", "10.0.0.8", "10.0.0.9")
    } else {
        ("2001:db8::7", "2001:db8::8", "2001:db8::9")
    };
    let inbound_ref = esp_add(0x9001, Some(c), a).sa_edit(|s| s.flags = flags::X_INBOUND);
    k.ok(&inbound_ref, T0);
    k.ok(&req.with(soft_add(SOFT)), T0);
    let outbound_ref = esp_add(0x9002, Some(a), b).sa_edit(|s| s.flags = flags::X_OUTBOUND);
    k.ok(&outbound_ref, T0);
    let dst = dst.to_string();

    let spis: Vec<u32> = k
        .dump(satype::ESP, T0)
        .iter()
        .filter_map(|m| m.sa().map(|s| s.spi))
        .collect();
    assert_eq!(
        spis.iter().filter(|&&s| s == 0x100).count(),
        1,
        "listed once: {spis:x?}"
    );
    let pos = |spi: u32| spis.iter().position(|&s| s == spi).unwrap_or(usize::MAX);
    let in_outbound = pos(0x100) < pos(0x9001);
    let inbound_only = pos(0x100) > pos(0x9002);
    assert_ne!(in_outbound, inbound_only, "dump order {spis:x?}");

    let got = k.get(satype::ESP, 0x100, &dst, T0);
    let soft = got
        .lifetime(ExtKind::LifetimeSoft)
        .map(|l| l.addtime)
        .unwrap_or_default();
    let jittered = soft != SOFT;
    let tables = match (in_outbound, jittered) {
        (false, false) => Tables::InboundOnly,
        (true, true) => Tables::OutboundOnly,
        (true, false) => Tables::Both,
        (false, true) => panic!("an inbound-only SA got jitter ({soft})"),
    };
    (tables, got.sa().map(|s| s.flags).unwrap_or_default())
}

fn with_flags(m: Message, f: u64) -> Message {
    m.sa_edit(|s| s.flags = f)
}

#[test]
fn direction_inbound_flag_puts_the_sa_in_the_inbound_table_only_whatever_the_addresses() {
    assert_eq!(
        place(with_flags(esp_add(0x100, Some(ME), PEER), flags::X_INBOUND)),
        (Tables::InboundOnly, flags::X_INBOUND)
    );
    assert_eq!(
        place(with_flags(esp_add(0x100, None, PEER), flags::X_INBOUND)),
        (Tables::InboundOnly, flags::X_INBOUND)
    );
}

#[test]
fn direction_inbound_and_outbound_flags_clone_the_sa() {
    let both = flags::X_INBOUND | flags::X_OUTBOUND;
    assert_eq!(
        place(with_flags(esp_add(0x100, Some(PEER), ME), both)),
        (Tables::Both, both)
    );
    assert_eq!(
        place(with_flags(esp_add(0x100, Some(ME), PEER), both)),
        (Tables::Both, both)
    );
}

#[test]
fn direction_outbound_flag_alone_puts_the_sa_in_the_outbound_table_only() {
    assert_eq!(
        place(with_flags(
            esp_add(0x100, Some(PEER), ME),
            flags::X_OUTBOUND
        )),
        (Tables::OutboundOnly, flags::X_OUTBOUND)
    );
    assert_eq!(
        place(with_flags(esp_add(0x100, None, PEER), flags::X_OUTBOUND)),
        (Tables::OutboundOnly, flags::X_OUTBOUND)
    );
}

#[test]
fn direction_multicast_destination_is_cloned_and_flagged_both_ways() {
    let both = flags::X_INBOUND | flags::X_OUTBOUND;
    assert_eq!(
        place(esp_add(0x100, Some(ME), "224.0.0.5")),
        (Tables::Both, both)
    );
    assert_eq!(
        place(esp_add(0x100, None, "255.255.255.255")),
        (Tables::Both, both)
    );
    assert_eq!(
        place(esp_add(0x100, Some("2001:db8::1"), "ff05::2")),
        (Tables::Both, both)
    );
}

#[test]
fn direction_dst_is_me_and_src_is_not_me_is_inbound_only() {
    // Worked example: src 10.0.0.2 dst 10.0.0.1 -> 0x4000 < X_INBOUND >.
    assert_eq!(
        place(esp_add(0x100, Some(PEER), ME)),
        (Tables::InboundOnly, 0x4000)
    );
}

#[test]
fn direction_dst_is_me_without_src_is_cloned_but_flagged_inbound_only() {
    // Worked example: dst 10.0.0.1 without src -> cloned, 0x4000 only.
    assert_eq!(place(esp_add(0x100, None, ME)), (Tables::Both, 0x4000));
}

#[test]
fn direction_dst_is_me_and_src_is_me_is_cloned_but_flagged_inbound_only() {
    assert_eq!(
        place(esp_add(0x100, Some(ME), ME)),
        (Tables::Both, flags::X_INBOUND)
    );
    assert_eq!(
        place(esp_add(0x100, Some("127.0.0.1"), ME)),
        (Tables::Both, flags::X_INBOUND)
    );
}

#[test]
fn direction_dst_is_not_me_and_src_is_me_is_outbound_only() {
    // Worked example: src 10.0.0.1 dst 10.0.0.2 -> 0x8000 < X_OUTBOUND >.
    assert_eq!(
        place(esp_add(0x100, Some(ME), PEER)),
        (Tables::OutboundOnly, 0x8000)
    );
}

#[test]
fn direction_dst_is_not_me_without_src_is_cloned_and_flagged_both_ways() {
    // Worked example: dst 10.0.0.2 without src -> 0xc000.
    assert_eq!(place(esp_add(0x100, None, PEER)), (Tables::Both, 0xc000));
}

#[test]
fn direction_dst_is_not_me_and_src_is_not_me_is_cloned_and_flagged_both_ways() {
    // Worked example: src 10.0.0.3 dst 10.0.0.2 -> 0xc000.
    assert_eq!(
        place(esp_add(0x100, Some("10.0.0.3"), PEER)),
        (Tables::Both, 0xc000)
    );
}

#[test]
fn direction_flags_on_get_update_and_delete_only_choose_the_table_searched_first() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(PEER), ME), T0);
    k.ok(&esp_add(0x200, Some(ME), PEER), T0);
    for hint in [0, flags::X_INBOUND, flags::X_OUTBOUND] {
        for (spi, dst) in [(0x100, ME), (0x200, PEER)] {
            let got = k.ok(
                &by_spi(MsgType::Get, satype::ESP, spi, dst).sa_edit(|s| s.flags = hint),
                T0,
            );
            assert_eq!(got.sa().map(|s| s.spi), Some(spi));
        }
    }
    let upd = update(MsgType::Update, satype::ESP, 0x100, None, ME)
        .sa_edit(|s| s.flags = flags::X_OUTBOUND);
    k.ok(&upd.with(hard_add(500)), T0);
    assert_eq!(
        k.sa(satype::ESP, 0x100, ME, T0).flags,
        flags::X_INBOUND,
        "the hint does not move the SA"
    );
    k.ok(
        &by_spi(MsgType::Delete, satype::ESP, 0x200, PEER).sa_edit(|s| s.flags = flags::X_INBOUND),
        T0,
    );
    k.gone(satype::ESP, 0x200, PEER, T0);
}
