//! Independent oracle: scapy's IPsec layer (tests/oracle/scapy_ipsec.py).
//! Packets this engine makes must decrypt and verify in scapy; packets
//! scapy makes must decrypt and verify here; a flipped byte is refused by
//! both. Every algorithm x mode x family x {ESP, AH} x {plain, ESN, NAT-T}
//! that scapy supports.
//!
//! Needs python3 with scapy and cryptography (`.ci/run` installs them from
//! tests/oracle/requirements.txt). Without them the test says so loudly and
//! skips; with `IPSEC_REQUIRE_ORACLES=1` (set by CI) it fails instead.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use esp_ah::{DropReason, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::satype;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn oracle_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import scapy.layers.ipsec, cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg =
            "SKIPPED: scapy oracle unavailable (python3 with scapy and cryptography not found); \
                   install with: pip install -r tests/oracle/requirements.txt";
        if std::env::var_os("IPSEC_REQUIRE_ORACLES").is_some() {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    }
    ok
}

fn run_oracle(mode: &str, cases: &[Value]) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("ipsec-oracle-{}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("cases.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({ "cases": cases })).expect("json"),
    )
    .expect("write cases");
    let out = Command::new("python3")
        .arg(repo().join("tests/oracle/scapy_ipsec.py"))
        .arg(mode)
        .arg(&file)
        .output()
        .expect("run scapy oracle");
    assert!(
        out.status.success(),
        "oracle exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("oracle JSON");
    let _ = std::fs::remove_dir_all(&dir);
    v["results"].as_array().cloned().unwrap_or_default()
}

fn crypt_name(e: EncrAlg) -> Option<&'static str> {
    Some(match e {
        EncrAlg::Null => "NULL",
        EncrAlg::DesCbc => "DES-CBC",
        EncrAlg::TripleDesCbc => "3DES-CBC",
        EncrAlg::BlowfishCbc => "Blowfish-CBC",
        EncrAlg::AesCbc => "AES-CBC",
        EncrAlg::AesCtr => "AES-CTR",
        EncrAlg::AesGcm8 => "AES-GCM-8",
        EncrAlg::AesGcm12 => "AES-GCM-12",
        EncrAlg::AesGcm16 => "AES-GCM-16",
        EncrAlg::AesGmac => "AES-GMAC",
        EncrAlg::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        EncrAlg::AesCcm16 => "AES-CCM-16",
        // scapy has no 8- or 12-byte CCM ICV.
        _ => return None,
    })
}

fn auth_name(a: AuthAlg) -> &'static str {
    match a {
        AuthAlg::None => "NULL",
        AuthAlg::HmacMd5 => "HMAC-MD5-96",
        AuthAlg::HmacSha1 => "HMAC-SHA1-96",
        AuthAlg::HmacSha256 => "SHA2-256-128",
        AuthAlg::HmacSha384 => "SHA2-384-192",
        AuthAlg::HmacSha512 => "SHA2-512-256",
    }
}

struct Case {
    spec: SaSpec,
    esn: bool,
    isrc: &'static str,
    idst: &'static str,
    name: String,
}

fn cases() -> Vec<Case> {
    let esp_algs = [
        (EncrAlg::Null, AuthAlg::HmacSha1),
        (EncrAlg::DesCbc, AuthAlg::HmacMd5),
        (EncrAlg::TripleDesCbc, AuthAlg::HmacSha1),
        (EncrAlg::BlowfishCbc, AuthAlg::HmacSha256),
        (EncrAlg::AesCbc, AuthAlg::HmacSha256),
        (EncrAlg::AesCbc, AuthAlg::HmacSha384),
        (EncrAlg::AesCbc, AuthAlg::HmacSha512),
        (EncrAlg::AesCtr, AuthAlg::HmacSha1),
        (EncrAlg::AesGcm8, AuthAlg::None),
        (EncrAlg::AesGcm12, AuthAlg::None),
        (EncrAlg::AesGcm16, AuthAlg::None),
        (EncrAlg::AesGmac, AuthAlg::None),
        (EncrAlg::AesCcm16, AuthAlg::None),
        (EncrAlg::ChaCha20Poly1305, AuthAlg::None),
    ];
    let layouts = [
        ("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2", false),
        (
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::1",
            "2001:db8::2",
            false,
        ),
        ("10.0.0.1", "10.0.0.2", "172.16.1.5", "172.16.2.9", true),
        (
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8:a::5",
            "2001:db8:b::9",
            true,
        ),
        (
            "10.0.0.1",
            "10.0.0.2",
            "2001:db8:a::5",
            "2001:db8:b::9",
            true,
        ),
    ];
    let mut out = Vec::new();
    let mut spi = 0x5000;
    let mut push =
        |mut spec: SaSpec, esn: bool, is: &'static str, id: &'static str, tunnel: bool| {
            spi += 1;
            spec.spi = spi;
            if tunnel {
                let p = |a: &str| if ip(a).is_ipv4() { 24 } else { 64 };
                spec.tunnel = Some(((ip(is), p(is)), (ip(id), p(id))));
            }
            let name = format!(
                "{} {:?}/{:?} {is}->{id} tunnel={tunnel} esn={esn} natt={}",
                if spec.satype == satype::ESP {
                    "esp"
                } else {
                    "ah"
                },
                spec.encr,
                spec.auth,
                spec.natt
            );
            out.push(Case {
                spec,
                esn,
                isrc: is,
                idst: id,
                name,
            });
        };
    for (encr, auth) in esp_algs {
        for (os, od, is, id, tunnel) in layouts {
            for esn in [false, true] {
                push(SaSpec::esp(0, os, od, encr, auth), esn, is, id, tunnel);
            }
        }
        let mut s = SaSpec::esp(0, "10.0.0.1", "10.0.0.2", encr, auth);
        s.natt = true;
        push(s.clone(), false, "10.0.0.1", "10.0.0.2", false);
        push(s, false, "172.16.1.5", "172.16.2.9", true);
    }
    for auth in [
        AuthAlg::HmacMd5,
        AuthAlg::HmacSha1,
        AuthAlg::HmacSha256,
        AuthAlg::HmacSha384,
        AuthAlg::HmacSha512,
    ] {
        for (os, od, is, id, tunnel) in layouts {
            for esn in [false, true] {
                push(SaSpec::ah(0, os, od, auth), esn, is, id, tunnel);
            }
        }
    }
    out
}

/// A high sequence number for ESN cases, so the unsent high half matters.
const ESN_SEQ: u64 = (7 << 32) + 41;

fn case_json(c: &Case, seq: u64, plain: &[u8], protected: Option<&[u8]>) -> Value {
    let s = &c.spec;
    let mut v = json!({
        "name": c.name,
        "proto": if s.satype == satype::ESP { "esp" } else { "ah" },
        "spi": s.spi,
        "seq": seq,
        "esn": c.esn,
        "mode": if s.tunnel.is_some() { "tunnel" } else { "transport" },
        "crypt_alg": if s.satype == satype::ESP { crypt_name(s.encr).unwrap_or("NULL") } else { "NULL" },
        "crypt_key": hex::encode(&s.encr_key),
        "auth_alg": auth_name(s.auth),
        "auth_key": hex::encode(&s.auth_key),
        "nat_t": if s.natt { json!({"sport": 4500, "dport": 4500}) } else { Value::Null },
        "plain": hex::encode(plain),
    });
    if s.tunnel.is_some() {
        v["tunnel_src"] = json!(s.src.to_string());
        v["tunnel_dst"] = json!(s.dst.to_string());
    }
    if let Some(p) = protected {
        v["protected"] = json!(hex::encode(p));
    }
    v
}

fn hosts(c: &Case) -> (Host, sadb::SaId, Host, sadb::SaId) {
    let opts = SaOptions {
        esn: c.esn,
        icv_len: None,
    };
    let mut a = Host::new(&c.spec.src.to_string());
    let mut b = Host::new(&c.spec.dst.to_string());
    let oid = a.add(&c.spec, opts);
    let iid = b.add(&c.spec, opts);
    if c.esn {
        if let Some(sa) = a.db.sa_mut(oid) {
            sa.seq_out = ESN_SEQ - 1;
        }
        if let Some(sa) = b.db.sa_mut(iid) {
            sa.replay.set_highest(ESN_SEQ - 3);
        }
    }
    (a, oid, b, iid)
}

#[test]
fn scapy_verifies_what_we_send_and_we_verify_what_scapy_sends() {
    if !oracle_available() {
        return;
    }
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.spec.satype == satype::AH || crypt_name(c.spec.encr).is_some())
        .collect();
    let plain_of = |c: &Case| udp_packet(c.isrc, c.idst, format!("oracle {}", c.name).as_bytes());

    // 1. Ours -> scapy.
    let mut ours = Vec::new();
    for c in &cases {
        let (mut a, oid, _, _) = hosts(c);
        let plain = plain_of(c);
        let wire = a
            .send(oid, &plain)
            .unwrap_or_else(|v| panic!("{}: {v:?}", c.name));
        let seq = if c.esn { ESN_SEQ } else { 1 };
        ours.push(case_json(c, seq, &plain, Some(&wire)));
    }
    let results = run_oracle("check", &ours);
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for r in &results {
        if r["ok"] != json!(true) {
            failures.push(format!("{}: {}", r["name"], r["detail"]));
        }
    }
    assert!(
        failures.is_empty(),
        "scapy refused {} of our packets:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // 2. scapy -> ours.
    let mut theirs = Vec::new();
    for c in &cases {
        let seq = if c.esn { ESN_SEQ } else { 1 };
        theirs.push(case_json(c, seq, &plain_of(c), None));
    }
    let made = run_oracle("make", &theirs);
    assert_eq!(made.len(), cases.len());
    for (c, m) in cases.iter().zip(&made) {
        assert_eq!(
            m["ok"],
            json!(true),
            "scapy could not make {}: {}",
            c.name,
            m["detail"]
        );
        let wire = hex::decode(m["protected"].as_str().unwrap_or_default()).expect("hex");
        let (_, _, mut b, iid) = hosts(c);
        // A flipped byte in the protected tail is refused and counted ...
        let mut bad = wire.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert_eq!(
            b.receive(&bad),
            Err(Verdict::Drop(DropReason::BadIcv)),
            "{}",
            c.name
        );
        // ... and the intact packet is accepted and restored.
        let got = b
            .receive(&wire)
            .unwrap_or_else(|v| panic!("{}: we refused scapy's packet: {v:?}", c.name));
        let plain = plain_of(c);
        if c.spec.tunnel.is_some() {
            assert_eq!(hex::encode(&got), hex::encode(&plain), "{}", c.name);
        } else {
            // Transport mode: compare what follows the IP header (scapy
            // rebuilds lengths and checksums its own way).
            let hl = if plain[0] >> 4 == 4 { 20 } else { 40 };
            assert_eq!(
                hex::encode(&got[hl..]),
                hex::encode(&plain[hl..]),
                "{}",
                c.name
            );
            assert_eq!(&got[..2], &plain[..2], "{}", c.name);
        }
        let ctr = &b.engine.transform(iid).expect("tf").counters;
        assert_eq!(
            (ctr.packets_in, ctr.dropped(DropReason::BadIcv)),
            (1, 1),
            "{}",
            c.name
        );
    }
    eprintln!("scapy oracle: {} cases each way agreed", cases.len());
}
