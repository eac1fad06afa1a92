//! `sim lab --serve DIR`: each lab host's PF_KEY socket is served, so
//! separate `ipseckey` processes manage the hosts one at a time, as they
//! would machines, while the lab's virtual clock and traffic run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const SIM: &str = env!("CARGO_BIN_EXE_sim");
const IPSECKEY: &str = env!("CARGO_BIN_EXE_ipseckey");

fn tmpdir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("serve-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A child's standard output, line by line, with everything seen so far.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a line containing `pat` arrives (10 s at most).
    fn wait_for(&mut self, pat: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        let end = Instant::now() + Duration::from_secs(10);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line with {pat:?}; output so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// Everything left, until the child closes its output.
    fn rest(&mut self) -> String {
        while let Ok(l) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

fn ipseckey(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(IPSECKEY)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("run ipseckey")
}

fn keyfile(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .expect("key file");
    f.write_all(text.as_bytes()).expect("write key file");
    p
}

const SAS: &str = "\
add esp spi 0x1001 src 192.0.2.1 dst 192.0.2.2 encralg aes encrkey 00112233445566778899aabbccddeeff authalg sha1 authkey 00112233445566778899aabbccddeeff00112233 hard_addtime 3600
add esp spi 0x1002 src 192.0.2.2 dst 192.0.2.1 encralg aes encrkey ffeeddccbbaa99887766554433221100 authalg sha1 authkey 33221100ffeeddccbbaa99887766554433221100
";

/// `sim lab LAB --dir DIR --serve SOCKS`, with its input and output piped.
fn serve_lab(dir: &Path, lab: &Path, socks: &Path) -> (Child, Lines, ChildStdin) {
    let mut sim = Command::new(SIM)
        .args(["lab", "--dir"])
        .arg(dir)
        .arg(lab)
        .arg("--serve")
        .arg(socks)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sim");
    let out = Lines::of(&mut sim);
    let stdin = sim.stdin.take().expect("piped stdin");
    (sim, out, stdin)
}

fn send(stdin: &mut ChildStdin, text: &str) {
    stdin.write_all(text.as_bytes()).expect("write to sim");
    stdin.flush().expect("flush to sim");
}

#[test]
fn two_hosts_keyed_by_separate_ipseckey_processes() {
    let dir = tmpdir("two");
    let socks = dir.join("socks");
    let lab = dir.join("lab.txt");
    std::fs::write(
        &lab,
        "host alice\nhost bob\nlink wire alice:192.0.2.1/24 bob:192.0.2.2/24\n\
         pause load keys into {serve}/alice.sock and {serve}/bob.sock\n\
         ping alice 192.0.2.2 count 3\n\
         expect received 3\nexpect counter alice protected 3\nexpect counter bob verified 3\n\
         expect counter bob protected 3\nexpect counter alice verified 3\n",
    )
    .expect("lab file");
    let (mut sim, mut out, mut stdin) = serve_lab(&dir, &lab, &socks);
    let paused = out.wait_for("paused:");
    assert!(
        paused.contains(&format!("{}/alice.sock", socks.display())),
        "{paused}"
    );
    let (alice, bob) = (socks.join("alice.sock"), socks.join("bob.sock"));
    // The sockets are private to this user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&alice)
        .expect("alice.sock")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "alice.sock mode {mode:o}");

    // A monitor on bob, attached before anything happens there.
    let mut mon = Command::new(IPSECKEY)
        .arg("--socket")
        .arg(&bob)
        .arg("monitor")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start monitor");
    let mut mon_out = Lines::of(&mut mon);
    mon_out.wait_for("type X_PROMISC");

    // Each host keyed by its own ipseckey process, through its own socket.
    let f = keyfile(&dir, "sas", SAS);
    for s in [&alice, &bob] {
        let o = ipseckey(s, &["-f", f.to_str().expect("utf-8 path")]);
        assert!(
            o.status.success(),
            "ipseckey -f on {}: {}",
            s.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The hosts are separate machines: deleting on alice leaves bob alone.
    let o = ipseckey(
        &alice,
        &["-n", "get", "esp", "spi", "0x1002", "dst", "192.0.2.1"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(got.contains("spi=0x1002"), "{got}");
    assert!(got.contains("X_INBOUND"), "alice owns 192.0.2.1: {got}");
    let o = ipseckey(
        &bob,
        &["-n", "get", "esp", "spi", "0x1002", "dst", "192.0.2.1"],
    );
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(got.contains("X_OUTBOUND"), "bob sends with 0x1002: {got}");

    // Go on: the lab's own checks run on the keys ipseckey loaded.
    send(&mut stdin, "\n");
    out.wait_for("ok: counter alice verified 3");
    out.wait_for("lab script done");
    // Typed commands: traffic, virtual time (0x1001 hard-expires at 1 h),
    // a failing command that does not end the lab, then quit.
    send(
        &mut stdin,
        "ping bob 192.0.2.1 count 2\nexpect received 2\nadvance 2h\nexpect sa-count bob 1\nbogus\nquit\n",
    );
    out.wait_for("ok: sa-count bob 1");
    out.wait_for("error: unknown lab command bogus");
    let status = sim.wait().expect("sim exits");
    let all = out.rest();
    // One typed command failed, so the run reports failure.
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(all.contains("lab stopped"), "{all}");
    // The sockets are gone with the lab, and so is the monitor's peer.
    assert!(!alice.exists() && !bob.exists());
    let mon_status = mon.wait().expect("monitor exits");
    let seen = mon_out.rest();
    assert!(!mon_status.success(), "the monitor saw its socket close");
    // bob's monitor saw the ADDs made through bob's socket, and the
    // hard EXPIRE of 0x1001 when the lab's clock passed an hour; nothing
    // of alice's.
    assert_eq!(seen.matches("type ADD").count(), 2, "{seen}");
    assert!(seen.contains("type EXPIRE"), "{seen}");
    assert!(seen.contains("spi=0x1001"), "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab5_expiry_seen_by_a_separate_monitor() {
    let dir = tmpdir("lab5");
    let socks = dir.join("socks");
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/05-lifetimes/lab.txt");
    let (mut sim, mut out, mut stdin) = serve_lab(&dir, &lab, &socks);
    let paused = out.wait_for("paused:");
    assert!(
        paused.contains(&format!(
            "ipseckey --socket {}/bob.sock monitor",
            socks.display()
        )),
        "{paused}"
    );
    let mut mon = Command::new(IPSECKEY)
        .arg("--socket")
        .arg(socks.join("bob.sock"))
        .args(["-n", "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start monitor");
    let mut mon_out = Lines::of(&mut mon);
    mon_out.wait_for("type X_PROMISC");
    send(&mut stdin, "\n");
    out.wait_for("lab script done");
    send(&mut stdin, "quit\n");
    let status = sim.wait().expect("sim exits");
    let all = out.rest();
    assert!(status.success(), "{all}");
    let _ = mon.wait();
    let seen = mon_out.rest();
    // The lab's own monitor counted bob's EXPIREs; the separate one saw
    // the same: the byte-limit hard expiry of 0x400, then 0x300's soft
    // and hard expiry on the virtual clock.
    let blocks: Vec<&str> = seen
        .split("\n\n")
        .filter(|b| b.contains("type EXPIRE"))
        .collect();
    assert_eq!(blocks.len(), 3, "{seen}");
    assert!(
        blocks[0].contains("spi=0x400") && blocks[0].contains("HLT:"),
        "{}",
        blocks[0]
    );
    assert!(
        blocks[1].contains("spi=0x300") && blocks[1].contains("SLT:"),
        "{}",
        blocks[1]
    );
    assert!(
        blocks[2].contains("spi=0x300") && blocks[2].contains("HLT:"),
        "{}",
        blocks[2]
    );
    let lab_lines = all.matches("bob: monitor: EXPIRE").count();
    assert_eq!(lab_lines, blocks.len(), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_while_paused_stops_the_lab_and_removes_its_sockets() {
    let dir = tmpdir("term");
    let socks = dir.join("socks");
    let lab = dir.join("lab.txt");
    std::fs::write(&lab, "host alice\npause waiting\nsay never\n").expect("lab file");
    let (mut sim, mut out, _stdin) = serve_lab(&dir, &lab, &socks);
    out.wait_for("paused: waiting");
    assert!(socks.join("alice.sock").exists());
    let pid = sim.id().to_string();
    let k = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(k.success());
    let status = sim.wait().expect("sim exits");
    let all = out.rest();
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(!all.contains("never"), "{all}");
    assert!(!socks.join("alice.sock").exists(), "socket removed");
    let _ = std::fs::remove_dir_all(&dir);
}
