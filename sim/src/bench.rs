//! The network-namespace bench (`sim bench-net`): two kernel network
//! namespaces, each with a TAP served by a live simulated host, the two
//! hosts joined by a UDP link on loopback, SAs loaded with `ipseckey -f`;
//! then real `ping` and `iperf3` between the namespaces. Needs root (or
//! CAP_NET_ADMIN and CAP_SYS_ADMIN), `/dev/net/tun`, `ip`, `ping`,
//! `iperf3`.
//!
//! Two shapes:
//! - tunnel: each namespace is a LAN behind a simulated gateway
//!   (198.18.1.0/24 and 198.18.2.0/24, 2001:db8:1::/64 and
//!   2001:db8:2::/64); the gateways protect the LANs' traffic with tunnel
//!   mode SAs between their outer addresses (192.0.2.1/2,
//!   2001:db8:ff::1/2), which exist only inside the simulation;
//! - transport: the kernel here has no ESP/AH, so each namespace's IPsec
//!   is done by a `bits` host, a bump in the stack (RFC 4301 3.3) between
//!   its TAP and the wire: the namespaces (198.18.0.1/2, 2001:db8::1/2)
//!   are the SA endpoints, in transport mode, and their kernels see clear
//!   text.
//!
//! Names are unique per process and bench (`ipsb<pid>x<n>a` for a
//! namespace, `ipsb<pid>x<n>A` for its TAP); everything
//! is removed on [`Bench::down`], on drop (errors, panics unwinding), and
//! by [`clean_stale`] for benches whose process died (SIGKILL): the
//! simulated hosts end by themselves when their standard input closes.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PREFIX: &str = "ipsb";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// How the namespaces' traffic is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// The SAs' algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ESP AES-128-GCM (16-byte ICV).
    AesGcm,
    /// ESP AES-128-CBC with HMAC-SHA1-96.
    AesCbcSha1,
    /// AH HMAC-SHA1-96.
    AhSha1,
    /// ESP with NULL encryption and HMAC-SHA1-96 (RFC 2410): the framing
    /// and an integrity check, no cipher.
    NullSha1,
    /// No SA: the same hosts forward clear text (the path's I/O limit;
    /// the SADB refuses ESP with NULL encryption and no authentication,
    /// RFC 4303 3.2).
    Clear,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "aes-gcm" => Some(Alg::AesGcm),
            "aes-cbc-sha1" | "aes-sha1" => Some(Alg::AesCbcSha1),
            "ah-sha1" => Some(Alg::AhSha1),
            "null-sha1" | "esp-null-sha1" => Some(Alg::NullSha1),
            "clear" | "null" | "none" => Some(Alg::Clear),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::AesGcm => "aes-gcm",
            Alg::AesCbcSha1 => "aes-cbc-sha1",
            Alg::AhSha1 => "ah-sha1",
            Alg::NullSha1 => "null-sha1",
            Alg::Clear => "clear",
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tunnel => "tunnel",
            Mode::Transport => "transport",
        }
    }
}

/// One bench's shape.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub mode: Mode,
    pub alg: Alg,
    /// The namespaces' MTU.
    pub mtu: u16,
    /// Capture the outer link (pcap + esp_sa file in the bench directory).
    pub capture: bool,
    /// Queues per TAP (each served by its own thread in the simulated
    /// hosts).
    pub queues: usize,
    /// iperf3 parallel streams (`-P`): with several queues, the kernel
    /// spreads the streams over them by flow.
    pub streams: u32,
    /// The SAs' replay window in packets (0: none).
    pub replay: u8,
    /// The TAPs' checksum and segmentation offload (the kernel hands the
    /// simulated hosts TCP in frames of up to 64 KiB, cut into segments
    /// there).
    pub offload: bool,
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub sim: PathBuf,
    pub ipseckey: PathBuf,
}

/// iperf3's numbers for one run (TCP payload bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IperfResult {
    pub seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub bits_per_second: f64,
    pub retransmits: u64,
    pub sender_cpu_percent: f64,
    pub receiver_cpu_percent: f64,
}

/// Why the bench cannot run here, if it cannot: no root, no TAP, a
/// missing program. The text says what to do.
pub fn preflight() -> Result<(), String> {
    // Once per process: tests call it from parallel threads.
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(preflight_once).clone()
}

fn preflight_once() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (network namespaces and TAP devices)".to_string());
    }
    if !crate::netio::tun_available() {
        return Err("no /dev/net/tun on this system (no TUN/TAP)".to_string());
    }
    for (prog, pkg) in [
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("iperf3", "iperf3"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(format!("{prog} not installed (Debian package {pkg})"));
        }
    }
    // A namespace we can make (a container may refuse).
    let probe = format!(
        "{PREFIX}{}xp{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    ip(&["netns", "add", &probe]).map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&o.stderr).trim(),
            String::from_utf8_lossy(&o.stdout).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The pid in a bench name (`ipsb<pid>x<n><a|b>`).
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok()
}

/// Removes namespaces, TAPs and directories of benches whose process is
/// gone.
pub fn clean_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let mine = std::process::id();
    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Some(pid) = owner(ns) {
                if pid != mine && !pid_alive(pid) && ip(&["netns", "del", ns]).is_ok() {
                    removed.push(format!("netns {ns}"));
                }
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        for l in list.lines() {
            let Some(name) = l
                .split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap_or(""))
            else {
                continue;
            };
            if let Some(pid) = owner(name) {
                if pid != mine && !pid_alive(pid) && ip(&["link", "del", name]).is_ok() {
                    removed.push(format!("link {name}"));
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(base) = name.strip_suffix("-bench") else {
                continue;
            };
            if let Some(pid) = owner(base) {
                if pid != mine && !pid_alive(pid) && std::fs::remove_dir_all(e.path()).is_ok() {
                    removed.push(format!("directory {}", e.path().display()));
                }
            }
        }
    }
    removed
}

fn free_udp_port() -> Result<u16, String> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port: {e}"))
}

fn random_hex(bytes: usize) -> Result<String, String> {
    use std::io::Read;
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A live simulated host process and its output, line by line.
struct SimProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its standard error.
    log: PathBuf,
}

impl SimProc {
    fn spawn(tools: &Tools, config: &Path, dir: &Path) -> Result<SimProc, String> {
        let log_path = config.with_extension("log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new(&tools.sim)
            .arg("live")
            .arg(config)
            .arg("--serve")
            .arg(dir)
            .arg("--dir")
            .arg(dir)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", tools.sim.display()))?;
        let (tx, lines) = channel();
        let out = child.stdout.take().ok_or("sim: no stdout")?;
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(SimProc {
            child,
            stdin,
            lines,
            log: log_path,
        })
    }

    /// Waits for an event line of kind `event` (JSON), 10 s at most.
    fn wait_event(&mut self, event: &str) -> Result<Value, String> {
        let end = Instant::now() + Duration::from_secs(10);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&l) {
                        if v["event"] == event {
                            return Ok(v);
                        }
                        if v["event"] == "error" {
                            return Err(format!("sim: {}", v["message"]));
                        }
                    }
                }
                Err(_) => break,
            }
        }
        let errs = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(format!("sim: no {event} event; {}", errs.trim()))
    }

    fn command(&mut self, line: &str) -> Result<(), String> {
        let s = self.stdin.as_mut().ok_or("sim has stopped")?;
        writeln!(s, "{line}")
            .and_then(|_| s.flush())
            .map_err(|e| format!("sim: {e}"))
    }

    /// Ends the process: closing its input stops it (captures written).
    fn stop(&mut self) {
        self.stdin = None;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addresses of one bench: each namespace's, and the peer's as the
/// other namespace sees it.
#[derive(Debug, Clone)]
pub struct Addrs {
    pub a4: String,
    pub b4: String,
    pub a6: String,
    pub b6: String,
}

/// A running bench. [`Bench::down`] (or dropping it) removes everything.
pub struct Bench {
    pub name: String,
    pub spec: BenchSpec,
    pub ns: [String; 2],
    pub taps: [String; 2],
    pub dir: PathBuf,
    pub addrs: Addrs,
    sims: Vec<SimProc>,
    down: bool,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Bench {
    /// Builds the bench: TAPs made by root and attached by the simulated
    /// hosts, namespaces, addresses and routes, SAs through `ipseckey -f`.
    pub fn up(spec: &BenchSpec, tools: &Tools) -> Result<Bench, String> {
        clean_stale();
        // Names must fit IFNAMSIZ (15): at most 7 digits of pid, 2 of n.
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 100;
        let name = format!("{PREFIX}{}x{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("{name}-bench"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let addrs = match spec.mode {
            Mode::Tunnel => Addrs {
                a4: "198.18.1.2".into(),
                b4: "198.18.2.2".into(),
                a6: "2001:db8:1::2".into(),
                b6: "2001:db8:2::2".into(),
            },
            Mode::Transport => Addrs {
                a4: "198.18.0.1".into(),
                b4: "198.18.0.2".into(),
                a6: "2001:db8::1".into(),
                b6: "2001:db8::2".into(),
            },
        };
        let mut b = Bench {
            ns: [format!("{name}a"), format!("{name}b")],
            taps: [format!("{name}A"), format!("{name}B")],
            name,
            spec: spec.clone(),
            dir,
            addrs,
            sims: Vec::new(),
            down: false,
        };
        b.build(tools)?;
        Ok(b)
    }

    fn build(&mut self, tools: &Tools) -> Result<(), String> {
        let spec = self.spec.clone();
        let mq = spec.queues > 1;
        for t in &self.taps {
            let mut args = vec!["tuntap", "add", "dev", t.as_str(), "mode", "tap"];
            if mq {
                args.push("multi_queue");
            }
            ip(&args)?;
        }
        let ports = [free_udp_port()?, free_udp_port()?];
        for (i, side) in ["a", "b"].iter().enumerate() {
            let me = ports[i];
            let peer = ports[1 - i];
            let n = i + 1;
            let peer_n = 2 - i;
            let mut queues = if mq {
                format!(" queues {}", spec.queues)
            } else {
                String::new()
            };
            if !spec.offload {
                queues.push_str(" offload off");
            }
            let mut conf = match spec.mode {
                Mode::Tunnel => format!(
                    "host gw{n} forward gateway 192.0.2.{peer_n} gateway 2001:db8:ff::{peer_n}\n\
                     tap lan gw{n}:198.18.{n}.1/24,2001:db8:{n}::1/64 {tap}{queues}\n\
                     udp wan gw{n}:192.0.2.{n}/24,2001:db8:ff::{n}/64 127.0.0.1:{me} 127.0.0.1:{peer}\n",
                    tap = self.taps[i]
                ),
                Mode::Transport => format!(
                    "host gw{n} bits local 198.18.0.{n},2001:db8::{n}\n\
                     tap lan gw{n} {tap}{queues}\n\
                     udp wan gw{n} 127.0.0.1:{me} 127.0.0.1:{peer}\n",
                    tap = self.taps[i]
                ),
            };
            if spec.capture && i == 0 {
                conf.push_str("capture wan wan.pcap\n");
            }
            let path = self.dir.join(format!("gw-{side}.conf"));
            std::fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut p = SimProc::spawn(tools, &path, &self.dir)?;
            let ready = p.wait_event("ready");
            self.sims.push(p);
            ready?;
        }
        for i in 0..2 {
            let (ns, tap) = (&self.ns[i], &self.taps[i]);
            let n = i + 1;
            let other = 2 - i;
            ip(&["netns", "add", ns])?;
            ip(&["link", "set", tap, "netns", ns])?;
            let mtu = spec.mtu.to_string();
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", tap, "mtu", &mtu, "up"])?;
            match spec.mode {
                Mode::Tunnel => {
                    ip(&[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("198.18.{n}.2/24"),
                        "dev",
                        tap,
                    ])?;
                    ip(&[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("2001:db8:{n}::2/64"),
                        "dev",
                        tap,
                        "nodad",
                    ])?;
                    ip(&[
                        "-n",
                        ns,
                        "route",
                        "add",
                        &format!("198.18.{other}.0/24"),
                        "via",
                        &format!("198.18.{n}.1"),
                    ])?;
                    ip(&[
                        "-n",
                        ns,
                        "-6",
                        "route",
                        "add",
                        &format!("2001:db8:{other}::/64"),
                        "via",
                        &format!("2001:db8:{n}::1"),
                    ])?;
                }
                Mode::Transport => {
                    ip(&[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("198.18.0.{n}/24"),
                        "dev",
                        tap,
                    ])?;
                    ip(&[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("2001:db8::{n}/64"),
                        "dev",
                        tap,
                        "nodad",
                    ])?;
                }
            }
        }
        let keys = self.keys()?;
        let keyfile = self.dir.join("keys");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&keyfile)
                .map_err(|e| format!("{}: {e}", keyfile.display()))?;
            f.write_all(keys.as_bytes())
                .map_err(|e| format!("{}: {e}", keyfile.display()))?;
        }
        if !keys.is_empty() {
            for n in 1..=2 {
                let sock = self.dir.join(format!("gw{n}.sock"));
                run(Command::new(&tools.ipseckey)
                    .arg("--socket")
                    .arg(&sock)
                    .arg("-f")
                    .arg(&keyfile))?;
            }
        }
        Ok(())
    }

    /// The SAs of both directions, both families, with fresh random keys.
    fn keys(&self) -> Result<String, String> {
        let mut out = String::new();
        // (SA type, algorithms and key bytes, second algorithm and key bytes)
        let alg = match self.spec.alg {
            Alg::Clear => return Ok(out),
            Alg::AesGcm => ("esp", "encralg aes-gcm encrkey", 20, ""),
            Alg::AesCbcSha1 => ("esp", "encralg aes encrkey", 16, "authalg sha1 authkey"),
            Alg::AhSha1 => ("ah", "authalg sha1 authkey", 20, ""),
            Alg::NullSha1 => ("esp", "encralg null authalg sha1 authkey", 20, ""),
        };
        let mut spi = 0x1000;
        for v6 in [false, true] {
            for dir in 0..2 {
                let (s, d) = if dir == 0 { (1, 2) } else { (2, 1) };
                let sel = match (self.spec.mode, v6) {
                    (Mode::Tunnel, false) => format!(
                        "src 192.0.2.{s} dst 192.0.2.{d} proto 4 isrc 198.18.{s}.0/24 idst 198.18.{d}.0/24"
                    ),
                    (Mode::Tunnel, true) => format!(
                        "src 2001:db8:ff::{s} dst 2001:db8:ff::{d} proto 41 isrc 2001:db8:{s}::/64 idst 2001:db8:{d}::/64"
                    ),
                    (Mode::Transport, false) => format!("src 198.18.0.{s} dst 198.18.0.{d}"),
                    (Mode::Transport, true) => format!("src 2001:db8::{s} dst 2001:db8::{d}"),
                };
                let auth = if alg.3.is_empty() {
                    String::new()
                } else {
                    format!(" {} {}", alg.3, random_hex(20)?)
                };
                let replay = match self.spec.replay {
                    0 => String::new(),
                    n => format!(" replay {n}"),
                };
                out.push_str(&format!(
                    "add {} spi 0x{spi:x} {sel}{replay} {} {}{auth}\n",
                    alg.0,
                    alg.1,
                    random_hex(alg.2)?
                ));
                spi += 1;
            }
        }
        Ok(out)
    }

    fn peer_addr(&self, v6: bool) -> &str {
        if v6 {
            &self.addrs.b6
        } else {
            &self.addrs.b4
        }
    }

    /// `ping -c COUNT` from namespace a to b; (transmitted, received).
    pub fn ping(&self, v6: bool, count: u32) -> Result<(u64, u64), String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns[0], "ping", "-n", "-q", "-c"])
            .arg(count.to_string())
            .args(["-i", "0.05", "-W", "2", self.peer_addr(v6)])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ping: {e}"))?;
        let text = String::from_utf8_lossy(&o.stdout);
        // "5 packets transmitted, 5 received, 0% packet loss, time 4005ms"
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .ok_or_else(|| {
                format!(
                    "ping: no summary: {text}{}",
                    String::from_utf8_lossy(&o.stderr)
                )
            })?;
        let nums: Vec<u64> = line
            .split(',')
            .filter_map(|p| p.split_whitespace().next()?.parse().ok())
            .collect();
        match nums[..] {
            [sent, received, ..] => Ok((sent, received)),
            _ => Err(format!("ping: cannot read {line:?}")),
        }
    }

    /// iperf3 TCP from namespace a to b: for `seconds`, or `bytes` if set.
    pub fn iperf(&self, v6: bool, seconds: u32, bytes: Option<u64>) -> Result<IperfResult, String> {
        let mut server = Command::new("ip")
            .args(["netns", "exec", &self.ns[1], "iperf3", "-s", "-1", "-J"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("iperf3 -s: {e}"))?;
        let mut last = String::new();
        let mut result = Err("iperf3 did not run".to_string());
        // The server needs a moment to listen.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(150));
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                &self.ns[0],
                "iperf3",
                "-J",
                "-c",
                self.peer_addr(v6),
            ]);
            match bytes {
                Some(b) => c.arg("-n").arg(b.to_string()),
                None => c.arg("-t").arg(seconds.to_string()),
            };
            if self.spec.streams > 1 {
                c.arg("-P").arg(self.spec.streams.to_string());
            }
            let o = c
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("iperf3 -c: {e}"))?;
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["error"].is_string() && v["error"].as_str().unwrap_or("").contains("connect") {
                last = text;
                continue;
            }
            result = parse_iperf(&v)
                .ok_or_else(|| format!("iperf3: {}", v["error"].as_str().unwrap_or(&text)));
            break;
        }
        let _ = server.kill();
        let _ = server.wait();
        if result.is_err() && !last.is_empty() {
            return Err(format!("iperf3 never connected: {last}"));
        }
        result
    }

    /// The simulated hosts' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.sims.iter().map(|s| s.child.id()).collect()
    }

    /// Both simulated hosts' counters (the `counters json` event).
    pub fn counters(&mut self) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for s in &mut self.sims {
            s.command("counters json")?;
            out.push(s.wait_event("counters")?);
        }
        Ok(out)
    }

    /// The capture of the outer link and its esp_sa file, once the bench
    /// is down (they stay in the bench directory until it is removed).
    pub fn capture(&self) -> Option<(PathBuf, PathBuf)> {
        let p = self.dir.join("wan.pcap");
        let k = self.dir.join("wan.pcap.esp_sa");
        (self.down && p.exists() && k.exists()).then_some((p, k))
    }

    /// Stops the hosts and removes namespaces and TAPs (the directory
    /// stays while it holds a capture: [`Bench::remove_dir`]).
    pub fn down(&mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        for s in &mut self.sims {
            s.stop();
        }
        for ns in &self.ns {
            let _ = ip(&["netns", "del", ns]);
        }
        for t in &self.taps {
            if Path::new("/sys/class/net").join(t).exists() {
                let _ = ip(&["link", "del", t]);
            }
        }
        if !self.spec.capture {
            self.remove_dir();
        }
    }

    pub fn remove_dir(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// What is left of this bench in the system (empty after `down`).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if let Ok(list) = ip(&["netns", "list"]) {
            for ns in &self.ns {
                if list
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(ns))
                {
                    left.push(format!("netns {ns}"));
                }
            }
        }
        for t in &self.taps {
            if Path::new("/sys/class/net").join(t).exists() {
                left.push(format!("link {t}"));
            }
        }
        for s in &self.sims {
            if pid_alive(s.child.id()) {
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", s.child.id())) {
                    // A zombie is gone but for its exit status.
                    if !stat.contains(") Z ") {
                        left.push(format!("process {}", s.child.id()));
                    }
                }
            }
        }
        left
    }
}

fn parse_iperf(v: &Value) -> Option<IperfResult> {
    let end = &v["end"];
    let sent = &end["sum_sent"];
    let recv = &end["sum_received"];
    Some(IperfResult {
        seconds: recv["seconds"].as_f64()?,
        bytes_sent: sent["bytes"].as_u64()?,
        bytes_received: recv["bytes"].as_u64()?,
        bits_per_second: recv["bits_per_second"].as_f64()?,
        retransmits: sent["retransmits"].as_u64().unwrap_or(0),
        sender_cpu_percent: end["cpu_utilization_percent"]["host_total"]
            .as_f64()
            .unwrap_or(0.0),
        receiver_cpu_percent: end["cpu_utilization_percent"]["remote_total"]
            .as_f64()
            .unwrap_or(0.0),
    })
}

/// One measured run: the bench up, a ping, iperf3 for `seconds`, the
/// counters, down. The JSON is what `sim bench-net run --json` prints.
pub fn measure(spec: &BenchSpec, tools: &Tools, v6: bool, seconds: u32) -> Result<Value, String> {
    let mut b = Bench::up(spec, tools)?;
    let (sent, received) = b.ping(v6, 3)?;
    let r = b.iperf(v6, seconds, None)?;
    let counters = b.counters()?;
    b.down();
    Ok(json!({
        "mode": spec.mode.name(), "alg": spec.alg.name(), "family": if v6 { "ipv6" } else { "ipv4" },
        "mtu": spec.mtu, "queues": spec.queues, "offload": spec.offload, "streams": spec.streams, "replay": spec.replay,
        "ping": {"sent": sent, "received": received},
        "iperf3": {
            "seconds": r.seconds, "bytes_sent": r.bytes_sent, "bytes_received": r.bytes_received,
            "bits_per_second": r.bits_per_second, "retransmits": r.retransmits,
            "sender_cpu_percent": r.sender_cpu_percent, "receiver_cpu_percent": r.receiver_cpu_percent,
        },
        "hosts": counters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner("ipsb1234x0a"), Some(1234));
        assert_eq!(owner("ipsb1234x12B"), Some(1234));
        assert_eq!(owner("eth0"), None);
        assert_eq!(owner("ipsbx"), None);
        // Interface names fit IFNAMSIZ with the largest pid and bench number.
        assert!(format!("{PREFIX}4194304x99B").len() <= 15);
    }

    #[test]
    fn iperf_json_is_read() {
        let v: Value = serde_json::from_str(
            r#"{"end":{"sum_sent":{"bytes":1000,"retransmits":2},"sum_received":{"seconds":1.5,"bytes":990,"bits_per_second":5280.0},"cpu_utilization_percent":{"host_total":50.0,"remote_total":20.0}}}"#,
        )
        .unwrap();
        let r = parse_iperf(&v).unwrap();
        assert_eq!(
            (r.bytes_sent, r.bytes_received, r.retransmits),
            (1000, 990, 2)
        );
        assert_eq!(r.bits_per_second, 5280.0);
        assert!(parse_iperf(&json!({"error": "x"})).is_none());
    }

    #[test]
    fn algorithms_by_name() {
        for a in [
            Alg::AesGcm,
            Alg::AesCbcSha1,
            Alg::AhSha1,
            Alg::NullSha1,
            Alg::Clear,
        ] {
            assert_eq!(Alg::parse(a.name()), Some(a));
        }
        assert_eq!(Alg::parse("rot13"), None);
    }
}
