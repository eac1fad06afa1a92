//! The engine: per-SA transforms next to the SADB, and the inbound and
//! outbound packet paths (DESIGN.md "The packet paths").

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use sadb::pfkey::{satype, Message, SaState};
use sadb::{Now, SaId, Sadb};

use crate::crypto::BuildError;
use crate::esp::{self, Classified};
use crate::packet::PacketBuf;
use crate::transform::{SaOptions, Transform};
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
        let Some(sa) = db.sa(id) else {
            return self.drop_global(DropReason::NoSa);
        };
        if matches!(sa.state, SaState::Dead | SaState::Larval) {
            return self.drop_sa(id, DropReason::Expired);
        }
        // A transform left over from an SA that was replaced in this slot
        // must never be used (its keys are the old SA's).
        let Some(tf) = self
            .transforms
            .get(id)
            .and_then(Option::as_ref)
            .filter(|t| t.serial == sa.serial)
        else {
            return self.drop_global(DropReason::NoSa);
        };
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
            return self.drop_sa(id, DropReason::SeqOverflow);
        }
        let len = pkt.len() as u64;
        match db.account(id, len, now) {
            Ok(m) => expires.extend(m),
            Err(m) => {
                expires.extend(m);
                return self.drop_sa(id, DropReason::Expired);
            }
        }
        let r = if tf.esp {
            let mut iv = [0u8; 16];
            let (iv_len, random) = tf
                .cipher
                .as_deref()
                .map(|c| (c.iv_len(), c.icv_len() == 0 && c.block_len() > 4))
                .unwrap_or((0, false));
            if random {
                // CBC needs an unpredictable IV (RFC 3602 2.3).
                self.rng.fill_bytes(&mut iv[..iv_len]);
            } else if iv_len == 8 {
                // Counter modes need a unique one: the sequence number
                // (RFC 3686 3, RFC 4106 3.1).
                iv[..8].copy_from_slice(&seq.to_be_bytes());
            }
            esp::encap(tf, seq, &iv[..iv_len], pkt)
        } else {
            ah::encap(tf, seq, pkt)
        };
        if let Err(r) = r {
            return self.drop_sa(id, r);
        }
        if let Some(sa) = db.sa_mut(id) {
            sa.seq_out = seq;
        }
        if let Some(tf) = self.transform_mut(id) {
            tf.counters.packets_out += 1;
            tf.counters.bytes_out += len;
        }
        Verdict::Send
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
        let found = match esp::classify(pkt.data()) {
            Ok(Classified::NotIpsec) => {
                self.global.not_ipsec += 1;
                return Verdict::NotIpsec;
            }
            Ok(c) => c,
            Err(r) => return self.drop_global(r),
        };
        let (sa_type, spi, seq32, dst) = match found {
            Classified::Esp(at) => (satype::ESP, at.spi, at.seq, at.ip.dst),
            Classified::Ah { ip, spi, seq, .. } => (satype::AH, spi, seq, ip.dst),
            Classified::NotIpsec => return Verdict::NotIpsec,
        };
        let Some(id) = db.lookup(sa_type, spi, dst) else {
            return self.drop_global(DropReason::NoSa);
        };
        let Some(sa) = db.sa(id) else {
            return self.drop_global(DropReason::NoSa);
        };
        let Some(tf) = self
            .transforms
            .get(id)
            .and_then(Option::as_ref)
            .filter(|t| t.serial == sa.serial)
        else {
            return self.drop_global(DropReason::NoSa);
        };
        if matches!(sa.state, SaState::Dead | SaState::Larval) {
            return self.drop_sa(id, DropReason::Expired);
        }
        let seq = if tf.esn {
            sa.replay.infer_esn(seq32)
        } else {
            u64::from(seq32)
        };
        // RFC 4303 3.4.3: the window is checked before the ICV ...
        if let Err(e) = sa.replay.check(seq) {
            return self.drop_sa(id, replay_reason(e));
        }
        let r = match found {
            Classified::Esp(at) => esp::decap(tf, &at, seq, pkt),
            _ => ah::decap(tf, &found, seq, pkt),
        };
        if let Err(r) = r {
            return self.drop_sa(id, r);
        }
        // Lifetimes count the bytes protected: the packet as it was before
        // protection, as on the way out.
        let len = pkt.len() as u64;
        // ... and updated only after it verified.
        if let Some(sa) = db.sa_mut(id) {
            if let Err(e) = sa.replay.commit(seq) {
                return self.drop_sa(id, replay_reason(e));
            }
        }
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

fn replay_reason(e: sadb::replay::ReplayError) -> DropReason {
    use sadb::replay::ReplayError as E;
    match e {
        E::Replayed => DropReason::Replay,
        E::TooOld => DropReason::TooOld,
        E::ZeroSequence => DropReason::ZeroSequence,
        E::WindowTooLarge(_) => DropReason::Malformed,
    }
}
