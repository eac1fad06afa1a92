//! Interop: a simulated host of this project (`sim live`) and the Linux
//! kernel's own IPsec stack (Debian's 6.1 under qemu, see `vm.rs`) ping
//! each other through ESP and AH, on one Ethernet link made of UDP
//! datagrams on 127.0.0.1 (qemu's `-netdev dgram`: no root, no TAP).
//!
//! Who installs what: in the guest, SAs go in with this project's
//! `ipseckey --kernel=pfkey|xfrm -f FILE`, the SPD policies that make
//! Linux use them with iproute2's `ip xfrm policy` (ipseckey, like
//! illumos's, manages SAs only); in the simulator, the same SA file goes
//! in with `ipseckey --socket HOST.sock -f FILE` (a simulated host
//! protects what an SA matches: it needs no policy).
//!
//! One boot runs every case. The guest drives, the test follows its
//! console:
//!
//! 1. guest: SAs and policies in, then `@@CASE NAME READY`;
//! 2. test: flushes the simulator's SAs, loads the case's, and has the
//!    simulated host ping the guest ([`PINGS`] echo requests);
//! 3. guest: waits until its inbound SA has opened those requests (so it
//!    knows the simulator is keyed), pings the simulated host, prints its
//!    SAs' counters (`ip -s xfrm state` and `ipseckey --json dump`), then
//!    `@@CASE NAME DONE`;
//! 4. test: reads the simulator's counters (`counters json`) and compares
//!    them with the guest's, SA by SA.
//!
//! What must agree, per SA: the packets (each side counts every packet
//! the SA protected or opened: 2 x [`PINGS`] each way), and the bytes,
//! once both count the same thing (see [`linux_bytes`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use ipsec_blackbox::vm::{self, KernelVm, RunOpts, RunningVm};
use serde_json::Value;

/// Echo requests each side sends per case.
const PINGS: u64 = 3;
/// The guest's NAT-T port. Not 4500, as if a NAT had mapped it: the two
/// ends' ports differ, so each side must put its own and the peer's
/// port the right way round on both SAs (illumos's nat_lport/nat_rport
/// are this host's and the peer's; Linux's encap sport/dport follow the
/// SA's direction).
const GUEST_NATT_PORT: u16 = 4501;

const G4: &str = "192.0.2.2";
const S4: &str = "192.0.2.1";
const G6: &str = "2001:db8::2";
const S6: &str = "2001:db8::1";
/// Tunnel mode: the guest's inner address (on its loopback) and the LAN
/// behind the simulated gateway, with the simulated host on it.
const GI4: &str = "10.1.0.2";
const LAN4: &str = "10.2.0.0/24";
const LANHOST4: &str = "10.2.0.10";
const GI6: &str = "2001:db8:1::2";
const LAN6: &str = "2001:db8:2::/64";
const LANHOST6: &str = "2001:db8:2::10";

/// Test vectors, not secrets: one key per direction.
const AES: [&str; 2] = [
    "00112233445566778899aabbccddeeff",
    "ffeeddccbbaa99887766554433221100",
];
const SHA1: [&str; 2] = [
    "0102030405060708090a0b0c0d0e0f1011121314",
    "1415161718191a1b1c1d1e1f2021222324252627",
];
const SHA256: [&str; 2] = [
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
];
/// AES-128 key and 4-byte salt (RFC 4106).
const GCM: [&str; 2] = [
    "000102030405060708090a0b0c0d0e0f10111213",
    "202122232425262728292a2b2c2d2e2f30313233",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    /// ESP AES-CBC-128 + HMAC-SHA1-96.
    CbcSha1,
    /// ESP AES-GCM-128, 16-byte ICV.
    Gcm,
    /// AH HMAC-SHA1-96.
    AhSha1,
    /// AH HMAC-SHA-256-128.
    AhSha256,
}

impl Alg {
    fn proto(self) -> &'static str {
        match self {
            Alg::CbcSha1 | Alg::Gcm => "esp",
            Alg::AhSha1 | Alg::AhSha256 => "ah",
        }
    }

    /// The ipseckey words for direction `d` (0: guest to simulator).
    fn words(self, d: usize) -> String {
        match self {
            Alg::CbcSha1 => format!(
                "encralg aes encrkey {} authalg sha1 authkey {}",
                AES[d], SHA1[d]
            ),
            Alg::Gcm => format!("encralg aes-gcm encrkey {}", GCM[d]),
            Alg::AhSha1 => format!("authalg sha1 authkey {}", SHA1[d]),
            Alg::AhSha256 => format!("authalg sha256 authkey {}", SHA256[d]),
        }
    }
}

/// Who loads an SA file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Guest,
    Sim,
}

/// One interop case: a pair of SAs (guest to simulator, and back).
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    /// How the guest's SAs go in: `ipseckey --kernel=pfkey` or `=xfrm`.
    kernel: &'static str,
    v6: bool,
    alg: Alg,
    tunnel: bool,
    /// ESP in UDP (RFC 3948): the simulator on port 4500, the guest on
    /// [`GUEST_NATT_PORT`].
    natt: bool,
    /// SPI of guest -> simulator; the way back is `spi + 1`.
    spi: u32,
}

/// Every case, run in this order in one boot. Linux PF_KEY has no AEAD
/// and no HMAC-SHA-256 with RFC 4868's ICV, so those go through XFRM.
fn cases() -> Vec<Case> {
    let c = |name, kernel, v6, alg, tunnel, natt, spi| Case {
        name,
        kernel,
        v6,
        alg,
        tunnel,
        natt,
        spi,
    };
    vec![
        c(
            "esp4-cbc-sha1",
            "pfkey",
            false,
            Alg::CbcSha1,
            false,
            false,
            0x100,
        ),
        c("esp4-gcm", "xfrm", false, Alg::Gcm, false, false, 0x200),
        c(
            "esp6-cbc-sha1",
            "pfkey",
            true,
            Alg::CbcSha1,
            false,
            false,
            0x300,
        ),
        c("esp6-gcm", "xfrm", true, Alg::Gcm, false, false, 0x400),
        c("ah4-sha1", "pfkey", false, Alg::AhSha1, false, false, 0x500),
        c(
            "ah6-sha256",
            "xfrm",
            true,
            Alg::AhSha256,
            false,
            false,
            0x600,
        ),
        c(
            "esp4-tunnel-gcm",
            "xfrm",
            false,
            Alg::Gcm,
            true,
            false,
            0x700,
        ),
        c(
            "esp6-tunnel-cbc-sha1",
            "pfkey",
            true,
            Alg::CbcSha1,
            true,
            false,
            0x800,
        ),
        c(
            "esp4-natt-cbc-sha1",
            "pfkey",
            false,
            Alg::CbcSha1,
            false,
            true,
            0x900,
        ),
        c(
            "esp4-natt-tunnel-gcm",
            "xfrm",
            false,
            Alg::Gcm,
            true,
            true,
            0xa00,
        ),
        // IPv6 NAT-T: tunnel mode only (the simulator, as illumos, takes
        // IPv4 NAT-T original addresses only, and transport mode wants one).
        c(
            "esp6-natt-tunnel-cbc-sha1",
            "pfkey",
            true,
            Alg::CbcSha1,
            true,
            true,
            0xb00,
        ),
    ]
}

impl Case {
    /// (guest, simulator) outer addresses.
    fn outer(&self) -> (&'static str, &'static str) {
        if self.v6 {
            (G6, S6)
        } else {
            (G4, S4)
        }
    }

    /// (guest's address the simulator pings, simulator's address the
    /// guest pings): the outer ones, or in tunnel mode the inner ones.
    fn ends(&self) -> (&'static str, &'static str) {
        match (self.tunnel, self.v6) {
            (false, _) => self.outer(),
            (true, false) => (GI4, LANHOST4),
            (true, true) => (GI6, LANHOST6),
        }
    }

    /// The simulated host that pings (tunnel mode: the host on the LAN
    /// behind the gateway).
    fn pinger(&self) -> &'static str {
        if self.tunnel {
            "lan"
        } else {
            "sim"
        }
    }

    /// The SA file side `side` loads. Both load the same SAs; only
    /// transport-mode NAT-T differs: the simulator, like illumos, wants
    /// the peer's original address (`nat_rem`, RFC 3948 3.1.2's checksum
    /// fix-up) where Linux takes ports only (ipseckey refuses NAT-T
    /// addresses for Linux).
    fn keys(&self, side: Side) -> String {
        let (g, s) = self.outer();
        let (gi, lan) = if self.v6 {
            (format!("{GI6}/128"), LAN6)
        } else {
            (format!("{GI4}/32"), LAN4)
        };
        let tproto = if self.v6 { 41 } else { 4 };
        let mut out = String::new();
        for (d, spi, src, dst) in [(0, self.spi, g, s), (1, self.spi + 1, s, g)] {
            let mut l = format!("add {} spi 0x{spi:x} src {src} dst {dst}", self.alg.proto());
            if self.tunnel {
                let (isrc, idst) = if d == 0 {
                    (gi.as_str(), lan)
                } else {
                    (lan, gi.as_str())
                };
                let _ = write!(l, " proto {tproto} isrc {isrc} idst {idst}");
            }
            if self.natt {
                l.push_str(" encap udp");
                if side == Side::Sim && !self.tunnel {
                    let _ = write!(l, " nat_rem {g}");
                }
                let (lport, rport) = match side {
                    Side::Guest => (GUEST_NATT_PORT, 4500),
                    Side::Sim => (4500, GUEST_NATT_PORT),
                };
                let _ = write!(l, " nat_lport {lport} nat_rport {rport}");
            }
            let _ = writeln!(l, " {}", self.alg.words(d));
            out.push_str(&l);
        }
        out
    }

    /// The guest's `ip xfrm policy` commands (and the addresses and
    /// routes tunnel mode needs), and how to undo them.
    fn guest_setup(&self) -> (Vec<String>, Vec<String>) {
        let (g, s) = self.outer();
        let p = self.alg.proto();
        let mode = if self.tunnel { "tunnel" } else { "transport" };
        let tmpl = |src: &str, dst: &str| format!("tmpl src {src} dst {dst} proto {p} mode {mode}");
        let mut up = Vec::new();
        let mut down = Vec::new();
        if self.tunnel {
            let (gi, lan, plen) = if self.v6 {
                (GI6, LAN6, 128)
            } else {
                (GI4, LAN4, 32)
            };
            let six = if self.v6 { "-6 " } else { "" };
            up.push(format!("ip {six}addr add {gi}/{plen} dev lo"));
            up.push(format!("ip {six}route add {lan} via {s} src {gi}"));
            up.push(format!(
                "ip xfrm policy add src {gi}/{plen} dst {lan} dir out {}",
                tmpl(g, s)
            ));
            up.push(format!(
                "ip xfrm policy add src {lan} dst {gi}/{plen} dir in {}",
                tmpl(s, g)
            ));
            down.push(format!("ip {six}route del {lan}"));
            down.push(format!("ip {six}addr del {gi}/{plen} dev lo"));
        } else if self.v6 {
            // Echo requests and replies only: neighbour discovery between
            // the same addresses stays in clear on both sides.
            for ty in [128, 129] {
                up.push(format!(
                    "ip xfrm policy add src {g}/128 dst {s}/128 proto 58 type {ty} dir out {}",
                    tmpl(g, s)
                ));
                up.push(format!(
                    "ip xfrm policy add src {s}/128 dst {g}/128 proto 58 type {ty} dir in {}",
                    tmpl(s, g)
                ));
            }
        } else {
            up.push(format!(
                "ip xfrm policy add src {g}/32 dst {s}/32 proto 1 dir out {}",
                tmpl(g, s)
            ));
            up.push(format!(
                "ip xfrm policy add src {s}/32 dst {g}/32 proto 1 dir in {}",
                tmpl(s, g)
            ));
        }
        (up, down)
    }
}

/// The guest's /test.sh: every case in turn, results on the console.
fn guest_script(cases: &[Case]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # generated by tests/kernel_interop.rs\n\
         dmesg -n 1 2>/dev/null\n\
         ip() { /usr/sbin/ip \"$@\"; }\n\
         echo \"@@INFO kernel $(uname -r)\"\n\
         # inbound_packets SRC DST PROTO SPI: what the SA opened so far\n\
         inbound_packets() {\n\
         \tip -s xfrm state get src \"$1\" dst \"$2\" proto \"$3\" spi \"$4\" 2>/dev/null |\n\
         \t\tsed -n 's/^[ \\t]*[0-9]*(bytes), \\([0-9]*\\)(packets).*/\\1/p' | head -n 1\n\
         }\n",
    );
    // NAT-T: Linux opens ESP in UDP only on a socket marked for it.
    let _ = writeln!(s, "/bin/udp-encap {GUEST_NATT_PORT} &\nsleep 0.2");
    for c in cases {
        let (g, sim) = c.outer();
        let (gping, sping) = c.ends();
        let n = c.name;
        let (up, down) = c.guest_setup();
        let _ = writeln!(s, "echo '@@CASE {n} SETUP'");
        let _ = writeln!(s, "ip xfrm state flush; ip xfrm policy flush");
        let _ = writeln!(
            s,
            "cat > /tmp/keys <<'@@EOF'\n{}@@EOF\nchmod 600 /tmp/keys",
            c.keys(Side::Guest)
        );
        let _ = writeln!(
            s,
            "/bin/ipseckey --kernel={} -f /tmp/keys >/tmp/out 2>&1; echo \"@@KEYS {n} rc=$?\"; sed 's/^/@K|/' /tmp/out",
            c.kernel
        );
        for cmd in &up {
            let _ = writeln!(
                s,
                "{cmd} || echo '@@SETUP-FAILED {n} {}'",
                cmd.replace('\'', "")
            );
        }
        let _ = writeln!(s, "echo '@@CASE {n} READY'");
        // Wait for the simulator's echo requests (it is keyed then).
        let _ = writeln!(
            s,
            "i=0; while [ $i -lt 150 ]; do got=$(inbound_packets {sim} {g} {p} 0x{spi:x}); \
             [ \"${{got:-0}}\" -ge {PINGS} ] && break; sleep 0.2; i=$((i + 1)); done",
            p = c.alg.proto(),
            spi = c.spi + 1,
        );
        let src = if c.tunnel {
            format!("-I {gping} ")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "ping -c {PINGS} -i 0.3 -W 3 {src}{sping} >/tmp/ping 2>&1; \
             echo \"@@PING {n} $(sed -n 's/.* \\([0-9]*\\) packets received.*/\\1/p' /tmp/ping)\"; \
             sed 's/^/@P|/' /tmp/ping"
        );
        // Keys (long hex strings) never reach the console.
        let _ = writeln!(
            s,
            "ip -s xfrm state | sed -e 's/0x[0-9a-f]\\{{16,\\}}/<key>/g' -e 's/^/@X|/'"
        );
        let _ = writeln!(
            s,
            "/bin/ipseckey --kernel={} -p --json dump 2>&1 | sed 's/^/@J|/'",
            c.kernel
        );
        let _ = writeln!(s, "echo '@@CASE {n} DONE'");
        let _ = writeln!(s, "ip xfrm state flush; ip xfrm policy flush");
        for cmd in &down {
            let _ = writeln!(s, "{cmd}");
        }
    }
    s.push_str(
        "echo '@@XFRM-STAT'\nsed 's/^/@S|/' /proc/net/xfrm_stat\necho '@@ALL-DONE'\nexit 0\n",
    );
    s
}

/// One SA's counters as one side saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Count {
    packets: u64,
    bytes: u64,
}

/// `ip -s xfrm state` output: SPI -> the state's current lifetime.
fn parse_ip_xfrm(lines: &[&str]) -> BTreeMap<u32, Count> {
    let mut out = BTreeMap::new();
    let mut spi = None;
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let Some(i) = w.iter().position(|x| *x == "spi") {
            // "spi 0x00000101(257)"
            spi = w.get(i + 1).and_then(|s| {
                let hex = s.trim_start_matches("0x").split('(').next()?;
                u32::from_str_radix(hex, 16).ok()
            });
        }
        // "  84(bytes), 1(packets)" under "lifetime current:".
        if let [b, p] = w.as_slice() {
            let num =
                |s: &str, unit: &str| s.trim_end_matches(',').strip_suffix(unit)?.parse().ok();
            if let (Some(bytes), Some(packets), Some(s)) =
                (num(b, "(bytes)"), num(p, "(packets)"), spi)
            {
                out.insert(s, Count { packets, bytes });
            }
        }
    }
    out
}

/// `ip -s xfrm state` output: SPI -> the UDP ports of its encapsulation
/// ("encap type espinudp sport 4500 dport 4501 addr 0.0.0.0").
fn parse_ip_encap(lines: &[&str]) -> BTreeMap<u32, (u16, u16)> {
    let mut out = BTreeMap::new();
    let mut spi = None;
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        let after = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1));
        if let Some(s) = after("spi") {
            spi = s
                .trim_start_matches("0x")
                .split('(')
                .next()
                .and_then(|h| u32::from_str_radix(h, 16).ok());
        }
        if w.first() == Some(&"encap") {
            let port = |k| after(k).and_then(|p| p.parse().ok());
            if let (Some(s), Some(sp), Some(dp)) = (spi, port("sport"), port("dport")) {
                out.insert(s, (sp, dp));
            }
        }
    }
    out
}

/// `ipseckey --json dump` output: SPI -> the current lifetime.
fn parse_ipseckey_json(lines: &[&str]) -> BTreeMap<u32, Count> {
    let mut out = BTreeMap::new();
    for l in lines {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let spi = v["sa"]["spi"]
            .as_str()
            .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok());
        let cur = &v["lifetime"]["current"];
        if let (Some(spi), Some(packets), Some(bytes)) =
            (spi, cur["allocations"].as_u64(), cur["bytes"].as_u64())
        {
            out.insert(spi, Count { packets, bytes });
        }
    }
    out
}

/// The simulator's count for SA `spi` of host `host` (an SA counts one
/// way only: out for the SAs it protects with, in for those it opens).
fn sim_count(counters: &Value, host: &str, spi: u32) -> Option<Count> {
    let want = format!("0x{spi:x}");
    let sa = counters["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["name"] == host)?["sas"]
        .as_array()?
        .iter()
        .find(|s| s["spi"] == want.as_str())?
        .clone();
    let n = |k: &str| sa[k].as_u64().unwrap_or(0);
    Some(Count {
        packets: n("packets_out") + n("packets_in"),
        bytes: n("bytes_out") + n("bytes_in"),
    })
}

/// How the frames of one SPI crossed the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Wire {
    esp: u64,
    /// ESP in UDP (RFC 3948) between the two NAT-T ports.
    esp_udp: u64,
    ah: u64,
}

/// Frames per SPI in an Ethernet pcap: ESP, ESP in UDP between ports
/// 4500 and [`GUEST_NATT_PORT`] (either way), and AH
/// directly behind an IPv4 or IPv6 header (what this test sends).
fn wire_frames(pcap: &[u8]) -> Result<BTreeMap<u32, Wire>, String> {
    let mut out: BTreeMap<u32, Wire> = BTreeMap::new();
    let mut r = pcap_file::pcap::PcapReader::new(pcap).map_err(|e| e.to_string())?;
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.map_err(|e| e.to_string())?;
        let f = &pkt.data[..];
        let Some(et) = f.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            continue;
        };
        let (proto, l4) = match (et, f.get(14)) {
            (0x0800, Some(v)) => (f.get(23).copied(), 14 + usize::from(v & 0x0f) * 4),
            (0x86dd, Some(_)) => (f.get(20).copied(), 14 + 40),
            _ => continue,
        };
        let be32 = |o: usize| {
            f.get(o..o + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let be16 = |o: usize| f.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        match proto {
            Some(50) => {
                if let Some(spi) = be32(l4) {
                    out.entry(spi).or_default().esp += 1;
                }
            }
            Some(51) => {
                if let Some(spi) = be32(l4 + 4) {
                    out.entry(spi).or_default().ah += 1;
                }
            }
            Some(17)
                if matches!(
                    (be16(l4), be16(l4 + 2)),
                    (Some(4500), Some(GUEST_NATT_PORT)) | (Some(GUEST_NATT_PORT), Some(4500))
                ) =>
            {
                // A zero "SPI" is IKE's non-ESP marker (RFC 3948 2.2).
                if let Some(spi) = be32(l4 + 8).filter(|&s| s != 0) {
                    out.entry(spi).or_default().esp_udp += 1;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What case `c`'s SAs must have put on the wire, per SPI: every packet
/// either SA counted, in the case's encapsulation and no other.
fn expected_wire(c: &Case) -> Wire {
    let n = 2 * PINGS;
    match (c.alg.proto(), c.natt) {
        ("ah", _) => Wire {
            ah: n,
            ..Wire::default()
        },
        (_, true) => Wire {
            esp_udp: n,
            ..Wire::default()
        },
        _ => Wire {
            esp: n,
            ..Wire::default()
        },
    }
}

/// Wireshark's reading of the capture, when tshark is installed: frames
/// per ESP or AH SPI (it decodes UDP 4500 as ESP by itself).
fn tshark_spis(pcap: &Path) -> Option<BTreeMap<u32, u64>> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "esp.spi", "-e", "ah.spi"])
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let mut out = BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        for f in l.split('\t').filter(|f| !f.is_empty()) {
            // "0x00000101" (or a list when a frame has two headers).
            for v in f.split(',') {
                if let Ok(spi) = u32::from_str_radix(v.trim().trim_start_matches("0x"), 16) {
                    *out.entry(spi).or_insert(0) += 1;
                }
            }
        }
    }
    Some(out)
}

/// What Linux counts as an SA's bytes, from what the simulator counts.
///
/// Both count the bytes an SA protected, before protection, but draw the
/// line in different places in transport mode: Linux counts the payload
/// after the IP header (`xfrm_output_one` and `xfrm_input` add `skb->len`
/// when the skb starts past the header), the simulator the whole IP
/// packet. In tunnel mode both count the inner IP packet. The packets
/// here carry no IP options or IPv6 extension headers, so the difference
/// is exactly one 20- or 40-byte header per packet.
fn linux_bytes(c: &Case, sim: Count) -> u64 {
    if c.tunnel {
        sim.bytes
    } else {
        let header = if c.v6 { 40 } else { 20 };
        sim.bytes.saturating_sub(sim.packets * header)
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A binary of the `ipseckey` package, built when missing.
fn cli_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "ipseckey", "--bin", name])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building {name} failed");
    }
    p
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// The `sim live` process, driven through its standard input.
struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Sim {
    fn start(config: &Path, dir: &Path, stderr: &Path) -> Result<Sim, String> {
        let err = std::fs::File::create(stderr).map_err(|e| e.to_string())?;
        let mut child = Command::new(cli_bin("sim"))
            .args(["live", "--json", "--serve"])
            .arg(dir)
            .arg("--dir")
            .arg(dir)
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("sim live: {e}"))?;
        let out = child.stdout.take().ok_or("sim live: no stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut s = Sim {
            child,
            stdin,
            rx,
            seen: Vec::new(),
        };
        s.event("ready", Duration::from_secs(20))?;
        Ok(s)
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let s = self.stdin.as_mut().ok_or("sim live: stdin closed")?;
        writeln!(s, "{line}")
            .and_then(|_| s.flush())
            .map_err(|e| format!("sim live: {e}"))
    }

    /// The next JSON event of kind `kind`.
    fn event(&mut self, kind: &str, timeout: Duration) -> Result<Value, String> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Ok(l) = self.rx.recv_timeout(left) else {
                break;
            };
            self.seen.push(l.clone());
            let v: Value = serde_json::from_str(&l).map_err(|e| format!("{e}: {l}"))?;
            if v["event"] == "error" {
                return Err(format!("sim live: {l}"));
            }
            if v["event"] == kind {
                return Ok(v);
            }
        }
        Err(format!("sim live: no {kind} event within {timeout:?}"))
    }

    fn stop(mut self) -> bool {
        let _ = self.send("quit");
        drop(self.stdin.take());
        matches!(self.child.wait(), Ok(s) if s.success())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `ipseckey` against the simulated host's socket.
fn sim_ipseckey(ipseckey: &Path, sock: &Path, args: &[&str]) -> Result<(), String> {
    let o = Command::new(ipseckey)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .map_err(|e| format!("ipseckey: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ipseckey {args:?} on the simulator: {}",
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    f.write_all(text.as_bytes()).expect("key file");
}

/// One SA's counters: (SPI, `ip -s xfrm state`, `ipseckey --json dump`,
/// the simulator).
type SaCounts = (u32, Option<Count>, Option<Count>, Option<Count>);

/// What one case gave.
#[derive(Debug, Default)]
struct Outcome {
    /// Echo replies the simulated host got, and the guest.
    sim_ping: Option<u64>,
    guest_ping: Option<u64>,
    /// Per SPI: (ip -s xfrm, ipseckey --json dump, simulator).
    sas: Vec<SaCounts>,
    /// Per SPI: the guest SA's ESP-in-UDP (source, destination) ports.
    encap: BTreeMap<u32, (u16, u16)>,
    errors: Vec<String>,
}

/// The console lines of case `name`'s block with prefix `tag`.
fn block<'a>(console: &'a [String], name: &str, tag: &str) -> Vec<&'a str> {
    let start = format!("@@CASE {name} READY");
    let end = format!("@@CASE {name} DONE");
    console
        .iter()
        .skip_while(|l| **l != start)
        .take_while(|l| **l != end)
        .filter_map(|l| l.strip_prefix(tag))
        .collect()
}

fn run_case(
    c: &Case,
    vm: &mut RunningVm,
    sim: &mut Sim,
    ipseckey: &Path,
    dir: &Path,
    first: bool,
) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let ready = format!("@@CASE {} READY", c.name);
    let wait = Duration::from_secs(if first { 240 } else { 90 });
    vm.wait_for(wait, |l| l == ready)
        .ok_or_else(|| format!("{}: the guest never said READY", c.name))?;
    let sock = dir.join("sim.sock");
    let keys = dir.join(format!("{}.keys", c.name));
    write_private(&keys, &c.keys(Side::Sim));
    sim_ipseckey(ipseckey, &sock, &["flush"])?;
    sim_ipseckey(ipseckey, &sock, &["-f", &keys.to_string_lossy()])?;
    let (target, _) = c.ends();
    sim.send(&format!(
        "ping {} {target} count {PINGS} interval 300ms timeout 3s",
        c.pinger()
    ))?;
    let p = sim.event("ping", Duration::from_secs(60))?;
    o.sim_ping = p["received"].as_u64();
    let done = format!("@@CASE {} DONE", c.name);
    vm.wait_for(Duration::from_secs(90), |l| l == done)
        .ok_or_else(|| format!("{}: the guest never said DONE", c.name))?;
    sim.send("counters json")?;
    let counters = sim.event("counters", Duration::from_secs(20))?;
    let pings = format!("@@PING {} ", c.name);
    o.guest_ping = vm
        .console
        .iter()
        .find_map(|l| l.strip_prefix(&pings))
        .and_then(|n| n.trim().parse().ok());
    let keys_rc = format!("@@KEYS {} rc=0", c.name);
    if !vm.console.contains(&keys_rc) {
        o.errors.push(format!(
            "ipseckey --kernel={} -f failed in the guest: {}",
            c.kernel,
            vm.console
                .iter()
                .skip_while(|l| !l.starts_with(&format!("@@KEYS {} ", c.name)))
                .take_while(|l| !l.starts_with("@@CASE"))
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    let setup_failed = format!("@@SETUP-FAILED {} ", c.name);
    for l in vm.console.iter().filter(|l| l.starts_with(&setup_failed)) {
        o.errors.push(l.clone());
    }
    let ip = parse_ip_xfrm(&block(&vm.console, c.name, "@X|"));
    let js = parse_ipseckey_json(&block(&vm.console, c.name, "@J|"));
    o.encap = parse_ip_encap(&block(&vm.console, c.name, "@X|"));
    for spi in [c.spi, c.spi + 1] {
        o.sas.push((
            spi,
            ip.get(&spi).copied(),
            js.get(&spi).copied(),
            sim_count(&counters, "sim", spi),
        ));
    }
    Ok(o)
}

/// The verdict on one case: empty when everything agrees.
fn judge(c: &Case, o: &Outcome) -> Vec<String> {
    let mut errs = o.errors.clone();
    if o.sim_ping != Some(PINGS) {
        errs.push(format!(
            "simulator -> guest: {:?} of {PINGS} echo replies",
            o.sim_ping
        ));
    }
    if o.guest_ping != Some(PINGS) {
        errs.push(format!(
            "guest -> simulator: {:?} of {PINGS} echo replies",
            o.guest_ping
        ));
    }
    if c.natt {
        // Guest to simulator from the guest's port to 4500; the way back,
        // as Linux keeps an inbound SA, from the simulator's port.
        for (spi, want) in [
            (c.spi, (GUEST_NATT_PORT, 4500)),
            (c.spi + 1, (4500, GUEST_NATT_PORT)),
        ] {
            if o.encap.get(&spi) != Some(&want) {
                errs.push(format!(
                    "SA 0x{spi:x}: Linux encap ports {:?}, expected {want:?}",
                    o.encap.get(&spi)
                ));
            }
        }
    } else if !o.encap.is_empty() {
        errs.push(format!(
            "UDP encapsulation where none was asked: {:?}",
            o.encap
        ));
    }
    for (spi, ip, js, sim) in &o.sas {
        let (Some(ip), Some(js), Some(sim)) = (ip, js, sim) else {
            errs.push(format!(
                "SA 0x{spi:x}: missing counters (ip {ip:?}, ipseckey {js:?}, sim {sim:?})"
            ));
            continue;
        };
        if ip != js {
            errs.push(format!(
                "SA 0x{spi:x}: ipseckey --json dump says {js:?}, ip -s xfrm state {ip:?}"
            ));
        }
        // Each way: the simulator's echo requests and the guest's
        // replies, the guest's requests and the simulator's replies.
        if ip.packets != 2 * PINGS || sim.packets != ip.packets {
            errs.push(format!(
                "SA 0x{spi:x}: packets: Linux {}, simulator {}, expected {}",
                ip.packets,
                sim.packets,
                2 * PINGS
            ));
        }
        if ip.bytes != linux_bytes(c, *sim) {
            errs.push(format!(
                "SA 0x{spi:x}: bytes: Linux {}, simulator {} (as Linux counts: {})",
                ip.bytes,
                sim.bytes,
                linux_bytes(c, *sim)
            ));
        }
    }
    errs
}

fn table(cases: &[Case], outcomes: &[Option<Outcome>], wire: &BTreeMap<u32, Wire>) -> String {
    let mut t = format!(
        "{:<26} {:<6} {:<7} {:>10} {:>5} {:>5} {:>13} {:>13} {:>9}  verdict\n",
        "case", "kernel", "SA", "dir", "ping>", "ping<", "Linux pk/B", "sim pk/B", "wire"
    );
    let on_wire = |spi: &u32| match wire.get(spi) {
        Some(w) if w.esp_udp > 0 && w.esp + w.ah == 0 => format!("{} udp", w.esp_udp),
        Some(w) if w.esp > 0 && w.esp_udp + w.ah == 0 => format!("{} esp", w.esp),
        Some(w) if w.ah > 0 && w.esp + w.esp_udp == 0 => format!("{} ah", w.ah),
        Some(_) => "mixed".into(),
        None => "-".into(),
    };
    let show = |c: &Option<Count>| match c {
        Some(c) => format!("{}/{}", c.packets, c.bytes),
        None => "-".into(),
    };
    for (c, o) in cases.iter().zip(outcomes) {
        let Some(o) = o else {
            let _ = writeln!(t, "{:<26} {:<6} not run", c.name, c.kernel);
            continue;
        };
        let wire_ok = [c.spi, c.spi + 1]
            .iter()
            .all(|s| wire.get(s).copied().unwrap_or_default() == expected_wire(c));
        let verdict = if judge(c, o).is_empty() && wire_ok {
            "ok"
        } else {
            "MISMATCH"
        };
        for (k, (spi, ip, _, sim)) in o.sas.iter().enumerate() {
            let ping = |p: Option<u64>| p.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                t,
                "{:<26} {:<6} {:<7} {:>10} {:>5} {:>5} {:>13} {:>13} {:>9}  {}",
                if k == 0 { c.name } else { "" },
                if k == 0 { c.kernel } else { "" },
                format!("0x{spi:x}"),
                if k == 0 { "guest->sim" } else { "sim->guest" },
                if k == 0 {
                    ping(o.sim_ping)
                } else {
                    String::new()
                },
                if k == 0 {
                    ping(o.guest_ping)
                } else {
                    String::new()
                },
                show(ip),
                show(sim),
                on_wire(spi),
                if k == 0 { verdict } else { "" },
            );
        }
    }
    t
}

#[test]
fn interop_key_files_are_valid_ipseckey_input() {
    // Every case's SA file parses (`ipseckey -c`), so a failure in the VM
    // is never a typo here.
    let ipseckey = cli_bin("ipseckey");
    let dir = std::env::temp_dir().join(format!("interop-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for c in cases() {
        for side in [Side::Guest, Side::Sim] {
            let text = c.keys(side);
            let f = dir.join(c.name);
            write_private(&f, &text);
            let o = Command::new(&ipseckey)
                .arg("-c")
                .arg(&f)
                .output()
                .expect("ipseckey -c");
            assert!(
                o.status.success(),
                "{} ({side:?}):\n{text}\n{}",
                c.name,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counters_are_read_from_ip_and_ipseckey_output() {
    let ip = "src 192.0.2.1 dst 192.0.2.2\n\
              \tproto esp spi 0x00000101(257) reqid 0(0x00000000) mode transport\n\
              \tlifetime config:\n\
              \t  limit: soft (INF)(bytes), hard (INF)(bytes)\n\
              \t  limit: soft (INF)(packets), hard (INF)(packets)\n\
              \tlifetime current:\n\
              \t  384(bytes), 6(packets)\n\
              src 192.0.2.2 dst 192.0.2.1\n\
              \tproto esp spi 0x00000100 reqid 0 mode transport\n\
              \tlifetime current:\n\
              \t  0(bytes), 0(packets)\n";
    let lines: Vec<&str> = ip.lines().collect();
    let m = parse_ip_xfrm(&lines);
    assert_eq!(
        m.get(&0x101),
        Some(&Count {
            packets: 6,
            bytes: 384
        })
    );
    assert_eq!(m.get(&0x100), Some(&Count::default()));
    let enc = [
        "\tproto esp spi 0x00000901(2305) reqid 0(0x00000000) mode transport",
        "\tencap type espinudp sport 4500 dport 4501 addr 0.0.0.0",
    ];
    assert_eq!(parse_ip_encap(&enc).get(&0x901), Some(&(4500, 4501)));
    let js = r#"{"type":"DUMP","sa":{"spi":"0x101"},"lifetime":{"current":{"allocations":6,"bytes":384,"addtime":1,"usetime":2}}}"#;
    assert_eq!(
        parse_ipseckey_json(&[js]).get(&0x101),
        Some(&Count {
            packets: 6,
            bytes: 384
        })
    );
    let console: Vec<String> = [
        "@X|a",
        "@@CASE x READY",
        "@X|b",
        "@J|c",
        "@@CASE x DONE",
        "@X|d",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(block(&console, "x", "@X|"), ["b"]);
}

#[test]
fn linux_ipsec_interoperates_with_a_simulated_host() {
    const NAME: &str = "linux_ipsec_interoperates_with_a_simulated_host";
    let kvm = match KernelVm::find(&repo()) {
        Ok(k) => k,
        Err(why) => return vm::skip(NAME, &why),
    };
    if Command::new("sh")
        .args(["-c", "command -v ip"])
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return vm::skip(
            NAME,
            "iproute2's ip is not installed (the guest needs it for ip xfrm policy)",
        );
    }
    let ipseckey = cli_bin("ipseckey");
    let cases = cases();
    let work = std::env::temp_dir().join(format!("kernel-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let script = work.join("test.sh");
    std::fs::write(&script, guest_script(&cases)).expect("guest script");
    let build = work.join("build");
    let encap = PathBuf::from(env!("CARGO_BIN_EXE_udp-encap"));
    if let Err(why) = kvm.build_with(&build, &script, &[&ipseckey, &encap], true) {
        let _ = std::fs::remove_dir_all(&work);
        return vm::skip(NAME, &format!("cannot build the VM: {why}"));
    }
    // The simulator: host "sim" on the VM's link (and gateway to a LAN
    // for tunnel mode), host "lan" on that LAN.
    let (host_port, guest_port) = (free_port(), free_port());
    let conf = work.join("sim.conf");
    std::fs::write(
        &conf,
        format!(
            "host sim forward socket {sock}\n\
             host lan gateway 10.2.0.1 gateway 2001:db8:2::1\n\
             udp wire sim:{S4}/24,{S6}/64 127.0.0.1:{host_port} 127.0.0.1:{guest_port}\n\
             link lan sim:10.2.0.1/24,2001:db8:2::1/64 lan:{LANHOST4}/24,{LANHOST6}/64\n\
             capture wire wire.pcap\n",
            sock = work.join("sim.sock").display()
        ),
    )
    .expect("sim config");
    let mut sim =
        Sim::start(&conf, &work, &work.join("sim.stderr")).unwrap_or_else(|e| panic!("{e}"));
    let mut vm = kvm
        .spawn(
            &build,
            &RunOpts {
                net: format!("dgram:{host_port}:{guest_port}"),
                kargs: format!("kvmtest.ip={G4}/24 kvmtest.ip6={G6}/64"),
                timeout: 600,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    let mut errs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        match run_case(c, &mut vm, &mut sim, &ipseckey, &work, i == 0) {
            Ok(o) => {
                errs.extend(judge(c, &o).into_iter().map(|e| format!("{}: {e}", c.name)));
                outcomes.push(Some(o));
            }
            Err(e) => {
                errs.push(e);
                break;
            }
        }
    }
    outcomes.resize_with(cases.len(), || None);
    let all_done = vm
        .wait_for(Duration::from_secs(60), |l| l == "@@ALL-DONE")
        .is_some();
    let (status, seconds) = vm.finish(Duration::from_secs(60));
    let console = vm.console.join("\n");
    let sim_ok = sim.stop();
    // The wire, as the simulator captured it (written when it exits).
    let pcap_path = work.join("wire.pcap");
    let wire = std::fs::read(&pcap_path)
        .map_err(|e| e.to_string())
        .and_then(|b| wire_frames(&b))
        .unwrap_or_else(|e| {
            errs.push(format!("{}: {e}", pcap_path.display()));
            BTreeMap::new()
        });
    for (c, o) in cases.iter().zip(&outcomes) {
        if o.is_none() {
            continue;
        }
        for spi in [c.spi, c.spi + 1] {
            let got = wire.get(&spi).copied().unwrap_or_default();
            if got != expected_wire(c) {
                errs.push(format!(
                    "{}: SA 0x{spi:x} on the wire: {got:?}, expected {:?}",
                    c.name,
                    expected_wire(c)
                ));
            }
        }
    }
    match tshark_spis(&pcap_path) {
        Some(ws) => {
            for (spi, w) in &wire {
                let n = w.esp + w.esp_udp + w.ah;
                if ws.get(spi).copied().unwrap_or(0) != n {
                    errs.push(format!(
                        "SPI 0x{spi:x}: tshark sees {:?} frames, this test's reader {n}",
                        ws.get(spi)
                    ));
                }
            }
        }
        None => eprintln!("note: tshark not found: the capture was read by this test only"),
    }
    let t = table(&cases, &outcomes, &wire);
    eprintln!("{t}");
    if !all_done || status != Some(0) {
        errs.push(format!("the guest did not finish (status {status:?})"));
    }
    if !sim_ok {
        errs.push("sim live did not exit cleanly".into());
    }
    // The console shows SAs, never their keys.
    for k in AES.iter().chain(&SHA1).chain(&SHA256).chain(&GCM) {
        if console.contains(&k[..16]) {
            errs.push("key material on the guest's console".into());
            break;
        }
    }
    if !errs.is_empty() {
        let stderr = std::fs::read_to_string(work.join("sim.stderr")).unwrap_or_default();
        panic!(
            "{} interop failure(s):\n{}\n\n{t}\n--- console\n{console}\n--- sim live stderr\n{stderr}",
            errs.len(),
            errs.join("\n")
        );
    }
    eprintln!(
        "{} interop cases agree, one boot in {seconds:.1} s",
        cases.len()
    );
    let _ = std::fs::remove_dir_all(&work);
}
