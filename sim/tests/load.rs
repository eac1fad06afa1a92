//! sadbd under load: 1,000,000 SAs added by one client and churned (added
//! and deleted) by another at full speed, with 8 monitors attached, seven
//! reading and one that never reads until the end. The engine never waits
//! for a monitor, every monitor sees every message or is told how many it
//! lost, and the daemon's memory stays within the SADB's plus the bounded
//! per-client queues.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{add, delete, header, Daemon, TempDir};
use sadb::pfkey::{ident_type, Dialect, ExtKind, Extension, Identity, Message, MsgType};
use sim::client::{Client, MAX_MSG};

const SAS: u32 = 1_000_000;
const BASE: u32 = 0x100_0000;
/// Churned SPIs: added and deleted again and again.
const CHURN_BASE: u32 = 0x7000_0000;
/// Churn operations after the million is loaded, while memory is watched.
const CHURN_AFTER: u32 = 30_000;
/// ADDs in flight from the loading client.
const WINDOW: u32 = 128;
/// sadbd's default.
const QUEUE_LIMIT: u64 = 65536;
const MARKER: u32 = 0xfff0_0000;

fn get(spi: u32) -> Vec<u8> {
    let mut m = Message::parse(&delete(spi, 1), Dialect::Illumos).expect("parse");
    m.msg_type = MsgType::Get;
    m.emit(Dialect::Illumos).expect("emit")
}

fn number(t: MsgType) -> u8 {
    t.number(Dialect::Illumos).unwrap_or(0)
}

/// What one monitor saw: (ADDs, DELETEs, messages reported lost, notices).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    adds: u64,
    deletes: u64,
    lost: u64,
    notices: u64,
}

/// Reads until `idle` passes with nothing after `done` is set (or after
/// the marker ADD).
fn watch(c: &Client, done: &AtomicBool, idle: Duration) -> Seen {
    let mut buf = vec![0u8; MAX_MSG];
    let mut s = Seen::default();
    let mut marker = false;
    loop {
        let wait = if marker || done.load(Ordering::Relaxed) {
            idle
        } else {
            Duration::from_secs(1)
        };
        match c.recv_into(&mut buf, Some(wait)).expect("monitor recv") {
            Some(n) => {
                let (t, errno, _) = header(&buf[..n]);
                if t == number(MsgType::Add) {
                    assert_eq!(errno, 0);
                    s.adds += 1;
                    if common::spi_of(&buf[..n]) == MARKER {
                        marker = true;
                    }
                } else if t == number(MsgType::Delete) {
                    s.deletes += 1;
                } else if t == 0 {
                    assert_eq!(errno, sadb::Errno::Enobufs.number(Dialect::Illumos));
                    s.notices += 1;
                    s.lost += u64::from(u16::from_ne_bytes([buf[6], buf[7]]));
                }
            }
            None if marker || done.load(Ordering::Relaxed) => return s,
            None => {}
        }
    }
}

/// A churned ADD: with a 1 KiB source identity, so that its broadcasts
/// (and the DELETE's) are big and a queue that grew without bound would
/// show in the daemon's memory.
fn big_add(spi: u32, seq: u32) -> Vec<u8> {
    let mut m = Message::parse(&add(spi, seq), Dialect::Illumos).expect("parse");
    m.exts.push(Extension::Identity(
        ExtKind::IdentitySrc,
        Identity {
            id_type: ident_type::FQDN,
            id: 0,
            text: vec![b'a'; 1024],
        },
    ));
    m.emit(Dialect::Illumos).expect("emit")
}

/// Sets a flag when dropped, also when its thread panics.
struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn promisc(c: &Client) {
    c.send(&common::msg(MsgType::Promisc, 1, 1)).expect("send");
    let mut buf = vec![0u8; MAX_MSG];
    let n = c
        .recv_into(&mut buf, Some(Duration::from_secs(10)))
        .expect("recv")
        .expect("PROMISC echo");
    assert_eq!(header(&buf[..n]).0, number(MsgType::Promisc));
}

#[test]
fn a_million_sas_with_eight_monitors_one_never_reading() {
    let dir = TempDir::new("load");
    let ql = QUEUE_LIMIT.to_string();
    let d = Daemon::start(&dir.0, &["--queue-limit", &ql, "--tick", "3600"]);
    let start = Instant::now();
    let rss0 = d.rss_kib();

    let done = Arc::new(AtomicBool::new(false));
    let monitors: Vec<_> = (0..7)
        .map(|_| {
            let c = d.connect();
            promisc(&c);
            let done = done.clone();
            std::thread::spawn(move || watch(&c, &done, Duration::from_secs(2)))
        })
        .collect();
    let sleeper = d.connect();
    promisc(&sleeper);

    // The loader: a million ADDs, WINDOW in flight.
    let loaded = Arc::new(AtomicBool::new(false));
    let loader = {
        let c = d.connect();
        let loaded = loaded.clone();
        std::thread::spawn(move || {
            let _loaded = SetOnDrop(loaded);
            let mut buf = vec![0u8; MAX_MSG];
            let (mut sent, mut acked, mut lost) = (0u32, 0u32, 0u64);
            let mut slowest = Duration::ZERO;
            let mut last = Instant::now();
            while u64::from(acked) + lost < u64::from(SAS) {
                while sent < SAS && u64::from(sent - acked) < u64::from(WINDOW) + lost {
                    c.send(&add(BASE + sent, sent + 1)).expect("send ADD");
                    sent += 1;
                }
                let n = c
                    .recv_into(&mut buf, Some(Duration::from_secs(10)))
                    .expect("recv")
                    .expect("the engine answers within 10 s");
                let (t, errno, seq) = header(&buf[..n]);
                if t == 0 {
                    // Starved long enough to lose messages: some may have
                    // been its replies (checked with GETs at the end).
                    lost += u64::from(u16::from_ne_bytes([buf[6], buf[7]]));
                }
                // Its own replies; the churner's broadcasts are skipped.
                if t == number(MsgType::Add) && (1..=SAS).contains(&seq) {
                    assert_eq!(errno, 0, "ADD {seq} refused");
                    acked += 1;
                    slowest = slowest.max(last.elapsed());
                    last = Instant::now();
                }
            }
            (slowest, lost)
        })
    };
    // The churner: ADD then DELETE, one at a time, as fast as answered,
    // during the load and CHURN_AFTER times more.
    let churner = {
        let c = d.connect();
        let loaded = loaded.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; MAX_MSG];
            let mut ops = 0u64;
            let mut after = 0u32;
            let mut slowest = Duration::ZERO;
            let mut k = 0u32;
            while after < CHURN_AFTER {
                let spi = CHURN_BASE + k % 1024;
                let seq = 0x8000_0000 + k;
                for (req, t) in [
                    (big_add(spi, seq), MsgType::Add),
                    (delete(spi, seq), MsgType::Delete),
                ] {
                    let t0 = Instant::now();
                    c.send(&req).expect("send");
                    loop {
                        let n = c
                            .recv_into(&mut buf, Some(Duration::from_secs(10)))
                            .expect("recv")
                            .expect("the engine answers within 10 s");
                        let (mt, errno, s) = header(&buf[..n]);
                        if mt == number(t) && s == seq {
                            assert_eq!(errno, 0);
                            break;
                        }
                    }
                    slowest = slowest.max(t0.elapsed());
                    ops += 1;
                }
                k += 1;
                if loaded.load(Ordering::Relaxed) {
                    after += 1;
                }
            }
            (ops, slowest)
        })
    };

    let mut rss_max = 0;
    let mut rss_loaded = None;
    while !churner.is_finished() || !loader.is_finished() {
        let r = d.rss_kib();
        rss_max = rss_max.max(r);
        if rss_loaded.is_none() && loaded.load(Ordering::Relaxed) {
            rss_loaded = Some(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (load_gap, loader_lost) = loader.join().expect("loader");
    let (churn_ops, churn_slowest) = churner.join().expect("churner");
    let rss_end = d.rss_kib();
    rss_max = rss_max.max(rss_end);
    let rss_loaded = rss_loaded.unwrap_or(rss_end);

    let c = d.connect();
    c.send(&add(MARKER, 1)).expect("send");
    done.store(true, Ordering::Relaxed);
    let total = u64::from(SAS) + churn_ops + 1;
    let elapsed = start.elapsed();
    for m in monitors {
        let s = m.join().expect("monitor");
        assert_eq!(
            s.adds + s.deletes + s.lost,
            total,
            "a reading monitor saw every message or was told: {s:?}"
        );
    }
    // The monitor that never read: what fitted, then the notices.
    let s = watch(&sleeper, &done, Duration::from_secs(2));
    assert!(s.notices > 0, "{s:?}");
    assert_eq!(s.adds + s.deletes + s.lost, total, "{s:?}");
    assert!(
        s.adds + s.deletes <= QUEUE_LIMIT + 10_000,
        "only the queue and the socket buffer were kept for it: {s:?}"
    );

    // Every ADD is in, also where the loader lost its reply: a sample.
    let mut buf = vec![0u8; MAX_MSG];
    for i in (0..SAS).step_by(997) {
        c.send(&get(BASE + i)).expect("send GET");
        let n = c
            .recv_into(&mut buf, Some(Duration::from_secs(10)))
            .expect("recv")
            .expect("GET answered");
        assert_eq!(header(&buf[..n]).1, 0, "SA {:#x} missing", BASE + i);
    }
    // Memory: the SADB (at most 1 KiB per SA, PERFORMANCE.md), the
    // never-reading monitor's queue (QUEUE_LIMIT messages of at most
    // 1.2 KiB), 32 MiB for what the other clients have queued at a time,
    // and 64 MiB for the allocator and the binary.
    let bound_kib = u64::from(SAS) + QUEUE_LIMIT * 6 / 5 + (32 + 64) * 1024;
    eprintln!(
        "{SAS} SAs + {churn_ops} churn ops in {elapsed:?}; slowest ADD gap {load_gap:?}, \
         slowest churn op {churn_slowest:?}; loader lost {loader_lost}; VmRSS start {rss0} KiB, loaded {rss_loaded} KiB, \
         max {rss_max} KiB, end {rss_end} KiB (bound {bound_kib} KiB)"
    );
    assert!(
        rss_max <= bound_kib,
        "VmRSS {rss_max} KiB > {bound_kib} KiB"
    );
    // Once the never-reading monitor's queue is full, more traffic must not
    // grow the daemon: the churn after loading (60,000 messages of over
    // 1 KiB for that monitor alone) adds nothing lasting.
    assert!(
        rss_end <= rss_loaded + 16 * 1024,
        "VmRSS grew from {rss_loaded} to {rss_end} KiB while only churning"
    );
    assert!(
        churn_slowest < Duration::from_secs(5) && load_gap < Duration::from_secs(5),
        "the engine stalled"
    );
    let mut d = d;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}
