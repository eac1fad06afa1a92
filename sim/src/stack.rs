//! The minimal IP stack of a simulated host on an Ethernet link, sans-IO:
//! frames and packets go in and out as byte vectors, nothing here owns a
//! socket, a clock or a thread.
//!
//! [`Iface`] is one Ethernet interface: it filters frames by destination
//! MAC, answers and learns ARP (RFC 826) and IPv6 neighbour discovery
//! (RFC 4861: NS/NA with link-layer address options), queues packets
//! waiting for resolution and hands IP packets up whole. [`service`] is
//! what a host answers (ICMP/ICMPv6 echo, UDP echo on port 7, discard on
//! port 9); [`icmp_echo_request`] and [`udp_datagram`] build the traffic
//! generator's packets, [`classify`] recognises its replies and
//! [`describe`] renders any IP packet as one line for traces.
//!
//! Headers and checksums are built with `etherparse`; received checksums
//! are verified the RFC 1071 way (the one's complement sum over the data,
//! checksum field included, must be all ones).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::checksum::Sum16BitWords;
use etherparse::{
    EtherType, Ethernet2Header, Icmpv6Type, Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder,
    UdpSlice,
};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Packets queued per unresolved neighbour; the oldest is dropped beyond.
const QUEUE_LIMIT: usize = 16;
/// Neighbours with packets waiting at once; packets for more are dropped.
const MAX_PENDING: usize = 1024;
/// Neighbour cache entries; new neighbours beyond are not remembered.
const MAX_NEIGHBOURS: usize = 4096;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const BROADCAST: Mac = [0xff; 6];
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

const PROTO_ICMP: u8 = 1;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_ESP: u8 = 50;
const PROTO_AH: u8 = 51;
const PROTO_ICMPV6: u8 = 58;

const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;

const PORT_ECHO: u16 = 7;
const PORT_IKE: u16 = 500;
const PORT_NATT: u16 = 4500;
/// Source ports the echo service never answers: replying to another echo,
/// discard, daytime, chargen or time service would loop between hosts.
const ECHO_REFUSED_SPORTS: [u16; 6] = [0, 7, 9, 13, 19, 37];

const TTL: u8 = 64;
/// Nesting the describer follows (AH, IP-in-IP) before it stops.
const DESCRIBE_DEPTH: usize = 4;

/// One Ethernet interface of a simulated host.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub mac: Mac,
    pub addrs: Vec<(IpAddr, u8)>,
    /// Prefixes this interface answers ARP and neighbour solicitations
    /// for on behalf of hosts behind it (proxy ARP/ND, RFC 1027; RFC 4861
    /// 7.2.8), never for an address of the asker.
    pub proxy: Vec<(IpAddr, u8)>,
    /// Resolved neighbours (keys canonical: IPv4-mapped IPv6 as IPv4).
    neighbours: BTreeMap<IpAddr, Mac>,
    /// Packets waiting for a neighbour's MAC, oldest first.
    pending: BTreeMap<IpAddr, VecDeque<Vec<u8>>>,
    counters: IfaceCounters,
}

/// What an interface saw and did. The ARP and ND counters count messages
/// of that kind both sent and received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    /// Frames handed to [`Iface::input`].
    pub frames_in: u64,
    /// Frames returned for transmission by [`Iface::input`] and [`Iface::output`].
    pub frames_out: u64,
    /// ARP requests sent and received.
    pub arp_requests: u64,
    /// ARP replies sent and received.
    pub arp_replies: u64,
    /// Neighbour solicitations sent and received.
    pub nd_solicits: u64,
    /// Neighbour advertisements sent and received.
    pub nd_adverts: u64,
    /// Packets dropped while waiting for resolution (queue overflow, no next hop).
    pub unresolved_drops: u64,
}

impl Iface {
    pub fn new(name: &str, mac: Mac, addrs: Vec<(IpAddr, u8)>) -> Iface {
        Iface {
            name: name.to_string(),
            mac,
            addrs,
            proxy: Vec::new(),
            neighbours: BTreeMap::new(),
            pending: BTreeMap::new(),
            counters: IfaceCounters::default(),
        }
    }

    /// A locally administered MAC derived from a small number (02:00:00:00:HH:LL).
    pub fn mac_for(n: u16) -> Mac {
        let [hi, lo] = n.to_be_bytes();
        [0x02, 0, 0, 0, hi, lo]
    }

    /// Whether `ip` is one of this interface's addresses (IPv4-mapped IPv6
    /// compared as IPv4).
    pub fn owns(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.addrs
            .iter()
            .any(|&(a, p)| canonical_prefix(a, p).0 == ip)
    }

    /// Whether `ip` is inside one of the addresses' prefixes.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.addrs.iter().any(|&(a, p)| {
            let (a, p) = canonical_prefix(a, p);
            in_prefix(a, p, ip)
        })
    }

    /// Whether this interface answers for `ip` on behalf of another host.
    pub fn proxies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !self.owns(ip)
            && self.proxy.iter().any(|&(a, p)| {
                let (a, p) = canonical_prefix(a, p);
                in_prefix(a, p, ip)
            })
    }

    /// The MAC learned for `ip`, if any.
    pub fn neighbour(&self, ip: IpAddr) -> Option<Mac> {
        self.neighbours.get(&ip.to_canonical()).copied()
    }

    /// An Ethernet frame arrived from the link. Returns (frames to transmit
    /// now, IP packets for this host).
    ///
    /// Frames to another unicast MAC, from our own MAC or from a multicast
    /// source are ignored, as are unknown ethertypes and VLAN tags. ARP and
    /// neighbour solicitations/advertisements are consumed here. IPv4
    /// packets with a bad header checksum and IP packets shorter than their
    /// header says are dropped; Ethernet padding is trimmed.
    pub fn input(&mut self, frame: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.counters.frames_in += 1;
        let mut tx = Vec::new();
        let mut up = Vec::new();
        let Ok((eth, payload)) = Ethernet2Header::from_slice(frame) else {
            return (tx, up);
        };
        let for_us = eth.destination == self.mac || is_multicast_mac(&eth.destination);
        if !for_us || eth.source == self.mac || is_multicast_mac(&eth.source) {
            return (tx, up);
        }
        match eth.ether_type.0 {
            ETH_ARP => self.arp_input(payload, &mut tx),
            ETH_IPV4 => {
                if let Some(p) = parse_ip(payload).filter(|ip| !ip.v6 && ip.hdr_ok) {
                    if let Some(p) = payload.get(..p.total) {
                        up.push(p.to_vec());
                    }
                }
            }
            ETH_IPV6 => {
                if let Some(p) = parse_ip(payload)
                    .filter(|ip| ip.v6)
                    .and_then(|ip| payload.get(..ip.total))
                {
                    if is_nd(p) {
                        self.nd_input(eth.source, p, &mut tx);
                    } else {
                        up.push(p.to_vec());
                    }
                }
            }
            _ => {}
        }
        self.counters.frames_out += tx.len() as u64;
        (tx, up)
    }

    /// Sends an IP packet (starting at the IP header) to the on-link next
    /// hop `next_hop`. If its MAC is known (or the next hop is a broadcast or
    /// multicast address), returns the Ethernet frame; otherwise queues the
    /// packet (at most 16 per neighbour, oldest dropped) and returns an ARP
    /// request (IPv4 next hop) or a neighbour solicitation to the
    /// solicited-node multicast address (IPv6 next hop). The ethertype
    /// follows the packet's IP version; packets that are neither IPv4 nor
    /// IPv6 are dropped.
    pub fn output(&mut self, packet: Vec<u8>, next_hop: IpAddr) -> Vec<Vec<u8>> {
        let hop = next_hop.to_canonical();
        let Some(ethertype) = ethertype_of(&packet) else {
            return Vec::new();
        };
        if hop.is_unspecified() {
            self.counters.unresolved_drops += 1;
            return Vec::new();
        }
        if let Some(mac) = self
            .group_mac(hop)
            .or_else(|| self.neighbours.get(&hop).copied())
        {
            self.counters.frames_out += 1;
            return vec![eth_frame(mac, self.mac, ethertype, &packet)];
        }
        let src = self.solicit_source(hop, &packet);
        if !self.pending.contains_key(&hop) && self.pending.len() >= MAX_PENDING {
            self.counters.unresolved_drops += 1;
        } else {
            let q = self.pending.entry(hop).or_default();
            if q.len() >= QUEUE_LIMIT {
                q.pop_front();
                self.counters.unresolved_drops += 1;
            }
            q.push_back(packet);
        }
        let frame = match (hop, src) {
            (IpAddr::V4(t), IpAddr::V4(s)) => {
                self.counters.arp_requests += 1;
                Some(self.arp_frame(ARP_REQUEST, BROADCAST, s.octets(), [0; 6], t.octets()))
            }
            (IpAddr::V6(t), IpAddr::V6(s)) => {
                self.counters.nd_solicits += 1;
                self.solicitation(s, t)
            }
            _ => None,
        };
        let out: Vec<Vec<u8>> = frame.into_iter().collect();
        self.counters.frames_out += out.len() as u64;
        out
    }

    /// Counters: frames in/out, ARP/ND requests and replies sent and
    /// received, packets dropped for lack of resolution.
    pub fn counters(&self) -> &IfaceCounters {
        &self.counters
    }

    /// The address to solicit `hop` from: the packet's source if it is
    /// ours, else one of our addresses on the same prefix, else any of the
    /// family, else the unspecified address.
    fn solicit_source(&self, hop: IpAddr, packet: &[u8]) -> IpAddr {
        let from_packet = match packet.first().map(|b| b >> 4) {
            Some(4) => arr::<4>(packet, 12).map(|a| IpAddr::from(Ipv4Addr::from(a))),
            Some(6) => arr::<16>(packet, 8).map(|a| IpAddr::from(Ipv6Addr::from(a)).to_canonical()),
            _ => None,
        };
        if let Some(s) = from_packet.filter(|s| s.is_ipv4() == hop.is_ipv4() && self.owns(*s)) {
            return s;
        }
        let ours: Vec<(IpAddr, u8)> = self
            .addrs
            .iter()
            .map(|&(a, p)| canonical_prefix(a, p))
            .filter(|(a, _)| a.is_ipv4() == hop.is_ipv4())
            .collect();
        if let Some(&(a, _)) = ours.iter().find(|&&(a, p)| in_prefix(a, p, hop)) {
            return a;
        }
        match ours.first() {
            Some(&(a, _)) => a,
            None if hop.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    /// The MAC of a broadcast or multicast next hop.
    fn group_mac(&self, hop: IpAddr) -> Option<Mac> {
        match hop {
            IpAddr::V4(a) => {
                let o = a.octets();
                if a.is_multicast() {
                    Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
                } else if a.is_broadcast() || self.is_directed_broadcast(a) {
                    Some(BROADCAST)
                } else {
                    None
                }
            }
            IpAddr::V6(a) => {
                let o = a.octets();
                a.is_multicast()
                    .then_some([0x33, 0x33, o[12], o[13], o[14], o[15]])
            }
        }
    }

    fn is_directed_broadcast(&self, a: Ipv4Addr) -> bool {
        self.addrs
            .iter()
            .any(|&(ours, p)| match canonical_prefix(ours, p) {
                (IpAddr::V4(ours), p) if p <= 30 => {
                    let host = u32::MAX.checked_shr(u32::from(p)).unwrap_or(0);
                    in_prefix(IpAddr::V4(ours), p, IpAddr::V4(a)) && u32::from(a) & host == host
                }
                _ => false,
            })
    }

    /// Remembers `ip` at `mac` and releases the packets waiting for it.
    fn learn(&mut self, ip: IpAddr, mac: Mac, tx: &mut Vec<Vec<u8>>) {
        let ip = ip.to_canonical();
        if self.neighbours.contains_key(&ip) || self.neighbours.len() < MAX_NEIGHBOURS {
            self.neighbours.insert(ip, mac);
        }
        if let Some(queue) = self.pending.remove(&ip) {
            for p in queue {
                if let Some(ethertype) = ethertype_of(&p) {
                    tx.push(eth_frame(mac, self.mac, ethertype, &p));
                }
            }
        }
    }

    fn wants(&self, ip: IpAddr) -> bool {
        self.neighbours.contains_key(&ip) || self.pending.contains_key(&ip)
    }

    fn arp_input(&mut self, arp: &[u8], tx: &mut Vec<Vec<u8>>) {
        // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
        if arp.get(..6) != Some(&[0, 1, 8, 0, 6, 4][..]) {
            return;
        }
        let (Some(op), Some(sha), Some(spa), Some(tpa)) = (
            be16(arp, 6),
            arr::<6>(arp, 8),
            arr::<4>(arp, 14),
            arr::<4>(arp, 24),
        ) else {
            return;
        };
        match op {
            ARP_REQUEST => self.counters.arp_requests += 1,
            ARP_REPLY => self.counters.arp_replies += 1,
            _ => return,
        }
        if is_multicast_mac(&sha) || sha == self.mac || sha == [0; 6] {
            return;
        }
        let sender = IpAddr::V4(Ipv4Addr::from(spa));
        let target = IpAddr::V4(Ipv4Addr::from(tpa));
        let to_us = self.owns(target);
        let proxied = sender != target && self.proxies(target);
        // RFC 826: update a known sender; add it when the message is for us.
        if !spa.iter().all(|&b| b == 0) && !self.owns(sender) && (to_us || self.wants(sender)) {
            self.learn(sender, sha, tx);
        }
        if op == ARP_REQUEST && (to_us || proxied) {
            self.counters.arp_replies += 1;
            tx.push(self.arp_frame(ARP_REPLY, sha, tpa, sha, spa));
        }
    }

    fn arp_frame(&self, op: u16, eth_dst: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
        let mut arp = Vec::with_capacity(28);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        arp.extend_from_slice(&op.to_be_bytes());
        arp.extend_from_slice(&self.mac);
        arp.extend_from_slice(&spa);
        arp.extend_from_slice(&tha);
        arp.extend_from_slice(&tpa);
        eth_frame(eth_dst, self.mac, ETH_ARP, &arp)
    }

    /// A neighbour solicitation or advertisement (already trimmed to its IP
    /// length) arrived; validated as RFC 4861 7.1.1/7.1.2 says.
    fn nd_input(&mut self, eth_src: Mac, packet: &[u8], tx: &mut Vec<Vec<u8>>) {
        let (Some(src), Some(dst), Some(icmp)) = (
            arr::<16>(packet, 8),
            arr::<16>(packet, 24),
            packet.get(40..),
        ) else {
            return;
        };
        let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
        let hop_limit = packet.get(7).copied();
        let Some(target) = arr::<16>(icmp, 8).map(Ipv6Addr::from) else {
            return;
        };
        if hop_limit != Some(255)
            || icmp.get(1) != Some(&0)
            || !icmp_checksum_ok(IpAddr::V6(src), IpAddr::V6(dst), PROTO_ICMPV6, icmp)
        {
            return;
        }
        if target.is_multicast() {
            return;
        }
        let Some(opts) = icmp.get(24..).and_then(nd_options) else {
            return;
        };
        let t = IpAddr::V6(target).to_canonical();
        match icmp.first().copied() {
            Some(ND_NS) => {
                self.counters.nd_solicits += 1;
                if src.is_unspecified() && (opts.slla.is_some() || !is_solicited_node(dst)) {
                    return;
                }
                let s = IpAddr::V6(src).to_canonical();
                if !self.owns(t) && (s == t || !self.proxies(t)) {
                    return;
                }
                if !src.is_unspecified() && !self.owns(s) {
                    if let Some(mac) = opts.slla {
                        self.learn(s, mac, tx);
                    }
                }
                // A solicitation from the unspecified address is duplicate
                // address detection: defend our address to all nodes.
                // A proxy never defends an address (DAD is the owner's)
                // and never overrides the owner's entry (RFC 4861 7.2.8).
                let proxied = !self.owns(t);
                if proxied && src.is_unspecified() {
                    return;
                }
                let (na_dst, eth_dst, flags) = if src.is_unspecified() {
                    (
                        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                        ALL_NODES_MAC,
                        NA_OVERRIDE,
                    )
                } else {
                    (
                        src,
                        opts.slla.unwrap_or(eth_src),
                        if proxied {
                            NA_SOLICITED
                        } else {
                            NA_SOLICITED | NA_OVERRIDE
                        },
                    )
                };
                if let Some(frame) = self.advertisement(target, na_dst, eth_dst, flags) {
                    self.counters.nd_adverts += 1;
                    tx.push(frame);
                }
            }
            Some(ND_NA) => {
                self.counters.nd_adverts += 1;
                let flags = icmp.get(4).copied().unwrap_or(0);
                if dst.is_multicast() && flags & NA_SOLICITED != 0 {
                    return;
                }
                // Unsolicited advertisements for strangers are not cached.
                if !self.owns(t) && self.wants(t) {
                    self.learn(t, opts.tlla.unwrap_or(eth_src), tx);
                }
            }
            _ => {}
        }
    }

    /// A neighbour solicitation for `target` from `src`, with our
    /// source link-layer address unless `src` is unspecified.
    fn solicitation(&self, src: Ipv6Addr, target: Ipv6Addr) -> Option<Vec<u8>> {
        let t = target.octets();
        let dst = Ipv6Addr::new(
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        );
        let mut body = t.to_vec();
        if !src.is_unspecified() {
            body.extend_from_slice(&[OPT_SLLA, 1]);
            body.extend_from_slice(&self.mac);
        }
        let packet = nd_packet(src, dst, ND_NS, 0, &body)?;
        Some(eth_frame(
            [0x33, 0x33, 0xff, t[13], t[14], t[15]],
            self.mac,
            ETH_IPV6,
            &packet,
        ))
    }

    /// A neighbour advertisement for our `target` with our target
    /// link-layer address.
    fn advertisement(
        &self,
        target: Ipv6Addr,
        dst: Ipv6Addr,
        eth_dst: Mac,
        flags: u8,
    ) -> Option<Vec<u8>> {
        let mut body = target.octets().to_vec();
        body.extend_from_slice(&[OPT_TLLA, 1]);
        body.extend_from_slice(&self.mac);
        let packet = nd_packet(target, dst, ND_NA, flags, &body)?;
        Some(eth_frame(eth_dst, self.mac, ETH_IPV6, &packet))
    }
}

/// An address and prefix length with IPv4-mapped IPv6 turned into IPv4.
fn canonical_prefix(a: IpAddr, p: u8) -> (IpAddr, u8) {
    match (a, a.to_canonical()) {
        (IpAddr::V6(_), c @ IpAddr::V4(_)) => (c, p.saturating_sub(96)),
        _ => (a, p),
    }
}

fn in_prefix(net: IpAddr, p: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(p)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(p)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn is_multicast_mac(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

fn is_solicited_node(a: Ipv6Addr) -> bool {
    let o = a.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]
}

fn ethertype_of(packet: &[u8]) -> Option<u16> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Some(ETH_IPV4),
        Some(6) => Some(ETH_IPV6),
        _ => None,
    }
}

fn eth_frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let header = Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: EtherType(ethertype),
    };
    let mut f = Vec::with_capacity(Ethernet2Header::LEN + payload.len());
    f.extend_from_slice(&header.to_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv6 packet carrying a neighbour discovery message (hop limit 255).
fn nd_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    flags: u8,
    body: &[u8],
) -> Option<Vec<u8>> {
    let ty = Icmpv6Type::Unknown {
        type_u8: icmp_type,
        code_u8: 0,
        bytes5to8: [flags, 0, 0, 0],
    };
    let builder = PacketBuilder::ipv6(src.octets(), dst.octets(), 255).icmpv6(ty);
    let mut v = Vec::with_capacity(builder.size(body.len()));
    builder.write(&mut v, body).ok()?;
    Some(v)
}

/// Whether an (already length-checked) IPv6 packet is a neighbour
/// solicitation or advertisement without extension headers.
fn is_nd(packet: &[u8]) -> bool {
    packet.get(6) == Some(&PROTO_ICMPV6) && matches!(packet.get(40), Some(&ND_NS) | Some(&ND_NA))
}

#[derive(Default)]
struct NdOptions {
    slla: Option<Mac>,
    tlla: Option<Mac>,
}

/// Neighbour discovery options; None if one is malformed (length 0 or
/// running past the end).
fn nd_options(mut opts: &[u8]) -> Option<NdOptions> {
    let mut found = NdOptions::default();
    while !opts.is_empty() {
        let kind = *opts.first()?;
        let len = usize::from(*opts.get(1)?) * 8;
        if len == 0 {
            return None;
        }
        let opt = opts.get(..len)?;
        let mac = arr::<6>(opt, 2).filter(|m| !is_multicast_mac(m));
        match kind {
            OPT_SLLA => found.slla = found.slla.or(mac),
            OPT_TLLA => found.tlla = found.tlla.or(mac),
            _ => {}
        }
        opts = opts.get(len..)?;
    }
    Some(found)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    arr::<2>(b, at).map(u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    arr::<4>(b, at).map(u32::from_be_bytes)
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// An IP packet taken apart: the fixed header checked against the packet's
/// length, IPv6 hop-by-hop, routing, fragment and destination options
/// headers skipped.
struct IpView<'a> {
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    /// The protocol after the skipped headers (AH and ESP are not skipped).
    proto: u8,
    /// From the upper-layer header to the end of the IP length.
    l4: &'a [u8],
    /// The IP length (header included).
    total: usize,
    /// The IPv4 header checksum verifies (always true for IPv6).
    hdr_ok: bool,
    /// Fragment offset in bytes.
    frag_offset: u16,
    more_fragments: bool,
}

impl IpView<'_> {
    fn fragmented(&self) -> bool {
        self.frag_offset != 0 || self.more_fragments
    }
}

fn parse_ip(packet: &[u8]) -> Option<IpView<'_>> {
    match packet.first()? >> 4 {
        4 => {
            let h = Ipv4HeaderSlice::from_slice(packet).ok()?;
            let ihl = h.slice().len();
            let total = usize::from(h.total_len());
            if total < ihl {
                return None;
            }
            Some(IpView {
                v6: false,
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                proto: h.protocol().0,
                l4: packet.get(ihl..total)?,
                total,
                hdr_ok: Sum16BitWords::new().add_slice(h.slice()).ones_complement() == 0,
                frag_offset: h.fragments_offset().value().saturating_mul(8),
                more_fragments: h.more_fragments(),
            })
        }
        6 => {
            let h = Ipv6HeaderSlice::from_slice(packet).ok()?;
            let total = 40 + usize::from(h.payload_length());
            let body = packet.get(40..total)?;
            let (mut next, mut off) = (h.next_header().0, 0usize);
            let (mut frag_offset, mut more_fragments) = (0, false);
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let len = (usize::from(*body.get(off + 1)?) + 1) * 8;
                        next = *body.get(off)?;
                        off += len;
                    }
                    44 => {
                        let fo = be16(body, off + 2)?;
                        frag_offset = fo & 0xfff8;
                        more_fragments = fo & 1 == 1;
                        next = *body.get(off)?;
                        off += 8;
                    }
                    _ => break,
                }
            }
            Some(IpView {
                v6: true,
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                proto: next,
                l4: body.get(off..)?,
                total,
                hdr_ok: true,
                frag_offset,
                more_fragments,
            })
        }
        _ => None,
    }
}

/// RFC 1071 verification of an ICMP (no pseudo-header), ICMPv6 or UDP
/// checksum (pseudo-header over `src`, `dst`, `proto` and the length).
fn icmp_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8]) -> bool {
    let sum = Sum16BitWords::new();
    let sum = match (src, dst, proto) {
        (_, _, PROTO_ICMP) => sum,
        (IpAddr::V4(s), IpAddr::V4(d), _) => {
            let Ok(len) = u16::try_from(seg.len()) else {
                return false;
            };
            sum.add_slice(&s.octets())
                .add_slice(&d.octets())
                .add_2bytes([0, proto])
                .add_2bytes(len.to_be_bytes())
        }
        (IpAddr::V6(s), IpAddr::V6(d), _) => {
            let Ok(len) = u32::try_from(seg.len()) else {
                return false;
            };
            sum.add_slice(&s.octets())
                .add_slice(&d.octets())
                .add_slice(&len.to_be_bytes())
                .add_slice(&[0, 0, 0, proto])
        }
        _ => return false,
    };
    sum.add_slice(seg).ones_complement() == 0
}

/// A UDP datagram whose length and checksum verify (IPv4 may omit the
/// checksum).
struct UdpView<'a> {
    sport: u16,
    dport: u16,
    payload: &'a [u8],
}

fn udp_view<'a>(ip: &IpView<'a>) -> Option<UdpView<'a>> {
    let u = UdpSlice::from_slice(ip.l4).ok()?;
    let unchecked = !ip.v6 && u.checksum() == 0;
    if !unchecked && !icmp_checksum_ok(ip.src, ip.dst, PROTO_UDP, u.slice()) {
        return None;
    }
    Some(UdpView {
        sport: u.source_port(),
        dport: u.destination_port(),
        payload: u.payload(),
    })
}

/// An ICMP or ICMPv6 message whose checksum verifies: (type, code, id, seq, data).
fn icmp_view<'a>(ip: &IpView<'a>) -> Option<(u8, u8, u16, u16, &'a [u8])> {
    let want = if ip.v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
    if ip.proto != want || !icmp_checksum_ok(ip.src, ip.dst, ip.proto, ip.l4) {
        return None;
    }
    Some((
        *ip.l4.first()?,
        *ip.l4.get(1)?,
        be16(ip.l4, 4)?,
        be16(ip.l4, 6)?,
        ip.l4.get(8..)?,
    ))
}

/// A packet the host may answer: whole, checksums right, not a fragment,
/// not to a group address.
fn answerable(packet: &[u8]) -> Option<IpView<'_>> {
    let ip = parse_ip(packet)?;
    let group = match ip.dst {
        IpAddr::V4(d) => d.is_multicast() || d.is_broadcast(),
        IpAddr::V6(d) => d.is_multicast(),
    };
    (ip.hdr_ok && !ip.fragmented() && !group).then_some(ip)
}

/// The host's services: an ICMP echo request (IPv4 type 8, ICMPv6 type
/// 128) gets an echo reply with the same id/seq/payload; UDP to port 7
/// (echo) gets the datagram back with ports swapped; UDP to port 9
/// (discard) and anything else gives None. Packets with a bad checksum,
/// fragments, packets to broadcast/multicast addresses and UDP echo
/// requests from ports that would make two services loop (0, 7, 9, 13, 19,
/// 37) get no answer either.
pub fn service(packet: &[u8]) -> Option<Vec<u8>> {
    let ip = answerable(packet)?;
    match ip.proto {
        PROTO_ICMP | PROTO_ICMPV6 => {
            let (ty, code, ident, seq, data) = icmp_view(&ip)?;
            let request = if ip.v6 { 128 } else { 8 };
            (ty == request && code == 0).then(|| echo(ip.dst, ip.src, ident, seq, data, true))
        }
        PROTO_UDP => {
            let u = udp_view(&ip)?;
            let answer = u.dport == PORT_ECHO && !ECHO_REFUSED_SPORTS.contains(&u.sport);
            answer.then(|| udp_datagram(ip.dst, ip.src, u.dport, u.sport, u.payload))
        }
        _ => None,
    }
}

/// The addresses as one family: IPv4 if both are (IPv4-mapped IPv6
/// included), else IPv6 with IPv4 mapped.
fn same_family(src: IpAddr, dst: IpAddr) -> Result<(Ipv4Addr, Ipv4Addr), (Ipv6Addr, Ipv6Addr)> {
    match (src.to_canonical(), dst.to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok((s, d)),
        (s, d) => Err((v6_of(s), v6_of(d))),
    }
}

fn v6_of(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The payload cut to what fits in one IP packet after `overhead` bytes.
fn fit(payload: &[u8], overhead: usize) -> &[u8] {
    payload
        .get(..usize::from(u16::MAX) - overhead)
        .unwrap_or(payload)
}

fn echo(src: IpAddr, dst: IpAddr, ident: u16, seq: u16, payload: &[u8], reply: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let written = match same_family(src, dst) {
        Ok((s, d)) => {
            let payload = fit(payload, 20 + 8);
            let b = PacketBuilder::ipv4(s.octets(), d.octets(), TTL);
            let b = if reply {
                b.icmpv4_echo_reply(ident, seq)
            } else {
                b.icmpv4_echo_request(ident, seq)
            };
            v.reserve(b.size(payload.len()));
            b.write(&mut v, payload)
        }
        Err((s, d)) => {
            let payload = fit(payload, 8);
            let b = PacketBuilder::ipv6(s.octets(), d.octets(), TTL);
            let b = if reply {
                b.icmpv6_echo_reply(ident, seq)
            } else {
                b.icmpv6_echo_request(ident, seq)
            };
            v.reserve(b.size(payload.len()));
            b.write(&mut v, payload)
        }
    };
    if written.is_err() {
        v.clear();
    }
    v
}

/// An ICMP (IPv4) or ICMPv6 echo request, TTL/hop limit 64. IPv4-mapped
/// IPv6 addresses make an IPv4 packet; mixed families an IPv6 one. A
/// payload too big for one packet is cut.
pub fn icmp_echo_request(
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    echo(src, dst, ident, seq, payload, false)
}

/// A UDP datagram with its checksum, TTL/hop limit 64 (addresses and
/// oversized payloads as for [`icmp_echo_request`]).
pub fn udp_datagram(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let written = match same_family(src, dst) {
        Ok((s, d)) => {
            let payload = fit(payload, 20 + 8);
            let b = PacketBuilder::ipv4(s.octets(), d.octets(), TTL).udp(sport, dport);
            v.reserve(b.size(payload.len()));
            b.write(&mut v, payload)
        }
        Err((s, d)) => {
            let payload = fit(payload, 8);
            let b = PacketBuilder::ipv6(s.octets(), d.octets(), TTL).udp(sport, dport);
            v.reserve(b.size(payload.len()));
            b.write(&mut v, payload)
        }
    };
    if written.is_err() {
        v.clear();
    }
    v
}

/// What a packet delivered to a host is, for the traffic generator.
/// `len` is the echo data or UDP payload length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Echo {
        ident: u16,
        seq: u16,
        len: usize,
    },
    /// `tag`: the payload's first 8 bytes (big-endian), where the traffic
    /// generator numbers its datagrams.
    Udp {
        sport: u16,
        dport: u16,
        len: usize,
        tag: Option<u64>,
    },
}

/// The first 8 bytes of `payload` as the traffic generator's number.
pub fn udp_tag(payload: &[u8]) -> Option<u64> {
    payload
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// What a packet delivered to a host is, for the traffic generator: an
/// ICMP/ICMPv6 echo reply or a UDP datagram (checksums verified; anything
/// else, fragments included, gives None).
pub fn classify(packet: &[u8]) -> Option<Reply> {
    let ip = parse_ip(packet).filter(|ip| ip.hdr_ok && !ip.fragmented())?;
    match ip.proto {
        PROTO_ICMP | PROTO_ICMPV6 => {
            let (ty, code, ident, seq, data) = icmp_view(&ip)?;
            let reply = if ip.v6 { 129 } else { 0 };
            (ty == reply && code == 0).then_some(Reply::Echo {
                ident,
                seq,
                len: data.len(),
            })
        }
        PROTO_UDP => {
            let u = udp_view(&ip)?;
            Some(Reply::Udp {
                sport: u.sport,
                dport: u.dport,
                len: u.payload.len(),
                tag: udp_tag(u.payload),
            })
        }
        _ => None,
    }
}

/// One-line human description of an IP packet for traces, e.g.
/// "10.0.0.1 > 10.0.0.2 ICMP echo request id 1 seq 3 (84 bytes)" (IP
/// length), "... ESP spi 0x2112 seq 7", "... AH spi 0x1000 seq 2, ICMP ..."
/// (AH shows what it protects), "... UDP 4500 > 4500 (ESP-in-UDP spi 0x2112
/// seq 7)", "... UDP 5000 > 7 (12 bytes)" (UDP payload length).
pub fn describe(packet: &[u8]) -> String {
    describe_at(packet, 0)
}

fn describe_at(packet: &[u8], depth: usize) -> String {
    let Some(ip) = parse_ip(packet) else {
        let what = match packet.first().map(|b| b >> 4) {
            Some(4) | Some(6) => "malformed IP packet",
            _ => "not an IP packet",
        };
        return format!("{what} ({} bytes)", packet.len());
    };
    let mut s = format!("{} > {} ", ip.src, ip.dst);
    if ip.frag_offset != 0 {
        let _ = write!(
            s,
            "{} fragment offset {} ({} bytes)",
            proto_name(ip.proto),
            ip.frag_offset,
            ip.total
        );
    } else {
        s.push_str(&describe_l4(ip.proto, ip.l4, ip.total, depth));
        if ip.more_fragments {
            s.push_str(" [first fragment]");
        }
    }
    if !ip.hdr_ok {
        s.push_str(" [bad header checksum]");
    }
    s
}

fn proto_name(proto: u8) -> String {
    match proto {
        PROTO_ICMP => "ICMP".into(),
        PROTO_IPIP => "IPIP".into(),
        PROTO_TCP => "TCP".into(),
        PROTO_UDP => "UDP".into(),
        PROTO_IPV6 => "IPv6-in-IP".into(),
        PROTO_ESP => "ESP".into(),
        PROTO_AH => "AH".into(),
        PROTO_ICMPV6 => "ICMPv6".into(),
        p => format!("proto {p}"),
    }
}

/// The upper layer `proto` in `l4`; `total` is the whole IP length.
fn describe_l4(proto: u8, l4: &[u8], total: usize, depth: usize) -> String {
    let truncated = || format!("{} (truncated, {} bytes)", proto_name(proto), total);
    match proto {
        PROTO_ICMP | PROTO_ICMPV6 => {
            let name = proto_name(proto);
            let (Some(&ty), Some(&code)) = (l4.first(), l4.get(1)) else {
                return truncated();
            };
            let (id, seq) = (be16(l4, 4).unwrap_or(0), be16(l4, 6).unwrap_or(0));
            let echo = |what: &str| format!("{name} echo {what} id {id} seq {seq} ({total} bytes)");
            match (proto, ty) {
                _ if l4.len() < 8 => truncated(),
                (PROTO_ICMP, 8) | (PROTO_ICMPV6, 128) => echo("request"),
                (PROTO_ICMP, 0) | (PROTO_ICMPV6, 129) => echo("reply"),
                (PROTO_ICMP, 3) | (PROTO_ICMPV6, 1) => {
                    format!("{name} destination unreachable code {code}")
                }
                (PROTO_ICMP, 11) | (PROTO_ICMPV6, 3) => format!("{name} time exceeded code {code}"),
                (PROTO_ICMPV6, 2) => {
                    format!("{name} packet too big mtu {}", be32(l4, 4).unwrap_or(0))
                }
                (PROTO_ICMPV6, ND_NS) | (PROTO_ICMPV6, ND_NA) => {
                    let Some(target) = arr::<16>(l4, 8).map(Ipv6Addr::from) else {
                        return truncated();
                    };
                    let opts = l4.get(24..).and_then(nd_options).unwrap_or_default();
                    if ty == ND_NS {
                        format!("{name} neighbour solicitation who has {target}")
                    } else {
                        match opts.tlla {
                            Some(m) => format!(
                                "{name} neighbour advertisement {target} is at {}",
                                fmt_mac(&m)
                            ),
                            None => format!("{name} neighbour advertisement {target}"),
                        }
                    }
                }
                _ => format!("{name} type {ty} code {code} ({total} bytes)"),
            }
        }
        PROTO_UDP => {
            let (Some(sport), Some(dport), Some(ulen)) = (be16(l4, 0), be16(l4, 2), be16(l4, 4))
            else {
                return truncated();
            };
            let end = match usize::from(ulen) {
                0 => l4.len(),
                n => n.min(l4.len()),
            };
            let payload = l4.get(8..end).unwrap_or(&[]);
            let what = if sport == PORT_NATT || dport == PORT_NATT {
                match payload {
                    [0xff] => "NAT keepalive".to_string(),
                    [0, 0, 0, 0, ike @ ..] => format!("IKE, {} bytes", ike.len()),
                    _ => match (be32(payload, 0), be32(payload, 4)) {
                        (Some(spi), Some(seq)) => format!("ESP-in-UDP spi 0x{spi:x} seq {seq}"),
                        _ => format!("{} bytes", payload.len()),
                    },
                }
            } else if sport == PORT_IKE || dport == PORT_IKE {
                format!("IKE, {} bytes", payload.len())
            } else {
                format!("{} bytes", payload.len())
            };
            format!("UDP {sport} > {dport} ({what})")
        }
        PROTO_TCP => match (be16(l4, 0), be16(l4, 2)) {
            (Some(s), Some(d)) => format!("TCP {s} > {d} ({total} bytes)"),
            _ => truncated(),
        },
        PROTO_ESP => match (be32(l4, 0), be32(l4, 4)) {
            (Some(spi), Some(seq)) => format!("ESP spi 0x{spi:x} seq {seq}"),
            _ => truncated(),
        },
        PROTO_AH => {
            let (Some(&next), Some(&len), Some(spi), Some(seq)) =
                (l4.first(), l4.get(1), be32(l4, 4), be32(l4, 8))
            else {
                return truncated();
            };
            let mut s = format!("AH spi 0x{spi:x} seq {seq}");
            let inner = l4.get((usize::from(len) + 2) * 4..);
            if let (Some(inner), true) = (inner, depth < DESCRIBE_DEPTH) {
                let _ = write!(s, ", {}", describe_l4(next, inner, total, depth + 1));
            }
            s
        }
        PROTO_IPIP | PROTO_IPV6 if depth < DESCRIBE_DEPTH => {
            format!("{} ({})", proto_name(proto), describe_at(l4, depth + 1))
        }
        _ => format!("{} ({total} bytes)", proto_name(proto)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        Icmpv4Slice, Icmpv6Slice, Ipv4Header, SlicedPacket, TransportSlice, UdpHeader,
    };
    use proptest::prelude::*;

    const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

    fn pair() -> (Iface, Iface) {
        let a = Iface::new("a", Iface::mac_for(1), vec![(A4, 24), (A6, 64)]);
        let b = Iface::new("b", Iface::mac_for(2), vec![(B4, 24), (B6, 64)]);
        (a, b)
    }

    fn ethertype(frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[12], frame[13]])
    }

    /// A host for the tests: an interface plus the services.
    struct Host {
        iface: Iface,
        inbox: Vec<Vec<u8>>,
    }

    impl Host {
        fn new(iface: Iface) -> Host {
            Host {
                iface,
                inbox: Vec::new(),
            }
        }

        fn receive(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
            let (mut tx, up) = self.iface.input(frame);
            for p in up {
                if let Some(r) = service(&p) {
                    let to = parse_ip(&p).unwrap().src;
                    tx.extend(self.iface.output(r, to));
                }
                self.inbox.push(p);
            }
            tx
        }
    }

    /// Carries frames back and forth until the link is quiet.
    fn pump(a: &mut Host, b: &mut Host, mut a_to_b: Vec<Vec<u8>>) {
        let mut rounds = 0;
        while !a_to_b.is_empty() {
            let b_to_a: Vec<Vec<u8>> = a_to_b.iter().flat_map(|f| b.receive(f)).collect();
            a_to_b = b_to_a.iter().flat_map(|f| a.receive(f)).collect();
            rounds += 1;
            assert!(rounds < 20, "link never settles");
        }
    }

    /// Verifies every checksum of an IP packet with etherparse's own
    /// calculations.
    fn assert_checksums(p: &[u8]) {
        let sliced = SlicedPacket::from_ip(p).unwrap();
        match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => {
                let h = v4.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header checksum"
                );
            }
            Some(etherparse::NetSlice::Ipv6(_)) => {}
            None => panic!("no IP header"),
        }
        let (src, dst) = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
            ),
            Some(etherparse::NetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
            None => unreachable!(),
        };
        match sliced.transport.unwrap() {
            TransportSlice::Icmpv4(icmp) => {
                assert_eq!(
                    icmp.checksum(),
                    icmp.icmp_type().calc_checksum(icmp.payload()),
                    "ICMP checksum"
                );
            }
            TransportSlice::Icmpv6(icmp) => {
                let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                    panic!()
                };
                assert!(
                    icmp.is_checksum_valid(s.octets(), d.octets()),
                    "ICMPv6 checksum"
                );
            }
            TransportSlice::Udp(udp) => {
                let h = udp.to_header();
                let want = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => h
                        .calc_checksum_ipv4_raw(s.octets(), d.octets(), udp.payload())
                        .unwrap(),
                    (IpAddr::V6(s), IpAddr::V6(d)) => h
                        .calc_checksum_ipv6_raw(s.octets(), d.octets(), udp.payload())
                        .unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(h.checksum, want, "UDP checksum");
            }
            TransportSlice::Tcp(_) => panic!("unexpected TCP"),
        }
    }

    #[test]
    fn mac_owns_on_link() {
        assert_eq!(Iface::mac_for(0x1234), [2, 0, 0, 0, 0x12, 0x34]);
        let (a, _) = pair();
        assert!(a.owns(A4));
        assert!(a.owns("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!a.owns(B4));
        assert!(a.owns(A6));
        assert!(a.on_link(B4));
        assert!(a.on_link("::ffff:10.0.0.77".parse().unwrap()));
        assert!(!a.on_link("10.0.1.2".parse().unwrap()));
        assert!(a.on_link("2001:db8::ffff".parse().unwrap()));
        assert!(!a.on_link("2001:db8:1::2".parse().unwrap()));
        let m = Iface::new(
            "m",
            Iface::mac_for(3),
            vec![("::ffff:192.168.0.1".parse().unwrap(), 120)],
        );
        assert!(m.owns("192.168.0.1".parse().unwrap()));
        assert!(m.on_link("192.168.0.200".parse().unwrap()));
        let all = Iface::new("z", Iface::mac_for(4), vec![(A4, 0), (A6, 0)]);
        assert!(
            all.on_link("192.0.2.1".parse().unwrap()) && all.on_link("fe80::1".parse().unwrap())
        );
    }

    #[test]
    fn ipv4_ping_resolves_arp_first() {
        let (mut a, mut b) = pair();
        let ping = icmp_echo_request(A4, B4, 1, 3, &[0x61; 56]);
        assert_eq!(ping.len(), 84);
        assert_checksums(&ping);

        let out = a.output(ping.clone(), B4);
        assert_eq!(out.len(), 1);
        let req = &out[0];
        assert_eq!(ethertype(req), ETH_ARP);
        assert_eq!(&req[..6], &BROADCAST);
        assert_eq!(&req[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[28..32], &[10, 0, 0, 1]);
        assert_eq!(&req[38..42], &[10, 0, 0, 2]);

        let (tx, up) = b.input(req);
        assert!(up.is_empty());
        assert_eq!(tx.len(), 1);
        let rep = &tx[0];
        assert_eq!(ethertype(rep), ETH_ARP);
        assert_eq!(&rep[..6], &a.mac);
        assert_eq!(&rep[20..22], &[0, 2]);
        assert_eq!(&rep[22..28], &b.mac);
        assert_eq!(&rep[28..32], &[10, 0, 0, 2]);
        assert_eq!(b.neighbour(A4), Some(a.mac));

        let (tx, up) = a.input(rep);
        assert!(up.is_empty());
        assert_eq!(tx.len(), 1, "the queued ping leaves");
        assert_eq!(&tx[0][..6], &b.mac);
        assert_eq!(&tx[0][6..12], &a.mac);
        assert_eq!(ethertype(&tx[0]), ETH_IPV4);
        assert_eq!(&tx[0][14..], &ping[..]);

        let (tx2, up) = b.input(&tx[0]);
        assert!(tx2.is_empty());
        assert_eq!(up, vec![ping.clone()]);
        let reply = service(&up[0]).unwrap();
        assert_checksums(&reply);
        assert_eq!(
            classify(&reply),
            Some(Reply::Echo {
                ident: 1,
                seq: 3,
                len: 56
            })
        );
        assert_eq!(&reply[12..16], &[10, 0, 0, 2]);
        assert_eq!(&reply[16..20], &[10, 0, 0, 1]);
        assert_eq!(reply[8], 64);

        let back = b.output(reply.clone(), A4);
        assert_eq!(back.len(), 1, "no new ARP");
        assert_eq!(ethertype(&back[0]), ETH_IPV4);
        let (tx, up) = a.input(&back[0]);
        assert!(tx.is_empty());
        assert_eq!(up, vec![reply]);

        assert_eq!(
            a.counters(),
            &IfaceCounters {
                frames_in: 2,
                frames_out: 2,
                arp_requests: 1,
                arp_replies: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            b.counters(),
            &IfaceCounters {
                frames_in: 2,
                frames_out: 2,
                arp_requests: 1,
                arp_replies: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn ipv6_ping_resolves_nd_first() {
        let (mut a, mut b) = pair();
        let ping = icmp_echo_request(A6, B6, 7, 9, b"abcdefgh");
        assert_eq!(ping[7], 64);
        assert_checksums(&ping);

        let out = a.output(ping.clone(), B6);
        assert_eq!(out.len(), 1);
        let ns = &out[0];
        assert_eq!(ethertype(ns), ETH_IPV6);
        assert_eq!(&ns[..6], &[0x33, 0x33, 0xff, 0, 0, 2]);
        let ns_ip = &ns[14..];
        assert_checksums(ns_ip);
        assert_eq!(ns_ip[7], 255);
        assert_eq!(
            &ns_ip[24..40],
            &"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(ns_ip[40], ND_NS);
        assert_eq!(
            &ns_ip[48..64],
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        assert_eq!(
            &ns_ip[64..72],
            &[1, 1, 2, 0, 0, 0, 0, 1],
            "source link-layer address option"
        );

        let (tx, up) = b.input(ns);
        assert!(up.is_empty());
        assert_eq!(tx.len(), 1);
        let na = &tx[0];
        assert_eq!(&na[..6], &a.mac);
        let na_ip = &na[14..];
        assert_checksums(na_ip);
        assert_eq!(na_ip[7], 255);
        assert_eq!(na_ip[40], ND_NA);
        assert_eq!(na_ip[44], NA_SOLICITED | NA_OVERRIDE);
        assert_eq!(&na_ip[8..24], &na_ip[48..64], "from the target address");
        assert_eq!(
            &na_ip[64..72],
            &[2, 1, 2, 0, 0, 0, 0, 2],
            "target link-layer address option"
        );
        let icmp = Icmpv6Slice::from_slice(&na_ip[40..]).unwrap();
        assert!(icmp.is_checksum_valid(B6_octets(), A6_octets()));
        assert_eq!(
            b.neighbour(A6),
            Some(a.mac),
            "learned from the solicitation"
        );

        let (tx, up) = a.input(na);
        assert!(up.is_empty());
        assert_eq!(tx.len(), 1);
        assert_eq!(&tx[0][..6], &b.mac);
        assert_eq!(&tx[0][14..], &ping[..]);

        let (_, up) = b.input(&tx[0]);
        let reply = service(&up[0]).unwrap();
        assert_checksums(&reply);
        assert_eq!(
            classify(&reply),
            Some(Reply::Echo {
                ident: 7,
                seq: 9,
                len: 8
            })
        );
        let back = b.output(reply.clone(), A6);
        assert_eq!(back.len(), 1, "no new solicitation");
        assert_eq!(ethertype(&back[0]), ETH_IPV6);
        let (tx, up) = a.input(&back[0]);
        assert!(tx.is_empty());
        assert_eq!(up, vec![reply]);
        assert_eq!(a.counters().nd_solicits, 1);
        assert_eq!(a.counters().nd_adverts, 1);
        assert_eq!(b.counters().nd_solicits, 1);
        assert_eq!(b.counters().nd_adverts, 1);
        assert_eq!(a.counters().arp_requests, 0);
    }

    #[allow(non_snake_case)]
    fn A6_octets() -> [u8; 16] {
        let IpAddr::V6(a) = A6 else { unreachable!() };
        a.octets()
    }

    #[allow(non_snake_case)]
    fn B6_octets() -> [u8; 16] {
        let IpAddr::V6(b) = B6 else { unreachable!() };
        b.octets()
    }

    #[test]
    fn udp_echo_and_discard() {
        for (src, dst) in [(A4, B4), (A6, B6)] {
            let (a, b) = pair();
            let (mut a, mut b) = (Host::new(a), Host::new(b));
            let d = udp_datagram(src, dst, 5000, 7, b"hello world!");
            assert_checksums(&d);
            let out = a.iface.output(d.clone(), dst);
            pump(&mut a, &mut b, out);
            assert_eq!(b.inbox, vec![d]);
            assert_eq!(a.inbox.len(), 1);
            let r = &a.inbox[0];
            assert_checksums(r);
            assert_eq!(
                classify(r),
                Some(Reply::Udp {
                    sport: 7,
                    dport: 5000,
                    len: 12,
                    tag: Some(u64::from_be_bytes(*b"hello wo")),
                })
            );
            assert_eq!(
                UdpSlice::from_slice(parse_ip(r).unwrap().l4)
                    .unwrap()
                    .payload(),
                b"hello world!"
            );

            let discard = udp_datagram(src, dst, 5000, 9, b"into the void");
            assert_eq!(service(&discard), None);
            let out = a.iface.output(discard.clone(), dst);
            assert_eq!(out.len(), 1, "resolved already");
            pump(&mut a, &mut b, out);
            assert_eq!(b.inbox.last(), Some(&discard));
            assert_eq!(a.inbox.len(), 1, "nothing comes back");
        }
    }

    #[test]
    fn echo_never_answers_echo() {
        assert_eq!(service(&udp_datagram(A4, B4, 7, 7, b"loop")), None);
        assert_eq!(service(&udp_datagram(A6, B6, 19, 7, b"loop")), None);
        // Group destinations and fragments get no answer either.
        assert_eq!(
            service(&icmp_echo_request(
                A4,
                "255.255.255.255".parse().unwrap(),
                1,
                1,
                b"x"
            )),
            None
        );
        assert_eq!(
            service(&icmp_echo_request(
                A6,
                "ff02::1".parse().unwrap(),
                1,
                1,
                b"x"
            )),
            None
        );
        let mut frag = icmp_echo_request(A4, B4, 1, 1, b"x");
        frag[6] |= 0x20; // more fragments
        fix_ipv4(&mut frag);
        assert_eq!(service(&frag), None);
        // Replies and other ICMP are not answered.
        let reply = service(&icmp_echo_request(A4, B4, 1, 1, b"x")).unwrap();
        assert_eq!(service(&reply), None);
        assert_eq!(classify(&icmp_echo_request(A4, B4, 1, 1, b"x")), None);
    }

    fn fix_ipv4(p: &mut [u8]) {
        let ihl = usize::from(p[0] & 0xf) * 4;
        let h = Ipv4Header::from_slice(&p[..ihl]).unwrap().0;
        let c = h.calc_header_checksum();
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn bad_checksums_are_refused() {
        let mut p = icmp_echo_request(A4, B4, 1, 1, b"payload");
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(service(&p), None, "ICMP checksum");
        let mut p = icmp_echo_request(A6, B6, 1, 1, b"payload");
        p[last + 20] ^= 1;
        assert_eq!(service(&p), None, "ICMPv6 checksum");
        let mut p = udp_datagram(A4, B4, 5000, 7, b"payload");
        p[30] ^= 1;
        assert_eq!(service(&p), None, "UDP checksum");
        // IPv4 UDP may go without a checksum.
        p[30] ^= 1;
        p[26] = 0;
        p[27] = 0;
        assert!(service(&p).is_some());

        // A bad IPv4 header checksum is dropped at the interface.
        let (mut a, mut b) = pair();
        let ping = icmp_echo_request(A4, B4, 1, 1, b"x");
        let req = a.output(ping, B4);
        let (rep, _) = b.input(&req[0]);
        let (mut frame, _) = a.input(&rep[0]);
        frame[0][14 + 10] ^= 0xff;
        let (tx, up) = b.input(&frame[0]);
        assert!(tx.is_empty() && up.is_empty());
    }

    #[test]
    fn padding_is_trimmed_and_truncation_dropped() {
        let (mut a, mut b) = pair();
        let ping = icmp_echo_request(A4, B4, 1, 1, b"");
        let req = a.output(ping.clone(), B4);
        let (rep, _) = b.input(&req[0]);
        let (mut frames, _) = a.input(&rep[0]);
        let mut frame = frames.remove(0);
        // ARP works padded to the Ethernet minimum too.
        let mut padded_arp = rep[0].clone();
        padded_arp.resize(60, 0);
        assert_eq!(a.input(&padded_arp).1.len(), 0);
        let full = frame.clone();
        frame.resize(60, 0);
        let (_, up) = b.input(&frame);
        assert_eq!(up, vec![ping]);
        for n in 0..full.len() {
            let (tx, up) = b.input(&full[..n]);
            assert!(tx.is_empty() && up.is_empty(), "truncated to {n}");
        }
    }

    #[test]
    fn frames_for_other_macs_are_ignored() {
        let (mut a, mut b) = pair();
        let ping = icmp_echo_request(A4, B4, 1, 1, b"x");
        let frame = eth_frame(Iface::mac_for(99), a.mac, ETH_IPV4, &ping);
        assert_eq!(b.input(&frame), (vec![], vec![]));
        // An ARP request unicast to someone else is not answered either.
        let req = a.output(ping.clone(), B4);
        let mut other = req[0].clone();
        other[..6].copy_from_slice(&Iface::mac_for(99));
        assert_eq!(b.input(&other), (vec![], vec![]));
        assert_eq!(b.neighbour(A4), None);
        // A request for someone else's address is not answered nor learned.
        let stranger = a.output(ping.clone(), "10.0.0.3".parse().unwrap());
        assert_eq!(b.input(&stranger[0]), (vec![], vec![]));
        assert_eq!(b.neighbour(A4), None);
        // Our own frames looped back are ignored.
        assert_eq!(a.input(&req[0]), (vec![], vec![]));
        // Broadcast and multicast IP frames are accepted.
        let bcast = eth_frame(BROADCAST, a.mac, ETH_IPV4, &ping);
        assert_eq!(b.input(&bcast).1, vec![ping.clone()]);
        let mcast = eth_frame([0x33, 0x33, 0, 0, 0, 1], a.mac, ETH_IPV4, &ping);
        assert_eq!(b.input(&mcast).1, vec![ping]);
        assert_eq!(b.counters().frames_in, 5);
        assert_eq!(b.counters().frames_out, 0);
    }

    #[test]
    fn group_next_hops_need_no_resolution() {
        let (mut a, _) = pair();
        let p = udp_datagram(A4, "10.0.0.255".parse().unwrap(), 1, 2, b"x");
        let out = a.output(p.clone(), "10.0.0.255".parse().unwrap());
        assert_eq!(&out[0][..6], &BROADCAST);
        let out = a.output(p.clone(), "224.0.0.251".parse().unwrap());
        assert_eq!(&out[0][..6], &[1, 0, 0x5e, 0, 0, 251]);
        let p6 = udp_datagram(A6, "ff02::1".parse().unwrap(), 1, 2, b"x");
        let out = a.output(p6, "ff02::1".parse().unwrap());
        assert_eq!(&out[0][..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(
            a.output(p.clone(), "0.0.0.0".parse().unwrap()),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(a.output(vec![0x45], B4).len(), 1, "ARP for the packet");
        assert_eq!(
            a.output(vec![0x00, 1, 2], B4),
            Vec::<Vec<u8>>::new(),
            "not IP"
        );
        assert_eq!(a.output(Vec::new(), B4), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn queue_holds_sixteen_per_neighbour() {
        let (mut a, mut b) = pair();
        let mut requests = Vec::new();
        for seq in 0..20u16 {
            let out = a.output(icmp_echo_request(A4, B4, 1, seq, b"q"), B4);
            assert_eq!(out.len(), 1);
            assert_eq!(ethertype(&out[0]), ETH_ARP);
            requests.extend(out);
        }
        assert_eq!(a.counters().unresolved_drops, 4);
        assert_eq!(a.counters().arp_requests, 20);
        let (rep, _) = b.input(&requests[0]);
        let (flushed, _) = a.input(&rep[0]);
        assert_eq!(flushed.len(), 16);
        let seqs: Vec<u16> = flushed
            .iter()
            .map(|f| be16(&f[14..], 26).unwrap())
            .collect();
        assert_eq!(
            seqs,
            (4..20).collect::<Vec<u16>>(),
            "oldest dropped, order kept"
        );
        // A second reply finds nothing left to send.
        let (rep2, _) = b.input(&requests[1]);
        assert!(a.input(&rep2[0]).0.is_empty());
        // Separate neighbours have separate queues.
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        for seq in 0..16u16 {
            a.output(icmp_echo_request(A4, c, 1, seq, b"q"), c);
        }
        assert_eq!(a.counters().unresolved_drops, 4);
    }

    #[test]
    fn dad_solicitation_is_defended_to_all_nodes() {
        let (mut a, mut b) = pair();
        // A has no IPv6 address of its own: it solicits from ::.
        a.addrs.retain(|(x, _)| x.is_ipv4());
        let ping = icmp_echo_request(A6, B6, 1, 1, b"x");
        let ns = a.output(ping.clone(), B6);
        assert_eq!(
            ns[0].len(),
            14 + 40 + 24,
            "no source link-layer option from ::"
        );
        let (na, _) = b.input(&ns[0]);
        assert_eq!(na.len(), 1);
        assert_eq!(&na[0][..6], &ALL_NODES_MAC);
        assert_eq!(na[0][14 + 44], NA_OVERRIDE);
        assert_checksums(&na[0][14..]);
        let (tx, _) = a.input(&na[0]);
        assert_eq!(tx.len(), 1);
        assert_eq!(&tx[0][14..], &ping[..]);
    }

    #[test]
    fn unsolicited_advertisements_are_not_cached() {
        let (mut a, mut b) = pair();
        let na = b
            .advertisement(B6_addr(), A6_addr(), a.mac, NA_OVERRIDE)
            .unwrap();
        assert!(a.input(&na).0.is_empty());
        assert_eq!(a.neighbour(B6), None);
        // ND with a hop limit other than 255 is refused.
        let ns = a.output(icmp_echo_request(A6, B6, 1, 1, b"x"), B6);
        let mut bad = ns[0].clone();
        bad[14 + 7] = 64;
        assert!(b.input(&bad).0.is_empty());
        assert_eq!(b.neighbour(A6), None);
        // So is a bad checksum.
        let mut bad = ns[0].clone();
        bad[14 + 42] ^= 1;
        assert!(b.input(&bad).0.is_empty());
        assert_eq!(b.input(&ns[0]).0.len(), 1);
    }

    #[allow(non_snake_case)]
    fn A6_addr() -> Ipv6Addr {
        Ipv6Addr::from(A6_octets())
    }

    #[allow(non_snake_case)]
    fn B6_addr() -> Ipv6Addr {
        Ipv6Addr::from(B6_octets())
    }

    fn ip4_with(proto: u8, body: &[u8]) -> Vec<u8> {
        let h = Ipv4Header::new(
            body.len() as u16,
            64,
            etherparse::IpNumber(proto),
            [10, 0, 0, 1],
            [10, 0, 0, 2],
        )
        .unwrap();
        let mut p = h.to_bytes().to_vec();
        fix_ipv4(&mut p);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn describe_strings() {
        assert_eq!(
            describe(&icmp_echo_request(A4, B4, 1, 3, &[0; 56])),
            "10.0.0.1 > 10.0.0.2 ICMP echo request id 1 seq 3 (84 bytes)"
        );
        let reply = service(&icmp_echo_request(A4, B4, 1, 3, &[0; 56])).unwrap();
        assert_eq!(
            describe(&reply),
            "10.0.0.2 > 10.0.0.1 ICMP echo reply id 1 seq 3 (84 bytes)"
        );
        assert_eq!(
            describe(&icmp_echo_request(A6, B6, 1, 3, &[0; 56])),
            "2001:db8::1 > 2001:db8::2 ICMPv6 echo request id 1 seq 3 (104 bytes)"
        );
        assert_eq!(
            describe(&udp_datagram(A4, B4, 5000, 7, b"hello world!")),
            "10.0.0.1 > 10.0.0.2 UDP 5000 > 7 (12 bytes)"
        );

        let mut esp = Vec::new();
        esp.extend_from_slice(&0x2112u32.to_be_bytes());
        esp.extend_from_slice(&7u32.to_be_bytes());
        esp.extend_from_slice(&[0xaa; 32]);
        assert_eq!(
            describe(&ip4_with(PROTO_ESP, &esp)),
            "10.0.0.1 > 10.0.0.2 ESP spi 0x2112 seq 7"
        );
        assert_eq!(
            describe(&udp_datagram(A4, B4, 4500, 4500, &esp)),
            "10.0.0.1 > 10.0.0.2 UDP 4500 > 4500 (ESP-in-UDP spi 0x2112 seq 7)"
        );
        assert_eq!(
            describe(&udp_datagram(A4, B4, 4500, 4500, &[0xff])),
            "10.0.0.1 > 10.0.0.2 UDP 4500 > 4500 (NAT keepalive)"
        );
        assert_eq!(
            describe(&udp_datagram(A4, B4, 4500, 4500, &[0; 28])),
            "10.0.0.1 > 10.0.0.2 UDP 4500 > 4500 (IKE, 24 bytes)"
        );

        // AH (transport mode, 12-byte ICV) over ICMP shows what it protects.
        let ping = icmp_echo_request(A4, B4, 1, 3, &[0; 56]);
        let mut ah = vec![PROTO_ICMP, 4, 0, 0];
        ah.extend_from_slice(&0x1000u32.to_be_bytes());
        ah.extend_from_slice(&2u32.to_be_bytes());
        ah.extend_from_slice(&[0x55; 12]);
        ah.extend_from_slice(&ping[20..]);
        assert_eq!(
            describe(&ip4_with(PROTO_AH, &ah)),
            "10.0.0.1 > 10.0.0.2 AH spi 0x1000 seq 2, ICMP echo request id 1 seq 3 (108 bytes)"
        );
        // AH in tunnel mode shows the inner packet.
        let mut ah = vec![PROTO_IPIP, 4, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 2];
        ah.extend_from_slice(&[0x55; 12]);
        ah.extend_from_slice(&ping);
        assert_eq!(
            describe(&ip4_with(PROTO_AH, &ah)),
            "10.0.0.1 > 10.0.0.2 AH spi 0x1000 seq 2, IPIP (10.0.0.1 > 10.0.0.2 ICMP echo request id 1 seq 3 (84 bytes))"
        );
        assert_eq!(
            describe(&ip4_with(PROTO_ESP, &[1, 2])),
            "10.0.0.1 > 10.0.0.2 ESP (truncated, 22 bytes)"
        );
        assert_eq!(describe(&[]), "not an IP packet (0 bytes)");
        assert_eq!(describe(&[0x45, 0]), "malformed IP packet (2 bytes)");
    }

    #[test]
    fn describe_nd() {
        let (mut a, mut b) = pair();
        let ns = a.output(icmp_echo_request(A6, B6, 1, 1, b"x"), B6);
        assert_eq!(
            describe(&ns[0][14..]),
            "2001:db8::1 > ff02::1:ff00:2 ICMPv6 neighbour solicitation who has 2001:db8::2"
        );
        let (na, _) = b.input(&ns[0]);
        assert_eq!(
            describe(&na[0][14..]),
            "2001:db8::2 > 2001:db8::1 ICMPv6 neighbour advertisement 2001:db8::2 is at 02:00:00:00:00:02"
        );
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let ping = icmp_echo_request(A6, B6, 1, 1, b"x");
        // Insert an empty destination options header.
        let mut p = ping[..40].to_vec();
        p[6] = 60;
        let plen = u16::from_be_bytes([p[4], p[5]]) + 8;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p.extend_from_slice(&[PROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&ping[40..]);
        assert!(describe(&p).contains("ICMPv6 echo request id 1 seq 1"));
        let r = service(&p).unwrap();
        assert_eq!(
            classify(&r),
            Some(Reply::Echo {
                ident: 1,
                seq: 1,
                len: 1
            })
        );
    }

    #[test]
    fn mapped_and_mixed_addresses_build_valid_packets() {
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let p = icmp_echo_request(m, B4, 1, 1, b"x");
        assert_eq!(p[0] >> 4, 4);
        assert_checksums(&p);
        let p = udp_datagram(A4, B6, 1, 2, b"x");
        assert_eq!(p[0] >> 4, 6);
        assert_checksums(&p);
        let big = vec![0u8; 70_000];
        let p = udp_datagram(A4, B4, 1, 2, &big);
        assert_eq!(p.len(), 65535);
        assert_checksums(&p);
        let p = icmp_echo_request(A6, B6, 1, 2, &big);
        assert_eq!(p.len(), 40 + 65535);
        assert_checksums(&p);
    }

    #[test]
    fn garbage_frames_never_panic() {
        let (mut a, _) = pair();
        let frames: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff; 13],
            [&a.mac[..], &[2, 0, 0, 0, 0, 9], &[0x12, 0x34], &[1, 2, 3]].concat(),
            [&a.mac[..], &[2, 0, 0, 0, 0, 9], &[0x81, 0x00], &[0; 50]].concat(),
            [
                &BROADCAST[..],
                &[2, 0, 0, 0, 0, 9],
                &[0x08, 0x06],
                &[0, 1, 8, 0, 6, 4, 0, 1],
            ]
            .concat(),
            [
                &BROADCAST[..],
                &[2, 0, 0, 0, 0, 9],
                &[0x86, 0xdd],
                &[0x60; 45],
            ]
            .concat(),
            [
                &BROADCAST[..],
                &[2, 0, 0, 0, 0, 9],
                &[0x08, 0x00],
                &[0x4f; 45],
            ]
            .concat(),
        ];
        for f in frames {
            let (tx, up) = a.input(&f);
            assert!(tx.is_empty() && up.is_empty());
        }
    }

    fn arbitrary_frame() -> impl Strategy<Value = Vec<u8>> {
        let dst = prop_oneof![
            Just(Iface::mac_for(2).to_vec()),
            Just(BROADCAST.to_vec()),
            Just(vec![0x33, 0x33, 0xff, 0, 0, 2]),
            prop::collection::vec(any::<u8>(), 6)
        ];
        let ethertype = prop_oneof![
            Just(vec![8, 0]),
            Just(vec![8, 6]),
            Just(vec![0x86, 0xdd]),
            prop::collection::vec(any::<u8>(), 2)
        ];
        let body = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..120),
            // Plausible ARP and IP starts reach deeper.
            prop::collection::vec(any::<u8>(), 0..60).prop_map(|t| [
                &[0, 1, 8, 0, 6, 4, 0, 1][..],
                &t
            ]
            .concat()),
            prop::collection::vec(any::<u8>(), 0..100).prop_map(|t| [&[0x45][..], &t].concat()),
            prop::collection::vec(any::<u8>(), 0..100).prop_map(|t| [
                &[0x60, 0, 0, 0, 0, 32, 58, 255][..],
                &t
            ]
            .concat()),
        ];
        (dst, ethertype, body).prop_map(|(d, e, b)| [&d[..], &[2, 0, 0, 0, 0, 1], &e, &b].concat())
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(frame in arbitrary_frame(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let (_, mut b) = pair();
            for f in [&frame, &raw] {
                let (tx, up) = b.input(f);
                for p in up.iter().chain(tx.iter()) {
                    let _ = describe(p);
                    let _ = service(p);
                    let _ = classify(p);
                }
                let _ = b.output(f.clone(), A4);
                let _ = b.output(f.clone(), A6);
            }
        }

        #[test]
        fn random_packets_never_panic(p in prop::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>()) {
            let mut p = p;
            if let Some(first) = p.first_mut() {
                *first = if v6 { 0x60 } else { 0x45 };
            }
            let _ = describe(&p);
            let _ = classify(&p);
            if let Some(r) = service(&p) {
                assert_checksums(&r);
            }
        }

        #[test]
        fn replies_mirror_requests(payload in prop::collection::vec(any::<u8>(), 0..300), ident in any::<u16>(), seq in any::<u16>(), v6 in any::<bool>()) {
            let (s, d) = if v6 { (A6, B6) } else { (A4, B4) };
            let r = service(&icmp_echo_request(s, d, ident, seq, &payload)).unwrap();
            assert_checksums(&r);
            prop_assert_eq!(classify(&r), Some(Reply::Echo { ident, seq, len: payload.len() }));
            let u = service(&udp_datagram(s, d, 4000, 7, &payload)).unwrap();
            assert_checksums(&u);
            prop_assert_eq!(classify(&u), Some(Reply::Udp { sport: 7, dport: 4000, len: payload.len(), tag: udp_tag(&payload) }));
        }
    }

    #[test]
    fn udp_header_checksum_matches_etherparse() {
        let d = udp_datagram(A4, B4, 1234, 7, b"abc");
        let ip = Ipv4Header::from_slice(&d).unwrap().0;
        let (udp, payload) = UdpHeader::from_slice(&d[20..]).unwrap();
        assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
        let icmp = Icmpv4Slice::from_slice(&icmp_echo_request(A4, B4, 1, 1, b"abc")[20..])
            .unwrap()
            .header();
        assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(b"abc"));
    }

    /// A gateway's inner interface answers ARP and neighbour solicitations
    /// for the prefix it serves (proxy ARP/ND), so a host that believes
    /// the whole prefix is on-link sends it the packets; never for the
    /// asker's own address, nor for addresses outside the prefix.
    #[test]
    fn proxy_answers_arp_and_nd_for_served_prefixes() {
        let kernel = Iface::new("ns", Iface::mac_for(1), vec![(A4, 16), (A6, 48)]);
        let mut gw = Iface::new("gw", Iface::mac_for(2), vec![(B4, 24), (B6, 64)]);
        gw.proxy = vec![
            (IpAddr::V4(Ipv4Addr::new(10, 0, 9, 0)), 24),
            ("2001:db8:0:9::".parse().unwrap(), 64),
        ];
        let mut k = Host::new(kernel);
        let mut g = Host::new(gw);
        let far4 = IpAddr::V4(Ipv4Addr::new(10, 0, 9, 7));
        let far6: IpAddr = "2001:db8:0:9::7".parse().unwrap();
        for far in [far4, far6] {
            let p = icmp_echo_request(if far.is_ipv4() { A4 } else { A6 }, far, 1, 1, b"x");
            let tx = k.iface.output(p, far);
            pump(&mut k, &mut g, tx);
            assert_eq!(k.iface.neighbour(far), Some(Iface::mac_for(2)), "{far}");
            // The packet waiting for resolution went to the proxy.
            assert!(g.inbox.iter().any(|p| parse_ip(p).unwrap().dst == far));
        }
        assert!(g.iface.proxies(far4) && !g.iface.proxies(B4));
        // Outside the served prefixes: no answer.
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 8, 7));
        let tx = k
            .iface
            .output(icmp_echo_request(A4, other, 1, 1, b"x"), other);
        pump(&mut k, &mut g, tx);
        assert_eq!(k.iface.neighbour(other), None);
        // Never for the asker's own address (a duplicate-address probe).
        g.iface.proxy.push((A4, 16));
        let probe = {
            let mut k2 = Iface::new("ns2", Iface::mac_for(3), vec![(A4, 16)]);
            k2.output(icmp_echo_request(A4, A4, 1, 1, b"x"), A4)
        };
        let (tx, _) = g.iface.input(&probe[0]);
        assert!(tx.is_empty(), "no proxy answer for the asker itself");
    }
}
