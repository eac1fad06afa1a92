//! `--json`: one JSON object per SA or message (JSON Lines), for scripts.
//!
//! Fields: `type` (message type as ipseckey prints it, e.g. "GET", "DUMP",
//! "EXPIRE"), `satype` ("ah", "esp", or a number), `errno`, `diagnostic`
//! (code and text when non-zero), `seq`, `pid`; and, as present in the
//! message: `sa` {`spi` (hex string), `replay`, `state`, `auth_alg`,
//! `encr_alg` (names as `save` prints them), `flags` (names), `flags_value`};
//! `src`, `dst`, `inner_src`, `inner_dst`, `nat_loc`, `nat_rem` {`address`,
//! `port`, `proto`, `prefix`}; `lifetime` {`current`, `hard`, `soft`
//! {`allocations`, `bytes`, `addtime`, `usetime`}, `idle` {`addtime`,
//! `usetime`}}; `auth_key`, `encr_key` {`bits`, `hex`, and `salt_bits` for
//! encryption keys; `hex` is left out with -p}; `src_identity`,
//! `dst_identity` {`type`, `value`}; `pair_spi`; `replay_value`.

use serde_json::{json, Map, Value};

use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{flags, Address, Dialect, ExtKind, Extension, Lifetime, Message, MsgType};
use sadb::Diagnostic;

use crate::parse::satype_word;

fn msg_type(t: MsgType) -> &'static str {
    match crate::print::msg_type_name(t) {
        "" if t == MsgType::DelPairState => "X_DELPAIR_STATE",
        "" => "OTHER",
        name => name,
    }
}

fn address(a: &Address) -> Value {
    json!({
        "address": a.addr.canonical_ip().to_string(),
        "port": a.addr.port,
        "proto": a.proto,
        "prefix": a.prefix_len,
    })
}

fn lifetime(l: &Lifetime) -> Value {
    json!({ "allocations": l.allocations, "bytes": l.bytes, "addtime": l.addtime, "usetime": l.usetime })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The JSON object for one message; keys only when `with_keys`.
pub fn message(m: &Message, with_keys: bool) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(msg_type(m.msg_type)));
    o.insert("satype".into(), json!(satype_word(m.satype)));
    o.insert("errno".into(), json!(m.errno));
    if m.reserved != 0 {
        let d = Diagnostic::from_code(m.reserved);
        o.insert(
            "diagnostic".into(),
            json!({ "code": d.code(), "text": d.text() }),
        );
    }
    o.insert("seq".into(), json!(m.seq));
    o.insert("pid".into(), json!(m.pid));
    let mut lt = Map::new();
    for e in &m.exts {
        match e {
            Extension::Sa(sa) => {
                let names: Vec<&str> = flags::NAMES
                    .iter()
                    .filter(|(bit, _)| sa.flags & bit != 0)
                    .map(|(_, n)| *n)
                    .collect();
                let auth =
                    AuthAlg::from_id(sa.auth, Dialect::Illumos).map(|a| a.name().to_string());
                let encr =
                    EncrAlg::from_id(sa.encrypt, Dialect::Illumos).map(|a| a.name().to_string());
                o.insert(
                    "sa".into(),
                    json!({
                        "spi": format!("0x{:x}", sa.spi),
                        "replay": sa.replay,
                        "state": sadb::pfkey::SaState::from_u8(sa.state).map(|s| s.name().to_string()).unwrap_or_else(|| sa.state.to_string()),
                        "auth_alg": auth.unwrap_or_else(|| sa.auth.to_string()),
                        "encr_alg": encr.unwrap_or_else(|| sa.encrypt.to_string()),
                        "flags": names,
                        "flags_value": sa.flags,
                    }),
                );
            }
            Extension::Address(k, a) => {
                let name = match k {
                    ExtKind::AddressSrc => "src",
                    ExtKind::AddressDst => "dst",
                    ExtKind::AddressInnerSrc => "inner_src",
                    ExtKind::AddressInnerDst => "inner_dst",
                    ExtKind::AddressNattLoc => "nat_loc",
                    ExtKind::AddressNattRem => "nat_rem",
                    _ => continue,
                };
                o.insert(name.into(), address(a));
            }
            Extension::Lifetime(k, l) => {
                let name = match k {
                    ExtKind::LifetimeCurrent => "current",
                    ExtKind::LifetimeHard => "hard",
                    ExtKind::LifetimeSoft => "soft",
                    _ => {
                        lt.insert(
                            "idle".into(),
                            json!({ "addtime": l.addtime, "usetime": l.usetime }),
                        );
                        continue;
                    }
                };
                lt.insert(name.into(), lifetime(l));
            }
            Extension::Key(k, key) => {
                let name = if *k == ExtKind::KeyAuth {
                    "auth_key"
                } else {
                    "encr_key"
                };
                let mut v = Map::new();
                v.insert("bits".into(), json!(key.bits));
                if *k == ExtKind::KeyEncrypt {
                    v.insert("salt_bits".into(), json!(key.reserved));
                }
                if with_keys {
                    v.insert("hex".into(), json!(hex(key.material.expose())));
                }
                o.insert(name.into(), Value::Object(v));
            }
            Extension::Identity(k, id) => {
                let name = if *k == ExtKind::IdentitySrc {
                    "src_identity"
                } else {
                    "dst_identity"
                };
                o.insert(
                    name.into(),
                    json!({ "type": id.id_type, "value": String::from_utf8_lossy(&id.text) }),
                );
            }
            Extension::Pair { spi } => {
                o.insert("pair_spi".into(), json!(format!("0x{spi:x}")));
            }
            Extension::ReplayValue { r32, .. } => {
                o.insert("replay_value".into(), json!(r32));
            }
            _ => {}
        }
    }
    if !lt.is_empty() {
        o.insert("lifetime".into(), Value::Object(lt));
    }
    Value::Object(o)
}

/// One line of JSON Lines output.
pub fn line(m: &Message, with_keys: bool) -> String {
    format!("{}\n", message(m, with_keys))
}
