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
