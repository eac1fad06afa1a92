//! `sadbd --virtual-clock`: the simulated kernel keeps its own time, which
//! moves only when a client asks (`sim clock advance 8h`), so an 8-hour
//! lifetime expires in milliseconds with the right EXPIRE messages on every
//! monitor.
//!
//! The request is a private message on the same PF_KEY socket, outside
//! PF_KEY's numbering: a base header (version 2) of type [`CLOCK_MSG`] and
//! length 3 words, then the seconds to advance as a 64-bit little-endian
//! number (0 only asks the time). The reply has the same layout and carries
//! the virtual time after the move, in seconds since the epoch; a kernel
//! without a virtual clock answers it as the unknown message it is.

use std::io;
use std::path::Path;
use std::time::Duration;

use sadb::Now;

use crate::client::Client;
use crate::daemon::Service;
use crate::keysock::{Outgoing, SockId};

/// The private message type (PF_KEY v2 types stop far below).
pub const CLOCK_MSG: u8 = 0xF1;
const LEN: usize = 24;

/// The request (or reply) carrying `secs`.
pub fn encode(secs: u64, seq: u32, pid: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(LEN);
    m.extend_from_slice(&[2, CLOCK_MSG, 0, 0]);
    m.extend_from_slice(&((LEN / 8) as u16).to_ne_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&pid.to_ne_bytes());
    m.extend_from_slice(&secs.to_le_bytes());
    m
}

/// The sequence number and pid of a message (zeros if it is too short).
pub fn seq_pid(bytes: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_ne_bytes)
    };
    (word(8), word(12))
}

/// The seconds a clock message carries, if `bytes` is one.
pub fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != LEN || bytes[0] != 2 || bytes[1] != CLOCK_MSG || bytes[2] != 0 {
        return None;
    }
    let n: [u8; 8] = bytes[16..24].try_into().ok()?;
    Some(u64::from_le_bytes(n))
}

/// What a simulated kernel answers a clock request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Its virtual time after the request, in seconds since the epoch.
    Virtual(Now),
    /// It keeps real time (`sadbd` without `--virtual-clock`).
    RealTime,
    /// Its clock is moved by its owner only (a lab's `advance`); the
    /// current virtual time.
    OwnerOnly(Now),
}

/// Asks the simulated kernel at `path`, on a connection of its own, to
/// move its clock `secs` forward (0: only to tell the time), waiting at most
/// `timeout` for the answer.
pub fn request(path: &Path, secs: u64, timeout: Duration) -> io::Result<Answer> {
    let client = Client::connect(path)?;
    let pid = std::process::id();
    client.send(&encode(secs, 1, pid))?;
    // Messages for every socket (EXPIREs) may come before the answer.
    loop {
        let Some(m) = client.recv(Some(timeout))? else {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer to the clock request",
            ));
        };
        if let Some(now) = decode(&m) {
            return Ok(Answer::Virtual(now));
        }
        // An error reply to our request: a kernel that refuses to move
        // its clock, or one that does not know the message at all.
        if m.len() >= 16 && m[2] != 0 && seq_pid(&m) == (1, pid) {
            return Ok(match decode_refusal(&m) {
                Some(now) => Answer::OwnerOnly(now),
                None => Answer::RealTime,
            });
        }
    }
}

/// A refusal to move a clock someone else moves: the header with errno
/// EPERM, carrying the current time.
pub fn refusal(now: Now, seq: u32, pid: u32) -> Vec<u8> {
    let mut m = encode(now, seq, pid);
    m[2] = sadb::Errno::Eperm.number(sadb::pfkey::Dialect::Illumos);
    m
}

fn decode_refusal(m: &[u8]) -> Option<Now> {
    let mut ok = m.to_vec();
    if ok.len() != LEN || ok[2] != sadb::Errno::Eperm.number(sadb::pfkey::Dialect::Illumos) {
        return None;
    }
    ok[2] = 0;
    decode(&ok)
}

/// `30s`, `10m`, `8h`, `2d` or plain seconds.
pub fn parse_secs(s: &str) -> Option<u64> {
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A simulated kernel on a virtual clock: requests are answered at the
/// virtual time whatever the caller's clock says, and the ager runs (once
/// per `step` seconds of virtual time) only when the clock is advanced.
pub struct VirtualClock<S> {
    inner: S,
    now: Now,
    step: u64,
}

impl<S: Service> VirtualClock<S> {
    /// Starts at `start` (seconds since the epoch); the ager runs every
    /// `step` virtual seconds while time moves.
    pub fn new(inner: S, start: Now, step: u64) -> VirtualClock<S> {
        VirtualClock {
            inner,
            now: start,
            step: step.max(1),
        }
    }

    pub fn now(&self) -> Now {
        self.now
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Moves the clock `secs` forward, running the ager on the way; what
    /// it says goes to the sockets as it would have over that time.
    pub fn advance(&mut self, secs: u64) -> Vec<Outgoing> {
        let end = self.now.saturating_add(secs);
        let mut out = Vec::new();
        while self.now < end {
            // Passes before the kernel's next event do nothing: skip to
            // the last one before it, so `advance 1000000d` takes as long
            // as the events on the way, not a pass per `step` seconds.
            let due = self.inner.next_event().unwrap_or(Now::MAX);
            if due > self.now.saturating_add(self.step) {
                let idle = (due.min(end) - self.now - 1) / self.step;
                self.now = self.now.saturating_add(idle * self.step);
            }
            self.now = self.now.saturating_add(self.step).min(end);
            out.extend(self.inner.tick(self.now));
        }
        out
    }
}

impl<S: Service> Service for VirtualClock<S> {
    fn open(&mut self) -> SockId {
        self.inner.open()
    }
    fn close(&mut self, sock: SockId) {
        self.inner.close(sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], _now: Now) -> Vec<Outgoing> {
        let Some(secs) = decode(bytes) else {
            return self.inner.write(from, bytes, self.now);
        };
        let mut out = self.advance(secs);
        let (seq, pid) = seq_pid(bytes);
        out.push(Outgoing {
            to: from,
            bytes: encode(self.now, seq, pid),
        });
        out
    }
    /// The wall-clock ager does nothing: time moves only on request.
    fn tick(&mut self, _now: Now) -> Vec<Outgoing> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keysock::Keysock;
    use sadb::pfkey::{Dialect, Message, MsgType};

    fn add(spi: u32) -> Vec<u8> {
        use sadb::pfkey::{satype, Address, ExtKind, Extension, Key, Lifetime, SaExt, SaState};
        let addr = |kind, s: &str| {
            let ip: std::net::Ipv4Addr = s.parse().unwrap();
            Extension::Address(kind, Address::new(ip.to_ipv6_mapped().into(), 0, 0))
        };
        let life = |kind, addtime| {
            Extension::Lifetime(
                kind,
                Lifetime {
                    addtime,
                    ..Lifetime::default()
                },
            )
        };
        Message::new(MsgType::Add, satype::AH, 1, 42)
            .with(SaExt {
                spi,
                state: SaState::Mature as u8,
                auth: 3,
                ..SaExt::default()
            })
            .with(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: 160,
                    reserved: 0,
                    material: sadb::KeyMaterial::new(vec![0x5a; 20]),
                },
            ))
            .with(addr(ExtKind::AddressSrc, "192.0.2.1"))
            .with(addr(ExtKind::AddressDst, "192.0.2.2"))
            .with(life(ExtKind::LifetimeSoft, 3600))
            .with(life(ExtKind::LifetimeHard, 7200))
            .emit(Dialect::Illumos)
            .unwrap()
    }

    fn types(out: &[Outgoing]) -> Vec<MsgType> {
        out.iter()
            .filter_map(|o| Message::parse(&o.bytes, Dialect::Illumos).ok())
            .map(|m| m.msg_type)
            .collect()
    }

    #[test]
    fn requests_use_virtual_time_and_expiry_waits_for_advance() {
        let start = 1_800_000_000;
        let mut vc = VirtualClock::new(Keysock::new(sadb::Config::default()), start, 8);
        let s = vc.open();
        // The caller's clock (here far in the future) is ignored.
        let out = vc.write(s, &add(0x100), start + 1_000_000);
        assert_eq!(types(&out), vec![MsgType::Add]);
        let m = Message::parse(&out[0].bytes, Dialect::Illumos).unwrap();
        assert_eq!(m.errno, 0);
        // The wall-clock ager is a no-op.
        assert!(vc.tick(start + 1_000_000).is_empty());
        // Half an hour: nothing; then to 1 h: the soft EXPIRE; 2 h: hard.
        assert!(types(&vc.write(s, &encode(1800, 7, 42), 0))
            .iter()
            .all(|t| *t != MsgType::Expire));
        let out = vc.write(s, &encode(1800, 8, 42), 0);
        assert_eq!(types(&out), vec![MsgType::Expire]);
        let reply = out.last().unwrap();
        assert_eq!(reply.to, s);
        assert_eq!(decode(&reply.bytes), Some(start + 3600));
        assert_eq!(reply.bytes[8], 8, "the reply echoes seq");
        let out = vc.write(s, &encode(3600, 9, 42), 0);
        assert_eq!(types(&out), vec![MsgType::Expire]);
        assert_eq!(vc.now(), start + 7200);
        // Asking the time moves nothing.
        let out = vc.write(s, &encode(0, 10, 42), 0);
        assert_eq!(out.len(), 1);
        assert_eq!(decode(&out[0].bytes), Some(start + 7200));
    }

    /// A clock moved by a century (or to the end of time) skips the empty
    /// ager passes: it answers at once, with the same EXPIREs in the same
    /// order as a pass every `step` seconds would give.
    #[test]
    fn a_huge_advance_skips_empty_passes_but_keeps_every_expire() {
        let start = 1_800_000_000;
        let century = 100 * 365 * 86_400;
        let run = |secs: u64, step_by_step: bool| {
            let mut vc = VirtualClock::new(Keysock::new(sadb::Config::default()), start, 8);
            let s = vc.open();
            vc.write(s, &add(0x100), 0);
            let mut out = Vec::new();
            if step_by_step {
                for _ in 0..secs / 8 {
                    out.extend(vc.advance(8));
                }
            } else {
                out = vc.advance(secs);
            }
            (types(&out), vc.now(), vc.inner().sadb().len())
        };
        let t = std::time::Instant::now();
        let (got, now, left) = run(century, false);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(got, vec![MsgType::Expire, MsgType::Expire]);
        assert_eq!((now, left), (start + century, 0));
        // The same as passes every 8 s over the first 3 hours.
        assert_eq!(run(3 * 3600, false), run(3 * 3600, true));
        // To the end of time: saturates, no overflow, no hang.
        let (got, now, _) = run(u64::MAX, false);
        assert_eq!((got.len(), now), (2, u64::MAX));
    }

    #[test]
    fn a_plain_kernel_refuses_the_clock_message() {
        let mut ks = Keysock::new(sadb::Config::default());
        let s = ks.open();
        let out = ks.write(s, &encode(60, 1, 1), 0);
        assert_eq!(out.len(), 1);
        assert_eq!(decode(&out[0].bytes), None);
        // An error reply: the header comes back with errno set.
        assert_ne!(out[0].bytes[2], 0, "errno");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("90"), Some(90));
        assert_eq!(parse_secs("30s"), Some(30));
        assert_eq!(parse_secs("10m"), Some(600));
        assert_eq!(parse_secs("8h"), Some(28800));
        assert_eq!(parse_secs("2d"), Some(172800));
        for bad in ["", "h", "-1s", "1.5h", "8x", "99999999999999999999d"] {
            assert_eq!(parse_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn decode_rejects_what_is_not_a_clock_message() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&encode(5, 1, 1)[..16]), None);
        let mut m = encode(5, 1, 1);
        m[1] = 3;
        assert_eq!(decode(&m), None);
        assert_eq!(decode(&encode(5, 1, 1)), Some(5));
    }
}
