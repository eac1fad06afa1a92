//! The Linux kernel's own PF_KEY v2 socket (`socket(PF_KEY, SOCK_RAW,
//! PF_KEY_V2)`), speaking Linux's dialect (pfkey-v2-wire.md).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use sadb::pfkey::{Dialect, Message, MsgType};

use super::linux::{from_linux, to_linux};
use super::{open_error, KernelKind};
use crate::transport::Transport;

/// `PF_KEY_V2`, the protocol argument of `socket(2)`.
const PF_KEY_V2: i32 = 2;
/// Largest PF_KEY message: the 16-bit length counts 8-byte words.
const MAX_MSG: usize = 65535 * 8;

/// A real PF_KEY socket.
pub struct LinuxPfKey {
    fd: OwnedFd,
    /// Translated messages waiting to be read.
    inbox: VecDeque<Vec<u8>>,
    /// The seq of the DUMP this process is waiting for (Linux numbers
    /// records 1..n and gives the last one seq 0, pfkey-v2-wire.md 1.5).
    dump_seq: Option<u32>,
}

impl LinuxPfKey {
    /// Opens the socket; errors say what to do (root, af_key, XFRM).
    pub fn open() -> Result<LinuxPfKey, String> {
        // SAFETY: socket(2) takes no pointers; a non-negative result is a
        // new descriptor that only this OwnedFd owns.
        let raw =
            unsafe { libc::socket(libc::PF_KEY, libc::SOCK_RAW | libc::SOCK_CLOEXEC, PF_KEY_V2) };
        if raw < 0 {
            return Err(open_error(KernelKind::PfKey, io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(LinuxPfKey {
            fd,
            inbox: VecDeque::new(),
            dump_seq: None,
        })
    }

    fn read_one(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        if !sim::client::wait_readable(self.fd.as_fd(), timeout)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; MAX_MSG];
        let n = nix::unistd::read(self.fd.as_raw_fd(), &mut buf).map_err(io::Error::from)?;
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Translates one Linux message into what the front end reads.
    fn take(&mut self, bytes: &[u8]) {
        let Ok(m) = Message::parse(bytes, Dialect::Linux) else {
            // Let the front end report what it cannot decode.
            self.inbox.push_back(bytes.to_vec());
            return;
        };
        let Some(mut m) = from_linux(&m) else {
            return;
        };
        if let (MsgType::Dump, Some(seq)) = (m.msg_type, self.dump_seq) {
            if m.pid == std::process::id() || m.seq == 0 || m.seq == seq {
                let last = m.seq == 0 || m.errno != 0;
                if m.errno != 0 {
                    // An empty table is ENOENT on Linux; on illumos a dump
                    // of nothing succeeds.
                    if m.errno == sadb::errno::Errno::Enoent.number(Dialect::Illumos) {
                        m.errno = 0;
                    }
                    m.exts.clear();
                    m.seq = 0;
                    self.push(&m);
                } else {
                    m.seq = seq;
                    self.push(&m);
                    if last {
                        let end = Message {
                            seq: 0,
                            exts: Vec::new(),
                            ..m
                        };
                        self.push(&end);
                    }
                }
                if last {
                    self.dump_seq = None;
                }
                return;
            }
        }
        self.push(&m);
    }

    fn push(&mut self, m: &Message) {
        if let Ok(b) = m.emit(Dialect::Illumos) {
            self.inbox.push_back(b);
        }
    }
}

impl Transport for LinuxPfKey {
    fn vet(&mut self, msg: &Message) -> Result<Vec<String>, String> {
        to_linux(msg).map(|t| t.notes).map_err(|r| r.to_string())
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let m = Message::parse(msg, Dialect::Illumos)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let t =
            to_linux(&m).map_err(|r| io::Error::new(io::ErrorKind::Unsupported, r.to_string()))?;
        let bytes = t
            .msg
            .emit(Dialect::Linux)
            .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e.to_string()))?;
        if m.msg_type == MsgType::Dump {
            self.dump_seq = Some(m.seq);
        }
        let n = nix::unistd::write(&self.fd, &bytes).map_err(io::Error::from)?;
        if n != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to PF_KEY",
            ));
        }
        Ok(())
    }

    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(b) = self.inbox.pop_front() {
                return Ok(Some(b));
            }
            match self.read_one(timeout)? {
                Some(b) => self.take(&b),
                None => return Ok(None),
            }
        }
    }

    fn describe(&self) -> String {
        "the Linux kernel's PF_KEY socket".into()
    }
}
