//! The SA database at N SAs: ADD, lookup and DELETE per operation, memory
//! per SA, and lookup next to bare hash maps with the same keys, measured
//! in the same run.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sadb::pfkey::{satype, Message};
use sadb::{Config, Jitter, Sadb};
use serde::Serialize;

use crate::stats::{run_workers, Measured, Rep, Sample, Settings, Stat, Worker};
use crate::{add_msg, delete_msg, dst, spi};

/// Messages built ahead of the timed loop, a batch at a time, so that
/// building them is not measured and they do not all sit in memory.
const BATCH: u32 = 4096;

/// The results of the `sadb` mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SadbResult {
    /// SAs in the database.
    pub count: u32,
    /// Threads doing lookups at once (ADD and DELETE take the database
    /// for themselves, as in a kernel: one thread).
    pub threads: usize,
    /// ADD through `Sadb::handle` (the kernel's checks, the insertion and
    /// the echo message), growing the table from 0 to `count`.
    pub add: Measured,
    /// `Sadb::lookup` by (SPI, destination) in random order, at `count`.
    pub lookup: Measured,
    /// `std::collections::HashMap<(u32, IpAddr), usize>` (SipHash) with
    /// the same keys, in the same order.
    pub bare_hashmap_lookup: Measured,
    /// The same map with foldhash, the SADB index's hasher.
    pub bare_foldhash_lookup: Measured,
    /// DELETE through `Sadb::handle`, emptying the table.
    pub delete: Measured,
    /// Median lookup time over the median std HashMap lookup time.
    pub lookup_vs_bare: f64,
    /// Median lookup time over the median foldhash HashMap lookup time.
    pub lookup_vs_foldhash: f64,
    /// Live heap bytes per SA at `count` SAs (counting allocator), or
    /// `None` when the allocator is not counting.
    pub bytes_per_sa: Option<Stat>,
    /// `size_of::<sadb::Sa>()`: the part of each SA outside the heap
    /// allocations of its keys and replay window (included above).
    pub sa_struct_bytes: usize,
}

/// The `i`-th key of a pseudo-random walk over 0..n.
fn next(i: u32, n: u32) -> u32 {
    i.wrapping_mul(2_654_435_761).wrapping_add(1) % n.max(1)
}

fn timed_batches(
    n: u32,
    db: &mut Sadb,
    make: fn(u32) -> Message,
    what: &str,
) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut start = 0u32;
    while start < n {
        let end = start.saturating_add(BATCH).min(n);
        let msgs: Vec<Message> = (start..end).map(make).collect();
        let mut bad = 0u32;
        let t = Instant::now();
        for m in &msgs {
            let r = db.handle(m, crate::esp::NOW);
            if r.reply().map(|m| m.errno) != Some(0) {
                bad += 1;
            }
        }
        total += t.elapsed();
        if bad != 0 {
            return Err(format!(
                "sadb: {bad} of the {what}s {start}..{end} were refused"
            ));
        }
        start = end;
    }
    Ok(total)
}

fn per_op(n: u32, d: Duration) -> Rep {
    Rep::of(&[Sample {
        ops: u64::from(n),
        elapsed: d,
    }])
}

/// Runs the `sadb` mode with `count` SAs; `tick` is called after each
/// phase (five per repetition).
pub fn measure(count: u32, set: &Settings, mut tick: impl FnMut()) -> Result<SadbResult, String> {
    let n = count.max(1);
    let threads = set.threads.max(1);
    // The bare maps are built once; the SADB is rebuilt in every
    // repetition (its ADDs are what is timed).
    let bare: HashMap<(u32, IpAddr), usize> =
        (0..n).map(|i| ((spi(i), dst(i)), i as usize)).collect();
    let fold: HashMap<(u32, IpAddr), usize, foldhash::fast::RandomState> =
        (0..n).map(|i| ((spi(i), dst(i)), i as usize)).collect();
    let mut add = Vec::new();
    let mut lookup = Vec::new();
    let mut bare_l = Vec::new();
    let mut fold_l = Vec::new();
    let mut delete = Vec::new();
    let mut mem = Vec::new();
    for rep in 0..set.reps.max(1) {
        let before = crate::alloc::live_bytes();
        let mut db = Sadb::new(Config {
            jitter: Jitter::Off,
            ..Config::default()
        });
        add.push(per_op(n, timed_batches(n, &mut db, add_msg, "ADD")?));
        if db.len() != n as usize {
            return Err(format!("sadb: {} SAs after {n} ADDs", db.len()));
        }
        if let (Some(b), Some(a)) = (before, crate::alloc::live_bytes()) {
            mem.push(a.saturating_sub(b) as f64 / f64::from(n));
        }
        tick();
        let budget = |warm: bool| {
            if warm {
                set.warmup / 3
            } else {
                set.time
            }
        };
        let warm_passes: &[bool] = if rep == 0 && !set.warmup.is_zero() {
            &[true, false]
        } else {
            &[false]
        };
        let seeds = |k: u32| -> Vec<Worker<u32>> {
            (0..threads as u32)
                .map(|t| Worker::new(next(t.wrapping_mul(7919).wrapping_add(k), n)))
                .collect()
        };
        for &warm in warm_passes {
            let (s, bad) = run_workers(&mut seeds(1), budget(warm), &|i: &mut u32| {
                *i = next(*i, n);
                db.lookup(satype::ESP, spi(*i), dst(*i)).is_some()
            });
            if bad != 0 {
                return Err(format!("sadb: {bad} lookups found nothing"));
            }
            if !warm {
                lookup.push(Rep::of(&s));
            }
            tick_if(!warm, &mut tick);
            let (s, bad) = run_workers(&mut seeds(2), budget(warm), &|i: &mut u32| {
                *i = next(*i, n);
                black_box(bare.get(&(spi(*i), dst(*i)))).is_some()
            });
            if bad != 0 {
                return Err("sadb: the bare HashMap lost keys".into());
            }
            if !warm {
                bare_l.push(Rep::of(&s));
            }
            tick_if(!warm, &mut tick);
            let (s, bad) = run_workers(&mut seeds(3), budget(warm), &|i: &mut u32| {
                *i = next(*i, n);
                black_box(fold.get(&(spi(*i), dst(*i)))).is_some()
            });
            if bad != 0 {
                return Err("sadb: the bare foldhash HashMap lost keys".into());
            }
            if !warm {
                fold_l.push(Rep::of(&s));
            }
            tick_if(!warm, &mut tick);
        }
        delete.push(per_op(n, timed_batches(n, &mut db, delete_msg, "DELETE")?));
        if !db.is_empty() {
            return Err(format!("sadb: {} SAs left after the DELETEs", db.len()));
        }
        black_box(&db);
        tick();
    }
    let lookup = Measured::of(&lookup);
    let bare_hashmap_lookup = Measured::of(&bare_l);
    let bare_foldhash_lookup = Measured::of(&fold_l);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(SadbResult {
        count: n,
        threads,
        add: Measured::of(&add),
        lookup_vs_bare: ratio(lookup.ns.median, bare_hashmap_lookup.ns.median),
        lookup_vs_foldhash: ratio(lookup.ns.median, bare_foldhash_lookup.ns.median),
        lookup,
        bare_hashmap_lookup,
        bare_foldhash_lookup,
        delete: Measured::of(&delete),
        bytes_per_sa: (!mem.is_empty()).then(|| Stat::of(&mem)),
        sa_struct_bytes: std::mem::size_of::<sadb::Sa>(),
    })
}

fn tick_if(yes: bool, tick: &mut impl FnMut()) {
    if yes {
        tick();
    }
}

/// Progress steps of [`measure`] for a bar's length.
pub fn steps(set: &Settings) -> u64 {
    5 * set.reps.max(1) as u64
}
