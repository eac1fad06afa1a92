//! End to end: the TAP bench (`sim::bench`, needs root) measured per
//! algorithm beside its baseline. Two network namespaces, each behind a
//! TAP served by a live simulated host (`sim live`), the hosts joined by
//! a UDP link on loopback and keyed with `ipseckey -f`; iperf3 TCP from
//! one namespace to the other. The baseline (`clear`) is the same two
//! processes forwarding without SAs: the path's I/O limit. ESP with
//! neither encryption nor integrity is refused (RFC 4303 3.2 allows one
//! of them to be NULL, not both), so "null crypto" is that baseline;
//! `null-sha1` (ESP NULL encryption with HMAC-SHA1) adds the framing and
//! an integrity check but no cipher.

use std::path::PathBuf;

use serde::Serialize;
use sim::bench::{Alg, BenchSpec, Mode, Tools};

use crate::stats::{Settings, Stat};

/// What the e2e mode measures.
#[derive(Debug, Clone)]
pub struct Plan {
    pub modes: Vec<Mode>,
    pub algs: Vec<Alg>,
    /// iperf3 seconds per run.
    pub seconds: u32,
    pub v6: bool,
    pub mtu: u16,
    /// The SAs' replay window (0: none).
    pub replay: u8,
    /// The TAPs' checksum and segmentation offload.
    pub offload: bool,
    pub sim: PathBuf,
    pub ipseckey: PathBuf,
}

/// The algorithms measured when none are named: the two, the
/// framing-only row and the baseline.
pub const DEFAULT_ALGS: [Alg; 4] = [Alg::AesGcm, Alg::AesCbcSha1, Alg::NullSha1, Alg::Clear];

/// One algorithm in one mode over the repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2eRow {
    pub mode: &'static str,
    pub alg: &'static str,
    /// iperf3's receiver rate, Gbit/s.
    pub gbps: Stat,
    /// TCP retransmissions per run.
    pub retransmits: Stat,
    /// Median over the baseline's median in the same mode (None for the
    /// baseline itself, or when it was not measured).
    pub vs_baseline: Option<f64>,
    /// Every run's Gbit/s, in order.
    pub runs: Vec<f64>,
}

/// The results of the `e2e` mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2eResult {
    pub available: bool,
    /// What the baseline is.
    pub baseline: &'static str,
    pub family: &'static str,
    pub mtu: u16,
    pub seconds: u32,
    /// Queues per TAP (`--threads`): one is served by the main thread,
    /// several by a thread each.
    pub queues: usize,
    /// The TAPs' checksum and segmentation offload (`--offload`).
    pub offload: bool,
    /// iperf3 parallel streams (`--threads`).
    pub streams: u32,
    pub replay_window: u8,
    pub rows: Vec<E2eRow>,
}

pub const BASELINE: &str = "clear: the same two simulated hosts forwarding without SAs (the path's I/O limit; ESP with neither encryption nor integrity is refused, RFC 4303 3.2)";

/// Why e2e cannot run here (not root, no TAP, a program missing), if it
/// cannot: the bench's own preflight.
pub fn preflight() -> Result<(), String> {
    sim::bench::preflight()
}

pub fn steps(plan: &Plan, set: &Settings) -> u64 {
    (plan.modes.len() * plan.algs.len() * set.reps.max(1)) as u64
}

/// Measures every mode and algorithm `set.reps` times; the repetitions
/// go round the algorithms (all of them once, then again), so that other
/// work on the machine disturbs them alike. `set.threads` gives the
/// queues per TAP and the iperf3 streams.
pub fn measure(plan: &Plan, set: &Settings, mut tick: impl FnMut()) -> Result<E2eResult, String> {
    let tools = Tools {
        sim: plan.sim.clone(),
        ipseckey: plan.ipseckey.clone(),
    };
    let threads = set.threads.clamp(1, 16);
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); plan.modes.len() * plan.algs.len()];
    for _ in 0..set.reps.max(1) {
        for (m, &mode) in plan.modes.iter().enumerate() {
            for (a, &alg) in plan.algs.iter().enumerate() {
                let spec = BenchSpec {
                    mode,
                    alg,
                    mtu: plan.mtu,
                    capture: false,
                    queues: threads,
                    streams: threads as u32,
                    replay: plan.replay,
                    offload: plan.offload,
                };
                let v = sim::bench::measure(&spec, &tools, plan.v6, plan.seconds)
                    .map_err(|e| format!("e2e {} {}: {e}", mode.name(), alg.name()))?;
                let bps = v["iperf3"]["bits_per_second"].as_f64().unwrap_or(0.0);
                if bps <= 0.0 {
                    return Err(format!(
                        "e2e {} {}: iperf3 moved nothing: {v}",
                        mode.name(),
                        alg.name()
                    ));
                }
                let retr = v["iperf3"]["retransmits"].as_f64().unwrap_or(0.0);
                runs[m * plan.algs.len() + a].push((bps / 1e9, retr));
                tick();
            }
        }
    }
    let mut rows = Vec::new();
    for (m, &mode) in plan.modes.iter().enumerate() {
        let base = plan
            .algs
            .iter()
            .position(|&a| a == Alg::Clear)
            .map(|a| Stat::of(&gbps(&runs[m * plan.algs.len() + a])).median);
        for (a, &alg) in plan.algs.iter().enumerate() {
            let r = &runs[m * plan.algs.len() + a];
            let g = Stat::of(&gbps(r));
            let retr: Vec<f64> = r.iter().map(|x| x.1).collect();
            rows.push(E2eRow {
                mode: mode.name(),
                alg: alg.name(),
                gbps: g,
                retransmits: Stat::of(&retr),
                vs_baseline: match base {
                    Some(b) if alg != Alg::Clear && b > 0.0 => Some(g.median / b),
                    _ => None,
                },
                runs: gbps(r),
            });
        }
    }
    Ok(E2eResult {
        available: true,
        baseline: BASELINE,
        family: if plan.v6 { "ipv6" } else { "ipv4" },
        mtu: plan.mtu,
        seconds: plan.seconds,
        queues: threads,
        offload: plan.offload,
        streams: threads as u32,
        replay_window: plan.replay,
        rows,
    })
}

fn gbps(r: &[(f64, f64)]) -> Vec<f64> {
    r.iter().map(|x| x.0).collect()
}
