//! A simulated host: its SADB and PF_KEY sockets, its ESP/AH engine, its
//! interfaces, and the path of every packet through them, in words when
//! tracing (issue 5: "Hosts and links", "Security policy").

use std::net::IpAddr;

use esp_ah::{DropReason, Engine, PacketBuf, SaOptions, Verdict};
use sadb::pfkey::{satype, Message, SaState};
use sadb::{Config, Now, Sa, SaId};

use crate::keysock::{Keysock, Outgoing, SockId};
use crate::stack::{self, Iface};

/// What happened to a host's packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// IP packets the host's applications and services sent.
    pub sent: u64,
    /// IP packets delivered to the host's applications and services.
    pub delivered: u64,
    /// Packets that left protected by ESP and/or AH.
    pub protected: u64,
    /// Packets that left in clear text (no SA matched).
    pub clear_out: u64,
    /// Protected packets that verified and were opened.
    pub verified: u64,
    /// Clear-text packets received.
    pub clear_in: u64,
    /// Packets forwarded (gateways).
    pub forwarded: u64,
    /// Packets the engine dropped (details in the SAs' counters).
    pub dropped: u64,
    /// Packets with no route.
    pub no_route: u64,
    /// Packets dropped by security policy (a `drop` rule, an `ipsec` rule
    /// without an SA, or clear text where policy wants IPsec).
    pub policy_drops: u64,
}

/// A frame to put on the link attached to interface `iface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub iface: usize,
    pub frame: Vec<u8>,
}

/// One simulated host.
pub struct Host {
    pub name: String,
    pub ks: Keysock,
    pub engine: Engine,
    pub ifaces: Vec<Iface>,
    /// Next hop for destinations no interface is on-link for.
    pub gateway: Option<IpAddr>,
    /// Next hop for IPv6 destinations when `gateway` is IPv4 (and the
    /// other way round): a host may have one of each family.
    pub gateway_other: Option<IpAddr>,
    /// Forward packets addressed to others (a gateway).
    pub forwarding: bool,
    /// SA options the SADB does not carry (ESN).
    pub sa_options: SaOptions,
    /// Security policy rules (empty: protect when an SA matches).
    pub policy: Vec<crate::policy::Rule>,
    /// NAPT for packets forwarded out of `nat_outside` (lab 7).
    pub nat: Option<crate::nat::Nat>,
    pub counters: HostCounters,
    /// Trace lines, when `tracing`.
    pub tracing: bool,
    pub trace: Vec<String>,
    /// Packets delivered to the host, for the traffic generator.
    pub inbox: Vec<Vec<u8>>,
    /// PF_KEY messages for sockets its owner does not read itself (clients
    /// of a served lab), waiting to be delivered or discarded.
    pub outbox: Vec<Outgoing>,
}

impl Host {
    pub fn new(name: &str, cfg: Config) -> Host {
        Host {
            name: name.to_string(),
            ks: Keysock::new(cfg),
            engine: Engine::new(),
            ifaces: Vec::new(),
            gateway: None,
            gateway_other: None,
            forwarding: false,
            sa_options: SaOptions::default(),
            policy: Vec::new(),
            nat: None,
            counters: HostCounters::default(),
            tracing: false,
            trace: Vec::new(),
            inbox: Vec::new(),
            outbox: Vec::new(),
        }
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let l = line();
            self.trace.push(format!("{}: {l}", self.name));
        }
    }

    /// Adds an interface; its addresses become this host's own.
    pub fn add_iface(&mut self, iface: Iface) -> usize {
        for (a, _) in &iface.addrs {
            self.ks.sadb_mut().add_local_addr(*a);
        }
        self.ifaces.push(iface);
        self.ifaces.len() - 1
    }

    pub fn owns(&self, ip: IpAddr) -> bool {
        self.ifaces.iter().any(|i| i.owns(ip))
    }

    /// A PF_KEY write on socket `sock`; the engine picks up changed SAs.
    pub fn pfkey(&mut self, sock: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        let out = self.ks.write(sock, bytes, now);
        self.engine.sync(self.ks.sadb(), self.sa_options);
        out
    }

    /// The ager; EXPIREs go to every socket of this host.
    pub fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        let out = self.ks.tick(now);
        for o in &out {
            if let Ok(m) = Message::parse(&o.bytes, sadb::pfkey::Dialect::Illumos) {
                self.log(|| format!("EXPIRE spi 0x{:x}", m.sa().map(|s| s.spi).unwrap_or(0)));
            }
        }
        out
    }

    /// The interface and next hop for `dst`: on-link, else the gateway.
    pub fn route(&self, dst: IpAddr) -> Option<(usize, IpAddr)> {
        if let Some(i) = self.ifaces.iter().position(|i| i.on_link(dst)) {
            return Some((i, dst));
        }
        let gw = [self.gateway, self.gateway_other]
            .into_iter()
            .flatten()
            .find(|g| g.is_ipv4() == dst.to_canonical().is_ipv4())?;
        self.ifaces
            .iter()
            .position(|i| i.on_link(gw))
            .map(|i| (i, gw))
    }

    /// The outbound SAs that protect a packet from `src` to `dst` with
    /// upper-layer protocol `proto`: (ESP, AH), either may be absent.
    pub fn select(&self, src: IpAddr, dst: IpAddr, proto: u8) -> (Option<SaId>, Option<SaId>) {
        let mut esp = None;
        let mut ah = None;
        for (id, sa) in self.ks.sadb().iter() {
            if !sa.in_outbound
                || !matches!(sa.state, SaState::Mature | SaState::Dying)
                || !matches_sa(sa, src, dst, proto)
            {
                continue;
            }
            let slot = if sa.satype == satype::ESP {
                &mut esp
            } else {
                &mut ah
            };
            // Prefer a mature SA over a dying one.
            if slot.is_none() || sa.state == SaState::Mature {
                *slot = Some(id);
            }
        }
        (esp, ah)
    }

    /// Sends an IP packet this host originates (or forwards): protected by
    /// the matching outbound SAs (ESP inside AH), or in clear text.
    pub fn output(&mut self, packet: Vec<u8>, now: Now, expires: &mut Vec<Message>) -> Vec<Tx> {
        let Some(l) = esp_ah::packet::layout(&packet) else {
            self.counters.dropped += 1;
            return Vec::new();
        };
        let desc = stack::describe(&packet);
        let rule = crate::policy::lookup(&self.policy, &packet, true).map(|r| (r.action, r.line));
        let (esp, ah) = match rule {
            Some((crate::policy::Action::Bypass, _)) => (None, None),
            Some((crate::policy::Action::Drop, n)) => {
                self.counters.policy_drops += 1;
                self.log(|| format!("out {desc}: dropped by policy (rule on line {n})"));
                return Vec::new();
            }
            _ => self.select(l.src, l.dst, l.next),
        };
        if let Some((crate::policy::Action::Ipsec, n)) = rule {
            if esp.is_none() && ah.is_none() {
                self.counters.policy_drops += 1;
                self.log(|| {
                    format!(
                        "out {desc}: policy (line {n}) requires IPsec and no SA matches: dropped"
                    )
                });
                return Vec::new();
            }
        }
        let mut buf =
            vec![0u8; packet.len() + 2 * (esp_ah::packet::HEADROOM + esp_ah::packet::TAILROOM)];
        let Some(mut p) = PacketBuf::new(&mut buf, 2 * esp_ah::packet::HEADROOM, packet.len())
        else {
            return Vec::new();
        };
        p.data_mut().copy_from_slice(&packet);
        let mut applied = Vec::new();
        for id in [esp, ah].into_iter().flatten() {
            let spi = self.ks.sadb().sa(id).map(|s| s.spi).unwrap_or(0);
            let db = self.ks.sadb_mut();
            match self.engine.outbound(db, id, &mut p, now, expires) {
                Verdict::Send => applied.push(format!("spi 0x{spi:x}")),
                v => {
                    self.counters.dropped += 1;
                    self.log(|| format!("out {desc}: dropped by SA 0x{spi:x}: {v:?}"));
                    return Vec::new();
                }
            }
        }
        if applied.is_empty() {
            self.counters.clear_out += 1;
        } else {
            self.counters.protected += 1;
        }
        let wire = p.data().to_vec();
        let wl = esp_ah::packet::layout(&wire);
        let Some((iface, hop)) = wl.and_then(|w| self.route(w.dst)) else {
            self.counters.no_route += 1;
            self.log(|| format!("out {desc}: no route"));
            return Vec::new();
        };
        self.log(|| {
            if applied.is_empty() {
                format!("out {desc}: no SA, sent in clear")
            } else {
                format!(
                    "out {desc}: protected by {} -> {}",
                    applied.join(" then "),
                    stack::describe(&wire)
                )
            }
        });
        self.ifaces[iface]
            .output(wire, hop)
            .into_iter()
            .map(|frame| Tx { iface, frame })
            .collect()
    }

    /// Sends an application packet (ping, traffic generator).
    pub fn send(&mut self, packet: Vec<u8>, now: Now, expires: &mut Vec<Message>) -> Vec<Tx> {
        self.counters.sent += 1;
        self.output(packet, now, expires)
    }

    /// A frame arrived on interface `iface`.
    pub fn input(
        &mut self,
        iface: usize,
        frame: &[u8],
        now: Now,
        expires: &mut Vec<Message>,
    ) -> Vec<Tx> {
        let Some(ifc) = self.ifaces.get_mut(iface) else {
            return Vec::new();
        };
        let (frames, packets) = ifc.input(frame);
        let mut out: Vec<Tx> = frames
            .into_iter()
            .map(|frame| Tx { iface, frame })
            .collect();
        for pkt in packets {
            out.extend(self.receive(pkt, now, expires));
        }
        out
    }

    fn receive(&mut self, packet: Vec<u8>, now: Now, expires: &mut Vec<Message>) -> Vec<Tx> {
        let desc = stack::describe(&packet);
        let mut packet = packet;
        // NAT first: answers to a mapping go back to the inside host.
        if let Some(nat) = self.nat.as_mut() {
            if nat.inbound(&mut packet) {
                let d = stack::describe(&packet);
                self.log(|| format!("nat in {desc} -> {d}"));
            }
        }
        // A router forwards what is not for it, IPsec or not.
        if let Some(l) = esp_ah::packet::layout(&packet) {
            if !self.owns(l.dst) {
                return self.forward(packet, now, expires);
            }
        }
        let mut buf = vec![0u8; packet.len() + esp_ah::packet::HEADROOM];
        let Some(mut p) = PacketBuf::new(&mut buf, 0, packet.len()) else {
            return Vec::new();
        };
        p.data_mut().copy_from_slice(&packet);
        let mut opened = 0;
        // AH outside ESP: open layers until clear text.
        for _ in 0..4 {
            let db = self.ks.sadb_mut();
            match self.engine.inbound(db, &mut p, now, expires) {
                Verdict::Deliver => opened += 1,
                Verdict::NotIpsec => break,
                Verdict::Drop(DropReason::Keepalive) | Verdict::Drop(DropReason::Dummy) => {
                    return Vec::new()
                }
                v => {
                    self.counters.dropped += 1;
                    self.log(|| format!("in {desc}: dropped: {v:?}"));
                    return Vec::new();
                }
            }
        }
        let clear = p.data().to_vec();
        if opened > 0 {
            self.counters.verified += 1;
            self.log(|| format!("in {desc}: verified -> {}", stack::describe(&clear)));
        } else {
            self.counters.clear_in += 1;
        }
        let Some(l) = esp_ah::packet::layout(&clear) else {
            return Vec::new();
        };
        if !self.owns(l.dst) {
            // A tunnel's inner packet, for a host behind this gateway.
            return self.forward(clear, now, expires);
        }
        if opened == 0 {
            match crate::policy::lookup(&self.policy, &clear, false).map(|r| (r.action, r.line)) {
                Some((crate::policy::Action::Ipsec, n))
                | Some((crate::policy::Action::Drop, n)) => {
                    self.counters.policy_drops += 1;
                    self.log(|| {
                        format!("in {desc}: clear text refused by policy (rule on line {n})")
                    });
                    return Vec::new();
                }
                _ => self.log(|| format!("in {desc}: clear text")),
            }
        }
        self.counters.delivered += 1;
        let reply = stack::service(&clear);
        self.inbox.push(clear);
        match reply {
            Some(r) => {
                self.counters.sent += 1;
                self.output(r, now, expires)
            }
            None => Vec::new(),
        }
    }

    /// Forwards a packet that is not for this host (gateways, the NAT box);
    /// other hosts drop it.
    fn forward(&mut self, packet: Vec<u8>, now: Now, expires: &mut Vec<Message>) -> Vec<Tx> {
        if !self.forwarding {
            return Vec::new();
        }
        let Some(l) = esp_ah::packet::layout(&packet) else {
            return Vec::new();
        };
        self.counters.forwarded += 1;
        let mut packet = packet;
        // NAT: packets leaving through the outside interface get the public address.
        let outside = self.nat.as_ref().map(|n| IpAddr::V4(n.outside));
        if let (Some(out_ip), Some(nat)) = (outside, self.nat.as_mut()) {
            let leaves_outside = self
                .ifaces
                .iter()
                .any(|i| i.owns(out_ip) && i.on_link(l.dst));
            if leaves_outside
                && !self.ifaces.iter().any(|i| i.owns(l.src))
                && nat.outbound(&mut packet)
            {
                let d = stack::describe(&packet);
                self.log(|| format!("nat out -> {d}"));
            }
        }
        self.log(|| format!("forward {}", stack::describe(&packet)));
        self.output(packet, now, expires)
    }

    /// Drops of every SA of this host for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        let per_sa: u64 = self
            .ks
            .sadb()
            .iter()
            .filter_map(|(id, _)| self.engine.transform(id))
            .map(|t| t.counters.dropped(reason))
            .sum();
        per_sa + self.engine.global.drops[reason as usize]
    }
}

/// Whether SA `sa` protects a packet src -> dst (selectors of RFC 4301 4.4.2,
/// as far as an SADB entry carries them).
fn matches_sa(sa: &Sa, src: IpAddr, dst: IpAddr, proto: u8) -> bool {
    let (src, dst) = (src.to_canonical(), dst.to_canonical());
    if let (Some(is), Some(id)) = (sa.inner_src, sa.inner_dst) {
        let sel = |s: &sadb::sa::InnerSelector, a: IpAddr| {
            esp_ah::transform::Selector {
                ip: s.ip,
                prefix_len: s.prefix_len,
            }
            .contains(a)
        };
        return sel(&is, src) && sel(&id, dst) && (sa.inner_proto == 0 || sa.inner_proto == proto);
    }
    sa.dst.ip == dst
        && (sa.src.ip.is_unspecified() || sa.src.ip == src)
        && (sa.proto == 0 || sa.proto == proto)
}

/// A host answers PF_KEY sockets like a kernel: `sim lab --serve` hands
/// each host's socket to the same server `sadbd` uses.
impl crate::daemon::Service for Host {
    fn open(&mut self) -> SockId {
        self.ks.open()
    }
    fn close(&mut self, sock: SockId) {
        self.ks.close(sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        // Clients may ask the time (ipseckey prints times against it); the
        // lab's owner alone moves it.
        if let Some(secs) = crate::vclock::decode(bytes) {
            let (seq, pid) = crate::vclock::seq_pid(bytes);
            let bytes = if secs == 0 {
                crate::vclock::encode(now, seq, pid)
            } else {
                crate::vclock::refusal(now, seq, pid)
            };
            return vec![Outgoing { to: from, bytes }];
        }
        self.pfkey(from, bytes, now)
    }
    fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        Host::tick(self, now)
    }
}
