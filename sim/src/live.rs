//! Live mode (`sim live CONFIG`): simulated hosts on the wall clock with
//! real links: Ethernet frames over UDP (qemu's `-netdev dgram` wire
//! format), TAP devices, and in-process pipes between hosts of one
//! process. Each host's PF_KEY socket is served as `sadbd` serves one, so
//! `ipseckey --socket PATH -f FILE` loads its SAs; traffic and counters
//! are driven by line commands on standard input (see [`HELP`]).
//!
//! The data path: frames are read in batches into a [`Slots`] pool with
//! room in front and behind, forwarded packets are protected or opened in
//! place (one flow-cache lookup for the outbound SAs, the engine's cached
//! cipher state) and written out in batches; anything unusual (ARP and
//! neighbour discovery, packets for the host itself, a neighbour not yet
//! resolved, policy rules, NAT, tracing) takes the host's own path
//! ([`Host::input`]), which allocates but knows everything.
//!
//! Threads: each queue of a multi-queue TAP is read by its own thread;
//! the main thread keeps the UDP links, one-queue TAPs, in-process
//! links, PF_KEY sockets and commands.
//! Hosts are shared behind a lock: a batch's decisions and the SADB's
//! share (sequence numbers, replay checks, lifetimes) run under it, the
//! crypto outside it with the SA's shared cipher state (`Lane::batch`).
//!
//! A host is one of: an ordinary host or gateway with interfaces on the
//! links (a TAP as its interface: role (a); as a gateway's inner side,
//! with `proxy` prefixes answered by ARP/ND: role (b)); or a `bits` host,
//! a bump in the stack (RFC 4301 3.3) between a TAP and an outer link: it
//! has no address, bridges frames, and protects the IP packets of the
//! kernel behind the TAP with the SAs of that kernel's addresses
//! (transport mode for a kernel without IPsec).

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use esp_ah::{DropReason, InboundJob, OutboundJob, PacketBuf, Verdict};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sadb::pfkey::{satype, Message};
use sadb::{Config, Jitter, Now, SaId};
use serde_json::json;

use crate::daemon::{listen_on, signal_wakeup, wall_clock, DaemonConfig, Server, Service};
use crate::host::{Host, Tx};
use crate::keysock::{Outgoing, SockId};
use crate::lab::KeyLoader;
use crate::link::{esp_sa_file, Capture};
use crate::netio::{Slots, TapOrigin, TapPort, UdpPort, BATCH, FRONT};
use crate::policy::Action;
use crate::stack::{self, Iface, Mac};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const PROTO_ESP: u8 = 50;
const PROTO_AH: u8 = 51;
/// Flows remembered per host before the cache starts over.
const FLOW_CACHE: usize = 4096;
/// Batches read from one port per wake-up before the others get a turn.
const BATCHES_PER_WAKE: usize = 8;
/// The traffic generator's payload starts with this, then the job number
/// and the packet's index, so replies are matched exactly.
const MAGIC: &[u8; 4] = b"SIMT";
/// Source port of the UDP traffic generator.
const GEN_PORT: u16 = 40000;
/// Packets a traffic job may send (it keeps one send time per packet).
const MAX_COUNT: u64 = 10_000_000;

/// The commands typed to a live process.
pub const HELP: &str = "\
commands (one per line):
  ping HOST ADDR [count N] [size S] [interval 10ms] [timeout 1s]
  udp HOST ADDR PORT [count N] [size S] [rate PPS | interval D] [timeout 1s]
      (port 7 echoes, so replies and round trips are counted; 9 discards)
  counters [json]      every host's, SA's and port's counters
  peer LINK ADDR:PORT  send a udp link's frames to another peer
  trace on|off         print each packet's path (slow: every packet takes the host's full path)
  keys HOST ... end    ipseckey commands run on HOST
  flush                write captures to disk, with their esp_sa key files
  sleep DURATION       wait (real time) before the next command
  help, quit";

/// One end of a link: a host and the addresses of its interface there
/// (none for a `bits` host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub host: String,
    pub addrs: Vec<(IpAddr, u8)>,
}

/// What carries a link's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// Two hosts of this process.
    Pipe { a: End, b: End },
    /// One host here, the peer elsewhere (another `sim live`, a qemu VM).
    Udp {
        end: End,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// One host here, the kernel on the TAP's other side.
    Tap {
        end: End,
        ifname: String,
        queues: usize,
        /// Ask for the kernel's checksum and segmentation offload.
        offload: bool,
        proxy: Vec<(IpAddr, u8)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub name: String,
    pub kind: LinkKind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSpec {
    pub name: String,
    pub forward: bool,
    /// Next hops (at most one per family).
    pub gateways: Vec<IpAddr>,
    pub esn: bool,
    /// A bump in the stack between a TAP and an outer link.
    pub bits: bool,
    /// Addresses the host calls its own in its SADB (a `bits` host: the
    /// addresses of the kernel behind it).
    pub local: Vec<IpAddr>,
    /// Where its PF_KEY socket is served (else `--serve DIR`/HOST.sock).
    pub socket: Option<PathBuf>,
    pub line: usize,
}

/// A live configuration: the lab language's `host`, `link`, `policy`,
/// `keys` and `capture` statements, plus `udp` and `tap` links.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec {
    pub hosts: Vec<HostSpec>,
    pub links: Vec<LinkSpec>,
    /// (link, file, line)
    pub captures: Vec<(String, PathBuf, usize)>,
    /// (host, rules text, line)
    pub policies: Vec<(String, String, usize)>,
    /// (host, ipseckey commands, line)
    pub keys: Vec<(String, String, usize)>,
}

/// A configuration error: the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match line { 0 => msg.clone(), n => format!("line {n}: {msg}") })]
pub struct LiveError {
    pub line: usize,
    pub msg: String,
}

fn err(line: usize, msg: impl Into<String>) -> LiveError {
    LiveError {
        line,
        msg: msg.into(),
    }
}

fn parse_prefixes(spec: &str) -> Result<Vec<(IpAddr, u8)>, String> {
    spec.split(',')
        .map(|a| {
            let (ip, p) = a
                .split_once('/')
                .ok_or_else(|| format!("{a}: needs /prefix"))?;
            let ip: IpAddr = ip.parse().map_err(|_| format!("{ip}: not an address"))?;
            let p: u8 = p
                .parse()
                .ok()
                .filter(|&p| p <= if ip.is_ipv4() { 32 } else { 128 })
                .ok_or_else(|| format!("{p}: not a prefix length"))?;
            Ok((ip, p))
        })
        .collect()
}

fn parse_end(spec: &str) -> Result<End, String> {
    match spec.split_once(':') {
        Some((h, addrs)) => Ok(End {
            host: h.to_string(),
            addrs: parse_prefixes(addrs)?,
        }),
        None => Ok(End {
            host: spec.to_string(),
            addrs: Vec::new(),
        }),
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Parses a live configuration (see `labs/README.md`, "Live mode").
pub fn parse(text: &str) -> Result<Spec, LiveError> {
    let mut spec = Spec::default();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let line = n + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        let Some(&cmd) = words.first() else { continue };
        if cmd.starts_with('#') {
            continue;
        }
        let mut block = || {
            let mut b = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "end" {
                    return Ok(b);
                }
                b.push_str(l);
                b.push('\n');
            }
            Err(err(line, format!("{cmd} block without its end line")))
        };
        match cmd {
            "host" => {
                let name = words.get(1).ok_or_else(|| err(line, "host needs a name"))?;
                if !valid_name(name) {
                    return Err(err(
                        line,
                        format!("bad host name {name:?} (letters, digits, - _ .)"),
                    ));
                }
                if spec.hosts.iter().any(|h| h.name == *name) {
                    return Err(err(line, format!("host {name} given twice")));
                }
                let mut h = HostSpec {
                    name: name.to_string(),
                    line,
                    ..HostSpec::default()
                };
                let mut it = words[2..].iter();
                while let Some(&w) = it.next() {
                    let mut value = |what: &str| {
                        it.next()
                            .copied()
                            .ok_or_else(|| err(line, format!("{w} needs {what}")))
                    };
                    match w {
                        "forward" => h.forward = true,
                        "esn" => h.esn = true,
                        "bits" => h.bits = true,
                        "gateway" => {
                            let v = value("an address")?;
                            let g: IpAddr = v
                                .parse()
                                .map_err(|_| err(line, format!("gateway {v}: not an address")))?;
                            if h.gateways.iter().any(|o| o.is_ipv4() == g.is_ipv4()) {
                                return Err(err(line, "one gateway per address family"));
                            }
                            h.gateways.push(g);
                        }
                        "local" => {
                            for a in value("addresses")?.split(',') {
                                h.local.push(a.parse().map_err(|_| {
                                    err(line, format!("local {a}: not an address"))
                                })?);
                            }
                        }
                        "socket" => h.socket = Some(PathBuf::from(value("a path")?)),
                        _ => return Err(err(line, format!("unknown host option {w}"))),
                    }
                }
                spec.hosts.push(h);
            }
            "link" | "udp" | "tap" => {
                let name = words
                    .get(1)
                    .ok_or_else(|| err(line, format!("{cmd} needs a name")))?;
                if !valid_name(name) {
                    return Err(err(line, format!("bad link name {name:?}")));
                }
                if spec.links.iter().any(|l| l.name == *name) {
                    return Err(err(line, format!("link {name} given twice")));
                }
                let kind = match (cmd, &words[2..]) {
                    ("link", [a, b]) => LinkKind::Pipe {
                        a: parse_end(a).map_err(|e| err(line, e))?,
                        b: parse_end(b).map_err(|e| err(line, e))?,
                    },
                    ("link", _) => {
                        return Err(err(
                            line,
                            "link NAME HOST:ADDR/P HOST:ADDR/P (in-process; faults are for labs)",
                        ))
                    }
                    ("udp", [end, local, peer]) => LinkKind::Udp {
                        end: parse_end(end).map_err(|e| err(line, e))?,
                        local: local
                            .parse()
                            .map_err(|_| err(line, format!("{local}: not IP:PORT")))?,
                        peer: peer
                            .parse()
                            .map_err(|_| err(line, format!("{peer}: not IP:PORT")))?,
                    },
                    ("udp", _) => {
                        return Err(err(
                            line,
                            "udp NAME HOST[:ADDR/P,...] LOCAL-IP:PORT PEER-IP:PORT",
                        ))
                    }
                    ("tap", [end, ifname, opts @ ..]) => {
                        let (mut queues, mut offload, mut proxy) = (1usize, true, Vec::new());
                        let mut it = opts.iter();
                        while let Some(&o) = it.next() {
                            let v = it
                                .next()
                                .ok_or_else(|| err(line, format!("{o} needs a value")))?;
                            match o {
                                "queues" => {
                                    queues = v
                                        .parse()
                                        .ok()
                                        .filter(|q| (1..=16).contains(q))
                                        .ok_or_else(|| err(line, "queues 1..16"))?
                                }
                                "offload" => {
                                    offload = match *v {
                                        "on" => true,
                                        "off" => false,
                                        _ => return Err(err(line, "offload on|off")),
                                    }
                                }
                                "proxy" => proxy = parse_prefixes(v).map_err(|e| err(line, e))?,
                                _ => return Err(err(line, format!("unknown tap option {o}"))),
                            }
                        }
                        LinkKind::Tap {
                            end: parse_end(end).map_err(|e| err(line, e))?,
                            ifname: ifname.to_string(),
                            queues,
                            offload,
                            proxy,
                        }
                    }
                    _ => {
                        return Err(err(
                            line,
                            "tap NAME HOST[:ADDR/P,...] IFNAME [queues N] [offload on|off] [proxy PREFIX,...]",
                        ))
                    }
                };
                spec.links.push(LinkSpec {
                    name: name.to_string(),
                    kind,
                    line,
                });
            }
            "capture" => {
                let [_, link, file] = words[..] else {
                    return Err(err(line, "capture LINK FILE"));
                };
                spec.captures
                    .push((link.to_string(), PathBuf::from(file), line));
            }
            "policy" | "keys" => {
                let host = words
                    .get(1)
                    .ok_or_else(|| err(line, format!("{cmd} HOST ... end")))?
                    .to_string();
                let b = block()?;
                if cmd == "policy" {
                    spec.policies.push((host, b, line));
                } else {
                    spec.keys.push((host, b, line));
                }
            }
            _ => return Err(err(line, format!("unknown statement {cmd}"))),
        }
    }
    check(&spec)?;
    Ok(spec)
}

/// Cross-checks: every end names a host; a `bits` host has exactly one
/// TAP and one other link and no addresses; other hosts need addresses.
fn check(spec: &Spec) -> Result<(), LiveError> {
    let host = |name: &str, line: usize| {
        spec.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| err(line, format!("no host named {name}")))
    };
    for l in &spec.links {
        let ends: Vec<&End> = match &l.kind {
            LinkKind::Pipe { a, b } => vec![a, b],
            LinkKind::Udp { end, .. } | LinkKind::Tap { end, .. } => vec![end],
        };
        for e in ends {
            let h = host(&e.host, l.line)?;
            if h.bits && !e.addrs.is_empty() {
                return Err(err(
                    l.line,
                    format!("{} is a bits host: its links take no addresses", h.name),
                ));
            }
            if !h.bits && e.addrs.is_empty() {
                return Err(err(
                    l.line,
                    format!("{}: the interface needs addresses (HOST:ADDR/P)", e.host),
                ));
            }
        }
    }
    for h in spec.hosts.iter().filter(|h| h.bits) {
        let mine: Vec<&LinkSpec> = spec
            .links
            .iter()
            .filter(|l| match &l.kind {
                LinkKind::Pipe { a, b } => a.host == h.name || b.host == h.name,
                LinkKind::Udp { end, .. } | LinkKind::Tap { end, .. } => end.host == h.name,
            })
            .collect();
        let taps = mine
            .iter()
            .filter(|l| matches!(l.kind, LinkKind::Tap { .. }))
            .count();
        if mine.len() != 2 || taps != 1 {
            return Err(err(
                h.line,
                format!("bits host {} needs exactly one tap link (the kernel's side) and one other link (the wire)", h.name),
            ));
        }
    }
    for (link, _, line) in &spec.captures {
        if !spec.links.iter().any(|l| l.name == *link) {
            return Err(err(*line, format!("no link named {link}")));
        }
    }
    for (h, _, line) in spec.policies.iter().chain(&spec.keys) {
        host(h, *line)?;
    }
    Ok(())
}

/// What a port saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Frames the device or socket refused (full buffer, TAP down).
    pub lost_out: u64,
}

/// [`PortCounters`] that every thread adds to.
#[derive(Debug, Default)]
struct PortStats {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    lost_out: AtomicU64,
}

impl PortStats {
    fn add_in(&self, frames: u64, bytes: u64) {
        self.frames_in.fetch_add(frames, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    fn add_out(&self, frames: u64, bytes: u64, lost: u64) {
        self.frames_out.fetch_add(frames, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        if lost > 0 {
            self.lost_out.fetch_add(lost, Ordering::Relaxed);
        }
    }

    fn get(&self) -> PortCounters {
        PortCounters {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            lost_out: self.lost_out.load(Ordering::Relaxed),
        }
    }
}

enum PortIo {
    Udp(UdpPort),
    /// Shared with the threads that serve its queues.
    Tap(Arc<TapPort>),
    /// An in-process link: frames sent here arrive at port `peer`.
    Pipe {
        peer: usize,
    },
}

/// What every thread knows of a port: whose it is, its counters and its
/// capture.
struct PortShared {
    name: String,
    host: usize,
    /// The host's interface on this port (none for a `bits` host).
    iface: Option<usize>,
    /// For a `bits` host: this is the kernel's side.
    inner: bool,
    c: PortStats,
    /// A TAP's frames read per queue (by the queue's thread).
    queue_in: Vec<AtomicU64>,
    capture: Option<Mutex<(Capture, PathBuf)>>,
}

impl PortShared {
    fn capture(&self, frames: &mut dyn Iterator<Item = &[u8]>) {
        if let Some(cap) = &self.capture {
            let ms = wall_ms();
            let mut c = lock(cap);
            for f in frames {
                let _ = c.0.write(f, ms);
            }
        }
    }
}

struct Port {
    sh: Arc<PortShared>,
    io: PortIo,
    /// Frames that arrived through a pipe, not yet processed.
    queue: VecDeque<Vec<u8>>,
}

/// Locks a mutex; a thread that panicked while holding it left the data
/// as it was (counters, tables), which is still the best there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outbound SAs of a flow: (ESP, AH), either may be absent.
type OutSas = (Option<SaId>, Option<SaId>);

/// A simulated host with what the live data path keeps for it.
pub struct LiveHost {
    pub host: Host,
    bits: bool,
    /// `bits`: the kernel's addresses this host opens packets for.
    local: Vec<IpAddr>,
    /// Port of each interface.
    iface_port: Vec<usize>,
    bits_inner: Option<usize>,
    bits_outer: Option<usize>,
    /// Outbound SAs per (src, dst, protocol), emptied whenever the SADB
    /// may have changed (PF_KEY writes, the ager, EXPIREs from traffic).
    flows: foldhash::HashMap<(IpAddr, IpAddr, u8), OutSas>,
    expires: Vec<Message>,
    /// The socket `keys` blocks are loaded through.
    keysock: SockId,
    /// The next send ticket, and the ticket whose frames may be sent
    /// now (see [`Lane::batch`]).
    tickets: u64,
    turn: u64,
}

/// A host shared by the main thread and its TAP queues' threads.
struct HostCell {
    host: Mutex<LiveHost>,
    /// Signalled when `turn` moves.
    turn: Condvar,
}

impl HostCell {
    fn lock(&self) -> MutexGuard<'_, LiveHost> {
        lock(&self.host)
    }
}

impl LiveHost {
    fn select(&mut self, src: IpAddr, dst: IpAddr, proto: u8) -> (Option<SaId>, Option<SaId>) {
        let k = (src, dst, proto);
        if let Some(v) = self.flows.get(&k) {
            return *v;
        }
        let v = self.host.select(src, dst, proto);
        if self.flows.len() >= FLOW_CACHE {
            self.flows.clear();
        }
        self.flows.insert(k, v);
        v
    }

    /// Whether the fast path may handle this host's packets: the host's
    /// own path is needed for policy, NAT and traces.
    fn fast_ok(&self) -> bool {
        self.host.policy.is_empty() && self.host.nat.is_none() && !self.host.tracing
    }
}

/// PF_KEY clients talk to the host; whatever they change empties the
/// flow cache.
impl Service for LiveHost {
    fn open(&mut self) -> SockId {
        Service::open(&mut self.host)
    }
    fn close(&mut self, sock: SockId) {
        Service::close(&mut self.host, sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        self.flows.clear();
        Service::write(&mut self.host, from, bytes, now)
    }
    fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        self.flows.clear();
        Host::tick(&mut self.host, now)
    }
}

/// What the data path decided for one frame.
enum Fast {
    /// Send `buf[start..start + len]` on port `port`.
    Out {
        port: usize,
        start: usize,
        len: usize,
    },
    /// Consumed (or dropped, and counted).
    Done,
    /// The host's own path must take the untouched frame.
    Slow,
    /// Frames the host's own path produced on the way.
    Txs(Vec<Tx>),
    /// The SADB's share is done; the crypto is left for outside the
    /// host's lock, then [`finish`].
    Defer(Deferred),
}

/// A frame whose crypto runs without the host's lock (the SA's shared
/// cipher state), between [`Engine::outbound_begin`] or
/// [`Engine::inbound_begin`] and their `end`, both under the lock.
///
/// [`Engine::outbound_begin`]: esp_ah::Engine::outbound_begin
/// [`Engine::inbound_begin`]: esp_ah::Engine::inbound_begin
enum Deferred {
    /// Protect the packet at `buf[start..start + len]`, put an Ethernet
    /// header (`dst`, `src`) in front and send it on `port`.
    Seal {
        job: OutboundJob,
        start: usize,
        len: usize,
        dst: Mac,
        src: Mac,
        port: usize,
    },
    /// Open the packet at `buf[start..start + len]`, then go on as `then`.
    Open {
        job: InboundJob,
        start: usize,
        len: usize,
        then: Then,
    },
}

/// Where an opened packet goes.
enum Then {
    /// A host or gateway: to itself, or forwarded.
    Gateway,
    /// A bump in the stack: to the kernel behind it, framed as it came.
    Bits { dst: Mac, src: Mac, to: usize },
}

/// The IP packet of an Ethernet frame at `buf[at..at + avail]`: its
/// start and length (Ethernet padding cut off), if the ethertype and the
/// IP version agree and the length fields fit; IPv4 headers must carry a
/// good checksum.
fn ip_extent(buf: &[u8], ethertype: u16, at: usize, avail: usize) -> Option<usize> {
    let p = buf.get(at..at + avail)?;
    match (ethertype, p.first()? >> 4) {
        (ETH_IPV4, 4) => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            if ihl < 20 || total < ihl || total > p.len() {
                return None;
            }
            let sum = etherparse::checksum::Sum16BitWords::new()
                .add_slice(&p[..ihl])
                .ones_complement();
            (sum == 0).then_some(total)
        }
        (ETH_IPV6, 6) => {
            let plen = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            (p.len() >= 40 + plen).then_some(40 + plen)
        }
        _ => None,
    }
}

/// Writes an Ethernet header in front of the IP packet at
/// `buf[start..start + len]` (ethertype from its version); returns the
/// frame's start and length.
fn put_eth(buf: &mut [u8], start: usize, len: usize, dst: Mac, src: Mac) -> (usize, usize) {
    let s = start - 14;
    let et = if buf[start] >> 4 == 6 {
        ETH_IPV6
    } else {
        ETH_IPV4
    };
    buf[s..s + 6].copy_from_slice(&dst);
    buf[s + 6..s + 12].copy_from_slice(&src);
    buf[s + 12..s + 14].copy_from_slice(&et.to_be_bytes());
    (s, len + 14)
}

/// Protects the packet at `buf[start..start + len]` with the SAs (ESP
/// inside AH); returns where the protected packet is.
fn protect(
    lh: &mut LiveHost,
    buf: &mut [u8],
    start: usize,
    len: usize,
    sas: (Option<SaId>, Option<SaId>),
    now: Now,
) -> Option<(usize, usize)> {
    let mut p = PacketBuf::new(buf, start, len)?;
    let h = &mut lh.host;
    for id in [sas.0, sas.1].into_iter().flatten() {
        match h
            .engine
            .outbound(h.ks.sadb_mut(), id, &mut p, now, &mut lh.expires)
        {
            Verdict::Send => {}
            _ => {
                h.counters.dropped += 1;
                return None;
            }
        }
    }
    Some((p.headroom(), p.len()))
}

/// Begins protecting a packet of `len` bytes with one SA, the crypto
/// left for later (`None`: dropped, counted).
fn begin_seal(lh: &mut LiveHost, id: SaId, len: usize, now: Now) -> Option<OutboundJob> {
    let h = &mut lh.host;
    match h
        .engine
        .outbound_begin(h.ks.sadb_mut(), id, len, now, &mut lh.expires)
    {
        Ok(job) => Some(job),
        Err(_) => {
            h.counters.dropped += 1;
            None
        }
    }
}

/// The one SA of a flow protected by a single SA (a bundle of ESP inside
/// AH is protected in one go, under the lock).
fn single(sas: OutSas) -> Option<SaId> {
    match sas {
        (Some(id), None) | (None, Some(id)) => Some(id),
        _ => None,
    }
}

/// What became of a packet [`Engine::inbound_begin`] would not take.
///
/// [`Engine::inbound_begin`]: esp_ah::Engine::inbound_begin
enum Refused {
    NotIpsec,
    Dropped,
}

/// Begins opening the packet at `buf[start..start + len]`, the crypto
/// left for later.
fn begin_open(lh: &mut LiveHost, packet: &[u8]) -> Result<InboundJob, Refused> {
    let h = &mut lh.host;
    match h.engine.inbound_begin(h.ks.sadb(), packet) {
        Ok(job) => Ok(job),
        Err(Verdict::NotIpsec) => Err(Refused::NotIpsec),
        Err(Verdict::Drop(DropReason::Keepalive) | Verdict::Drop(DropReason::Dummy)) => {
            Err(Refused::Dropped)
        }
        Err(_) => {
            h.counters.dropped += 1;
            Err(Refused::Dropped)
        }
    }
}

/// Opens ESP/AH layers of the packet at `buf[start..start + len]` until
/// clear text; returns where it is and how many layers were opened, or
/// None when the packet was dropped (counted).
fn open(
    lh: &mut LiveHost,
    buf: &mut [u8],
    start: usize,
    len: usize,
    now: Now,
) -> Option<(usize, usize, u32)> {
    let mut p = PacketBuf::new(buf, start, len)?;
    let h = &mut lh.host;
    let mut opened = 0;
    for _ in 0..4 {
        match h
            .engine
            .inbound(h.ks.sadb_mut(), &mut p, now, &mut lh.expires)
        {
            Verdict::Deliver => opened += 1,
            Verdict::NotIpsec => break,
            Verdict::Drop(DropReason::Keepalive) | Verdict::Drop(DropReason::Dummy) => return None,
            _ => {
                h.counters.dropped += 1;
                return None;
            }
        }
    }
    Some((p.headroom(), p.len(), opened))
}

/// The outer destination of a packet protected by `sas`: a tunnel SA's
/// destination, else the packet's own.
fn outer_dst(lh: &LiveHost, sas: (Option<SaId>, Option<SaId>), dst: IpAddr) -> IpAddr {
    for id in [sas.1, sas.0].into_iter().flatten() {
        if let Some(sa) = lh.host.ks.sadb().sa(id) {
            if sa.inner_src.is_some() {
                return sa.dst.ip;
            }
        }
    }
    dst
}

/// Forwards the IP packet at `buf[start..start + len]` (a router's job,
/// IPsec applied as the host's SAs say). `fresh`: nothing has been done to
/// the frame yet, so the host's own path may still take it whole.
/// `defer`: leave the crypto of a single SA for outside the lock.
fn forward(
    lh: &mut LiveHost,
    buf: &mut [u8],
    start: usize,
    len: usize,
    now: Now,
    fresh: bool,
    defer: bool,
) -> Fast {
    let Some(l) = esp_ah::packet::layout(&buf[start..start + len]) else {
        return if fresh { Fast::Slow } else { Fast::Done };
    };
    let sas = lh.select(l.src, l.dst, l.next);
    let dst = outer_dst(lh, sas, l.dst);
    let hop = lh
        .host
        .route(dst)
        .and_then(|(i, hop)| lh.host.ifaces[i].neighbour(hop).map(|m| (i, m)));
    let Some((oi, mac)) = hop else {
        if fresh {
            return Fast::Slow;
        }
        // An opened packet for a neighbour not resolved yet: the host
        // queues it and asks.
        let packet = buf[start..start + len].to_vec();
        return Fast::Txs(lh.host.output(packet, now, &mut lh.expires));
    };
    let Some(&port) = lh.iface_port.get(oi) else {
        return Fast::Done;
    };
    if fresh {
        lh.host.counters.forwarded += 1;
    }
    let src = lh.host.ifaces[oi].mac;
    if let (true, Some(id)) = (defer, single(sas)) {
        return match begin_seal(lh, id, len, now) {
            Some(job) => Fast::Defer(Deferred::Seal {
                job,
                start,
                len,
                dst: mac,
                src,
                port,
            }),
            None => Fast::Done,
        };
    }
    let (s, n) = if sas.0.is_some() || sas.1.is_some() {
        match protect(lh, buf, start, len, sas, now) {
            Some(x) => {
                lh.host.counters.protected += 1;
                x
            }
            None => return Fast::Done,
        }
    } else {
        lh.host.counters.clear_out += 1;
        (start, len)
    };
    let (s, n) = put_eth(buf, s, n, mac, src);
    Fast::Out {
        port,
        start: s,
        len: n,
    }
}

/// The fast path of an ordinary host or gateway for a frame from
/// interface `iface`, at `buf[FRONT..FRONT + len]`.
fn gateway_path(
    lh: &mut LiveHost,
    iface: usize,
    buf: &mut [u8],
    len: usize,
    now: Now,
    defer: bool,
) -> Fast {
    if len < 14 + 20 || !lh.fast_ok() {
        return Fast::Slow;
    }
    let Some(ifc) = lh.host.ifaces.get(iface) else {
        return Fast::Slow;
    };
    if buf[FRONT..FRONT + 6] != ifc.mac {
        return Fast::Slow;
    }
    let et = u16::from_be_bytes([buf[FRONT + 12], buf[FRONT + 13]]);
    let ip = FRONT + 14;
    let Some(total) = ip_extent(buf, et, ip, len - 14) else {
        return Fast::Slow;
    };
    let Some(l) = esp_ah::packet::layout(&buf[ip..ip + total]) else {
        return Fast::Slow;
    };
    if l.fragment {
        return Fast::Slow;
    }
    if !lh.host.owns(l.dst) {
        if !lh.host.forwarding {
            return Fast::Slow;
        }
        return forward(lh, buf, ip, total, now, true, defer);
    }
    if l.next != PROTO_ESP && l.next != PROTO_AH {
        return Fast::Slow;
    }
    if defer {
        return match begin_open(lh, &buf[ip..ip + total]) {
            Ok(job) => Fast::Defer(Deferred::Open {
                job,
                start: ip,
                len: total,
                then: Then::Gateway,
            }),
            Err(Refused::NotIpsec) => Fast::Slow,
            Err(Refused::Dropped) => Fast::Done,
        };
    }
    let Some((s, n, opened)) = open(lh, buf, ip, total, now) else {
        return Fast::Done;
    };
    if opened == 0 {
        return Fast::Slow;
    }
    opened_at_gateway(lh, buf, s, n, now)
}

/// A gateway's packet at `buf[s..s + n]`, opened: for the host itself,
/// or forwarded.
fn opened_at_gateway(lh: &mut LiveHost, buf: &mut [u8], s: usize, n: usize, now: Now) -> Fast {
    lh.host.counters.verified += 1;
    let Some(cl) = esp_ah::packet::layout(&buf[s..s + n]) else {
        return Fast::Done;
    };
    if lh.host.owns(cl.dst) {
        // For the host itself (a ping to a gateway through its tunnel).
        let h = &mut lh.host;
        h.counters.delivered += 1;
        let clear = buf[s..s + n].to_vec();
        let reply = stack::service(&clear);
        h.inbox.push(clear);
        return match reply {
            Some(r) => {
                h.counters.sent += 1;
                Fast::Txs(h.output(r, now, &mut lh.expires))
            }
            None => Fast::Done,
        };
    }
    if !lh.host.forwarding {
        return Fast::Done;
    }
    lh.host.counters.forwarded += 1;
    forward(lh, buf, s, n, now, false, false)
}

/// A bump in the stack: frames from the kernel (`from_inner`) go to the
/// wire with their IP packets protected where an SA (or policy) says so;
/// frames from the wire go to the kernel with ESP/AH opened. Anything not
/// IP (ARP, other ethertypes) crosses untouched.
fn bits_path(
    lh: &mut LiveHost,
    from_inner: bool,
    buf: &mut [u8],
    len: usize,
    now: Now,
    defer: bool,
) -> Fast {
    let to = if from_inner {
        lh.bits_outer
    } else {
        lh.bits_inner
    };
    let Some(to) = to else {
        return Fast::Done;
    };
    let pass = Fast::Out {
        port: to,
        start: FRONT,
        len,
    };
    if len < 14 + 20 {
        return pass;
    }
    let et = u16::from_be_bytes([buf[FRONT + 12], buf[FRONT + 13]]);
    let ip = FRONT + 14;
    let Some(total) = ip_extent(buf, et, ip, len - 14) else {
        return pass;
    };
    let Some(l) = esp_ah::packet::layout(&buf[ip..ip + total]) else {
        return pass;
    };
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&buf[FRONT..FRONT + 6]);
    src_mac.copy_from_slice(&buf[FRONT + 6..FRONT + 12]);
    let rule = if lh.host.policy.is_empty() {
        None
    } else {
        crate::policy::lookup(&lh.host.policy, &buf[ip..ip + total], from_inner).map(|r| r.action)
    };
    if from_inner {
        let sas = match rule {
            Some(Action::Drop) => {
                lh.host.counters.policy_drops += 1;
                return Fast::Done;
            }
            Some(Action::Bypass) => (None, None),
            _ => lh.select(l.src, l.dst, l.next),
        };
        if sas.0.is_none() && sas.1.is_none() {
            if rule == Some(Action::Ipsec) {
                lh.host.counters.policy_drops += 1;
                return Fast::Done;
            }
            lh.host.counters.clear_out += 1;
            return pass;
        }
        if let (true, Some(id)) = (defer, single(sas)) {
            return match begin_seal(lh, id, total, now) {
                Some(job) => Fast::Defer(Deferred::Seal {
                    job,
                    start: ip,
                    len: total,
                    dst: dst_mac,
                    src: src_mac,
                    port: to,
                }),
                None => Fast::Done,
            };
        }
        let Some((s, n)) = protect(lh, buf, ip, total, sas, now) else {
            return Fast::Done;
        };
        lh.host.counters.protected += 1;
        let (s, n) = put_eth(buf, s, n, dst_mac, src_mac);
        return Fast::Out {
            port: to,
            start: s,
            len: n,
        };
    }
    let ours = lh.local.is_empty() || lh.local.contains(&l.dst.to_canonical());
    if (l.next == PROTO_ESP || l.next == PROTO_AH) && ours {
        if defer {
            match begin_open(lh, &buf[ip..ip + total]) {
                Ok(job) => {
                    return Fast::Defer(Deferred::Open {
                        job,
                        start: ip,
                        len: total,
                        then: Then::Bits {
                            dst: dst_mac,
                            src: src_mac,
                            to,
                        },
                    })
                }
                Err(Refused::Dropped) => return Fast::Done,
                Err(Refused::NotIpsec) => {}
            }
        } else {
            let Some((s, n, opened)) = open(lh, buf, ip, total, now) else {
                return Fast::Done;
            };
            if opened > 0 {
                lh.host.counters.verified += 1;
                let (s, n) = put_eth(buf, s, n, dst_mac, src_mac);
                return Fast::Out {
                    port: to,
                    start: s,
                    len: n,
                };
            }
        }
    }
    if matches!(rule, Some(Action::Ipsec) | Some(Action::Drop)) {
        lh.host.counters.policy_drops += 1;
        return Fast::Done;
    }
    lh.host.counters.clear_in += 1;
    pass
}

/// The crypto of a deferred frame in `buf`, without the host's lock:
/// the result and where the packet is afterwards.
fn crypto(d: &Deferred, buf: &mut [u8]) -> (Result<u8, DropReason>, usize, usize) {
    let (start, len) = match d {
        Deferred::Seal { start, len, .. } | Deferred::Open { start, len, .. } => (*start, *len),
    };
    let Some(mut p) = PacketBuf::new(buf, start, len) else {
        return (Err(DropReason::NoRoom), start, len);
    };
    let r = match d {
        Deferred::Seal { job, .. } => job.seal(&mut p).map(|()| 0),
        Deferred::Open { job, .. } => job.open(&mut p),
    };
    (r, p.headroom(), p.len())
}

/// Finishes a deferred frame under the host's lock: the engine counts
/// the crypto's result (and commits a received sequence number to the
/// replay window), then the frame goes where it was going. The packet
/// is at `buf[s..s + n]`.
fn finish(
    lh: &mut LiveHost,
    d: Deferred,
    r: Result<u8, DropReason>,
    buf: &mut [u8],
    s: usize,
    n: usize,
    now: Now,
) -> Fast {
    match d {
        Deferred::Seal {
            job,
            dst,
            src,
            port,
            ..
        } => {
            let h = &mut lh.host;
            if h.engine.outbound_end(&job, r.map(|_| ())) != Verdict::Send {
                h.counters.dropped += 1;
                return Fast::Done;
            }
            h.counters.protected += 1;
            let (s, n) = put_eth(buf, s, n, dst, src);
            Fast::Out {
                port,
                start: s,
                len: n,
            }
        }
        Deferred::Open { job, then, .. } => {
            let h = &mut lh.host;
            match h
                .engine
                .inbound_end(h.ks.sadb_mut(), &job, r, n, now, &mut lh.expires)
            {
                Verdict::Deliver => {}
                Verdict::Drop(DropReason::Keepalive) | Verdict::Drop(DropReason::Dummy) => {
                    return Fast::Done
                }
                _ => {
                    h.counters.dropped += 1;
                    return Fast::Done;
                }
            }
            // Further layers (AH around ESP, a tunnel in a tunnel): rare,
            // opened here under the lock.
            let Some((s, n, _)) = open(lh, buf, s, n, now) else {
                return Fast::Done;
            };
            match then {
                Then::Gateway => opened_at_gateway(lh, buf, s, n, now),
                Then::Bits { dst, src, to } => {
                    lh.host.counters.verified += 1;
                    let (s, n) = put_eth(buf, s, n, dst, src);
                    Fast::Out {
                        port: to,
                        start: s,
                        len: n,
                    }
                }
            }
        }
    }
}

/// A host shared with the TAP queue threads, served to PF_KEY clients:
/// each request holds the host's lock for its own duration.
struct Served<'a>(&'a HostCell);

impl Service for Served<'_> {
    fn open(&mut self) -> SockId {
        Service::open(&mut *self.0.lock())
    }
    fn close(&mut self, sock: SockId) {
        Service::close(&mut *self.0.lock(), sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        Service::write(&mut *self.0.lock(), from, bytes, now)
    }
    fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        Service::tick(&mut *self.0.lock(), now)
    }
}

/// Where a thread's frames leave.
trait Sink {
    /// Sends `frames` on `port`: how many left, or None when they were
    /// handed to the thread that owns the port (which counts them).
    fn send<'a>(&mut self, port: usize, frames: impl Iterator<Item = &'a [u8]>) -> Option<usize>;
}

/// One thread's data path: its frame pool and what a batch left to do.
struct Lane {
    pool: Slots,
    /// (port, slot, start, len) of frames to send.
    out: Vec<(usize, usize, usize, usize)>,
    /// (slot, work) of frames whose crypto runs outside the host's lock.
    deferred: Vec<(usize, Deferred)>,
    /// The crypto's result for each of `deferred`, and where the packet is.
    results: Vec<(Result<u8, DropReason>, usize, usize)>,
    /// Frames the host's own path produced: (port, frame).
    txs: Vec<(usize, Vec<u8>)>,
    traces: Vec<String>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            pool: Slots::new(),
            out: Vec::with_capacity(BATCH * 2),
            deferred: Vec::with_capacity(BATCH),
            results: Vec::with_capacity(BATCH),
            txs: Vec::new(),
            traces: Vec::new(),
        }
    }

    /// Processes the `n` frames in the pool that arrived on `port`: the
    /// decisions and the SADB's share under the host's lock, the crypto
    /// without it (so the threads of one host encrypt and decrypt at
    /// once), the results under the lock again, then the sends. Returns
    /// whether the host has something for the PF_KEY side or the traffic
    /// generator (EXPIREs, replies): the main thread should look.
    ///
    /// A batch that protects packets takes a ticket when it takes their
    /// sequence numbers, and sends only in its ticket's turn: two threads
    /// protecting with one SA then still put its packets on the wire in
    /// sequence order, so a receiver's replay window (RFC 4303 3.4.3)
    /// never sees one thread's batch overtake another's and drop it as
    /// too old. The crypto itself still runs in parallel.
    fn batch(
        &mut self,
        host: &HostCell,
        ports: &[Arc<PortShared>],
        port: usize,
        n: usize,
        sink: &mut impl Sink,
    ) -> bool {
        let now = wall_clock();
        let Some(sh) = ports.get(port) else {
            return false;
        };
        let bytes: usize = self.pool.lens[..n].iter().sum();
        sh.c.add_in(n as u64, bytes as u64);
        let pool = &mut self.pool;
        sh.capture(&mut (0..n).map(|i| &pool.bufs[i][FRONT..FRONT + pool.lens[i]]));
        let (iface, inner) = (sh.iface, sh.inner);
        let mut g = host.lock();
        let lh = &mut *g;
        for i in 0..n {
            let len = pool.lens[i];
            let buf = &mut pool.bufs[i];
            let r = if lh.bits {
                bits_path(lh, inner, buf, len, now, true)
            } else if let Some(ifc) = iface {
                gateway_path(lh, ifc, buf, len, now, true)
            } else {
                Fast::Done
            };
            match r {
                Fast::Slow => {
                    let Some(ifc) = iface else { continue };
                    let mut ex = std::mem::take(&mut lh.expires);
                    let txs = lh.host.input(ifc, &buf[FRONT..FRONT + len], now, &mut ex);
                    lh.expires = ex;
                    take_txs(lh, txs, &mut self.txs);
                }
                r => take(lh, r, i, &mut self.out, &mut self.txs, &mut self.deferred),
            }
        }
        let mut ticket = None;
        if !self.deferred.is_empty() {
            if self
                .deferred
                .iter()
                .any(|(_, d)| matches!(d, Deferred::Seal { .. }))
            {
                ticket = Some(lh.tickets);
                lh.tickets += 1;
            }
            drop(g);
            // The crypto, each thread on its own frames.
            self.results.clear();
            for (slot, d) in &self.deferred {
                self.results.push(crypto(d, &mut pool.bufs[*slot]));
            }
            g = host.lock();
            if let Some(t) = ticket {
                g = host
                    .turn
                    .wait_while(g, |lh| lh.turn != t)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let lh = &mut *g;
            let mut work = std::mem::take(&mut self.deferred);
            for ((slot, d), &(r, s, n)) in work.drain(..).zip(&self.results) {
                // finish never defers again: any further crypto of the
                // frame is done there, under the lock.
                let f = finish(lh, d, r, &mut pool.bufs[slot], s, n, now);
                take(
                    lh,
                    f,
                    slot,
                    &mut self.out,
                    &mut self.txs,
                    &mut self.deferred,
                );
            }
            self.deferred = work;
        }
        let lh = &mut *g;
        self.traces.append(&mut lh.host.trace);
        let wake =
            !lh.expires.is_empty() || !lh.host.inbox.is_empty() || !lh.host.outbox.is_empty();
        drop(g);
        self.flush(ports, sink);
        if let Some(t) = ticket {
            host.lock().turn = t + 1;
            host.turn.notify_all();
        }
        if !self.traces.is_empty() {
            let mut o = std::io::stdout().lock();
            for l in self.traces.drain(..) {
                let _ = writeln!(o, "  {l}");
            }
        }
        wake
    }

    /// Sends what the last batch left: the fast path's frames from the
    /// pool, each port's in one go, then the host's own frames.
    fn flush(&mut self, ports: &[Arc<PortShared>], sink: &mut impl Sink) {
        let mut k = 0;
        while k < self.out.len() {
            let port = self.out[k].0;
            // Each port once, in the order first used.
            if self.out[..k].iter().any(|o| o.0 == port) {
                k += 1;
                continue;
            }
            let pool = &self.pool;
            let frames = self
                .out
                .iter()
                .filter(|o| o.0 == port)
                .map(|&(_, slot, start, len)| &pool.bufs[slot][start..start + len]);
            if let Some(sh) = ports.get(port) {
                send_counted(sh, sink, port, frames);
            }
            k += 1;
        }
        self.out.clear();
        for (port, frame) in self.txs.drain(..) {
            if let Some(sh) = ports.get(port) {
                send_counted(sh, sink, port, std::iter::once(frame.as_slice()));
            }
        }
    }
}

/// Sends frames on a port with its capture and counters.
fn send_counted<'a>(
    sh: &PortShared,
    sink: &mut impl Sink,
    port: usize,
    frames: impl Iterator<Item = &'a [u8]> + Clone,
) {
    let (count, bytes) = frames
        .clone()
        .fold((0u64, 0u64), |(c, b), f| (c + 1, b + f.len() as u64));
    if count == 0 {
        return;
    }
    if let Some(sent) = sink.send(port, frames.clone()) {
        sh.capture(&mut frames.clone());
        let sent = (sent as u64).min(count);
        sh.c.add_out(sent, bytes, count - sent);
    }
}

/// Files a fast-path result of the frame in `slot`.
fn take(
    lh: &mut LiveHost,
    r: Fast,
    slot: usize,
    out: &mut Vec<(usize, usize, usize, usize)>,
    txs: &mut Vec<(usize, Vec<u8>)>,
    deferred: &mut Vec<(usize, Deferred)>,
) {
    match r {
        Fast::Out { port, start, len } => out.push((port, slot, start, len)),
        Fast::Done | Fast::Slow => {}
        Fast::Txs(t) => take_txs(lh, t, txs),
        Fast::Defer(d) => deferred.push((slot, d)),
    }
}

fn take_txs(lh: &LiveHost, t: Vec<Tx>, txs: &mut Vec<(usize, Vec<u8>)>) {
    for tx in t {
        if let Some(&port) = lh.iface_port.get(tx.iface) {
            txs.push((port, tx.frame));
        }
    }
}

/// How the main thread sends: on its own ports; a pipe queues the frame
/// for its other end.
struct MainSink<'a> {
    ports: &'a mut [Port],
}

impl Sink for MainSink<'_> {
    fn send<'a>(&mut self, port: usize, frames: impl Iterator<Item = &'a [u8]>) -> Option<usize> {
        let p = self.ports.get_mut(port)?;
        Some(match &mut p.io {
            PortIo::Udp(u) => u.send_frames(frames),
            PortIo::Tap(t) => t.send_frames(frames),
            PortIo::Pipe { peer } => {
                let peer = *peer;
                let copies: Vec<Vec<u8>> = frames.map(|f| f.to_vec()).collect();
                let n = copies.len();
                if let Some(q) = self.ports.get_mut(peer) {
                    q.queue.extend(copies);
                }
                n
            }
        })
    }
}

/// How a TAP queue's thread sends: UDP through its own handle on the
/// link's socket, TAPs directly; frames for in-process links go to the
/// main thread.
struct WorkerSink {
    ports: Vec<WorkerIo>,
    to_main: Sender<(usize, Vec<u8>)>,
    wake: UnixStream,
}

enum WorkerIo {
    Udp(UdpPort),
    Tap(Arc<TapPort>),
    Main,
}

impl WorkerSink {
    fn wake_main(&self) {
        let _ = (&self.wake).write(&[1]);
    }
}

impl Sink for WorkerSink {
    fn send<'a>(&mut self, port: usize, frames: impl Iterator<Item = &'a [u8]>) -> Option<usize> {
        match self.ports.get_mut(port)? {
            WorkerIo::Udp(u) => Some(u.send_frames(frames)),
            WorkerIo::Tap(t) => Some(t.send_frames(frames)),
            WorkerIo::Main => {
                for f in frames {
                    let _ = self.to_main.send((port, f.to_vec()));
                }
                self.wake_main();
                None
            }
        }
    }
}

/// The thread that serves queue `queue` of the TAP on port `port`: it
/// reads the frames the kernel put on that queue, and does their fast
/// path (and, under the host's lock, the host's own path) itself.
struct Worker {
    host: Arc<HostCell>,
    ports: Arc<[Arc<PortShared>]>,
    port: usize,
    queue: usize,
    tap: Arc<TapPort>,
    sink: WorkerSink,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let mut lane = Lane::new();
        while !self.stop.load(Ordering::Relaxed) {
            let ready = {
                let Some(fd) = self.tap.fd(self.queue) else {
                    return;
                };
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                // A short timeout: the stop flag is looked at in between.
                matches!(poll(&mut fds, PollTimeout::from(100u16)), Ok(n) if n > 0)
            };
            if !ready {
                continue;
            }
            let mut wake = false;
            for _ in 0..BATCHES_PER_WAKE {
                let n = match self.tap.recv_batch(self.queue, &mut lane.pool) {
                    Ok(n) => n,
                    Err(e) => {
                        eprintln!(
                            "sim: link {}: {e}",
                            self.ports
                                .get(self.port)
                                .map(|p| p.name.as_str())
                                .unwrap_or("?")
                        );
                        std::thread::sleep(Duration::from_millis(100));
                        0
                    }
                };
                if n == 0 {
                    break;
                }
                if let Some(c) = self
                    .ports
                    .get(self.port)
                    .and_then(|p| p.queue_in.get(self.queue))
                {
                    c.fetch_add(n as u64, Ordering::Relaxed);
                }
                wake |= lane.batch(&self.host, &self.ports, self.port, n, &mut self.sink);
                if n < BATCH {
                    break;
                }
            }
            if wake {
                self.sink.wake_main();
            }
        }
    }
}

/// Whether the main thread serves this TAP beside the UDP links, as it
/// does when the TAP has one queue. A thread of its own would only hand
/// the host's lock back and forth with the main thread, which serves the
/// other direction: on two cores, shared with the applications and the
/// kernels' TCP, that measured slower (PERFORMANCE.md, "Real applications
/// through TAP"). With `queues N` (N >= 2) each queue has its own thread.
fn inline_tap(t: &TapPort) -> bool {
    t.queues() == 1
}

/// How a live process runs.
#[derive(Debug, Clone, Default)]
pub struct LiveOpts {
    /// Serve each host's PF_KEY socket at DIR/HOST.sock (unless its
    /// `socket` option says where).
    pub serve: Option<PathBuf>,
    /// Where relative capture files go.
    pub dir: PathBuf,
    /// Print results as JSON Lines.
    pub json: bool,
    /// Read commands from standard input (end of input stops the process).
    pub stdin: bool,
    /// Trace every packet's path from the start.
    pub trace: bool,
}

/// A traffic generator job in progress.
struct Job {
    id: u32,
    udp: Option<u16>,
    host: usize,
    src: IpAddr,
    dst: IpAddr,
    count: u64,
    size: usize,
    interval: Duration,
    timeout: Duration,
    started: Instant,
    next: u64,
    next_at: Instant,
    last_sent: Instant,
    /// Send time of each packet (None once answered).
    sent_at: Vec<Option<Instant>>,
    received: u64,
    rtts: Vec<Duration>,
}

/// A live process: hosts, ports, served PF_KEY sockets, commands.
pub struct Live {
    /// Shared with the threads that serve TAP queues.
    hosts: Vec<Arc<HostCell>>,
    /// The hosts' names, by index.
    names: Vec<String>,
    ports: Vec<Port>,
    /// Every port's shared part, by port index.
    shared: Arc<[Arc<PortShared>]>,
    /// The main thread's data path (UDP links, pipes).
    lane: Lane,
    /// One thread per TAP queue, started by [`Live::run`].
    workers: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Frames the TAP threads send on in-process links.
    from_workers: Receiver<(usize, Vec<u8>)>,
    to_main: Sender<(usize, Vec<u8>)>,
    /// The TAP threads wake the main thread through this pair: EXPIREs
    /// and replies for the traffic generator wait in the hosts.
    nudge: (UnixStream, UnixStream),
    listeners: Vec<(usize, OwnedFd)>,
    paths: Vec<PathBuf>,
    server: Server,
    wake: UnixStream,
    opts: LiveOpts,
    commands: VecDeque<String>,
    input: Vec<u8>,
    eof: bool,
    job: Option<Job>,
    jobs: u32,
    wait_until: Option<Instant>,
    next_tick: Instant,
    pub failed: usize,
    quit: bool,
    /// The next command is a `keys` block whose `end` has not arrived.
    waiting_block: bool,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop_workers();
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A locally administered MAC from a name, so that two processes never
/// give two interfaces on one link the same address.
fn mac_of(name: &str) -> Mac {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

fn duration(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    (0.0..1e7)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// The time between packets at `rate` packets per second, if that is a
/// rate: positive, finite, and not slower than one packet per 10^7 s (the
/// longest duration; `Duration` itself ends near 10^19 s).
fn rate_interval(rate: &str) -> Option<Duration> {
    let r: f64 = rate.parse().ok()?;
    if !(r.is_finite() && r > 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(1.0 / r)
        .ok()
        .filter(|d| d.as_secs_f64() < 1e7)
}

impl Live {
    /// Opens every port and serves every socket; `loader` runs the
    /// configuration's `keys` blocks.
    pub fn build(
        spec: &Spec,
        opts: LiveOpts,
        loader: &mut dyn KeyLoader,
    ) -> Result<Live, LiveError> {
        let wake = signal_wakeup().map_err(|e| err(0, format!("signals: {e}")))?;
        let nudge = UnixStream::pair().map_err(|e| err(0, format!("socketpair: {e}")))?;
        for s in [&nudge.0, &nudge.1] {
            s.set_nonblocking(true)
                .map_err(|e| err(0, format!("socketpair: {e}")))?;
        }
        let (to_main, from_workers) = channel();
        let mut live = Live {
            hosts: Vec::new(),
            names: spec.hosts.iter().map(|h| h.name.clone()).collect(),
            ports: Vec::new(),
            shared: Arc::from(Vec::new()),
            lane: Lane::new(),
            workers: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            from_workers,
            to_main,
            nudge,
            listeners: Vec::new(),
            paths: Vec::new(),
            server: Server::new(&DaemonConfig::new(PathBuf::from("live.sock"))),
            wake,
            opts,
            commands: VecDeque::new(),
            input: Vec::new(),
            eof: false,
            job: None,
            jobs: 0,
            wait_until: None,
            next_tick: Instant::now() + Duration::from_secs(1),
            failed: 0,
            quit: false,
            waiting_block: false,
        };
        let mut hosts: Vec<LiveHost> = Vec::new();
        let mut ports: Vec<(PortShared, PortIo)> = Vec::new();
        for hs in &spec.hosts {
            let mut cfg = Config {
                jitter: Jitter::Off,
                ..Config::default()
            };
            cfg.local_addrs
                .extend(hs.local.iter().map(|a| a.to_canonical()));
            let mut host = Host::new(&hs.name, cfg);
            host.forwarding = hs.forward;
            host.gateway = hs.gateways.first().copied();
            host.gateway_other = hs.gateways.get(1).copied();
            host.sa_options.esn = hs.esn;
            host.tracing = live.opts.trace;
            let keysock = host.ks.open();
            hosts.push(LiveHost {
                host,
                bits: hs.bits,
                local: hs.local.iter().map(|a| a.to_canonical()).collect(),
                iface_port: Vec::new(),
                bits_inner: None,
                bits_outer: None,
                flows: foldhash::HashMap::default(),
                expires: Vec::new(),
                keysock,
                tickets: 0,
                turn: 0,
            });
        }
        let host_of = |name: &str| spec.hosts.iter().position(|h| h.name == name);
        for l in &spec.links {
            let ends: Vec<&End> = match &l.kind {
                LinkKind::Pipe { a, b } => vec![a, b],
                LinkKind::Udp { end, .. } | LinkKind::Tap { end, .. } => vec![end],
            };
            let first = ports.len();
            for (k, e) in ends.iter().enumerate() {
                let h =
                    host_of(&e.host).ok_or_else(|| err(l.line, format!("no host {}", e.host)))?;
                let io = match &l.kind {
                    LinkKind::Pipe { .. } => PortIo::Pipe {
                        peer: if k == 0 { first + 1 } else { first },
                    },
                    LinkKind::Udp { local, peer, .. } => {
                        PortIo::Udp(UdpPort::bind(*local, *peer).map_err(|e| {
                            err(l.line, format!("udp link {}: {local}: {e}", l.name))
                        })?)
                    }
                    LinkKind::Tap {
                        ifname,
                        queues,
                        offload,
                        ..
                    } => PortIo::Tap(Arc::new(
                        TapPort::open(ifname, *queues, *offload).map_err(|e| err(l.line, e))?,
                    )),
                };
                let lh = &mut hosts[h];
                let port = ports.len();
                let mut inner = false;
                let iface = if lh.bits {
                    if matches!(l.kind, LinkKind::Tap { .. }) {
                        lh.bits_inner = Some(port);
                        inner = true;
                    } else {
                        lh.bits_outer = Some(port);
                    }
                    None
                } else {
                    let mut ifc = Iface::new(
                        &format!("{}-{}", l.name, e.host),
                        mac_of(&format!("{}/{}", e.host, l.name)),
                        e.addrs.clone(),
                    );
                    if let LinkKind::Tap { proxy, .. } = &l.kind {
                        ifc.proxy = proxy.clone();
                    }
                    let i = lh.host.add_iface(ifc);
                    lh.iface_port.push(port);
                    Some(i)
                };
                ports.push((
                    PortShared {
                        name: l.name.clone(),
                        host: h,
                        iface,
                        inner,
                        c: PortStats::default(),
                        queue_in: match &l.kind {
                            LinkKind::Tap { queues, .. } => {
                                (0..*queues).map(|_| AtomicU64::new(0)).collect()
                            }
                            _ => Vec::new(),
                        },
                        capture: None,
                    },
                    io,
                ));
            }
        }
        for (link, file, line) in &spec.captures {
            let path = live.opts.dir.join(file);
            let cap = Capture::create(&path)
                .map_err(|e| err(*line, format!("{}: {e}", path.display())))?;
            // A pipe has two ports: capture once, on the first.
            if let Some(p) = ports.iter_mut().find(|p| p.0.name == *link) {
                p.0.capture = Some(Mutex::new((cap, path)));
            }
        }
        for (h, rules, line) in &spec.policies {
            let i = host_of(h).ok_or_else(|| err(*line, format!("no host {h}")))?;
            hosts[i].host.policy = crate::policy::parse(rules).map_err(|e| err(*line, e))?;
        }
        for (h, text, line) in &spec.keys {
            let i = host_of(h).ok_or_else(|| err(*line, format!("no host {h}")))?;
            let lh = &mut hosts[i];
            let sock = lh.keysock;
            loader
                .load(&mut lh.host, sock, text, wall_clock())
                .map_err(|e| err(*line, e.trim_end().to_string()))?;
        }
        for (i, hs) in spec.hosts.iter().enumerate() {
            let path = match (&hs.socket, &live.opts.serve) {
                (Some(p), _) => p.clone(),
                (None, Some(d)) => d.join(format!("{}.sock", hs.name)),
                (None, None) => continue,
            };
            let l = listen_on(&DaemonConfig::new(path.clone()))
                .map_err(|e| err(hs.line, format!("{}: {e}", path.display())))?;
            live.listeners.push((i, l));
            live.paths.push(path);
        }
        live.hosts = hosts
            .into_iter()
            .map(|h| {
                Arc::new(HostCell {
                    host: Mutex::new(h),
                    turn: Condvar::new(),
                })
            })
            .collect();
        let (shared, ios): (Vec<Arc<PortShared>>, Vec<PortIo>) =
            ports.into_iter().map(|(sh, io)| (Arc::new(sh), io)).unzip();
        live.ports = shared
            .iter()
            .cloned()
            .zip(ios)
            .map(|(sh, io)| Port {
                sh,
                io,
                queue: VecDeque::new(),
            })
            .collect();
        live.shared = Arc::from(shared);
        Ok(live)
    }

    fn say(&self, text: &str, value: serde_json::Value) {
        let mut o = std::io::stdout().lock();
        if self.opts.json {
            let _ = writeln!(o, "{value}");
        } else {
            let _ = writeln!(o, "{text}");
        }
        let _ = o.flush();
    }

    fn error(&mut self, msg: &str) {
        self.failed += 1;
        self.say(
            &format!("error: {msg}"),
            json!({"event": "error", "message": msg}),
        );
    }

    /// What is running where, then "ready".
    pub fn announce(&self) {
        for (k, (i, _)) in self.listeners.iter().enumerate() {
            let name = &self.names[*i];
            let path = self.paths[k].display().to_string();
            self.say(
                &format!("{name}: PF_KEY socket {path} (ipseckey --socket {path} ...)"),
                json!({"event": "socket", "host": name, "path": path}),
            );
        }
        for p in &self.ports {
            let host = &self.names[p.sh.host];
            let name = &p.sh.name;
            match &p.io {
                PortIo::Udp(u) => {
                    let local = u.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    let peer = u.peer().to_string();
                    self.say(
                        &format!("{host}: udp link {name} {local} -> {peer}"),
                        json!({"event": "udp", "link": name, "host": host, "local": local, "peer": peer}),
                    );
                }
                PortIo::Tap(t) => {
                    let how = match t.origin {
                        TapOrigin::Created => "created",
                        TapOrigin::Attached => "attached",
                    };
                    self.say(
                        &format!(
                            "{host}: tap link {name} on {} ({how}, {}{})",
                            t.name,
                            if inline_tap(t) {
                                "1 queue, served by the main thread".to_string()
                            } else {
                                format!("{} queues, a thread each", t.queues())
                            },
                            if t.offload() { ", segmentation offload" } else { "" }
                        ),
                        json!({"event": "tap", "link": name, "host": host, "ifname": t.name, "origin": how, "queues": t.queues(), "offload": t.offload()}),
                    );
                }
                PortIo::Pipe { .. } => {}
            }
        }
        self.say("ready", json!({"event": "ready"}));
    }

    /// Starts one thread per queue of every TAP (once).
    fn start_workers(&mut self) -> std::io::Result<()> {
        if !self.workers.is_empty() {
            return Ok(());
        }
        for (p, port) in self.ports.iter().enumerate() {
            let PortIo::Tap(tap) = &port.io else {
                continue;
            };
            // One queue: the main thread serves it (see `inline_tap`).
            if inline_tap(tap) {
                continue;
            }
            for queue in 0..tap.queues() {
                let mut ios = Vec::with_capacity(self.ports.len());
                for other in &self.ports {
                    ios.push(match &other.io {
                        PortIo::Udp(u) => WorkerIo::Udp(u.try_clone()?),
                        PortIo::Tap(t) => WorkerIo::Tap(Arc::clone(t)),
                        PortIo::Pipe { .. } => WorkerIo::Main,
                    });
                }
                let w = Worker {
                    host: Arc::clone(&self.hosts[port.sh.host]),
                    ports: Arc::clone(&self.shared),
                    port: p,
                    queue,
                    tap: Arc::clone(tap),
                    sink: WorkerSink {
                        ports: ios,
                        to_main: self.to_main.clone(),
                        wake: self.nudge.1.try_clone()?,
                    },
                    stop: Arc::clone(&self.stop),
                };
                let h = std::thread::Builder::new()
                    .name(format!("{}-q{queue}", port.sh.name))
                    .spawn(move || w.run())?;
                self.workers.push(h);
            }
        }
        Ok(())
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }

    /// Runs until `quit`, end of input (when reading it), SIGINT or
    /// SIGTERM. `loader` runs `keys` commands.
    pub fn run(&mut self, loader: &mut dyn KeyLoader) -> std::io::Result<()> {
        self.start_workers()?;
        let r = self.serve(loader);
        self.stop_workers();
        self.flush_captures();
        r
    }

    fn serve(&mut self, loader: &mut dyn KeyLoader) -> std::io::Result<()> {
        let stdin = std::io::stdin();
        // Ports the main thread reads: UDP links and one-queue TAPs (the
        // queues of a multi-queue TAP have their threads).
        let fdmap: Vec<usize> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| match &p.io {
                PortIo::Udp(_) => true,
                PortIo::Tap(t) => inline_tap(t),
                PortIo::Pipe { .. } => false,
            })
            .map(|(i, _)| i)
            .collect();
        loop {
            self.hand_to_clients();
            let timeout = self.timeout();
            let use_stdin = self.opts.stdin && !self.eof;
            let ready = {
                let mut extra: Vec<BorrowedFd<'_>> = vec![self.wake.as_fd(), self.nudge.0.as_fd()];
                if use_stdin {
                    extra.push(stdin.as_fd());
                }
                for &p in &fdmap {
                    match &self.ports[p].io {
                        PortIo::Udp(u) => extra.push(u.fd()),
                        PortIo::Tap(t) => extra.extend(t.fd(0)),
                        PortIo::Pipe { .. } => {}
                    }
                }
                let listeners: Vec<&OwnedFd> = self.listeners.iter().map(|(_, l)| l).collect();
                // Listener k serves host listeners[k].0.
                let mut served: Vec<Served<'_>> = self
                    .listeners
                    .iter()
                    .map(|(h, _)| Served(&self.hosts[*h]))
                    .collect();
                let mut services: Vec<&mut dyn Service> =
                    served.iter_mut().map(|s| s as &mut dyn Service).collect();
                self.server
                    .step(&listeners, &mut services, &extra, timeout, &wall_clock)?
            };
            if ready.first() == Some(&true) {
                break;
            }
            if ready.get(1) == Some(&true) {
                let mut sink = [0u8; 256];
                while matches!((&self.nudge.0).read(&mut sink), Ok(n) if n > 0) {}
            }
            let base = if use_stdin { 3 } else { 2 };
            if use_stdin && ready.get(2) == Some(&true) {
                self.read_stdin();
            }
            for (k, &p) in fdmap.iter().enumerate() {
                if ready.get(base + k) == Some(&true) {
                    self.drain(p);
                }
            }
            while let Ok((port, frame)) = self.from_workers.try_recv() {
                self.send_one(port, &frame);
            }
            self.pipes();
            if Instant::now() >= self.next_tick {
                let now = wall_clock();
                for h in 0..self.hosts.len() {
                    let out = Service::tick(&mut *self.hosts[h].lock(), now);
                    if let Some(svc) = self.svc_of(h) {
                        self.server.queue(svc, out);
                    }
                }
                self.next_tick = Instant::now() + Duration::from_secs(1);
            }
            self.step_job();
            self.run_commands(loader);
            if self.quit
                || (self.eof
                    && self.commands.is_empty()
                    && self.job.is_none()
                    && self.wait_until.is_none())
            {
                break;
            }
        }
        Ok(())
    }

    /// The server's index of host `h` (its listener), if served.
    fn svc_of(&self, h: usize) -> Option<usize> {
        self.listeners.iter().position(|(i, _)| *i == h)
    }

    /// Hands PF_KEY messages the hosts produced on their own (EXPIREs from
    /// traffic, copies of key loads) to the clients.
    fn hand_to_clients(&mut self) {
        for h in 0..self.hosts.len() {
            let svc = self.svc_of(h);
            let out = {
                let mut lh = self.hosts[h].lock();
                let mut out: Vec<Outgoing> = lh.host.outbox.drain(..).collect();
                if !lh.expires.is_empty() {
                    lh.flows.clear();
                    let ex = std::mem::take(&mut lh.expires);
                    out.extend(lh.host.ks.broadcast(&ex));
                }
                out
            };
            if let Some(svc) = svc {
                if !out.is_empty() {
                    self.server.queue(svc, out);
                }
            }
        }
    }

    fn timeout(&self) -> Duration {
        let now = Instant::now();
        if self.ports.iter().any(|p| !p.queue.is_empty()) || self.quit {
            return Duration::ZERO;
        }
        let mut t = self.next_tick.saturating_duration_since(now);
        if let Some(j) = &self.job {
            let due = if j.next < j.count {
                j.next_at
            } else {
                j.last_sent + j.timeout
            };
            t = t.min(due.saturating_duration_since(now));
        } else if let Some(w) = self.wait_until {
            t = t.min(w.saturating_duration_since(now));
        } else if !self.commands.is_empty() && !self.waiting_block {
            return Duration::ZERO;
        }
        t
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        self.waiting_block = false;
        match nix::unistd::read(std::io::stdin().as_raw_fd(), &mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.input.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => self.eof = true,
        }
        while let Some(n) = self.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=n).collect();
            self.commands
                .push_back(String::from_utf8_lossy(&line[..n]).into_owned());
        }
        if self.eof && !self.input.is_empty() {
            let line = std::mem::take(&mut self.input);
            self.commands
                .push_back(String::from_utf8_lossy(&line).into_owned());
        }
    }

    /// Reads and processes what waits on port `port` (a UDP link or a
    /// one-queue TAP).
    fn drain(&mut self, port: usize) {
        for _ in 0..BATCHES_PER_WAKE {
            let n = match &mut self.ports[port].io {
                PortIo::Udp(u) => u.recv_batch(&mut self.lane.pool),
                PortIo::Tap(t) => {
                    let n = t.recv_batch(0, &mut self.lane.pool);
                    if let (Ok(k), Some(c)) = (&n, self.ports[port].sh.queue_in.first()) {
                        c.fetch_add(*k as u64, Ordering::Relaxed);
                    }
                    n
                }
                PortIo::Pipe { .. } => Ok(0),
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    let msg = format!("link {}: {e}", self.ports[port].sh.name);
                    self.error(&msg);
                    0
                }
            };
            if n == 0 {
                break;
            }
            self.batch(port, n);
            if n < BATCH {
                break;
            }
        }
    }

    /// Processes the `n` frames in the main thread's pool that arrived on
    /// `port`.
    fn batch(&mut self, port: usize, n: usize) {
        let Some(h) = self.ports.get(port).map(|p| p.sh.host) else {
            return;
        };
        let host = Arc::clone(&self.hosts[h]);
        let mut sink = MainSink {
            ports: &mut self.ports,
        };
        self.lane.batch(&host, &self.shared, port, n, &mut sink);
    }

    /// Sends frames the host's own path produced, one by one.
    fn send_txs(&mut self, h: usize, txs: Vec<Tx>) {
        let ports: Vec<(usize, Vec<u8>)> = {
            let lh = self.hosts[h].lock();
            txs.into_iter()
                .filter_map(|tx| lh.iface_port.get(tx.iface).map(|&p| (p, tx.frame)))
                .collect()
        };
        for (port, frame) in ports {
            self.send_one(port, &frame);
        }
    }

    fn send_one(&mut self, port: usize, frame: &[u8]) {
        let Some(sh) = self.shared.get(port).cloned() else {
            return;
        };
        let mut sink = MainSink {
            ports: &mut self.ports,
        };
        send_counted(&sh, &mut sink, port, std::iter::once(frame));
    }

    /// Prints what host `h` traced on the main thread.
    fn print_traces(&self, h: usize) {
        let lines: Vec<String> = self.hosts[h].lock().host.trace.drain(..).collect();
        if !lines.is_empty() {
            let mut o = std::io::stdout().lock();
            for l in lines {
                let _ = writeln!(o, "  {l}");
            }
        }
    }

    /// Processes frames carried by in-process links.
    fn pipes(&mut self) {
        for _ in 0..64 {
            let Some(port) = self.ports.iter().position(|p| !p.queue.is_empty()) else {
                return;
            };
            let mut n = 0;
            while n < BATCH {
                let Some(f) = self.ports[port].queue.pop_front() else {
                    break;
                };
                let len = f.len().min(crate::netio::MAX_FRAME);
                self.lane.pool.bufs[n][FRONT..FRONT + len].copy_from_slice(&f[..len]);
                self.lane.pool.lens[n] = len;
                n += 1;
            }
            self.batch(port, n);
        }
    }

    fn flush_captures(&mut self) {
        for p in &self.ports {
            if let Some(cap) = &p.sh.capture {
                let mut cap = lock(cap);
                let (c, path) = &mut *cap;
                let _ = c.flush();
                let mut text = String::new();
                let mut all = String::new();
                for h in &self.hosts {
                    let lh = h.lock();
                    all.push_str(&esp_sa_file(lh.host.ks.sadb().iter().map(|(_, sa)| sa)));
                }
                for line in all.lines() {
                    if !text.lines().any(|l| l == line) {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
                let key_path = PathBuf::from(format!("{}.esp_sa", path.display()));
                let mut o = std::fs::OpenOptions::new();
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                if let Ok(mut f) = o.write(true).create(true).truncate(true).open(&key_path) {
                    let _ = f.write_all(text.as_bytes());
                }
            }
        }
    }

    fn host_index(&self, name: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no host named {name}"))
    }

    /// Runs queued commands while no traffic job or sleep holds them.
    fn run_commands(&mut self, loader: &mut dyn KeyLoader) {
        while self.job.is_none() && !self.quit {
            if let Some(w) = self.wait_until {
                if Instant::now() < w {
                    return;
                }
                self.wait_until = None;
            }
            let Some(line) = self.commands.pop_front() else {
                return;
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(&cmd) = words.first() else { continue };
            if cmd.starts_with('#') {
                continue;
            }
            let r = match cmd {
                "quit" | "exit" => {
                    self.quit = true;
                    Ok(())
                }
                "help" => {
                    self.say(HELP, json!({"event": "help", "text": HELP}));
                    Ok(())
                }
                "ping" | "udp" => self.start_job(cmd == "udp", &words[1..]),
                "counters" => match &words[1..] {
                    [] => {
                        self.counters(false);
                        Ok(())
                    }
                    ["json"] => {
                        self.counters(true);
                        Ok(())
                    }
                    _ => Err(format!("counters [json], not {}", words[1..].join(" "))),
                },
                "trace" => match words.get(1) {
                    Some(&"on") | Some(&"off") => {
                        let on = words[1] == "on";
                        for lh in &self.hosts {
                            lh.lock().host.tracing = on;
                        }
                        Ok(())
                    }
                    _ => Err("trace on|off".to_string()),
                },
                "peer" => self.set_peer(&words[1..]),
                "sleep" => match words.get(1).and_then(|d| duration(d)) {
                    Some(d) => {
                        self.wait_until = Some(Instant::now() + d);
                        Ok(())
                    }
                    None => Err("sleep DURATION (500ms, 2s)".to_string()),
                },
                "flush" => {
                    self.flush_captures();
                    self.say("flushed", json!({"event": "flushed"}));
                    Ok(())
                }
                "keys" => {
                    // The block runs to its "end" line (which may not have
                    // arrived yet: then wait for it).
                    match self.commands.iter().position(|l| l.trim() == "end") {
                        None if !self.eof => {
                            self.waiting_block = true;
                            self.commands.push_front(line);
                            return;
                        }
                        None => Err("keys block without its end line".to_string()),
                        Some(end) => {
                            let block: Vec<String> = self.commands.drain(..=end).collect();
                            let text: String = block[..block.len() - 1]
                                .iter()
                                .map(|l| format!("{l}\n"))
                                .collect();
                            self.load_keys(words.get(1).copied(), &text, loader)
                        }
                    }
                }
                _ => Err(format!("unknown command {cmd} (try help)")),
            };
            if let Err(e) = r {
                self.error(&e);
            }
        }
    }

    fn load_keys(
        &mut self,
        host: Option<&str>,
        text: &str,
        loader: &mut dyn KeyLoader,
    ) -> Result<(), String> {
        let h = self.host_index(host.ok_or("keys HOST ... end")?)?;
        let out = {
            let mut g = self.hosts[h].lock();
            let lh = &mut *g;
            lh.flows.clear();
            let sock = lh.keysock;
            loader.load(&mut lh.host, sock, text, wall_clock())?
        };
        let name = self.names[h].clone();
        self.say(
            &format!(
                "{name}: keys loaded{}",
                if out.trim().is_empty() {
                    String::new()
                } else {
                    format!("\n{}", out.trim_end())
                }
            ),
            json!({"event": "keys", "host": name, "output": out}),
        );
        Ok(())
    }

    fn set_peer(&mut self, words: &[&str]) -> Result<(), String> {
        let [link, addr] = words else {
            return Err("peer LINK ADDR:PORT".to_string());
        };
        let addr: SocketAddr = addr.parse().map_err(|_| format!("{addr}: not IP:PORT"))?;
        let p = self
            .ports
            .iter_mut()
            .find(|p| p.sh.name == *link && matches!(p.io, PortIo::Udp(_)))
            .ok_or_else(|| format!("no udp link named {link}"))?;
        if let PortIo::Udp(u) = &mut p.io {
            u.set_peer(addr).map_err(|e| format!("peer {addr}: {e}"))?;
        }
        self.say(
            &format!("link {link}: peer {addr}"),
            json!({"event": "peer", "link": link, "peer": addr.to_string()}),
        );
        Ok(())
    }

    fn start_job(&mut self, udp: bool, words: &[&str]) -> Result<(), String> {
        let usage = if udp {
            "udp HOST ADDR PORT [count N] [size S] [rate PPS | interval D] [timeout D]"
        } else {
            "ping HOST ADDR [count N] [size S] [interval D] [timeout D]"
        };
        let (host, dst, rest, port) = match (udp, words) {
            (false, [h, a, rest @ ..]) => (h, a, rest, None),
            (true, [h, a, p, rest @ ..]) => (
                h,
                a,
                rest,
                Some(p.parse::<u16>().map_err(|_| format!("{p}: not a port"))?),
            ),
            _ => return Err(usage.to_string()),
        };
        let h = self.host_index(host)?;
        let dst: IpAddr = dst.parse().map_err(|_| format!("{dst}: not an address"))?;
        let (mut count, mut size) = (if udp { 100 } else { 3 }, 56usize);
        let mut interval = if udp {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let mut timeout = Duration::from_secs(1);
        let mut it = rest.iter();
        while let Some(&w) = it.next() {
            let v = it
                .next()
                .ok_or_else(|| format!("{w} needs a value; {usage}"))?;
            match w {
                "count" => {
                    count = v
                        .parse()
                        .ok()
                        .filter(|c| (1..=MAX_COUNT).contains(c))
                        .ok_or_else(|| format!("count 1..{MAX_COUNT}"))?
                }
                "size" => {
                    size = v
                        .parse()
                        .ok()
                        .filter(|s| (16..=65_000).contains(s))
                        .ok_or("size 16..65000 (payload bytes)")?
                }
                "interval" => interval = duration(v).ok_or("interval DURATION (10ms, 1s)")?,
                "rate" => {
                    interval = rate_interval(v)
                        .ok_or("rate PACKETS-PER-SECOND (above 0.0000001: one in 10^7 s)")?
                }
                "timeout" => timeout = duration(v).ok_or("timeout DURATION")?,
                _ => return Err(format!("unknown option {w}; {usage}")),
            }
        }
        let lh = self.hosts[h].lock();
        if lh.bits {
            return Err(format!(
                "{host} is a bits host: it has no address to send from"
            ));
        }
        let ifaces = &lh.host.ifaces;
        let src = ifaces
            .iter()
            .find(|i| i.on_link(dst))
            .into_iter()
            .chain(ifaces.iter())
            .flat_map(|i| i.addrs.iter().map(|(a, _)| *a))
            .find(|a| a.is_ipv4() == dst.is_ipv4())
            .ok_or_else(|| format!("{host} has no address of the family of {dst}"))?;
        drop(lh);
        self.jobs += 1;
        let now = Instant::now();
        self.job = Some(Job {
            id: self.jobs,
            udp: port,
            host: h,
            src,
            dst,
            count,
            size,
            interval,
            timeout,
            started: now,
            next: 0,
            next_at: now,
            last_sent: now,
            sent_at: Vec::with_capacity(count.min(1 << 20) as usize),
            received: 0,
            rtts: Vec::new(),
        });
        Ok(())
    }

    /// Sends what is due, counts replies, reports when done.
    fn step_job(&mut self) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        let now = Instant::now();
        let mut burst = 0;
        while job.next < job.count && job.next_at <= now && burst < 256 {
            let mut payload = vec![0u8; job.size];
            payload[..4].copy_from_slice(MAGIC);
            payload[4..8].copy_from_slice(&job.id.to_be_bytes());
            payload[8..16].copy_from_slice(&job.next.to_be_bytes());
            let pkt = match job.udp {
                None => stack::icmp_echo_request(
                    job.src,
                    job.dst,
                    job.id as u16,
                    job.next as u16,
                    &payload,
                ),
                Some(p) => stack::udp_datagram(job.src, job.dst, GEN_PORT, p, &payload),
            };
            let txs = {
                let mut lh = self.hosts[job.host].lock();
                let mut ex = std::mem::take(&mut lh.expires);
                let txs = lh.host.send(pkt, wall_clock(), &mut ex);
                lh.expires = ex;
                txs
            };
            job.sent_at.push(Some(Instant::now()));
            job.next += 1;
            job.last_sent = Instant::now();
            job.next_at += job.interval;
            burst += 1;
            self.send_txs(job.host, txs);
            self.print_traces(job.host);
        }
        self.pipes();
        // Replies.
        let inbox = std::mem::take(&mut self.hosts[job.host].lock().host.inbox);
        for p in inbox {
            if let Some(i) = generator_index(&p, job.id, job.udp) {
                if let Some(slot) = job.sent_at.get_mut(i as usize) {
                    if let Some(t) = slot.take() {
                        job.received += 1;
                        job.rtts.push(t.elapsed());
                    }
                }
            }
        }
        let all_sent = job.next >= job.count;
        let answered = job.udp == Some(9) || job.received >= job.count;
        if all_sent && (answered || now >= job.last_sent + job.timeout) {
            self.report(&job);
        } else {
            self.job = Some(job);
        }
    }

    fn report(&self, job: &Job) {
        let name = &self.names[job.host];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Round trips only when something came back (no made-up zeros).
        let rtt = match (job.rtts.iter().min(), job.rtts.iter().max()) {
            (Some(&lo), Some(&hi)) => Some((
                ms(lo),
                job.rtts.iter().map(|d| ms(*d)).sum::<f64>() / job.rtts.len() as f64,
                ms(hi),
            )),
            _ => None,
        };
        let rtt_text = match rtt {
            Some((min, avg, max)) => format!(", rtt min/avg/max {min:.3}/{avg:.3}/{max:.3} ms"),
            None => String::new(),
        };
        let elapsed = job.last_sent.duration_since(job.started).as_secs_f64();
        let kind = match job.udp {
            None => "ping".to_string(),
            Some(p) => format!("udp port {p}"),
        };
        let lost = job.count - job.received;
        let text = if job.udp == Some(9) {
            format!(
                "{kind} {name} -> {}: {} sent in {elapsed:.3} s (discard: no replies expected)",
                job.dst, job.count
            )
        } else {
            format!(
                "{kind} {name} -> {}: {} sent, {} received, {lost} lost{rtt_text}, sent in {elapsed:.3} s",
                job.dst, job.count, job.received
            )
        };
        self.say(
            &text,
            json!({
                "event": if job.udp.is_some() { "udp" } else { "ping" },
                "host": name, "to": job.dst.to_string(), "port": job.udp,
                "size": job.size, "sent": job.count, "received": job.received, "lost": lost,
                "rtt_ms": rtt.map(|(min, avg, max)| json!({"min": min, "avg": avg, "max": max})),
                "send_seconds": elapsed,
            }),
        );
    }

    /// Every host's counters, its SAs' and every port's.
    pub fn counters_json(&self) -> serde_json::Value {
        let hosts: Vec<serde_json::Value> = self
            .hosts
            .iter()
            .map(|lh| {
                let lh = lh.lock();
                let h = &lh.host;
                let c = &h.counters;
                let sas: Vec<serde_json::Value> = h
                    .ks
                    .sadb()
                    .iter()
                    .filter_map(|(id, sa)| {
                        let t = h.engine.transform(id)?;
                        let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
                            .iter()
                            .filter(|r| t.counters.dropped(**r) > 0)
                            .map(|r| (r.name().to_string(), json!(t.counters.dropped(*r))))
                            .collect();
                        Some(json!({
                            "type": if sa.satype == satype::ESP { "esp" } else { "ah" },
                            "spi": format!("0x{:x}", sa.spi),
                            "src": sa.src.ip.to_string(), "dst": sa.dst.ip.to_string(),
                            "packets_out": t.counters.packets_out, "bytes_out": t.counters.bytes_out,
                            "packets_in": t.counters.packets_in, "bytes_in": t.counters.bytes_in,
                            "drops": drops,
                        }))
                    })
                    .collect();
                json!({
                    "name": h.name,
                    "counters": {
                        "sent": c.sent, "delivered": c.delivered, "protected": c.protected,
                        "clear_out": c.clear_out, "verified": c.verified, "clear_in": c.clear_in,
                        "forwarded": c.forwarded, "dropped": c.dropped, "no_route": c.no_route,
                        "policy_drops": c.policy_drops,
                    },
                    "sas": sas,
                })
            })
            .collect();
        let ports: Vec<serde_json::Value> = self
            .ports
            .iter()
            .map(|p| {
                let kind = match p.io {
                    PortIo::Udp(_) => "udp",
                    PortIo::Tap(_) => "tap",
                    PortIo::Pipe { .. } => "link",
                };
                let c = p.sh.c.get();
                let mut v = json!({
                    "link": p.sh.name, "kind": kind, "host": self.names[p.sh.host],
                    "frames_in": c.frames_in, "bytes_in": c.bytes_in,
                    "frames_out": c.frames_out, "bytes_out": c.bytes_out, "lost_out": c.lost_out,
                });
                if !p.sh.queue_in.is_empty() {
                    let q: Vec<u64> =
                        p.sh.queue_in
                            .iter()
                            .map(|c| c.load(Ordering::Relaxed))
                            .collect();
                    v["queue_frames_in"] = json!(q);
                }
                if let PortIo::Tap(t) = &p.io {
                    let (frames, segments) = t.gso_counts();
                    v["offload"] = json!(t.offload());
                    v["gso_frames_in"] = json!(frames);
                    v["gso_segments_in"] = json!(segments);
                    let (frames, segments) = t.gro_counts();
                    v["gro_frames_out"] = json!(frames);
                    v["gro_segments_out"] = json!(segments);
                }
                v
            })
            .collect();
        json!({"event": "counters", "hosts": hosts, "ports": ports})
    }

    fn counters(&self, as_json: bool) {
        let v = self.counters_json();
        if as_json || self.opts.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
            return;
        }
        let mut text = String::new();
        for lh in &self.hosts {
            let lh = lh.lock();
            let h = &lh.host;
            let c = &h.counters;
            text.push_str(&format!(
                "{}: sent {}, delivered {}, protected {}, sent in clear {}, verified {}, received in clear {}, forwarded {}, dropped {}, no route {}, policy drops {}\n",
                h.name, c.sent, c.delivered, c.protected, c.clear_out, c.verified, c.clear_in, c.forwarded, c.dropped, c.no_route, c.policy_drops
            ));
            for (id, sa) in h.ks.sadb().iter() {
                let Some(t) = h.engine.transform(id) else {
                    continue;
                };
                let drops: Vec<String> = DropReason::ALL
                    .iter()
                    .filter(|r| t.counters.dropped(**r) > 0)
                    .map(|r| format!("{} {}", r.name(), t.counters.dropped(*r)))
                    .collect();
                text.push_str(&format!(
                    "  SA {} spi 0x{:x} {} -> {}: out {} pkts {} bytes, in {} pkts {} bytes{}\n",
                    if sa.satype == satype::ESP {
                        "esp"
                    } else {
                        "ah"
                    },
                    sa.spi,
                    sa.src.ip,
                    sa.dst.ip,
                    t.counters.packets_out,
                    t.counters.bytes_out,
                    t.counters.packets_in,
                    t.counters.bytes_in,
                    if drops.is_empty() {
                        String::new()
                    } else {
                        format!(", drops: {}", drops.join(", "))
                    }
                ));
            }
        }
        for p in &self.ports {
            let c = p.sh.c.get();
            text.push_str(&format!(
                "link {} ({}): in {} frames {} bytes, out {} frames {} bytes, lost {}\n",
                p.sh.name,
                self.names[p.sh.host],
                c.frames_in,
                c.bytes_in,
                c.frames_out,
                c.bytes_out,
                c.lost_out
            ));
        }
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{text}");
        let _ = o.flush();
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The index of the traffic generator's packet that `p` answers (job
/// `id`; an ICMP echo reply, or a UDP datagram from `port` to the
/// generator's port), read from the payload the generator wrote.
fn generator_index(p: &[u8], id: u32, udp: Option<u16>) -> Option<u64> {
    let l = esp_ah::packet::layout(p)?;
    let body = p.get(l.hdr_len..)?;
    let data = match (udp, l.next) {
        (None, 1) | (None, 58) => {
            let echo_reply = if l.v6 { 129 } else { 0 };
            (body.first() == Some(&echo_reply)).then(|| body.get(8..))??
        }
        (Some(port), 17) => {
            let sport = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
            let dport = u16::from_be_bytes([*body.get(2)?, *body.get(3)?]);
            (sport == port && dport == GEN_PORT).then(|| body.get(8..))??
        }
        _ => return None,
    };
    if data.get(..4)? != MAGIC || data.get(4..8)? != id.to_be_bytes() {
        return None;
    }
    let mut i = [0u8; 8];
    i.copy_from_slice(data.get(8..16)?);
    Some(u64::from_be_bytes(i))
}

/// Reads a live configuration file.
pub fn load(path: &Path) -> Result<Spec, LiveError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(0, format!("{}: {e}", path.display())))?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_every_link_kind() {
        let s = parse(
            "# two gateways\n\
             host gw1 forward socket /tmp/x/gw1.sock\n\
             host b bits local 198.18.0.1,2001:db8::1\n\
             host c gateway 192.0.2.1\n\
             tap lan gw1:198.18.1.1/24,2001:db8:1::1/64 ipsb-t1 queues 2 proxy 198.18.0.0/16\n\
             udp wan gw1:192.0.2.1/24 127.0.0.1:4000 127.0.0.1:4001\n\
             tap in b ipsb-t2 offload off\n\
             udp out b 127.0.0.1:0 127.0.0.1:4003\n\
             link l2 gw1:192.0.3.1/24 c:192.0.3.2/24\n\
             capture wan wan.pcap\n\
             policy gw1\n{ulp icmp} bypass {}\nend\n",
        )
        .unwrap();
        assert_eq!(s.hosts.len(), 3);
        assert!(s.hosts[0].forward && s.hosts[1].bits);
        assert_eq!(s.hosts[1].local.len(), 2);
        assert_eq!(s.links.len(), 5);
        match &s.links[0].kind {
            LinkKind::Tap {
                end,
                ifname,
                queues,
                offload,
                proxy,
            } => {
                assert_eq!(end.addrs.len(), 2);
                assert_eq!((ifname.as_str(), *queues, proxy.len()), ("ipsb-t1", 2, 1));
                assert!(*offload, "offload is on unless the line says otherwise");
            }
            k => panic!("{k:?}"),
        }
        assert!(
            matches!(&s.links[2].kind, LinkKind::Tap { offload: false, .. }),
            "{:?}",
            s.links[2].kind
        );
        assert_eq!(s.captures[0].0, "wan");
        assert_eq!(s.policies.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, frag) in [
            ("host a\nhost a\n", 2, "twice"),
            (
                "host a\nudp x a:192.0.2.1/24 127.0.0.1 127.0.0.1:9\n",
                2,
                "not IP:PORT",
            ),
            ("host a\ntap x a ipsb0\n", 2, "needs addresses"),
            ("host a bits\ntap x a ipsb0\n", 1, "exactly one tap"),
            (
                "host a bits\ntap x a:192.0.2.1/24 t\nudp y a 127.0.0.1:1 127.0.0.1:2\n",
                2,
                "take no addresses",
            ),
            (
                "udp x nobody:192.0.2.1/24 127.0.0.1:1 127.0.0.1:2\n",
                1,
                "no host named nobody",
            ),
            ("host a\npolicy a\n{} drop {}\n", 2, "without its end"),
            ("host a\nfrobnicate\n", 2, "unknown statement"),
            ("host a\ntap x a:192.0.2.1/24 t queues 99\n", 2, "queues"),
            (
                "host a\ntap x a:192.0.2.1/24 t offload yes\n",
                2,
                "offload on|off",
            ),
            (
                "host a\nlink x a:192.0.2.1/33 a:192.0.2.2/24\n",
                2,
                "prefix",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.msg.contains(frag), "{text}: {e}");
        }
    }

    #[test]
    fn macs_differ_per_host_and_link() {
        let a = mac_of("gw1/wan");
        let b = mac_of("gw2/wan");
        assert_ne!(a, b);
        assert_eq!(a[0], 0x02, "locally administered, unicast");
        assert_eq!(a, mac_of("gw1/wan"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration("10ms"), Some(Duration::from_millis(10)));
        assert_eq!(duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(duration("x"), None);
        assert_eq!(duration("-1s"), None);
    }

    #[test]
    fn rates_that_are_no_interval_are_refused_not_a_panic() {
        assert_eq!(rate_interval("1000"), Some(Duration::from_millis(1)));
        assert_eq!(rate_interval("0.5"), Some(Duration::from_secs(2)));
        for bad in ["0", "-5", "nan", "inf", "1e400", "1e-20", "0.00000001", "x"] {
            assert_eq!(rate_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn generator_replies_are_matched_by_job_and_index() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut payload = vec![0u8; 32];
        payload[..4].copy_from_slice(MAGIC);
        payload[4..8].copy_from_slice(&7u32.to_be_bytes());
        payload[8..16].copy_from_slice(&70_000u64.to_be_bytes());
        let req = stack::icmp_echo_request(a, b, 7, 4464, &payload);
        let reply = stack::service(&req).unwrap();
        assert_eq!(generator_index(&reply, 7, None), Some(70_000));
        assert_eq!(generator_index(&reply, 8, None), None, "another job");
        assert_eq!(
            generator_index(&req, 7, None),
            None,
            "a request is no reply"
        );
        let u = stack::udp_datagram(a, b, GEN_PORT, 7, &payload);
        let echoed = stack::service(&u).unwrap();
        assert_eq!(generator_index(&echoed, 7, Some(7)), Some(70_000));
        assert_eq!(generator_index(&echoed, 7, Some(9)), None);
    }
}
