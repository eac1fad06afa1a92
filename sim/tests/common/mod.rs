//! Starting `sadbd` the way a user does, for the state, fault and load
//! tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sadb::pfkey::{satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt};
use sadb::KeyMaterial;
use sim::client::Client;

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = std::env::temp_dir().join(format!("sadbd-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running sadbd; killed when dropped. Its standard error goes to
/// `stderr_path`.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub stderr_path: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts sadbd on `dir/pfkey.sock` and waits until it answers there.
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_with(dir, extra, |_| {})
    }

    pub fn start_with(dir: &Path, extra: &[&str], setup: impl FnOnce(&mut Command)) -> Daemon {
        let socket = dir.join("pfkey.sock");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stderr_path = dir.join(format!("stderr-{n}.txt"));
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sadbd"));
        cmd.arg("--socket")
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("start sadbd");
        let t = Instant::now();
        // Until it answers: a killed daemon's socket file may still be there.
        while Client::connect(&socket).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "sadbd exited ({st}): {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "sadbd did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon {
            child,
            socket,
            stderr_path,
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.socket).expect("connect to sadbd")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("kill");
    }

    /// Waits for the daemon to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(t.elapsed() < limit, "sadbd did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

pub const AUTH_KEY: [u8; 20] = [0x5e; 20];

/// An ESP ADD (HMAC-SHA1 + AES-128) 10.0.0.1 -> 10.0.0.2 with this SPI.
pub fn add(spi: u32, seq: u32) -> Vec<u8> {
    Message::new(MsgType::Add, satype::ESP, seq, 77)
        .with(SaExt {
            spi,
            state: 1,
            auth: 3,
            encrypt: 12,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            Address::new("10.0.0.1".parse().expect("ip"), 0, 0),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new("10.0.0.2".parse().expect("ip"), 0, 0),
        ))
        .with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: 160,
                reserved: 0,
                material: KeyMaterial::new(AUTH_KEY.to_vec()),
            },
        ))
        .with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: 128,
                reserved: 0,
                material: KeyMaterial::new(spi.to_be_bytes().repeat(4)),
            },
        ))
        .emit(Dialect::Illumos)
        .expect("emit")
}

/// A DELETE of the SA `add(spi, _)` made.
pub fn delete(spi: u32, seq: u32) -> Vec<u8> {
    Message::new(MsgType::Delete, satype::ESP, seq, 77)
        .with(SaExt {
            spi,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new("10.0.0.2".parse().expect("ip"), 0, 0),
        ))
        .emit(Dialect::Illumos)
        .expect("emit")
}

pub fn msg(t: MsgType, satype: u8, seq: u32) -> Vec<u8> {
    Message::new(t, satype, seq, 77)
        .emit(Dialect::Illumos)
        .expect("emit")
}

/// The base header of a message: (type, errno, seq).
pub fn header(b: &[u8]) -> (u8, u8, u32) {
    assert!(b.len() >= 16, "short message");
    (b[1], b[2], u32::from_ne_bytes([b[8], b[9], b[10], b[11]]))
}

/// Sends ADD `spi` (sequence `seq`) and returns its reply's errno (0:
/// added, and acknowledged).
pub fn add_answered(c: &Client, spi: u32, seq: u32) -> u8 {
    c.send(&add(spi, seq)).expect("send");
    let b = c
        .recv(Some(Duration::from_secs(5)))
        .expect("recv")
        .expect("a reply within 5 s");
    header(&b).1
}

/// The SPI of a message's SA extension.
pub fn spi_of(b: &[u8]) -> u32 {
    Message::parse(b, Dialect::Illumos)
        .expect("well-formed")
        .sa()
        .expect("an SA extension")
        .spi
}

/// Every SPI a DUMP returns (the daemon must be started with a queue limit
/// above the number of SAs).
pub fn dump_spis(c: &Client) -> Vec<u32> {
    c.send(&msg(MsgType::Dump, 0, 424242)).expect("send DUMP");
    let mut spis = Vec::new();
    loop {
        let b = c
            .recv(Some(Duration::from_secs(30)))
            .expect("recv")
            .expect("DUMP answers within 30 s");
        let (t, errno, seq) = header(&b);
        if Some(t) != MsgType::Dump.number(Dialect::Illumos) {
            continue; // a broadcast from another client
        }
        assert_eq!(errno, 0, "DUMP refused");
        if seq == 0 {
            return spis;
        }
        spis.push(spi_of(&b));
    }
}
