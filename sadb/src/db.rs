//! The SA database: one per SA type (AH, ESP), driven by PF_KEY messages
//! exactly as the illumos kernel's keysock and SADB handle them
//! (ipseckey-behaviour.md 5, pfkey-v2-wire.md 6.3).
//!
//! Every entry point takes `now` and returns what the kernel would send;
//! nothing here sleeps, reads a clock or touches a socket.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slab::Slab;

use crate::alg::{check_auth_key, check_encr_key, AuthAlg, EncrAlg};
use crate::diag::{Diagnostic as D, BAD_LABEL};
use crate::errno::Errno;
use crate::pfkey::{
    error::malformed, flags, satype, Address, AlgDesc, Dialect, ExtKind, Extension, Key, Lifetime,
    Message, MsgType, MsgView, RawExt, SaExt, SaState, WireError, WORD,
};
use crate::replay::ReplayWindow;
use crate::sa::{Endpoint, InnerSelector, Limits, Now, Sa};

/// Handle of a stored SA, stable while the SA exists.
pub type SaId = usize;

/// Who receives a message the kernel sends (pfkey-v2-wire.md 1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The socket that sent the request (and promiscuous sockets).
    Sender,
    /// Every PF_KEY socket.
    All,
    /// Sockets registered for this SA type (0: extended-registered ones).
    Registered(u8),
}

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub to: Audience,
    pub msg: Message,
}

/// What a request does to the requesting socket itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEffect {
    /// SADB_X_PROMISC: turn promiscuous receive on or off.
    Promisc(bool),
    /// SADB_REGISTER for one SA type.
    Register(u8),
    /// Extended SADB_REGISTER (satype 0 + X_EREG) for these SA types.
    RegisterExtended(Vec<u8>),
}

/// The kernel's answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub deliveries: Vec<Delivery>,
    pub effect: Option<SocketEffect>,
}

impl Response {
    fn one(to: Audience, msg: Message) -> Response {
        Response {
            deliveries: vec![Delivery { to, msg }],
            effect: None,
        }
    }

    /// The reply meant for the requester (the first delivery), if any.
    pub fn reply(&self) -> Option<&Message> {
        self.deliveries.first().map(|d| &d.msg)
    }
}

/// A refused request: what goes into the error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub errno: Errno,
    pub diag: D,
}

fn refuse(errno: Errno, diag: D) -> Refusal {
    Refusal { errno, diag }
}
fn einval(diag: D) -> Refusal {
    refuse(Errno::Einval, diag)
}

type Result<T> = std::result::Result<T, Refusal>;

/// Soft-lifetime jitter for outbound SAs (ipseckey-behaviour.md 5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// No jitter: soft add times are exactly what was asked.
    Off,
    /// 8 to 23 seconds drawn from a generator seeded with this value.
    Seeded(u64),
}

/// How this simulated kernel is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// This host's addresses ("me"), besides 127.0.0.1 and ::1.
    pub local_addrs: HashSet<IpAddr>,
    pub jitter: Jitter,
    /// Seconds a hard-expired SA stays visible as DEAD before it is reaped.
    pub reap_delay: u64,
    /// Seconds a larval SA from GETSPI lives.
    pub larval_lifetime: u64,
    /// The manual's idle default (idle = hard_addtime / 2 when not given).
    pub idle_default: bool,
    /// Seed for SPI allocation in GETSPI.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            local_addrs: HashSet::new(),
            jitter: Jitter::Seeded(0),
            reap_delay: 1,
            larval_lifetime: 90,
            idle_default: true,
            seed: 0,
        }
    }
}

/// How an address relates to this host (ipseckey-behaviour.md 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrClass {
    Unspecified,
    MulticastOrBroadcast,
    Me,
    NotMe,
}

/// The whole SADB of one simulated host.
pub struct Sadb {
    cfg: Config,
    sas: Slab<Sa>,
    /// (SPI, destination) -> SA, one map per SA type (AH, ESP). illumos keeps
    /// an inbound table keyed by SPI and an outbound one keyed by
    /// destination, but refuses the same (SPI, destination) in either table
    /// (5.2 step 14), so one map answers both lookups in O(1).
    index: [HashMap<(u32, IpAddr), SaId, foldhash::fast::RandomState>; 2],
    rng: StdRng,
    /// The soft-lifetime jitter's generator, seeded from `Jitter::Seeded`
    /// (decisions.md simulated kernel #3).
    jitter_rng: StdRng,
    next_serial: u64,
}

fn table(satype: u8) -> Option<usize> {
    match satype {
        satype::AH => Some(0),
        satype::ESP => Some(1),
        _ => None,
    }
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl Sadb {
    pub fn new(cfg: Config) -> Sadb {
        let rng = StdRng::seed_from_u64(cfg.seed);
        let jitter_rng = StdRng::seed_from_u64(match cfg.jitter {
            Jitter::Seeded(seed) => seed,
            Jitter::Off => 0,
        });
        Sadb {
            cfg,
            sas: Slab::new(),
            index: Default::default(),
            rng,
            jitter_rng,
            next_serial: 1,
        }
    }

    fn take_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial - 1
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Adds an address to the set this host calls its own.
    pub fn add_local_addr(&mut self, ip: IpAddr) {
        self.cfg.local_addrs.insert(ip.to_canonical());
    }

    /// Number of SAs stored (a cloned SA counts once).
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    pub fn sa(&self, id: SaId) -> Option<&Sa> {
        self.sas.get(id)
    }

    pub fn sa_mut(&mut self, id: SaId) -> Option<&mut Sa> {
        self.sas.get_mut(id)
    }

    /// Every stored SA, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (SaId, &Sa)> {
        self.sas.iter()
    }

    /// The SA with this SPI and destination (the inbound lookup a packet
    /// needs). One hash lookup.
    pub fn lookup(&self, sa_type: u8, spi: u32, dst: IpAddr) -> Option<SaId> {
        let t = table(sa_type)?;
        self.index[t].get(&(spi, dst.to_canonical())).copied()
    }

    fn classify(&self, ip: IpAddr) -> AddrClass {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return AddrClass::Unspecified;
        }
        let mcast = match ip {
            IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if mcast {
            AddrClass::MulticastOrBroadcast
        } else if ip.is_loopback() || self.cfg.local_addrs.contains(&ip) {
            AddrClass::Me
        } else {
            AddrClass::NotMe
        }
    }

    // ----------------------------------------------------------------------
    // Entry points

    /// Handles one PF_KEY request as bytes, running illumos keysock's checks
    /// on the raw message first (ipseckey-behaviour.md 5.2 steps 1-3).
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Now) -> Response {
        let Some(hdr) = MsgView::<&[u8]>::peek_header(bytes) else {
            // Not even a base header: nothing to echo but the error.
            let mut m = Message::new(MsgType::Reserved, 0, 0, 0);
            m.errno = Errno::Emsgsize.number(Dialect::Illumos);
            return Response::one(Audience::Sender, m);
        };
        let msg_type = MsgType::from_number(hdr.msg_type, Dialect::Illumos);
        let error_reply = |r: Refusal| {
            let mut m = Message::new(
                msg_type.unwrap_or(MsgType::Reserved),
                hdr.satype,
                hdr.seq,
                hdr.pid,
            );
            m.errno = r.errno.number(Dialect::Illumos);
            m.reserved = r.diag.code();
            Response::one(error_audience(m.msg_type), m)
        };
        match keysock_check(bytes) {
            Ok(msg) => self.handle(&msg, now),
            Err(r) => error_reply(r),
        }
    }

    /// Handles one decoded request.
    pub fn handle(&mut self, req: &Message, now: Now) -> Response {
        match self.dispatch(req, now) {
            Ok(resp) => resp,
            Err(r) => {
                let mut m = Message::new(req.msg_type, req.satype, req.seq, req.pid);
                m.errno = r.errno.number(Dialect::Illumos);
                m.reserved = r.diag.code();
                Response::one(error_audience(req.msg_type), m)
            }
        }
    }

    fn dispatch(&mut self, req: &Message, now: Now) -> Result<Response> {
        use MsgType as T;
        satype_check(req.msg_type, req.satype)?;
        match req.msg_type {
            T::Add => self.add(req, now),
            T::Update | T::UpdatePair => self.update(req, now),
            T::Delete | T::DelPair => self.delete(req),
            T::Get => self.get(req),
            T::Flush => self.flush(req),
            T::Dump => self.dump(req, now),
            T::GetSpi => self.getspi(req, now),
            T::Register => self.register(req),
            T::Promisc => {
                let mut echo = req.clone();
                echo.errno = 0;
                Ok(Response {
                    deliveries: vec![Delivery {
                        to: Audience::Sender,
                        msg: echo,
                    }],
                    effect: Some(SocketEffect::Promisc(req.satype != 0)),
                })
            }
            T::Acquire if req.errno != 0 => {
                // A key manager reporting failure for an ACQUIRE: the
                // simulator has no acquire records, so there is nothing to drop.
                Ok(Response::default())
            }
            T::Acquire | T::Expire => Err(refuse(Errno::Eopnotsupp, D::None)),
            T::InverseAcquire => self.inverse_acquire(req),
            T::DelPairState => self.delpair_state(req),
            _ => Err(einval(D::UnknownMsg)),
        }
    }

    // ----------------------------------------------------------------------
    // Address checks shared by every AH/ESP request (5.2 steps 4-5)

    fn check_request(&self, req: &Message) -> Result<Addrs> {
        let mut a = Addrs::default();
        if let Some(x) = req.address(ExtKind::AddressSrc) {
            a.src = Some((
                Endpoint {
                    ip: x.addr.canonical_ip(),
                    port: x.addr.port,
                },
                x.proto,
            ));
        }
        if let Some(x) = req.address(ExtKind::AddressDst) {
            a.dst = Some((
                Endpoint {
                    ip: x.addr.canonical_ip(),
                    port: x.addr.port,
                },
                x.proto,
            ));
        }
        if let Some((s, _)) = a.src {
            if self.classify(s.ip) == AddrClass::MulticastOrBroadcast {
                return Err(einval(D::BadSrc));
            }
        }
        if let Some((d, _)) = a.dst {
            if self.classify(d.ip) == AddrClass::Unspecified {
                return Err(einval(D::BadDst));
            }
        }
        // NAT-T addresses: IPv4 only; local must not be this host unless
        // unspecified; remote must not be this host (5.2 step 4).
        let inner_present = req.has(ExtKind::AddressInnerSrc) || req.has(ExtKind::AddressInnerDst);
        if let Some(x) = req.address(ExtKind::AddressNattLoc) {
            let ip = x.addr.canonical_ip();
            if !ip.is_ipv4() {
                return Err(einval(D::BadNattLocAf));
            }
            if self.classify(ip) == AddrClass::Me {
                return Err(einval(D::MalformedNattLoc));
            }
            a.natt_loc = Some(Endpoint {
                ip,
                port: x.addr.port,
            });
        }
        if let Some(x) = req.address(ExtKind::AddressNattRem) {
            let ip = x.addr.canonical_ip();
            if !ip.is_ipv4() {
                return Err(einval(D::BadNattRemAf));
            }
            let c = self.classify(ip);
            if c == AddrClass::Me || (c == AddrClass::Unspecified && !inner_present) {
                return Err(einval(D::MalformedNattRem));
            }
            a.natt_rem = Some(Endpoint {
                ip,
                port: x.addr.port,
            });
        }
        let isrc = req.address(ExtKind::AddressInnerSrc);
        let idst = req.address(ExtKind::AddressInnerDst);
        match (isrc, idst) {
            (Some(_), None) => return Err(einval(D::MissingInnerDst)),
            (None, Some(_)) => return Err(einval(D::MissingInnerSrc)),
            (Some(s), Some(d)) => {
                let s_sel = inner_selector(s, ExtKind::AddressInnerSrc)?;
                let d_sel = inner_selector(d, ExtKind::AddressInnerDst)?;
                if s_sel.ip.is_ipv4() != d_sel.ip.is_ipv4() {
                    return Err(einval(D::InnerAfMismatch));
                }
                if s.proto != 0 && d.proto != 0 && s.proto != d.proto {
                    return Err(einval(D::InnerProtoMismatch));
                }
                let outer_ports = a.src.is_some_and(|(e, _)| e.port != 0)
                    || a.dst.is_some_and(|(e, _)| e.port != 0);
                if outer_ports && (s_sel.port != 0 || d_sel.port != 0) {
                    return Err(einval(D::DualPortSets));
                }
                a.inner = Some((s_sel, d_sel, s.proto.max(d.proto)));
            }
            (None, None) => {}
        }
        if let (Some((s, sp)), Some((d, dp))) = (a.src.as_mut(), a.dst) {
            if s.ip.is_ipv4() != d.ip.is_ipv4() {
                // An unspecified IPv6 source with an IPv4 destination is
                // converted; any other mix, an unspecified IPv4 source with
                // an IPv6 destination included, is an error (5.2 step 4).
                if s.ip.is_ipv6() && s.ip.is_unspecified() {
                    s.ip = unspecified_like(d.ip);
                } else {
                    return Err(einval(D::AfMismatch));
                }
            }
            // illumos only reaches this check when the families differed; a
            // user expects contradictory protocols to be refused always.
            if *sp != 0 && dp != 0 && *sp != dp {
                return Err(einval(D::ProtoMismatch));
            }
        }
        // Message-level reality checks come after the address checks
        // (5.2 step 5 follows step 4).
        if req.has(ExtKind::Proposal) {
            return Err(einval(D::PropPresent));
        }
        if req.has(ExtKind::SupportedAuth) || req.has(ExtKind::SupportedEncrypt) {
            return Err(einval(D::SuppPresent));
        }
        if req.satype == satype::AH && req.has(ExtKind::KeyEncrypt) {
            return Err(einval(D::EkeyPresent));
        }
        Ok(a)
    }

    // ----------------------------------------------------------------------
    // ADD (5.2)

    fn add(&mut self, req: &Message, now: Now) -> Result<Response> {
        let addrs = self.check_request(req)?;
        let sa = self.build_sa(req, &addrs, now)?;
        self.insert_and_pair(req, sa)
    }

    /// Checks an ADD (or the UPDATE of a larval SA) and builds the SA.
    fn build_sa(&mut self, req: &Message, a: &Addrs, now: Now) -> Result<Sa> {
        let esp = req.satype == satype::ESP;
        let Some((src, src_proto)) = a.src else {
            return Err(einval(D::MissingSrc));
        };
        let Some((dst, dst_proto)) = a.dst else {
            return Err(einval(D::MissingDst));
        };
        let Some(sa_ext) = req.sa() else {
            return Err(einval(D::MissingSa));
        };
        let akey = req.key(ExtKind::KeyAuth);
        let ekey = req.key(ExtKind::KeyEncrypt);
        let null_id = EncrAlg::Null.id(Dialect::Illumos).unwrap_or(11);
        if esp {
            if ekey.is_none() && sa_ext.encrypt != null_id {
                return Err(einval(D::MissingEkey));
            }
        } else if akey.is_none() {
            return Err(einval(D::MissingAkey));
        }
        let state = SaState::from_u8(sa_ext.state);
        if !matches!(
            state,
            Some(SaState::Mature) | Some(SaState::ActiveElsewhere)
        ) {
            return Err(einval(D::BadSastate));
        }
        if esp {
            if sa_ext.encrypt == 0 {
                return Err(einval(D::BadEalg));
            }
            if sa_ext.encrypt == null_id && sa_ext.auth == 0 {
                return Err(einval(D::BadAalg));
            }
        } else if sa_ext.encrypt != 0 {
            return Err(einval(D::EncrNotsupp));
        }
        let settable = if esp { flags::ADD_ESP } else { flags::ADD_AH };
        if sa_ext.flags & !settable != 0 {
            return Err(einval(D::BadSaflags));
        }
        let (hard, soft, idle) = check_lifetimes(req)?;
        if sa_ext.flags & flags::X_NATT_LOC != 0 && a.natt_loc.is_none() {
            return Err(einval(D::MissingNattLoc));
        }
        if sa_ext.flags & flags::X_NATT_REM != 0 && a.natt_rem.is_none() {
            return Err(einval(D::MissingNattRem));
        }
        if req.has(ExtKind::LifetimeCurrent) {
            return Err(refuse(Errno::Eopnotsupp, D::None));
        }
        if req.has(ExtKind::Sensitivity) || req.has(ExtKind::OuterSensitivity) {
            // The simulated host has no Trusted Extensions labels.
            return Err(einval(BAD_LABEL));
        }
        // Keys (5.8). An SA that names an authentication algorithm needs its key.
        let auth_alg = AuthAlg::from_id(sa_ext.auth, Dialect::Illumos);
        let (auth_key, auth_key_bits) = match akey {
            Some(k) => {
                let alg = auth_alg.ok_or(einval(D::BadAalg))?;
                check_auth_key(alg, k.bits, &k.material).map_err(einval)?;
                (Some(key_bytes(k, k.bits)), k.bits)
            }
            None if sa_ext.auth != 0 => {
                auth_alg.ok_or(einval(D::BadAalg))?;
                return Err(einval(D::MissingAkey));
            }
            None => (None, 0),
        };
        let (encr_key, encr_key_bits) = match ekey {
            Some(k) => {
                let alg =
                    EncrAlg::from_id(sa_ext.encrypt, Dialect::Illumos).ok_or(einval(D::BadEalg))?;
                let mut material = key_bytes(k, k.bits);
                check_encr_key(alg, k.bits, k.reserved, &mut material).map_err(einval)?;
                // The IV bits some tests append are not part of the stored key.
                let kept = k.bits.saturating_sub(k.reserved);
                let mut bytes = material.expose().to_vec();
                bytes.truncate((kept as usize).div_ceil(8));
                (Some(crate::key::KeyMaterial::new(bytes)), kept)
            }
            None => {
                if esp && EncrAlg::from_id(sa_ext.encrypt, Dialect::Illumos).is_none() {
                    return Err(einval(D::BadEalg));
                }
                (None, 0)
            }
        };
        if esp && ekey.is_none() && sa_ext.auth == 0 && akey.is_none() {
            return Err(einval(D::BadAalg));
        }

        // Direction (5.2 step 9), then step 10: an SA that will be cloned
        // cannot carry pair-spi, refused before the tunnel-mode (step 11)
        // and SA-building (step 12) checks.
        let (inbound, outbound, _) = self.direction(sa_ext.flags, src.ip, dst.ip)?;
        if inbound && outbound && req.has(ExtKind::Pair) {
            return Err(einval(D::PairInappropriate));
        }

        // Tunnel mode: the outer protocol says which inner family (5.2 step 11).
        let mut proto = if src_proto != 0 { src_proto } else { dst_proto };
        let (inner_src, inner_dst, inner_proto) = match a.inner {
            Some((s, d, p)) => {
                let want = if s.ip.is_ipv4() { 4 } else { 41 };
                if proto == 0 {
                    proto = want;
                } else if proto != want {
                    return Err(refuse(Errno::Eprototype, D::InnerAfMismatch));
                }
                (Some(s), Some(d), p)
            }
            None => (None, None, 0),
        };
        if sa_ext.flags & flags::X_TUNNEL != 0 && inner_src.is_none() {
            return Err(einval(D::MissingInnerSrc));
        }
        // X_PAIRED (which ipseckey sets along with pair-spi) is the kernel's:
        // only a pairing that succeeds sets it; one undone with errno 0
        // leaves the SA unpaired (5.5).
        let mut fl = sa_ext.flags & !flags::X_PAIRED;
        if inner_src.is_some() {
            fl |= flags::X_TUNNEL;
        }
        let unique = if inner_src.is_some() {
            inner_proto != 0
                || inner_src.is_some_and(|s| s.port != 0)
                || inner_dst.is_some_and(|d| d.port != 0)
        } else {
            proto != 0 || src.port != 0 || dst.port != 0
        };
        if unique {
            fl |= flags::X_UNIQUE;
        }
        // RFC 4303 3.4.3 needs a known sender; illumos turns the window off
        // when the source is unspecified (5.7).
        let replay_window = if src.ip.is_unspecified() {
            0
        } else {
            sa_ext.replay
        };
        let mut replay =
            ReplayWindow::new(u32::from(replay_window)).map_err(|_| einval(D::None))?;
        let mut seq_out = 0;
        if let Some(Extension::ReplayValue { r32, r64 }) = req.ext(ExtKind::ReplayValue) {
            if *r32 == 0 && *r64 != 0 {
                return Err(refuse(Errno::Eopnotsupp, D::InvalidReplay));
            }
            replay.set_highest(u64::from(*r32));
            seq_out = u64::from(*r32);
        }
        let kmc = match req.ext(ExtKind::KmCookie) {
            Some(Extension::KmCookie { proto, cookie }) => (*proto, *cookie),
            _ => (0, 0),
        };
        let ident = |kind| match req.ext(kind) {
            Some(Extension::Identity(_, i)) => Some(i.clone()),
            _ => None,
        };
        let (idle, idle_defaulted) = match idle {
            Some(i) => (i, false),
            None if self.cfg.idle_default && hard.addtime != 0 => {
                let half = hard.addtime / 2;
                (
                    Lifetime {
                        addtime: half,
                        usetime: half,
                        ..Lifetime::default()
                    },
                    true,
                )
            }
            None => (Lifetime::default(), false),
        };
        let mut sa = Sa {
            serial: 0,
            satype: req.satype,
            spi: sa_ext.spi,
            state: SaState::Mature,
            src,
            dst,
            proto,
            inner_src,
            inner_dst,
            inner_proto,
            natt_loc: a.natt_loc,
            natt_rem: a.natt_rem,
            flags: fl,
            auth_alg: sa_ext.auth,
            encr_alg: sa_ext.encrypt,
            auth_key,
            auth_key_bits,
            encr_key,
            encr_key_bits,
            replay_window,
            replay,
            seq_out,
            hard,
            soft,
            idle,
            idle_defaulted,
            add_time: now,
            use_time: 0,
            last_use: 0,
            bytes: 0,
            hard_expire: 0,
            soft_expire: 0,
            reap_at: 0,
            idle_notified: None,
            ident_src: ident(ExtKind::IdentitySrc),
            ident_dst: ident(ExtKind::IdentityDst),
            sens: None,
            outer_sens: None,
            kmc,
            pair_spi: None,
            in_inbound: false,
            in_outbound: false,
        };
        if let Some(SaState::ActiveElsewhere) = state {
            sa.state = SaState::ActiveElsewhere;
        }
        recompute_expiry(&mut sa);
        Ok(sa)
    }

    /// Direction selection (5.3): (in the inbound table, in the outbound
    /// table, the direction flags the SA shows).
    fn direction(&self, req_flags: u64, src: IpAddr, dst: IpAddr) -> Result<(bool, bool, u64)> {
        Ok(if req_flags & flags::X_INBOUND != 0 {
            (
                true,
                req_flags & flags::X_OUTBOUND != 0,
                req_flags & (flags::X_INBOUND | flags::X_OUTBOUND),
            )
        } else if req_flags & flags::X_OUTBOUND != 0 {
            (false, true, flags::X_OUTBOUND)
        } else {
            match self.classify(dst) {
                AddrClass::MulticastOrBroadcast => {
                    (true, true, flags::X_INBOUND | flags::X_OUTBOUND)
                }
                AddrClass::Me => (
                    true,
                    self.classify(src) != AddrClass::NotMe,
                    flags::X_INBOUND,
                ),
                AddrClass::NotMe => {
                    let clone = self.classify(src) != AddrClass::Me;
                    (
                        clone,
                        true,
                        flags::X_OUTBOUND | if clone { flags::X_INBOUND } else { 0 },
                    )
                }
                AddrClass::Unspecified => return Err(einval(D::BadDst)),
            }
        })
    }

    /// Direction selection (5.3), insertion (5.2 step 14) and pairing (5.5).
    fn insert_and_pair(&mut self, req: &Message, mut sa: Sa) -> Result<Response> {
        let (inbound, outbound, shown) = self.direction(sa.flags, sa.src.ip, sa.dst.ip)?;
        let pair = match req.ext(ExtKind::Pair) {
            Some(Extension::Pair { spi }) => Some(*spi),
            _ => None,
        };
        if inbound && outbound && pair.is_some() {
            return Err(einval(D::PairInappropriate));
        }
        sa.in_inbound = inbound;
        sa.in_outbound = outbound;
        sa.flags |= shown;
        // Outbound-only SAs get their soft add time shortened by 8-23 s so
        // that peers do not all rekey at once (5.6, decisions.md #3).
        if outbound && !inbound && sa.soft.addtime != 0 {
            if let Jitter::Seeded(_) = self.cfg.jitter {
                let j: u64 = self.jitter_rng.gen_range(8..=23);
                sa.soft.addtime = sa.soft.addtime.saturating_sub(j).max(1);
                recompute_expiry(&mut sa);
            }
        }
        let t = table(sa.satype).ok_or(einval(D::UnknownSatype))?;
        let key = (sa.spi, sa.dst.ip);
        if self.index[t].contains_key(&key) {
            return Err(refuse(Errno::Eexist, D::None));
        }
        sa.serial = self.take_serial();
        let id = self.sas.insert(sa);
        self.index[t].insert(key, id);

        let mut diag = D::None;
        if let Some(pair_spi) = pair {
            match self.pair(id, pair_spi) {
                Ok(d) => diag = d,
                Err(r) => {
                    // decisions.md simulated kernel #6: removed at once.
                    self.remove(id);
                    return Err(r);
                }
            }
        }
        let mut echo = strip_for_echo(req);
        if let (Some(sa_ext), Some(stored)) = (echo.sa_mut(), self.sas.get(id)) {
            sa_ext.flags = stored.flags;
        }
        echo.reserved = diag.code();
        Ok(Response::one(Audience::All, echo))
    }

    /// Pairs SA `id` with the SA whose SPI is `pair_spi` (5.5). `Ok(diag)`
    /// with a non-zero diag means illumos's "errno 0 but not paired" cases.
    fn pair(&mut self, id: SaId, pair_spi: u32) -> Result<D> {
        let Some(sa) = self.sas.get(id) else {
            return Err(einval(D::SaNotfound));
        };
        if pair_spi == 0 || pair_spi == sa.spi {
            return Err(einval(D::PairInappropriate));
        }
        if sa.pair_spi.is_some_and(|p| p != pair_spi) {
            return Ok(D::PairAlready);
        }
        let (satype, src, dst, inbound) = (sa.satype, sa.src.ip, sa.dst.ip, sa.in_inbound);
        // The partner runs the other way: its destination is our source.
        let partner = self.lookup(satype, pair_spi, src).filter(|&p| {
            self.sas.get(p).is_some_and(|o| {
                (o.src.ip == dst || o.src.ip.is_unspecified())
                    && if inbound { o.in_outbound } else { o.in_inbound }
            })
        });
        let Some(p) = partner else {
            return Err(einval(D::PairInappropriate));
        };
        let Some(o) = self.sas.get(p) else {
            return Err(einval(D::PairInappropriate));
        };
        if matches!(o.state, SaState::Dying | SaState::Dead) {
            return Ok(D::PairInappropriate);
        }
        // illumos recognises a cloned SA by its two direction flags.
        if o.flags & flags::X_INBOUND != 0 && o.flags & flags::X_OUTBOUND != 0 {
            return Ok(D::PairInappropriate);
        }
        if o.pair_spi.is_some_and(|s| s != self.sas[id].spi) {
            return Ok(D::PairAlready);
        }
        let my_spi = self.sas[id].spi;
        if let Some(o) = self.sas.get_mut(p) {
            o.pair_spi = Some(my_spi);
            o.flags |= flags::X_PAIRED;
        }
        if let Some(me) = self.sas.get_mut(id) {
            me.pair_spi = Some(pair_spi);
            me.flags |= flags::X_PAIRED;
        }
        Ok(D::None)
    }

    /// The partner of a paired SA.
    pub fn partner(&self, id: SaId) -> Option<SaId> {
        let sa = self.sas.get(id)?;
        let spi = sa.pair_spi?;
        self.lookup(sa.satype, spi, sa.src.ip)
            .filter(|&p| self.sas.get(p).is_some_and(|o| o.pair_spi == Some(sa.spi)))
    }

    fn unpair(&mut self, id: SaId) {
        if let Some(p) = self.partner(id) {
            if let Some(o) = self.sas.get_mut(p) {
                o.pair_spi = None;
                o.flags &= !flags::X_PAIRED;
            }
        }
        if let Some(me) = self.sas.get_mut(id) {
            me.pair_spi = None;
            me.flags &= !flags::X_PAIRED;
        }
    }

    /// Removes an SA from every table; its partner becomes unpaired.
    pub fn remove(&mut self, id: SaId) -> Option<Sa> {
        self.unpair(id);
        let sa = self.sas.try_remove(id)?;
        if let Some(t) = table(sa.satype) {
            self.index[t].remove(&(sa.spi, sa.dst.ip));
        }
        Some(sa)
    }

    /// Puts back an SA exactly as it was stored, e.g. by a daemon reloading
    /// its state from disk: no PF_KEY checks, only the (SPI, destination)
    /// uniqueness every insertion keeps (`Eexist`), and a known SA type
    /// (`Einval`). The SA gets a fresh serial.
    pub fn restore(&mut self, mut sa: Sa) -> std::result::Result<SaId, Errno> {
        let t = table(sa.satype).ok_or(Errno::Einval)?;
        sa.dst.ip = sa.dst.ip.to_canonical();
        let key = (sa.spi, sa.dst.ip);
        if self.index[t].contains_key(&key) {
            return Err(Errno::Eexist);
        }
        sa.serial = self.take_serial();
        let id = self.sas.insert(sa);
        self.index[t].insert(key, id);
        Ok(id)
    }

    /// Looks up the SA a GET/UPDATE/DELETE names (5.1).
    fn find(&self, req: &Message, a: &Addrs) -> Result<SaId> {
        let Some((dst, _)) = a.dst else {
            return Err(einval(D::MissingDst));
        };
        let Some(sa_ext) = req.sa() else {
            return Err(einval(D::MissingSa));
        };
        let id = self
            .lookup(req.satype, sa_ext.spi, dst.ip)
            .ok_or(refuse(Errno::Esrch, D::SaNotfound))?;
        if let Some((src, _)) = a.src {
            let sa = &self.sas[id];
            if !(src.ip.is_unspecified() || sa.src.ip.is_unspecified() || sa.src.ip == src.ip) {
                return Err(refuse(Errno::Esrch, D::SaNotfound));
            }
        }
        Ok(id)
    }

    // ----------------------------------------------------------------------
    // UPDATE and UPDATE-PAIR (5.4)

    fn update(&mut self, req: &Message, now: Now) -> Result<Response> {
        if !req.has(ExtKind::AddressDst) {
            return Err(einval(D::MissingDst));
        }
        let a = self.check_request(req)?;
        if a.src.is_none() {
            return Err(einval(D::MissingSrc));
        }
        let sa_ext = *req.sa().ok_or(einval(D::MissingSa))?;
        let id = self.find(req, &a)?;
        let sa = &self.sas[id];
        if sa.state == SaState::Larval && sa.pair_spi.is_none() && req.msg_type == MsgType::Update {
            return self.complete_larval(req, &a, id, now);
        }
        if req.has(ExtKind::KeyAuth) {
            return Err(einval(D::AkeyPresent));
        }
        if req.has(ExtKind::KeyEncrypt) {
            return Err(einval(D::EkeyPresent));
        }
        if !matches!(
            SaState::from_u8(sa_ext.state),
            Some(SaState::Mature) | Some(SaState::ActiveElsewhere)
        ) {
            return Err(einval(D::BadSastate));
        }
        let settable = if req.satype == satype::ESP {
            flags::UPDATE_ESP
        } else {
            flags::UPDATE_AH
        };
        if sa_ext.flags & !settable != 0 {
            return Err(einval(D::BadSaflags));
        }
        if req.has(ExtKind::LifetimeCurrent) {
            return Err(refuse(Errno::Eopnotsupp, D::MissingLifetime));
        }
        let (hard, soft, idle) = check_lifetimes(req)?;
        if req.has(ExtKind::Sensitivity) || req.has(ExtKind::OuterSensitivity) {
            return Err(einval(BAD_LABEL));
        }
        if let Some(Extension::KmCookie { proto, cookie }) = req.ext(ExtKind::KmCookie) {
            let (p, c) = sa.kmc;
            if p != 0 && p != *proto {
                return Err(einval(D::DuplicateKmp));
            }
            if c != 0 && c != *cookie {
                return Err(einval(D::DuplicateKmc));
            }
        }
        let replay_value = match req.ext(ExtKind::ReplayValue) {
            Some(Extension::ReplayValue { r32, r64 }) => {
                if *r32 == 0 && *r64 != 0 {
                    return Err(refuse(Errno::Eopnotsupp, D::InvalidReplay));
                }
                // illumos accepts a replay value only once the SA is past
                // MATURE (5.4 step 4).
                if matches!(sa.state, SaState::Larval | SaState::Mature) {
                    return Err(einval(D::BadSastate));
                }
                Some(u64::from(*r32))
            }
            _ => None,
        };
        let partner = if req.msg_type == MsgType::UpdatePair {
            Some(self.partner(id))
        } else {
            None
        };
        let dst_is_me = self.classify(sa.dst.ip) == AddrClass::Me;
        self.apply_update(
            id,
            req,
            &hard,
            &soft,
            idle.as_ref(),
            replay_value,
            dst_is_me,
        )?;
        if let Some(Extension::KmCookie { proto, cookie }) = req.ext(ExtKind::KmCookie) {
            if let Some(sa) = self.sas.get_mut(id) {
                sa.kmc = (*proto, *cookie);
            }
        }
        match partner {
            Some(Some(p)) => self.apply_update(p, req, &hard, &soft, idle.as_ref(), None, false)?,
            Some(None) => return Err(refuse(Errno::Esrch, D::PairSaNotfound)),
            None => {}
        }
        let mut diag = D::None;
        if let Some(Extension::Pair { spi }) = req.ext(ExtKind::Pair) {
            let s = &self.sas[id];
            if s.in_inbound && s.in_outbound {
                return Err(einval(D::PairInappropriate));
            }
            diag = match self.pair(id, *spi) {
                Ok(d) => d,
                Err(r) => {
                    self.unpair_if_half(id);
                    return Err(r);
                }
            };
        }
        let mut echo = strip_for_echo(req);
        echo.reserved = diag.code();
        Ok(Response::one(Audience::All, echo))
    }

    fn unpair_if_half(&mut self, id: SaId) {
        if self.partner(id).is_none() {
            if let Some(sa) = self.sas.get_mut(id) {
                sa.pair_spi = None;
                sa.flags &= !flags::X_PAIRED;
            }
        }
    }

    /// Applies new lifetimes (non-zero request fields only) and a replay value.
    #[allow(clippy::too_many_arguments)]
    fn apply_update(
        &mut self,
        id: SaId,
        req: &Message,
        hard: &Limits,
        soft: &Limits,
        idle: Option<&Lifetime>,
        replay_value: Option<u64>,
        dst_is_me: bool,
    ) -> Result<()> {
        let Some(sa) = self.sas.get_mut(id) else {
            return Err(refuse(Errno::Esrch, D::SaNotfound));
        };
        if let Some(v) = replay_value {
            if sa.replay_window != 0 {
                if dst_is_me {
                    // 4.7: EINVAL unless noted; only replay64 without
                    // replay32 is EOPNOTSUPP.
                    sa.replay.check(v).map_err(|_| einval(D::InvalidReplay))?;
                    sa.replay.set_highest(v);
                } else {
                    sa.seq_out = v;
                }
            }
        }
        if req.has(ExtKind::LifetimeHard) {
            merge_nonzero(&mut sa.hard, hard);
        }
        if req.has(ExtKind::LifetimeSoft) {
            merge_nonzero(&mut sa.soft, soft);
            // A soft limit past the hard one never fires; keep it at the hard
            // limit (illumos clamps too, but to 0 when there is no hard
            // limit: a bug we do not copy).
            clamp_soft(&mut sa.soft, &sa.hard);
        }
        if let Some(i) = idle {
            sa.idle.addtime = i.addtime;
            sa.idle.usetime = i.usetime;
            sa.idle_defaulted = false;
            sa.idle_notified = None;
        } else if sa.idle_defaulted && req.has(ExtKind::LifetimeHard) && hard.addtime != 0 {
            sa.idle.addtime = sa.hard.addtime / 2;
            sa.idle.usetime = sa.hard.addtime / 2;
        }
        recompute_expiry(sa);
        Ok(())
    }

    /// UPDATE of a larval SA from GETSPI: completed like an ADD.
    fn complete_larval(
        &mut self,
        req: &Message,
        a: &Addrs,
        id: SaId,
        now: Now,
    ) -> Result<Response> {
        let mut sa = self.build_sa(req, a, now)?;
        let old = &self.sas[id];
        sa.src = old.src;
        sa.dst = old.dst;
        sa.spi = old.spi;
        self.remove(id);
        self.insert_and_pair(req, sa)
    }

    // ----------------------------------------------------------------------
    // DELETE, DELETE-PAIR, DELPAIR_STATE, GET

    fn delete(&mut self, req: &Message) -> Result<Response> {
        let a = self.check_request(req)?;
        if req.sa().is_none() {
            return self.delete_by_address(req, &a);
        }
        let id = self.find(req, &a)?;
        let partner = self.partner(id);
        let Some(sa) = self.remove(id) else {
            return Err(refuse(Errno::Esrch, D::SaNotfound));
        };
        // DELETE-PAIR removes the SA and its partner *or clone* (5.5): a
        // cloned SA's other copy went with it, so it has its pair.
        let cloned = sa.in_inbound && sa.in_outbound;
        let mut out = vec![Delivery {
            to: Audience::All,
            msg: sa.describe(req.msg_type, req.seq, req.pid, false),
        }];
        if req.msg_type == MsgType::DelPair {
            match partner.and_then(|p| self.remove(p)) {
                Some(p) => out.push(Delivery {
                    to: Audience::All,
                    msg: p.describe(req.msg_type, req.seq, req.pid, false),
                }),
                None if cloned => {}
                // The SA itself is gone all the same (5.5).
                None => return Err(refuse(Errno::Esrch, D::PairSaNotfound)),
            }
        }
        Ok(Response {
            deliveries: out,
            effect: None,
        })
    }

    /// DELETE without an SA extension: every non-larval SA between the
    /// given addresses (pfkey-v2-wire.md 6.3).
    fn delete_by_address(&mut self, req: &Message, a: &Addrs) -> Result<Response> {
        if a.src.is_none() && a.dst.is_none() {
            return Err(einval(D::MissingSa));
        }
        let t = table(req.satype).ok_or(einval(D::UnknownSatype))?;
        let victims: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(_, sa)| {
                table(sa.satype) == Some(t)
                    && sa.state != SaState::Larval
                    && a.src.is_none_or(|(s, _)| s.ip == sa.src.ip)
                    && a.dst.is_none_or(|(d, _)| d.ip == sa.dst.ip)
            })
            .map(|(id, _)| id)
            .collect();
        if victims.is_empty() {
            return Err(refuse(Errno::Esrch, D::SaNotfound));
        }
        for id in victims {
            self.remove(id);
        }
        Ok(Response::one(Audience::All, strip_for_echo(req)))
    }

    fn delpair_state(&mut self, req: &Message) -> Result<Response> {
        let a = self.check_request(req)?;
        let Some(sa_ext) = req.sa() else {
            return Err(einval(D::MissingSa));
        };
        let (Some((src, _)), Some((dst, _))) = (a.src, a.dst) else {
            return Err(einval(D::MissingDst));
        };
        let victims: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(_, sa)| {
                (req.satype == 0 || sa.satype == req.satype)
                    && sa.pair_spi.is_some()
                    && sa.state as u8 == sa_ext.state
                    && sa.src.ip == src.ip
                    && sa.dst.ip == dst.ip
            })
            .map(|(id, _)| id)
            .collect();
        if victims.is_empty() {
            return Err(refuse(Errno::Esrch, D::SaNotfound));
        }
        for id in victims {
            if let Some(p) = self.partner(id) {
                self.remove(p);
            }
            self.remove(id);
        }
        Ok(Response::one(Audience::All, strip_for_echo(req)))
    }

    fn get(&mut self, req: &Message) -> Result<Response> {
        let a = self.check_request(req)?;
        let id = self.find(req, &a)?;
        Ok(Response::one(
            Audience::Sender,
            self.sas[id].describe(MsgType::Get, req.seq, req.pid, true),
        ))
    }

    fn inverse_acquire(&mut self, req: &Message) -> Result<Response> {
        let a = self.check_request(req)?;
        if a.src.is_none() {
            return Err(einval(D::MissingSrc));
        }
        if a.dst.is_none() {
            return Err(einval(D::MissingDst));
        }
        // Policy lives outside the SADB (illumos keeps it behind PF_POLICY);
        // with no policy for the pair there is nothing to propose.
        Err(refuse(Errno::Enoent, D::None))
    }

    // ----------------------------------------------------------------------
    // FLUSH, DUMP (5.9)

    fn flush(&mut self, req: &Message) -> Result<Response> {
        if !req.exts.is_empty() {
            return Err(einval(D::NoExt));
        }
        let victims: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(_, sa)| req.satype == satype::UNSPEC || sa.satype == req.satype)
            .map(|(id, _)| id)
            .collect();
        for id in victims {
            self.remove(id);
        }
        let mut echo = req.clone();
        echo.errno = 0;
        Ok(Response::one(Audience::All, echo))
    }

    fn dump(&mut self, req: &Message, now: Now) -> Result<Response> {
        let timeout = match req.exts.as_slice() {
            [] => None,
            [Extension::ExtDump { timeout }] => Some(*timeout),
            _ => return Err(einval(D::NoExt)),
        };
        let mut out = Vec::new();
        for t in [satype::AH, satype::ESP] {
            if req.satype != satype::UNSPEC && req.satype != t {
                continue;
            }
            for v6 in [false, true] {
                // Outbound table first, then SAs only in the inbound table (1.8).
                for outbound_pass in [true, false] {
                    for (_, sa) in self.sas.iter() {
                        if sa.satype != t
                            || sa.dst.ip.is_ipv6() != v6
                            || sa.in_outbound != outbound_pass
                        {
                            continue;
                        }
                        // X_EDUMP: only SAs used within the last `timeout` s.
                        if timeout.is_some_and(|to| to != 0 && sa.last_use.saturating_add(to) < now)
                        {
                            continue;
                        }
                        out.push(Delivery {
                            to: Audience::Sender,
                            msg: sa.describe(MsgType::Dump, req.seq, req.pid, true),
                        });
                    }
                }
            }
        }
        let mut end = Message::new(MsgType::Dump, req.satype, 0, req.pid);
        end.errno = 0;
        out.push(Delivery {
            to: Audience::Sender,
            msg: end,
        });
        Ok(Response {
            deliveries: out,
            effect: None,
        })
    }

    // ----------------------------------------------------------------------
    // GETSPI, REGISTER

    fn getspi(&mut self, req: &Message, now: Now) -> Result<Response> {
        let a = self.check_request(req)?;
        let Some((src, sproto)) = a.src else {
            return Err(einval(D::MissingSrc));
        };
        let Some((dst, dproto)) = a.dst else {
            return Err(einval(D::MissingDst));
        };
        let Some(Extension::SpiRange(range)) = req.ext(ExtKind::SpiRange) else {
            return Err(einval(D::MissingRange));
        };
        let t = table(req.satype).ok_or(einval(D::UnknownSatype))?;
        let (min, max) = (range.min.max(1), range.max);
        if min > max {
            return Err(einval(D::MalformedRange));
        }
        let free = |db: &Sadb, spi: u32| !db.index[t].contains_key(&(spi, dst.ip));
        let mut spi = None;
        for _ in 0..64 {
            let cand = self.rng.gen_range(min..=max);
            if free(self, cand) {
                spi = Some(cand);
                break;
            }
        }
        if spi.is_none() && u64::from(max - min) < 1 << 20 {
            spi = (min..=max).find(|&s| free(self, s));
        }
        let spi = spi.ok_or(refuse(Errno::Eexist, D::None))?;
        let sa = Sa {
            serial: 0,
            satype: req.satype,
            spi,
            state: SaState::Larval,
            src,
            dst,
            proto: sproto.max(dproto),
            inner_src: None,
            inner_dst: None,
            inner_proto: 0,
            natt_loc: None,
            natt_rem: None,
            flags: flags::X_INBOUND,
            auth_alg: 0,
            encr_alg: 0,
            auth_key: None,
            auth_key_bits: 0,
            encr_key: None,
            encr_key_bits: 0,
            replay_window: 0,
            replay: ReplayWindow::new(0).map_err(|_| einval(D::None))?,
            seq_out: 0,
            hard: Limits::default(),
            soft: Limits::default(),
            idle: Limits::default(),
            idle_defaulted: false,
            add_time: now,
            use_time: 0,
            last_use: 0,
            bytes: 0,
            hard_expire: now.saturating_add(self.cfg.larval_lifetime),
            soft_expire: 0,
            reap_at: 0,
            idle_notified: None,
            ident_src: None,
            ident_dst: None,
            sens: None,
            outer_sens: None,
            kmc: (0, 0),
            pair_spi: None,
            in_inbound: true,
            in_outbound: false,
        };
        let mut sa = sa;
        sa.serial = self.take_serial();
        let id = self.sas.insert(sa);
        self.index[t].insert((spi, dst.ip), id);
        let mut reply = Message::new(MsgType::GetSpi, req.satype, req.seq, req.pid);
        reply.exts.push(Extension::Sa(SaExt {
            spi,
            state: SaState::Larval as u8,
            ..SaExt::default()
        }));
        reply.exts.push(Extension::Address(
            ExtKind::AddressSrc,
            Address::new(src.ip, src.port, sproto),
        ));
        reply.exts.push(Extension::Address(
            ExtKind::AddressDst,
            Address::new(dst.ip, dst.port, dproto),
        ));
        Ok(Response::one(Audience::All, reply))
    }

    fn register(&mut self, req: &Message) -> Result<Response> {
        let types: Vec<u8> = if req.satype == satype::UNSPEC {
            match req.ext(ExtKind::ExtRegister) {
                Some(Extension::ExtRegister(t)) => t.clone(),
                _ => return Err(einval(D::SatypeNeeded)),
            }
        } else {
            vec![req.satype]
        };
        if types.iter().any(|&t| table(t).is_none()) {
            return Err(einval(D::UnknownSatype));
        }
        let mut reply = Message::new(MsgType::Register, req.satype, req.seq, req.pid);
        let wants_auth = true;
        let wants_encr = types.contains(&satype::ESP);
        if wants_auth {
            let algs = AuthAlg::ALL
                .iter()
                .filter(|a| **a != AuthAlg::None)
                .filter_map(|a| {
                    let kb = a.key_bits();
                    Some(AlgDesc {
                        id: a.id(Dialect::Illumos)?,
                        ivlen: 0,
                        minbits: kb.min,
                        maxbits: kb.max,
                        increment: kb.step as u8,
                        saltbits: 0,
                    })
                })
                .collect();
            reply
                .exts
                .push(Extension::Supported(ExtKind::SupportedAuth, algs));
        }
        if wants_encr {
            let algs = EncrAlg::ALL
                .iter()
                .filter(|a| **a != EncrAlg::None)
                .filter_map(|a| {
                    let kb = a.key_bits();
                    Some(AlgDesc {
                        id: a.id(Dialect::Illumos)?,
                        ivlen: a.iv_len() as u8,
                        minbits: kb.min,
                        maxbits: kb.max,
                        increment: kb.step as u8,
                        saltbits: a.salt_bits() as u8,
                    })
                })
                .collect();
            reply
                .exts
                .push(Extension::Supported(ExtKind::SupportedEncrypt, algs));
        }
        let effect = if req.satype == satype::UNSPEC {
            SocketEffect::RegisterExtended(types)
        } else {
            SocketEffect::Register(req.satype)
        };
        Ok(Response {
            deliveries: vec![Delivery {
                to: Audience::Registered(req.satype),
                msg: reply,
            }],
            effect: Some(effect),
        })
    }

    // ----------------------------------------------------------------------
    // Time and traffic (5.6)

    /// One pass of the ager at time `now`: returns the EXPIRE messages to
    /// send to every socket.
    pub fn age(&mut self, now: Now) -> Vec<Message> {
        let mut out = Vec::new();
        let ids: Vec<SaId> = self.sas.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(sa) = self.sas.get(id) else { continue };
            if sa.state == SaState::Larval {
                if sa.hard_expire != 0 && now >= sa.hard_expire {
                    self.remove(id);
                }
                continue;
            }
            if sa.state == SaState::Dead {
                if now >= sa.reap_at {
                    self.remove(id);
                }
                continue;
            }
            if sa.hard_expire != 0 && now >= sa.hard_expire {
                out.push(self.expire_hard(id, now));
                continue;
            }
            if sa.soft_expire != 0 && now >= sa.soft_expire && sa.state < SaState::Dying {
                out.push(self.expire_soft(id));
                continue;
            }
            let sa = &self.sas[id];
            let idle_time = if sa.use_time != 0 {
                sa.idle.usetime
            } else {
                sa.idle.addtime
            };
            if sa.state == SaState::Mature && idle_time != 0 {
                let since = if sa.use_time != 0 {
                    sa.last_use
                } else {
                    sa.add_time
                };
                if now >= since.saturating_add(idle_time) && sa.idle_notified != Some(since) {
                    out.push(sa.expire_msg(ExtKind::LifetimeIdle));
                    if let Some(sa) = self.sas.get_mut(id) {
                        sa.idle_notified = Some(since);
                    }
                }
            }
        }
        out
    }

    /// The earliest time at which [`Sadb::age`] can change anything (an
    /// expiry, a reap, an idle EXPIRE), or `None` when no SA has such a
    /// time. Until then ager passes do nothing, so a virtual clock moved by
    /// days or years may skip them instead of running each one. Traffic
    /// can bring the time forward (first use, idle restarts); callers ask
    /// again after it.
    pub fn next_event(&self) -> Option<Now> {
        self.sas
            .iter()
            .filter_map(|(_, sa)| {
                let nz = |t: Now| (t != 0).then_some(t);
                match sa.state {
                    SaState::Larval => return nz(sa.hard_expire),
                    SaState::Dead => return Some(sa.reap_at),
                    _ => {}
                }
                let soft = nz(sa.soft_expire).filter(|_| sa.state < SaState::Dying);
                let (idle_time, since) = if sa.use_time != 0 {
                    (sa.idle.usetime, sa.last_use)
                } else {
                    (sa.idle.addtime, sa.add_time)
                };
                let idle = (sa.state == SaState::Mature
                    && idle_time != 0
                    && sa.idle_notified != Some(since))
                .then(|| since.saturating_add(idle_time));
                [nz(sa.hard_expire), soft, idle].into_iter().flatten().min()
            })
            .min()
    }

    fn expire_hard(&mut self, id: SaId, now: Now) -> Message {
        self.unpair(id);
        let reap = self.cfg.reap_delay;
        let sa = &mut self.sas[id];
        sa.state = SaState::Dead;
        sa.reap_at = now.saturating_add(reap);
        sa.expire_msg(ExtKind::LifetimeHard)
    }

    /// Hard-expires SA `id` now (the packet engine's hook for a sequence
    /// counter that would wrap, RFC 4303 3.3.3): DEAD, reaped after the
    /// reap delay, and the EXPIRE(HARD) to send. `None` if it is gone or
    /// already dead.
    pub fn expire_now(&mut self, id: SaId, now: Now) -> Option<Message> {
        match self.sas.get(id)?.state {
            SaState::Dead => None,
            _ => Some(self.expire_hard(id, now)),
        }
    }

    fn expire_soft(&mut self, id: SaId) -> Message {
        self.unpair(id);
        let sa = &mut self.sas[id];
        sa.state = SaState::Dying;
        sa.expire_msg(ExtKind::LifetimeSoft)
    }

    /// Accounts `bytes` of traffic through SA `id` at `now` (the packet
    /// engine's hook). Returns the EXPIREs this caused; `Err` means the SA
    /// is (now) dead and the packet must be dropped.
    pub fn account(
        &mut self,
        id: SaId,
        bytes: u64,
        now: Now,
    ) -> std::result::Result<Vec<Message>, Vec<Message>> {
        let mut out = Vec::new();
        let Some(sa) = self.sas.get_mut(id) else {
            return Err(out);
        };
        if matches!(sa.state, SaState::Dead | SaState::Larval) {
            return Err(out);
        }
        if sa.use_time == 0 {
            sa.use_time = now;
            sa.flags |= flags::X_USED;
            recompute_expiry(sa);
        }
        sa.last_use = now;
        let total = sa.bytes.saturating_add(bytes);
        if sa.hard.bytes != 0 && total >= sa.hard.bytes {
            out.push(self.expire_hard(id, now));
            return Err(out);
        }
        sa.bytes = total;
        if sa.soft.bytes != 0 && total >= sa.soft.bytes && sa.state == SaState::Mature {
            out.push(self.expire_soft(id));
        }
        Ok(out)
    }
}

/// Addresses of a request after the checks of 5.2 step 4.
#[derive(Debug, Default, Clone, Copy)]
struct Addrs {
    src: Option<(Endpoint, u8)>,
    dst: Option<(Endpoint, u8)>,
    natt_loc: Option<Endpoint>,
    natt_rem: Option<Endpoint>,
    inner: Option<(InnerSelector, InnerSelector, u8)>,
}

fn inner_selector(a: &Address, kind: ExtKind) -> Result<InnerSelector> {
    let prefix_err = || {
        einval(if kind == ExtKind::AddressInnerSrc {
            D::PrefixInnerSrc
        } else {
            D::PrefixInnerDst
        })
    };
    let (ip, prefix_len) = match a.addr.ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // ipseckey sends IPv4 prefixes in mapped form, offset by 96.
            Some(v4) => {
                let p = if a.prefix_len == 0 {
                    0
                } else {
                    a.prefix_len.checked_sub(96).ok_or_else(prefix_err)?
                };
                (IpAddr::V4(v4), p)
            }
            None => (IpAddr::V6(v6), a.prefix_len),
        },
        v4 => (v4, a.prefix_len),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(prefix_err());
    }
    Ok(InnerSelector {
        ip,
        prefix_len: if prefix_len == 0 { max } else { prefix_len },
        port: a.addr.port,
    })
}

/// HARD/SOFT/IDLE from a request with the soft-before-hard checks (5.6).
fn check_lifetimes(req: &Message) -> Result<(Limits, Limits, Option<Lifetime>)> {
    let hard = req.lifetime(ExtKind::LifetimeHard).copied();
    let soft = req.lifetime(ExtKind::LifetimeSoft).copied();
    let idle = req.lifetime(ExtKind::LifetimeIdle).copied();
    if let (Some(h), Some(s)) = (hard, soft) {
        let bad = |hv: u64, sv: u64| hv != 0 && sv != 0 && hv < sv;
        if bad(h.allocations.into(), s.allocations.into()) {
            return Err(einval(D::AllocHserr));
        }
        if bad(h.bytes, s.bytes) {
            return Err(einval(D::BytesHserr));
        }
        if bad(h.addtime, s.addtime) {
            return Err(einval(D::AddtimeHserr));
        }
        if bad(h.usetime, s.usetime) {
            return Err(einval(D::UsetimeHserr));
        }
    }
    if let Some(i) = idle {
        for l in [hard, soft].into_iter().flatten() {
            if i.addtime != 0 && l.addtime != 0 && i.addtime > l.addtime {
                return Err(einval(D::AddtimeHserr));
            }
            if i.usetime != 0 && l.usetime != 0 && i.usetime > l.usetime {
                return Err(einval(D::UsetimeHserr));
            }
        }
    }
    Ok((hard.unwrap_or_default(), soft.unwrap_or_default(), idle))
}

fn merge_nonzero(to: &mut Limits, from: &Limits) {
    if from.allocations != 0 {
        to.allocations = from.allocations;
    }
    if from.bytes != 0 {
        to.bytes = from.bytes;
    }
    if from.addtime != 0 {
        to.addtime = from.addtime;
    }
    if from.usetime != 0 {
        to.usetime = from.usetime;
    }
}

fn clamp_soft(soft: &mut Limits, hard: &Limits) {
    if hard.bytes != 0 && soft.bytes > hard.bytes {
        soft.bytes = hard.bytes;
    }
    if hard.addtime != 0 && soft.addtime > hard.addtime {
        soft.addtime = hard.addtime;
    }
    if hard.usetime != 0 && soft.usetime > hard.usetime {
        soft.usetime = hard.usetime;
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

/// Absolute expiry times from the limits, the add time and the first use.
fn recompute_expiry(sa: &mut Sa) {
    if sa.state == SaState::Larval {
        return;
    }
    let at = |base: u64, rel: u64| {
        if rel == 0 {
            0
        } else {
            base.saturating_add(rel)
        }
    };
    let used = |rel: u64| {
        if sa.use_time == 0 {
            0
        } else {
            at(sa.use_time, rel)
        }
    };
    sa.hard_expire = min_nonzero(at(sa.add_time, sa.hard.addtime), used(sa.hard.usetime));
    sa.soft_expire = min_nonzero(at(sa.add_time, sa.soft.addtime), used(sa.soft.usetime));
}

/// The key bytes a key extension carries for `bits` bits.
fn key_bytes(k: &Key, bits: u16) -> crate::key::KeyMaterial {
    let n = (bits as usize).div_ceil(8).min(k.material.len());
    crate::key::KeyMaterial::from_slice(&k.material.expose()[..n])
}

/// The ADD/UPDATE/DELETE echo: the request without keys, X_EDUMP or
/// extensions the kernel does not know (pfkey-v2-wire.md 6.5).
fn strip_for_echo(req: &Message) -> Message {
    let mut echo = req.clone();
    echo.errno = 0;
    echo.exts.retain(|e| {
        !matches!(
            e.kind(),
            None | Some(ExtKind::KeyAuth) | Some(ExtKind::KeyEncrypt) | Some(ExtKind::ExtDump)
        )
    });
    echo
}

/// Who sees an error reply to a request of this type (pfkey-v2-wire.md 1.6).
fn error_audience(t: MsgType) -> Audience {
    match t {
        MsgType::Add
        | MsgType::Update
        | MsgType::UpdatePair
        | MsgType::Delete
        | MsgType::DelPair
        | MsgType::GetSpi
        | MsgType::Flush
        | MsgType::Expire => Audience::All,
        _ => Audience::Sender,
    }
}

/// keysock: the message types that need a specific SA type, and SA types
/// without an SADB (ipseckey-behaviour.md 5.2 step 3).
fn satype_check(t: MsgType, sa_type: u8) -> Result<()> {
    use MsgType as T;
    let needs_type = matches!(
        t,
        T::GetSpi | T::Add | T::Update | T::UpdatePair | T::Delete | T::DelPair | T::Get
    );
    if needs_type && sa_type == satype::UNSPEC {
        return Err(einval(D::SatypeNeeded));
    }
    if sa_type != satype::UNSPEC && table(sa_type).is_none() && t != T::Promisc {
        return Err(einval(D::UnknownSatype));
    }
    Ok(())
}

/// illumos keysock's checks on the raw bytes, then the typed decode
/// (ipseckey-behaviour.md 5.2 steps 1-3).
pub fn keysock_check(bytes: &[u8]) -> Result<Message> {
    let wire = |e: WireError| refuse(e.errno(), e.diagnostic());
    let view = MsgView::new_checked(bytes).map_err(wire)?;
    let Some(msg_type) =
        MsgType::from_number(view.msg_type(), Dialect::Illumos).filter(|t| *t != MsgType::Reserved)
    else {
        return Err(einval(D::UnknownMsg));
    };
    let mut seen = HashSet::new();
    let mut ident_ends = Vec::new();
    for raw in view.extensions() {
        let raw = raw.map_err(wire)?;
        let Some(kind) = ExtKind::from_number(raw.wire_type, Dialect::Illumos) else {
            return Err(einval(D::UnknownExt));
        };
        if !seen.insert(kind) {
            return Err(wire(WireError::DuplicateExt(kind)));
        }
        keysock_ext_check(kind, &raw)?;
        if matches!(kind, ExtKind::IdentitySrc | ExtKind::IdentityDst)
            && raw.bytes.len() > IDENT_STRING
        {
            ident_ends.push(raw.offset + raw.bytes.len() - 1);
        }
    }
    // Step 3 before the typed decode, which already runs some of the
    // per-type address checks of step 4 (families, inner prefixes).
    satype_check(msg_type, view.satype())?;
    if ident_ends.is_empty() {
        return Message::parse(bytes, Dialect::Illumos).map_err(wire);
    }
    // keysock forces identity strings to be NUL-terminated by writing a NUL
    // into the extension's last byte (5.2 step 2).
    let mut owned = bytes.to_vec();
    for i in ident_ends {
        owned[i] = 0;
    }
    Message::parse(&owned, Dialect::Illumos).map_err(wire)
}

/// Offset of the string in `sadb_ident`.
const IDENT_STRING: usize = crate::pfkey::field::ident::STRING;

fn keysock_ext_check(kind: ExtKind, raw: &RawExt<'_>) -> Result<()> {
    let len = raw.bytes.len();
    match kind {
        ExtKind::AddressSrc
        | ExtKind::AddressDst
        | ExtKind::AddressInnerSrc
        | ExtKind::AddressInnerDst
            if len <= WORD =>
        {
            Err(einval(malformed(kind)))
        }
        ExtKind::LifetimeHard | ExtKind::LifetimeSoft | ExtKind::LifetimeCurrent if len != 32 => {
            Err(einval(D::None))
        }
        ExtKind::KeyAuth | ExtKind::KeyEncrypt => {
            let bits = if len >= 6 {
                u16::from_ne_bytes([raw.bytes[4], raw.bytes[5]])
            } else {
                0
            };
            // illumos sizes the payload from floor(bits / 8), rounded up to
            // a word (5.8): an odd bit count such as "e/3" never fits.
            let expected = WORD + (bits as usize / 8).div_ceil(WORD) * WORD;
            let material = raw.bytes.get(WORD..).unwrap_or(&[]);
            if bits == 0 || len != expected || material.iter().all(|&b| b == 0) {
                Err(einval(malformed(kind)))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}
