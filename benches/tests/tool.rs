//! Smoke tests of the `ipsec-bench` command as a user runs it: tiny counts
//! and sizes with `--json`, checking the schema and that the numbers are
//! positive and agree with each other; bad options exit 2 with a message.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsec-bench"))
        .args(args)
        .output()
        .expect("run ipsec-bench")
}

fn json(args: &[&str]) -> Value {
    let out = bench(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// A median/min/max summary with min <= median <= max, all positive.
fn stat(v: &Value, path: &str) -> f64 {
    let (med, min, max) = (
        num(v, &format!("{path}.median")),
        num(v, &format!("{path}.min")),
        num(v, &format!("{path}.max")),
    );
    assert!(min > 0.0, "{path}: min {min} in {v}");
    assert!(min <= med && med <= max, "{path}: {min} {med} {max}");
    med
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

const FAST: [&str; 6] = ["--reps", "3", "--time", "0.002", "--warmup", "0"];

fn with_fast<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(&FAST);
    v.push("--json");
    v
}

#[test]
fn esp_json_has_every_suite_and_size_with_consistent_numbers() {
    let v = json(&with_fast(&[
        "esp",
        "--algs",
        "aes-gcm16/256,aes-cbc+hmac-sha1",
        "--sizes",
        "64,200",
    ]));
    let rows = v["esp"].as_array().expect("esp array");
    assert_eq!(rows.len(), 4);
    let algs: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["alg"].as_str().unwrap(), r["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        algs,
        [
            ("aes-gcm/256", 64),
            ("aes-gcm/256", 200),
            ("aes-cbc/128+hmac-sha1", 64),
            ("aes-cbc/128+hmac-sha1", 200)
        ]
    );
    for r in rows {
        assert_eq!(r["proto"], "esp");
        assert_eq!(r["threads"], 1);
        let size = num(r, "size");
        for op in ["encap", "decap", "bare_seal", "bare_open"] {
            let ns = stat(r, &format!("{op}.ns"));
            let mpps = stat(r, &format!("{op}.mpps"));
            let gbps = stat(r, &format!("{op}.gbps"));
            // One thread, an odd number of repetitions: the medians come
            // from the same repetition, so rate and time agree exactly.
            assert!(
                close(mpps * ns, 1000.0, 1e-6),
                "{op}: {mpps} Mpps x {ns} ns"
            );
            assert!(close(gbps, mpps * size * 8.0 / 1000.0, 1e-9), "{op}");
        }
        let ratio = num(r, "encap_vs_bare");
        assert!(close(
            ratio,
            num(r, "encap.ns.median") / num(r, "bare_seal.ns.median"),
            1e-9
        ));
        assert!(num(r, "decap_vs_bare") > 0.0);
    }
    assert_eq!(v["settings"]["reps"], 3);
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(v.get("sadb").is_none() && v.get("ah").is_none());
}

#[test]
fn ah_with_two_threads_reports_the_rate_of_both() {
    let mut args = with_fast(&["ah", "--algs", "hmac-sha256", "--sizes", "100"]);
    args.extend_from_slice(&["--threads", "2"]);
    let v = json(&args);
    let rows = v["ah"].as_array().expect("ah array");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r["alg"].as_str(), r["threads"].as_u64()),
        (Some("hmac-sha256"), Some(2))
    );
    let (ns, mpps) = (stat(r, "encap.ns"), stat(r, "encap.mpps"));
    // Two threads: about twice the packets one thread's time per packet gives.
    let k = mpps * ns / 1000.0;
    assert!(
        (1.0..=4.0).contains(&k),
        "{mpps} Mpps x {ns} ns = {k} threads' worth"
    );
}

#[test]
fn sadb_json_counts_operations_memory_and_the_bare_maps() {
    let v = json(&with_fast(&["sadb", "-n", "3000"]));
    let s = &v["sadb"];
    assert_eq!(s["count"], 3000);
    for m in [
        "add",
        "lookup",
        "bare_hashmap_lookup",
        "bare_foldhash_lookup",
        "delete",
    ] {
        let ns = stat(s, &format!("{m}.ns"));
        let mops = stat(s, &format!("{m}.mops"));
        assert!(close(mops * ns, 1000.0, 1e-6), "{m}: {mops} x {ns}");
    }
    assert!(close(
        num(s, "lookup_vs_bare"),
        num(s, "lookup.ns.median") / num(s, "bare_hashmap_lookup.ns.median"),
        1e-9
    ));
    // Every SA costs at least its struct (in the slab) plus its keys.
    let per_sa = stat(s, "bytes_per_sa");
    let sa = num(s, "sa_struct_bytes");
    assert!(
        per_sa > sa && per_sa < 20.0 * sa,
        "{per_sa} bytes per SA, Sa {sa}"
    );
}

#[test]
fn pfkey_json_adds_through_the_socket_and_ipseckey_f() {
    let v = json(&with_fast(&["pfkey", "-n", "300"]));
    let p = &v["pfkey"];
    assert_eq!(
        (p["count"].as_u64(), p["clients"].as_u64()),
        (Some(300), Some(1))
    );
    for (rate, m) in [
        ("socket_adds_per_s", "socket"),
        ("pipelined_adds_per_s", "pipelined"),
        ("in_process_adds_per_s", "in_process"),
    ] {
        let r = stat(p, rate);
        let ns = stat(p, &format!("{m}.ns"));
        assert!(close(r * ns, 1e9, 1e-6), "{m}: {r}/s x {ns} ns");
    }
    let secs = stat(p, "ipseckey_file.seconds");
    let rate = stat(p, "ipseckey_file.adds_per_s");
    assert!(close(secs * rate, 300.0, 1e-6), "{secs} s x {rate}/s");
    let cmd = p["ipseckey_file"]["command"].as_str().unwrap();
    assert!(cmd.contains("-f FILE") || cmd.contains("library"), "{cmd}");
}

/// Whether the TAP bench can run here (root, TAP, iperf3, and the sim
/// and ipseckey programs built next to ipsec-bench); says why not,
/// loudly, or fails where `IPSEC_REQUIRE_ROOT` is set (CI runs as root).
fn e2e_can_run(what: &str) -> bool {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ipsec-bench"));
    let why = match sim::bench::preflight() {
        Err(e) => Some(e),
        Ok(()) => ["sim", "ipseckey"]
            .iter()
            .find(|p| !bin.with_file_name(p).is_file())
            .map(|p| format!("no {p} program next to ipsec-bench (cargo build -p ipseckey)")),
    };
    match why {
        None => true,
        Some(e) => {
            let msg = format!("SKIPPED: {what}: {e}");
            if std::env::var_os("IPSEC_REQUIRE_ROOT").is_some() {
                panic!("{msg} (IPSEC_REQUIRE_ROOT is set)");
            }
            eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
            false
        }
    }
}

/// The e2e rows: every algorithm asked for, `reps` runs each, medians
/// inside their ranges, the ratio to the baseline computed from the
/// medians (none for the baseline itself).
fn check_e2e(e: &Value, algs: &[&str], reps: usize) {
    assert_eq!(e["available"], true, "{e}");
    assert!(
        e["baseline"].as_str().unwrap().contains("without SAs"),
        "{e}"
    );
    let rows = e["rows"].as_array().expect("rows");
    let got: Vec<&str> = rows.iter().map(|r| r["alg"].as_str().unwrap()).collect();
    assert_eq!(got, algs);
    let clear = rows
        .iter()
        .find(|r| r["alg"] == "clear")
        .map(|r| num(r, "gbps.median"));
    for r in rows {
        assert_eq!(r["runs"].as_array().unwrap().len(), reps, "{r}");
        let g = stat(r, "gbps");
        assert!(g > 0.01 && g < 1000.0, "{g} Gbit/s: {r}");
        match (r["alg"].as_str(), clear) {
            (Some("clear"), _) | (_, None) => assert!(r["vs_baseline"].is_null(), "{r}"),
            (_, Some(c)) => assert!(close(num(r, "vs_baseline"), g / c, 1e-9), "{r}"),
        }
    }
}

/// The TAP bench's iperf3 per algorithm beside the no-SA baseline, with
/// two queues per TAP (a thread each) and two streams.
#[test]
fn e2e_measures_each_algorithm_beside_the_baseline() {
    if !e2e_can_run("ipsec-bench e2e") {
        return;
    }
    let v = json(&[
        "e2e",
        "--algs",
        "aes-gcm,null-sha1,clear",
        "--seconds",
        "1",
        "--reps",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    let e = &v["e2e"];
    check_e2e(e, &["aes-gcm", "null-sha1", "clear"], 2);
    assert_eq!(
        (e["queues"].as_u64(), e["streams"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(e["replay_window"], 64);
    assert_eq!(v["settings"]["threads"], 2);
    assert!(v.get("esp").is_none() && v.get("sadb").is_none());
}

#[test]
fn all_runs_every_mode_and_e2e_where_it_can() {
    let e2e = e2e_can_run("ipsec-bench all (its e2e part)");
    let v = json(&[
        "all",
        "--sizes",
        "64",
        "-n",
        "200",
        "--reps",
        "1",
        "--time",
        "0.0005",
        "--warmup",
        "0",
        "--seconds",
        "1",
        "--json",
    ]);
    let esp = v["esp"].as_array().unwrap();
    // Every encryption algorithm of the engine appears at least once.
    for e in sadb::alg::EncrAlg::ALL
        .iter()
        .filter(|e| **e != sadb::alg::EncrAlg::None)
    {
        assert!(
            esp.iter()
                .any(|r| r["alg"].as_str().unwrap().starts_with(e.name())),
            "{} missing",
            e.name()
        );
    }
    assert_eq!(v["ah"].as_array().unwrap().len(), 5);
    assert_eq!(v["sadb"]["count"], 200);
    assert_eq!(v["pfkey"]["count"], 200);
    if e2e {
        check_e2e(
            &v["e2e"],
            &["aes-gcm", "aes-cbc-sha1", "null-sha1", "clear"],
            1,
        );
    } else {
        assert_eq!(v["e2e"]["available"], false);
        assert!(v["e2e"]["reason"]
            .as_str()
            .unwrap()
            .contains("no end-to-end numbers"));
    }
}

#[test]
fn the_table_names_what_it_measured() {
    let out = bench(&[
        "esp",
        "--algs",
        "chacha20-poly1305",
        "--sizes",
        "64",
        "--reps",
        "1",
        "--time",
        "0.001",
        "--warmup",
        "0",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ESP (transport, IPv4)"), "{text}");
    assert!(text.contains("chacha20-poly1305"), "{text}");
    assert!(text.contains("encap") && text.contains("decap"), "{text}");
}

#[test]
fn bad_options_exit_2_with_a_reason() {
    for (args, says) in [
        (&["esp", "--sizes", "10"][..], "out of range"),
        (&["esp", "--sizes", "big"], "not a packet size"),
        (
            &["esp", "--algs", "rot13"],
            "unknown ESP encryption algorithm `rot13`",
        ),
        (
            &["esp", "--algs", "aes-cbc"],
            "needs an authentication algorithm",
        ),
        (&["esp", "--algs", "aes-gcm/100"], "128..256"),
        (&["ah", "--algs", "aes-gcm"], "unknown AH algorithm"),
        (&["sadb", "-n", "0"], "out of range"),
        (&["esp", "--reps", "0"], "--reps"),
        (&["esp", "--time=-1"], "out of range"),
        (&["esp", "--time", "0"], "too short"),
        (&["esp", "--threads", "0"], "--threads"),
        (&["frob"], "unrecognized subcommand"),
        (&["sadb", "--algs", "aes"], "unexpected argument"),
    ] {
        let out = bench(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Without root, e2e says why and measures nothing (as root, the test
/// runs it as nobody through setpriv).
#[test]
fn e2e_without_root_fails_and_measures_nothing() {
    let bin = env!("CARGO_BIN_EXE_ipsec-bench");
    let args = ["e2e", "--seconds", "1", "--json"];
    let out = if nix_is_root() {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
            .args(args)
            .output();
        match o {
            Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("Permission denied") => o,
            other => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot run ipsec-bench as nobody here ({other:?}) !!!!!!!!\n"
                );
                return;
            }
        }
    } else {
        bench(&args)
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("needs root"), "{err}");
    assert!(err.contains("no end-to-end numbers were measured"), "{err}");
}

fn nix_is_root() -> bool {
    // The effective uid, from the kernel's view of this process.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn e2e_options_are_checked() {
    for (args, says) in [
        (
            &["e2e", "--algs", "rot13"][..],
            "unknown e2e algorithm `rot13`",
        ),
        (
            &["e2e", "--modes", "sideways"],
            "unknown e2e mode `sideways`",
        ),
        (&["e2e", "--seconds", "0"], "--seconds"),
        (
            &["e2e", "--sim", "/nonexistent/sim"],
            "/nonexistent/sim: no such program",
        ),
    ] {
        let out = bench(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_missing_ipseckey_program_is_a_clear_error() {
    let out = bench(&["pfkey", "--ipseckey", "/nonexistent/ipseckey", "-n", "10"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/ipseckey: no such program"),
        "{err}"
    );
}
