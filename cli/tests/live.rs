//! `sim live`: simulated hosts on the wall clock with real links. Two
//! separate `sim live` processes joined by a UDP link on 127.0.0.1 (the
//! qemu `-netdev dgram` wire format), their SAs loaded by separate
//! `ipseckey --socket ... -f` processes; ping and the traffic generator
//! across with ESP; both sides' counters agree. No root needed.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_sim");
const IPSECKEY: &str = env!("CARGO_BIN_EXE_ipseckey");

fn tmpdir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("live-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Live {
    fn start(config: &Path, dir: &Path) -> Live {
        let mut child = Command::new(SIM)
            .args(["live", "--json", "--serve"])
            .arg(dir)
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sim live");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut l = Live {
            child,
            stdin,
            rx,
            seen: Vec::new(),
        };
        l.event("ready");
        l
    }

    fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().unwrap();
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
    }

    /// The next JSON event of kind `kind` (20 s at most).
    fn event(&mut self, kind: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(20);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Ok(l) = self.rx.recv_timeout(left) else {
                break;
            };
            self.seen.push(l.clone());
            let v: Value = serde_json::from_str(&l).expect("JSON line");
            assert_ne!(v["event"], "error", "{l}");
            if v["event"] == kind {
                return v;
            }
        }
        panic!("no {kind} event; output:\n{}", self.seen.join("\n"));
    }

    fn stop(mut self) {
        self.send("quit");
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "sim live exit status {status}");
    }
}

fn keyfile(dir: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join("keys");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}

fn load(sock: &Path, keys: &Path) {
    let o = Command::new(IPSECKEY)
        .arg("--socket")
        .arg(sock)
        .arg("-f")
        .arg(keys)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sa<'a>(counters: &'a Value, host: &str, spi: &str) -> &'a Value {
    counters["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .and_then(|h| {
            h["sas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["spi"] == spi)
        })
        .unwrap_or_else(|| panic!("no SA {spi} on {host}: {counters}"))
}

#[test]
fn two_live_processes_over_udp_with_esp() {
    let dir = tmpdir("udp");
    let (pa, pb) = (free_port(), free_port());
    let a = dir.join("a.conf");
    let b = dir.join("b.conf");
    std::fs::write(
        &a,
        format!("host alice\nudp wire alice:192.0.2.1/24,2001:db8::1/64 127.0.0.1:{pa} 127.0.0.1:{pb}\n"),
    )
    .unwrap();
    std::fs::write(
        &b,
        format!(
            "host bob\nudp wire bob:192.0.2.2/24,2001:db8::2/64 127.0.0.1:{pb} 127.0.0.1:{pa}\n"
        ),
    )
    .unwrap();
    let mut alice = Live::start(&a, &dir);
    let mut bob = Live::start(&b, &dir);
    let keys = keyfile(
        &dir,
        "add esp spi 0x1001 src 192.0.2.1 dst 192.0.2.2 encralg aes encrkey 00112233445566778899aabbccddeeff authalg sha1 authkey 00112233445566778899aabbccddeeff00112233\n\
         add esp spi 0x1002 src 192.0.2.2 dst 192.0.2.1 encralg aes encrkey ffeeddccbbaa99887766554433221100 authalg sha1 authkey 33221100ffeeddccbbaa99887766554433221100\n\
         add esp spi 0x2001 src 2001:db8::1 dst 2001:db8::2 encralg aes-gcm encrkey 000102030405060708090a0b0c0d0e0f10111213\n\
         add esp spi 0x2002 src 2001:db8::2 dst 2001:db8::1 encralg aes-gcm encrkey 202122232425262728292a2b2c2d2e2f30313233\n",
    );
    load(&dir.join("alice.sock"), &keys);
    load(&dir.join("bob.sock"), &keys);

    alice.send("ping alice 192.0.2.2 count 5 interval 10ms");
    let p = alice.event("ping");
    assert_eq!(
        (p["sent"].as_u64(), p["received"].as_u64()),
        (Some(5), Some(5)),
        "{p}"
    );
    assert!(p["rtt_ms"]["max"].as_f64().unwrap() >= p["rtt_ms"]["min"].as_f64().unwrap());
    alice.send("ping alice 2001:db8::2 count 3 interval 10ms");
    let p = alice.event("ping");
    assert_eq!(p["received"].as_u64(), Some(3), "{p}");
    // The traffic generator: 2000 datagrams of 200 bytes at 20000/s to
    // bob's echo port, and 500 to discard.
    alice.send("udp alice 192.0.2.2 7 count 2000 size 200 rate 20000");
    let u = alice.event("udp");
    assert_eq!(u["sent"].as_u64(), Some(2000), "{u}");
    assert_eq!(
        u["received"].as_u64().unwrap() + u["lost"].as_u64().unwrap(),
        2000
    );
    assert!(
        u["received"].as_u64().unwrap() >= 1990,
        "loopback loses next to nothing: {u}"
    );
    alice.send("udp alice 192.0.2.2 9 count 500 size 100");
    let d = alice.event("udp");
    assert_eq!(d["sent"].as_u64(), Some(500), "{d}");

    alice.send("counters json");
    let ca = alice.event("counters");
    bob.send("counters json");
    let cb = bob.event("counters");
    // Every protected packet alice sent, bob verified, byte for byte; and
    // the way back.
    for (spi, from, to) in [
        ("0x1001", &ca, &cb),
        ("0x1002", &cb, &ca),
        ("0x2001", &ca, &cb),
        ("0x2002", &cb, &ca),
    ] {
        let (out_sa, in_sa) = if std::ptr::eq(from, &ca) {
            (sa(from, "alice", spi), sa(to, "bob", spi))
        } else {
            (sa(from, "bob", spi), sa(to, "alice", spi))
        };
        assert!(
            out_sa["packets_out"].as_u64().unwrap() > 0,
            "{spi} carried traffic"
        );
        assert_eq!(out_sa["packets_out"], in_sa["packets_in"], "{spi}");
        assert_eq!(out_sa["bytes_out"], in_sa["bytes_in"], "{spi}");
        assert!(
            in_sa["drops"].as_object().unwrap().is_empty(),
            "{spi}: {in_sa}"
        );
    }
    let ha = &ca["hosts"][0]["counters"];
    let hb = &cb["hosts"][0]["counters"];
    assert_eq!(ha["protected"], hb["verified"]);
    assert_eq!(hb["protected"], ha["verified"]);
    assert_eq!(
        ha["clear_out"].as_u64(),
        Some(0),
        "nothing left in clear: {ha}"
    );
    // 5 + 3 pings, 2000 echo and 500 discard datagrams from alice.
    assert_eq!(ha["sent"].as_u64(), Some(5 + 3 + 2000 + 500));
    // The link's frames: what one side sent, the other received.
    let (wa, wb) = (&ca["ports"][0], &cb["ports"][0]);
    assert_eq!(wa["frames_out"], wb["frames_in"]);
    assert_eq!(wb["frames_out"], wa["frames_in"]);
    assert_eq!(wa["bytes_out"], wb["bytes_in"]);
    alice.stop();
    bob.stop();
    assert!(!dir.join("alice.sock").exists(), "socket removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `sim live --json` on `conf` with `script` as its standard input
/// to the end; returns its output, standard output and JSON events.
fn scripted(dir: &Path, conf: &Path, script: &[u8]) -> (std::process::Output, String, Vec<Value>) {
    let o = Command::new(SIM)
        .args(["live", "--json", "--dir"])
        .arg(dir)
        .arg(conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(script)?;
            c.wait_with_output()
        })
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let events = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (o, out, events)
}

/// Two hosts in one process on an in-process link, keyed by the
/// configuration's own keys block; a bad command is reported and the
/// process goes on (exit status 1 at the end).
#[test]
fn one_process_with_a_pipe_and_keys_in_the_config() {
    let dir = tmpdir("pipe");
    let conf = dir.join("c.conf");
    std::fs::write(
        &conf,
        "host a\nhost b\nlink wire a:192.0.2.1/24 b:192.0.2.2/24\n\
         keys a\nadd ah spi 0x10 src 192.0.2.1 dst 192.0.2.2 authalg sha256 authkey 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\nend\n\
         keys b\nadd ah spi 0x10 src 192.0.2.1 dst 192.0.2.2 authalg sha256 authkey 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\nend\n",
    )
    .unwrap();
    let (o, out, events) = scripted(
        &dir,
        &conf,
        b"ping a 192.0.2.2 count 4 interval 1ms\nfrobnicate\ncounters\nquit\n",
    );
    let ping = events.iter().find(|e| e["event"] == "ping").expect(&out);
    assert_eq!(ping["received"].as_u64(), Some(4), "{out}");
    let e = events.iter().find(|e| e["event"] == "error").expect(&out);
    assert!(e["message"].as_str().unwrap().contains("frobnicate"), "{e}");
    let c = events
        .iter()
        .find(|e| e["event"] == "counters")
        .expect(&out);
    // Requests went out under AH (replies in clear: no SA that way).
    assert_eq!(sa(c, "a", "0x10")["packets_out"].as_u64(), Some(4));
    assert_eq!(sa(c, "b", "0x10")["packets_in"].as_u64(), Some(4));
    assert!(!o.status.success(), "a failed command gives exit status 1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_name_the_line() {
    let dir = tmpdir("bad");
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "host a\nudp w a:192.0.2.1/24 127.0.0.1:1 nowhere\n").unwrap();
    let o = Command::new(SIM).arg("live").arg(&conf).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("line 2") && e.contains("nowhere"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rate that is no interval (so slow that one packet would take longer
/// than time can count) is a reported error, and the process goes on: it
/// was a panic.
/// So is a `counters` argument it does not know.
#[test]
fn an_absurd_rate_is_an_error_not_a_panic() {
    let dir = tmpdir("rate");
    let conf = dir.join("c.conf");
    std::fs::write(
        &conf,
        "host a\nhost b\nlink wire a:192.0.2.1/24 b:192.0.2.2/24\n",
    )
    .unwrap();
    let (o, out, events) = scripted(
        &dir,
        &conf,
        b"udp a 192.0.2.2 7 count 2 rate 0.00000000000000000001\n\
          udp a 192.0.2.2 7 count 2 rate 1e400\n\
          counters xyz\n\
          ping a 192.0.2.2 count 1 interval 1ms\n\
          ping a 192.0.2.99 count 1 interval 1ms\nquit\n",
    );
    let errors: Vec<&Value> = events.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 3, "{out}");
    for e in &errors[..2] {
        assert!(e["message"].as_str().unwrap().contains("rate"), "{e}");
    }
    // An argument `counters` does not know is refused, not ignored.
    assert_eq!(
        errors[2]["message"].as_str(),
        Some("counters [json], not xyz"),
        "{out}"
    );
    let pings: Vec<&Value> = events.iter().filter(|e| e["event"] == "ping").collect();
    assert_eq!(pings.len(), 2, "{out}");
    assert_eq!(pings[0]["received"].as_u64(), Some(1), "{out}");
    assert!(pings[0]["rtt_ms"]["min"].as_f64().is_some(), "{out}");
    // Nobody has that address: nothing back, and no round trip made up.
    assert_eq!(pings[1]["received"].as_u64(), Some(0), "{out}");
    assert!(pings[1]["rtt_ms"].is_null(), "{out}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
