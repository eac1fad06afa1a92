//! Counters as JSON: per host, per SA (packets, bytes, drops by reason) and
//! per link (every injected fault), for scripts and CI (`sim lab
//! --counters-json FILE`, the lab's `counters json`).
//!
//! Layout: `{"time_ms", "hosts": [{"name", "counters": {sent, delivered,
//! protected, clear_out, verified, clear_in, forwarded, dropped, no_route,
//! policy_drops}, "sas": [{"satype", "spi" (hex string), "src", "dst",
//! "state", "packets_out", "bytes_out", "packets_in", "bytes_in",
//! "lifetime_bytes", "drops": {REASON: N}}]}], "links": [{"name", "sent",
//! "delivered", "dropped", "duplicated", "reordered", "delayed",
//! "corrupted"}]}`. Drop reasons are named as in `expect drops` (spaces as
//! dashes); only non-zero ones appear.

use esp_ah::DropReason;
use sadb::pfkey::satype;
use serde_json::{json, Map, Value};

use crate::host::Host;
use crate::link::FaultCounters;

/// One host: its counters and every SA the engine holds state for.
pub fn host(h: &Host) -> Value {
    let c = &h.counters;
    let mut sas = Vec::new();
    for (id, sa) in h.ks.sadb().iter() {
        let Some(t) = h.engine.transform(id) else {
            continue;
        };
        let mut drops = Map::new();
        for r in DropReason::ALL {
            let n = t.counters.dropped(r);
            if n > 0 {
                drops.insert(r.name().replace(' ', "-"), json!(n));
            }
        }
        sas.push(json!({
            "satype": if sa.satype == satype::ESP { "esp" } else { "ah" },
            "spi": format!("0x{:x}", sa.spi),
            "src": sa.src.ip.to_string(),
            "dst": sa.dst.ip.to_string(),
            "state": format!("{:?}", sa.state).to_lowercase(),
            "packets_out": t.counters.packets_out,
            "bytes_out": t.counters.bytes_out,
            "packets_in": t.counters.packets_in,
            "bytes_in": t.counters.bytes_in,
            "lifetime_bytes": sa.bytes,
            "drops": drops,
        }));
    }
    json!({
        "name": h.name,
        "counters": {
            "sent": c.sent,
            "delivered": c.delivered,
            "protected": c.protected,
            "clear_out": c.clear_out,
            "verified": c.verified,
            "clear_in": c.clear_in,
            "forwarded": c.forwarded,
            "dropped": c.dropped,
            "no_route": c.no_route,
            "policy_drops": c.policy_drops,
        },
        "sas": sas,
    })
}

/// A link's two directions, added up.
pub fn link(name: &str, ab: &FaultCounters, ba: &FaultCounters) -> Value {
    json!({
        "name": name,
        "sent": ab.sent + ba.sent,
        "delivered": ab.delivered + ba.delivered,
        "dropped": ab.dropped + ba.dropped,
        "duplicated": ab.duplicated + ba.duplicated,
        "reordered": ab.reordered + ba.reordered,
        "delayed": ab.delayed + ba.delayed,
        "corrupted": ab.corrupted + ba.corrupted,
    })
}
