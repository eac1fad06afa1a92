//! The link layer between simulated hosts.
//!
//! [`Pipe`] is one direction of a simulated link as a sans-IO state
//! machine: frames go in with the virtual time, come out when due, and on
//! the way may be dropped, duplicated, reordered, delayed or corrupted as
//! its [`Faults`] say, every decision drawn from a seeded generator so
//! that a run can be replayed. [`Capture`] writes frames to a pcap file,
//! [`esp_sa_file`] writes the keys Wireshark needs to open the ESP in it,
//! and [`UdpLink`] carries frames to and from a real qemu guest.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, PcapError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::satype;

/// Bytes a corruption never touches: an Ethernet header (14), a minimal
/// IPv4 header (20) and an ESP header (8). A flipped byte past them makes
/// an IPsec packet fail its ICV rather than its IP header checksum.
pub const CORRUPT_FROM: usize = 14 + 20 + 8;

/// Faults applied to frames in one direction of a link; rates are probabilities per frame in 0.0..=1.0.
///
/// A rate outside that range behaves as its nearest end (NaN as 0.0);
/// [`Faults::parse`] refuses one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// The frame never arrives.
    pub drop: f64,
    /// The frame arrives twice, the copy right after the original.
    pub duplicate: f64,
    /// The frame is held back and arrives after the next frame (see
    /// [`Pipe`] for the exact rule).
    pub reorder: f64,
    /// The frame arrives `delay_ms` later than it would otherwise.
    pub delay: f64,
    /// The extra time of a delayed frame, in milliseconds.
    pub delay_ms: u64,
    /// One byte at offset [`CORRUPT_FROM`] or later is flipped.
    pub corrupt: f64,
    /// Seed of the generator every decision is drawn from.
    pub seed: u64,
}

impl Faults {
    /// Parses "drop 0.1 duplicate 0.05 reorder 0.1 delay 0.2 20ms corrupt 0.01 seed 7" (any subset, any order); errors name the bad word.
    ///
    /// Each fault word takes a rate in 0.0..=1.0; `delay` takes a rate and
    /// a time (`20ms`, `2s`, or a bare number of milliseconds); `seed`
    /// takes an unsigned integer. A word given twice is refused.
    pub fn parse(words: &[&str]) -> Result<Faults, String> {
        let mut f = Faults::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut it = words.iter().copied();
        while let Some(word) = it.next() {
            let key = word.to_ascii_lowercase();
            let key = match key.as_str() {
                "drop" => "drop",
                "duplicate" | "dup" => "duplicate",
                "reorder" => "reorder",
                "delay" => "delay",
                "corrupt" => "corrupt",
                "seed" => "seed",
                _ => return Err(format!("unknown fault \"{word}\" (want drop, duplicate, reorder, delay, corrupt or seed)")),
            };
            if seen.contains(&key) {
                return Err(format!("\"{word}\" given twice"));
            }
            seen.push(key);
            if key == "seed" {
                let v = it
                    .next()
                    .ok_or_else(|| format!("\"{word}\" needs a number"))?;
                f.seed = v
                    .parse()
                    .map_err(|_| format!("bad seed \"{v}\" (want an unsigned integer)"))?;
                continue;
            }
            let v = it
                .next()
                .ok_or_else(|| format!("\"{word}\" needs a rate"))?;
            let rate = parse_rate(v)
                .ok_or_else(|| format!("bad rate \"{v}\" for {key} (want 0.0..=1.0)"))?;
            match key {
                "drop" => f.drop = rate,
                "duplicate" => f.duplicate = rate,
                "reorder" => f.reorder = rate,
                "corrupt" => f.corrupt = rate,
                _ => {
                    f.delay = rate;
                    let t = it.next().ok_or_else(|| {
                        format!("\"{word}\" needs a time after its rate (such as 20ms)")
                    })?;
                    f.delay_ms = parse_ms(t).ok_or_else(|| {
                        format!("bad delay time \"{t}\" (want such as 20ms or 1s)")
                    })?;
                }
            }
        }
        Ok(f)
    }

    /// Whether no fault can happen.
    pub fn is_clean(&self) -> bool {
        [
            self.drop,
            self.duplicate,
            self.reorder,
            self.delay,
            self.corrupt,
        ]
        .iter()
        .all(|r| r.is_nan() || *r <= 0.0)
    }
}

/// The words [`Faults::parse`] reads back (rates of 0 left out, the seed
/// always given).
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, rate) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if rate > 0.0 {
                write!(f, "{name} {rate} ")?;
            }
        }
        if self.delay > 0.0 {
            write!(f, "delay {} {}ms ", self.delay, self.delay_ms)?;
        }
        if self.corrupt > 0.0 {
            write!(f, "corrupt {} ", self.corrupt)?;
        }
        write!(f, "seed {}", self.seed)
    }
}

fn parse_rate(s: &str) -> Option<f64> {
    let r: f64 = s.parse().ok()?;
    (0.0..=1.0).contains(&r).then_some(r)
}

fn parse_ms(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (num, scale) = if let Some(n) = lower.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, 1000)
    } else {
        (lower.as_str(), 1)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(scale)
}

/// What a [`Pipe`] did to the frames given to it.
///
/// Once the pipe is drained (`next_due()` is `None`),
/// `delivered == sent - dropped + duplicated`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames given to [`Pipe::send`].
    pub sent: u64,
    /// Frames returned by [`Pipe::deliver`], copies included.
    pub delivered: u64,
    /// Frames that will never arrive.
    pub dropped: u64,
    /// Extra copies made (each is delivered).
    pub duplicated: u64,
    /// Held-back frames delivered behind a frame sent after them (a held
    /// frame released by the fallback rule, with no later frame to swap
    /// with, is not counted).
    pub reordered: u64,
    /// Frames made `delay_ms` late.
    pub delayed: u64,
    /// Frames with one byte flipped (frames of [`CORRUPT_FROM`] bytes or
    /// fewer never are).
    pub corrupted: u64,
}

/// A frame held back by the reorder fault, with its copy if duplicated.
#[derive(Debug)]
struct Held {
    frames: Vec<Vec<u8>>,
    due: u64,
}

/// One direction of a link, sans-IO: frames go in with the virtual time in milliseconds, and come out when due.
///
/// For every frame given to [`send`](Self::send), the generator decides,
/// in this order: drop (nothing else happens to a dropped frame), corrupt,
/// delay, duplicate, reorder. A frame is due at the time it was sent, plus
/// `delay_ms` if delayed; frames due at the same time come out in the
/// order they were queued, a copy right behind its original.
///
/// The reorder rule: a frame chosen for reordering is held back (with its
/// copy, if duplicated). The next frame sent that is not dropped releases
/// it: the held frame is queued right behind that frame (and its copy), at
/// the later of the two due times, so it arrives after it; this counts
/// one `reordered`. That releasing frame is never itself held, so at rate
/// 1.0 frames swap in pairs. If no later frame comes, the held frame is
/// delivered by the first [`deliver`](Self::deliver) call at or after its
/// own due time that finds nothing else due, and [`next_due`](Self::next_due)
/// counts it, so a loop driven by `next_due` never strands it. Reordering
/// therefore only swaps frames that are in flight together.
pub struct Pipe {
    faults: Faults,
    rng: StdRng,
    /// Queued frames by (due time, order of queueing).
    queue: BTreeMap<(u64, u64), Vec<u8>>,
    seq: u64,
    held: Option<Held>,
    counters: FaultCounters,
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("faults", &self.faults)
            .field("queued", &self.queue.len())
            .field("held", &self.held.as_ref().map(|h| h.frames.len()))
            .field("counters", &self.counters)
            .finish()
    }
}

/// Whether an event of probability `rate` happens, given a uniform draw in
/// [0, 1).
fn hits(draw: f64, rate: f64) -> bool {
    draw < rate
}

impl Pipe {
    pub fn new(faults: Faults) -> Pipe {
        Pipe {
            rng: StdRng::seed_from_u64(faults.seed),
            faults,
            queue: BTreeMap::new(),
            seq: 0,
            held: None,
            counters: FaultCounters::default(),
        }
    }

    /// The faults this pipe applies.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn send(&mut self, mut frame: Vec<u8>, now_ms: u64) {
        self.counters.sent += 1;
        // One draw per fault for every frame, whatever the rates, so that
        // changing one rate does not change which frames the others hit.
        let draws: [f64; 5] = [
            self.rng.gen(),
            self.rng.gen(),
            self.rng.gen(),
            self.rng.gen(),
            self.rng.gen(),
        ];
        let [d_drop, d_corrupt, d_delay, d_dup, d_reorder] = draws;
        if hits(d_drop, self.faults.drop) {
            self.counters.dropped += 1;
            return;
        }
        if hits(d_corrupt, self.faults.corrupt) && frame.len() > CORRUPT_FROM {
            let at = self.rng.gen_range(CORRUPT_FROM..frame.len());
            let mask: u8 = self.rng.gen_range(1..=255);
            if let Some(b) = frame.get_mut(at) {
                *b ^= mask;
                self.counters.corrupted += 1;
            }
        }
        let mut due = now_ms;
        if hits(d_delay, self.faults.delay) {
            due = due.saturating_add(self.faults.delay_ms);
            self.counters.delayed += 1;
        }
        let mut frames = vec![frame];
        if hits(d_dup, self.faults.duplicate) {
            frames.extend(frames.first().cloned());
            self.counters.duplicated += 1;
        }
        if self.held.is_none() && hits(d_reorder, self.faults.reorder) {
            self.held = Some(Held { frames, due });
            return;
        }
        for f in frames {
            self.enqueue(due, f);
        }
        if let Some(h) = self.held.take() {
            let at = h.due.max(due);
            for f in h.frames {
                self.enqueue(at, f);
            }
            self.counters.reordered += 1;
        }
    }

    fn enqueue(&mut self, due: u64, frame: Vec<u8>) {
        self.queue.insert((due, self.seq), frame);
        self.seq = self.seq.wrapping_add(1);
    }

    /// Frames due at or before now_ms, in delivery order.
    pub fn deliver(&mut self, now_ms: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            out.push(entry.remove());
        }
        if out.is_empty() && self.held.as_ref().is_some_and(|h| h.due <= now_ms) {
            if let Some(h) = self.held.take() {
                out = h.frames;
            }
        }
        self.counters.delivered += out.len() as u64;
        out
    }

    /// When the next queued frame is due.
    ///
    /// A held-back frame counts with its own due time: `deliver` at that
    /// time (or, if other frames are due then, at the call after) releases
    /// it when no later frame has.
    pub fn next_due(&self) -> Option<u64> {
        let queued = self.queue.keys().next().map(|k| k.0);
        let held = self.held.as_ref().map(|h| h.due);
        match (queued, held) {
            (Some(q), Some(h)) => Some(q.min(h)),
            (q, h) => q.or(h),
        }
    }

    /// Frames sent and not yet delivered nor dropped (copies included).
    pub fn in_flight(&self) -> usize {
        self.queue.len() + self.held.as_ref().map_or(0, |h| h.frames.len())
    }

    pub fn counters(&self) -> &FaultCounters {
        &self.counters
    }
}

/// Frames longer than this are cut in the capture (their original length
/// is still recorded).
const SNAPLEN: u32 = 262_144;

fn pcap_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

/// Writes Ethernet frames to a pcap file (pcap-file crate, LINKTYPE_ETHERNET), timestamps from virtual milliseconds.
///
/// Writes are buffered; [`flush`](Self::flush) pushes them to the file,
/// and dropping the capture flushes what is left (errors then are lost).
pub struct Capture {
    /// Formats records into `staged`.
    writer: PcapWriter<Staging>,
    staged: Arc<Mutex<Vec<u8>>>,
    file: BufWriter<File>,
}

/// Where the pcap writer puts each record before [`Capture`] moves it to
/// the file: `PcapWriter` gives no access to its writer for flushing.
struct Staging(Arc<Mutex<Vec<u8>>>);

impl Write for Staging {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut v = self
            .0
            .lock()
            .map_err(|_| io::Error::other("capture buffer poisoned"))?;
        v.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

impl Capture {
    /// Creates (or truncates) the file at `path` and writes the pcap header.
    pub fn create(path: &Path) -> io::Result<Capture> {
        let file = BufWriter::new(File::create(path)?);
        let staged = Arc::new(Mutex::new(Vec::new()));
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: SNAPLEN,
            ..PcapHeader::default()
        };
        let writer =
            PcapWriter::with_header(Staging(Arc::clone(&staged)), header).map_err(pcap_io)?;
        let mut cap = Capture {
            writer,
            staged,
            file,
        };
        cap.unstage()?;
        // A file that cannot be written (a full disk, /dev/full, a
        // read-only /proc file) fails here, at the capture line.
        cap.file.flush()?;
        Ok(cap)
    }

    /// Moves what the pcap writer produced to the file's buffer. On an
    /// error the staged bytes are thrown away, so that a refused record
    /// never leaves half of itself in the file.
    fn unstage(&mut self) -> io::Result<()> {
        let mut v = self
            .staged
            .lock()
            .map_err(|_| io::Error::other("capture buffer poisoned"))?;
        let r = self.file.write_all(&v);
        v.clear();
        r
    }

    /// Appends one frame seen at virtual time `time_ms` (milliseconds since
    /// the epoch of the capture's clock). A time past the year 2106
    /// (pcap's 32-bit seconds) is refused.
    pub fn write(&mut self, frame: &[u8], time_ms: u64) -> io::Result<()> {
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let kept = frame.get(..SNAPLEN as usize).unwrap_or(frame);
        let packet = PcapPacket::new(Duration::from_millis(time_ms), orig_len, kept);
        match self.writer.write_packet(&packet) {
            Ok(_) => self.unstage(),
            Err(e) => {
                if let Ok(mut v) = self.staged.lock() {
                    v.clear();
                }
                Err(pcap_io(e))
            }
        }
    }

    /// Pushes buffered frames to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Wireshark's esp_sa UAT file for the ESP SAs of a SADB (one line per SA; format and names below).
///
/// Each ESP SA becomes one line of eight double-quoted, comma-separated
/// fields, as Wireshark 4.0 reads them: protocol (`IPv4` or `IPv6`, of
/// the outer addresses), source address, destination address, SPI as
/// `0x%08x`, encryption algorithm, encryption key as `0x<hex>` (empty for
/// NULL; for AES-CTR and AES-GCM the key ends with its 4-byte salt, as
/// the SADB stores it), authentication algorithm, authentication key
/// (empty for NULL). SAs of other types are left out; ESP SAs Wireshark
/// cannot decrypt (CCM, GMAC, ChaCha20-Poly1305, an unknown algorithm, or
/// mixed address families) get a `#` comment line saying why, without
/// their keys.
///
/// The text carries the SAs' keys: callers write it to a file created
/// with mode 0600.
pub fn esp_sa_file<'a>(sas: impl IntoIterator<Item = &'a sadb::Sa>) -> String {
    let mut out = String::new();
    for sa in sas {
        if sa.satype != satype::ESP {
            continue;
        }
        match esp_sa_line(sa) {
            Ok(line) => out.push_str(&line),
            Err(why) => out.push_str(&format!(
                "# ESP SA 0x{:08x} {} -> {} skipped: {why}",
                sa.spi, sa.src.ip, sa.dst.ip
            )),
        }
        out.push('\n');
    }
    out
}

fn esp_sa_line(sa: &sadb::Sa) -> Result<String, String> {
    let proto = match (sa.src.ip, sa.dst.ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "IPv4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "IPv6",
        _ => return Err("source and destination are of different families".to_string()),
    };
    let encr = sa
        .encr()
        .ok_or_else(|| format!("unknown encryption algorithm {}", sa.encr_alg))?;
    let encr_name = encr.wireshark_name().ok_or_else(|| {
        format!(
            "Wireshark's ESP dissector has no {} decryption",
            encr.display_name()
        )
    })?;
    let auth = sa
        .auth()
        .ok_or_else(|| format!("unknown authentication algorithm {}", sa.auth_alg))?;
    let encr_key = if encr == EncrAlg::Null {
        String::new()
    } else {
        hex_key(sa.encr_key.as_ref())
    };
    let auth_key = if auth == AuthAlg::None {
        String::new()
    } else {
        hex_key(sa.auth_key.as_ref())
    };
    Ok(format!(
        "\"{proto}\",\"{}\",\"{}\",\"0x{:08x}\",\"{encr_name}\",\"{encr_key}\",\"{}\",\"{auth_key}\"",
        sa.src.ip,
        sa.dst.ip,
        sa.spi,
        auth.wireshark_name()
    ))
}

/// `0x<hex>`, or empty when there is no key.
fn hex_key(k: Option<&sadb::KeyMaterial>) -> String {
    let Some(k) = k.filter(|k| !k.is_empty()) else {
        return String::new();
    };
    let mut s = String::with_capacity(2 + 2 * k.len());
    s.push_str("0x");
    for b in k.expose() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The largest datagram read: more than any UDP payload.
const MAX_DATAGRAM: usize = 65_536;

/// One end of a qemu `-netdev dgram`-compatible link: one raw Ethernet frame per UDP datagram on 127.0.0.1.
///
/// The matching qemu option is
/// `-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=<peer port>,remote.type=inet,remote.host=127.0.0.1,remote.port=<our port>`.
/// Datagrams from any address but the peer's are read and thrown away.
/// The socket is not connected, so a peer that is not there yet costs
/// lost frames, never errors.
#[derive(Debug)]
pub struct UdpLink {
    sock: UdpSocket,
    peer: SocketAddr,
}

impl UdpLink {
    /// Binds `local` (port 0 picks one) and sends to `peer`.
    pub fn bind(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpLink> {
        let sock = UdpSocket::bind(local)?;
        sock.set_nonblocking(true)?;
        Ok(UdpLink { sock, peer })
    }

    /// Changes the peer (for two ends that both bound port 0).
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one frame as one datagram. A full socket buffer
    /// (`WouldBlock`) is an error the caller may treat as a lost frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = self.sock.send_to(frame, self.peer)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "frame sent in part",
            ));
        }
        Ok(())
    }

    /// Non-blocking: None when nothing waits.
    pub fn try_recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.peer => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sadb::pfkey::{Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt};
    use sadb::{Config, Jitter, KeyMaterial, Sadb};

    /// A frame of `len` bytes numbered `n` in its first 8 bytes.
    fn frame(n: u64, len: usize) -> Vec<u8> {
        let mut f = vec![0xa5u8; len.max(8)];
        f[..8].copy_from_slice(&n.to_be_bytes());
        f
    }

    fn number(f: &[u8]) -> u64 {
        u64::from_be_bytes(f[..8].try_into().unwrap())
    }

    /// Sends `n` frames, one per millisecond, delivering as it goes, then
    /// drains the pipe; returns what came out with the time it came out.
    fn run(faults: Faults, n: u64, len: usize) -> (Vec<(u64, Vec<u8>)>, FaultCounters) {
        let mut p = Pipe::new(faults);
        let mut out = Vec::new();
        for i in 0..n {
            p.send(frame(i, len), i);
            for f in p.deliver(i) {
                out.push((i, f));
            }
        }
        drain(&mut p, &mut out);
        (out, p.counters().clone())
    }

    fn drain(p: &mut Pipe, out: &mut Vec<(u64, Vec<u8>)>) {
        while let Some(t) = p.next_due() {
            for f in p.deliver(t) {
                out.push((t, f));
            }
        }
        assert_eq!(p.in_flight(), 0);
    }

    /// Sends `n` frames at once, then drains.
    fn burst(faults: Faults, n: u64, len: usize) -> (Vec<Vec<u8>>, FaultCounters) {
        let mut p = Pipe::new(faults);
        for i in 0..n {
            p.send(frame(i, len), 0);
        }
        let mut out = Vec::new();
        drain(&mut p, &mut out);
        (
            out.into_iter().map(|(_, f)| f).collect(),
            p.counters().clone(),
        )
    }

    fn all_faults(seed: u64) -> Faults {
        Faults {
            drop: 0.1,
            duplicate: 0.1,
            reorder: 0.2,
            delay: 0.2,
            delay_ms: 5,
            corrupt: 0.1,
            seed,
        }
    }

    fn invariant(c: &FaultCounters) {
        assert_eq!(c.delivered, c.sent - c.dropped + c.duplicated, "{c:?}");
    }

    #[test]
    fn same_seed_same_output() {
        let a = run(all_faults(7), 2000, 80);
        let b = run(all_faults(7), 2000, 80);
        assert_eq!(a, b);
        let c = run(all_faults(8), 2000, 80);
        assert_ne!(a.0, c.0, "another seed should give another run");
    }

    #[test]
    fn no_faults_is_a_wire() {
        let (out, c) = run(
            Faults {
                seed: 3,
                ..Faults::default()
            },
            500,
            60,
        );
        assert_eq!(out.len(), 500);
        for (i, (t, f)) in out.iter().enumerate() {
            assert_eq!(*t, i as u64);
            assert_eq!(*f, frame(i as u64, 60));
        }
        assert_eq!(
            c,
            FaultCounters {
                sent: 500,
                delivered: 500,
                ..FaultCounters::default()
            }
        );
    }

    #[test]
    fn drop_alone() {
        let (out, c) = run(
            Faults {
                drop: 1.0,
                ..Faults::default()
            },
            300,
            60,
        );
        assert!(out.is_empty());
        assert_eq!(
            c,
            FaultCounters {
                sent: 300,
                dropped: 300,
                ..FaultCounters::default()
            }
        );
        let (out, c) = run(
            Faults {
                drop: 0.0,
                ..Faults::default()
            },
            300,
            60,
        );
        assert_eq!(out.len(), 300);
        assert_eq!(c.dropped, 0);
    }

    #[test]
    fn duplicate_alone() {
        let (out, c) = run(
            Faults {
                duplicate: 1.0,
                ..Faults::default()
            },
            300,
            60,
        );
        assert_eq!(out.len(), 600);
        for (i, pair) in out.chunks(2).enumerate() {
            assert_eq!(pair[0].1, frame(i as u64, 60));
            assert_eq!(pair[1].1, frame(i as u64, 60), "the copy comes right after");
        }
        assert_eq!(
            c,
            FaultCounters {
                sent: 300,
                delivered: 600,
                duplicated: 300,
                ..FaultCounters::default()
            }
        );
        let (out, c) = run(
            Faults {
                duplicate: 0.0,
                seed: 1,
                ..Faults::default()
            },
            300,
            60,
        );
        assert_eq!(out.len(), 300);
        assert_eq!(c.duplicated, 0);
    }

    #[test]
    fn reorder_alone_swaps_pairs() {
        let (out, c) = burst(
            Faults {
                reorder: 1.0,
                ..Faults::default()
            },
            6,
            60,
        );
        let order: Vec<u64> = out.iter().map(|f| number(f)).collect();
        assert_eq!(order, [1, 0, 3, 2, 5, 4]);
        assert_eq!(
            c,
            FaultCounters {
                sent: 6,
                delivered: 6,
                reordered: 3,
                ..FaultCounters::default()
            }
        );
        let (out, c) = burst(
            Faults {
                reorder: 0.0,
                ..Faults::default()
            },
            6,
            60,
        );
        let order: Vec<u64> = out.iter().map(|f| number(f)).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        assert_eq!(c.reordered, 0);
    }

    #[test]
    fn reorder_with_nothing_following_is_delivered_late_not_lost() {
        let mut p = Pipe::new(Faults {
            reorder: 1.0,
            ..Faults::default()
        });
        p.send(frame(0, 60), 10);
        assert_eq!(p.next_due(), Some(10));
        assert!(p.deliver(9).is_empty());
        assert_eq!(p.deliver(10), vec![frame(0, 60)]);
        assert_eq!(p.counters().reordered, 0, "nothing was swapped");
        // An odd burst: the last frame has no partner.
        let (out, c) = burst(
            Faults {
                reorder: 1.0,
                ..Faults::default()
            },
            5,
            60,
        );
        let order: Vec<u64> = out.iter().map(|f| number(f)).collect();
        assert_eq!(order, [1, 0, 3, 2, 4]);
        assert_eq!(c.reordered, 2);
        invariant(&c);
    }

    #[test]
    fn reordered_frame_waits_for_a_frame_that_survives() {
        // Frame 0 is held; frames sent after it are dropped until one is not.
        let mut p = Pipe::new(Faults {
            reorder: 1.0,
            ..Faults::default()
        });
        p.send(frame(0, 60), 0);
        p.faults.drop = 1.0;
        p.send(frame(1, 60), 0);
        p.faults.drop = 0.0;
        p.send(frame(2, 60), 0);
        let order: Vec<u64> = p.deliver(0).iter().map(|f| number(f)).collect();
        assert_eq!(order, [2, 0]);
        assert_eq!(p.counters().reordered, 1);
    }

    #[test]
    fn delay_alone() {
        let (out, c) = run(
            Faults {
                delay: 1.0,
                delay_ms: 20,
                ..Faults::default()
            },
            100,
            60,
        );
        assert_eq!(out.len(), 100);
        for (i, (t, f)) in out.iter().enumerate() {
            assert_eq!(*t, i as u64 + 20, "frame {i} came out at {t}");
            assert_eq!(number(f), i as u64);
        }
        assert_eq!(
            c,
            FaultCounters {
                sent: 100,
                delivered: 100,
                delayed: 100,
                ..FaultCounters::default()
            }
        );
        let (out, c) = run(
            Faults {
                delay: 0.0,
                delay_ms: 20,
                ..Faults::default()
            },
            100,
            60,
        );
        assert!(out.iter().enumerate().all(|(i, (t, _))| *t == i as u64));
        assert_eq!(c.delayed, 0);
    }

    #[test]
    fn delay_really_delays() {
        let mut p = Pipe::new(Faults {
            delay: 1.0,
            delay_ms: 30,
            ..Faults::default()
        });
        p.send(frame(0, 60), 100);
        assert_eq!(p.next_due(), Some(130));
        assert!(p.deliver(100).is_empty());
        assert!(p.deliver(129).is_empty());
        assert_eq!(p.deliver(130), vec![frame(0, 60)]);
        assert_eq!(p.next_due(), None);
        // A delayed frame lets an undelayed later one overtake it.
        let mut p = Pipe::new(Faults {
            delay: 1.0,
            delay_ms: 30,
            ..Faults::default()
        });
        p.send(frame(0, 60), 0);
        p.faults.delay = 0.0;
        p.send(frame(1, 60), 1);
        assert_eq!(p.deliver(1), vec![frame(1, 60)]);
        assert_eq!(p.deliver(30), vec![frame(0, 60)]);
    }

    #[test]
    fn corrupt_alone_flips_one_byte_past_the_headers() {
        let len = 120;
        let (out, c) = run(
            Faults {
                corrupt: 1.0,
                seed: 11,
                ..Faults::default()
            },
            500,
            len,
        );
        assert_eq!(out.len(), 500);
        let mut positions = std::collections::HashSet::new();
        for (i, (_, f)) in out.iter().enumerate() {
            let orig = frame(i as u64, len);
            assert_eq!(f.len(), len);
            let diff: Vec<usize> = (0..len).filter(|&k| f[k] != orig[k]).collect();
            assert_eq!(diff.len(), 1, "frame {i}: {diff:?}");
            assert!(diff[0] >= CORRUPT_FROM);
            positions.insert(diff[0]);
        }
        assert!(
            positions.len() > 40,
            "positions should spread: {}",
            positions.len()
        );
        assert_eq!(
            c,
            FaultCounters {
                sent: 500,
                delivered: 500,
                corrupted: 500,
                ..FaultCounters::default()
            }
        );
        let (out, c) = run(
            Faults {
                corrupt: 0.0,
                ..Faults::default()
            },
            50,
            len,
        );
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, (_, f))| *f == frame(i as u64, len)));
        assert_eq!(c.corrupted, 0);
    }

    #[test]
    fn short_frames_are_never_corrupted() {
        for len in [8, 20, CORRUPT_FROM] {
            let (out, c) = run(
                Faults {
                    corrupt: 1.0,
                    ..Faults::default()
                },
                50,
                len,
            );
            assert!(out
                .iter()
                .enumerate()
                .all(|(i, (_, f))| *f == frame(i as u64, len)));
            assert_eq!(c.corrupted, 0);
        }
        let (out, c) = run(
            Faults {
                corrupt: 1.0,
                ..Faults::default()
            },
            50,
            CORRUPT_FROM + 1,
        );
        assert!(out.iter().all(|(_, f)| f[CORRUPT_FROM] != 0xa5));
        assert_eq!(c.corrupted, 50);
        // Empty frames pass too.
        let mut p = Pipe::new(Faults {
            corrupt: 1.0,
            ..Faults::default()
        });
        p.send(Vec::new(), 0);
        assert_eq!(p.deliver(0), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn counters_add_up_under_every_fault() {
        for seed in [1, 2, 3] {
            let (out, c) = run(all_faults(seed), 10_000, 100);
            invariant(&c);
            assert_eq!(out.len() as u64, c.delivered);
            assert_eq!(c.sent, 10_000);
            for n in [c.dropped, c.duplicated, c.reordered, c.delayed, c.corrupted] {
                assert!(n > 300, "every fault should happen: {c:?}");
            }
            // Exactly `corrupted` frames differ from what was sent.
            let damaged = out
                .iter()
                .filter(|(_, f)| *f != frame(number(f), 100))
                .count() as u64;
            let dup_damaged = out
                .windows(2)
                .filter(|w| w[0].1 == w[1].1 && w[0].1 != frame(number(&w[0].1), 100))
                .count() as u64;
            assert_eq!(damaged - dup_damaged, c.corrupted);
        }
        // Bursts too (reorder swaps more there).
        let (out, c) = burst(all_faults(4), 10_000, 100);
        invariant(&c);
        assert_eq!(out.len() as u64, c.delivered);
    }

    #[test]
    fn rates_out_of_range_do_not_panic() {
        let f = Faults {
            drop: f64::NAN,
            duplicate: 2.0,
            reorder: -1.0,
            delay: f64::INFINITY,
            delay_ms: u64::MAX,
            corrupt: 7.0,
            seed: 0,
        };
        let mut p = Pipe::new(f);
        p.send(frame(1, 100), u64::MAX - 1);
        let out = p.deliver(u64::MAX);
        assert_eq!(out.len(), 2);
        invariant(p.counters());
    }

    #[test]
    fn parse_good() {
        let f = Faults::parse(&[
            "drop",
            "0.1",
            "duplicate",
            "0.05",
            "reorder",
            "0.1",
            "delay",
            "0.2",
            "20ms",
            "corrupt",
            "0.01",
            "seed",
            "7",
        ])
        .unwrap();
        assert_eq!(
            f,
            Faults {
                drop: 0.1,
                duplicate: 0.05,
                reorder: 0.1,
                delay: 0.2,
                delay_ms: 20,
                corrupt: 0.01,
                seed: 7
            }
        );
        assert_eq!(Faults::parse(&[]).unwrap(), Faults::default());
        assert_eq!(
            Faults::parse(&["seed", "3", "DROP", "1"]).unwrap(),
            Faults {
                drop: 1.0,
                seed: 3,
                ..Faults::default()
            }
        );
        assert_eq!(Faults::parse(&["delay", "1", "2s"]).unwrap().delay_ms, 2000);
        assert_eq!(Faults::parse(&["delay", "0.5", "15"]).unwrap().delay_ms, 15);
        let f = all_faults(9);
        let text = f.to_string();
        assert_eq!(
            Faults::parse(&text.split_whitespace().collect::<Vec<_>>()).unwrap(),
            f
        );
    }

    #[test]
    fn parse_bad_names_the_word() {
        let cases: &[(&[&str], &str)] = &[
            (&["lose", "0.1"], "\"lose\""),
            (&["drop"], "\"drop\""),
            (&["drop", "1.5"], "\"1.5\""),
            (&["drop", "-0.1"], "\"-0.1\""),
            (&["drop", "lots"], "\"lots\""),
            (&["corrupt", "NaN"], "\"NaN\""),
            (&["delay", "0.2"], "\"delay\""),
            (&["delay", "0.2", "fast"], "\"fast\""),
            (&["delay", "0.2", "ms"], "\"ms\""),
            (&["delay", "0.2", "-5ms"], "\"-5ms\""),
            (&["seed", "x7"], "\"x7\""),
            (&["seed", "-1"], "\"-1\""),
            (&["seed"], "\"seed\""),
            (&["drop", "0.1", "drop", "0.2"], "\"drop\""),
        ];
        for (words, needle) in cases {
            let e = Faults::parse(words).unwrap_err();
            assert!(e.contains(needle), "{words:?}: {e}");
        }
    }

    #[test]
    fn capture_reads_back() {
        let dir = std::env::temp_dir().join(format!("sim-link-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        let frames: Vec<(Vec<u8>, u64)> = vec![
            (frame(1, 60), 0),
            (frame(2, 1514), 1_234),
            (frame(3, 9000), 86_400_001),
        ];
        {
            let mut cap = Capture::create(&path).unwrap();
            for (f, t) in &frames {
                cap.write(f, *t).unwrap();
            }
            cap.flush().unwrap();
        }
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let mut got = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert_eq!(p.orig_len as usize, p.data.len());
            got.push((p.data.to_vec(), p.timestamp.as_millis() as u64));
        }
        assert_eq!(got, frames);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn capture_refuses_times_pcap_cannot_hold() {
        let dir = std::env::temp_dir().join(format!("sim-link-capture-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cap = Capture::create(&dir.join("t.pcap")).unwrap();
        assert!(cap.write(&frame(1, 60), u64::MAX).is_err());
        cap.write(&frame(1, 60), 5).unwrap();
        drop(cap);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn sadb_with(specs: &[(u32, &str, &str, EncrAlg, usize, AuthAlg, usize)]) -> Sadb {
        let mut db = Sadb::new(Config {
            jitter: Jitter::Off,
            ..Config::default()
        });
        for &(spi, src, dst, encr, ebytes, auth, abytes) in specs {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut m = Message::new(MsgType::Add, satype::ESP, 1, 1)
                .with(SaExt {
                    spi,
                    replay: 32,
                    state: 1,
                    auth: auth.id(Dialect::Illumos).unwrap(),
                    encrypt: encr.id(Dialect::Illumos).unwrap(),
                    flags: 0,
                })
                .with(Extension::Address(
                    ExtKind::AddressSrc,
                    Address::new(src, 0, 0),
                ))
                .with(Extension::Address(
                    ExtKind::AddressDst,
                    Address::new(dst, 0, 0),
                ));
            if abytes > 0 {
                let k: Vec<u8> = (0..abytes as u8).map(|i| 0x40 + i).collect();
                m = m.with(Extension::Key(
                    ExtKind::KeyAuth,
                    Key {
                        bits: (abytes * 8) as u16,
                        reserved: 0,
                        material: KeyMaterial::new(k),
                    },
                ));
            }
            if ebytes > 0 {
                let k: Vec<u8> = (0..ebytes as u8).map(|i| 0x10 + i).collect();
                m = m.with(Extension::Key(
                    ExtKind::KeyEncrypt,
                    Key {
                        bits: (ebytes * 8) as u16,
                        reserved: 0,
                        material: KeyMaterial::new(k),
                    },
                ));
            }
            let r = db.handle(&m, 1_700_000_000);
            let reply = r.reply().unwrap();
            assert_eq!(
                (reply.errno, reply.reserved),
                (0, 0),
                "ADD of SPI {spi:#x} refused"
            );
        }
        db
    }

    fn hexrun(start: u8, n: usize) -> String {
        (0..n as u8).map(|i| format!("{:02x}", start + i)).collect()
    }

    #[test]
    fn esp_sa_lines() {
        let db = sadb_with(&[
            (
                0x1000,
                "192.0.2.1",
                "192.0.2.2",
                EncrAlg::AesCbc,
                16,
                AuthAlg::HmacSha256,
                32,
            ),
            (
                0x2000,
                "2001:db8::2",
                "2001:db8::1",
                EncrAlg::AesGcm16,
                20,
                AuthAlg::None,
                0,
            ),
            (
                0x3000,
                "192.0.2.2",
                "192.0.2.1",
                EncrAlg::Null,
                0,
                AuthAlg::HmacSha1,
                20,
            ),
            (
                0x4000,
                "192.0.2.2",
                "192.0.2.1",
                EncrAlg::AesCcm16,
                19,
                AuthAlg::None,
                0,
            ),
        ]);
        let mut sas: Vec<&sadb::Sa> = db.iter().map(|(_, sa)| sa).collect();
        sas.sort_by_key(|sa| sa.spi);
        let text = esp_sa_file(sas);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            format!(
                "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00001000\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"",
                hexrun(0x10, 16),
                hexrun(0x40, 32)
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "\"IPv6\",\"2001:db8::2\",\"2001:db8::1\",\"0x00002000\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"",
                hexrun(0x10, 20)
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "\"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0x00003000\",\"NULL\",\"\",\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"",
                hexrun(0x40, 20)
            )
        );
        assert!(
            lines[3].starts_with("# ESP SA 0x00004000 192.0.2.2 -> 192.0.2.1 skipped:"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains("AES-CCM-16"));
        assert!(
            !lines[3].contains(&hexrun(0x10, 4)),
            "a skipped SA's key must not be written"
        );
        for l in &lines[..3] {
            assert_eq!(l.split("\",\"").count(), 8, "{l}");
        }
        assert_eq!(esp_sa_file(std::iter::empty()), "");
    }

    #[test]
    fn esp_sa_leaves_out_ah() {
        let mut db = sadb_with(&[]);
        let m = Message::new(MsgType::Add, satype::AH, 1, 1)
            .with(SaExt {
                spi: 0x5000,
                replay: 32,
                state: 1,
                auth: AuthAlg::HmacMd5.id(Dialect::Illumos).unwrap(),
                encrypt: 0,
                flags: 0,
            })
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new("192.0.2.1".parse().unwrap(), 0, 0),
            ))
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new("192.0.2.2".parse().unwrap(), 0, 0),
            ))
            .with(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: 128,
                    reserved: 0,
                    material: KeyMaterial::new(vec![0x33; 16]),
                },
            ));
        let r = db.handle(&m, 1_700_000_000);
        assert_eq!(r.reply().unwrap().errno, 0);
        assert_eq!(db.len(), 1);
        assert_eq!(esp_sa_file(db.iter().map(|(_, sa)| sa)), "");
    }

    #[test]
    fn udp_link_exchanges_frames() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = UdpLink::bind(lo, lo).unwrap();
        let b = UdpLink::bind(lo, a.local_addr().unwrap()).unwrap();
        a.set_peer(b.local_addr().unwrap());
        assert_eq!(a.try_recv().unwrap(), None);
        let f1 = frame(1, 1514);
        let f2 = frame(2, 60);
        a.send(&f1).unwrap();
        b.send(&f2).unwrap();
        let got_b = wait(&b);
        let got_a = wait(&a);
        assert_eq!(got_b, f1);
        assert_eq!(got_a, f2);
        assert_eq!(b.try_recv().unwrap(), None);

        // A stranger's datagram is ignored.
        let stranger = UdpSocket::bind(lo).unwrap();
        stranger
            .send_to(b"not the peer", b.local_addr().unwrap())
            .unwrap();
        a.send(&frame(3, 60)).unwrap();
        assert_eq!(wait(&b), frame(3, 60));
    }

    fn wait(l: &UdpLink) -> Vec<u8> {
        for _ in 0..2000 {
            if let Some(f) = l.try_recv().unwrap() {
                return f;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no frame arrived");
    }
}
