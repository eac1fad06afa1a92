//! The netns bench with real applications: `ping` and `iperf3` between
//! two network namespaces whose traffic the live simulated hosts protect
//! (ESP tunnel between gateways, ESP and AH transport through
//! bump-in-the-stack hosts), IPv4 and IPv6; a capture of the outer link,
//! read by tshark with the generated esp_sa file, holds only ESP/AH and
//! decrypts; the SAs' byte counters match iperf3's. Needs root, TAP,
//! iperf3 and ping: without them each test says SKIPPED loudly, and fails
//! instead where `IPSEC_REQUIRE_ROOT` is set (CI, which runs as root).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sim::bench::{Alg, Bench, BenchSpec, Mode, Tools};

fn tools() -> Tools {
    Tools {
        sim: env!("CARGO_BIN_EXE_sim").into(),
        ipseckey: env!("CARGO_BIN_EXE_ipseckey").into(),
    }
}

/// Whether the bench can run; says why not, loudly (or fails under
/// IPSEC_REQUIRE_ROOT).
fn can_run(what: &str) -> bool {
    match sim::bench::preflight() {
        Ok(()) => true,
        Err(e) => {
            let msg = format!("SKIPPED: {what}: {e}");
            if std::env::var_os("IPSEC_REQUIRE_ROOT").is_some() {
                panic!("{msg} (IPSEC_REQUIRE_ROOT is set)");
            }
            eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
            false
        }
    }
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg = "SKIPPED: tshark not installed: the capture is not checked";
        if std::env::var_os("IPSEC_REQUIRE_ORACLES").is_some() {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    }
    ok
}

/// The outbound SA's bytes (the protected IP packets, before protection)
/// on the a side, and the inbound SA's on the b side, for the SA from a
/// to b of the family (spi 0x1000 IPv4, 0x1002 IPv6).
fn sa_bytes(counters: &[Value], spi: &str) -> (u64, u64) {
    let find = |c: &Value, field: &str| {
        c["hosts"][0]["sas"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["spi"] == spi))
            .and_then(|s| s[field].as_u64())
            .unwrap_or_else(|| panic!("no SA {spi}: {c}"))
    };
    (
        find(&counters[0], "bytes_out"),
        find(&counters[1], "bytes_in"),
    )
}

/// Reads a capture with tshark and the esp_sa file; returns the
/// protocol stack of every frame (`eth:ethertype:ip:esp:ip:tcp`...).
fn tshark_protocols(pcap: &Path, esp_sa: &Path) -> Vec<String> {
    let conf = pcap.with_extension("wireshark");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::copy(esp_sa, conf.join("esp_sa")).unwrap();
    let o = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &conf)
        .args([
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ])
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.protocols"])
        .output()
        .expect("tshark");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// On the outer link: nothing but ESP or AH (and the link's own ARP and
/// neighbour discovery); the ESP decrypts to `inner` at least `min`
/// times.
fn assert_only_ipsec(protocols: &[String], wrapper: &str, inner: &str, min: usize) {
    let mut opened = 0;
    for p in protocols {
        let link_own = p.ends_with(":arp") || (p.contains(":icmpv6") && !p.contains(wrapper));
        assert!(
            link_own || p.contains(&format!(":{wrapper}")),
            "clear text on the outer link: {p}"
        );
        if p.contains(&format!(":{wrapper}:")) && p.contains(inner) {
            opened += 1;
        }
    }
    assert!(
        opened >= min,
        "only {opened} frames opened to {inner}: {:?}",
        &protocols[..protocols.len().min(20)]
    );
}

/// ping and a 8 MB iperf3 TCP transfer over one family; the SA byte
/// counters cover iperf3's bytes with TCP/IP headers and retransmissions,
/// and the b side opened no more than the a side sent.
/// GSO frames read and segments cut, then merged frames written and the
/// segments in them, over both processes' TAPs.
fn gso_in(counters: &[serde_json::Value]) -> [u64; 4] {
    let mut t = [0; 4];
    for c in counters {
        for p in c["ports"].as_array().into_iter().flatten() {
            if p["kind"] == "tap" {
                for (k, key) in [
                    "gso_frames_in",
                    "gso_segments_in",
                    "gro_frames_out",
                    "gro_segments_out",
                ]
                .iter()
                .enumerate()
                {
                    t[k] += p[key].as_u64().expect(key);
                }
            }
        }
    }
    t
}

fn traffic(b: &mut Bench, v6: bool, spi: &str) {
    let (sent, received) = b.ping(v6, 5).unwrap();
    assert_eq!(
        (sent, received),
        (5, 5),
        "ping over {}",
        if v6 { "IPv6" } else { "IPv4" }
    );
    let before = sa_bytes(&b.counters().unwrap(), spi);
    let gso_before = gso_in(&b.counters().unwrap());
    let r = b.iperf(v6, 0, Some(8 << 20)).unwrap();
    // iperf3's receiver total may miss the last bytes in flight when the
    // test ends; the sender's is what TCP delivered. With -n the sender
    // stops after the write that reaches n, and its total then can exceed
    // n by part of a 128 KiB block (seen: +128 KiB, +70 KiB), so the bound
    // is n and a little more, not n exactly.
    assert!((8 << 20..=9 << 20).contains(&r.bytes_sent), "{r:?}");
    assert!(
        r.bytes_received > 0 && r.bytes_received <= r.bytes_sent,
        "{r:?}"
    );
    // Bytes still in flight when iperf3 ends may cross later (or never:
    // the server stops reading at the end of the test).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = sa_bytes(&b.counters().unwrap(), spi);
    // With the TAPs' offload on, the sender's kernel hands its TCP over
    // in large frames that the simulated host cuts into segments, and
    // the receiving host merges runs of segments into large frames for
    // its TAP (and every byte above still arrived, counted by the SAs
    // and iperf3); without offload, neither.
    let gso = gso_in(&b.counters().unwrap());
    let d: Vec<u64> = (0..4).map(|k| gso[k] - gso_before[k]).collect();
    if b.spec.offload {
        assert!(
            d[0] > 0 && d[1] > 2 * d[0],
            "offload on: {} GSO frames read, {} segments cut",
            d[0],
            d[1]
        );
        assert!(
            d[2] > 0 && d[3] > 2 * d[2],
            "offload on: {} merged frames written, {} segments in them",
            d[2],
            d[3]
        );
    } else {
        assert_eq!(d, [0, 0, 0, 0], "offload off");
    }
    let (out, inn) = (after.0 - before.0, after.1 - before.1);
    let (got, put) = (r.bytes_received, r.bytes_sent);
    assert!(out >= got, "SA out {out} bytes < iperf3's {got} received");
    // Headers (at most 80 bytes per 1448-byte segment with IPv6), the
    // control connection and retransmissions: well under 15%.
    assert!(
        out <= put + put * 15 / 100,
        "SA out {out} bytes for iperf3's {put} sent"
    );
    assert!(
        inn <= out && inn >= got,
        "b opened {inn} bytes, a sent {out}, iperf3 received {got}"
    );
}

/// One captured bench: ping and iperf3 over IPv4 and IPv6 (`traffic`),
/// torn down without leftovers, and the outer capture read by tshark:
/// each (protocol, stack suffix, at least) of `expect` holds.
fn captured_bench(mode: Mode, alg: Alg, offload: bool, expect: &[(&str, &str, usize)]) {
    let spec = BenchSpec {
        mode,
        alg,
        mtu: 1500,
        capture: true,
        queues: 1,
        streams: 1,
        replay: 0,
        offload,
    };
    let mut b = Bench::up(&spec, &tools()).unwrap();
    traffic(&mut b, false, "0x1000");
    traffic(&mut b, true, "0x1002");
    b.down();
    assert!(b.leftovers().is_empty(), "left behind: {:?}", b.leftovers());
    let (pcap, esp_sa) = b.capture().expect("capture and esp_sa written");
    if tshark_available() {
        let p = tshark_protocols(&pcap, &esp_sa);
        for &(proto, suffix, at_least) in expect {
            assert_only_ipsec(&p, proto, suffix, at_least);
        }
    }
    b.remove_dir();
}

#[test]
fn esp_tunnel_between_gateways_ipv4_and_ipv6() {
    if !can_run("ESP tunnel bench") {
        return;
    }
    captured_bench(
        Mode::Tunnel,
        Alg::AesGcm,
        true,
        &[
            ("esp", ":ip:tcp", 1000),
            ("esp", ":ipv6:tcp", 1000),
            ("esp", ":ipv6:icmpv6", 10),
        ],
    );
}

#[test]
fn esp_transport_through_bump_in_the_stack_hosts() {
    if !can_run("ESP transport bench") {
        return;
    }
    // Transport mode: the TCP header follows ESP directly.
    captured_bench(
        Mode::Transport,
        Alg::AesCbcSha1,
        true,
        &[("esp", ":esp:tcp", 1000), ("esp", ":esp:icmp", 5)],
    );
}

#[test]
fn ah_transport_ipv4_and_ipv6() {
    if !can_run("AH bench") {
        return;
    }
    // AH leaves the payload readable (integrity only): what matters is
    // that every packet carries AH. The TAPs here are without offload:
    // one read per segment.
    captured_bench(
        Mode::Transport,
        Alg::AhSha1,
        false,
        &[("ah", ":ah:tcp", 1000)],
    );
}

/// A bench torn down halfway (an error, a panic unwinding, Ctrl-C in
/// `sim bench-net`) leaves nothing; nor does one whose process was killed
/// outright, once the next bench cleans up.
#[test]
fn teardown_leaves_nothing_behind() {
    if !can_run("bench teardown") {
        return;
    }
    let spec = BenchSpec {
        mode: Mode::Tunnel,
        alg: Alg::Clear,
        mtu: 1500,
        capture: false,
        queues: 2,
        streams: 1,
        replay: 0,
        offload: true,
    };
    let b = Bench::up(&spec, &tools()).unwrap();
    let (ns, taps) = (b.ns.clone(), b.taps.clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _b = b;
        panic!("a test failing halfway");
    }));
    assert!(r.is_err());
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for n in &ns {
        assert!(!list.contains(n.as_str()), "namespace {n} left: {list}");
    }
    for t in &taps {
        assert!(
            !Path::new("/sys/class/net").join(t).exists(),
            "TAP {t} left"
        );
    }
    // A bench of a process that died: its names carry a pid no longer
    // running; the next bench (or `sim bench-net clean`) removes them.
    let stale = "ipsb4194303x0a";
    Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    let removed = sim::bench::clean_stale();
    assert!(removed.iter().any(|r| r.contains(stale)), "{removed:?}");
}

/// The threads of a process (their names, as `/proc` shows them).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(n) = std::fs::read_to_string(t.path().join("comm")) {
                names.push(n.trim().to_string());
            }
        }
    }
    names
}

/// A two-queue TAP on each side is served by one thread per queue; eight
/// TCP streams, which the kernel spreads over the queues by flow, cross
/// the tunnel while both threads protect with the one SA. The receiving
/// SA has a small replay window (4 packets, so that any overtaking
/// shows) and loses nothing to it: the threads put the SA's packets on
/// the wire in sequence order. (Without that ordering this run loses
/// thousands of packets as "too old".)
#[test]
fn multi_queue_taps_have_a_thread_per_queue_and_keep_sequence_order() {
    if !can_run("multi-queue bench") {
        return;
    }
    let spec = BenchSpec {
        mode: Mode::Tunnel,
        alg: Alg::AesGcm,
        mtu: 1500,
        capture: false,
        queues: 2,
        streams: 8,
        replay: 4,
        offload: true,
    };
    let mut b = Bench::up(&spec, &tools()).unwrap();
    for pid in b.pids() {
        let names = thread_names(pid);
        for q in ["lan-q0", "lan-q1"] {
            assert!(
                names.iter().any(|n| n == q),
                "no thread {q} in {pid}: {names:?}"
            );
        }
    }
    let (sent, received) = b.ping(false, 5).unwrap();
    assert_eq!((sent, received), (5, 5));
    let r = b.iperf(false, 3, None).unwrap();
    assert!(r.bytes_received > 1 << 20, "{r:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let c = b.counters().unwrap();
    // a's outbound SA for IPv4 is 0x1000; b opened it.
    let find = |v: &Value, spi: &str| -> Value {
        v["hosts"][0]["sas"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["spi"] == spi))
            .cloned()
            .unwrap_or_else(|| panic!("no SA {spi}: {v}"))
    };
    let out = find(&c[0], "0x1000");
    let inn = find(&c[1], "0x1000");
    let sent_pkts = out["packets_out"].as_u64().unwrap();
    let opened = inn["packets_in"].as_u64().unwrap();
    assert!(sent_pkts > 1000, "{out}");
    for (name, n) in inn["drops"].as_object().unwrap() {
        assert!(
            !matches!(name.as_str(), "replay" | "too old"),
            "{n} packets dropped by the replay window ({name}): {inn}"
        );
    }
    // Loopback UDP may lose a few frames under load, never more than sent.
    assert!(
        opened <= sent_pkts && opened * 100 >= sent_pkts * 99,
        "sent {sent_pkts}, opened {opened}"
    );
    // Each queue's thread read frames from the kernel (on one side at
    // least: the kernel picks a queue per flow, from a random hash per
    // connection, so eight streams and the control connection all on one
    // queue on both sides is a chance of 1 in 65,536), and the
    // per-queue counts add up to the TAP's.
    let mut per_queue = [0u64; 2];
    for side in &c {
        let tap = side["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["kind"] == "tap"))
            .unwrap_or_else(|| panic!("no tap port: {side}"));
        let q: Vec<u64> = tap["queue_frames_in"]
            .as_array()
            .unwrap_or_else(|| panic!("no queue counts: {tap}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(q.len(), 2, "{tap}");
        assert_eq!(
            q.iter().sum::<u64>(),
            tap["frames_in"].as_u64().unwrap(),
            "{tap}"
        );
        per_queue[0] += q[0];
        per_queue[1] += q[1];
    }
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "one queue idle: {per_queue:?}"
    );
    b.down();
    assert!(b.leftovers().is_empty(), "left behind: {:?}", b.leftovers());
}
