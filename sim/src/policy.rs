//! Security policy in a documented subset of illumos ipsecconf(8) syntax:
//!
//! ```text
//! {laddr 192.0.2.1 raddr 192.0.2.2/32 ulp icmp lport 0 rport 0} ipsec {encr_algs aes encr_auth_algs sha256}
//! {raddr 10.0.0.0/8} bypass {}
//! {} drop {}
//! ```
//!
//! The first rule whose selectors match decides: `ipsec` (the packet must be
//! protected by an SA: without one it is dropped, and a clear-text packet
//! that should have been protected is dropped on the way in), `bypass`
//! (clear text allowed) or `drop`. With no matching rule a packet is
//! protected when an SA matches and sent in clear otherwise. Selector
//! keywords: `laddr`, `raddr` (address or prefix), `ulp` (number or `tcp`,
//! `udp`, `icmp`, `ipv6-icmp`), `lport`, `rport`. The algorithm block of
//! `ipsec` rules is accepted and kept (`encr_algs`, `encr_auth_algs`,
//! `auth_algs`, `sa shared|unique`, `dir in|out`), but SAs are chosen by
//! their selectors alone.

use std::net::IpAddr;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ipsec,
    Bypass,
    Drop,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub laddr: Option<(IpAddr, u8)>,
    pub raddr: Option<(IpAddr, u8)>,
    pub ulp: Option<u8>,
    pub lport: Option<u16>,
    pub rport: Option<u16>,
    pub action: Action,
    /// The properties block as written (algorithms), for display.
    pub props: String,
    pub line: usize,
}

fn prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().map_err(|_| format!("{a}: not an address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let p = match p {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("/{p}: bad prefix length"))?,
        None => max,
    };
    Ok((ip, p))
}

fn contains((net, len): (IpAddr, u8), a: IpAddr) -> bool {
    esp_ah::transform::Selector {
        ip: net,
        prefix_len: len,
    }
    .contains(a)
}

fn ulp(s: &str) -> Result<u8, String> {
    Ok(match s {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "ipv6-icmp" | "icmp6" => 58,
        n => n.parse().map_err(|_| format!("{n}: not a protocol"))?,
    })
}

/// Parses a policy text (one rule per line, `#` comments).
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |m: String| format!("policy line {}: {m}", n + 1);
        let (sel, rest) = line
            .strip_prefix('{')
            .and_then(|l| l.split_once('}'))
            .ok_or_else(|| err("expected {selectors} action {properties}".into()))?;
        let rest = rest.trim();
        let (action, props) = match rest.split_once('{') {
            Some((a, p)) => (a.trim(), p.trim_end().trim_end_matches('}').trim()),
            None => (rest, ""),
        };
        let action = match action {
            "ipsec" | "apply" | "permit" => Action::Ipsec,
            "bypass" | "pass" => Action::Bypass,
            "drop" => Action::Drop,
            a => return Err(err(format!("unknown action {a:?} (ipsec, bypass, drop)"))),
        };
        let mut r = Rule {
            laddr: None,
            raddr: None,
            ulp: None,
            lport: None,
            rport: None,
            action,
            props: props.to_string(),
            line: n + 1,
        };
        let words: Vec<&str> = sel.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let v = words
                .get(i + 1)
                .ok_or_else(|| err(format!("{} needs a value", words[i])))?;
            match words[i] {
                "laddr" | "saddr" | "src" => r.laddr = Some(prefix(v).map_err(err)?),
                "raddr" | "daddr" | "dst" => r.raddr = Some(prefix(v).map_err(err)?),
                "ulp" | "proto" => r.ulp = Some(ulp(v).map_err(err)?),
                "lport" | "sport" => {
                    r.lport = Some(v.parse().map_err(|_| err(format!("{v}: not a port")))?)
                }
                "rport" | "dport" => {
                    r.rport = Some(v.parse().map_err(|_| err(format!("{v}: not a port")))?)
                }
                w => return Err(err(format!("unknown selector {w}"))),
            }
            i += 2;
        }
        rules.push(r);
    }
    Ok(rules)
}

/// The transport ports of a packet, if it has any.
fn ports(p: &[u8], l: &esp_ah::packet::IpLayout) -> (u16, u16) {
    match l.next {
        6 | 17 => {
            let o = l.hdr_len;
            match p.get(o..o + 4) {
                Some(b) => (
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                ),
                None => (0, 0),
            }
        }
        _ => (0, 0),
    }
}

/// The first rule for a packet seen from this host: `outbound` means the
/// host sends it (laddr = source), else it receives it (laddr = destination).
pub fn lookup<'r>(rules: &'r [Rule], packet: &[u8], outbound: bool) -> Option<&'r Rule> {
    let l = esp_ah::packet::layout(packet)?;
    let (sp, dp) = ports(packet, &l);
    let (local, remote, lport, rport) = if outbound {
        (l.src, l.dst, sp, dp)
    } else {
        (l.dst, l.src, dp, sp)
    };
    rules.iter().find(|r| {
        r.laddr.is_none_or(|n| contains(n, local))
            && r.raddr.is_none_or(|n| contains(n, remote))
            && r.ulp.is_none_or(|u| u == l.next)
            && r.lport.is_none_or(|p| p == lport)
            && r.rport.is_none_or(|p| p == rport)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let r = parse(
            "# comment\n{laddr 192.0.2.1 raddr 192.0.2.0/24 ulp icmp} ipsec {encr_algs aes encr_auth_algs sha256}\n{rport 53} bypass {}\n{} drop {}\n",
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].action, Action::Ipsec);
        assert_eq!(r[0].raddr, Some(("192.0.2.0".parse().unwrap(), 24)));
        assert_eq!(r[0].ulp, Some(1));
        assert_eq!(r[1].rport, Some(53));
        assert_eq!(r[2].action, Action::Drop);
        assert!(parse("{frob 1} ipsec {}")
            .unwrap_err()
            .contains("unknown selector frob"));
        assert!(parse("{laddr 1.2.3.4} fly {}")
            .unwrap_err()
            .contains("unknown action"));
        assert!(parse("laddr 1.2.3.4")
            .unwrap_err()
            .contains("expected {selectors}"));
    }
}
