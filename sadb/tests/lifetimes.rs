//! Lifetimes, the ager, byte accounting and EXPIRE messages
//! (ipseckey-behaviour.md 5.6, decisions.md simulated kernel #2, #3 and
//! front end #3).

mod common;
use common::*;

const HOUR: u64 = 3600;
const YEAR: u64 = 365 * 24 * HOUR;

/// A kernel without the manual's idle default, so that only the limits a
/// test sets can fire.
fn plain() -> Kernel {
    kernel_with(|c| c.idle_default = false)
}

fn state(k: &mut Kernel, spi: u32, dst: &str, now: u64) -> u8 {
    k.sa(satype::ESP, spi, dst, now).state
}

#[test]
fn no_lifetime_extensions_means_no_limits_at_all() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    for kind in [
        ExtKind::LifetimeHard,
        ExtKind::LifetimeSoft,
        ExtKind::LifetimeIdle,
    ] {
        assert!(!got.has(kind), "no {kind:?} was asked for: {got:?}");
    }
    assert!(k
        .account(satype::ESP, 0x100, PEER, 1 << 40, T0 + 1)
        .is_ok_and(|v| v.is_empty()));
    assert!(k.age(T0 + 10 * YEAR).is_empty());
    assert_eq!(state(&mut k, 0x100, PEER, T0 + 10 * YEAR), MATURE);
}

#[test]
fn soft_add_time_sends_one_soft_expire_and_makes_the_sa_dying() {
    let mut k = plain();
    k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(HOUR)), T0);
    assert!(k.age(T0 + HOUR - 1).is_empty());
    assert_eq!(state(&mut k, 0x100, PEER, T0), MATURE);
    let ex = k.age(T0 + HOUR);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeSoft]);
    assert_eq!(ex[0].sa().map(|s| s.state), Some(SaState::Dying as u8));
    assert_eq!(state(&mut k, 0x100, PEER, T0 + HOUR), SaState::Dying as u8);
    for t in [T0 + HOUR, T0 + HOUR + 8, T0 + 100 * HOUR] {
        assert!(k.age(t).is_empty(), "the soft EXPIRE is sent once");
    }
    assert_eq!(
        state(&mut k, 0x100, PEER, T0 + 100 * HOUR),
        SaState::Dying as u8
    );
}

#[test]
fn hard_add_time_sends_a_hard_expire_and_the_sa_stays_dead_until_reaped() {
    let mut k = kernel_with(|c| {
        c.idle_default = false;
        c.reap_delay = 8;
    });
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(soft_add(HOUR))
            .with(hard_add(2 * HOUR)),
        T0,
    );
    assert_eq!(k.age(T0 + HOUR).len(), 1);
    assert!(k.age(T0 + 2 * HOUR - 1).is_empty());
    let ex = k.age(T0 + 2 * HOUR);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeHard]);
    assert_eq!(ex[0].sa().map(|s| s.state), Some(SaState::Dead as u8));
    // DEAD is visible until the reap delay has passed, without more EXPIREs.
    assert!(k.age(T0 + 2 * HOUR + 7).is_empty());
    assert_eq!(
        state(&mut k, 0x100, PEER, T0 + 2 * HOUR + 7),
        SaState::Dead as u8
    );
    assert!(
        k.account(satype::ESP, 0x100, PEER, 100, T0 + 2 * HOUR + 7)
            .is_err(),
        "a DEAD SA passes nothing"
    );
    assert!(k.age(T0 + 2 * HOUR + 8).is_empty());
    k.gone(satype::ESP, 0x100, PEER, T0 + 2 * HOUR + 8);
}

#[test]
fn hard_limit_reached_first_goes_straight_from_mature_to_dead() {
    let mut k = plain();
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(soft_add(100))
            .with(hard_add(100)),
        T0,
    );
    let ex = k.age(T0 + 500);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeHard]);
    assert_eq!(state(&mut k, 0x100, PEER, T0 + 500), SaState::Dead as u8);
}

#[test]
fn reap_delay_defaults_to_one_second() {
    let mut k = plain();
    k.ok(&esp_add(0x100, Some(ME), PEER).with(hard_add(10)), T0);
    assert_eq!(k.age(T0 + 10).len(), 1);
    assert_eq!(state(&mut k, 0x100, PEER, T0 + 10), SaState::Dead as u8);
    assert!(k.age(T0 + 11).is_empty());
    k.gone(satype::ESP, 0x100, PEER, T0 + 11);
}

#[test]
fn soft_limit_above_hard_limit_is_14_to_17_only_when_both_extensions_are_present() {
    let mut k = kernel();
    let cases = [
        ((2, 0, 0, 0), Diagnostic::AllocHserr),
        ((0, 2000, 0, 0), Diagnostic::BytesHserr),
        ((0, 0, 2000, 0), Diagnostic::AddtimeHserr),
        ((0, 0, 0, 2000), Diagnostic::UsetimeHserr),
    ];
    for ((a, b, t, u), diag) in cases {
        let req = esp_add(0x100, Some(ME), PEER)
            .with(lifetime(ExtKind::LifetimeHard, 1, 1000, 1000, 1000))
            .with(lifetime(ExtKind::LifetimeSoft, a, b, t, u));
        k.refused(&req, T0, Errno::Einval, diag);
    }
    // Zero on either side is "no limit": never a conflict.
    let req = esp_add(0x100, Some(ME), PEER)
        .with(lifetime(ExtKind::LifetimeHard, 0, 1000, 0, 1000))
        .with(lifetime(ExtKind::LifetimeSoft, 5, 0, 2000, 0));
    k.ok(&req, T0);
    // A SOFT extension without HARD is not checked.
    k.ok(
        &esp_add(0x200, Some(ME), PEER).with(lifetime(ExtKind::LifetimeSoft, 9, 9000, 9000, 9000)),
        T0,
    );
    // Equal limits are fine.
    k.ok(
        &esp_add(0x300, Some(ME), PEER)
            .with(hard_add(100))
            .with(soft_add(100)),
        T0,
    );
}

#[test]
fn idle_limit_above_hard_or_soft_is_16_or_17() {
    let mut k = kernel();
    let idle = |add: u64, usetime: u64| lifetime(ExtKind::LifetimeIdle, 0, 0, add, usetime);
    let base = || esp_add(0x100, Some(ME), PEER);
    k.refused(
        &base().with(hard_add(100)).with(idle(200, 0)),
        T0,
        Errno::Einval,
        Diagnostic::AddtimeHserr,
    );
    k.refused(
        &base().with(soft_add(100)).with(idle(200, 0)),
        T0,
        Errno::Einval,
        Diagnostic::AddtimeHserr,
    );
    let hard_use = lifetime(ExtKind::LifetimeHard, 0, 0, 0, 100);
    k.refused(
        &base().with(hard_use).with(idle(0, 200)),
        T0,
        Errno::Einval,
        Diagnostic::UsetimeHserr,
    );
    k.ok(&base().with(hard_add(100)).with(idle(50, 500)), T0);
}

#[test]
fn idle_lifetime_defaults_to_half_the_hard_add_time() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER).with(hard_add(HOUR)), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let idle = got
        .lifetime(ExtKind::LifetimeIdle)
        .copied()
        .expect("GET shows the idle value stored");
    assert_eq!((idle.addtime, idle.usetime), (HOUR / 2, HOUR / 2));
    // Given explicitly, the request's value wins; without hard_addtime
    // there is no default.
    k.ok(
        &esp_add(0x200, Some(ME), PEER)
            .with(hard_add(HOUR))
            .with(lifetime(ExtKind::LifetimeIdle, 0, 0, 60, 0)),
        T0,
    );
    let got = k.get(satype::ESP, 0x200, PEER, T0);
    assert_eq!(
        got.lifetime(ExtKind::LifetimeIdle)
            .map(|l| (l.addtime, l.usetime)),
        Some((60, 0))
    );
    k.ok(
        &esp_add(0x300, Some(ME), PEER).with(lifetime(ExtKind::LifetimeHard, 0, 5000, 0, HOUR)),
        T0,
    );
    assert!(!k
        .get(satype::ESP, 0x300, PEER, T0)
        .has(ExtKind::LifetimeIdle));
    // The defaulted idle limit fires like a given one.
    assert!(k.age(T0 + 59).is_empty());
    let ex = k.age(T0 + 60);
    assert_eq!(
        ex.iter().map(|m| m.sa().map(|s| s.spi)).collect::<Vec<_>>(),
        vec![Some(0x200)]
    );
    let ex = k.age(T0 + HOUR / 2);
    assert_eq!(
        ex.iter().map(|m| m.sa().map(|s| s.spi)).collect::<Vec<_>>(),
        vec![Some(0x100)]
    );
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeIdle]);
}

#[test]
fn idle_expire_is_sent_once_per_idle_period_and_the_sa_stays_mature() {
    let mut k = kernel();
    let idle = lifetime(ExtKind::LifetimeIdle, 0, 0, 500, 500);
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(hard_add(10_000))
            .with(idle),
        T0,
    );
    assert!(k.age(T0 + 499).is_empty());
    let ex = k.age(T0 + 500);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeIdle]);
    assert_eq!(
        ex[0].lifetime(ExtKind::LifetimeIdle).map(|l| l.addtime),
        Some(500)
    );
    assert_eq!(ex[0].sa().map(|s| s.state), Some(MATURE));
    for t in [T0 + 500, T0 + 508, T0 + 600] {
        assert!(k.age(t).is_empty(), "one idle EXPIRE per idle period");
    }
    // Traffic starts a new period, counted from the last use.
    assert!(k.account(satype::ESP, 0x100, PEER, 100, T0 + 600).is_ok());
    assert!(k.age(T0 + 600 + 499).is_empty());
    let ex = k.age(T0 + 600 + 500);
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeIdle]);
    assert_eq!(state(&mut k, 0x100, PEER, T0 + 1100), MATURE);
}

#[test]
fn use_time_limits_count_from_the_first_use() {
    let mut k = plain();
    let req = esp_add(0x100, Some(ME), PEER)
        .with(lifetime(ExtKind::LifetimeHard, 0, 0, 0, 100))
        .with(lifetime(ExtKind::LifetimeSoft, 0, 0, 0, 50));
    k.ok(&req, T0);
    assert!(
        k.age(T0 + 10 * HOUR).is_empty(),
        "never used: no use-time expiry"
    );
    let first = T0 + 10 * HOUR;
    assert!(k.account(satype::ESP, 0x100, PEER, 10, first).is_ok());
    assert!(k.account(satype::ESP, 0x100, PEER, 10, first + 30).is_ok());
    assert!(k.age(first + 49).is_empty());
    assert_eq!(
        expire_limits(&k.age(first + 50)[0]),
        vec![ExtKind::LifetimeSoft]
    );
    assert!(k.age(first + 99).is_empty());
    assert_eq!(
        expire_limits(&k.age(first + 100)[0]),
        vec![ExtKind::LifetimeHard]
    );
}

#[test]
fn first_use_sets_x_used_and_the_use_time() {
    let mut k = plain();
    k.ok(&esp_add(0x100, Some(ME), PEER), T0);
    assert_eq!(k.sa(satype::ESP, 0x100, PEER, T0).flags & flags::X_USED, 0);
    assert!(k.account(satype::ESP, 0x100, PEER, 1500, T0 + 7).is_ok());
    assert!(k.account(satype::ESP, 0x100, PEER, 500, T0 + 9).is_ok());
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 9);
    assert_eq!(
        got.sa().map(|s| s.flags & flags::X_USED),
        Some(flags::X_USED)
    );
    let cur = got
        .lifetime(ExtKind::LifetimeCurrent)
        .copied()
        .unwrap_or_default();
    assert_eq!(
        cur,
        Lifetime {
            allocations: 0,
            bytes: 2000,
            addtime: T0,
            usetime: T0 + 7
        }
    );
}

#[test]
fn soft_byte_limit_makes_the_sa_dying_with_a_soft_expire() {
    let mut k = plain();
    let req = esp_add(0x100, Some(ME), PEER)
        .with(lifetime(ExtKind::LifetimeHard, 0, 10_000, 0, 0))
        .with(lifetime(ExtKind::LifetimeSoft, 0, 5_000, 0, 0));
    k.ok(&req, T0);
    assert!(k
        .account(satype::ESP, 0x100, PEER, 4_999, T0 + 1)
        .is_ok_and(|v| v.is_empty()));
    let ex = k
        .account(satype::ESP, 0x100, PEER, 1, T0 + 2)
        .expect("the packet passes");
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeSoft]);
    assert_eq!(
        ex[0].lifetime(ExtKind::LifetimeCurrent).map(|l| l.bytes),
        Some(5_000)
    );
    assert_eq!(state(&mut k, 0x100, PEER, T0 + 2), SaState::Dying as u8);
    assert!(
        k.account(satype::ESP, 0x100, PEER, 1_000, T0 + 3)
            .is_ok_and(|v| v.is_empty()),
        "sent once"
    );
}

#[test]
fn hard_byte_limit_refuses_the_packet_and_kills_the_sa() {
    let mut k = plain();
    k.ok(
        &esp_add(0x100, Some(ME), PEER).with(lifetime(ExtKind::LifetimeHard, 0, 10_000, 0, 0)),
        T0,
    );
    assert!(k.account(satype::ESP, 0x100, PEER, 9_000, T0 + 1).is_ok());
    let ex = k
        .account(satype::ESP, 0x100, PEER, 1_000, T0 + 2)
        .expect_err("the packet is refused");
    assert_eq!(ex.len(), 1);
    assert_eq!(expire_limits(&ex[0]), vec![ExtKind::LifetimeHard]);
    let got = k.get(satype::ESP, 0x100, PEER, T0 + 2);
    assert_eq!(got.sa().map(|s| s.state), Some(SaState::Dead as u8));
    assert_eq!(
        got.lifetime(ExtKind::LifetimeCurrent).map(|l| l.bytes),
        Some(9_000),
        "the refused packet is not counted"
    );
    assert!(k.account(satype::ESP, 0x100, PEER, 1, T0 + 2).is_err());
}

#[test]
fn allocations_are_stored_and_reported_but_never_enforced() {
    let mut k = plain();
    let req = esp_add(0x100, Some(ME), PEER)
        .with(lifetime(ExtKind::LifetimeHard, 2, 0, 0, 0))
        .with(lifetime(ExtKind::LifetimeSoft, 1, 0, 0, 0));
    k.ok(&req, T0);
    for i in 0..10 {
        assert!(k
            .account(satype::ESP, 0x100, PEER, 100, T0 + i)
            .is_ok_and(|v| v.is_empty()));
    }
    assert!(k.age(T0 + YEAR).is_empty());
    let got = k.get(satype::ESP, 0x100, PEER, T0 + YEAR);
    assert_eq!(
        got.lifetime(ExtKind::LifetimeHard).map(|l| l.allocations),
        Some(2)
    );
    assert_eq!(
        got.lifetime(ExtKind::LifetimeSoft).map(|l| l.allocations),
        Some(1)
    );
    assert_eq!(
        got.lifetime(ExtKind::LifetimeCurrent)
            .map(|l| l.allocations),
        Some(0)
    );
    assert_eq!(got.sa().map(|s| s.state), Some(MATURE));
}

#[test]
fn expiry_times_saturate_instead_of_overflowing() {
    let mut k = plain();
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(hard_add(u64::MAX))
            .with(soft_add(u64::MAX - 1)),
        T0,
    );
    assert!(k.age(T0 + 100 * YEAR).is_empty());
    assert_eq!(state(&mut k, 0x100, PEER, T0), MATURE);
    let ex = k.age(u64::MAX);
    assert_eq!(
        ex.iter().map(expire_limits).collect::<Vec<_>>(),
        vec![vec![ExtKind::LifetimeHard]]
    );
}

#[test]
fn soft_jitter_of_8_to_23_seconds_applies_to_outbound_only_sas() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..64 {
        let mut k = kernel_with(|c| {
            c.jitter = Jitter::Seeded(seed);
            c.idle_default = false;
        });
        k.ok(
            &esp_add(0x100, Some(ME), PEER)
                .with(soft_add(1000))
                .with(hard_add(2000)),
            T0,
        );
        let got = k.get(satype::ESP, 0x100, PEER, T0);
        let soft = got
            .lifetime(ExtKind::LifetimeSoft)
            .map(|l| l.addtime)
            .unwrap_or_default();
        assert!(
            (977..=992).contains(&soft),
            "seed {seed}: soft addtime {soft}"
        );
        assert_eq!(
            got.lifetime(ExtKind::LifetimeHard).map(|l| l.addtime),
            Some(2000),
            "hard is never fuzzed"
        );
        // The soft expiry moved with it.
        assert!(k.age(T0 + soft - 1).is_empty());
        assert_eq!(
            expire_limits(&k.age(T0 + soft)[0]),
            vec![ExtKind::LifetimeSoft]
        );
        seen.insert(soft);
    }
    assert!(seen.len() > 4, "the jitter depends on the seed: {seen:?}");
    // ... and only on the seed: the same seed gives the same jitter.
    let soft_with = |seed: u64| {
        let mut k = kernel_with(|c| c.jitter = Jitter::Seeded(seed));
        k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(1000)), T0);
        k.get(satype::ESP, 0x100, PEER, T0)
            .lifetime(ExtKind::LifetimeSoft)
            .map(|l| l.addtime)
    };
    for seed in [1, 99, 12345] {
        assert_eq!(soft_with(seed), soft_with(seed));
    }
}

#[test]
fn no_soft_jitter_for_inbound_or_cloned_sas() {
    let mut k = kernel_with(|c| c.jitter = Jitter::Seeded(3));
    let reqs = [
        esp_add(0x100, Some(PEER), ME),
        esp_add(0x200, None, PEER),
        esp_add(0x300, None, ME),
        esp_add(0x400, Some(ME), PEER).sa_edit(|s| s.flags = flags::X_INBOUND),
    ];
    for req in reqs {
        let spi = req.sa().map(|s| s.spi).unwrap_or_default();
        let dst = req
            .address(ExtKind::AddressDst)
            .map(|a| a.addr.canonical_ip().to_string())
            .unwrap_or_default();
        k.ok(&req.with(soft_add(1000)), T0);
        let got = k.get(satype::ESP, spi, &dst, T0);
        assert_eq!(
            got.lifetime(ExtKind::LifetimeSoft).map(|l| l.addtime),
            Some(1000),
            "spi {spi:#x}"
        );
    }
}

#[test]
fn soft_jitter_is_not_reapplied_on_update() {
    let mut k = kernel_with(|c| c.jitter = Jitter::Seeded(11));
    k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(1000)), T0);
    assert_ne!(
        k.get(satype::ESP, 0x100, PEER, T0)
            .lifetime(ExtKind::LifetimeSoft)
            .map(|l| l.addtime),
        Some(1000)
    );
    for _ in 0..3 {
        k.ok(
            &update(MsgType::Update, satype::ESP, 0x100, Some(ME), PEER).with(soft_add(500)),
            T0,
        );
        let got = k.get(satype::ESP, 0x100, PEER, T0);
        assert_eq!(
            got.lifetime(ExtKind::LifetimeSoft).map(|l| l.addtime),
            Some(500)
        );
    }
}

#[test]
fn jitter_off_keeps_the_soft_add_time_exact() {
    let mut k = kernel();
    k.ok(&esp_add(0x100, Some(ME), PEER).with(soft_add(1000)), T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    assert_eq!(
        got.lifetime(ExtKind::LifetimeSoft).map(|l| l.addtime),
        Some(1000)
    );
}

#[test]
fn expire_message_has_seq_0_pid_0_the_sa_current_one_limit_and_the_addresses() {
    let mut k = kernel_with(|c| c.idle_default = false);
    let req = esp_add(0x100, Some(ME), PEER)
        .sa_edit(|s| s.replay = 16)
        .with(lifetime(ExtKind::LifetimeHard, 0, 8000, 2000, 0))
        .with(lifetime(ExtKind::LifetimeSoft, 0, 4000, 1000, 0))
        .with(inner(ExtKind::AddressInnerSrc, "192.168.1.0", 24))
        .with(inner(ExtKind::AddressInnerDst, "192.168.2.0", 24));
    k.ok(&req, T0);
    assert!(k.account(satype::ESP, 0x100, PEER, 300, T0 + 5).is_ok());
    for (t, which, st) in [
        (T0 + 1000, ExtKind::LifetimeSoft, SaState::Dying),
        (T0 + 2000, ExtKind::LifetimeHard, SaState::Dead),
    ] {
        let ex = k.age(t);
        assert_eq!(ex.len(), 1);
        let m = &ex[0];
        assert_eq!(
            (m.msg_type, m.satype, m.errno, m.seq, m.pid),
            (MsgType::Expire, satype::ESP, 0, 0, 0)
        );
        let sa = m.sa().copied().expect("SA extension");
        assert_eq!(
            (sa.spi, sa.replay, sa.state, sa.auth, sa.encrypt),
            (0x100, 16, st as u8, AALG_SHA1, EALG_AES)
        );
        assert_eq!(
            sa.flags,
            flags::X_OUTBOUND | flags::X_TUNNEL | flags::X_USED
        );
        let cur = m
            .lifetime(ExtKind::LifetimeCurrent)
            .copied()
            .expect("CURRENT");
        assert_eq!(
            cur,
            Lifetime {
                allocations: 0,
                bytes: 300,
                addtime: T0,
                usetime: T0 + 5
            }
        );
        assert_eq!(expire_limits(m), vec![which]);
        let limit = m.lifetime(which).copied().unwrap_or_default();
        let want = if which == ExtKind::LifetimeSoft {
            (4000, 1000)
        } else {
            (8000, 2000)
        };
        assert_eq!((limit.bytes, limit.addtime), want, "the configured limits");
        assert_eq!(reply_ip(m, ExtKind::AddressSrc), ip(ME));
        assert_eq!(reply_ip(m, ExtKind::AddressDst), ip(PEER));
        assert_eq!(
            m.address(ExtKind::AddressDst)
                .map(|a| (a.addr.port, a.proto)),
            Some((0, 4))
        );
        assert_eq!(reply_ip(m, ExtKind::AddressInnerSrc), ip("192.168.1.0"));
        assert_eq!(reply_ip(m, ExtKind::AddressInnerDst), ip("192.168.2.0"));
        assert!(
            !m.has(ExtKind::KeyAuth) && !m.has(ExtKind::KeyEncrypt),
            "EXPIRE carries no keys"
        );
    }
}

#[test]
fn hours_of_virtual_time_pass_without_the_ager_missing_an_expiry() {
    let mut k = kernel_with(|c| c.idle_default = false);
    for (i, hours) in [1u64, 2, 5, 24].iter().enumerate() {
        let spi = 0x100 + i as u32;
        k.ok(
            &esp_add(spi, Some(ME), PEER).with(hard_add(hours * HOUR)),
            T0,
        );
    }
    let mut expired = Vec::new();
    let mut t = T0;
    while t <= T0 + 25 * HOUR {
        for m in k.age(t) {
            expired.push((m.sa().map(|s| s.spi).unwrap_or_default(), t - T0));
        }
        t += 8;
    }
    assert_eq!(
        expired,
        vec![
            (0x100, HOUR),
            (0x101, 2 * HOUR),
            (0x102, 5 * HOUR),
            (0x103, 24 * HOUR)
        ]
    );
}

/// `next_event` is the first time an ager pass can do anything: before it
/// every pass is empty, at it one is not (soft, hard, reap, idle, in
/// turn), so a virtual clock may skip the passes in between.
#[test]
fn next_event_is_the_first_time_an_ager_pass_acts() {
    let mut k = kernel();
    assert_eq!(k.db.next_event(), None, "an empty SADB has no events");
    let idle = lifetime(ExtKind::LifetimeIdle, 0, 0, 100, 100);
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .with(soft_add(HOUR))
            .with(hard_add(2 * HOUR))
            .with(idle),
        T0,
    );
    let mut now = T0;
    let mut acted = Vec::new();
    while let Some(t) = k.db.next_event() {
        assert!(t >= now, "events never lie in the past: {t} < {now}");
        for quiet in [now, t - 1] {
            if quiet >= now && quiet < t {
                assert!(k.age(quiet).is_empty(), "nothing happens before {t}");
            }
        }
        let before = k.db.len();
        let out = k.age(t);
        assert!(
            !out.is_empty() || k.db.len() != before,
            "the pass at next_event {t} acts"
        );
        acted.push((
            t - T0,
            out.iter().flat_map(expire_limits).collect::<Vec<_>>(),
        ));
        now = t;
    }
    assert_eq!(
        acted,
        vec![
            (100, vec![ExtKind::LifetimeIdle]),
            (HOUR, vec![ExtKind::LifetimeSoft]),
            (2 * HOUR, vec![ExtKind::LifetimeHard]),
            (2 * HOUR + 1, vec![]),
        ]
    );
    assert!(k.db.is_empty(), "the dead SA was reaped");
}
