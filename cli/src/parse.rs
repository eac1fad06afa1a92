//! The ipseckey command language (ipseckey-behaviour.md 1.3-1.9, 2):
//! commands, SA types, numbers, keys, addresses, and every extension
//! keyword with its rules per command. Error texts follow the manual's
//! DIAGNOSTICS stems with illumos detail (decisions.md front end #6), and
//! never contain key material.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{ident_type, satype, Dialect, Lifetime};
use sadb::KeyMaterial;

/// A word as it may appear in a message: control characters escaped (no
/// terminal escape sequences from a file reach the screen), and a long hex
/// string, which may be a key typed after a misspelt keyword, not shown.
pub fn shown(word: &str) -> String {
    let hexish = word
        .trim_start_matches("0x")
        .split('/')
        .next()
        .unwrap_or("");
    let letters = hexish.bytes().any(|c| c.is_ascii_alphabetic());
    if hexish.len() >= 16
        && hexish.bytes().all(|c| c.is_ascii_hexdigit())
        && (letters || hexish.len() >= 24)
    {
        return format!("<{}-digit hex string, not shown>", hexish.len());
    }
    word.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The commands of the manual, plus `load` (decisions.md #1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdKind {
    Add,
    Update,
    UpdatePair,
    Delete,
    DeletePair,
    Get,
    Flush,
    Dump,
    Save,
    Monitor,
    PassiveMonitor,
    Help,
    Load,
    Quit,
}

impl CmdKind {
    pub fn from_word(w: &str) -> Option<CmdKind> {
        Some(match w {
            "add" => CmdKind::Add,
            "update" => CmdKind::Update,
            "update-pair" => CmdKind::UpdatePair,
            "delete" => CmdKind::Delete,
            "delete-pair" => CmdKind::DeletePair,
            "get" => CmdKind::Get,
            "flush" => CmdKind::Flush,
            "dump" => CmdKind::Dump,
            "save" => CmdKind::Save,
            "monitor" => CmdKind::Monitor,
            "passive_monitor" | "pmonitor" => CmdKind::PassiveMonitor,
            "help" | "?" => CmdKind::Help,
            "load" => CmdKind::Load,
            "quit" | "exit" => CmdKind::Quit,
            _ => return None,
        })
    }

    pub fn word(self) -> &'static str {
        match self {
            CmdKind::Add => "add",
            CmdKind::Update => "update",
            CmdKind::UpdatePair => "update-pair",
            CmdKind::Delete => "delete",
            CmdKind::DeletePair => "delete-pair",
            CmdKind::Get => "get",
            CmdKind::Flush => "flush",
            CmdKind::Dump => "dump",
            CmdKind::Save => "save",
            CmdKind::Monitor => "monitor",
            CmdKind::PassiveMonitor => "passive_monitor",
            CmdKind::Help => "help",
            CmdKind::Load => "load",
            CmdKind::Quit => "quit",
        }
    }

    /// add, update, update-pair: the commands that carry keys.
    pub fn is_add_like(self) -> bool {
        matches!(self, CmdKind::Add | CmdKind::Update | CmdKind::UpdatePair)
    }

    /// get, delete, delete-pair.
    pub fn is_lookup(self) -> bool {
        matches!(self, CmdKind::Get | CmdKind::Delete | CmdKind::DeletePair)
    }
}

/// How names are resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOpts {
    /// `-n`: literal addresses only.
    pub numeric: bool,
}

/// A parsed key: its bit count and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub bits: u16,
    pub material: KeyMaterial,
}

/// An inner (tunnel) selector as typed: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
}

/// Lifetime limits as typed, with which keywords were given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimeArgs {
    pub given: bool,
    pub lt: Lifetime,
}

/// Everything the extension keywords of one add/update/get/delete say.
#[derive(Debug, Clone, Default)]
pub struct SaArgs {
    pub spi: Option<u32>,
    pub pair_spi: Option<u32>,
    pub replay: Option<u8>,
    pub replay_value: Option<u32>,
    pub state: Option<u8>,
    pub auth: Option<u8>,
    pub encr: Option<u8>,
    pub auth_key: Option<ParsedKey>,
    pub encr_key: Option<ParsedKey>,
    pub reserved_bits: Option<u16>,
    pub src: Option<Vec<IpAddr>>,
    pub dst: Option<Vec<IpAddr>>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub proto: Option<u8>,
    pub isrc: Option<Inner>,
    pub idst: Option<Inner>,
    pub isport: Option<u16>,
    pub idport: Option<u16>,
    pub iproto: Option<u8>,
    pub encap: bool,
    pub nat_loc: Option<IpAddr>,
    pub nat_rem: Option<IpAddr>,
    pub nat_lport: Option<u16>,
    pub nat_rport: Option<u16>,
    pub srcid: Option<(u16, String)>,
    pub dstid: Option<(u16, String)>,
    pub hard: LifetimeArgs,
    pub soft: LifetimeArgs,
    pub idle: LifetimeArgs,
    pub inbound: bool,
    pub outbound: bool,
}

impl SaArgs {
    /// Any inner keyword makes a tunnel-mode request (X_TUNNEL).
    pub fn tunnel(&self) -> bool {
        self.isrc.is_some()
            || self.idst.is_some()
            || self.isport.is_some()
            || self.idport.is_some()
            || self.iproto.is_some()
    }
}

/// A parsed command.
#[derive(Debug, Clone)]
pub struct Command {
    pub kind: CmdKind,
    pub satype: u8,
    pub sa: SaArgs,
    /// `save TYPE FILE`, `load FILE`, `help TOPIC`.
    pub arg: Option<String>,
    /// Warnings to show; the command still runs.
    pub warnings: Vec<String>,
}

/// Why a command was refused: every message, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub messages: Vec<String>,
    /// Warnings printed before the refusal.
    pub warnings: Vec<String>,
}

impl ParseError {
    fn one(m: impl Into<String>) -> ParseError {
        ParseError {
            messages: vec![m.into()],
            warnings: Vec::new(),
        }
    }
}

/// `strtoull` with base detection: `0x` hex, leading `0` octal, else
/// decimal; an optional sign (negative values wrap, as in C).
pub fn parse_number(s: &str) -> Option<u64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<u64>().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SA type words (1.4): `all`, `ah`, `esp` (any case) or a number.
pub fn parse_satype(w: &str) -> Option<u8> {
    match w.to_ascii_lowercase().as_str() {
        "all" => Some(satype::UNSPEC),
        "ah" => Some(satype::AH),
        "esp" => Some(satype::ESP),
        _ => parse_number(w).map(|n| n as u8),
    }
}

/// The name ipseckey uses for an SA type in messages and `save`.
pub fn satype_word(t: u8) -> String {
    match t {
        satype::UNSPEC => "all".into(),
        satype::AH => "ah".into(),
        satype::ESP => "esp".into(),
        n => n.to_string(),
    }
}

/// Parses `HEX[/BITS]` (1.6). `which` names the key in messages, which
/// never repeat the key itself.
pub fn parse_key(text: &str, which: &str, warnings: &mut Vec<String>) -> Result<ParsedKey, String> {
    let t = if text.len() > 2 && (text.starts_with("0x") || text.starts_with("0X")) {
        &text[2..]
    } else {
        text
    };
    let (hex, bits_spec) = match t.split_once('/') {
        Some((h, b)) => (h, Some(b)),
        None => (t, None),
    };
    if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("The {which} is not a hex string."));
    }
    let digits = hex.len();
    let mut bytes: Vec<u8> = Vec::with_capacity(digits.div_ceil(2));
    for (i, c) in hex.bytes().enumerate() {
        let v = (c as char).to_digit(16).unwrap_or(0) as u8;
        if i % 2 == 0 {
            bytes.push(v << 4);
        } else if let Some(last) = bytes.last_mut() {
            *last |= v;
        }
    }
    let bits = match bits_spec {
        None => digits.div_ceil(2) * 8,
        Some(b) => {
            let n: usize = b
                .parse()
                .map_err(|_| format!("\"{}\" is not a bit specifier.", shown(b)))?;
            if n.div_ceil(4) > digits {
                return Err(format!("bit length {n} is too big for the {which}."));
            }
            if 4 * digits > n + 3 {
                warnings.push(format!(
                    "WARNING: Lower bits will be truncated for the {which}."
                ));
            }
            let keep = n.div_ceil(8);
            bytes.truncate(keep);
            if !n.is_multiple_of(8) {
                if let Some(last) = bytes.last_mut() {
                    *last &= 0xffu8 << (8 - n % 8);
                }
            }
            n
        }
    };
    let bits = u16::try_from(bits)
        .map_err(|_| format!("bit length {bits} is too big for the {which}."))?;
    Ok(ParsedKey {
        bits,
        material: KeyMaterial::new(bytes),
    })
}

/// Resolves an address word. `v6_only` for the `...6` keywords.
fn resolve(word: &str, v6_only: bool, opts: ParseOpts) -> Vec<IpAddr> {
    if let Ok(a) = word.parse::<Ipv6Addr>() {
        return vec![IpAddr::V6(a)];
    }
    if let Ok(a) = word.parse::<Ipv4Addr>() {
        return if v6_only {
            Vec::new()
        } else {
            vec![IpAddr::V4(a)]
        };
    }
    if opts.numeric {
        return Vec::new();
    }
    let mut out: Vec<IpAddr> = match (word, 0u16).to_socket_addrs() {
        Ok(it) => it.map(|sa| sa.ip()).collect(),
        Err(_) => Vec::new(),
    };
    out.dedup();
    if v6_only {
        out.retain(|a| a.is_ipv6());
    }
    out
}

/// One keyword's definition: canonical name, synonyms, where it is allowed.
struct Kw {
    names: &'static [&'static str],
    /// Allowed with add/update/update-pair.
    add: bool,
    /// Allowed with get/delete/delete-pair.
    lookup: bool,
}

const KEYWORDS: &[Kw] = &[
    Kw {
        names: &["spi"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["pair-spi"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["replay"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["replay_value"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["state"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["auth_alg", "authalg"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["encr_alg", "encralg"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["authkey"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["encrkey"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["reserved_bits"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["src", "srcaddr", "saddr"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["src6", "srcaddr6", "saddr6"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["dst", "dstaddr", "daddr"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["dst6", "dstaddr6", "daddr6"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["sport"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["dport"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["proto", "ulp"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["isrc", "innersrc", "proxy", "proxyaddr"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["isrc6", "innersrc6", "proxy6", "proxyaddr6"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["idst", "innerdst"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["idst6", "innerdst6"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["isport", "innersport"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["idport", "innerdport"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["iproto", "iulp"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["encap"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["nat_loc"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["nat_rem"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["nat_lport"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["nat_rport"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["srcidtype"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["dstidtype"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["soft_alloc"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["soft_bytes"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["soft_addtime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["soft_usetime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["hard_alloc"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["hard_bytes"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["hard_addtime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["hard_usetime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["idle_addtime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["idle_usetime"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["inbound"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["outbound"],
        add: true,
        lookup: true,
    },
    Kw {
        names: &["label"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["outer-label"],
        add: true,
        lookup: false,
    },
    Kw {
        names: &["implicit-label"],
        add: true,
        lookup: false,
    },
    // Keywords ipseckey knows but refuses for every command.
    Kw {
        names: &["flags"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["current_alloc"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["current_bytes"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["current_addtime"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["current_usetime"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["dpd"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["sens_level"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["sens_map"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["integ_level"],
        add: false,
        lookup: false,
    },
    Kw {
        names: &["integ_map"],
        add: false,
        lookup: false,
    },
];

/// Every keyword, in the order `help attr` lists them.
pub fn all_keywords() -> Vec<&'static str> {
    KEYWORDS
        .iter()
        .flat_map(|k| k.names.iter().copied())
        .collect()
}

fn keyword(w: &str) -> Option<&'static Kw> {
    KEYWORDS.iter().find(|k| k.names.contains(&w))
}

struct Cursor<'a> {
    toks: &'a [String],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let t = self.toks.get(self.i)?;
        self.i += 1;
        Some(t.as_str())
    }
}

/// Parses one command from its tokens.
pub fn parse_command(toks: &[String], opts: ParseOpts) -> Result<Command, ParseError> {
    let Some(first) = toks.first() else {
        return Err(ParseError::one("Empty command."));
    };
    let Some(kind) = CmdKind::from_word(first) else {
        return Err(ParseError::one(format!(
            "Unknown command ({}).",
            shown(first)
        )));
    };
    let mut cur = Cursor { toks, i: 1 };
    let mut cmd = Command {
        kind,
        satype: satype::UNSPEC,
        sa: SaArgs::default(),
        arg: None,
        warnings: Vec::new(),
    };
    match kind {
        CmdKind::Quit => Ok(cmd),
        CmdKind::Help => {
            cmd.arg = cur.next().map(str::to_string);
            Ok(cmd)
        }
        CmdKind::Monitor | CmdKind::PassiveMonitor => {
            if let Some(extra) = cur.next() {
                return Err(ParseError::one(format!(
                    "Too many arguments for {} command ({}).",
                    kind.word(),
                    shown(extra)
                )));
            }
            Ok(cmd)
        }
        CmdKind::Load => match (cur.next(), cur.next()) {
            (Some(f), None) => {
                cmd.arg = Some(f.to_string());
                Ok(cmd)
            }
            (None, _) => Err(ParseError::one(
                "Unexpected end of command line, was expecting a file name.",
            )),
            (Some(_), Some(x)) => Err(ParseError::one(format!(
                "Too many arguments for load command ({}).",
                shown(x)
            ))),
        },
        CmdKind::Flush | CmdKind::Dump => {
            if let Some(w) = cur.next() {
                cmd.satype = parse_satype(w)
                    .ok_or_else(|| ParseError::one(format!("Unknown SA type ({}).", shown(w))))?;
            }
            if cur.next().is_some() {
                return Err(ParseError::one(format!(
                    "Too many arguments for {} command",
                    kind.word()
                )));
            }
            Ok(cmd)
        }
        CmdKind::Save => {
            let Some(w) = cur.next() else {
                return Err(ParseError::one("Must specify a specific SA type for save."));
            };
            cmd.satype = parse_satype(w)
                .ok_or_else(|| ParseError::one(format!("Unknown SA type ({}).", shown(w))))?;
            cmd.arg = cur.next().map(str::to_string);
            if let Some(x) = cur.next() {
                return Err(ParseError::one(format!(
                    "Too many arguments for save command ({}).",
                    shown(x)
                )));
            }
            Ok(cmd)
        }
        _ => {
            let Some(w) = cur.next() else {
                return Err(ParseError::one(
                    "Unexpected end of command line, was expecting an SA type.",
                ));
            };
            let t = parse_satype(w)
                .ok_or_else(|| ParseError::one(format!("Unknown SA type ({}).", shown(w))))?;
            if t == satype::UNSPEC {
                return Err(ParseError::one(if kind.is_add_like() {
                    "Must specify a specific SA type."
                } else {
                    "Must specify a single SA type."
                }));
            }
            cmd.satype = t;
            let mut errors = Vec::new();
            parse_extensions(&mut cur, &mut cmd, opts, &mut errors);
            if errors.is_empty() {
                check_command(&mut cmd, &mut errors);
            }
            if errors.is_empty() {
                Ok(cmd)
            } else {
                Err(ParseError {
                    messages: errors,
                    warnings: cmd.warnings,
                })
            }
        }
    }
}

macro_rules! single {
    ($errors:expr, $slot:expr, $val:expr, $name:expr) => {
        if $slot.is_some() {
            $errors.push(format!("Can only specify single {}.", $name));
        } else {
            $slot = Some($val);
        }
    };
}

fn parse_extensions(
    cur: &mut Cursor<'_>,
    cmd: &mut Command,
    opts: ParseOpts,
    errors: &mut Vec<String>,
) {
    let kind = cmd.kind;
    let sa = &mut cmd.sa;
    while let Some(word) = cur.next() {
        let Some(kw) = keyword(word) else {
            errors.push(format!("Unknown extension field \"{}\".", shown(word)));
            continue;
        };
        let allowed = if kind.is_add_like() {
            kw.add
        } else {
            kw.lookup
        };
        if !allowed {
            errors.push(format!("Don't use extension {word} for {}.", kind.word()));
            // Unlike illumos, the value is consumed: reporting it as an
            // unknown field would echo a key given to get or delete.
            if !matches!(kw.names[0], "inbound" | "outbound") {
                cur.next();
                if matches!(kw.names[0], "srcidtype" | "dstidtype") {
                    cur.next();
                }
            }
            continue;
        }
        let name = kw.names[0];
        // Flags take no value.
        match name {
            "inbound" => {
                sa.inbound = true;
                continue;
            }
            "outbound" => {
                sa.outbound = true;
                continue;
            }
            _ => {}
        }
        let expecting = match name {
            "auth_alg" | "encr_alg" => "an algorithm name",
            "authkey" | "encrkey" => "a key",
            "state" => "a state",
            "encap" => "an encapsulation",
            "srcidtype" | "dstidtype" => "a type",
            "label" | "outer-label" | "implicit-label" => "a label",
            n if n.contains("src")
                || n.contains("dst")
                || n.starts_with("nat_loc")
                || n.starts_with("nat_rem") =>
            {
                "an address"
            }
            _ => "a number",
        };
        let Some(val) = cur.next() else {
            errors.push(format!(
                "Unexpected end of command line, was expecting {expecting}."
            ));
            return;
        };
        let num = |v: &str, errors: &mut Vec<String>| -> Option<u64> {
            let n = parse_number(v);
            if n.is_none() {
                errors.push(format!("Expecting a number, not \"{}\"!", shown(v)));
            }
            n
        };
        match name {
            "spi" => {
                if let Some(n) = num(val, errors) {
                    single!(errors, sa.spi, n as u32, "spi");
                }
            }
            "pair-spi" => {
                if let Some(n) = num(val, errors) {
                    single!(errors, sa.pair_spi, n as u32, "pair-spi");
                }
            }
            "replay" => {
                if let Some(n) = num(val, errors) {
                    single!(errors, sa.replay, n as u8, "replay");
                }
            }
            "replay_value" => {
                if let Some(n) = num(val, errors) {
                    single!(errors, sa.replay_value, n as u32, "replay_value");
                }
            }
            "state" => {
                // decisions.md #2: the words and the numbers 0-3.
                let s = match val {
                    "larval" => Some(0),
                    "mature" => Some(1),
                    "dying" => Some(2),
                    "dead" => Some(3),
                    v => parse_number(v).filter(|&n| n <= 3).map(|n| n as u8),
                };
                match s {
                    Some(s) => single!(errors, sa.state, s, "state"),
                    None => errors.push(format!("Unknown state type \"{}\".", shown(val))),
                }
            }
            "auth_alg" => {
                let a = AuthAlg::from_name(val)
                    .and_then(|a| a.id(Dialect::Illumos))
                    .or_else(|| parse_number(val).filter(|&n| n <= 255).map(|n| n as u8));
                match a {
                    Some(a) => single!(errors, sa.auth, a, "auth_alg"),
                    None => errors.push(format!(
                        "Unknown authentication algorithm type \"{}\".",
                        shown(val)
                    )),
                }
            }
            "encr_alg" => {
                if cmd.satype == satype::AH {
                    errors.push("Cannot specify encryption with SA type ah.".into());
                    continue;
                }
                let e = EncrAlg::from_name(val)
                    .and_then(|e| e.id(Dialect::Illumos))
                    .or_else(|| parse_number(val).filter(|&n| n <= 255).map(|n| n as u8));
                match e {
                    Some(e) => {
                        if let Some(alg) =
                            EncrAlg::from_id(e, Dialect::Illumos).filter(|a| a.is_counter_mode())
                        {
                            cmd.warnings.push(format!(
                                "Using manual keying with a Counter mode algorithm such as \"{}\" may be insecure!",
                                alg.name()
                            ));
                        }
                        single!(errors, sa.encr, e, "encr_alg")
                    }
                    None => errors.push(format!(
                        "Unknown encryption algorithm type \"{}\".",
                        shown(val)
                    )),
                }
            }
            "authkey" => match parse_key(val, "authentication key", &mut cmd.warnings) {
                Ok(k) => single!(errors, sa.auth_key, k, "authkey"),
                Err(e) => errors.push(e),
            },
            "encrkey" => {
                if sa.encr == EncrAlg::Null.id(Dialect::Illumos) {
                    errors.push("Cannot specify a key with NULL encryption algorithm.".into());
                    continue;
                }
                match parse_key(val, "encryption key", &mut cmd.warnings) {
                    Ok(k) => single!(errors, sa.encr_key, k, "encrkey"),
                    Err(e) => errors.push(e),
                }
            }
            "reserved_bits" => {
                if sa.encr_key.is_some() {
                    errors.push("Reserved bits need to be specified before key.".into());
                    continue;
                }
                if let Some(n) = num(val, errors) {
                    single!(errors, sa.reserved_bits, n as u16, "reserved_bits");
                }
            }
            "src" | "src6" | "dst" | "dst6" => {
                let addrs = resolve(val, name.ends_with('6'), opts);
                if addrs.is_empty() {
                    errors.push(format!(
                        "Unknown {} address \"{}\".",
                        if name.starts_with("src") {
                            "src"
                        } else {
                            "dst"
                        },
                        shown(val)
                    ));
                    continue;
                }
                if name.starts_with("src") {
                    single!(errors, sa.src, addrs, "src");
                } else {
                    single!(errors, sa.dst, addrs, "dst");
                }
            }
            "sport" | "dport" | "isport" | "idport" | "nat_lport" | "nat_rport" => {
                if let Some(n) = num(val, errors) {
                    let slot = match name {
                        "sport" => &mut sa.sport,
                        "dport" => &mut sa.dport,
                        "isport" => &mut sa.isport,
                        "idport" => &mut sa.idport,
                        "nat_lport" => &mut sa.nat_lport,
                        _ => &mut sa.nat_rport,
                    };
                    single!(errors, *slot, n as u16, name);
                }
            }
            "proto" | "iproto" => {
                if let Some(n) = num(val, errors) {
                    let slot = if name == "proto" {
                        &mut sa.proto
                    } else {
                        &mut sa.iproto
                    };
                    single!(errors, *slot, n as u8, name);
                }
            }
            "isrc" | "isrc6" | "idst" | "idst6" => {
                let (a, p) = match val.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (val, None),
                };
                let prefix = match p {
                    None => None,
                    Some(p) => match p.parse::<u8>() {
                        Ok(n) if n <= 128 => Some(n),
                        _ => {
                            errors.push(format!("Invalid prefix /{}.", shown(p)));
                            continue;
                        }
                    },
                };
                let addrs = resolve(a, name.ends_with('6'), opts);
                let which = if name.starts_with("isrc") {
                    "inner-source"
                } else {
                    "inner-destination"
                };
                match addrs.as_slice() {
                    [] => errors.push(format!("Unknown {which} address \"{}\".", shown(a))),
                    [ip] => {
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        if prefix.is_some_and(|p| p > max) {
                            errors.push(format!("Invalid prefix /{}.", prefix.unwrap_or(0)));
                            continue;
                        }
                        let v = Inner { ip: *ip, prefix };
                        if name.starts_with("isrc") {
                            single!(errors, sa.isrc, v, "isrc");
                        } else {
                            single!(errors, sa.idst, v, "idst");
                        }
                    }
                    _ => cmd
                        .warnings
                        .push(format!("The {which} address {a} is vague, not using.")),
                }
            }
            "nat_loc" | "nat_rem" => {
                let addrs = resolve(val, false, opts);
                let which = if name == "nat_loc" {
                    "NAT-T local"
                } else {
                    "NAT-T remote"
                };
                match addrs.as_slice() {
                    [] => errors.push(format!("Unknown {which} address \"{}\".", shown(val))),
                    [ip] => {
                        if name == "nat_loc" {
                            single!(errors, sa.nat_loc, *ip, "nat_loc");
                        } else {
                            single!(errors, sa.nat_rem, *ip, "nat_rem");
                        }
                    }
                    _ => cmd
                        .warnings
                        .push(format!("The {which} address {val} is vague, not using.")),
                }
            }
            "encap" => {
                if sa.encap {
                    errors.push("Can only specify single encap.".into());
                } else if val.starts_with("udp") {
                    sa.encap = true;
                } else {
                    errors.push("Can only specify udp encapsulation.".into());
                }
            }
            "srcidtype" | "dstidtype" => {
                let t = match val.to_ascii_lowercase().as_str() {
                    "prefix" => Some(ident_type::PREFIX),
                    "fqdn" | "domain" | "domainname" => Some(ident_type::FQDN),
                    "user_fqdn" | "mailbox" => Some(ident_type::USER_FQDN),
                    "der_dn" => Some(ident_type::DER_DN),
                    "der_gn" => Some(ident_type::DER_GN),
                    v => parse_number(v).filter(|&n| n <= 0xffff).map(|n| n as u16),
                };
                let Some(t) = t else {
                    errors.push(format!("Unknown identity type \"{}\".", shown(val)));
                    continue;
                };
                let Some(value) = cur.next() else {
                    errors
                        .push("Unexpected end of command line, was expecting an identity.".into());
                    return;
                };
                let v = (t, value.to_string());
                if name == "srcidtype" {
                    single!(errors, sa.srcid, v, "srcidtype");
                } else {
                    single!(errors, sa.dstid, v, "dstidtype");
                }
            }
            "label" | "outer-label" | "implicit-label" => {
                // decisions.md front end #12.
                errors.push(format!(
                    "Labels are not supported: the simulated host has no Trusted Extensions ({name})."
                ));
            }
            lt if lt.starts_with("soft_") || lt.starts_with("hard_") || lt.starts_with("idle_") => {
                let Some(n) = num(val, errors) else { continue };
                let group = match &lt[..4] {
                    "soft" => &mut sa.soft,
                    "hard" => &mut sa.hard,
                    _ => &mut sa.idle,
                };
                group.given = true;
                let field = &lt[5..];
                let dup = match field {
                    "alloc" => std::mem::replace(&mut group.lt.allocations, n as u32) != 0,
                    "bytes" => std::mem::replace(&mut group.lt.bytes, n) != 0,
                    "addtime" => {
                        std::mem::replace(
                            &mut group.lt.addtime,
                            if lt.starts_with("idle") {
                                n as u32 as u64
                            } else {
                                n
                            },
                        ) != 0
                    }
                    _ => {
                        std::mem::replace(
                            &mut group.lt.usetime,
                            if lt.starts_with("idle") {
                                n as u32 as u64
                            } else {
                                n
                            },
                        ) != 0
                    }
                };
                // Like illumos, only a non-zero earlier value is a duplicate.
                if dup && !lt.starts_with("idle") {
                    errors.push(format!("Can only specify single {lt}."));
                }
            }
            _ => errors.push(format!("Unknown extension field \"{}\".", shown(word))),
        }
    }
}

/// The checks of 2.3 that follow the keyword loop.
fn check_command(cmd: &mut Command, errors: &mut Vec<String>) {
    let kind = cmd.kind;
    let w = kind.word();
    let sa = &mut cmd.sa;
    if kind.is_lookup() {
        if sa.spi.is_none() {
            errors.push(format!("Need SA parameters for {w}."));
        }
        // decisions.md front end #8: dst is required.
        if sa.dst.is_none() && errors.is_empty() {
            errors.push("Unexpected end of command line, was expecting dst.".into());
        }
        return;
    }
    if sa.spi == Some(0) || sa.pair_spi == Some(0) {
        errors.push("Invalid SPI value \"0\".".into());
    }
    if kind == CmdKind::UpdatePair && sa.pair_spi.is_some() {
        errors.push("pair-spi can not be used with the \"update-pair\" command.".into());
    }
    if sa.replay.is_some_and(|r| r != 0) {
        cmd.warnings
            .push("WARNING:  Replay with manual keying considered harmful.".into());
    }
    if !errors.is_empty() {
        return;
    }
    if (sa.nat_lport.is_some() || sa.nat_rport.is_some()) && !sa.encap {
        errors.push("Must specify 'encap udp' with any NAT-T port.".into());
    } else if (sa.nat_loc.is_some() || sa.nat_rem.is_some()) && !sa.encap {
        errors.push("Must specify 'encap udp' with any NAT-T address.".into());
    }
    if sa.spi.is_none() {
        errors.push(format!("Need to define SPI for {w}."));
    }
    if kind == CmdKind::Add && sa.auth.is_none() && sa.encr.is_none() {
        errors.push("Select at least one algorithm for this add.".into());
        return;
    }
    if sa.state == Some(0) {
        errors.push("WARNING: Cannot set LARVAL SA state.".into());
    }
    if sa.tunnel() {
        if let Some(p) = sa.proto.filter(|&p| p != 0 && p != 4 && p != 41) {
            errors.push(format!(
                "WARNING: Protocol type {p} not for use with Tunnel-Mode SA."
            ));
        }
    }
    if kind == CmdKind::Add && sa.auth_key.is_none() && sa.encr_key.is_none() {
        // ESP with NULL encryption and an auth key, or any ESP with a key,
        // passes; a keyless add never can.
        errors.push("Must have at least one key for an add.".into());
    }
    if sa.dst.is_none() {
        errors.push(format!("Need destination address for {w}."));
        return;
    }
    if sa.encap
        && sa.nat_loc.is_none()
        && sa.nat_rem.is_none()
        && sa.nat_lport.is_none()
        && sa.nat_rport.is_none()
    {
        errors.push("Must specify NAT-T remote or local address for UDP encapsulation.".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn parse(s: &str) -> Result<Command, ParseError> {
        parse_command(&toks(s), ParseOpts { numeric: true })
    }

    #[test]
    fn numbers_like_strtoull() {
        assert_eq!(parse_number("0x2112"), Some(0x2112));
        assert_eq!(parse_number("010"), Some(8));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("-1"), Some(u64::MAX));
        assert_eq!(parse_number("12ab"), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
    }

    #[test]
    fn keys_with_bits() {
        let mut w = Vec::new();
        let k = parse_key("123", "authentication key", &mut w).unwrap();
        assert_eq!((k.bits, k.material.expose()), (16, &[0x12u8, 0x30][..]));
        let k = parse_key("e/3", "authentication key", &mut w).unwrap();
        assert_eq!((k.bits, k.material.expose()), (3, &[0xe0u8][..]));
        assert!(w.is_empty());
        let k = parse_key("0xfff/12", "encryption key", &mut w).unwrap();
        assert_eq!((k.bits, k.material.expose()), (12, &[0xff, 0xf0][..]));
        assert_eq!(w.len(), 0);
        let k = parse_key("ffff/12", "encryption key", &mut w).unwrap();
        assert_eq!((k.bits, k.material.expose()), (12, &[0xff, 0xf0][..]));
        assert_eq!(
            w,
            vec!["WARNING: Lower bits will be truncated for the encryption key."]
        );
        assert_eq!(
            parse_key("ff/x", "authentication key", &mut w).unwrap_err(),
            "\"x\" is not a bit specifier."
        );
        assert_eq!(
            parse_key("ff/20", "authentication key", &mut w).unwrap_err(),
            "bit length 20 is too big for the authentication key."
        );
        let e = parse_key("secretzz", "authentication key", &mut w).unwrap_err();
        assert!(!e.contains("secret"), "errors never echo keys: {e}");
    }

    #[test]
    fn add_builds_its_arguments() {
        let c = parse("add esp spi 0x2112 src 10.0.0.1 dst 10.0.0.2 authalg md5 authkey bde359723576fdea08e56cbe876e24ad encralg des encrkey be02938e7def2839 hard_usetime 28800").unwrap();
        assert_eq!((c.kind, c.satype), (CmdKind::Add, 3));
        assert_eq!(c.sa.spi, Some(0x2112));
        assert_eq!(c.sa.auth, Some(2));
        assert_eq!(c.sa.encr, Some(2));
        assert_eq!(c.sa.hard.lt.usetime, 28800);
        assert_eq!(c.sa.dst, Some(vec!["10.0.0.2".parse().unwrap()]));
    }

    #[test]
    fn diagnostics_from_the_manual() {
        let e = parse(
            "add esp spi 1 spi 2 dst 10.0.0.1 encralg aes encrkey 00112233445566778899aabbccddeeff",
        )
        .unwrap_err();
        assert_eq!(e.messages, vec!["Can only specify single spi."]);
        let e = parse("get esp spi 1 dst 10.0.0.1 hard_bytes 5").unwrap_err();
        assert_eq!(e.messages[0], "Don't use extension hard_bytes for get.");
        let e = parse("add esp spi 1 dst").unwrap_err();
        assert_eq!(
            e.messages,
            vec!["Unexpected end of command line, was expecting an address."]
        );
        let e = parse("add esp spi 1 dst 10.0.0.1 authkey").unwrap_err();
        assert_eq!(
            e.messages,
            vec!["Unexpected end of command line, was expecting a key."]
        );
        let e = parse("get esp spi 5").unwrap_err();
        assert_eq!(
            e.messages,
            vec!["Unexpected end of command line, was expecting dst."]
        );
        let e = parse("flush foo").unwrap_err();
        assert_eq!(e.messages, vec!["Unknown SA type (foo)."]);
        let e = parse("add esp spi 1 dst 10.0.0.1 frob 3").unwrap_err();
        assert_eq!(
            e.messages,
            vec![
                "Unknown extension field \"frob\".",
                "Unknown extension field \"3\"."
            ]
        );
        let e = parse("add ah spi 1 dst 10.0.0.1 encr_alg aes").unwrap_err();
        assert_eq!(e.messages[0], "Cannot specify encryption with SA type ah.");
        let e = parse("add esp spi 1 dst 10.0.0.1 encr_alg null encrkey 00").unwrap_err();
        assert_eq!(
            e.messages[0],
            "Cannot specify a key with NULL encryption algorithm."
        );
        let e = parse("add esp spi 1 dst 10.0.0.1 authalg sha1").unwrap_err();
        assert_eq!(e.messages, vec!["Must have at least one key for an add."]);
        let e = parse("add esp spi 1 dst 10.0.0.1 label foo").unwrap_err();
        assert!(e.messages[0].starts_with("Labels are not supported"));
        let e = parse("add esp dst 10.0.0.1 authalg sha1 authkey 00").unwrap_err();
        assert_eq!(e.messages, vec!["Need to define SPI for add."]);
        let e = parse("add all spi 1").unwrap_err();
        assert_eq!(e.messages, vec!["Must specify a specific SA type."]);
    }

    #[test]
    fn state_words_and_numbers() {
        for (w, n) in [("mature", 1), ("dying", 2), ("3", 3), ("0x1", 1)] {
            let c = parse(&format!("update esp spi 1 dst 10.0.0.1 state {w}")).unwrap();
            assert_eq!(c.sa.state, Some(n));
        }
        assert_eq!(
            parse("update esp spi 1 dst 10.0.0.1 state larval")
                .unwrap_err()
                .messages,
            vec!["WARNING: Cannot set LARVAL SA state."]
        );
        assert_eq!(
            parse("update esp spi 1 dst 10.0.0.1 state 7")
                .unwrap_err()
                .messages,
            vec!["Unknown state type \"7\"."]
        );
    }
}
