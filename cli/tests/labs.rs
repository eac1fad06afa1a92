//! Every lab in labs/ runs as a test: its `expect` lines are the checks.

use std::path::{Path, PathBuf};
use std::process::Command;

fn labs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("labs/")
        .filter_map(|e| e.ok().map(|e| e.path().join("lab.txt")))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v
}

fn tmpdir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("lab-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn every_lab_passes_its_own_checks() {
    let all = labs();
    assert!(all.len() >= 3, "labs found: {all:?}");
    for lab in all {
        let dir = tmpdir("run");
        let script = std::fs::read_to_string(&lab).expect("lab script");
        match sim::lab::run(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, true) {
            Ok(report) => assert!(report.contains("summary:"), "{}: {report}", lab.display()),
            Err((report, e)) => panic!("{}: {e}\n{report}", lab.display()),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Lab 1's capture decrypts in Wireshark with the esp_sa file it wrote.
#[test]
fn lab1_capture_decrypts_in_tshark() {
    if Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let msg = "SKIPPED: tshark not installed";
        if std::env::var_os("IPSEC_REQUIRE_ORACLES").is_some() {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
        return;
    }
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/01-esp-transport/lab.txt");
    let dir = tmpdir("tshark");
    let script = std::fs::read_to_string(&lab).expect("lab");
    let report = sim::lab::run(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, false)
        .map_err(|(_, e)| e)
        .expect("lab 1 runs");
    assert!(report.contains("lab1.pcap"), "{report}");
    let conf = dir.join("wireshark");
    std::fs::create_dir_all(&conf).expect("conf dir");
    std::fs::copy(dir.join("lab1.pcap.esp_sa"), conf.join("esp_sa")).expect("esp_sa");
    let o = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &conf)
        .args([
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ])
        .arg("-r")
        .arg(dir.join("lab1.pcap"))
        .args([
            "-T",
            "fields",
            "-e",
            "esp.spi",
            "-e",
            "esp.icv_good",
            "-e",
            "icmp.type",
        ])
        .output()
        .expect("tshark");
    let out = String::from_utf8_lossy(&o.stdout);
    let esp: Vec<&str> = out.lines().filter(|l| l.starts_with("0x")).collect();
    assert_eq!(esp.len(), 6, "3 requests and 3 replies in ESP: {out}");
    for l in esp {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.get(1), Some(&"1"), "ICV good: {l}");
        assert!(
            matches!(f.get(2), Some(&"8") | Some(&"0")),
            "decrypted ICMP echo: {l}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--counters-json`: the counters a lab ends with, as JSON, agree with one
/// another: each duplicate on lab 4's first link is one replay drop on the
/// SA that received it, and the bare link's duplicates are the duplicate
/// replies ping reported.
#[test]
fn lab4_counters_account_for_every_fault() {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/04-replay/lab.txt");
    let dir = tmpdir("json");
    let file = dir.join("counters.json");
    let o = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("lab")
        .arg(&lab)
        .arg("--dir")
        .arg(&dir)
        .arg("--counters-json")
        .arg(&file)
        .output()
        .expect("run sim");
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{report}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("counters file"))
            .expect("valid JSON");
    let link = |name: &str, field: &str| {
        j["links"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == name))
            .and_then(|l| l[field].as_u64())
            .unwrap_or_else(|| panic!("link {name} {field} in {j:#}"))
    };
    let replay = |host: &str, spi: &str| {
        j["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["name"] == host))
            .and_then(|h| h["sas"].as_array())
            .and_then(|sas| sas.iter().find(|s| s["spi"] == spi))
            .map(|s| s["drops"]["replay"].as_u64().unwrap_or(0))
            .unwrap_or_else(|| panic!("{host} SA {spi} in {j:#}"))
    };
    let dups = link("wire", "duplicated");
    assert!(dups > 0, "the link duplicated nothing: {j:#}");
    assert_eq!(dups, replay("bob", "0x100") + replay("alice", "0x200"));
    assert!(report.contains(&format!(
        "ping alice -> 203.0.113.2: 20 sent, 20 received, 0 lost, {} duplicates",
        link("bare", "duplicated")
    )));
    // Every link's frames: sent plus copies is what was delivered.
    for l in j["links"].as_array().expect("links") {
        assert_eq!(
            l["sent"].as_u64().unwrap() + l["duplicated"].as_u64().unwrap()
                - l["dropped"].as_u64().unwrap(),
            l["delivered"].as_u64().unwrap(),
            "{l}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The traffic generator: N datagrams of size S at rate R, each reply
/// matched to its datagram, round trips from the link's delay.
#[test]
fn traffic_generator_rate_and_round_trips() {
    let dir = tmpdir("rate");
    let script = "host a\nhost b\nlink l a:192.0.2.1/24 b:192.0.2.2/24 delay 1 20ms seed 1\n\
                  udp a 192.0.2.2 7 count 10 size 64 rate 100\nexpect received 10\nexpect lost 0\n\
                  counters json\n\
                  udp a 192.0.2.2 7 count 5 size 4 rate 2000\n";
    let (report, e) = sim::lab::run(script, &dir, &mut ipseckey::lab::IpseckeyLoader, false)
        .expect_err("rate 2000 is refused");
    assert_eq!(e.line, 8, "{e}");
    assert!(
        e.msg.contains("rate N: packets per second, 1 to 1000"),
        "{e}"
    );
    // Every frame waits 20 ms each way: 40 ms round trips, but the first
    // four datagrams (sent at 0, 10, 20, 30 ms) wait for ARP, answered at
    // 40 ms: they leave then and return at 80 ms (round trips 80, 70, 60,
    // 50; then six of 40: 500 ms in all, 50 on average).
    assert!(
        report.contains(
            "udp echo a -> 192.0.2.2: 10 sent, 10 received, 0 lost, round trip min/avg/max 40/50.0/80 ms (virtual)"
        ),
        "{report}"
    );
    // 10 datagrams 10 ms apart whatever is in flight: the last leaves at
    // 90 ms and is answered at 130.
    let json = report
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("counters json line");
    let j: serde_json::Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(j["time_ms"], 130, "{j}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Absurd values in a lab script are each one clear error naming their
/// line: never a panic (overflow, a terabyte allocation), never a hang,
/// never a packet IP cannot carry, never a capture that silently fails.
#[test]
fn absurd_values_are_clear_errors_with_their_line() {
    let dir = tmpdir("absurd");
    let head = "host a\nhost b\nlink w a:192.0.2.1/24 b:192.0.2.2/24\n";
    for (line, want) in [
        (
            "ping a 192.0.2.2 count 1000000000000",
            "count N: 1 to 1000000",
        ),
        ("ping a 192.0.2.2 count 0", "count N: 1 to 1000000"),
        ("ping a 192.0.2.2 count", "ping option count needs a value"),
        ("advance 99999999999999999h", "at most 87600h"),
        ("advance 87601h", "at most 87600h"),
        (
            "ping a 192.0.2.2 interval 99999999999999999h count 2",
            "at most 87600h",
        ),
        (
            "ping a 192.0.2.2 size 1000000000",
            "at most 65507 bytes fit one IPv4 packet",
        ),
        (
            "udp a 2001:db8::2 7 size 65528",
            "at most 65527 bytes fit one IPv6 packet",
        ),
        ("capture w /dev/full", "No space left on device"),
    ] {
        let script = format!("{head}{line}\n");
        let t = std::time::Instant::now();
        let (_, e) = sim::lab::run(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, false)
            .expect_err(line);
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{line}");
        assert_eq!(e.line, 4, "{line}: {e}");
        assert!(e.msg.contains(want), "{line}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ten years of virtual time pass at once (the ager's empty passes are
/// skipped), with every EXPIRE on the way: the soft and hard ones of each
/// host's SA, years apart.
#[test]
fn a_decade_of_virtual_time_passes_at_once_with_every_expire() {
    let dir = tmpdir("decade");
    let keys = "add esp spi 0x100 src 192.0.2.1 dst 192.0.2.2 encralg aes \
                encrkey 00112233445566778899aabbccddeeff \
                soft_addtime 100000000 hard_addtime 200000000\n";
    let script = format!(
        "host a\nhost b\nlink w a:192.0.2.1/24 b:192.0.2.2/24\n\
         keys a\n{keys}end\nkeys b\n{keys}end\n\
         advance 87600h\nexpect expires a 2\nexpect expires b 2\n\
         expect sa-count a 0\nexpect sa-count b 0\n"
    );
    let t = std::time::Instant::now();
    let r = sim::lab::run(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, false);
    assert!(r.is_ok(), "{r:?}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
