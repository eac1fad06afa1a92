//! Replay protection (ipseckey-behaviour.md 5.7), through the window the
//! SADB keeps for each SA (`Sa::replay`, what the packet engine uses).

mod common;
use common::*;

use sadb::replay::ReplayError;

/// An inbound SA (peer -> me) with a window of `w` packets; its id.
fn inbound(k: &mut Kernel, spi: u32, w: u8) -> SaId {
    k.ok(&esp_add(spi, Some(PEER), ME).sa_edit(|s| s.replay = w), T0);
    k.id(satype::ESP, spi, ME)
}

fn window(k: &mut Kernel, id: SaId) -> &mut sadb::replay::ReplayWindow {
    &mut k.db.sa_mut(id).expect("SA exists").replay
}

#[test]
fn replay_window_size_comes_from_the_sa_extension_0_to_255() {
    let mut k = kernel();
    for (spi, w) in [(0x100, 0u8), (0x101, 32), (0x102, 255)] {
        let id = inbound(&mut k, spi, w);
        assert_eq!(window(&mut k, id).size(), u32::from(w));
        assert_eq!(
            k.sa(satype::ESP, spi, ME, T0).replay,
            w,
            "GET shows the window size"
        );
    }
}

#[test]
fn replay_window_0_accepts_every_sequence_number() {
    let mut k = kernel();
    let id = inbound(&mut k, 0x100, 0);
    let w = window(&mut k, id);
    for seq in [0u64, 5, 5, 1, 0xffff_ffff, 3] {
        assert_eq!(w.check(seq), Ok(()));
        assert_eq!(w.commit(seq), Ok(()));
    }
}

#[test]
fn replay_sequence_number_0_is_rejected() {
    let mut k = kernel();
    let id = inbound(&mut k, 0x100, 32);
    let w = window(&mut k, id);
    assert_eq!(w.check(0), Err(ReplayError::ZeroSequence));
    assert_eq!(w.commit(0), Err(ReplayError::ZeroSequence));
    assert_eq!(w.commit(1), Ok(()));
}

#[test]
fn replay_higher_sequence_number_slides_the_window_and_older_than_the_window_is_rejected() {
    let mut k = kernel();
    let id = inbound(&mut k, 0x100, 32);
    let w = window(&mut k, id);
    for seq in 1..=5 {
        assert_eq!(w.commit(seq), Ok(()));
    }
    assert_eq!(w.commit(100), Ok(()));
    assert_eq!(w.highest(), 100);
    assert_eq!(w.check(68), Err(ReplayError::TooOld), "100 - 68 = W");
    assert_eq!(w.check(5), Err(ReplayError::TooOld));
    assert_eq!(w.commit(69), Ok(()), "inside the window and unseen");
}

#[test]
fn replay_sequence_number_already_seen_in_the_window_is_rejected() {
    let mut k = kernel();
    let id = inbound(&mut k, 0x100, 32);
    let w = window(&mut k, id);
    for seq in [10u64, 12, 11] {
        assert_eq!(w.commit(seq), Ok(()));
    }
    for seq in [10u64, 11, 12] {
        assert_eq!(w.check(seq), Err(ReplayError::Replayed));
        assert_eq!(w.commit(seq), Err(ReplayError::Replayed));
    }
    assert_eq!(w.commit(9), Ok(()));
}

#[test]
fn replay_check_and_commit_are_separate_steps() {
    let mut k = kernel();
    let id = inbound(&mut k, 0x100, 32);
    let w = window(&mut k, id);
    assert_eq!(w.check(7), Ok(()));
    assert_eq!(w.check(7), Ok(()), "a check alone records nothing");
    assert_eq!(w.highest(), 0);
    assert_eq!(w.commit(7), Ok(()));
    assert_eq!(w.check(7), Err(ReplayError::Replayed));
}

#[test]
fn replay_window_is_forced_to_0_when_the_source_is_unspecified() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, None, PEER).sa_edit(|s| s.replay = 32), T0);
    k.ok(&esp_add(0x200, None, ME).sa_edit(|s| s.replay = 32), T0);
    for (spi, dst) in [(0x100, PEER), (0x200, ME)] {
        assert_eq!(
            k.sa(satype::ESP, spi, dst, T0).replay,
            0,
            "`replay 32` without src shows window size 0"
        );
        let id = k.id(satype::ESP, spi, dst);
        assert_eq!(window(&mut k, id).size(), 0);
    }
    k.ok(
        &esp_add(0x300, Some(ME), PEER).sa_edit(|s| s.replay = 32),
        T0,
    );
    assert_eq!(k.sa(satype::ESP, 0x300, PEER, T0).replay, 32);
}

#[test]
fn replay_value_at_add_sets_the_counter_and_get_shows_it() {
    let mut k = kernel();
    let rv = Extension::ReplayValue { r32: 1000, r64: 0 };
    k.ok(
        &esp_add(0x100, Some(PEER), ME)
            .sa_edit(|s| s.replay = 32)
            .with(rv.clone()),
        T0,
    );
    k.ok(&esp_add(0x200, Some(ME), PEER).with(rv.clone()), T0);
    for (spi, dst) in [(0x100, ME), (0x200, PEER)] {
        assert_eq!(
            k.get(satype::ESP, spi, dst, T0).ext(ExtKind::ReplayValue),
            Some(&rv),
            "spi {spi:#x}"
        );
    }
    let id = k.id(satype::ESP, 0x100, ME);
    let w = window(&mut k, id);
    assert_eq!(w.highest(), 1000);
    assert_eq!(w.check(968), Err(ReplayError::TooOld));
    assert_eq!(w.check(1001), Ok(()));
}

#[test]
fn replay_counter_of_0_is_not_reported() {
    let mut k = kernel();
    k.ok(
        &esp_add(0x100, Some(PEER), ME).sa_edit(|s| s.replay = 32),
        T0,
    );
    assert!(!k.get(satype::ESP, 0x100, ME, T0).has(ExtKind::ReplayValue));
    let id = k.id(satype::ESP, 0x100, ME);
    window(&mut k, id).commit(3).expect("first packet");
    let got = k.get(satype::ESP, 0x100, ME, T0);
    assert_eq!(
        got.ext(ExtKind::ReplayValue),
        Some(&Extension::ReplayValue { r32: 3, r64: 0 })
    );
}

#[test]
fn replay_value_with_only_a_64_bit_counter_is_eopnotsupp_81() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).with(Extension::ReplayValue {
        r32: 0,
        r64: 1 << 40,
    });
    k.refused(&req, T0, Errno::Eopnotsupp, Diagnostic::InvalidReplay);
    let req = ah_add(0x100, Some(ME), PEER).with(Extension::ReplayValue { r32: 0, r64: 7 });
    k.refused(&req, T0, Errno::Eopnotsupp, Diagnostic::InvalidReplay);
}
