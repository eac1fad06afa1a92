//! The printers against ipseckey-behaviour.md 3.2-3.7 and 4.7.
//!
//! Dates are never asserted as literals (decisions.md 16): expected texts
//! embed `format_date()` of the same epochs, so every other byte is checked
//! whatever the local time zone.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{Local, TimeZone};
use ipseckey::print::{
    dump_succeeded, format_date, human_bytes, human_secs, message_block, monitor_block,
    save_header, save_record, verbose_block, PrintOpts,
};
use sadb::pfkey::{
    flags, Address, AlgDesc, Dialect, ExtKind, Extension, Identity, Key, Lifetime, Message,
    MsgType, SaExt, SpiRange,
};
use sadb::{Config, Jitter, KeyMaterial, Sadb};

/// 14:42:00 on the day of the composed example (UTC; printed in local time).
const ADDED: u64 = 1_764_340_920;
const ESP: u8 = 3;
const AH: u8 = 2;

const N: PrintOpts = PrintOpts {
    numeric: true,
    paranoid: false,
    verbose: false,
};
const PLAIN: PrintOpts = PrintOpts {
    numeric: false,
    paranoid: false,
    verbose: false,
};

// ---------------------------------------------------------------------------
// Builders

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("test address"))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
}

fn mapped(s: &str) -> IpAddr {
    IpAddr::V6(
        s.parse::<Ipv4Addr>()
            .expect("test address")
            .to_ipv6_mapped(),
    )
}

fn addr(kind: ExtKind, ip: IpAddr, port: u16, proto: u8) -> Extension {
    Extension::Address(kind, Address::new(ip, port, proto))
}

fn prefixed(kind: ExtKind, ip: IpAddr, prefix_len: u8, port: u16, proto: u8) -> Extension {
    let mut a = Address::new(ip, port, proto);
    a.prefix_len = prefix_len;
    Extension::Address(kind, a)
}

fn sa(spi: u32, state: u8, auth: u8, encrypt: u8, flags: u64) -> Extension {
    Extension::Sa(SaExt {
        spi,
        replay: 0,
        state,
        auth,
        encrypt,
        flags,
    })
}

fn key(kind: ExtKind, bits: u16, reserved: u16, hex_key: &str) -> Extension {
    let material = KeyMaterial::new(hex::decode(hex_key).expect("test key"));
    Extension::Key(
        kind,
        Key {
            bits,
            reserved,
            material,
        },
    )
}

fn lifetime(kind: ExtKind, allocations: u32, bytes: u64, addtime: u64, usetime: u64) -> Extension {
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

fn msg(msg_type: MsgType, satype: u8, exts: Vec<Extension>) -> Message {
    let mut m = Message::new(msg_type, satype, 1, 4242);
    m.exts = exts;
    m
}

fn d(epoch: u64) -> String {
    format_date(epoch)
}

/// Compares line by line so a failure names the first differing line.
#[track_caller]
fn assert_text(actual: &str, expected: &str) {
    let a: Vec<&str> = actual.split('\n').collect();
    let e: Vec<&str> = expected.split('\n').collect();
    for (i, (x, y)) in a.iter().zip(e.iter()).enumerate() {
        assert_eq!(
            x,
            y,
            "line {} differs\n--- actual ---\n{actual}\n--- expected ---\n{expected}",
            i + 1
        );
    }
    assert_eq!(
        a.len(),
        e.len(),
        "line counts differ\n--- actual ---\n{actual}\n--- expected ---\n{expected}"
    );
}

/// The lines of `text` that start with `prefix`.
fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The kernel's GET reply of ipseckey-behaviour.md 3.3, built field by field.
fn get_reply_3_3() -> Message {
    msg(
        MsgType::Get,
        ESP,
        vec![
            sa(0x2112, 1, 2, 2, flags::X_OUTBOUND),
            lifetime(ExtKind::LifetimeCurrent, 0, 0, ADDED, 0),
            lifetime(ExtKind::LifetimeHard, 0, 0, 28800, 0),
            lifetime(ExtKind::LifetimeSoft, 0, 0, 23989, 0),
            addr(ExtKind::AddressSrc, v4("10.0.0.1"), 0, 0),
            addr(ExtKind::AddressDst, v4("10.0.0.2"), 0, 0),
            key(ExtKind::KeyAuth, 128, 0, "bde359723576fdea08e56cbe876e24ad"),
            key(ExtKind::KeyEncrypt, 64, 0, "bf02928f7cef2938"),
        ],
    )
}

/// The text of 3.3 with `soft` as the soft add lifetime.
fn expected_3_3(soft: u64) -> String {
    let now = ADDED + 190;
    let soft_left = soft - 190;
    format!(
        "Base message (version 2) type GET, SA type ESP.
Message length 216 bytes, seq=1, pid=4242.
SA: SADB_ASSOC spi=0x2112, replay window size=0, state=MATURE
SA: Authentication algorithm = hmac-md5
SA: Encryption algorithm = des-cbc
SA: flags=0x8000 < X_OUTBOUND >
SRC: Source address (proto=0)
SRC: AF_INET: port 0, 10.0.0.1.
DST: Destination address (proto=0)
DST: AF_INET: port 0, 10.0.0.2.
AKY: Authentication key.
AKY: bde359723576fdea08e56cbe876e24ad/128
EKY: Encryption key.
EKY: bf02928f7cef2938/64
 LT: Lifetime information
CLT: Current lifetime information:
CLT: 0 bytes protected, 0 allocations used.
CLT: SA added at time: {added}
CLT: Time now is {now_d}
SLT: Soft lifetime information:
SLT: 0 bytes of lifetime, 0 allocations.
SLT: {soft} seconds {soft_h} of post-add lifetime.
SLT: 0 seconds of post-use lifetime.
SLT: Soft expiration occurs in {soft_left} seconds {soft_left_h}
SLT: Time of expiration: {soft_at}.
HLT: Hard lifetime information:
HLT: 0 bytes of lifetime, 0 allocations.
HLT: 28800 seconds (8.00 hours) of post-add lifetime.
HLT: 0 seconds of post-use lifetime.
HLT: Hard expiration occurs in 28610 seconds (7.95 hours)
HLT: Time of expiration: {hard_at}.
",
        added = d(ADDED),
        now_d = d(now),
        soft_h = human_secs(soft).expect("soft > 60"),
        soft_left_h = human_secs(soft_left).expect("left > 60"),
        soft_at = d(ADDED + soft),
        hard_at = d(ADDED + 28800),
    )
}

// ---------------------------------------------------------------------------
// 3.3 get

#[test]
fn get_with_n_prints_the_composed_example_of_3_3() {
    let m = get_reply_3_3();
    let bytes = m.emit(Dialect::Illumos).expect("encodable");
    assert_eq!(
        bytes.len(),
        216,
        "the reply of 3.3 is 216 bytes on the wire"
    );
    // Print what a PF_KEY socket would read.
    let read = Message::parse(&bytes, Dialect::Illumos).expect("decodable");
    let out = message_block(&read, N, ADDED + 190);
    assert_text(&out, &expected_3_3(23989));
    assert!(out.contains("(6.66 hours)") && out.contains("occurs in 23799 seconds (6.61 hours)"));
}

#[test]
fn get_reply_of_the_simulated_kernel_prints_as_3_3() {
    // The SADB of this project behind the printer: add, then get 190 s later.
    let cfg = Config {
        local_addrs: HashSet::from([v4("10.0.0.1")]),
        jitter: Jitter::Off,
        idle_default: false,
        ..Config::default()
    };
    let mut db = Sadb::new(cfg);
    let add = msg(
        MsgType::Add,
        ESP,
        vec![
            sa(0x2112, 1, 2, 2, 0),
            lifetime(ExtKind::LifetimeHard, 0, 0, 28800, 0),
            lifetime(ExtKind::LifetimeSoft, 0, 0, 24000, 0),
            addr(ExtKind::AddressSrc, mapped("10.0.0.1"), 0, 0),
            addr(ExtKind::AddressDst, mapped("10.0.0.2"), 0, 0),
            key(ExtKind::KeyAuth, 128, 0, "bde359723576fdea08e56cbe876e24ad"),
            key(ExtKind::KeyEncrypt, 64, 0, "be02938e7def2839"),
        ],
    );
    let reply = db.handle(&add, ADDED).reply().cloned().expect("ADD reply");
    assert_eq!(
        reply.errno,
        0,
        "ADD refused:\n{}",
        message_block(&reply, N, ADDED)
    );
    let get = msg(
        MsgType::Get,
        ESP,
        vec![
            sa(0x2112, 0, 0, 0, 0),
            addr(ExtKind::AddressDst, mapped("10.0.0.2"), 0, 0),
        ],
    );
    let reply = db
        .handle(&get, ADDED + 190)
        .reply()
        .cloned()
        .expect("GET reply");
    let bytes = reply.emit(Dialect::Illumos).expect("encodable");
    let read = Message::parse(&bytes, Dialect::Illumos).expect("decodable");
    // Without jitter the soft add lifetime is the requested 24000.
    assert_text(&message_block(&read, N, ADDED + 190), &expected_3_3(24000));
}

#[test]
fn without_n_addresses_carry_protocol_names_and_suffixes() {
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            addr(ExtKind::AddressSrc, v4("10.0.0.1"), 0, 0),
            addr(ExtKind::AddressDst, v4("0.0.0.0"), 500, 17),
            addr(ExtKind::AddressInnerSrc, v6("::"), 0, 6),
            addr(ExtKind::AddressInnerDst, mapped("0.0.0.0"), 0, 4),
            addr(ExtKind::AddressNattLoc, v6("2001:db8::1"), 4500, 200),
            addr(ExtKind::AddressNattRem, v4("192.0.2.1"), 0, 58),
        ],
    );
    let out = message_block(&m, PLAIN, ADDED);
    let body: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "SRC: Source address (proto=0/<unspecified>)",
            "SRC: AF_INET: port 0, 10.0.0.1 <unknown>.",
            "DST: Destination address (proto=17/udp)",
            "DST: AF_INET: port 500, 0.0.0.0 <unspecified>.",
            "INS: Inner source address (proto=6/tcp)",
            "INS: AF_INET6: port 0, :: <unspecified>.",
            // A mapped 0.0.0.0 is not the unspecified IPv6 address.
            "IND: Inner destination address (proto=4/ipip)",
            "IND: AF_INET6: port 0, ::ffff:0.0.0.0 <unknown>.",
            "NLC: NAT-T local address (proto=200/<unknown>)",
            "NLC: AF_INET6: port 4500, 2001:db8::1 <unknown>.",
            "NRM: NAT-T remote address (proto=58/ipv6-icmp)",
            "NRM: AF_INET: port 0, 192.0.2.1 <unknown>.",
        ]
    );
    // -n drops both the names and the suffixes.
    let numeric = message_block(&m, N, ADDED);
    assert!(
        numeric.contains("DST: Destination address (proto=17)\nDST: AF_INET: port 500, 0.0.0.0.\n")
    );
    assert!(!numeric.contains('<'), "{numeric}");
}

#[test]
fn ipv6_addresses_print_as_inet_ntop_does() {
    for (ip, text) in [
        (mapped("10.0.0.2"), "::ffff:10.0.0.2"),
        (v6("2001:db8::1"), "2001:db8::1"),
        (v6("fe80::1:0:0:1"), "fe80::1:0:0:1"),
        (v6("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1"),
        (v6("::1"), "::1"),
        (v6("1::"), "1::"),
        (v6("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2:3:4:5:6"),
    ] {
        let m = msg(MsgType::Get, ESP, vec![addr(ExtKind::AddressDst, ip, 0, 0)]);
        let out = message_block(&m, N, ADDED);
        assert!(
            out.contains(&format!("DST: AF_INET6: port 0, {text}.\n")),
            "{ip}: {out}"
        );
        assert!(
            out.contains("Message length 56 bytes"),
            "8 + 32-byte sockaddr_in6: {out}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3.2.1 SA extension

#[test]
fn flags_print_in_illumos_order_and_none_as_empty_brackets() {
    let all = flags::PFS
        | flags::NOREPLAY
        | flags::X_USED
        | flags::X_PAIRED
        | flags::X_OUTBOUND
        | flags::X_INBOUND
        | flags::X_UNIQUE
        | flags::X_AALG1
        | flags::X_AALG2
        | flags::X_EALG1
        | flags::X_EALG2
        | flags::X_NATT_LOC
        | flags::X_NATT_REM
        | flags::X_TUNNEL
        | flags::X_NATTED;
    let out = message_block(&msg(MsgType::Get, ESP, vec![sa(1, 1, 0, 0, all)]), N, ADDED);
    assert_eq!(
        lines_with(&out, "SA: flags="),
        ["SA: flags=0xfc1bd003 < PFS NOREPLAY X_USED X_PAIRED X_OUTBOUND X_INBOUND X_UNIQUE X_AALG1 X_AALG2 \
          X_EALG1 X_EALG2 X_NATT_LOC X_NATT_REM X_TUNNEL X_NATTED >"]
    );
    let none = message_block(&msg(MsgType::Get, ESP, vec![sa(1, 1, 0, 0, 0)]), N, ADDED);
    assert_eq!(lines_with(&none, "SA: flags="), ["SA: flags=0x0 < >"]);
    // KM bits have no name: only the hex value shows them.
    let km = flags::X_KM1 | flags::X_KM4 | flags::X_INBOUND;
    let out = message_block(&msg(MsgType::Get, ESP, vec![sa(1, 1, 0, 0, km)]), N, ADDED);
    assert_eq!(
        lines_with(&out, "SA: flags="),
        ["SA: flags=0x2404000 < X_INBOUND >"]
    );
}

#[test]
fn sa_line_states_and_algorithm_lines() {
    let states = [
        "LARVAL",
        "MATURE",
        "DYING",
        "DEAD",
        "ACTIVE_ELSEWHERE",
        "IDLE",
        "<unknown 6>",
        "<unknown 255>",
    ];
    for (n, name) in [0u8, 1, 2, 3, 4, 5, 6, 255].into_iter().zip(states) {
        let m = msg(
            MsgType::Get,
            AH,
            vec![Extension::Sa(SaExt {
                spi: 0xdead,
                replay: 32,
                state: n,
                ..SaExt::default()
            })],
        );
        let out = message_block(&m, N, ADDED);
        assert_eq!(
            lines_with(&out, "SA: SADB_ASSOC"),
            [format!(
                "SA: SADB_ASSOC spi=0xdead, replay window size=32, state={name}"
            )]
        );
        // Algorithms 0 print no line at all.
        assert!(!out.contains("algorithm ="), "{out}");
    }
    // ESP without encr_alg shows null (11); known names are the first names.
    let m = msg(MsgType::Get, ESP, vec![sa(1, 1, 3, 11, 0)]);
    let out = message_block(&m, N, ADDED);
    assert!(
        out.contains("SA: Authentication algorithm = hmac-sha1\nSA: Encryption algorithm = null\n"),
        "{out}"
    );
    let m = msg(MsgType::Get, ESP, vec![sa(1, 1, 7, 20, 0)]);
    let out = message_block(&m, N, ADDED);
    assert!(
        out.contains(
            "SA: Authentication algorithm = hmac-sha512\nSA: Encryption algorithm = aes-gcm\n"
        ),
        "{out}"
    );
}

#[test]
fn unknown_algorithms_print_unknown_n_in_blocks_and_numbers_in_save() {
    let m = msg(MsgType::Dump, ESP, vec![sa(0x10, 1, 4, 17, 0)]);
    let out = message_block(&m, N, ADDED);
    assert!(out.contains(
        "SA: Authentication algorithm = <unknown 4>\nSA: Encryption algorithm = <unknown 17>\n"
    ));
    let saved = save_record(&m, N);
    assert!(
        saved.contains("    spi 0x10 encr_alg 17 auth_alg 4 replay 0  \\\n"),
        "{saved}"
    );
}

// ---------------------------------------------------------------------------
// 3.2 base header and errors

#[test]
fn base_line_names_types_and_satypes() {
    let cases: [(MsgType, u8, &str); 8] = [
        (
            MsgType::Reserved,
            0,
            "type RESERVED (warning: set to 0), SA type <unspecified/all>.",
        ),
        (MsgType::UpdatePair, 2, "type UPDATE PAIR, SA type AH."),
        (MsgType::DelPair, 3, "type DELETE PAIR, SA type ESP."),
        (MsgType::DelPairState, 3, "type Unknown (15), SA type ESP."),
        (MsgType::Promisc, 1, "type X_PROMISC, SA type <unknown 1>."),
        (
            MsgType::InverseAcquire,
            5,
            "type X_INVERSE_ACQUIRE, SA type RSVP.",
        ),
        (MsgType::Expire, 8, "type EXPIRE, SA type Mobile IP."),
        (MsgType::Flush, 9, "type FLUSH, SA type <unknown 9>."),
    ];
    for (t, satype, text) in cases {
        let m = Message::new(t, satype, 77, 99);
        assert_eq!(
            message_block(&m, PLAIN, ADDED),
            format!("Base message (version 2) {text}\nMessage length 16 bytes, seq=77, pid=99.\n")
        );
    }
}

#[test]
fn error_reply_prints_strerror_and_the_diagnostic() {
    let mut m = Message::new(MsgType::Add, ESP, 3, 7);
    m.errno = 22;
    m.reserved = 73;
    assert_eq!(
        message_block(&m, N, ADDED),
        "Base message (version 2) type ADD, SA type ESP.\n\
         Error Invalid argument from PF_KEY.\n  \
         Diagnostic code 73:  Pairing failed, target SA unsuitable for pairing.\n\
         Message length 16 bytes, seq=3, pid=7.\n"
    );
    let mut m = Message::new(MsgType::Get, ESP, 1, 7);
    m.errno = 3;
    m.reserved = 78;
    let out = message_block(&m, N, ADDED);
    assert!(
        out.contains("Error No such process from PF_KEY.\n  Diagnostic code 78:  Security association not found.\n")
    );
    // illumos' texts keep their trailing space; unknown codes and errnos.
    m.errno = 22;
    m.reserved = 64;
    assert!(message_block(&m, N, ADDED)
        .contains("  Diagnostic code 64:  Invalid inner-source prefix length .\n"));
    m.errno = 250;
    m.reserved = 83;
    let out = message_block(&m, N, ADDED);
    assert!(
        out.contains(
            "Error Unknown error from PF_KEY.\n  Diagnostic code 83:  Unknown diagnostic code.\n"
        ),
        "{out}"
    );
    // errno 0: no error lines even with a non-zero reserved field.
    m.errno = 0;
    assert!(!message_block(&m, N, ADDED).contains("Diagnostic"));
}

// ---------------------------------------------------------------------------
// 3.2.3 keys

#[test]
fn salted_key_prints_salt_in_brackets_and_save_counts_it() {
    let m = msg(
        MsgType::Dump,
        ESP,
        vec![
            sa(0x300, 1, 0, 20, 0),
            key(
                ExtKind::KeyEncrypt,
                128,
                32,
                "00112233445566778899aabbccddeeff01020304",
            ),
        ],
    );
    let out = message_block(&m, N, ADDED);
    assert_eq!(
        lines_with(&out, "EKY: "),
        [
            "EKY: Encryption key.",
            "EKY: 00112233445566778899aabbccddeeff[01020304]/128+32"
        ]
    );
    let saved = save_record(&m, N);
    assert!(
        saved.contains("\tencrkey 00112233445566778899aabbccddeeff01020304/160 \\\n"),
        "{saved}"
    );
    // Bits that are not a whole byte print one more byte.
    let m = msg(
        MsgType::Dump,
        AH,
        vec![key(ExtKind::KeyAuth, 12, 0, "abc0")],
    );
    assert!(message_block(&m, N, ADDED).contains("AKY: Authentication key.\nAKY: abc0/12\n"));
}

#[test]
fn paranoid_prints_xx_for_every_key_byte_in_blocks_and_save() {
    let p = PrintOpts {
        paranoid: true,
        ..N
    };
    let m = msg(
        MsgType::Dump,
        ESP,
        vec![
            sa(0x300, 1, 2, 20, 0),
            key(ExtKind::KeyAuth, 128, 0, "bde359723576fdea08e56cbe876e24ad"),
            key(
                ExtKind::KeyEncrypt,
                128,
                32,
                "00112233445566778899aabbccddeeff01020304",
            ),
        ],
    );
    let out = message_block(&m, p, ADDED);
    assert_eq!(
        lines_with(&out, "AKY: ")[1..],
        ["AKY: XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/128"]
    );
    assert_eq!(
        lines_with(&out, "EKY: ")[1..],
        ["EKY: XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX[XXXXXXXX]/128+32"]
    );
    let saved = save_record(&m, p);
    assert!(
        saved.contains("\tauthkey XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/128 \\\n"),
        "{saved}"
    );
    assert!(
        saved.contains("\tencrkey XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/160 \\\n"),
        "{saved}"
    );
    let v = verbose_block(&m, p, ADDED);
    for text in [&out, &saved, &v] {
        assert!(
            !text.contains("bde359") && !text.contains("0011223344") && !text.contains("01020304"),
            "{text}"
        );
    }
    // Without -p the verbose echo of an outgoing ADD shows the key.
    assert!(verbose_block(&m, N, ADDED).contains("AKY: bde359723576fdea08e56cbe876e24ad/128\n"));
}

// ---------------------------------------------------------------------------
// 3.2.4 other extensions

#[test]
fn identities_print_type_names_and_values() {
    let ident = |kind, id_type, text: &str| {
        Extension::Identity(
            kind,
            Identity {
                id_type,
                id: 0,
                text: text.as_bytes().to_vec(),
            },
        )
    };
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            ident(ExtKind::IdentitySrc, 2, "gw.example.com"),
            ident(ExtKind::IdentityDst, 3, "root@example.com"),
        ],
    );
    let out = message_block(&m, N, ADDED);
    let body: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "SID: Source identity, uid=0, type FQDN",
            "SID: gw.example.com",
            "DID: Destination identity, uid=0, type user-FQDN (mbox)",
            "DID: root@example.com",
        ]
    );
    let saved = save_record(&m, N);
    assert!(saved.contains(
        "\tsrcidtype fqdn gw.example.com \\\n\tdstidtype user_fqdn root@example.com \\\n"
    ));

    for (t, name, saved_name) in [
        (1u16, "prefix", "prefix"),
        (4, "ASN.1 DER Distinguished Name", "der_dn"),
        (5, "ASN.1 DER Generic Name", "der_gn"),
        (6, "Generic key id", "6"),
        (7, "Address range", "7"),
        (9, "<unknown 9>", "9"),
    ] {
        let m = msg(
            MsgType::Get,
            ESP,
            vec![ident(ExtKind::IdentitySrc, t, "10.0.0.0/8")],
        );
        let out = message_block(&m, N, ADDED);
        let der = t == 4 || t == 5;
        let value = if der { "<cannot print>" } else { "10.0.0.0/8" };
        assert!(
            out.contains(&format!(
                "SID: Source identity, uid=0, type {name}\nSID: {value}\n"
            )),
            "{out}"
        );
        let saved = save_record(&m, N);
        let value = if der { "<can-not-print>" } else { "10.0.0.0/8" };
        assert!(
            saved.contains(&format!("\tsrcidtype {saved_name} {value} \\\n")),
            "{saved}"
        );
    }
}

#[test]
fn pair_and_replay_value_lines() {
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            Extension::Pair { spi: 0x2113 },
            Extension::ReplayValue { r32: 42, r64: 0 },
        ],
    );
    let out = message_block(&m, N, ADDED);
    assert!(
        out.ends_with("OTH: Paired with spi=0x2113\nRPL: Replay Value 42\n"),
        "{out}"
    );
    let saved = save_record(&m, N);
    assert!(saved.contains("replay_value 42 \\\n"), "{saved}");
    assert!(!saved.contains("pair"), "pairing is not saved: {saved}");
    // 64-bit value when the 32-bit one is 0; both 0 is illumos' odd text.
    let m = msg(
        MsgType::Get,
        ESP,
        vec![Extension::ReplayValue {
            r32: 0,
            r64: 1 << 40,
        }],
    );
    assert!(message_block(&m, N, ADDED).ends_with("RPL: Replay Value 1099511627776\n"));
    let m = msg(
        MsgType::Get,
        ESP,
        vec![Extension::ReplayValue { r32: 0, r64: 0 }],
    );
    assert!(message_block(&m, N, ADDED).ends_with("RPL: Replay Value <Value not found.>0\n"));
    assert!(!save_record(&m, N).contains("replay_value"));
}

#[test]
fn unknown_extensions_print_type_length_and_words() {
    let body: Vec<u8> = (1..=12).collect();
    let m = msg(
        MsgType::Get,
        ESP,
        vec![Extension::Unknown {
            wire_type: 40,
            body: body.clone(),
        }],
    );
    let out = message_block(&m, N, ADDED);
    // Words in host order, generic header included: len 2 words, type 40.
    let mut raw = Vec::new();
    raw.extend_from_slice(&2u16.to_ne_bytes());
    raw.extend_from_slice(&40u16.to_ne_bytes());
    raw.extend_from_slice(&body);
    let w0 = u64::from_ne_bytes(raw[0..8].try_into().expect("8 bytes"));
    let w1 = u64::from_ne_bytes(raw[8..16].try_into().expect("8 bytes"));
    let body_lines: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        body_lines,
        [
            "UNK: Unknown ext. 40, len 16.".to_string(),
            format!("UNK: 0x{w0:x}"),
            format!("UNK: 0x{w1:x}")
        ]
    );
    assert!(out.contains("Message length 32 bytes"));
    // X_EDUMP has no printer in ipseckey either.
    let m = msg(MsgType::Dump, ESP, vec![Extension::ExtDump { timeout: 0 }]);
    let out = message_block(&m, N, ADDED);
    assert!(out.contains("UNK: Unknown ext. 25, len 16.\n"), "{out}");
    assert!(!save_record(&m, N).contains("UNK"));
}

#[test]
fn register_and_getspi_extensions() {
    let m = msg(
        MsgType::Register,
        ESP,
        vec![
            Extension::Supported(
                ExtKind::SupportedAuth,
                vec![AlgDesc {
                    id: 2,
                    ivlen: 0,
                    minbits: 128,
                    maxbits: 128,
                    increment: 0,
                    saltbits: 0,
                }],
            ),
            Extension::Supported(
                ExtKind::SupportedEncrypt,
                vec![
                    AlgDesc {
                        id: 12,
                        ivlen: 16,
                        minbits: 128,
                        maxbits: 256,
                        increment: 64,
                        saltbits: 0,
                    },
                    AlgDesc {
                        id: 99,
                        ivlen: 8,
                        minbits: 1,
                        maxbits: 2,
                        increment: 1,
                        saltbits: 32,
                    },
                ],
            ),
            Extension::SpiRange(SpiRange {
                min: 0x100,
                max: 0x1ff,
            }),
        ],
    );
    let out = message_block(&m, N, ADDED);
    let body: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "SUA: Supported authentication algorithms.",
            "SUA: hmac-md5 minbits=128, maxbits=128, ivlen=0, saltbits=0.",
            "SUE: Supported encryption algorithms.",
            "SUE: aes-cbc minbits=128, maxbits=256, ivlen=16, saltbits=0, increment=64.",
            "SUE: <unknown 99> minbits=1, maxbits=2, ivlen=8, saltbits=32, increment=1.",
            "SPR: SPI Range, min=0x100, max=0x1ff",
        ]
    );
}

// ---------------------------------------------------------------------------
// 3.2.5 humanisation

#[test]
fn humanised_numbers_change_at_the_illumos_boundaries() {
    assert_eq!(human_bytes(0), None);
    assert_eq!(human_bytes(1024), None);
    assert_eq!(human_bytes(1025).as_deref(), Some("(1.00 KB)"));
    assert_eq!(human_bytes(5000).as_deref(), Some("(4.88 KB)"));
    assert_eq!(human_bytes(16_000_000).as_deref(), Some("(15.26 MB)"));
    assert_eq!(human_bytes(1 << 30).as_deref(), Some("(1.00 GB)"));
    assert_eq!(human_bytes(u64::MAX).as_deref(), Some("(16.00 EB)"));

    assert_eq!(human_secs(60), None);
    assert_eq!(human_secs(61).as_deref(), Some("(1.02 minute)"));
    assert_eq!(human_secs(90).as_deref(), Some("(1.50 minute)"));
    assert_eq!(human_secs(120).as_deref(), Some("(2.00 minutes)"));
    assert_eq!(human_secs(3599).as_deref(), Some("(59.98 minutes)"));
    assert_eq!(human_secs(3600).as_deref(), Some("(1.00 hour)"));
    assert_eq!(
        human_secs(7199).as_deref(),
        Some("(2.00 hour)"),
        "plural follows the value, not the text"
    );
    assert_eq!(human_secs(28800).as_deref(), Some("(8.00 hours)"));
    assert_eq!(human_secs(86399).as_deref(), Some("(24.00 hours)"));
    assert_eq!(human_secs(86400).as_deref(), Some("(1.00 day)"));
    assert_eq!(human_secs(3 * 86400).as_deref(), Some("(3.00 days)"));
    // Truncated to 32 bits first, as illumos does.
    assert_eq!(human_secs((1 << 32) + 61).as_deref(), Some("(1.02 minute)"));
    assert_eq!(human_secs((1 << 32) + 30), None);
}

#[test]
fn humanised_parts_are_placed_with_their_spaces() {
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            lifetime(ExtKind::LifetimeCurrent, 3, 16_000_000, ADDED, 0),
            lifetime(ExtKind::LifetimeSoft, 5, 1024, 60, 61),
            lifetime(ExtKind::LifetimeHard, 0, 1025, 0, 0),
        ],
    );
    let out = message_block(&m, N, ADDED);
    for line in [
        "CLT: 16000000 bytes (15.26 MB) protected, 3 allocations used.",
        "SLT: 1024 bytes of lifetime, 5 allocations.",
        "SLT: 60 seconds of post-add lifetime.",
        "SLT: 61 seconds (1.02 minute) of post-use lifetime.",
        "SLT: 0 bytes more can be protected.",
        "HLT: 1025 bytes (1.00 KB) of lifetime, 0 allocations.",
        "HLT: 0 bytes more can be protected.",
        "SLT: Soft expiration occurs in 60 seconds",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

// ---------------------------------------------------------------------------
// 3.2.6 lifetime group

#[test]
fn expiration_occurs_in_or_occurred_relative_to_now() {
    let used = ADDED + 100;
    let now = ADDED + 1000;
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            lifetime(ExtKind::LifetimeCurrent, 0, 5000, ADDED, used),
            // Soft: add limit passed (ADDED+600), use limit later.
            lifetime(ExtKind::LifetimeSoft, 0, 10_000, 600, 5000),
            // Hard: the use limit (used+950 = now+50) comes before the add one.
            lifetime(ExtKind::LifetimeHard, 0, 0, 90_000, 950),
            lifetime(ExtKind::LifetimeIdle, 0, 0, 90, 30),
        ],
    );
    let out = message_block(&m, N, now);
    let lt: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != " LT: Lifetime information")
        .collect();
    let expected = format!(
        " LT: Lifetime information
CLT: Current lifetime information:
CLT: 5000 bytes (4.88 KB) protected, 0 allocations used.
CLT: SA added at time: {}
CLT: SA first used at time {}
CLT: Time now is {}
SLT: Soft lifetime information:
SLT: 10000 bytes (9.77 KB) of lifetime, 0 allocations.
SLT: 600 seconds (10.00 minutes) of post-add lifetime.
SLT: 5000 seconds (1.39 hour) of post-use lifetime.
SLT: 5000 bytes (4.88 KB) more can be protected.
SLT: Soft expiration occurred
SLT: Time of expiration: {}.
HLT: Hard lifetime information:
HLT: 0 bytes of lifetime, 0 allocations.
HLT: 90000 seconds (1.04 day) of post-add lifetime.
HLT: 950 seconds (15.83 minutes) of post-use lifetime.
HLT: Hard expiration occurs in 50 seconds
HLT: Time of expiration: {}.
ILT: Idle lifetime information:
ILT: 90 seconds (1.50 minute) of post-add lifetime.
ILT: 30 seconds of post-use lifetime.",
        d(ADDED),
        d(used),
        d(now),
        d(ADDED + 600),
        d(used + 950),
    );
    assert_text(&lt.join("\n"), &expected);
    // The lifetime group comes after every other extension.
    assert!(out.starts_with("Base message"));

    // A use limit on an unused SA does not count; no limit at all, no lines.
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            lifetime(ExtKind::LifetimeCurrent, 0, 0, ADDED, 0),
            lifetime(ExtKind::LifetimeSoft, 0, 0, 0, 30),
            lifetime(ExtKind::LifetimeHard, 0, 0, 100, 30),
        ],
    );
    let out = message_block(&m, N, ADDED + 10);
    assert!(!out.contains("SLT: Soft expiration"), "{out}");
    assert!(
        out.contains("HLT: Hard expiration occurs in 90 seconds (1.50 minute)\n"),
        "{out}"
    );
    // Expiring exactly now still "occurs" (in 0 seconds); a second later it occurred.
    assert!(
        message_block(&m, N, ADDED + 100).contains("HLT: Hard expiration occurs in 0 seconds\n")
    );
    assert!(message_block(&m, N, ADDED + 101).contains("HLT: Hard expiration occurred\n"));
    // Without a current lifetime nothing is relative.
    let m = msg(
        MsgType::Get,
        ESP,
        vec![lifetime(ExtKind::LifetimeHard, 0, 10, 100, 0)],
    );
    let out = message_block(&m, N, ADDED);
    assert!(
        out.ends_with(
            " LT: Lifetime information\n\
             HLT: Hard lifetime information:\n\
             HLT: 10 bytes of lifetime, 0 allocations.\n\
             HLT: 100 seconds (1.67 minute) of post-add lifetime.\n\
             HLT: 0 seconds of post-use lifetime.\n"
        ),
        "{out}"
    );
}

#[test]
fn verbose_adds_a_raw_time_line_after_every_lifetime_date() {
    let v = PrintOpts { verbose: true, ..N };
    let used = ADDED + 100;
    let now = ADDED + 1000;
    let m = msg(
        MsgType::Get,
        ESP,
        vec![
            lifetime(ExtKind::LifetimeCurrent, 0, 0, ADDED, used),
            lifetime(ExtKind::LifetimeSoft, 0, 0, 2000, 0),
            lifetime(ExtKind::LifetimeHard, 0, 0, 3000, 0),
        ],
    );
    let out = message_block(&m, v, now);
    let expected = [
        format!("CLT: SA added at time: {}", d(ADDED)),
        format!("CLT: \t(raw time value {ADDED})"),
        format!("CLT: SA first used at time {}", d(used)),
        format!("CLT: \t(raw time value {used})"),
        format!("CLT: Time now is {}", d(now)),
        format!("CLT: \t(raw time value {now})"),
    ];
    let clt: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("CLT: ") && !l.contains("information") && !l.contains("bytes"))
        .collect();
    assert_eq!(clt, expected);
    assert!(out.contains(&format!(
        "SLT: Time of expiration: {}.\nSLT: \t(raw time value {})\n",
        d(ADDED + 2000),
        ADDED + 2000
    )));
    assert!(out.contains(&format!(
        "HLT: Time of expiration: {}.\nHLT: \t(raw time value {})\n",
        d(ADDED + 3000),
        ADDED + 3000
    )));
    assert_eq!(out.matches("(raw time value").count(), 5);
    assert!(!message_block(&m, N, now).contains("raw time value"));
    // The monitor's timestamp never has one.
    let mon = monitor_block(&m, 112, v, now);
    assert!(
        mon.starts_with(&format!(
            "Read 112 bytes.\nTimestamp: {}\nBase message",
            d(now)
        )),
        "{mon}"
    );
    assert_eq!(mon.matches("(raw time value").count(), 5);
}

// ---------------------------------------------------------------------------
// 3.5 save

#[test]
fn save_record_of_3_5() {
    let m = msg(MsgType::Dump, ESP, get_reply_3_3().exts);
    let text = save_header() + &save_record(&m, N);
    assert_eq!(
        text,
        "# This key file was generated by the ipseckey(1m) command's 'save' feature.\n\
         \n\
         # begin assoc\n\
         add esp  \\\n    \
         spi 0x2112 encr_alg des-cbc auth_alg hmac-md5 replay 0  \\\n\
         \thard_addtime 28800  \\\n\
         \tsoft_addtime 23989  \\\n    \
         src 10.0.0.1 \\\n    \
         dst 10.0.0.2 \\\n\
         \tauthkey bde359723576fdea08e56cbe876e24ad/128 \\\n\
         \tencrkey bf02928f7cef2938/64 \\\n\
         \n\
         # end assoc\n\
         \n"
    );
    // Addresses are numeric whatever -n says.
    assert_eq!(save_record(&m, PLAIN), save_record(&m, N));
}

#[test]
fn save_writes_every_lifetime_field_proto_and_ports() {
    let m = msg(
        MsgType::Dump,
        AH,
        vec![
            Extension::Sa(SaExt {
                spi: 0xabc,
                replay: 64,
                state: 1,
                auth: 3,
                encrypt: 0,
                flags: 0,
            }),
            lifetime(ExtKind::LifetimeCurrent, 1, 2, 3, 4),
            lifetime(ExtKind::LifetimeHard, 10, 20000, 30, 40),
            lifetime(ExtKind::LifetimeIdle, 0, 0, 15, 0),
            addr(ExtKind::AddressSrc, v4("10.0.0.1"), 0, 0),
            addr(ExtKind::AddressDst, v4("10.0.0.2"), 22, 6),
        ],
    );
    let saved = save_record(&m, N);
    assert_eq!(
        saved,
        "# begin assoc\n\
         add ah  \\\n    \
         spi 0xabc auth_alg hmac-sha1 replay 64  \\\n\
         \thard_alloc 10 hard_bytes 20000 hard_addtime 30 hard_usetime 40  \\\n\
         \tidle_addtime 15  \\\n    \
         src 10.0.0.1 \\\n    \
         proto 6 \\\n    \
         dst 10.0.0.2 dport 22 \\\n\
         \n\
         # end assoc\n\
         \n"
    );
    // Other SA types save their number ("all" for 0).
    assert!(save_record(&Message::new(MsgType::Dump, 9, 1, 1), N)
        .starts_with("# begin assoc\nadd 9  \\\n"));
    assert!(save_record(&Message::new(MsgType::Dump, 0, 1, 1), N)
        .starts_with("# begin assoc\nadd all  \\\n"));
}

#[test]
fn save_with_nat_t_has_encap_udp_and_two_space_keywords() {
    let m = msg(
        MsgType::Dump,
        ESP,
        vec![
            sa(
                0x500,
                1,
                5,
                12,
                flags::X_NATT_LOC | flags::X_NATT_REM | flags::X_OUTBOUND,
            ),
            addr(ExtKind::AddressSrc, v4("10.0.0.1"), 4500, 17),
            addr(ExtKind::AddressDst, v4("203.0.113.5"), 4500, 17),
            addr(ExtKind::AddressNattLoc, v4("192.168.1.1"), 0, 0),
            addr(ExtKind::AddressNattRem, v4("203.0.113.9"), 4501, 0),
        ],
    );
    let saved = save_record(&m, N);
    let body: Vec<&str> = saved.lines().collect();
    assert_eq!(
        body,
        [
            "# begin assoc",
            "add esp  \\",
            "    spi 0x500 encr_alg aes-cbc auth_alg hmac-sha256 replay 0 encap udp \\",
            "    proto 17 \\",
            "    src 10.0.0.1 sport 4500 \\",
            "    dst 203.0.113.5 dport 4500 \\",
            "    nat_loc  192.168.1.1 \\",
            "    nat_rem  203.0.113.9 nat_rport 4501 \\",
            "",
            "# end assoc",
            "",
        ]
    );
    // Either NAT-T flag alone is enough.
    let m = msg(MsgType::Dump, ESP, vec![sa(1, 1, 0, 12, flags::X_NATT_REM)]);
    assert!(save_record(&m, N).contains("replay 0 encap udp \\\n"));
}

#[test]
fn save_warns_about_dying_or_dead_sas_right_after_the_add_line() {
    for state in [0u8, 2, 3, 6] {
        let m = msg(MsgType::Dump, ESP, vec![sa(0x77, state, 0, 11, 0)]);
        let saved = save_record(&m, N);
        assert!(
            saved.starts_with(
                "# begin assoc\nadd esp  \\\n# WARNING: SA was dying or dead.\n    spi 0x77 encr_alg null replay 0  \\\n"
            ),
            "state {state}: {saved}"
        );
    }
    let m = msg(MsgType::Dump, ESP, vec![sa(0x77, 1, 0, 11, 0)]);
    assert!(!save_record(&m, N).contains("WARNING"));
}

#[test]
fn tunnel_mode_inner_addresses_in_block_and_save() {
    let m = msg(
        MsgType::Dump,
        ESP,
        vec![
            sa(0x900, 1, 2, 12, flags::X_TUNNEL),
            addr(ExtKind::AddressSrc, v4("10.0.0.1"), 0, 4),
            addr(ExtKind::AddressDst, v4("10.0.0.2"), 0, 4),
            prefixed(ExtKind::AddressInnerSrc, v4("192.168.10.0"), 24, 0, 6),
            prefixed(ExtKind::AddressInnerDst, v4("192.168.20.7"), 32, 80, 6),
        ],
    );
    let out = message_block(&m, PLAIN, ADDED);
    assert_eq!(
        out.lines().skip(6).collect::<Vec<_>>(),
        [
            "SRC: Source address (proto=4/ipip)",
            "SRC: AF_INET: port 0, 10.0.0.1 <unknown>.",
            "DST: Destination address (proto=4/ipip)",
            "DST: AF_INET: port 0, 10.0.0.2 <unknown>.",
            "INS: Inner source address (proto=6/tcp)",
            "INS: AF_INET: port 0, 192.168.10.0/24 <unknown>.",
            "IND: Inner destination address (proto=6/tcp)",
            "IND: AF_INET: port 80, 192.168.20.7/32 <unknown>.",
        ]
    );
    assert!(out.contains("SA: flags=0x20000 < X_TUNNEL >\n"));
    let saved = save_record(&m, N);
    let body: Vec<&str> = saved.lines().skip(3).take(6).collect();
    assert_eq!(
        body,
        [
            "    proto 4 \\",
            "    src 10.0.0.1 \\",
            "    dst 10.0.0.2 \\",
            "    iproto 6 \\",
            "    isrc 192.168.10.0/24 \\",
            // A full-length prefix is not written.
            "    idst 192.168.20.7 idport 80 \\",
        ]
    );
    // IPv6 inner prefixes, and 128 left out.
    let m = msg(
        MsgType::Dump,
        ESP,
        vec![
            prefixed(ExtKind::AddressInnerSrc, v6("2001:db8:1::"), 48, 1234, 0),
            prefixed(ExtKind::AddressInnerDst, v6("2001:db8:2::1"), 128, 0, 0),
        ],
    );
    let saved = save_record(&m, N);
    assert!(
        saved.contains("    isrc 2001:db8:1::/48 isport 1234 \\\n    idst 2001:db8:2::1 \\\n"),
        "{saved}"
    );
    assert!(!saved.contains("iproto"));
    assert!(message_block(&m, N, ADDED).contains("IND: AF_INET6: port 0, 2001:db8:2::1/128.\n"));
}

// ---------------------------------------------------------------------------
// 3.4, 3.6, 3.7 framing

#[test]
fn dump_and_save_fixed_texts() {
    assert_eq!(dump_succeeded(0), "Dump succeeded for SA type 0.\n");
    assert_eq!(dump_succeeded(3), "Dump succeeded for SA type 3.\n");
    assert_eq!(
        save_header(),
        "# This key file was generated by the ipseckey(1m) command's 'save' feature.\n\n"
    );
}

#[test]
fn verbose_framing_of_an_outgoing_get() {
    let get = msg(
        MsgType::Get,
        ESP,
        vec![
            sa(0x2112, 0, 0, 0, 0),
            addr(ExtKind::AddressDst, mapped("10.0.0.2"), 0, 0),
        ],
    );
    let rule = "=".repeat(42);
    assert_eq!(
        verbose_block(&get, PLAIN, ADDED),
        format!(
            "VERBOSE ON:  Message to kernel looks like:\n{rule}\n\
             Base message (version 2) type GET, SA type ESP.\n\
             Message length 72 bytes, seq=1, pid=4242.\n\
             SA: SADB_ASSOC spi=0x2112, replay window size=0, state=LARVAL\n\
             SA: flags=0x0 < >\n\
             DST: Destination address (proto=0/<unspecified>)\n\
             DST: AF_INET6: port 0, ::ffff:10.0.0.2 <unknown>.\n\
             {rule}\n"
        )
    );
    assert!(verbose_block(&get, N, ADDED).contains("DST: AF_INET6: port 0, ::ffff:10.0.0.2.\n"));
}

#[test]
fn monitor_block_has_read_line_timestamp_and_empty_line() {
    let promisc = Message::new(MsgType::Promisc, 1, 1, 4242);
    let now = ADDED + 5;
    assert_eq!(
        monitor_block(&promisc, 16, N, now),
        format!(
            "Read 16 bytes.\nTimestamp: {}\n\
             Base message (version 2) type X_PROMISC, SA type <unknown 1>.\n\
             Message length 16 bytes, seq=1, pid=4242.\n\n",
            d(now)
        )
    );
}

// ---------------------------------------------------------------------------
// Dates and robustness

#[test]
fn dates_have_the_shape_of_c_locale_percent_c() {
    // An independent implementation of the same format (chrono's), in the
    // same local time zone: the day of month is space-padded.
    for t in [0u64, ADDED, ADDED + 9 * 86400, 946_684_799, 4_102_444_800] {
        let chrono_c = Local
            .timestamp_opt(t as i64, 0)
            .single()
            .expect("valid")
            .format("%a %b %e %H:%M:%S %Y");
        assert_eq!(format_date(t), chrono_c.to_string(), "epoch {t}");
        assert_eq!(format_date(t).len(), 24);
    }
    // Absurd values still print something.
    for t in [u64::MAX, i64::MAX as u64, 1 << 40, 1 << 62] {
        assert!(!format_date(t).is_empty());
    }
}

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
}

#[test]
fn malformed_or_random_messages_print_without_panicking() {
    let mut r = Lcg(0x5eed);
    let all_opts = [
        N,
        PLAIN,
        PrintOpts {
            numeric: false,
            paranoid: true,
            verbose: true,
        },
    ];
    for round in 0..400 {
        let mut exts = Vec::new();
        for _ in 0..(r.next() % 8) {
            let big = r.next().wrapping_mul(r.next());
            let e = match r.next() % 12 {
                0 => Extension::Sa(SaExt {
                    spi: big as u32,
                    replay: r.byte(),
                    state: r.byte(),
                    auth: r.byte(),
                    encrypt: r.byte(),
                    flags: big,
                }),
                1 => lifetime(
                    [
                        ExtKind::LifetimeCurrent,
                        ExtKind::LifetimeHard,
                        ExtKind::LifetimeSoft,
                        ExtKind::LifetimeIdle,
                    ][(r.next() % 4) as usize],
                    big as u32,
                    big,
                    r.next().wrapping_mul(1 << 20),
                    big.rotate_left(7),
                ),
                // Keys whose bit counts do not match their bytes.
                2 => Extension::Key(
                    if r.coin() {
                        ExtKind::KeyAuth
                    } else {
                        ExtKind::KeyEncrypt
                    },
                    Key {
                        bits: r.next() as u16,
                        reserved: r.next() as u16,
                        material: KeyMaterial::new(
                            (0..(r.next() % 40)).map(|_| r.byte()).collect(),
                        ),
                    },
                ),
                3 => Extension::Identity(
                    if r.coin() {
                        ExtKind::IdentitySrc
                    } else {
                        ExtKind::IdentityDst
                    },
                    Identity {
                        id_type: r.next() as u16,
                        id: big,
                        text: (0..(r.next() % 20)).map(|_| r.byte()).collect(),
                    },
                ),
                4 => prefixed(
                    [
                        ExtKind::AddressSrc,
                        ExtKind::AddressInnerDst,
                        ExtKind::AddressNattRem,
                        ExtKind::NatTOa,
                    ][(r.next() % 4) as usize],
                    if r.coin() {
                        IpAddr::V4(Ipv4Addr::from(big as u32))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(u128::from(big) << 64 | u128::from(r.next())))
                    },
                    r.byte(),
                    r.next() as u16,
                    r.byte(),
                ),
                5 => Extension::Unknown {
                    wire_type: r.next() as u16,
                    body: (0..(r.next() % 30)).map(|_| r.byte()).collect(),
                },
                6 => Extension::ReplayValue {
                    r32: r.next() as u32 % 3,
                    r64: big % 3,
                },
                7 => Extension::KmCookie {
                    proto: (r.next() % 4) as u32,
                    cookie: big,
                },
                8 => Extension::Pair { spi: big as u32 },
                9 => Extension::Opaque(
                    ExtKind::Policy,
                    (0..(r.next() % 3) * 8 + 4).map(|_| r.byte()).collect(),
                ),
                10 => Extension::Sa2 {
                    mode: r.byte(),
                    sequence: big as u32,
                    reqid: 7,
                },
                _ => Extension::Sensitivity(
                    ExtKind::OuterSensitivity,
                    sadb::pfkey::Sensitivity {
                        dpd: 1,
                        sens_level: 2,
                        integ_level: 3,
                        flags: 4,
                        sens_bitmap: vec![big],
                        integ_bitmap: vec![5],
                    },
                ),
            };
            exts.push(e);
        }
        let types = MsgType::ALL;
        let mut m = msg(types[(r.next() as usize) % types.len()], r.byte(), exts);
        m.errno = if round % 3 == 0 { r.byte() } else { 0 };
        m.reserved = r.next() as u16;
        let now = r.next().wrapping_mul(r.next());
        for opts in all_opts {
            let out = message_block(&m, opts, now);
            assert!(out.starts_with("Base message (version 2) type ") && out.ends_with('\n'));
            let _ = monitor_block(&m, 9999, opts, now);
            let _ = verbose_block(&m, opts, now);
            let saved = save_record(&m, opts);
            assert!(saved.starts_with("# begin assoc\n") && saved.ends_with("\n# end assoc\n\n"));
        }
    }
}

#[test]
fn decoded_random_bytes_print_without_panicking() {
    let mut r = Lcg(42);
    let mut decoded = 0;
    for _ in 0..3000 {
        let words = 2 + (r.next() % 12) as usize;
        let mut b: Vec<u8> = (0..words * 8).map(|_| r.byte()).collect();
        b[0] = 2;
        b[4..6].copy_from_slice(&(words as u16).to_ne_bytes());
        // Plausible extension headers now and then.
        if words > 2 {
            b[16..18].copy_from_slice(&((words - 2) as u16).to_ne_bytes());
            b[18..20].copy_from_slice(&((r.next() % 30) as u16).to_ne_bytes());
        }
        for dialect in [Dialect::Illumos, Dialect::Linux] {
            if let Ok(m) = Message::parse(&b, dialect) {
                decoded += 1;
                let _ = message_block(
                    &m,
                    PrintOpts {
                        numeric: false,
                        paranoid: false,
                        verbose: true,
                    },
                    r.next(),
                );
                let _ = save_record(&m, N);
            }
        }
    }
    assert!(
        decoded > 0,
        "the generator should produce some decodable messages"
    );
}
