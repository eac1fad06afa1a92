//! A packet in a caller-owned buffer with headroom and tailroom, so
//! headers and trailers are added and removed in place, and the few IP
//! header edits ESP and AH need.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Room to leave in front of a packet for the largest outer headers this
/// engine adds (IPv6 40 + UDP 8 + ESP 8 + IV 16, with slack).
pub const HEADROOM: usize = 128;
/// Room to leave after a packet for ESP padding, trailer and ICV.
pub const TAILROOM: usize = 128;

/// A packet occupying `buf[start..end]`.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

/// The buffer has too little headroom or tailroom for what the SA adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl<'a> PacketBuf<'a> {
    /// A packet of `len` bytes starting at `start` inside `buf`.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Option<PacketBuf<'a>> {
        let end = start.checked_add(len)?;
        (end <= buf.len()).then_some(PacketBuf { buf, start, end })
    }

    /// Copies `data` into `buf` leaving [`HEADROOM`] in front.
    pub fn load(buf: &'a mut [u8], data: &[u8]) -> Option<PacketBuf<'a>> {
        let end = HEADROOM.checked_add(data.len())?;
        buf.get_mut(HEADROOM..end)?.copy_from_slice(data);
        Some(PacketBuf {
            buf,
            start: HEADROOM,
            end,
        })
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    pub fn headroom(&self) -> usize {
        self.start
    }
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Grows the packet by `n` bytes at the front.
    pub fn push_front(&mut self, n: usize) -> Result<(), NoRoom> {
        self.start = self.start.checked_sub(n).ok_or(NoRoom)?;
        Ok(())
    }
    /// Removes `n` bytes from the front.
    pub fn pull_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom);
        }
        self.start += n;
        Ok(())
    }
    /// Grows the packet by `n` bytes at the back.
    pub fn push_back(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.tailroom() {
            return Err(NoRoom);
        }
        self.end += n;
        Ok(())
    }
    /// Removes `n` bytes from the back.
    pub fn trim_back(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom);
        }
        self.end -= n;
        Ok(())
    }
    /// Opens a gap of `n` bytes after the first `at` bytes (moving those
    /// `at` bytes forward into the headroom).
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Result<(), NoRoom> {
        if at > self.len() {
            return Err(NoRoom);
        }
        self.push_front(n)?;
        let s = self.start;
        self.buf.copy_within(s + n..s + n + at, s);
        Ok(())
    }
    /// Closes a gap of `n` bytes after the first `at` bytes.
    pub fn remove_gap(&mut self, at: usize, n: usize) -> Result<(), NoRoom> {
        if at + n > self.len() {
            return Err(NoRoom);
        }
        let s = self.start;
        self.buf.copy_within(s..s + at, s + n);
        self.start += n;
        Ok(())
    }
}

/// IP protocol numbers this engine uses.
pub mod proto {
    pub const HOPOPT: u8 = 0;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
}

/// Where the IPsec header goes (or is) in an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpLayout {
    pub v6: bool,
    /// Bytes of IP header (IPv4 with options; IPv6 fixed header plus the
    /// extension headers that precede the IPsec header).
    pub hdr_len: usize,
    /// Offset of the "next header"/protocol byte that names the payload.
    pub next_at: usize,
    /// The protocol of what follows the header.
    pub next: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 fragment (MF set or offset non-zero) or an IPv6 fragment header seen.
    pub fragment: bool,
}

/// Parses the IP header at the start of `p`. For IPv6 it walks Hop-by-Hop,
/// Routing, Fragment and (when `stop_at_ipsec`) Destination Options headers
/// up to the first header that is not one of them.
pub fn layout(p: &[u8]) -> Option<IpLayout> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if total < ihl || total > p.len() {
                return None;
            }
            let frag = u16::from_be_bytes([p[6], p[7]]);
            Some(IpLayout {
                v6: false,
                hdr_len: ihl,
                next_at: 9,
                next: p[9],
                src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
                dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
                fragment: frag & 0x3fff != 0,
            })
        }
        6 => {
            if p.len() < 40 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if 40 + plen > p.len() {
                return None;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&p[8..24]);
            let src = IpAddr::V6(Ipv6Addr::from(a));
            a.copy_from_slice(&p[24..40]);
            let dst = IpAddr::V6(Ipv6Addr::from(a));
            let (mut off, mut next_at, mut next, mut fragment) = (40usize, 6usize, p[6], false);
            // RFC 4303 3.1.1: ESP goes after hop-by-hop, routing and
            // fragment headers.
            while matches!(next, proto::HOPOPT | proto::ROUTING | proto::FRAGMENT) {
                let h = p.get(off..off + 8)?;
                let len = if next == proto::FRAGMENT {
                    fragment = true;
                    8
                } else {
                    (usize::from(h[1]) + 1) * 8
                };
                next_at = off;
                next = h[0];
                off = off.checked_add(len)?;
                if off > p.len() {
                    return None;
                }
            }
            Some(IpLayout {
                v6: true,
                hdr_len: off,
                next_at,
                next,
                src,
                dst,
                fragment,
            })
        }
        _ => None,
    }
}

/// Sets the IP length field(s) for a packet of `total` bytes and, for IPv4,
/// recomputes the header checksum.
/// Whether an IP packet of `len` bytes (header included) can say its
/// length: IPv4's total length and IPv6's payload length are 16 bits
/// (RFC 791, RFC 8200; no jumbograms). A protected packet that grows past
/// it is refused rather than sent with a wrong length.
pub fn fits_ip_length(len: usize, v6: bool) -> bool {
    if v6 {
        len <= 40 + 0xffff
    } else {
        len <= 0xffff
    }
}

pub fn fix_lengths(p: &mut [u8], v6: bool) {
    let total = p.len();
    if v6 {
        let plen = (total.saturating_sub(40)).min(0xffff) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
    } else {
        p[2..4].copy_from_slice(&(total.min(0xffff) as u16).to_be_bytes());
        let ihl = usize::from(p[0] & 0x0f) * 4;
        ipv4_checksum(&mut p[..ihl]);
    }
}

/// Recomputes an IPv4 header checksum in place (RFC 791, RFC 1071).
pub fn ipv4_checksum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_slice(h)
        .ones_complement()
        .to_be();
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Recomputes the TCP or UDP checksum of a transport-mode packet after NAT
/// traversal changed what the addresses mean (RFC 3948 3.1.2).
pub fn fix_l4_checksum(p: &mut [u8], l: &IpLayout) {
    let (off, next) = (l.hdr_len, l.next);
    let field = match next {
        proto::TCP => 16,
        proto::UDP => 6,
        _ => return,
    };
    if p.len() < off + field + 2 {
        return;
    }
    if next == proto::UDP && !l.v6 && p[off + 6] == 0 && p[off + 7] == 0 {
        return; // IPv4 UDP without a checksum stays without one.
    }
    p[off + field] = 0;
    p[off + field + 1] = 0;
    let seg_len = p.len() - off;
    let mut sum = etherparse::checksum::Sum16BitWords::new();
    sum = match (l.src, l.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum
            .add_4bytes(s.octets())
            .add_4bytes(d.octets())
            .add_2bytes([0, next])
            .add_2bytes((seg_len as u16).to_be_bytes()),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum
            .add_16bytes(s.octets())
            .add_16bytes(d.octets())
            .add_4bytes((seg_len as u32).to_be_bytes())
            .add_4bytes([0, 0, 0, next]),
        _ => return,
    };
    let mut c = sum.add_slice(&p[off..]).ones_complement().to_be();
    if c == 0 && next == proto::UDP {
        c = 0xffff;
    }
    p[off + field..off + field + 2].copy_from_slice(&c.to_be_bytes());
}
