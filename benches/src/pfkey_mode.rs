//! PF_KEY: SA adds per second through the simulator's socket (a `sadbd`
//! serve loop in this process, on a temporary socket), the same ADDs
//! written straight into the socket layer without a socket, and
//! `ipseckey -f` of a generated file of N SAs against that daemon.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sadb::pfkey::{Dialect, MsgView};
use sadb::{Config, Jitter};
use serde::Serialize;
use sim::client::Client;
use sim::daemon::{listen_on, serve_services, DaemonConfig};
use sim::Keysock;

use crate::stats::{Measured, Rep, Sample, Settings, Stat};
use crate::{add_line, add_msg, SRC};

/// How long a client waits for one reply before it gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How `ipseckey -f` is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// The `ipseckey` program, as a user runs it.
    Binary(PathBuf),
    /// The ipseckey library inside this process (the same parser, session
    /// and socket client, without starting a process): used when no
    /// `ipseckey` program was found.
    Library,
}

impl Runner {
    pub fn describe(&self) -> String {
        match self {
            Runner::Binary(p) => format!("{} -n --socket SOCKET -f FILE", p.display()),
            Runner::Library => "the ipseckey library in process (no ipseckey program found)".into(),
        }
    }
}

/// The results of the `pfkey` mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PfkeyResult {
    /// SAs added per repetition.
    pub count: u32,
    /// Client connections adding at once (the daemon is one thread).
    pub clients: usize,
    /// ADD round trips through the daemon's socket: `ns` per ADD per
    /// client, `mops` million ADDs per second for all clients.
    pub socket: Measured,
    /// ADDs per second through the socket (all clients).
    pub socket_adds_per_s: Stat,
    /// The same with [`WINDOW`] ADDs in flight per client (PF_KEY lets a
    /// client send before it reads): what the daemon sustains.
    pub pipelined: Measured,
    pub pipelined_adds_per_s: Stat,
    pub window: usize,
    /// The same ADDs written into the simulated socket layer (`Keysock`)
    /// directly: what the daemon costs without the socket.
    pub in_process: Measured,
    pub in_process_adds_per_s: Stat,
    /// `ipseckey -f` of a file of `count` add commands.
    pub ipseckey_file: FileResult,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileResult {
    pub command: String,
    /// Seconds from start to exit.
    pub seconds: Stat,
    pub adds_per_s: Stat,
}

/// A `sadbd` serve loop on a thread, on a socket of its own.
pub struct Daemon {
    pub socket: PathBuf,
    wake: UnixStream,
    thread: JoinHandle<io::Result<Keysock>>,
}

impl Daemon {
    /// Serves a fresh simulated host (own address 192.0.2.1) on
    /// `dir/sadbd.sock`.
    pub fn start(dir: &Path) -> io::Result<Daemon> {
        let mut cfg = DaemonConfig::new(dir.join("sadbd.sock"));
        cfg.local = vec![IpAddr::V4(SRC)];
        let listener = listen_on(&cfg)?;
        let (wake_r, wake) = UnixStream::pair()?;
        let socket = cfg.socket.clone();
        let thread = std::thread::spawn(move || {
            let mut ks = Keysock::new(host_config());
            serve_services(&cfg, &[&listener], &mut [&mut ks], &wake_r)?;
            Ok(ks)
        });
        Ok(Daemon {
            socket,
            wake,
            thread,
        })
    }

    /// Stops the loop and hands back the simulated host.
    pub fn stop(mut self) -> io::Result<Keysock> {
        self.wake.write_all(&[1])?;
        let r = self
            .thread
            .join()
            .map_err(|_| io::Error::other("the daemon thread panicked"))?;
        let _ = std::fs::remove_file(&self.socket);
        r
    }
}

fn host_config() -> Config {
    let mut c = Config {
        jitter: Jitter::Off,
        ..Config::default()
    };
    c.local_addrs.insert(IpAddr::V4(SRC));
    c
}

/// ADDs kept in flight by the pipelined client.
pub const WINDOW: usize = 32;

/// Adds SAs `range` through one client connection with up to `window`
/// ADDs sent before their replies are read (1: one round trip each, as
/// ipseckey does); `pid` tells this client's replies from the copies of
/// other clients' ADDs that PF_KEY sends every socket.
fn client_adds(
    socket: &Path,
    range: std::ops::Range<u32>,
    pid: u32,
    window: usize,
) -> Result<Sample, String> {
    let c = Client::connect(socket).map_err(|e| format!("pfkey: connect: {e}"))?;
    let t = Instant::now();
    let (mut next, mut in_flight) = (range.start, 0usize);
    while next < range.end || in_flight > 0 {
        while next < range.end && in_flight < window.max(1) {
            let mut m = add_msg(next);
            m.pid = pid;
            let bytes = m
                .emit(Dialect::Illumos)
                .map_err(|e| format!("pfkey: {e}"))?;
            c.send(&bytes).map_err(|e| format!("pfkey: send: {e}"))?;
            next += 1;
            in_flight += 1;
        }
        let r = c
            .recv(Some(REPLY_TIMEOUT))
            .map_err(|e| format!("pfkey: recv: {e}"))?
            .ok_or("pfkey: no reply from the daemon within 30 s")?;
        let v = MsgView::new_checked(&r[..]).map_err(|e| format!("pfkey: reply: {e}"))?;
        if v.pid() == pid && range.contains(&v.seq()) {
            if v.errno() != 0 {
                return Err(format!(
                    "pfkey: ADD {} refused: errno {}",
                    v.seq(),
                    v.errno()
                ));
            }
            in_flight -= 1;
        }
    }
    Ok(Sample {
        ops: range.len() as u64,
        elapsed: t.elapsed(),
    })
}

/// One repetition through the socket: `clients` connections share `n` ADDs.
fn socket_rep(dir: &Path, n: u32, clients: usize, window: usize) -> Result<Rep, String> {
    let d = Daemon::start(dir).map_err(|e| format!("pfkey: daemon: {e}"))?;
    let per = n.div_ceil(clients as u32);
    let socket = d.socket.clone();
    let results: Vec<Result<Sample, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients as u32)
            .map(|k| {
                let socket = &socket;
                let range = (k * per).min(n)..((k + 1) * per).min(n);
                s.spawn(move || client_adds(socket, range, 1000 + k, window))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("pfkey: a client thread panicked".into()))
            })
            .collect()
    });
    let ks = d.stop().map_err(|e| format!("pfkey: daemon: {e}"))?;
    let samples = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    if ks.sadb().len() != n as usize {
        return Err(format!(
            "pfkey: the daemon holds {} SAs after {n} ADDs",
            ks.sadb().len()
        ));
    }
    Ok(Rep::of(&samples))
}

/// The same ADDs written into a `Keysock` directly.
fn in_process_rep(n: u32) -> Result<Rep, String> {
    let mut ks = Keysock::new(host_config());
    let me = ks.open();
    let t = Instant::now();
    for i in 0..n {
        let bytes = add_msg(i)
            .emit(Dialect::Illumos)
            .map_err(|e| format!("pfkey: {e}"))?;
        std::hint::black_box(ks.write(me, &bytes, crate::esp::NOW));
    }
    let elapsed = t.elapsed();
    if ks.sadb().len() != n as usize {
        return Err(format!("pfkey: {} SAs after {n} ADDs", ks.sadb().len()));
    }
    Ok(Rep::of(&[Sample {
        ops: u64::from(n),
        elapsed,
    }]))
}

/// Writes `n` add commands to `path` (mode 0600: the file holds keys).
pub fn write_key_file(path: &Path, n: u32) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut w = BufWriter::new(f);
    for i in 0..n {
        w.write_all(add_line(i).as_bytes())?;
    }
    w.flush()
}

fn file_rep(dir: &Path, file: &Path, n: u32, runner: &Runner) -> Result<f64, String> {
    let d = Daemon::start(dir).map_err(|e| format!("pfkey: daemon: {e}"))?;
    let t = Instant::now();
    let r = run_ipseckey(runner, &d.socket, file);
    let secs = t.elapsed().as_secs_f64();
    let ks = d.stop().map_err(|e| format!("pfkey: daemon: {e}"))?;
    r?;
    if ks.sadb().len() != n as usize {
        return Err(format!(
            "pfkey: ipseckey -f left {} SAs, expected {n}",
            ks.sadb().len()
        ));
    }
    Ok(secs)
}

fn run_ipseckey(runner: &Runner, socket: &Path, file: &Path) -> Result<(), String> {
    match runner {
        Runner::Binary(exe) => {
            let out = Command::new(exe)
                .arg("-n")
                .arg("--socket")
                .arg(socket)
                .arg("-f")
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("pfkey: cannot run {}: {e}", exe.display()))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(format!(
                    "pfkey: {} -f failed ({}): {}",
                    exe.display(),
                    out.status,
                    err.lines().next().unwrap_or("")
                ));
            }
            Ok(())
        }
        Runner::Library => {
            use ipseckey::driver::{file_verdict, run_file};
            use ipseckey::parse::ParseOpts;
            use ipseckey::print::PrintOpts;
            use ipseckey::run::{Mode, Session};
            use ipseckey::transport::SimSocket;
            let mut t = SimSocket::connect(socket).map_err(|e| format!("pfkey: connect: {e}"))?;
            let print = PrintOpts {
                numeric: true,
                ..PrintOpts::default()
            };
            let mut s = Session::new(&mut t, print, Mode::File);
            let path = file
                .to_str()
                .ok_or("pfkey: the temporary path is not UTF-8")?;
            let tally = run_file(&mut s, ParseOpts { numeric: true }, path);
            if file_verdict(&mut s, &tally) {
                Ok(())
            } else {
                Err("pfkey: ipseckey -f reported errors (above)".into())
            }
        }
    }
}

/// Progress steps of [`measure`] for a bar's length.
pub fn steps(set: &Settings) -> u64 {
    4 * set.reps.max(1) as u64
}

/// Runs the `pfkey` mode with `count` SAs per repetition; `tick` after
/// each step (four per repetition).
pub fn measure(
    count: u32,
    set: &Settings,
    runner: &Runner,
    mut tick: impl FnMut(),
) -> Result<PfkeyResult, String> {
    let n = count.max(1);
    let clients = set.threads.clamp(1, n as usize);
    let dir = tempfile::Builder::new()
        .prefix("ipsec-bench-")
        .tempdir()
        .map_err(|e| format!("pfkey: temporary directory: {e}"))?;
    let file = dir.path().join("keys.conf");
    write_key_file(&file, n).map_err(|e| format!("pfkey: {}: {e}", file.display()))?;
    if !set.warmup.is_zero() {
        // A short untimed run: threads, sockets and allocator warm.
        socket_rep(dir.path(), n.min(2000), clients, 1)?;
        in_process_rep(n.min(2000))?;
    }
    let (mut sock, mut piped, mut inproc, mut secs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..set.reps.max(1) {
        sock.push(socket_rep(dir.path(), n, clients, 1)?);
        tick();
        piped.push(socket_rep(dir.path(), n, clients, WINDOW)?);
        tick();
        inproc.push(in_process_rep(n)?);
        tick();
        secs.push(file_rep(dir.path(), &file, n, runner)?);
        tick();
    }
    let rate = |reps: &[Rep]| Stat::of(&reps.iter().map(|r| r.ops_per_s).collect::<Vec<_>>());
    let file_rates: Vec<f64> = secs
        .iter()
        .filter(|s| **s > 0.0)
        .map(|s| f64::from(n) / s)
        .collect();
    Ok(PfkeyResult {
        count: n,
        clients,
        socket: Measured::of(&sock),
        socket_adds_per_s: rate(&sock),
        pipelined: Measured::of(&piped),
        pipelined_adds_per_s: rate(&piped),
        window: WINDOW,
        in_process: Measured::of(&inproc),
        in_process_adds_per_s: rate(&inproc),
        ipseckey_file: FileResult {
            command: runner.describe(),
            seconds: Stat::of(&secs),
            adds_per_s: Stat::of(&file_rates),
        },
    })
}
