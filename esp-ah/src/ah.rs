//! AH, RFC 4302, in place: transport and tunnel mode, IPv4 and IPv6.

use crate::esp::Classified;
use crate::packet::{fix_lengths, layout, proto, IpLayout, PacketBuf};
use crate::transform::SaCrypto;
use crate::DropReason;

/// Fixed part of the AH header: next header, payload length, reserved,
/// SPI, sequence number.
pub const AH_FIXED: usize = 12;
/// Longest IP header (with extension headers) this engine authenticates.
const MAX_IP_HDR: usize = 512;

/// AH length for an ICV of `icv` bytes: a multiple of 32 bits for IPv4 and
/// of 64 bits for IPv6 (RFC 4302 2.2, 3.3.3.2.1).
fn ah_len(icv: usize, v6: bool) -> usize {
    let unit = if v6 { 8 } else { 4 };
    (AH_FIXED + icv).div_ceil(unit) * unit
}

/// Copies the IP header of `p` (up to the AH header) with the fields that
/// change in transit zeroed (RFC 4302 3.3.3.1).
fn immutable_header<'b>(
    p: &[u8],
    ip: &IpLayout,
    out: &'b mut [u8; MAX_IP_HDR],
) -> Result<&'b [u8], DropReason> {
    let n = ip.hdr_len;
    let h = out.get_mut(..n).ok_or(DropReason::Malformed)?;
    h.copy_from_slice(p.get(..n).ok_or(DropReason::Malformed)?);
    if ip.v6 {
        // Traffic class, flow label, hop limit.
        h[0] &= 0xf0;
        h[1] = 0;
        h[2] = 0;
        h[3] = 0;
        h[7] = 0;
        // Hop-by-hop and destination options whose "may change en route"
        // bit (0x20 of the option type) is set: option data zeroed. Routing
        // headers are authenticated as they are on the wire.
        let (mut off, mut next) = (40usize, p[6]);
        while off < n {
            let len = if next == proto::FRAGMENT {
                8
            } else {
                (usize::from(h[off + 1]) + 1) * 8
            };
            if off + len > n {
                return Err(DropReason::Malformed);
            }
            if next == proto::HOPOPT || next == proto::DSTOPTS {
                let mut o = off + 2;
                while o < off + len {
                    let t = h[o];
                    if t == 0 {
                        o += 1;
                        continue;
                    }
                    let l = usize::from(*h.get(o + 1).ok_or(DropReason::Malformed)?);
                    if o + 2 + l > off + len {
                        return Err(DropReason::Malformed);
                    }
                    if t & 0x20 != 0 {
                        h[o + 2..o + 2 + l].fill(0);
                    }
                    o += 2 + l;
                }
            }
            next = h[off];
            off += len;
        }
    } else {
        // TOS, flags and fragment offset, TTL, checksum.
        h[1] = 0;
        h[6] = 0;
        h[7] = 0;
        h[8] = 0;
        h[10] = 0;
        h[11] = 0;
        // Options: the security, router-alert and SDMDD options are
        // immutable (RFC 4302 A.1); every other option is zeroed whole.
        let mut o = 20;
        while o < n {
            match h[o] {
                0 => break,
                1 => o += 1,
                t => {
                    let l = usize::from(*h.get(o + 1).ok_or(DropReason::Malformed)?);
                    if l < 2 || o + l > n {
                        return Err(DropReason::Malformed);
                    }
                    if !matches!(t, 130 | 133 | 134 | 148 | 149) {
                        h[o..o + l].fill(0);
                    }
                    o += l;
                }
            }
        }
    }
    Ok(h)
}

/// Protects the IP packet in `pkt` with AH.
pub fn encap(tf: &SaCrypto, seq: u64, pkt: &mut PacketBuf<'_>) -> Result<(), DropReason> {
    let integ = tf.integ.as_deref().ok_or(DropReason::Malformed)?;
    let icv = integ.icv_len();
    let inner = layout(pkt.data()).ok_or(DropReason::Malformed)?;
    let (outer_v6, outer_len) = match tf.tunnel {
        Some(t) if t.dst.is_ipv6() => (true, 40),
        Some(_) => (false, 20),
        None => (inner.v6, 0),
    };
    let grown = pkt.len() + outer_len + ah_len(icv, outer_v6);
    if !crate::packet::fits_ip_length(grown, outer_v6) {
        return Err(DropReason::NoRoom);
    }
    let (v6, off, next) = match tf.tunnel {
        Some(t) => {
            let v6 = t.dst.is_ipv6();
            let outer_len = if v6 { 40 } else { 20 };
            let len = ah_len(icv, v6);
            let tos = if inner.v6 {
                (pkt.data()[0] << 4) | (pkt.data()[1] >> 4)
            } else {
                pkt.data()[1]
            };
            pkt.push_front(outer_len + len)
                .map_err(|_| DropReason::NoRoom)?;
            crate::esp::write_outer(&mut pkt.data_mut()[..outer_len], t.src, t.dst, tos);
            (
                v6,
                outer_len,
                if inner.v6 { proto::IPV6 } else { proto::IPIP },
            )
        }
        None => {
            if inner.fragment {
                return Err(DropReason::Fragment);
            }
            pkt.insert_gap(inner.hdr_len, ah_len(icv, inner.v6))
                .map_err(|_| DropReason::NoRoom)?;
            (inner.v6, inner.hdr_len, inner.next)
        }
    };
    let len = ah_len(icv, v6);
    let d = pkt.data_mut();
    let next_at = if tf.tunnel.is_some() {
        if v6 {
            6
        } else {
            9
        }
    } else {
        inner.next_at
    };
    d[next_at] = proto::AH;
    d[off] = next;
    d[off + 1] = (len / 4 - 2) as u8;
    d[off + 2] = 0;
    d[off + 3] = 0;
    d[off + 4..off + 8].copy_from_slice(&tf.spi.to_be_bytes());
    d[off + 8..off + 12].copy_from_slice(&(seq as u32).to_be_bytes());
    d[off + AH_FIXED..off + len].fill(0);
    fix_lengths(d, v6);
    let ip = layout(d).ok_or(DropReason::Malformed)?;
    let mut scratch = [0u8; MAX_IP_HDR];
    let hdr = immutable_header(d, &ip, &mut scratch)?;
    let hi = ((seq >> 32) as u32).to_be_bytes();
    let esn: &[u8] = if tf.esn { &hi } else { &[] };
    let mut out = [0u8; 64];
    integ.compute(&[hdr, &d[off..], esn], &mut out[..icv]);
    d[off + AH_FIXED..off + AH_FIXED + icv].copy_from_slice(&out[..icv]);
    Ok(())
}

/// Verifies the AH packet found by [`crate::esp::classify`] and removes
/// AH (transport) or the outer header and AH (tunnel). Returns the next
/// header value.
pub fn decap(
    tf: &SaCrypto,
    found: &Classified,
    seq: u64,
    pkt: &mut PacketBuf<'_>,
) -> Result<u8, DropReason> {
    let Classified::Ah { ip, off, .. } = *found else {
        return Err(DropReason::Malformed);
    };
    let integ = tf.integ.as_deref().ok_or(DropReason::Malformed)?;
    let icv = integ.icv_len();
    let d = pkt.data_mut();
    let next = *d.get(off).ok_or(DropReason::Malformed)?;
    let len = (usize::from(*d.get(off + 1).ok_or(DropReason::Malformed)?) + 2) * 4;
    if len < AH_FIXED + icv || off + len > d.len() {
        return Err(DropReason::Malformed);
    }
    let mut got = [0u8; 64];
    got[..icv].copy_from_slice(&d[off + AH_FIXED..off + AH_FIXED + icv]);
    // RFC 4302 3.3.3.2.1: only the ICV is zeroed for the computation; the
    // padding after it is authenticated as received (Linux fills it with
    // non-zero bytes).
    d[off + AH_FIXED..off + AH_FIXED + icv].fill(0);
    let mut scratch = [0u8; MAX_IP_HDR];
    let hdr = immutable_header(d, &ip, &mut scratch)?;
    let hi = ((seq >> 32) as u32).to_be_bytes();
    let esn: &[u8] = if tf.esn { &hi } else { &[] };
    let verified = integ.verify(&[hdr, &d[off..], esn], &got[..icv]);
    d[off + AH_FIXED..off + AH_FIXED + icv].copy_from_slice(&got[..icv]);
    verified.map_err(|_| DropReason::BadIcv)?;
    crate::esp::restore(tf, pkt, &ip, off + len, next, false)?;
    Ok(next)
}
