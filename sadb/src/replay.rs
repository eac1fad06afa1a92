//! Inbound anti-replay window (RFC 4303 3.4.3, RFC 4302 3.4.3).
//!
//! The bitmap is kept the RFC 6479 way: a ring of 64-bit blocks in which a
//! sequence number always lives at the same bit (block `seq / 64` modulo the
//! ring length, bit `seq % 64`). Sliding the window never shifts bits; it
//! only zeroes the blocks that the new highest number moved past. The ring
//! has one block more than `MAX_WINDOW` needs, so the block that holds the
//! highest number never shares a slot with a block still inside the window
//! (RFC 6479 section 2: the "redundant" bits).
//!
//! Checking is split in two, as RFC 4303 3.4.3 asks: `check` before the ICV
//! is verified (no state change, so a forged packet cannot move the window),
//! `commit` after it (re-checks, then marks the number and slides).
//!
//! Sequence numbers are `u64` so that one window serves both 32-bit SAs
//! (callers pass the 32-bit value) and extended sequence numbers (RFC 4303
//! Appendix A2; `infer_esn` rebuilds the 64-bit number from the low 32 bits).
//!
//! illumos semantics (ipseckey-behaviour.md 5.7): window 0 means no replay
//! checking and no replay state at all; sequence 0 is never valid; a number
//! above the highest slides the window; a number `W` or more below it is too
//! old; a number already marked is a replay.

use core::fmt;

/// The largest window, in packets, that a `ReplayWindow` supports.
///
/// `PF_KEY` can only ask for 0..=255 (an 8-bit field), but the project's
/// decision 4 is to support at least 4096 internally.
pub const MAX_WINDOW: u32 = 4096;

/// Bits per block of the ring.
const BLOCK_BITS: u32 = u64::BITS;
/// `seq >> BLOCK_SHIFT` is the block number of `seq`.
const BLOCK_SHIFT: u32 = BLOCK_BITS.trailing_zeros();
/// `seq & BIT_MASK` is the bit of `seq` inside its block.
const BIT_MASK: u64 = (BLOCK_BITS as u64) - 1;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// RFC 4303 2.2: the first packet sent on an SA has sequence number 1,
    /// so 0 can only come from a forger or a counter that cycled.
    #[error("sequence number 0")]
    ZeroSequence,
    /// The number is inside the window and was already received.
    #[error("replayed packet")]
    Replayed,
    /// The number is W or more below the highest, left of the window.
    #[error("sequence number too old for the replay window")]
    TooOld,
    /// `ReplayWindow::new` was asked for more than `MAX_WINDOW` packets.
    #[error("replay window size {0} exceeds {MAX_WINDOW}")]
    WindowTooLarge(u32),
}

/// The receive-side anti-replay state of one inbound SA.
///
/// The ring is allocated once, when the SA is added, and sized for its
/// window: `ceil(W / 64) + 1` blocks rounded up to a power of two (RFC 6479's
/// one block of slack; the power of two turns the modulo into a mask). A
/// PF_KEY window of at most 255 packets takes 64 bytes, 4096 packets 1 KiB,
/// no window nothing. No packet operation allocates.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Window size W in packets; 0 disables replay checking.
    size: u32,
    /// Highest sequence number committed (or set by `set_highest`).
    highest: u64,
    /// RFC 6479 ring: bit `seq % 64` of block `(seq / 64) % ring.len()` is
    /// set when `seq` was committed and is still inside the window.
    ring: Box<[u64]>,
}

/// Ring blocks for a window of `size` packets.
fn ring_blocks(size: u32) -> usize {
    if size == 0 {
        0
    } else {
        (size.div_ceil(BLOCK_BITS) as usize + 1).next_power_of_two()
    }
}

impl ReplayWindow {
    /// The ring slot and the bit mask of `seq` (the ring length is a power
    /// of two, so the slot is always in bounds).
    #[inline]
    fn locate(&self, seq: u64) -> (usize, u64) {
        let block = (seq >> BLOCK_SHIFT) as usize;
        (
            block & self.ring.len().wrapping_sub(1),
            1u64 << (seq & BIT_MASK),
        )
    }

    /// A window of `size` packets; 0 turns replay protection off (every
    /// packet is accepted, including sequence number 0 and repeats).
    ///
    /// # Errors
    ///
    /// `WindowTooLarge` when `size` exceeds `MAX_WINDOW`.
    pub fn new(size: u32) -> Result<Self, ReplayError> {
        if size > MAX_WINDOW {
            return Err(ReplayError::WindowTooLarge(size));
        }
        Ok(Self {
            size,
            highest: 0,
            ring: vec![0; ring_blocks(size)].into_boxed_slice(),
        })
    }

    /// The window size W in packets (0 = no replay protection).
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest sequence number committed so far (0 on a fresh window),
    /// or the value last given to `set_highest`.
    #[must_use]
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// RFC 4303 3.4.3, first step: would `seq` be accepted? Changes nothing,
    /// so it is safe to call before the ICV has been verified.
    ///
    /// # Errors
    ///
    /// `ZeroSequence` for 0, `TooOld` for a number W or more below the
    /// highest, `Replayed` for a number inside the window already committed.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if self.size == 0 {
            return Ok(());
        }
        if seq == 0 {
            return Err(ReplayError::ZeroSequence);
        }
        if seq > self.highest {
            return Ok(());
        }
        if self.highest - seq >= u64::from(self.size) {
            return Err(ReplayError::TooOld);
        }
        let (slot, bit) = self.locate(seq);
        if self.ring.get(slot).is_some_and(|b| b & bit != 0) {
            Err(ReplayError::Replayed)
        } else {
            Ok(())
        }
    }

    /// RFC 4303 3.4.3, second step, after the ICV verified: re-check `seq`
    /// (another packet with the same number may have been committed since
    /// `check`), then mark it and slide the window if it is a new highest.
    /// A refused number leaves the window untouched and gives the same error
    /// as `check`.
    ///
    /// # Errors
    ///
    /// Those of `check`.
    ///
    /// With window 0 nothing is recorded, as in illumos: `highest` only
    /// changes through `set_highest`.
    #[inline]
    pub fn commit(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        if self.size == 0 {
            return Ok(());
        }
        if seq > self.highest {
            self.advance(seq);
        }
        let (slot, bit) = self.locate(seq);
        if let Some(b) = self.ring.get_mut(slot) {
            *b |= bit;
        }
        Ok(())
    }

    /// Move the top of the window to `seq` (> highest), zeroing the blocks
    /// it moves past so that their stale bits (numbers a whole ring older)
    /// do not read as "seen". RFC 6479: only the passed blocks are touched,
    /// at most the whole ring.
    fn advance(&mut self, seq: u64) {
        let old_block = self.highest >> BLOCK_SHIFT;
        let new_block = seq >> BLOCK_SHIFT;
        // seq > highest, so new_block >= old_block.
        let passed = new_block.saturating_sub(old_block);
        let blocks = self.ring.len();
        if passed >= blocks as u64 {
            self.ring.fill(0);
        } else if passed > 0 {
            let (mut slot, _) = self.locate(self.highest);
            // passed < blocks, so this visits each slot at most once.
            for _ in 0..passed {
                slot = (slot + 1) & (blocks - 1);
                self.ring[slot] = 0;
            }
        }
        self.highest = seq;
    }

    /// Start the window at `seq` (`PF_KEY` `replay_value`): the top becomes
    /// `seq` and no number is marked as seen, `seq` included.
    pub fn set_highest(&mut self, seq: u64) {
        self.highest = seq;
        self.ring.fill(0);
    }

    /// RFC 4303 Appendix A2.2: the full 64-bit sequence number that the
    /// received low-order 32 bits most likely stand for, given the top of
    /// the window T = `highest()` and its size W.
    ///
    /// The answer is the number with those low bits in the 2^32 numbers
    /// starting at the window's bottom edge B = T - W + 1. At the ends of
    /// the 64-bit space, where the RFC's Th - 1 or Th + 1 does not exist,
    /// Th is used; `check` then refuses or accepts that number as usual.
    /// A window of 0 is treated as 1 for this purpose (RFC 4303 defines the
    /// inference only relative to a window).
    #[must_use]
    pub fn infer_esn(&self, seq_low: u32) -> u64 {
        let w_minus_1 = self.size.max(1) - 1;
        // Tl and Th: the low and high halves of the window's top.
        #[allow(clippy::cast_possible_truncation)] // keeping the low half is the point
        let tl = self.highest as u32;
        let th = self.highest >> 32;
        // Bl = Tl - W + 1 (mod 2^32).
        let bl = tl.wrapping_sub(w_minus_1);
        let seq_high = if tl >= w_minus_1 {
            // Case A: the whole window lies in subspace Th.
            if seq_low >= bl {
                th
            } else {
                next_high(th)
            }
        } else {
            // Case B: the window's bottom lies in subspace Th - 1.
            if seq_low >= bl {
                th.saturating_sub(1)
            } else {
                th
            }
        };
        (seq_high << 32) | u64::from(seq_low)
    }

    /// Forget everything: highest back to 0, no number seen. The size stays.
    pub fn reset(&mut self) {
        self.set_highest(0);
    }
}

/// Th + 1, or Th when Th is already the last 32-bit subspace.
#[inline]
fn next_high(th: u64) -> u64 {
    if th >= u64::from(u32::MAX) {
        th
    } else {
        th + 1
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("size", &self.size)
            .field("highest", &self.highest)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn window(size: u32) -> ReplayWindow {
        match ReplayWindow::new(size) {
            Ok(w) => w,
            Err(e) => panic!("window {size}: {e}"),
        }
    }

    /// check, then commit; both must give the same verdict.
    fn receive(w: &mut ReplayWindow, seq: u64) -> Result<(), ReplayError> {
        let peek = w.check(seq);
        let done = w.commit(seq);
        assert_eq!(peek, done, "check and commit disagree on {seq}");
        done
    }

    #[test]
    fn fresh_window_accepts_one_and_refuses_zero() {
        let w = window(32);
        assert_eq!(w.size(), 32);
        assert_eq!(w.highest(), 0);
        assert_eq!(w.check(0), Err(ReplayError::ZeroSequence));
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.check(u64::MAX), Ok(()));
    }

    #[test]
    fn zero_is_refused_by_commit_and_changes_nothing() {
        let mut w = window(64);
        assert_eq!(w.commit(0), Err(ReplayError::ZeroSequence));
        assert_eq!(w.highest(), 0);
        assert!(w.ring.iter().all(|&b| b == 0));
    }

    #[test]
    fn in_order_packets_are_accepted_and_repeats_refused() {
        let mut w = window(64);
        for seq in 1..=1000u64 {
            assert_eq!(receive(&mut w, seq), Ok(()));
            assert_eq!(w.highest(), seq);
            assert_eq!(w.check(seq), Err(ReplayError::Replayed));
            if seq > 1 {
                assert_eq!(w.check(seq - 1), Err(ReplayError::Replayed));
            }
        }
        assert_eq!(w.check(1000 - 63), Err(ReplayError::Replayed));
        assert_eq!(w.check(1000 - 64), Err(ReplayError::TooOld));
    }

    #[test]
    fn out_of_order_inside_the_window_is_accepted_once() {
        let mut w = window(32);
        for seq in [5u64, 3, 4, 1, 2, 10, 7, 6, 9, 8] {
            assert_eq!(receive(&mut w, seq), Ok(()), "seq {seq}");
        }
        assert_eq!(w.highest(), 10);
        for seq in 1..=10u64 {
            assert_eq!(receive(&mut w, seq), Err(ReplayError::Replayed));
        }
        assert_eq!(receive(&mut w, 11), Ok(()));
    }

    #[test]
    fn window_edge_w_minus_one_accepted_w_too_old() {
        for size in [1u32, 2, 32, 63, 64, 65, 128, 255, 4095, 4096] {
            let mut w = window(size);
            let top = 10_000u64;
            assert_eq!(receive(&mut w, top), Ok(()));
            let edge = top - u64::from(size) + 1;
            assert_eq!(w.check(edge - 1), Err(ReplayError::TooOld), "W={size}");
            assert_eq!(w.commit(edge - 1), Err(ReplayError::TooOld), "W={size}");
            if size > 1 {
                assert_eq!(receive(&mut w, edge), Ok(()), "W={size}");
                assert_eq!(w.check(edge), Err(ReplayError::Replayed), "W={size}");
            }
            assert_eq!(w.highest(), top);
        }
    }

    #[test]
    fn duplicates_are_replays() {
        let mut w = window(64);
        assert_eq!(receive(&mut w, 7), Ok(()));
        assert_eq!(receive(&mut w, 7), Err(ReplayError::Replayed));
        assert_eq!(receive(&mut w, 6), Ok(()));
        assert_eq!(receive(&mut w, 6), Err(ReplayError::Replayed));
        assert_eq!(receive(&mut w, 7), Err(ReplayError::Replayed));
    }

    #[test]
    fn small_jump_keeps_marks_inside_the_window() {
        let mut w = window(64);
        assert_eq!(receive(&mut w, 10), Ok(()));
        assert_eq!(receive(&mut w, 70), Ok(()));
        assert_eq!(w.check(10), Err(ReplayError::Replayed));
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(receive(&mut w, 73), Ok(()));
        assert_eq!(w.check(10), Err(ReplayError::Replayed));
        assert_eq!(receive(&mut w, 74), Ok(()));
        assert_eq!(w.check(10), Err(ReplayError::TooOld));
    }

    #[test]
    fn big_jump_clears_the_bitmap() {
        for size in [32u32, 64, 255, 4096] {
            let mut w = window(size);
            for seq in 1..=u64::from(size) {
                assert_eq!(receive(&mut w, seq), Ok(()));
            }
            let top = 3 * u64::from(size) + 7;
            assert_eq!(receive(&mut w, top), Ok(()));
            for seq in (top - u64::from(size) + 1)..top {
                assert_eq!(w.check(seq), Ok(()), "W={size} seq={seq}");
            }
            assert_eq!(w.check(top), Err(ReplayError::Replayed));
        }
    }

    #[test]
    fn jump_of_a_whole_ring_and_more_clears_everything() {
        let mut w = window(MAX_WINDOW);
        for seq in 1..=5000u64 {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        // Same ring slot as 5000's block, one full ring later.
        let top = 5000 + w.ring.len() as u64 * 64;
        assert_eq!(receive(&mut w, top), Ok(()));
        for seq in (top - u64::from(MAX_WINDOW) + 1)..top {
            assert_eq!(w.check(seq), Ok(()), "seq={seq}");
        }
    }

    #[test]
    fn jump_of_one_block_less_than_the_ring_keeps_the_oldest_marks() {
        let mut w = window(MAX_WINDOW);
        for seq in 1..=5000u64 {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        // 64 blocks on: 5000's slot is not cleared, and the bottom of the
        // window (top - 4095 = 4993) still lies in 5000's block.
        let top = ((5000 >> 6) + 64) << 6;
        assert_eq!(receive(&mut w, top), Ok(()));
        assert_eq!(w.check(4992), Err(ReplayError::TooOld));
        for seq in 4993..=5000u64 {
            assert_eq!(w.check(seq), Err(ReplayError::Replayed), "seq={seq}");
        }
        for seq in 5001..top {
            assert_eq!(w.check(seq), Ok(()), "seq={seq}");
        }
    }

    #[test]
    fn window_zero_accepts_everything() {
        let mut w = window(0);
        for seq in [0u64, 0, 1, 1, 5, 3, 3, u64::MAX, 0] {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        assert_eq!(w.highest(), 0, "window 0 keeps no replay state");
        w.set_highest(42);
        assert_eq!(receive(&mut w, 1), Ok(()));
        assert_eq!(w.highest(), 42);
    }

    #[test]
    fn window_one_accepts_only_new_highest() {
        let mut w = window(1);
        assert_eq!(receive(&mut w, 5), Ok(()));
        assert_eq!(receive(&mut w, 5), Err(ReplayError::Replayed));
        assert_eq!(receive(&mut w, 4), Err(ReplayError::TooOld));
        assert_eq!(receive(&mut w, 6), Ok(()));
        assert_eq!(receive(&mut w, 100), Ok(()));
        assert_eq!(receive(&mut w, 99), Err(ReplayError::TooOld));
    }

    #[test]
    fn window_4096_tracks_every_number_in_it() {
        let mut w = window(4096);
        // Receive the even numbers, then the odd ones in reverse.
        let top = 20_000u64;
        for seq in (top - 4095..=top).filter(|s| s % 2 == 0) {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        for seq in (top - 4095..=top).rev().filter(|s| s % 2 == 1) {
            assert_eq!(receive(&mut w, seq), Ok(()), "seq={seq}");
        }
        for seq in top - 4095..=top {
            assert_eq!(w.check(seq), Err(ReplayError::Replayed));
        }
        assert_eq!(w.check(top - 4096), Err(ReplayError::TooOld));
        // Slide by one block: the 64 oldest leave, the rest stay marked.
        assert_eq!(receive(&mut w, top + 64), Ok(()));
        assert_eq!(w.check(top + 64 - 4096), Err(ReplayError::TooOld));
        assert_eq!(w.check(top + 64 - 4095), Err(ReplayError::Replayed));
        for seq in top + 1..top + 64 {
            assert_eq!(w.check(seq), Ok(()));
        }
    }

    #[test]
    fn sizes_above_max_are_refused() {
        assert!(ReplayWindow::new(MAX_WINDOW).is_ok());
        assert_eq!(
            ReplayWindow::new(4097).map(|w| w.size()),
            Err(ReplayError::WindowTooLarge(4097))
        );
        assert_eq!(
            ReplayWindow::new(u32::MAX).map(|w| w.size()),
            Err(ReplayError::WindowTooLarge(u32::MAX))
        );
    }

    #[test]
    fn check_never_mutates() {
        let mut w = window(64);
        for seq in [3u64, 9, 200, 150] {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        let before = w.clone();
        for seq in [0u64, 1, 150, 151, 136, 137, 200, 201, 5000, u64::MAX] {
            let first = w.check(seq);
            let second = w.check(seq);
            assert_eq!(first, second, "seq={seq}");
            assert_eq!(w.highest(), before.highest());
            assert_eq!(w.ring, before.ring);
        }
    }

    #[test]
    fn refused_commit_changes_nothing() {
        let mut w = window(64);
        assert_eq!(receive(&mut w, 100), Ok(()));
        assert_eq!(receive(&mut w, 90), Ok(()));
        let before = w.clone();
        for (seq, err) in [
            (0u64, ReplayError::ZeroSequence),
            (90, ReplayError::Replayed),
            (100, ReplayError::Replayed),
            (36, ReplayError::TooOld),
            (1, ReplayError::TooOld),
        ] {
            assert_eq!(w.check(seq), Err(err));
            assert_eq!(w.commit(seq), Err(err));
            assert_eq!(w.highest(), before.highest());
            assert_eq!(w.ring, before.ring);
        }
    }

    #[test]
    fn set_highest_starts_the_window_there() {
        let mut w = window(32);
        for seq in 1..=20u64 {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        w.set_highest(1000);
        assert_eq!(w.highest(), 1000);
        assert_eq!(w.check(1000), Ok(()));
        assert_eq!(w.check(1000 - 31), Ok(()));
        assert_eq!(w.check(1000 - 32), Err(ReplayError::TooOld));
        assert_eq!(receive(&mut w, 1000), Ok(()));
        assert_eq!(receive(&mut w, 1000), Err(ReplayError::Replayed));
        // Lowering the top also clears what was seen.
        w.set_highest(10);
        assert_eq!(receive(&mut w, 10), Ok(()));
        assert_eq!(receive(&mut w, 5), Ok(()));
    }

    #[test]
    fn reset_forgets_everything_but_the_size() {
        let mut w = window(64);
        for seq in 1..=300u64 {
            assert_eq!(receive(&mut w, seq), Ok(()));
        }
        w.reset();
        assert_eq!(w.size(), 64);
        assert_eq!(w.highest(), 0);
        assert!(w.ring.iter().all(|&b| b == 0));
        assert_eq!(receive(&mut w, 1), Ok(()));
    }

    #[test]
    fn top_of_the_64_bit_space_does_not_overflow() {
        let mut w = window(4096);
        assert_eq!(receive(&mut w, u64::MAX - 1), Ok(()));
        assert_eq!(receive(&mut w, u64::MAX), Ok(()));
        assert_eq!(receive(&mut w, u64::MAX), Err(ReplayError::Replayed));
        assert_eq!(receive(&mut w, u64::MAX - 4095), Ok(()));
        assert_eq!(receive(&mut w, u64::MAX - 4096), Err(ReplayError::TooOld));
        assert_eq!(receive(&mut w, 1), Err(ReplayError::TooOld));
    }

    #[test]
    fn debug_shows_size_and_highest_only() {
        let mut w = window(64);
        assert_eq!(receive(&mut w, 77), Ok(()));
        let text = format!("{w:?}");
        assert_eq!(text, "ReplayWindow { size: 64, highest: 77, .. }");
    }

    #[test]
    fn error_texts() {
        assert_eq!(ReplayError::ZeroSequence.to_string(), "sequence number 0");
        assert_eq!(ReplayError::Replayed.to_string(), "replayed packet");
        assert_eq!(
            ReplayError::TooOld.to_string(),
            "sequence number too old for the replay window"
        );
        assert_eq!(
            ReplayError::WindowTooLarge(5000).to_string(),
            "replay window size 5000 exceeds 4096"
        );
    }

    fn esn(highest: u64, size: u32, low: u32) -> u64 {
        let mut w = window(size);
        w.set_highest(highest);
        w.infer_esn(low)
    }

    #[test]
    fn infer_esn_case_b_window_straddles_the_boundary() {
        // Tl = 5 < W - 1: the window's bottom is in the previous subspace.
        assert_eq!(esn(0x1_0000_0005, 64, 0xFFFF_FFF0), 0xFFFF_FFF0);
        assert_eq!(esn(0x1_0000_0005, 64, 3), 0x1_0000_0003);
        assert_eq!(esn(0x1_0000_0005, 64, 5), 0x1_0000_0005);
        assert_eq!(esn(0x1_0000_0005, 64, 6), 0x1_0000_0006);
        // Bottom edge B = T - 63 = 0xFFFF_FFC6: on it, previous subspace;
        // just below it, the next packets after T.
        assert_eq!(esn(0x1_0000_0005, 64, 0xFFFF_FFC6), 0xFFFF_FFC6);
        assert_eq!(esn(0x1_0000_0005, 64, 0xFFFF_FFC5), 0x1_FFFF_FFC5);
    }

    #[test]
    fn infer_esn_case_a_window_inside_one_subspace() {
        assert_eq!(esn(0xFFFF_FFF0, 64, 5), 0x1_0000_0005);
        assert_eq!(esn(0xFFFF_FFF0, 64, 0xFFFF_FFF5), 0xFFFF_FFF5);
        assert_eq!(esn(0xFFFF_FFF0, 64, 0xFFFF_FFB1), 0xFFFF_FFB1);
        assert_eq!(esn(0xFFFF_FFF0, 64, 0xFFFF_FFB0), 0x1_FFFF_FFB0);
        assert_eq!(esn(0x7_0000_1000, 4096, 0x1), 0x7_0000_0001);
        assert_eq!(esn(0x7_0000_1000, 4096, 0x2000), 0x7_0000_2000);
        // Exactly Tl = W - 1 is still case A.
        assert_eq!(esn(0x2_0000_003F, 64, 0), 0x2_0000_0000);
        assert_eq!(esn(0x2_0000_003F, 64, 0xFFFF_FFFF), 0x2_FFFF_FFFF);
    }

    #[test]
    fn infer_esn_at_the_ends_of_the_64_bit_space() {
        // Fresh window: nothing before subspace 0.
        assert_eq!(esn(0, 64, 1), 1);
        assert_eq!(esn(0, 64, 0xFFFF_FFF0), 0xFFFF_FFF0);
        // Last subspace: nothing after it.
        assert_eq!(esn(u64::MAX - 0x100, 64, 3), 0xFFFF_FFFF_0000_0003);
        // Window 0 infers as if W were 1.
        assert_eq!(esn(0x1_0000_0010, 0, 0x10), 0x1_0000_0010);
        assert_eq!(esn(0x1_0000_0010, 0, 0x0F), 0x2_0000_000F);
    }

    /// The naive model: every accepted number in a set, and the rule.
    struct Model {
        size: u32,
        highest: u64,
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn check(&self, seq: u64) -> Result<(), ReplayError> {
            if self.size == 0 {
                Ok(())
            } else if seq == 0 {
                Err(ReplayError::ZeroSequence)
            } else if seq > self.highest {
                Ok(())
            } else if self.highest - seq >= u64::from(self.size) {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&seq) {
                Err(ReplayError::Replayed)
            } else {
                Ok(())
            }
        }

        fn commit(&mut self, seq: u64) -> Result<(), ReplayError> {
            self.check(seq)?;
            if self.size != 0 {
                self.seen.insert(seq);
                self.highest = self.highest.max(seq);
            }
            Ok(())
        }
    }

    /// One step of a random run: what to do, and how to pick the number.
    #[derive(Debug, Clone, Copy)]
    enum Pick {
        /// Just above the highest.
        Ahead(u64),
        /// At or below the highest, around the window's bottom edge too.
        Behind(u64),
        /// One of the recently committed numbers again.
        Repeat(usize),
        /// A large forward jump.
        Jump(u64),
        /// A recently committed number plus whole laps of the ring, give or
        /// take a little: the numbers that share its ring slot and bit.
        Lap(usize, u64, u64),
        /// Whole laps of the ring above the highest, less a little: slides
        /// the window onto the slots it just used.
        LapAhead(u64, u64),
        /// A small absolute number (0 included).
        Small(u64),
        /// Anything at all.
        Any(u64),
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        CheckOnly(Pick),
        CheckCommit(Pick),
        SetHighest(Pick),
        Reset,
    }

    fn pick() -> impl Strategy<Value = Pick> {
        prop_oneof![
            4 => (0u64..70).prop_map(Pick::Ahead),
            4 => any::<u64>().prop_map(Pick::Behind),
            3 => any::<usize>().prop_map(Pick::Repeat),
            1 => (0u64..20_000).prop_map(Pick::Jump),
            2 => (any::<usize>(), 1u64..4, 0u64..3).prop_map(|(i, l, d)| Pick::Lap(i, l, d)),
            1 => (1u64..3, 0u64..70).prop_map(|(l, d)| Pick::LapAhead(l, d)),
            1 => (0u64..10).prop_map(Pick::Small),
            1 => any::<u64>().prop_map(Pick::Any),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => pick().prop_map(Step::CheckOnly),
            12 => pick().prop_map(Step::CheckCommit),
            1 => pick().prop_map(Step::SetHighest),
            1 => Just(Step::Reset),
        ]
    }

    fn resolve(p: Pick, highest: u64, size: u32, recent: &[u64]) -> u64 {
        match p {
            Pick::Ahead(d) | Pick::Jump(d) => highest.saturating_add(d),
            Pick::Behind(d) => highest.saturating_sub(d % (u64::from(size) + 70)),
            Pick::Repeat(i) => {
                if recent.is_empty() {
                    highest
                } else {
                    recent[i % recent.len()]
                }
            }
            Pick::Lap(i, laps, nudge) => {
                let base = if recent.is_empty() {
                    highest
                } else {
                    recent[i % recent.len()]
                };
                // nudge 0: same bit; 1 and 2: the neighbours below.
                (base.saturating_add(laps * ring_blocks(size) as u64 * 64)).saturating_sub(nudge)
            }
            Pick::LapAhead(laps, back) => highest
                .saturating_add(laps * ring_blocks(size) as u64 * 64)
                .saturating_sub(back),
            Pick::Small(v) | Pick::Any(v) => v,
        }
    }

    const MODEL_SIZES: [u32; 10] = [0, 1, 2, 32, 63, 64, 65, 255, 1000, 4096];

    proptest! {
        #[test]
        fn matches_the_naive_model(
            size_index in 0..MODEL_SIZES.len(),
            start in prop_oneof![Just(0u64), any::<u64>(), 0xFFFF_0000u64..0x1_0001_0000],
            steps in proptest::collection::vec(step(), 1..400),
        ) {
            let size = MODEL_SIZES[size_index];
            let mut w = window(size);
            let mut m = Model { size, highest: 0, seen: BTreeSet::new() };
            w.set_highest(start);
            m.highest = start;
            let mut recent: Vec<u64> = Vec::new();
            for s in steps {
                match s {
                    Step::CheckOnly(p) => {
                        let seq = resolve(p, m.highest, size, &recent);
                        prop_assert_eq!(w.check(seq), m.check(seq), "check {}", seq);
                        prop_assert_eq!(w.check(seq), m.check(seq), "check again {}", seq);
                    }
                    Step::CheckCommit(p) => {
                        let seq = resolve(p, m.highest, size, &recent);
                        prop_assert_eq!(w.check(seq), m.check(seq), "check {}", seq);
                        prop_assert_eq!(w.commit(seq), m.commit(seq), "commit {}", seq);
                        recent.push(seq);
                        if recent.len() > 64 {
                            recent.remove(0);
                        }
                    }
                    Step::SetHighest(p) => {
                        let seq = resolve(p, m.highest, size, &recent);
                        w.set_highest(seq);
                        m.highest = seq;
                        m.seen.clear();
                    }
                    Step::Reset => {
                        w.reset();
                        m.highest = 0;
                        m.seen.clear();
                    }
                }
                prop_assert_eq!(w.highest(), m.highest);
                prop_assert_eq!(w.size(), size);
            }
        }

        #[test]
        fn infer_esn_lands_in_the_window_span(
            highest in 4096u64..(u64::MAX - (1u64 << 33)),
            size in 1u32..=MAX_WINDOW,
            low in any::<u32>(),
        ) {
            // A2.2: the inferred number is the one with these low bits among
            // the 2^32 numbers starting at the window's bottom edge.
            let got = esn(highest, size, low);
            let bottom = highest - u64::from(size) + 1;
            prop_assert_eq!(got & 0xFFFF_FFFF, u64::from(low));
            prop_assert!(got >= bottom, "{:#x} below bottom {:#x}", got, bottom);
            prop_assert!(got - bottom < (1u64 << 32), "{:#x} too far above {:#x}", got, bottom);
        }
    }
}
