//! The engine: per-SA transforms next to the SADB, and the inbound and
//! outbound packet paths (DESIGN.md "The packet paths").

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use sadb::pfkey::{satype, Message, SaState};
use sadb::{Now, SaId, Sadb};

use crate::crypto::BuildError;
use crate::esp::{self, Classified};
use crate::packet::PacketBuf;
use crate::transform::{SaCrypto, SaOptions, Transform};
use crate::{ah, DropReason};

/// What to do with a packet after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Outbound: the buffer now holds the protected packet; send it.
    Send,
    /// Inbound: the buffer now holds the verified clear-text packet.
    Deliver,
    /// Drop it, for this reason (counted).
    Drop(DropReason),
    /// Inbound: not an IPsec packet (or IKE on the NAT-T port); the buffer
    /// is untouched and the host handles it.
    NotIpsec,
}

/// Drops that happen before any SA is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalCounters {
    pub drops: [u64; DropReason::COUNT],
    pub not_ipsec: u64,
}

/// ESP/AH processing for one simulated host.
pub struct Engine {
    /// Indexed by `SaId` (a slab index of the SADB): no hashing per packet.
    transforms: Vec<Option<Transform>>,
    rng: StdRng,
    pub global: GlobalCounters,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

impl Engine {
    /// An engine whose CBC IVs come from a generator seeded by the OS.
    pub fn new() -> Engine {
        Engine {
            transforms: Vec::new(),
            rng: StdRng::from_entropy(),
            global: GlobalCounters::default(),
        }
    }

    /// An engine with reproducible CBC IVs, for tests.
    pub fn with_seed(seed: u64) -> Engine {
        Engine {
            transforms: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            global: GlobalCounters::default(),
        }
    }

    /// Builds the cipher state of SA `id` (once, at ADD/UPDATE time).
    pub fn install(&mut self, db: &Sadb, id: SaId, opts: SaOptions) -> Result<(), BuildError> {
        let sa = db.sa(id).ok_or(BuildError::Unsupported("no such SA"))?;
        let tf = Transform::new(sa, opts)?;
        if self.transforms.len() <= id {
            self.transforms.resize_with(id + 1, || None);
        }
        self.transforms[id] = Some(tf);
        Ok(())
    }

    /// Builds the transform of every SA that has none yet, or whose SA was
    /// replaced since (call after PF_KEY changed the SADB). SAs that cannot
    /// carry traffic (larval, no keys) are skipped.
    pub fn sync(&mut self, db: &Sadb, opts: SaOptions) {
        let stale: Vec<SaId> = db
            .iter()
            .filter(|(id, sa)| self.transform(*id).is_none_or(|t| t.serial != sa.serial))
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            let _ = self.install(db, id, opts);
        }
    }

    pub fn uninstall(&mut self, id: SaId) {
        if let Some(slot) = self.transforms.get_mut(id) {
            *slot = None;
        }
    }

    pub fn transform(&self, id: SaId) -> Option<&Transform> {
        self.transforms.get(id).and_then(Option::as_ref)
    }

    fn transform_mut(&mut self, id: SaId) -> Option<&mut Transform> {
        self.transforms.get_mut(id).and_then(Option::as_mut)
    }

    fn drop_sa(&mut self, id: SaId, r: DropReason) -> Verdict {
        if let Some(tf) = self.transform_mut(id) {
            tf.counters.drops[r as usize] += 1;
        }
        Verdict::Drop(r)
    }

    fn drop_global(&mut self, r: DropReason) -> Verdict {
        self.global.drops[r as usize] += 1;
        Verdict::Drop(r)
    }

    /// Protects the IP packet in `pkt` with SA `id` (ESP or AH, by the SA's
    /// type). EXPIREs caused by the traffic are appended to `expires`.
    pub fn outbound(
        &mut self,
        db: &mut Sadb,
        id: SaId,
        pkt: &mut PacketBuf<'_>,
        now: Now,
        expires: &mut Vec<Message>,
    ) -> Verdict {
        match self.outbound_begin(db, id, pkt.len(), now, expires) {
            Ok(job) => {
                let sealed = job.seal(pkt);
                self.outbound_end(&job, sealed)
            }
            Err(v) => v,
        }
    }

    /// The SADB's share of protecting a packet of `len` bytes with SA
    /// `id`: state and lifetime checks, the byte accounting and the next
    /// sequence number, taken now (RFC 4303 3.3.3: each packet gets its
    /// own, so two threads that protect with one SA never send the same
    /// number). The crypto is [`OutboundJob::seal`], which needs neither
    /// the engine nor the SADB; [`Engine::outbound_end`] counts the
    /// result. A packet whose seal fails leaves a gap in the numbers,
    /// which a receiver's window accepts.
    pub fn outbound_begin(
        &mut self,
        db: &mut Sadb,
        id: SaId,
        len: usize,
        now: Now,
        expires: &mut Vec<Message>,
    ) -> Result<OutboundJob, Verdict> {
        let Some(sa) = db.sa(id) else {
            return Err(self.drop_global(DropReason::NoSa));
        };
        if matches!(sa.state, SaState::Dead | SaState::Larval) {
            return Err(self.drop_sa(id, DropReason::Expired));
        }
        // A transform left over from an SA that was replaced in this slot
        // must never be used (its keys are the old SA's).
        let Some(tf) = self
            .transforms
            .get(id)
            .and_then(Option::as_ref)
            .filter(|t| t.serial == sa.serial)
        else {
            return Err(self.drop_global(DropReason::NoSa));
        };
        let serial = sa.serial;
        let seq = sa.seq_out.saturating_add(1);
        // RFC 4303 3.3.3 / RFC 4302 3.3.2: the counter never cycles; the SA
        // must be replaced first.
        let limit = if tf.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if sa.seq_out >= limit {
            expires.extend(db.expire_now(id, now));
            return Err(self.drop_sa(id, DropReason::SeqOverflow));
        }
        let crypto = tf.crypto();
        let len = len as u64;
        match db.account(id, len, now) {
            Ok(m) => expires.extend(m),
            Err(m) => {
                expires.extend(m);
                return Err(self.drop_sa(id, DropReason::Expired));
            }
        }
        let mut iv = [0u8; 16];
        let (iv_len, random) = crypto
            .cipher
            .as_deref()
            .map(|c| (c.iv_len(), c.icv_len() == 0 && c.block_len() > 4))
            .unwrap_or((0, false));
        if crypto.esp {
            if random {
                // CBC needs an unpredictable IV (RFC 3602 2.3).
                self.rng.fill_bytes(&mut iv[..iv_len.min(16)]);
            } else if iv_len == 8 {
                // Counter modes need a unique one: the sequence number
                // (RFC 3686 3, RFC 4106 3.1).
                iv[..8].copy_from_slice(&seq.to_be_bytes());
            }
        }
        if let Some(sa) = db.sa_mut(id) {
            sa.seq_out = seq;
        }
        Ok(OutboundJob {
            id,
            serial,
            seq,
            iv,
            iv_len: iv_len.min(16),
            len,
            crypto,
        })
    }

    /// Counts what [`OutboundJob::seal`] did.
    pub fn outbound_end(&mut self, job: &OutboundJob, sealed: Result<(), DropReason>) -> Verdict {
        let tf = self
            .transforms
            .get_mut(job.id)
            .and_then(Option::as_mut)
            .filter(|t| t.serial == job.serial);
        match (sealed, tf) {
            (Ok(()), Some(tf)) => {
                tf.counters.packets_out += 1;
                tf.counters.bytes_out += job.len;
                Verdict::Send
            }
            // The SA went away while the packet was sealed: it was
            // protected with keys that were valid when it left.
            (Ok(()), None) => Verdict::Send,
            (Err(r), Some(tf)) => {
                tf.counters.drops[r as usize] += 1;
                Verdict::Drop(r)
            }
            (Err(r), None) => self.drop_global(r),
        }
    }

    /// Verifies and removes ESP or AH from the received IP packet in `pkt`,
    /// following RFC 4303 3.4: SA lookup, replay check, ICV, decryption,
    /// then the replay window and lifetimes are updated.
    pub fn inbound(
        &mut self,
        db: &mut Sadb,
        pkt: &mut PacketBuf<'_>,
        now: Now,
        expires: &mut Vec<Message>,
    ) -> Verdict {
        match self.inbound_begin(db, pkt.data()) {
            Ok(job) => {
                let opened = job.open(pkt);
                self.inbound_end(db, &job, opened, pkt.len(), now, expires)
            }
            Err(v) => v,
        }
    }

    /// The SADB's share of receiving `packet` before its ICV is checked:
    /// classification, SA lookup, state, and the replay check (RFC 4303
    /// 3.4.3: before the ICV). Reads the SADB only. The ICV check and
    /// decryption are [`InboundJob::open`]; [`Engine::inbound_end`] then
    /// commits the sequence number to the window, checking it again, so
    /// that of two copies opened at once by two threads only one is
    /// delivered.
    pub fn inbound_begin(&mut self, db: &Sadb, packet: &[u8]) -> Result<InboundJob, Verdict> {
        let found = match esp::classify(packet) {
            Ok(Classified::NotIpsec) => {
                self.global.not_ipsec += 1;
                return Err(Verdict::NotIpsec);
            }
            Ok(c) => c,
            Err(r) => return Err(self.drop_global(r)),
        };
        let (sa_type, spi, seq32, dst) = match found {
            Classified::Esp(at) => (satype::ESP, at.spi, at.seq, at.ip.dst),
            Classified::Ah { ip, spi, seq, .. } => (satype::AH, spi, seq, ip.dst),
            Classified::NotIpsec => return Err(Verdict::NotIpsec),
        };
        let Some(id) = db.lookup(sa_type, spi, dst) else {
            return Err(self.drop_global(DropReason::NoSa));
        };
        let Some(sa) = db.sa(id) else {
            return Err(self.drop_global(DropReason::NoSa));
        };
        let Some(tf) = self
            .transforms
            .get(id)
            .and_then(Option::as_ref)
            .filter(|t| t.serial == sa.serial)
        else {
            return Err(self.drop_global(DropReason::NoSa));
        };
        if matches!(sa.state, SaState::Dead | SaState::Larval) {
            return Err(self.drop_sa(id, DropReason::Expired));
        }
        let seq = if tf.esn {
            sa.replay.infer_esn(seq32)
        } else {
            u64::from(seq32)
        };
        if let Err(e) = sa.replay.check(seq) {
            return Err(self.drop_sa(id, replay_reason(e)));
        }
        Ok(InboundJob {
            id,
            serial: sa.serial,
            seq,
            found,
            crypto: tf.crypto(),
        })
    }

    /// Finishes a received packet that [`InboundJob::open`] worked on
    /// (`len`: the packet's length after opening): the replay window is
    /// updated only for a packet that verified (RFC 4303 3.4.3), then
    /// lifetimes and counters.
    pub fn inbound_end(
        &mut self,
        db: &mut Sadb,
        job: &InboundJob,
        opened: Result<u8, DropReason>,
        len: usize,
        now: Now,
        expires: &mut Vec<Message>,
    ) -> Verdict {
        let id = job.id;
        // The SA may have been replaced or removed while the packet was
        // opened (another thread's PF_KEY work): its slot is not ours then.
        let same = db.sa(id).is_some_and(|sa| sa.serial == job.serial)
            && self.transform(id).is_some_and(|t| t.serial == job.serial);
        if !same {
            return self.drop_global(DropReason::NoSa);
        }
        if let Err(r) = opened {
            return self.drop_sa(id, r);
        }
        if let Some(sa) = db.sa_mut(id) {
            if matches!(sa.state, SaState::Dead) {
                return self.drop_sa(id, DropReason::Expired);
            }
            if let Err(e) = sa.replay.commit(job.seq) {
                return self.drop_sa(id, replay_reason(e));
            }
        }
        // Lifetimes count the bytes protected: the packet as it was before
        // protection, as on the way out.
        let len = len as u64;
        match db.account(id, len, now) {
            Ok(m) => expires.extend(m),
            Err(m) => {
                expires.extend(m);
                return self.drop_sa(id, DropReason::Expired);
            }
        }
        if let Some(tf) = self.transform_mut(id) {
            tf.counters.packets_in += 1;
            tf.counters.bytes_in += len;
        }
        Verdict::Deliver
    }
}

/// A packet to protect, with its sequence number and IV taken: what a
/// thread needs to seal it without the engine or the SADB.
#[derive(Debug)]
pub struct OutboundJob {
    id: SaId,
    serial: u64,
    seq: u64,
    iv: [u8; 16],
    iv_len: usize,
    len: u64,
    crypto: Arc<SaCrypto>,
}

impl OutboundJob {
    /// The sequence number this packet carries.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Applies ESP or AH to the packet in place.
    pub fn seal(&self, pkt: &mut PacketBuf<'_>) -> Result<(), DropReason> {
        if self.crypto.esp {
            esp::encap(&self.crypto, self.seq, &self.iv[..self.iv_len], pkt)
        } else {
            ah::encap(&self.crypto, self.seq, pkt)
        }
    }
}

/// A received packet whose SA, sequence number and replay check are
/// known: what a thread needs to verify and open it without the engine
/// or the SADB.
#[derive(Debug)]
pub struct InboundJob {
    id: SaId,
    serial: u64,
    seq: u64,
    found: Classified,
    crypto: Arc<SaCrypto>,
}

impl InboundJob {
    /// The packet's full (ESN inferred) sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Checks the ICV and removes ESP or AH in place; returns the next
    /// header.
    pub fn open(&self, pkt: &mut PacketBuf<'_>) -> Result<u8, DropReason> {
        match self.found {
            Classified::Esp(at) => esp::decap(&self.crypto, &at, self.seq, pkt),
            _ => ah::decap(&self.crypto, &self.found, self.seq, pkt),
        }
    }
}

fn replay_reason(e: sadb::replay::ReplayError) -> DropReason {
    use sadb::replay::ReplayError as E;
    match e {
        E::Replayed => DropReason::Replay,
        E::TooOld => DropReason::TooOld,
        E::ZeroSequence => DropReason::ZeroSequence,
        E::WindowTooLarge(_) => DropReason::Malformed,
    }
}
