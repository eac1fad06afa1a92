//! ESP, RFC 4303 (and RFC 3948 UDP encapsulation), in place.

use std::net::IpAddr;

use crate::packet::{fix_l4_checksum, fix_lengths, layout, proto, IpLayout, PacketBuf};
use crate::transform::SaCrypto;
use crate::DropReason;

/// ESP header: SPI (4) and sequence number (4).
pub const ESP_HDR: usize = 8;
/// UDP header for ESP-in-UDP.
pub const UDP_HDR: usize = 8;
/// The IKE/NAT-T UDP port (RFC 3948).
pub const NATT_PORT: u16 = 4500;

/// Where the ESP header sits in a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspAt {
    pub ip: IpLayout,
    /// Offset of the ESP header.
    pub off: usize,
    /// ESP-in-UDP.
    pub udp: bool,
    pub spi: u32,
    pub seq: u32,
}

/// What a received packet is, before any SA is involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    Esp(EspAt),
    /// AH header at this offset.
    Ah {
        ip: IpLayout,
        off: usize,
        spi: u32,
        seq: u32,
    },
    /// Not IPsec (or an IKE packet on the NAT-T port): the host handles it.
    NotIpsec,
}

/// Finds the ESP or AH header of a received IP packet (RFC 4303 3.4.1:
/// fragments are reassembled before IPsec processing, so a fragment is
/// refused here).
pub fn classify(p: &[u8]) -> Result<Classified, DropReason> {
    let ip = layout(p).ok_or(DropReason::Malformed)?;
    let be32 = |o: usize| {
        p.get(o..o + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match ip.next {
        proto::ESP | proto::AH if ip.fragment => Err(DropReason::Fragment),
        proto::ESP => {
            let (spi, seq) = be32(ip.hdr_len)
                .zip(be32(ip.hdr_len + 4))
                .ok_or(DropReason::Malformed)?;
            Ok(Classified::Esp(EspAt {
                ip,
                off: ip.hdr_len,
                udp: false,
                spi,
                seq,
            }))
        }
        proto::AH => {
            let (spi, seq) = be32(ip.hdr_len + 4)
                .zip(be32(ip.hdr_len + 8))
                .ok_or(DropReason::Malformed)?;
            Ok(Classified::Ah {
                ip,
                off: ip.hdr_len,
                spi,
                seq,
            })
        }
        proto::UDP => {
            let u = ip.hdr_len;
            let Some(h) = p.get(u..u + UDP_HDR) else {
                return Ok(Classified::NotIpsec);
            };
            if u16::from_be_bytes([h[2], h[3]]) != NATT_PORT {
                return Ok(Classified::NotIpsec);
            }
            let body = &p[u + UDP_HDR..];
            // RFC 3948 2.2 and 2.3: a one-byte 0xff is a NAT keepalive; a
            // zero "SPI" is the non-ESP marker in front of IKE.
            if body == [0xff] {
                return Err(DropReason::Keepalive);
            }
            match be32(u + UDP_HDR) {
                None | Some(0) => Ok(Classified::NotIpsec),
                Some(spi) => {
                    if ip.fragment {
                        return Err(DropReason::Fragment);
                    }
                    let seq = be32(u + UDP_HDR + 4).ok_or(DropReason::Malformed)?;
                    Ok(Classified::Esp(EspAt {
                        ip,
                        off: u + UDP_HDR,
                        udp: true,
                        spi,
                        seq,
                    }))
                }
            }
        }
        _ => Ok(Classified::NotIpsec),
    }
}

fn aad(spi: u32, seq: u64, esn: bool, out: &mut [u8; 12]) -> usize {
    out[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        // RFC 4106 5 / RFC 7634 2.1: SPI || seq high || seq low.
        out[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        out[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
        12
    } else {
        out[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        8
    }
}

/// Protects the IP packet in `pkt` with ESP: transport mode inserts ESP
/// after the IP header, tunnel mode wraps the whole packet. `iv` must have
/// the cipher's IV length (random for CBC, unique per packet for the
/// counter modes).
pub fn encap(
    tf: &SaCrypto,
    seq: u64,
    iv: &[u8],
    pkt: &mut PacketBuf<'_>,
) -> Result<(), DropReason> {
    let cipher = tf.cipher.as_deref().ok_or(DropReason::Malformed)?;
    if iv.len() != cipher.iv_len() {
        return Err(DropReason::Malformed);
    }
    let inner = layout(pkt.data()).ok_or(DropReason::Malformed)?;
    let (hdr_len, next) = match tf.tunnel {
        Some(_) => (0, if inner.v6 { proto::IPV6 } else { proto::IPIP }),
        None => {
            // RFC 4303 3.3.4: transport-mode ESP is applied before fragmentation.
            if inner.fragment {
                return Err(DropReason::Fragment);
            }
            (inner.hdr_len, inner.next)
        }
    };
    let payload = pkt.len() - hdr_len;
    let block = cipher.block_len().max(4);
    let pad = (block - (payload + 2) % block) % block;
    let icv = tf.icv_len();
    let (outer_v6, outer_len) = match tf.tunnel {
        Some(t) if t.dst.is_ipv6() => (true, 40),
        Some(_) => (false, 20),
        None => (inner.v6, 0),
    };
    let natt_len = if tf.natt.is_some() { UDP_HDR } else { 0 };
    let grown = pkt.len() + outer_len + natt_len + ESP_HDR + iv.len() + pad + 2 + icv;
    if !crate::packet::fits_ip_length(grown, outer_v6) {
        return Err(DropReason::NoRoom);
    }
    pkt.push_back(pad + 2 + icv)
        .map_err(|_| DropReason::NoRoom)?;
    {
        let d = pkt.data_mut();
        let t = hdr_len + payload;
        for (i, b) in d[t..t + pad].iter_mut().enumerate() {
            *b = (i + 1) as u8; // RFC 4303 2.4: default padding 1, 2, 3, ...
        }
        d[t + pad] = pad as u8;
        d[t + pad + 1] = next;
    }
    let udp = if tf.natt.is_some() { UDP_HDR } else { 0 };
    let front = udp + ESP_HDR + iv.len();
    let tos = inner_tos(&inner, pkt.data());
    let (esp_off, outer) = match tf.tunnel {
        Some(t) => {
            let outer_len = if t.dst.is_ipv6() { 40 } else { 20 };
            pkt.push_front(outer_len + front)
                .map_err(|_| DropReason::NoRoom)?;
            write_outer(&mut pkt.data_mut()[..outer_len], t.src, t.dst, tos);
            (outer_len + udp, outer_len)
        }
        None => {
            pkt.insert_gap(hdr_len, front)
                .map_err(|_| DropReason::NoRoom)?;
            (hdr_len + udp, hdr_len)
        }
    };
    let v6 = pkt.data()[0] >> 4 == 6;
    let d = pkt.data_mut();
    // The protocol field of the header before ESP (or UDP).
    let next_at = if tf.tunnel.is_some() {
        if v6 {
            6
        } else {
            9
        }
    } else {
        inner.next_at
    };
    d[next_at] = if udp != 0 { proto::UDP } else { proto::ESP };
    if let Some((local, remote)) = tf.natt {
        let u = &mut d[outer..outer + UDP_HDR];
        u[0..2].copy_from_slice(&local.to_be_bytes());
        u[2..4].copy_from_slice(&remote.to_be_bytes());
        let ulen = (d.len() - outer).min(0xffff) as u16;
        d[outer + 4..outer + 6].copy_from_slice(&ulen.to_be_bytes());
        d[outer + 6..outer + 8].copy_from_slice(&[0, 0]);
    }
    d[esp_off..esp_off + 4].copy_from_slice(&tf.spi.to_be_bytes());
    d[esp_off + 4..esp_off + 8].copy_from_slice(&(seq as u32).to_be_bytes());
    let iv_at = esp_off + ESP_HDR;
    d[iv_at..iv_at + iv.len()].copy_from_slice(iv);
    let icv_at = d.len() - icv;
    let (head, tail) = d.split_at_mut(icv_at);
    let icv_out = &mut tail[..icv];
    let mut a = [0u8; 12];
    if cipher.icv_len() != 0 {
        if cipher.auth_only() {
            // RFC 4543 3.3: GMAC authenticates SPI, sequence number, IV and
            // the whole clear payload as AAD.
            let n = aad(tf.spi, seq, tf.esn, &mut a);
            let (ivb, body) = head[iv_at..].split_at_mut(iv.len());
            let mut aadbuf = AadBuf::new();
            aadbuf.extend(&a[..n]);
            aadbuf.extend(ivb);
            aadbuf.extend(body);
            cipher
                .seal(
                    ivb,
                    aadbuf.get().ok_or(DropReason::NoRoom)?,
                    &mut [],
                    icv_out,
                )
                .map_err(|_| DropReason::BadIcv)?;
        } else {
            let n = aad(tf.spi, seq, tf.esn, &mut a);
            let (ivb, body) = head[iv_at..].split_at_mut(iv.len());
            cipher
                .seal(ivb, &a[..n], body, icv_out)
                .map_err(|_| DropReason::BadIcv)?;
        }
    } else {
        {
            let (ivb, body) = head[iv_at..].split_at_mut(iv.len());
            cipher
                .seal(ivb, &[], body, &mut [])
                .map_err(|_| DropReason::BadIcv)?;
        }
        if let Some(integ) = tf.integ.as_deref() {
            // RFC 4303 2.8 / 3.3.2: the ICV covers the ESP header, IV and
            // ciphertext; with ESN the high sequence bits follow, unsent.
            let hi = ((seq >> 32) as u32).to_be_bytes();
            let esn: &[u8] = if tf.esn { &hi } else { &[] };
            integ.compute(&[&head[esp_off..], esn], icv_out);
        }
    }
    fix_lengths(d, v6);
    if udp != 0 && v6 {
        // RFC 3948 3.1.1's zero UDP checksum is IPv4's: over IPv6 the
        // checksum is mandatory (RFC 8200 8.1), and Linux drops ESP in
        // UDPv6 without one. It covers the ciphertext, so it comes last.
        if let Some(l) = layout(d) {
            fix_l4_checksum(d, &l);
        }
    }
    Ok(())
}

/// A GMAC AAD assembled on the stack (no allocation per packet): up to
/// 12 + 8 + 9000 bytes (jumbo frames); larger packets are refused.
struct AadBuf {
    buf: [u8; 9216],
    len: usize,
    overflow: bool,
}

impl AadBuf {
    fn new() -> AadBuf {
        AadBuf {
            buf: [0; 9216],
            len: 0,
            overflow: false,
        }
    }
    fn extend(&mut self, s: &[u8]) {
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(d) => {
                d.copy_from_slice(s);
                self.len += s.len();
            }
            None => self.overflow = true,
        }
    }
    fn get(&self) -> Option<&[u8]> {
        (!self.overflow).then_some(&self.buf[..self.len])
    }
}

fn inner_tos(inner: &IpLayout, p: &[u8]) -> u8 {
    // RFC 4301 5.1.2.1: the outer DSCP is copied from the inner header; ECN
    // per RFC 6040 normal mode (copied).
    if inner.v6 {
        (p[0] << 4) | (p[1] >> 4)
    } else {
        p[1]
    }
}

/// Writes an outer IPv4 or IPv6 header for tunnel mode (lengths and
/// checksum are filled in later).
pub(crate) fn write_outer(h: &mut [u8], src: IpAddr, dst: IpAddr, tos: u8) {
    h.fill(0);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h[0] = 0x45;
            h[1] = tos;
            h[6] = 0x40; // DF: tunnels do not fragment the outer packet themselves
            h[8] = 64;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
        }
        (s, d) => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            h[0] = 0x60 | (tos >> 4);
            h[1] = tos << 4;
            h[7] = 64;
            h[8..24].copy_from_slice(&to6(s).octets());
            h[24..40].copy_from_slice(&to6(d).octets());
        }
    }
}

/// Verifies and decrypts the ESP packet found by [`classify`] and turns it
/// back into the packet the sender protected. `seq` is the full (ESN
/// inferred) sequence number. Returns the next-header value.
pub fn decap(
    tf: &SaCrypto,
    at: &EspAt,
    seq: u64,
    pkt: &mut PacketBuf<'_>,
) -> Result<u8, DropReason> {
    let cipher = tf.cipher.as_deref().ok_or(DropReason::Malformed)?;
    let iv_len = cipher.iv_len();
    let icv = tf.icv_len();
    let block = cipher.block_len().max(4);
    let d = pkt.data_mut();
    let body_at = at.off + ESP_HDR + iv_len;
    if d.len() < body_at + 2 + icv {
        return Err(DropReason::Malformed);
    }
    let icv_at = d.len() - icv;
    let body_len = icv_at - body_at;
    if !body_len.is_multiple_of(block) || body_len < 2 {
        return Err(DropReason::Malformed);
    }
    let (head, tail) = d.split_at_mut(icv_at);
    let icv_in = &tail[..icv];
    let mut a = [0u8; 12];
    if cipher.icv_len() != 0 {
        let n = aad(tf.spi, seq, tf.esn, &mut a);
        let (ivb, body) = head[at.off + ESP_HDR..].split_at_mut(iv_len);
        if cipher.auth_only() {
            let mut aadbuf = AadBuf::new();
            aadbuf.extend(&a[..n]);
            aadbuf.extend(ivb);
            aadbuf.extend(body);
            cipher
                .open(
                    ivb,
                    aadbuf.get().ok_or(DropReason::Malformed)?,
                    &mut [],
                    icv_in,
                )
                .map_err(|_| DropReason::BadIcv)?;
        } else {
            cipher
                .open(ivb, &a[..n], body, icv_in)
                .map_err(|_| DropReason::BadIcv)?;
        }
    } else {
        if let Some(integ) = tf.integ.as_deref() {
            let hi = ((seq >> 32) as u32).to_be_bytes();
            let esn: &[u8] = if tf.esn { &hi } else { &[] };
            integ
                .verify(&[&head[at.off..], esn], icv_in)
                .map_err(|_| DropReason::BadIcv)?;
        }
        let (ivb, body) = head[at.off + ESP_HDR..].split_at_mut(iv_len);
        cipher
            .open(ivb, &[], body, &[])
            .map_err(|_| DropReason::BadIcv)?;
    }
    let pad_len = usize::from(head[icv_at - 2]);
    let next = head[icv_at - 1];
    if pad_len + 2 > body_len {
        return Err(DropReason::BadPadding);
    }
    // RFC 4303 2.4: the default padding is 1, 2, 3, ...; anything else
    // means a wrong key or a forged packet.
    let pad_at = icv_at - 2 - pad_len;
    if head[pad_at..pad_at + pad_len]
        .iter()
        .enumerate()
        .any(|(i, &b)| b != (i + 1) as u8)
    {
        return Err(DropReason::BadPadding);
    }
    if next == proto::NONE {
        return Err(DropReason::Dummy);
    }
    pkt.trim_back(icv + 2 + pad_len)
        .map_err(|_| DropReason::Malformed)?;
    restore(tf, pkt, &at.ip, at.off + ESP_HDR + iv_len, next, at.udp)?;
    Ok(next)
}

/// After ESP or AH verified, with the protected payload starting at
/// `payload_at`: tunnel mode keeps only the inner packet and checks it
/// against the SA's selectors (RFC 4301 5.2 step 4); transport mode closes
/// the gap the IPsec header left and restores the protocol field (and, after
/// NAT traversal, the transport checksum, RFC 3948 3.1.2).
pub(crate) fn restore(
    tf: &SaCrypto,
    pkt: &mut PacketBuf<'_>,
    ip: &IpLayout,
    payload_at: usize,
    next: u8,
    natt: bool,
) -> Result<(), DropReason> {
    match tf.tunnel {
        Some(_) => {
            if next != proto::IPIP && next != proto::IPV6 {
                return Err(DropReason::Malformed);
            }
            pkt.pull_front(payload_at)
                .map_err(|_| DropReason::Malformed)?;
            let inner = layout(pkt.data()).ok_or(DropReason::Malformed)?;
            if inner.v6 != (next == proto::IPV6) {
                return Err(DropReason::Malformed);
            }
            if let Some((isrc, idst)) = tf.inner {
                if !isrc.contains(inner.src) || !idst.contains(inner.dst) {
                    return Err(DropReason::Policy);
                }
            }
        }
        None => {
            pkt.remove_gap(ip.hdr_len, payload_at - ip.hdr_len)
                .map_err(|_| DropReason::Malformed)?;
            let d = pkt.data_mut();
            d[ip.next_at] = next;
            fix_lengths(d, ip.v6);
            if natt {
                if let Some(l) = layout(pkt.data()) {
                    fix_l4_checksum(pkt.data_mut(), &l);
                }
            }
        }
    }
    Ok(())
}
