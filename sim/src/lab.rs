//! Labs: several simulated hosts joined by links with faults, driven by a
//! small script (`labs/*/lab.txt`) on a virtual clock. See `labs/README.md`
//! for the language.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use esp_ah::DropReason;
use sadb::pfkey::{Dialect, Message, MsgType};
use sadb::{Config, Jitter, Now};

use crate::daemon::{listen_on, signal_wakeup, DaemonConfig, Server, Service};
use crate::host::{Host, Tx};
use crate::keysock::SockId;
use crate::link::{esp_sa_file, Capture, Faults, Pipe};
use crate::stack::{self, Iface, Reply};

/// Runs ipseckey commands against a host (the front end lives above this
/// crate, so it is passed in).
pub trait KeyLoader {
    /// Runs `text` (ipseckey commands) on `host` through its PF_KEY socket
    /// `sock` at `now`; `Err` carries what ipseckey printed.
    fn load(
        &mut self,
        host: &mut Host,
        sock: SockId,
        text: &str,
        now: Now,
    ) -> Result<String, String>;
}

struct LinkState {
    name: String,
    a: (usize, usize),
    b: (usize, usize),
    ab: Pipe,
    ba: Pipe,
    capture: Option<(Capture, PathBuf)>,
    /// The first write to the capture that failed (a full disk), told
    /// when the command that caused it ends.
    capture_error: Option<String>,
    /// A man in the middle rewriting an IPv4 header field of the next
    /// frames that carry one (lab 3).
    tamper: Option<Tamper>,
}

#[derive(Debug, Clone)]
struct Tamper {
    field: String,
    value: String,
    left: u64,
    done: u64,
}

/// Rewrites one IPv4 header field of an Ethernet frame (and fixes the
/// header checksum, as a router or an attacker would). Returns whether the
/// frame carried IPv4.
fn tamper_frame(frame: &mut [u8], field: &str, value: &str) -> bool {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return false;
    }
    let ip = &mut frame[14..];
    match field {
        "ttl" => ip[8] = value.parse().unwrap_or(1),
        "tos" => ip[1] = value.parse().unwrap_or(0),
        "src" | "dst" => {
            let Ok(a) = value.parse::<std::net::Ipv4Addr>() else {
                return false;
            };
            let at = if field == "src" { 12 } else { 16 };
            ip[at..at + 4].copy_from_slice(&a.octets());
        }
        _ => return false,
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip.len() >= ihl {
        esp_ah::packet::ipv4_checksum(&mut ip[..ihl]);
    }
    true
}

/// A lab in progress.
pub struct Lab {
    pub hosts: Vec<Host>,
    links: Vec<LinkState>,
    /// Virtual milliseconds since the lab started.
    pub now_ms: u64,
    epoch: u64,
    monitors: Vec<SockId>,
    keysocks: Vec<SockId>,
    /// What the lab printed: traces, results, monitor lines.
    pub report: String,
    last_sent: u64,
    last_received: u64,
    expires: Vec<u64>,
    /// Packets delivered to each host's applications, with the virtual
    /// time (ms) they arrived at, for the traffic generator.
    arrived: Vec<Vec<(u64, Vec<u8>)>>,
    /// Round trips (ms) of the last ping/udp: min, average, max.
    last_rtt: Option<(u64, f64, u64)>,
    last_duplicates: u64,
    dir: PathBuf,
    /// Print each report line as it is made (a served lab is interactive).
    echo: bool,
    serving: Option<Serving>,
}

/// A lab whose hosts' PF_KEY sockets are served (`sim lab --serve DIR`):
/// `ipseckey --socket DIR/HOST.sock` manages one host as it would a machine,
/// on the lab's virtual clock.
struct Serving {
    dir: PathBuf,
    listeners: Vec<OwnedFd>,
    paths: Vec<PathBuf>,
    server: Server,
    /// Readable on SIGINT/SIGTERM.
    wake: UnixStream,
    stopped: bool,
    /// Bytes read from standard input, not yet a whole line.
    input: Vec<u8>,
    eof: bool,
}

impl Drop for Serving {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// How to run a lab.
#[derive(Debug, Clone, Default)]
pub struct RunOpts {
    /// Trace every packet's path from the start.
    pub trace: bool,
    /// Serve each host's PF_KEY socket at DIR/HOST.sock, honour `pause`,
    /// and after the script read further lab commands from standard input
    /// until end of file, `quit`, SIGINT or SIGTERM.
    pub serve: Option<PathBuf>,
    /// Print report lines as they are made.
    pub echo: bool,
    /// Write every counter as JSON to this file when the lab ends (also
    /// when it fails).
    pub counters_json: Option<PathBuf>,
}

/// Why a lab stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match line { 0 => msg.clone(), n => format!("line {n}: {msg}") })]
pub struct LabError {
    /// The script line, or 0 for what is not one line's fault.
    pub line: usize,
    pub msg: String,
}

fn duration_ms(s: &str) -> Option<u64> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1000)
    };
    // At most ten years: beyond it a lab has nothing left to show, and
    // the virtual clock (and pcap's 32-bit seconds) must not overflow.
    num.parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|&ms| ms <= MAX_DURATION_MS)
}

/// The longest `advance`, `interval` or delay: ten years, in milliseconds.
const MAX_DURATION_MS: u64 = 10 * 365 * 86_400 * 1000;
/// The most packets one `ping` or `udp` sends (the generator keeps a
/// record of each).
const MAX_COUNT: u64 = 1_000_000;

impl Lab {
    fn new(dir: &Path, epoch: u64) -> Lab {
        Lab {
            hosts: Vec::new(),
            links: Vec::new(),
            now_ms: 0,
            epoch,
            monitors: Vec::new(),
            keysocks: Vec::new(),
            report: String::new(),
            last_sent: 0,
            last_received: 0,
            expires: Vec::new(),
            arrived: Vec::new(),
            last_rtt: None,
            last_duplicates: 0,
            dir: dir.to_path_buf(),
            echo: false,
            serving: None,
        }
    }

    /// Lets clients of served sockets talk to the hosts for at most
    /// `timeout`, and hands them what the hosts sent them meanwhile.
    /// Returns whether standard input is readable (when `stdin`). Without
    /// serving, only discards what no one will read.
    fn pump(&mut self, timeout: Duration) -> bool {
        self.pump_with(timeout, false)
    }

    fn pump_with(&mut self, timeout: Duration, stdin: bool) -> bool {
        let Some(sv) = self.serving.as_mut() else {
            for h in &mut self.hosts {
                h.outbox.clear();
            }
            return false;
        };
        for (i, h) in self.hosts.iter_mut().enumerate() {
            sv.server.queue(i, h.outbox.drain(..));
        }
        let listeners: Vec<&OwnedFd> = sv.listeners.iter().collect();
        let mut services: Vec<&mut dyn Service> = self
            .hosts
            .iter_mut()
            .map(|h| h as &mut dyn Service)
            .collect();
        let now = self.epoch + self.now_ms / 1000;
        let input = std::io::stdin();
        let mut extra = vec![sv.wake.as_fd()];
        if stdin && !sv.eof {
            extra.push(input.as_fd());
        }
        match sv
            .server
            .step(&listeners, &mut services, &extra, timeout, &|| now)
        {
            Ok(ready) => {
                if ready.first() == Some(&true) {
                    sv.stopped = true;
                }
                ready.get(1) == Some(&true)
            }
            Err(e) => {
                let msg = format!("lab: serving PF_KEY sockets failed: {e}");
                sv.stopped = true;
                self.say(msg);
                false
            }
        }
    }

    /// One line of standard input, serving the hosts' sockets while it
    /// waits; `None` at end of input or on SIGINT/SIGTERM.
    fn read_line(&mut self) -> Option<String> {
        loop {
            let sv = self.serving.as_mut()?;
            if sv.stopped {
                return None;
            }
            if let Some(n) = sv.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = sv.input.drain(..=n).collect();
                return Some(String::from_utf8_lossy(&line[..n]).into_owned());
            }
            if sv.eof {
                if sv.input.is_empty() {
                    return None;
                }
                let line = std::mem::take(&mut sv.input);
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            if self.pump_with(Duration::from_millis(200), true) {
                let mut buf = [0u8; 4096];
                let sv = self.serving.as_mut()?;
                match nix::unistd::read(std::io::stdin().as_raw_fd(), &mut buf) {
                    Ok(0) => sv.eof = true,
                    Ok(n) => sv.input.extend_from_slice(&buf[..n]),
                    Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                    Err(_) => sv.eof = true,
                }
            }
        }
    }

    /// `pause TEXT`: when serving, says TEXT (with `{serve}` replaced by
    /// the directory of the sockets) and waits for a line on
    /// standard input, serving the sockets meanwhile (time stands still);
    /// otherwise does nothing.
    fn pause(&mut self, text: &str) -> Result<(), String> {
        if self.serving.is_none() {
            return Ok(());
        }
        let dir = self
            .serving
            .as_ref()
            .map(|sv| sv.dir.display().to_string())
            .unwrap_or_default();
        self.say(format!("paused: {}", text.replace("{serve}", &dir)));
        self.say("(press Enter to go on)");
        let _ = self.read_line();
        if self.serving.as_ref().is_some_and(|sv| sv.stopped) {
            return Err("interrupted (SIGINT or SIGTERM)".to_string());
        }
        Ok(())
    }

    /// Creates host `name`'s PF_KEY socket when serving.
    fn serve_host(&mut self, name: &str) -> Result<(), String> {
        let Some(sv) = self.serving.as_mut() else {
            return Ok(());
        };
        let path = sv.dir.join(format!("{name}.sock"));
        let l = listen_on(&DaemonConfig::new(path.clone()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        sv.listeners.push(l);
        sv.paths.push(path.clone());
        self.say(format!(
            "{name}: PF_KEY socket {} (ipseckey --socket {} ...)",
            path.display(),
            path.display()
        ));
        Ok(())
    }

    /// PF_KEY time: the virtual clock in seconds since the epoch.
    pub fn now(&self) -> Now {
        self.epoch + self.now_ms / 1000
    }

    fn host(&self, name: &str) -> Result<usize, String> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| format!("no host named {name}"))
    }

    fn say(&mut self, line: impl AsRef<str>) {
        self.report.push_str(line.as_ref());
        self.report.push('\n');
        if self.echo {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{}", line.as_ref());
            let _ = o.flush();
        }
    }

    /// Moves one host's trace lines into the report, so the report reads
    /// in the order things happened.
    fn flush_host(&mut self, h: usize) {
        let t = std::mem::take(&mut self.hosts[h].trace);
        for l in t {
            self.say(format!("  {l}"));
        }
    }

    /// Moves the traces of every host into the report.
    fn flush_traces(&mut self) {
        for i in 0..self.hosts.len() {
            let t = std::mem::take(&mut self.hosts[i].trace);
            for l in t {
                self.say(format!("  {l}"));
            }
        }
    }

    /// Messages for a host's monitor socket: EXPIREs and the like.
    fn monitor_lines(&mut self, host: usize, out: Vec<crate::keysock::Outgoing>) {
        let mon = self.monitors[host];
        let (mine, theirs): (Vec<_>, Vec<_>) = out.into_iter().partition(|o| o.to == mon);
        // For clients of a served socket (discarded when not serving).
        self.hosts[host]
            .outbox
            .extend(theirs.into_iter().filter(|o| o.to != self.keysocks[host]));
        for o in mine {
            if let Ok(m) = Message::parse(&o.bytes, Dialect::Illumos) {
                if m.msg_type == MsgType::Expire {
                    self.expires[host] += 1;
                    let which = if m.has(sadb::pfkey::ExtKind::LifetimeHard) {
                        "hard"
                    } else if m.has(sadb::pfkey::ExtKind::LifetimeSoft) {
                        "soft"
                    } else {
                        "idle"
                    };
                    let spi = m.sa().map(|s| s.spi).unwrap_or(0);
                    let name = self.hosts[host].name.clone();
                    self.say(format!("{name}: monitor: EXPIRE ({which}) spi 0x{spi:x}"));
                }
            }
        }
    }

    fn transmit(&mut self, host: usize, txs: Vec<Tx>) {
        for tx in txs {
            let now_ms = self.now_ms;
            if let Some(l) = self
                .links
                .iter_mut()
                .find(|l| l.a == (host, tx.iface) || l.b == (host, tx.iface))
            {
                let mut tx = tx;
                if let Some(t) = l.tamper.as_mut().filter(|t| t.left > 0) {
                    if tamper_frame(&mut tx.frame, &t.field, &t.value) {
                        t.left -= 1;
                        t.done += 1;
                    }
                }
                if let Some((c, p)) = l.capture.as_mut() {
                    if let Err(e) = c.write(&tx.frame, now_ms) {
                        l.capture_error
                            .get_or_insert_with(|| format!("capture {}: {e}", p.display()));
                    }
                }
                if l.a == (host, tx.iface) {
                    l.ab.send(tx.frame, now_ms);
                } else {
                    l.ba.send(tx.frame, now_ms);
                }
            }
        }
    }

    fn expire_to_monitors(&mut self, host: usize, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let out = self.hosts[host].ks.broadcast(&msgs);
        self.monitor_lines(host, out);
    }

    /// Delivers frames until the network is quiet, advancing the virtual
    /// clock to frames that are delayed.
    fn settle(&mut self) {
        self.run_network(None);
    }

    /// Delivers frames as they fall due, advancing the virtual clock to
    /// each, until the network is quiet or (with `until`) the clock would
    /// pass `until`, where it then stands.
    fn run_network(&mut self, until: Option<u64>) {
        for _ in 0..1_000_000 {
            let mut work: Vec<(usize, usize, Vec<u8>)> = Vec::new();
            for l in &mut self.links {
                for f in l.ab.deliver(self.now_ms) {
                    work.push((l.b.0, l.b.1, f));
                }
                for f in l.ba.deliver(self.now_ms) {
                    work.push((l.a.0, l.a.1, f));
                }
            }
            if work.is_empty() {
                let next = self
                    .links
                    .iter()
                    .flat_map(|l| [l.ab.next_due(), l.ba.next_due()])
                    .flatten()
                    .min();
                match (next, until) {
                    (Some(t), Some(u)) if t > u => {
                        self.now_ms = self.now_ms.max(u);
                        return;
                    }
                    (Some(t), _) if t > self.now_ms => {
                        self.now_ms = t;
                        continue;
                    }
                    (Some(_), _) => continue,
                    (None, Some(u)) => {
                        self.now_ms = self.now_ms.max(u);
                        return;
                    }
                    (None, None) => return,
                }
            }
            for (h, i, frame) in work {
                let now = self.now();
                let mut ex = Vec::new();
                let tx = self.hosts[h].input(i, &frame, now, &mut ex);
                self.stamp(h);
                self.flush_host(h);
                self.expire_to_monitors(h, ex);
                self.transmit(h, tx);
            }
        }
    }

    /// Moves what host `h` just received into `arrived`, stamped now.
    fn stamp(&mut self, h: usize) {
        let now = self.now_ms;
        let got = std::mem::take(&mut self.hosts[h].inbox);
        self.arrived[h].extend(got.into_iter().map(|p| (now, p)));
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now_ms.saturating_add(ms);
        // The ager once per virtual second, as the daemon does every tick.
        while self.now_ms < end {
            // With the network quiet only the ager acts, and only at the
            // hosts' next events: skip the passes before them, so that
            // `advance 100000h` is as quick as the events on the way.
            let quiet = self
                .links
                .iter()
                .all(|l| l.ab.next_due().is_none() && l.ba.next_due().is_none());
            if quiet {
                let due_ms = self
                    .hosts
                    .iter()
                    .filter_map(|h| h.ks.sadb().next_event())
                    .min()
                    .map_or(u64::MAX, |t| {
                        t.saturating_sub(self.epoch).saturating_mul(1000)
                    });
                if due_ms > self.now_ms.saturating_add(1000) {
                    let idle = (due_ms.min(end) - self.now_ms - 1) / 1000;
                    self.now_ms += idle * 1000;
                }
            }
            self.now_ms = self.now_ms.saturating_add(1000).min(end);
            let now = self.now();
            for h in 0..self.hosts.len() {
                let out = self.hosts[h].tick(now);
                self.monitor_lines(h, out);
            }
            self.settle();
        }
    }

    fn traffic(
        &mut self,
        from: usize,
        to: IpAddr,
        udp_port: Option<u16>,
        count: u64,
        size: usize,
        interval: u64,
    ) {
        // The source address of the interface the destination is on (or
        // of the first interface of that family, for a gateway's route).
        let h = &self.hosts[from];
        let on_link = h.ifaces.iter().find(|i| i.on_link(to)).and_then(|i| {
            i.addrs
                .iter()
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv4() == to.is_ipv4())
        });
        let src = on_link.or_else(|| {
            h.ifaces
                .iter()
                .flat_map(|i| i.addrs.iter())
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv4() == to.is_ipv4())
        });
        let Some(src) = src else {
            self.say(format!(
                "{}: no address of the family of {to}",
                self.hosts[from].name
            ));
            return;
        };
        let ident = 0x5157;
        // Send times by sequence number; replies matched to them (ICMP
        // sequence, or the datagram's number in its first 8 bytes).
        let mut sent_at: Vec<u64> = Vec::with_capacity(count as usize);
        let mut answered = vec![false; count as usize];
        let (mut received, mut duplicates) = (0u64, 0u64);
        let mut rtts: Vec<u64> = Vec::new();
        for seq in 1..=count {
            let mut payload = vec![(seq & 0xff) as u8; size];
            if udp_port.is_some() && size >= 8 {
                payload[..8].copy_from_slice(&seq.to_be_bytes());
            }
            let pkt = match udp_port {
                None => stack::icmp_echo_request(src, to, ident, seq as u16, &payload),
                Some(p) => stack::udp_datagram(src, to, 40000, p, &payload),
            };
            sent_at.push(self.now_ms);
            let now = self.now();
            let mut ex = Vec::new();
            let tx = self.hosts[from].send(pkt, now, &mut ex);
            self.stamp(from);
            self.flush_host(from);
            self.expire_to_monitors(from, ex);
            self.transmit(from, tx);
            // Packets leave on schedule, `interval` apart, whatever is in
            // flight (interval 0: a burst, all in flight together, so a
            // link can reorder them); after the last, the network settles.
            if seq == count {
                self.settle();
            } else if interval > 0 {
                let next = sent_at[0] + seq * interval;
                self.run_network(Some(next));
            }
            for (at, p) in std::mem::take(&mut self.arrived[from]) {
                let n = match (stack::classify(&p), udp_port) {
                    (
                        Some(Reply::Echo {
                            ident: i, seq: s, ..
                        }),
                        None,
                    ) if i == ident => {
                        // The 16-bit sequence of the newest packet it
                        // can be.
                        let base = seq & !0xffff;
                        let n = base | u64::from(s);
                        Some(if n > seq { n.wrapping_sub(0x10000) } else { n })
                    }
                    (Some(Reply::Udp { sport, tag, .. }), Some(port)) if sport == port => {
                        tag.filter(|_| size >= 8)
                    }
                    _ => None,
                };
                // Datagrams too short to carry a number count as replies.
                let Some(n) = n.or((udp_port.is_some() && size < 8).then_some(0)) else {
                    continue;
                };
                if n == 0 {
                    received += 1;
                    continue;
                }
                let Some(k) = usize::try_from(n - 1).ok().filter(|&k| k < answered.len()) else {
                    continue;
                };
                if answered[k] {
                    duplicates += 1;
                    continue;
                }
                answered[k] = true;
                received += 1;
                rtts.push(at.saturating_sub(sent_at.get(k).copied().unwrap_or(at)));
            }
            self.flush_traces();
        }
        self.last_sent = count;
        self.last_received = received;
        self.last_duplicates = duplicates;
        self.last_rtt = match (rtts.iter().min(), rtts.iter().max()) {
            (Some(&lo), Some(&hi)) => {
                Some((lo, rtts.iter().sum::<u64>() as f64 / rtts.len() as f64, hi))
            }
            _ => None,
        };
        let name = self.hosts[from].name.clone();
        if udp_port == Some(9) {
            self.say(format!(
                "udp {name} -> {to} port 9 (discard): {count} sent, no replies expected"
            ));
            return;
        }
        let what = if udp_port.is_some() {
            "udp echo"
        } else {
            "ping"
        };
        let lost = count.saturating_sub(received);
        let dups = if duplicates > 0 {
            format!(", {duplicates} duplicates")
        } else {
            String::new()
        };
        let rtt = match self.last_rtt {
            Some((lo, avg, hi)) => {
                format!(", round trip min/avg/max {lo}/{avg:.1}/{hi} ms (virtual)")
            }
            None => String::new(),
        };
        self.say(format!(
            "{what} {name} -> {to}: {count} sent, {received} received, {lost} lost{dups}{rtt}"
        ));
    }

    /// Every counter as one JSON document (see [`crate::counters`]).
    pub fn counters_json(&self) -> serde_json::Value {
        serde_json::json!({
            "time_ms": self.now_ms,
            "hosts": self.hosts.iter().map(crate::counters::host).collect::<Vec<_>>(),
            "links": self
                .links
                .iter()
                .map(|l| crate::counters::link(&l.name, l.ab.counters(), l.ba.counters()))
                .collect::<Vec<_>>(),
        })
    }

    fn summary(&mut self) {
        self.say("summary:");
        for i in 0..self.hosts.len() {
            let h = &self.hosts[i];
            let c = &h.counters;
            let mut sa_lines = vec![format!(
                "  {}: sent {}, delivered {}, protected {}, sent in clear {}, verified {}, received in clear {}, forwarded {}, dropped {}, policy drops {}",
                h.name, c.sent, c.delivered, c.protected, c.clear_out, c.verified, c.clear_in, c.forwarded, c.dropped, c.policy_drops
            )];
            for (id, sa) in h.ks.sadb().iter() {
                if let Some(t) = h.engine.transform(id) {
                    let drops: Vec<String> = DropReason::ALL
                        .iter()
                        .filter(|r| t.counters.dropped(**r) > 0)
                        .map(|r| format!("{} {}", r.name(), t.counters.dropped(*r)))
                        .collect();
                    sa_lines.push(format!(
                        "    SA {} spi 0x{:x} {} -> {}: out {} pkts, in {} pkts, {} bytes{}",
                        if sa.satype == sadb::pfkey::satype::ESP {
                            "esp"
                        } else {
                            "ah"
                        },
                        sa.spi,
                        sa.src.ip,
                        sa.dst.ip,
                        t.counters.packets_out,
                        t.counters.packets_in,
                        sa.bytes,
                        if drops.is_empty() {
                            String::new()
                        } else {
                            format!(", drops: {}", drops.join(", "))
                        }
                    ));
                }
            }
            for l in sa_lines {
                self.say(l);
            }
        }
        let mut link_lines = Vec::new();
        for l in &self.links {
            let (ab, ba) = (l.ab.counters(), l.ba.counters());
            link_lines.push(format!(
                "  link {}: {} frames, dropped {}, duplicated {}, reordered {}, delayed {}, corrupted {}",
                l.name,
                ab.sent + ba.sent,
                ab.dropped + ba.dropped,
                ab.duplicated + ba.duplicated,
                ab.reordered + ba.reordered,
                ab.delayed + ba.delayed,
                ab.corrupted + ba.corrupted
            ));
        }
        for line in link_lines {
            self.say(line);
        }
        let caps: Vec<String> = self
            .links
            .iter()
            .filter_map(|l| l.capture.as_ref().map(|(_, p)| p.display().to_string()))
            .collect();
        for c in caps {
            self.say(format!("  capture: {c} (Wireshark keys: {c}.esp_sa)"));
        }
    }

    fn expect(&mut self, words: &[&str]) -> Result<(), String> {
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("expected a number, not {s}"))
        };
        let (what, got, want) = match words {
            ["received", n] => ("received", self.last_received, num(n)?),
            ["lost", n] => (
                "lost",
                self.last_sent.saturating_sub(self.last_received),
                num(n)?,
            ),
            ["duplicates", n] => ("duplicates", self.last_duplicates, num(n)?),
            ["expires", host, n] => ("EXPIRE messages", self.expires[self.host(host)?], num(n)?),
            ["drops", host, reason, n] => {
                let r = DropReason::ALL
                    .iter()
                    .copied()
                    .find(|r| r.name().replace(' ', "-") == *reason)
                    .ok_or_else(|| format!("unknown drop reason {reason}"))?;
                ("drops", self.hosts[self.host(host)?].drops(r), num(n)?)
            }
            ["counter", host, field, n] => {
                let c = &self.hosts[self.host(host)?].counters;
                let v = match *field {
                    "sent" => c.sent,
                    "delivered" => c.delivered,
                    "protected" => c.protected,
                    "clear_out" => c.clear_out,
                    "verified" => c.verified,
                    "clear_in" => c.clear_in,
                    "forwarded" => c.forwarded,
                    "dropped" => c.dropped,
                    "policy_drops" => c.policy_drops,
                    f => return Err(format!("unknown counter {f}")),
                };
                ("counter", v, num(n)?)
            }
            ["sa-count", host, n] => (
                "SAs",
                self.hosts[self.host(host)?].ks.sadb().len() as u64,
                num(n)?,
            ),
            ["link", name, field, n] => {
                let l = self
                    .links
                    .iter()
                    .find(|l| l.name == *name)
                    .ok_or_else(|| format!("no link {name}"))?;
                let (a, b) = (l.ab.counters(), l.ba.counters());
                let v = match *field {
                    "sent" => a.sent + b.sent,
                    "delivered" => a.delivered + b.delivered,
                    "dropped" => a.dropped + b.dropped,
                    "duplicated" => a.duplicated + b.duplicated,
                    "reordered" => a.reordered + b.reordered,
                    "delayed" => a.delayed + b.delayed,
                    "corrupted" => a.corrupted + b.corrupted,
                    f => return Err(format!("unknown link counter {f}")),
                };
                ("link counter", v, num(n)?)
            }
            _ => return Err(format!("unknown expectation: {}", words.join(" "))),
        };
        if got != want {
            return Err(format!(
                "expected {what} {want}, got {got} ({})",
                words.join(" ")
            ));
        }
        self.say(format!("ok: {}", words.join(" ")));
        Ok(())
    }
}

fn parse_addrs(spec: &str) -> Result<Vec<(IpAddr, u8)>, String> {
    spec.split(',')
        .map(|a| {
            let (ip, p) = a
                .split_once('/')
                .ok_or_else(|| format!("{a}: needs /prefix"))?;
            let ip: IpAddr = ip.parse().map_err(|_| format!("{ip}: not an address"))?;
            let p: u8 = p.parse().map_err(|_| format!("{p}: not a prefix length"))?;
            Ok((ip, p))
        })
        .collect()
}

/// Runs a lab script. `dir` is where relative files (captures) go.
pub fn run(
    script: &str,
    dir: &Path,
    loader: &mut dyn KeyLoader,
    trace: bool,
) -> Result<String, (String, LabError)> {
    let opts = RunOpts {
        trace,
        ..RunOpts::default()
    };
    run_with(script, dir, loader, &opts)
}

/// Runs a lab script as [`run`] does, served and echoed as `opts` say.
pub fn run_with(
    script: &str,
    dir: &Path,
    loader: &mut dyn KeyLoader,
    opts: &RunOpts,
) -> Result<String, (String, LabError)> {
    let trace = opts.trace;
    let epoch = 1_700_000_000;
    let mut lab = Lab::new(dir, epoch);
    lab.echo = opts.echo;
    if let Some(d) = &opts.serve {
        let setup = || -> std::io::Result<Serving> {
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(d)?;
            Ok(Serving {
                dir: d.clone(),
                listeners: Vec::new(),
                paths: Vec::new(),
                server: Server::new(&DaemonConfig::new(d.join("lab.sock"))),
                wake: signal_wakeup()?,
                stopped: false,
                input: Vec::new(),
                eof: false,
            })
        };
        match setup() {
            Ok(sv) => lab.serving = Some(sv),
            Err(e) => {
                let msg = format!("cannot serve sockets in {}: {e}", d.display());
                return Err((String::new(), LabError { line: 0, msg }));
            }
        }
    }
    let r = run_script(&mut lab, script, loader, trace);
    if let Some(p) = &opts.counters_json {
        let text = format!("{:#}\n", lab.counters_json());
        if let Err(e) = std::fs::write(p, text) {
            let msg = format!("{}: {e}", p.display());
            return Err((lab.report.clone(), LabError { line: 0, msg }));
        }
    }
    match r {
        Ok(()) => Ok(lab.report.clone()),
        Err(e) => Err((lab.report.clone(), e)),
    }
}

fn run_script(
    lab: &mut Lab,
    script: &str,
    loader: &mut dyn KeyLoader,
    trace: bool,
) -> Result<(), LabError> {
    let mut lines = script.lines().enumerate().peekable();
    while let Some((n, raw)) = lines.next() {
        let line_no = n + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        let Some(&cmd) = words.first() else { continue };
        if cmd.starts_with('#') {
            continue;
        }
        // A keys or policy block runs to its "end" line.
        let mut block = String::new();
        if cmd == "keys" || cmd == "policy" {
            for (_, l) in lines.by_ref() {
                if l.trim() == "end" {
                    break;
                }
                block.push_str(l);
                block.push('\n');
            }
        }
        if cmd == "pause" {
            let text = raw.trim_start().trim_start_matches("pause").trim();
            if let Err(msg) = lab.pause(text) {
                return Err(LabError { line: line_no, msg });
            }
            continue;
        }
        if let Err(msg) = exec(lab, loader, trace, &words, raw, &block) {
            return Err(LabError { line: line_no, msg });
        }
        lab.pump(Duration::ZERO);
        if lab.serving.as_ref().is_some_and(|sv| sv.stopped) {
            let msg = "interrupted (SIGINT or SIGTERM)".to_string();
            return Err(LabError { line: line_no, msg });
        }
    }
    // Keys for Wireshark next to every capture (0600: they hold keys).
    let caps: Vec<PathBuf> = lab
        .links
        .iter()
        .filter_map(|l| l.capture.as_ref().map(|(_, p)| p.clone()))
        .collect();
    for c in caps {
        let mut text = String::new();
        for line in esp_sa_file(
            lab.hosts
                .iter()
                .flat_map(|h| h.ks.sadb().iter().map(|(_, sa)| sa)),
        )
        .lines()
        {
            // Both ends hold the same SAs: list each once.
            if !text.lines().any(|l| l == line) {
                text.push_str(line);
                text.push('\n');
            }
        }
        let path = PathBuf::from(format!("{}.esp_sa", c.display()));
        let mut opts = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let written = opts
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = written {
            let msg = format!("Wireshark key file {}: {e}", path.display());
            return Err(LabError { line: 0, msg });
        }
    }
    lab.summary();
    if lab.serving.is_some() {
        let failed = lab.interact(loader, trace);
        if failed > 0 {
            let msg = format!("{failed} command(s) typed after the script failed");
            return Err(LabError { line: 0, msg });
        }
    }
    Ok(())
}

impl Lab {
    /// After a served lab's script: further lab commands from standard
    /// input (a `keys` or `policy` block runs to its `end` line), each
    /// error reported without ending the lab, until end of input, `quit`,
    /// SIGINT or SIGTERM. The hosts' sockets are served throughout.
    /// Returns how many commands failed.
    fn interact(&mut self, loader: &mut dyn KeyLoader, trace: bool) -> usize {
        let mut failed = 0;
        self.say("lab script done; the hosts' PF_KEY sockets are still served.");
        self.say("Type lab commands (ping, udp, advance, expect, trace, keys ... end), or quit.");
        while let Some(raw) = self.read_line() {
            let words: Vec<&str> = raw.split_whitespace().collect();
            let Some(&cmd) = words.first() else { continue };
            if cmd.starts_with('#') {
                continue;
            }
            if cmd == "quit" || cmd == "exit" {
                break;
            }
            let mut block = String::new();
            if cmd == "keys" || cmd == "policy" {
                while let Some(l) = self.read_line() {
                    if l.trim() == "end" {
                        break;
                    }
                    block.push_str(&l);
                    block.push('\n');
                }
            }
            let r = match cmd {
                "pause" => Ok(()),
                "summary" => {
                    self.summary();
                    Ok(())
                }
                _ => exec(self, loader, trace, &words, &raw, &block),
            };
            if let Err(e) = r {
                failed += 1;
                self.say(format!("error: {e}"));
            }
            self.pump(Duration::ZERO);
        }
        self.say("lab stopped");
        failed
    }
}

/// Runs one lab command (`words`, from the line `raw`; `block` holds the
/// lines of a `keys` or `policy` block). A capture that could not be
/// written while it ran fails the command, so the error has its line.
fn exec(
    lab: &mut Lab,
    loader: &mut dyn KeyLoader,
    trace: bool,
    words: &[&str],
    raw: &str,
    block: &str,
) -> Result<(), String> {
    let r = exec_command(lab, loader, trace, words, raw, block);
    let mut failed = None;
    for l in &mut lab.links {
        if let Some((c, p)) = l.capture.as_mut() {
            if let Err(e) = c.flush() {
                l.capture_error
                    .get_or_insert_with(|| format!("capture {}: {e}", p.display()));
            }
        }
        if let Some(e) = l.capture_error.take() {
            // Stop writing a broken capture; the error is told once.
            l.capture = None;
            failed.get_or_insert(e);
        }
    }
    r.and(failed.map_or(Ok(()), Err))
}

fn exec_command(
    lab: &mut Lab,
    loader: &mut dyn KeyLoader,
    trace: bool,
    words: &[&str],
    raw: &str,
    block: &str,
) -> Result<(), String> {
    let Some(&cmd) = words.first() else {
        return Ok(());
    };
    match cmd {
        "host" => {
            let name = words.get(1).ok_or("host needs a name")?;
            let cfg = Config {
                jitter: Jitter::Off,
                ..Config::default()
            };
            let mut h = Host::new(name, cfg);
            h.tracing = trace;
            let mut i = 2;
            while i < words.len() {
                match words[i] {
                    "forward" => h.forwarding = true,
                    "gateway" => {
                        i += 1;
                        h.gateway = Some(
                            words
                                .get(i)
                                .and_then(|g| g.parse().ok())
                                .ok_or("gateway needs an address")?,
                        );
                    }
                    "esn" => h.sa_options.esn = true,
                    "nat" => {
                        i += 1;
                        let ip = words
                            .get(i)
                            .and_then(|g| g.parse().ok())
                            .ok_or("nat needs the outside IPv4 address")?;
                        h.nat = Some(crate::nat::Nat::new(ip));
                        h.forwarding = true;
                    }
                    w => return Err(format!("unknown host option {w}")),
                }
                i += 1;
            }
            let mon = h.ks.open();
            let key = h.ks.open();
            lab.monitors.push(mon);
            lab.keysocks.push(key);
            lab.expires.push(0);
            lab.arrived.push(Vec::new());
            lab.hosts.push(h);
            lab.serve_host(name)?;
        }
        "link" => {
            let [_, name, a, b, faults @ ..] = words else {
                return Err("link NAME HOST:ADDR/P HOST:ADDR/P [faults]".into());
            };
            let faults = Faults::parse(faults)?;
            let mut ends = Vec::new();
            for spec in [a, b] {
                let (h, addrs) = spec
                    .split_once(':')
                    .ok_or_else(|| format!("{spec}: HOST:ADDR/P"))?;
                let hi = lab.host(h)?;
                let mac = Iface::mac_for((lab.links.len() * 2 + ends.len() + 1) as u16);
                let iface = Iface::new(&format!("{name}-{h}"), mac, parse_addrs(addrs)?);
                let ii = lab.hosts[hi].add_iface(iface);
                ends.push((hi, ii));
            }
            let mut back = faults.clone();
            back.seed = faults.seed.wrapping_add(1);
            lab.links.push(LinkState {
                name: name.to_string(),
                a: ends[0],
                b: ends[1],
                ab: Pipe::new(faults),
                ba: Pipe::new(back),
                capture: None,
                capture_error: None,
                tamper: None,
            });
        }
        "keys" => {
            let hi = lab.host(words.get(1).ok_or("keys HOST [may-fail]")?)?;
            // `may-fail`: refusals are part of the lesson, not an error.
            let may_fail = words.get(2) == Some(&"may-fail");
            let now = lab.now();
            let sock = lab.keysocks[hi];
            match loader.load(&mut lab.hosts[hi], sock, block, now) {
                Ok(out) if !out.is_empty() => lab.say(out.trim_end()),
                Ok(_) => {}
                Err(e) if may_fail => lab.say(e.trim_end()),
                Err(e) => return Err(e),
            }
        }
        "policy" => {
            let hi = lab.host(words.get(1).ok_or("policy HOST")?)?;
            lab.hosts[hi].policy = crate::policy::parse(block)?;
        }
        "trace" => {
            let on = words.get(1) == Some(&"on");
            for h in &mut lab.hosts {
                h.tracing = on || trace;
            }
        }
        "ping" | "udp" => {
            let from = lab.host(words.get(1).ok_or("ping FROM TO")?)?;
            let to: IpAddr = words
                .get(2)
                .and_then(|t| t.parse().ok())
                .ok_or("ping FROM TO-ADDRESS")?;
            let mut i = 3;
            let port = if cmd == "udp" {
                i += 1;
                Some(
                    words
                        .get(3)
                        .and_then(|p| p.parse().ok())
                        .ok_or("udp FROM TO PORT")?,
                )
            } else {
                None
            };
            let (mut count, mut size, mut interval) = (1u64, 56usize, 1000u64);
            while i + 1 < words.len() {
                let v = words[i + 1];
                match words[i] {
                    "count" => {
                        count = v
                            .parse()
                            .ok()
                            .filter(|c| (1..=MAX_COUNT).contains(c))
                            .ok_or(format!("count N: 1 to {MAX_COUNT}"))?
                    }
                    "size" => size = v.parse().map_err(|_| "size BYTES")?,
                    "interval" => {
                        interval = duration_ms(v).ok_or("interval DURATION (at most 87600h)")?
                    }
                    "rate" => {
                        // Packets per second on the virtual clock.
                        let r: u64 = v
                            .parse()
                            .ok()
                            .filter(|r| (1..=1000).contains(r))
                            .ok_or("rate N: packets per second, 1 to 1000")?;
                        interval = 1000 / r;
                    }
                    w => return Err(format!("unknown {cmd} option {w}")),
                }
                i += 2;
            }
            if let Some(w) = words.get(i) {
                return Err(format!("{cmd} option {w} needs a value"));
            }
            // The payload must fit one IP packet (the total length of
            // IPv4, the payload length of IPv6), with its 8-byte ICMP or
            // UDP header.
            let max = if to.is_ipv4() {
                65_535 - 20 - 8
            } else {
                65_535 - 8
            };
            if size > max {
                return Err(format!(
                    "size {size}: at most {max} bytes fit one {} packet",
                    if to.is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
            lab.traffic(from, to, port, count, size, interval);
        }
        "advance" => {
            let ms = words
                .get(1)
                .and_then(|d| duration_ms(d))
                .ok_or("advance DURATION (e.g. 30s, 8h; at most 87600h)")?;
            lab.say(format!("advance {}", words[1]));
            lab.advance(ms);
            lab.flush_traces();
        }
        "capture" => {
            let name = words.get(1).ok_or("capture LINK FILE")?;
            let file = lab.dir.join(words.get(2).ok_or("capture LINK FILE")?);
            let cap = Capture::create(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let l = lab
                .links
                .iter_mut()
                .find(|l| l.name == *name)
                .ok_or_else(|| format!("no link {name}"))?;
            l.capture = Some((cap, file));
        }
        "tamper" => {
            let [_, name, field, value, rest @ ..] = words else {
                return Err("tamper LINK FIELD VALUE [count N] (FIELD: ttl, tos, src, dst)".into());
            };
            if !matches!(*field, "ttl" | "tos" | "src" | "dst") {
                return Err(format!("cannot tamper with {field}: ttl, tos, src or dst"));
            }
            let left = match rest {
                ["count", n] => n.parse().map_err(|_| "count N")?,
                [] => 1,
                _ => return Err("tamper LINK FIELD VALUE [count N]".into()),
            };
            let l = lab
                .links
                .iter_mut()
                .find(|l| l.name == *name)
                .ok_or_else(|| format!("no link {name}"))?;
            l.tamper = Some(Tamper {
                field: field.to_string(),
                value: value.to_string(),
                left,
                done: 0,
            });
        }
        "expect" => lab.expect(&words[1..])?,
        "counters" => match words.get(1) {
            None => lab.summary(),
            Some(&"json") => {
                let j = lab.counters_json().to_string();
                lab.say(j);
            }
            Some(w) => return Err(format!("counters [json], not {w}")),
        },
        "say" => {
            let text = raw.trim_start().trim_start_matches("say").trim();
            lab.say(text);
        }
        w => return Err(format!("unknown lab command {w}")),
    }
    Ok(())
}
