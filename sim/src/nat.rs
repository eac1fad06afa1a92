//! A NAPT box for labs (lab 7, NAT traversal): packets forwarded from the
//! inside get the outside address and a mapped port (UDP, TCP) or ICMP echo
//! identifier; answers to a mapping are translated back. Anything else,
//! such as bare ESP (protocol 50, no ports), cannot be mapped back and is
//! dropped on the way in: the reason RFC 3948 puts ESP in UDP.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use esp_ah::packet::{fix_l4_checksum, ipv4_checksum, layout};

/// NAT state of one host.
#[derive(Debug, Clone)]
pub struct Nat {
    /// The public address inside packets are rewritten to.
    pub outside: Ipv4Addr,
    /// (protocol, inside address, inside port/id) -> outside port/id.
    out: HashMap<(u8, Ipv4Addr, u16), u16>,
    /// (protocol, outside port/id) -> (inside address, inside port/id).
    back: HashMap<(u8, u16), (Ipv4Addr, u16)>,
    next: u16,
    pub translated_out: u64,
    pub translated_in: u64,
    pub unmapped: u64,
}

fn port_at(p: &[u8], l: &esp_ah::packet::IpLayout) -> Option<(usize, bool)> {
    // (offset of the port or identifier field, is it the source field)
    match l.next {
        6 | 17 => Some((l.hdr_len, true)),
        1 if p.get(l.hdr_len).is_some_and(|t| *t == 8 || *t == 0) => Some((l.hdr_len + 4, true)),
        _ => None,
    }
}

fn icmp_checksum(p: &mut [u8], off: usize) {
    if p.len() < off + 4 {
        return;
    }
    p[off + 2] = 0;
    p[off + 3] = 0;
    let c = etherparse::checksum::Sum16BitWords::new()
        .add_slice(&p[off..])
        .ones_complement()
        .to_be();
    p[off + 2..off + 4].copy_from_slice(&c.to_be_bytes());
}

impl Nat {
    pub fn new(outside: Ipv4Addr) -> Nat {
        Nat {
            outside,
            out: HashMap::new(),
            back: HashMap::new(),
            next: 4500,
            translated_out: 0,
            translated_in: 0,
            unmapped: 0,
        }
    }

    /// A packet leaving for the outside: source rewritten. Returns false if
    /// it cannot be translated (no ports).
    pub fn outbound(&mut self, p: &mut [u8]) -> bool {
        let Some(l) = layout(p) else { return false };
        let IpAddr::V4(src) = l.src else { return false };
        let Some((off, _)) = port_at(p, &l) else {
            // Protocols without ports keep their source but get the address.
            p[12..16].copy_from_slice(&self.outside.octets());
            ipv4_checksum(&mut p[..l.hdr_len]);
            self.translated_out += 1;
            return true;
        };
        let Some(b) = p.get(off..off + 2) else {
            return false;
        };
        let inner_port = u16::from_be_bytes([b[0], b[1]]);
        let key = (l.next, src, inner_port);
        let mapped = match self.out.get(&key) {
            Some(m) => *m,
            None => {
                // Keep the port when it is free (4500 stays 4500), else the next one.
                let mut m = inner_port;
                while self.back.contains_key(&(l.next, m)) {
                    m = self.next;
                    self.next = self.next.wrapping_add(1).max(1024);
                }
                self.out.insert(key, m);
                self.back.insert((l.next, m), (src, inner_port));
                m
            }
        };
        p[off..off + 2].copy_from_slice(&mapped.to_be_bytes());
        p[12..16].copy_from_slice(&self.outside.octets());
        ipv4_checksum(&mut p[..l.hdr_len]);
        if l.next == 1 {
            icmp_checksum(p, l.hdr_len);
        } else if let Some(l2) = layout(p) {
            fix_l4_checksum(p, &l2);
        }
        self.translated_out += 1;
        true
    }

    /// A packet for the outside address: destination translated back to
    /// the inside host. Returns false when no mapping matches.
    pub fn inbound(&mut self, p: &mut [u8]) -> bool {
        let Some(l) = layout(p) else { return false };
        if l.dst != IpAddr::V4(self.outside) {
            return false;
        }
        let Some((off, _)) = port_at(p, &l) else {
            self.unmapped += 1;
            return false;
        };
        // Replies carry the mapped port as destination port (UDP/TCP) or
        // the same identifier (ICMP echo).
        let doff = if l.next == 1 { off } else { off + 2 };
        let Some(b) = p.get(doff..doff + 2) else {
            return false;
        };
        let port = u16::from_be_bytes([b[0], b[1]]);
        let Some(&(inside, inner_port)) = self.back.get(&(l.next, port)) else {
            self.unmapped += 1;
            return false;
        };
        p[doff..doff + 2].copy_from_slice(&inner_port.to_be_bytes());
        p[16..20].copy_from_slice(&inside.octets());
        ipv4_checksum(&mut p[..l.hdr_len]);
        if l.next == 1 {
            icmp_checksum(p, l.hdr_len);
        } else if let Some(l2) = layout(p) {
            fix_l4_checksum(p, &l2);
        }
        self.translated_in += 1;
        true
    }
}
