//! Runs every `scenarios/*.scn` file against the real binaries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipsec_blackbox::{compare, matches, parse};

/// The workspace's binaries sit next to this test's directory (target/debug).
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "ipseckey", "-p", "sim", "--bins"])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building the binaries failed");
    }
    p
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_scenario(path: &Path) -> Vec<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let text = std::fs::read_to_string(path).expect("scenario");
    let sc = parse(&text);
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "scn-{}-{n}-{}",
        std::process::id(),
        name.replace('.', "_")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut subst: Vec<(String, String)> = Vec::new();
    for (fname, content) in &sc.files {
        let p = dir.join(fname);
        std::fs::write(&p, content).expect("write file");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        subst.push((format!("{{{fname}}}"), p.to_string_lossy().into_owned()));
    }
    subst.push(("{dir}".into(), dir.to_string_lossy().into_owned()));
    let sock = dir.join("pfkey.sock");
    let _daemon = sc.daemon.as_ref().map(|args| {
        let child = Command::new(bin("sadbd"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .expect("start sadbd");
        let t = Instant::now();
        while !sock.exists() {
            assert!(t.elapsed() < Duration::from_secs(10), "sadbd did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon(child)
    });
    let mut errs = Vec::new();
    for run in &sc.runs {
        let args: Vec<String> = run
            .args
            .iter()
            .map(|a| {
                subst
                    .iter()
                    .fold(a.clone(), |acc, (k, v)| acc.replace(k, v))
            })
            .collect();
        let mut child = Command::new(bin("ipseckey"))
            .args(&args)
            .env("IPSEC_SIM_SOCKET", &sock)
            .env("TZ", "UTC")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ipseckey");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(run.stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(run.status) {
            errs.push(format!(
                "{name}:{}: `ipseckey {}` exited {:?}, expected {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                run.line,
                args.join(" "),
                out.status.code(),
                run.status
            ));
        }
        errs.extend(compare(
            "stdout",
            &name,
            run,
            &run.stdout,
            &run.stdout_has,
            &stdout,
        ));
        errs.extend(compare(
            "stderr",
            &name,
            run,
            &run.stderr,
            &run.stderr_has,
            &stderr,
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    errs
}

#[test]
fn every_scenario() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_scenario(f));
    }
    assert!(
        failures.is_empty(),
        "{} scenario expectation(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("{} scenario files passed", files.len());
}

#[test]
fn wildcard_matching() {
    assert!(matches(
        "CLT: SA added at time: {*}",
        "CLT: SA added at time: Fri Nov 28 14:42:00 2025"
    ));
    assert!(matches(
        "Message length 216 bytes, seq=1, pid={*}.",
        "Message length 216 bytes, seq=1, pid=4242."
    ));
    assert!(!matches(
        "Message length 216 bytes, seq=1, pid={*}.",
        "Message length 217 bytes, seq=1, pid=4242."
    ));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exact "));
}
