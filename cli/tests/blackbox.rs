//! ipseckey as a user runs it: the embedded engine, the sadbd daemon, files,
//! exit statuses and the manual's diagnostics.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ipseckey() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ipseckey"));
    c.env_remove("IPSEC_SIM_SOCKET");
    c
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = ipseckey()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ipseckey");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("ipseckey-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("tmp");
        Tmp(p)
    }
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ADD: &str = "add esp spi 0x2112 src 10.0.0.1 dst 10.0.0.2 auth_alg md5 authkey bde359723576fdea08e56cbe876e24ad encr_alg des encrkey be02938e7def2839 hard_addtime 28800\n";

#[test]
fn embedded_session_add_get_dump_flush() {
    let input = format!("{ADD}get esp spi 0x2112 dst 10.0.0.2\ndump\nflush\ndump\n");
    let o = run_stdin(&["--embedded", "-n", "--local", "10.0.0.1"], &input);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.contains("Base message (version 2) type GET, SA type ESP."),
        "{out}"
    );
    assert!(
        out.contains("SA: SADB_ASSOC spi=0x2112, replay window size=0, state=MATURE"),
        "{out}"
    );
    assert!(out.contains("SA: flags=0x8000 < X_OUTBOUND >"), "{out}");
    assert!(
        out.contains("EKY: bf02928f7cef2938/64"),
        "the parity-corrected DES key: {out}"
    );
    assert!(out.contains("SRC: AF_INET: port 0, 10.0.0.1."), "{out}");
    assert_eq!(
        out.matches("Dump succeeded for SA type 0.").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("type DUMP, SA type ESP.").count(),
        1,
        "one SA before the flush, none after: {out}"
    );
}

#[test]
fn paranoid_mode_never_prints_keys() {
    let input = format!("{ADD}get esp spi 0x2112 dst 10.0.0.2\nsave esp -\n");
    let o = run_stdin(&["--embedded", "-n", "-p"], &input);
    let out = text(&o.stdout);
    assert!(
        !out.contains("bde359723576fdea08e56cbe876e24ad") && !out.contains("bf02928f7cef2938"),
        "{out}"
    );
    assert!(out.contains("XX"), "{out}");
}

#[test]
fn kernel_refusals_are_reported_with_their_diagnostic() {
    let input = "add esp spi 5 dst 10.0.0.2 encr_alg des encrkey 0101010101010101 auth_alg md5 authkey 00112233445566778899aabbccddeeff\n\
                 add esp spi 6 dst 10.0.0.2 auth_alg sha1 authkey 0011\n\
                 get esp spi 77 dst 10.0.0.2\n";
    let o = run_stdin(&["--embedded", "-n"], input);
    let err = text(&o.stderr);
    assert!(err.contains("One of the entered values is incorrect: Diagnostic code 47: Weak encryption key (encrkey)."), "{err}");
    assert!(err.contains("One of the entered values is incorrect: Diagnostic code 44: Bad number of authentication bits (authkey: 16 bits for hmac-sha1)."), "{err}");
    assert!(
        err.contains("Association (type = esp) with spi 0x4d and addr\n10.0.0.2 does not exist."),
        "{err}"
    );
    assert!(
        !err.contains("0101010101010101") && !err.contains("00112233"),
        "no keys in errors: {err}"
    );
}

#[test]
fn duplicate_add_says_already_exists() {
    let o = run_stdin(&["--embedded", "-n"], &format!("{ADD}{ADD}"));
    assert!(
        text(&o.stderr).contains(
            "Association (type = esp) with spi 0x2112 and addr\n10.0.0.2 already exists."
        ),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn file_mode_reports_every_error_with_its_line_and_a_summary() {
    let t = Tmp::new("f");
    let f = t.file(
        "keys.conf",
        "# comment\nflush\nadd esp spi 1 dst 10.0.0.9 \\\n  frob 3 encr_alg aes encrkey 00112233445566778899aabbccddeeff\nget esp spi 1\nadd esp spi 0x10 dst 10.0.0.9 encr_alg aes encrkey 00112233445566778899aabbccddeeff\n",
    );
    let o = ipseckey()
        .args(["--embedded", "-n", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Parse error on line 3.\nUnknown extension field \"frob\".\nUnknown extension field \"3\"."), "{err}");
    assert!(
        err.contains("Parse error on line 5.\nUnexpected end of command line, was expecting dst."),
        "{err}"
    );
    assert!(
        err.contains("ipseckey: 2 of 4 commands parsed were valid."),
        "{err}"
    );
    // A clean file: silent, exit 0.
    let g = t.file("ok.conf", "flush\nadd esp spi 0x10 dst 10.0.0.9 encr_alg aes encrkey 00112233445566778899aabbccddeeff\n");
    let o = ipseckey()
        .args(["--embedded", "-n", "-f"])
        .arg(&g)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        (String::new(), String::new())
    );
}

#[test]
fn check_mode_sends_nothing_and_checks_syntax_only() {
    let t = Tmp::new("c");
    let f = t.file("keys.conf", "add esp spi 1 dst 10.0.0.9 encr_alg des encrkey 0101010101010101\nadd esp spi 2 dst 10.0.0.9 encralg aes encrkey zz\n");
    let o = ipseckey().args(["-n", "-c"]).arg(&f).output().expect("run");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("Parse error on line 2.\nThe encryption key is not a hex string."),
        "{err}"
    );
    assert!(
        !err.contains("line 1"),
        "weak keys are the kernel's business, not -c's: {err}"
    );
}

#[test]
fn world_readable_key_files_are_warned_about() {
    let t = Tmp::new("w");
    let f = t.file("keys.conf", "flush\n");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let o = ipseckey()
        .args(["--embedded", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert!(
        text(&o.stderr).contains("has insecure permissions"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn add_is_refused_on_the_command_line() {
    let o = ipseckey()
        .args([
            "--embedded",
            "add",
            "esp",
            "spi",
            "1",
            "dst",
            "10.0.0.1",
            "authalg",
            "md5",
            "authkey",
            "00112233445566778899aabbccddeeff",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("can't do ADD or UPDATE from the command line"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn command_line_errors_exit_1() {
    let o = ipseckey()
        .args(["--embedded", "flush", "foo"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr).trim(), "Unknown SA type (foo).");
    let o = ipseckey()
        .args(["--embedded", "get", "esp", "spi", "5"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("was expecting dst"));
    let o = ipseckey()
        .args(["--embedded", "frob"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("Unknown command (frob)."));
}

#[test]
fn no_daemon_is_one_clear_line() {
    let o = ipseckey()
        .args(["--socket", "/nonexistent/ipsec-sim.sock", "dump"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(
            "ipseckey: cannot reach the simulated kernel at /nonexistent/ipsec-sim.sock"
        ),
        "{err}"
    );
    assert!(err.contains("sadbd"), "says how to start one: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

struct Daemon(Child, #[allow(dead_code)] Tmp, PathBuf);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sadbd() -> Option<Daemon> {
    sadbd_with(&[])
}

fn sadbd_with(extra: &[&str]) -> Option<Daemon> {
    let exe = Path::new(env!("CARGO_BIN_EXE_ipseckey")).with_file_name("sadbd");
    if !exe.exists() {
        eprintln!("SKIPPED: {} not built (cargo build -p sim)", exe.display());
        return None;
    }
    let t = Tmp::new("d");
    let sock = t.0.join("pfkey.sock");
    let child = Command::new(exe)
        .arg("--socket")
        .arg(&sock)
        .args(["--local", "10.0.0.1"])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("sadbd");
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(Daemon(child, t, sock))
}

#[test]
fn the_daemon_keeps_sas_between_invocations() {
    let Some(d) = sadbd() else { return };
    let sock = d.2.to_str().expect("utf-8 path");
    let t = Tmp::new("k");
    let f = t.file("keys.conf", ADD);
    let o = ipseckey()
        .args(["--socket", sock, "-n", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = ipseckey()
        .args([
            "--socket", sock, "-n", "get", "esp", "spi", "0x2112", "dst", "10.0.0.2",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("spi=0x2112"));
    // save, flush, reload the saved file, and the SA is back.
    let saved = t.0.join("saved.conf");
    let o = ipseckey()
        .args(["--socket", sock, "-s"])
        .arg(&saved)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mode = std::fs::metadata(&saved)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o600, "saved keys are private");
    assert!(ipseckey()
        .args(["--socket", sock, "flush"])
        .status()
        .expect("run")
        .success());
    let o = ipseckey()
        .args([
            "--socket", sock, "-n", "get", "esp", "spi", "0x2112", "dst", "10.0.0.2",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let before = std::fs::read_to_string(&saved).expect("saved file");
    let o = ipseckey()
        .args(["--socket", sock, "-f"])
        .arg(&saved)
        .output()
        .expect("run");
    assert!(o.status.success(), "reloading a save: {}", text(&o.stderr));
    let again = ipseckey()
        .args(["--socket", sock, "-s", "-"])
        .output()
        .expect("run");
    assert_eq!(
        text(&again.stdout),
        before,
        "save -> flush -> load -> save gives the same SADB"
    );
    let o = ipseckey()
        .args([
            "--socket", sock, "-n", "get", "esp", "spi", "0x2112", "dst", "10.0.0.2",
        ])
        .output()
        .expect("run");
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("EKY: bf02928f7cef2938/64"));
}

#[test]
fn monitor_sees_other_clients_changes() {
    let Some(d) = sadbd() else { return };
    let sock = d.2.to_str().expect("utf-8 path").to_string();
    let mut mon = ipseckey()
        .args(["--socket", &sock, "-n", "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("monitor");
    std::thread::sleep(Duration::from_millis(300));
    let t = Tmp::new("m");
    let f = t.file("add.conf", ADD);
    assert!(ipseckey()
        .args(["--socket", &sock, "-f"])
        .arg(&f)
        .status()
        .expect("add")
        .success());
    assert!(ipseckey()
        .args(["--socket", &sock, "flush", "esp"])
        .status()
        .expect("flush")
        .success());
    std::thread::sleep(Duration::from_millis(300));
    let _ = mon.kill();
    let out = mon.wait_with_output().expect("wait");
    let s = text(&out.stdout);
    assert!(
        s.starts_with("Actively monitoring the PF_KEY socket."),
        "{s}"
    );
    assert!(
        s.contains("type ADD, SA type ESP."),
        "the other client's ADD: {s}"
    );
    assert!(s.contains("SA: SADB_ASSOC spi=0x2112"), "{s}");
    assert!(
        !s.contains("bde359723576fdea08e56cbe876e24ad"),
        "ADD broadcasts carry no keys: {s}"
    );
    assert!(s.contains("type FLUSH, SA type ESP."), "{s}");
    assert!(s.contains("Timestamp: "), "{s}");
}

#[test]
fn ten_thousand_sas_load_and_dump() {
    let Some(d) = sadbd() else { return };
    let sock = d.2.to_str().expect("utf-8 path");
    let t = Tmp::new("10k");
    let mut conf = String::new();
    for i in 0..10_000u32 {
        conf.push_str(&format!(
            "add esp spi {} src 10.0.0.1 dst 10.{}.{}.{} encr_alg aes encrkey 00112233445566778899aabbccddeeff\n",
            0x1000 + i,
            1 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    let f = t.file("big.conf", &conf);
    let o = ipseckey()
        .args(["--socket", sock, "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = ipseckey()
        .args(["--socket", sock, "-n", "dump", "esp"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(
        out.matches("Base message (version 2) type DUMP, SA type ESP.")
            .count(),
        10_000
    );
    assert!(out.ends_with("Dump succeeded for SA type 3.\n"));
}

/// Interactive mode through a pseudo-terminal (python3's pty module): the
/// prompt, tab completion, and a history that never recalls key lines.
#[test]
fn interactive_prompt_on_a_terminal() {
    if Command::new("python3")
        .arg("-c")
        .arg("import pty")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("\n!!!!!!!! SKIPPED: python3 with the pty module is needed to drive a terminal !!!!!!!!\n");
        return;
    }
    let script = r#"
import os, pty, select, sys, time
exe = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(exe, [exe, "--embedded", "-n"])
buf = b""
def until(token, timeout=10):
    global buf
    end = time.time() + timeout
    while token not in buf:
        left = end - time.time()
        if left <= 0:
            sys.exit("timed out waiting for %r; got %r" % (token, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    i = buf.index(token) + len(token)
    out, buf = buf[:i], buf[i:]
    return out
until(b"ipseckey> ")
os.write(fd, b"add esp spi 0x10 dst 10.0.0.2 encr_alg aes encrkey 00112233445566778899aabbccddeeff\r")
time.sleep(0.3)
os.write(fd, b"get esp spi 0x10 dst 10.0.0.2\r")
out = until(b"spi=0x10")
# Two steps back in history: the key-bearing add must not come back.
time.sleep(0.3)
os.write(fd, b"\x1b[A\x1b[A\r")
out = until(b"spi=0x10")
assert b"add esp" not in out and b"ipseckey> get esp spi 0x10" in out, out
# Tab completion of a command word.
time.sleep(0.3)
os.write(fd, b"dum\t\r")
out = until(b"Dump succeeded for SA type 0.")
os.write(fd, b"quit\r")
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.WEXITSTATUS(status) == 0 else "exit status %d" % os.WEXITSTATUS(status))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_ipseckey"))
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
}

/// A key typed on a continuation line (the keyword on the line before)
/// never enters the prompt's history either: going back in history finds
/// the `get`, not the key.
#[test]
fn a_key_on_a_continuation_line_stays_out_of_history() {
    if Command::new("python3")
        .arg("-c")
        .arg("import pty")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("\n!!!!!!!! SKIPPED: python3 with the pty module is needed to drive a terminal !!!!!!!!\n");
        return;
    }
    let script = r#"
import os, pty, select, sys, time
exe = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(exe, [exe, "--embedded", "-n"])
buf = b""
def until(token, timeout=10):
    global buf
    end = time.time() + timeout
    while token not in buf:
        left = end - time.time()
        if left <= 0:
            sys.exit("timed out waiting for %r; got %r" % (token, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    i = buf.index(token) + len(token)
    out, buf = buf[:i], buf[i:]
    return out
until(b"ipseckey> ")
os.write(fd, b"add esp spi 0x11 dst 10.0.0.2 encr_alg aes encrkey \\\r")
time.sleep(0.3)
os.write(fd, b"00112233445566778899aabbccddeeff\r")
time.sleep(0.3)
os.write(fd, b"get esp spi 0x11 dst 10.0.0.2\r")
until(b"spi=0x11")
until(b"ipseckey> ")
# Two steps back: only the get is there to come back.
time.sleep(0.3)
os.write(fd, b"\x1b[A\x1b[A\r")
out = until(b"SA: SADB_ASSOC spi=0x11", 5)
assert b"0011223344" not in out and b"get esp spi 0x11" in out, out
os.write(fd, b"quit\r")
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.WEXITSTATUS(status) == 0 else "exit status %d" % os.WEXITSTATUS(status))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_ipseckey"))
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
}

/// Input without a newline (`ipseckey < /dev/zero`, a binary file) is
/// read in bounded memory: the overlong line is reported, not kept. With
/// the data segment limited to 64 MiB, 256 MiB of one line must not be
/// held whole.
#[test]
fn an_endless_line_is_read_in_bounded_memory() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -d 65536 && exec \"$0\" --embedded -n")
        .arg(env!("CARGO_BIN_EXE_ipseckey"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ipseckey");
    let mut stdin = child.stdin.take().expect("stdin");
    let chunk = vec![b'x'; 1 << 20];
    let writer = std::thread::spawn(move || {
        for _ in 0..256 {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = stdin.write_all(b"\ndump\n");
    });
    let o = child.wait_with_output().expect("wait");
    let _ = writer.join();
    assert!(o.status.success(), "{:?} {}", o.status, text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "ipseckey: Line too long (max=4096 chars)\n"
    );
    assert_eq!(text(&o.stdout), "Dump succeeded for SA type 0.\n");
}

#[test]
fn json_output_for_get_dump_and_monitor() {
    let input = format!("{ADD}get esp spi 0x2112 dst 10.0.0.2\ndump esp\n");
    let o = run_stdin(
        &["--embedded", "-n", "--json", "--local", "10.0.0.1"],
        &input,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one object for the GET, one per dumped SA: {out}"
    );
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("valid JSON");
        assert_eq!(v["sa"]["spi"], "0x2112");
        assert_eq!(v["sa"]["encr_alg"], "des-cbc");
        assert_eq!(v["sa"]["flags"], serde_json::json!(["X_OUTBOUND"]));
        assert_eq!(v["dst"]["address"], "10.0.0.2");
        assert_eq!(v["encr_key"]["hex"], "bf02928f7cef2938");
        assert_eq!(v["lifetime"]["hard"]["addtime"], 28800);
    }
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(lines[0]).expect("json")["type"],
        "GET"
    );
    // -p: keys are left out of JSON entirely.
    let o = run_stdin(&["--embedded", "-n", "--json", "-p"], &input);
    let out = text(&o.stdout);
    assert!(
        !out.contains("bf02928f7cef2938") && !out.contains("\"hex\""),
        "{out}"
    );
}

/// A destination name acts on every address it has; `dst6` on the IPv6
/// ones only (the system resolver decides what `localhost` has here).
#[test]
fn names_act_on_every_address() {
    use std::net::ToSocketAddrs;
    let mut addrs: Vec<std::net::IpAddr> = ("localhost", 0)
        .to_socket_addrs()
        .map(|i| i.map(|s| s.ip()).collect())
        .unwrap_or_default();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        eprintln!("\n!!!!!!!! SKIPPED: localhost does not resolve here !!!!!!!!\n");
        return;
    }
    let v6 = addrs.iter().filter(|a| a.is_ipv6()).count();
    let input = "add esp spi 0x77 dst localhost encr_alg aes encrkey 00112233445566778899aabbccddeeff\ndump esp\n";
    let o = run_stdin(&["--embedded", "--json"], input);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).lines().count(),
        addrs.len(),
        "one SA per address of localhost: {}",
        text(&o.stdout)
    );
    if v6 > 0 {
        let input = "add esp spi 0x78 dst6 localhost encr_alg aes encrkey 00112233445566778899aabbccddeeff\ndump esp\n";
        let o = run_stdin(&["--embedded", "--json"], input);
        assert_eq!(
            text(&o.stdout).lines().count(),
            v6,
            "dst6: IPv6 addresses only"
        );
    }
    // -n refuses names.
    let o = run_stdin(&["--embedded", "-n"], input);
    assert!(
        text(&o.stderr).contains("Unknown dst address \"localhost\"."),
        "{}",
        text(&o.stderr)
    );
}

/// A file that loads itself stops at a nesting limit instead of
/// overflowing the stack.
#[test]
fn a_load_loop_is_an_error_not_a_crash() {
    let t = Tmp::new("loop");
    let f = t.0.join("self.conf");
    std::fs::write(&f, format!("load {}\n", f.display())).expect("write");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let o = ipseckey()
        .args(["--embedded", "-n", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("files nested more than 8 deep"),
        "{}",
        text(&o.stderr)
    );
    let o = run_stdin(
        &["--embedded", "-n"],
        &format!("load {}\nflush\n", f.display()),
    );
    assert!(
        o.status.success(),
        "the session goes on: {}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("files nested more than 8 deep"));
}

/// `sadbd --virtual-clock`: lifetimes of hours expire when `sim clock
/// advance` says so, with the EXPIREs on a monitor, and not before.
#[test]
fn a_virtual_clock_moves_only_on_request() {
    let Some(d) = sadbd_with(&["--virtual-clock"]) else {
        return;
    };
    let sock = d.2.to_str().expect("utf-8 path");
    let sim = Path::new(env!("CARGO_BIN_EXE_sim"));
    let clock = |args: &[&str]| {
        Command::new(sim)
            .args(["clock", "--socket", sock])
            .args(args)
            .output()
            .expect("sim clock")
    };
    let t = Tmp::new("vc");
    let f = t.file(
        "keys.conf",
        "add esp spi 0x77 src 10.0.0.1 dst 10.0.0.2 auth_alg sha1 \
         authkey 0123456789abcdef0123456789abcdef01234567 encr_alg aes \
         encrkey 00112233445566778899aabbccddeeff soft_addtime 3600 hard_addtime 28800\n",
    );
    let o = ipseckey()
        .args(["--socket", sock, "-n", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mon = ipseckey()
        .args(["--socket", sock, "-n", "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("monitor");
    let o = clock(&["now"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let start: u64 = text(&o.stdout)
        .trim()
        .rsplit_once('(')
        .and_then(|(_, n)| n.trim_end_matches(')').parse().ok())
        .expect("virtual time in seconds");
    // Real time passing changes nothing; an hour of virtual time does.
    std::thread::sleep(Duration::from_millis(300));
    let o = clock(&["advance", "30m"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(&format!("({}), moved 1800 s", start + 1800)),
        "{}",
        text(&o.stdout)
    );
    let state = |want: &str| {
        let o = ipseckey()
            .args([
                "--socket", sock, "-n", "get", "esp", "spi", "0x77", "dst", "10.0.0.2",
            ])
            .output()
            .expect("get");
        let out = text(&o.stdout);
        assert!(out.contains(want), "want {want}: {out}{}", text(&o.stderr));
    };
    state("state=MATURE");
    assert!(clock(&["advance", "1800"]).status.success());
    state("state=DYING");
    let o = clock(&["advance", "8h"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("({})", start + 3600 + 28800)));
    let o = ipseckey()
        .args([
            "--socket", sock, "-n", "get", "esp", "spi", "0x77", "dst", "10.0.0.2",
        ])
        .output()
        .expect("get");
    assert!(!o.status.success(), "the SA is gone: {}", text(&o.stdout));
    // The monitor saw the soft then the hard EXPIRE.
    drop(d);
    let out = mon.wait_with_output().expect("monitor output");
    let seen = text(&out.stdout);
    let soft = seen.find("SLT: Soft expiration occurred").expect(&seen);
    let hard = seen.find("HLT: Hard expiration occurred").expect(&seen);
    assert!(soft < hard, "{seen}");
    assert_eq!(seen.matches("type EXPIRE").count(), 2, "{seen}");
    // Nonsense is refused before anything is sent.
    let Some(d2) = sadbd() else { return };
    let sock2 = d2.2.to_str().expect("utf-8 path");
    let o = Command::new(sim)
        .args(["clock", "--socket", sock2, "advance", "soon"])
        .output()
        .expect("sim clock");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not a duration"));
    // A daemon on real time says it cannot.
    let o = Command::new(sim)
        .args(["clock", "--socket", sock2, "advance", "1h"])
        .output()
        .expect("sim clock");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("keeps real time (start it with sadbd --virtual-clock)"),
        "{}",
        text(&o.stderr)
    );
}
