//! Timing loops and their summaries: warm-up, repetitions of a fixed
//! duration, and the median with min and max over the repetitions
//! (shared machines are noisy; one number would hide it).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Repetitions; the summary is over these.
    pub reps: usize,
    /// Run time before the first repetition (not counted).
    pub warmup: Duration,
    /// Run time of each repetition.
    pub time: Duration,
    /// Threads that run the same operation at once (each on its own state).
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            reps: 5,
            warmup: Duration::from_millis(100),
            time: Duration::from_millis(100),
            threads: 1,
        }
    }
}

/// Median, minimum and maximum of one quantity over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    /// The summary of `xs` (all zero when `xs` is empty).
    pub fn of(xs: &[f64]) -> Stat {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let (Some(&min), Some(&max)) = (v.first(), v.last()) else {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        };
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Stat { median, min, max }
    }

    /// The same summary with every value multiplied by `k`.
    pub fn scale(self, k: f64) -> Stat {
        Stat {
            median: self.median * k,
            min: self.min * k,
            max: self.max * k,
        }
    }
}

/// What one thread did in one repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub ops: u64,
    pub elapsed: Duration,
}

/// One repetition over all threads: time per operation (per thread) and
/// operations per second (all threads together).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rep {
    pub ns_per_op: f64,
    pub ops_per_s: f64,
}

impl Rep {
    pub fn of(samples: &[Sample]) -> Rep {
        let ops: u64 = samples.iter().map(|s| s.ops).sum();
        let ns: f64 = samples.iter().map(|s| s.elapsed.as_nanos() as f64).sum();
        let rate: f64 = samples
            .iter()
            .filter(|s| !s.elapsed.is_zero())
            .map(|s| s.ops as f64 / s.elapsed.as_secs_f64())
            .sum();
        Rep {
            ns_per_op: if ops == 0 { 0.0 } else { ns / ops as f64 },
            ops_per_s: rate,
        }
    }
}

/// The summary of one operation over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// Nanoseconds per operation, per thread.
    pub ns: Stat,
    /// Millions of operations per second, all threads together.
    pub mops: Stat,
}

impl Measured {
    pub fn of(reps: &[Rep]) -> Measured {
        let ns: Vec<f64> = reps.iter().map(|r| r.ns_per_op).collect();
        let mops: Vec<f64> = reps.iter().map(|r| r.ops_per_s / 1e6).collect();
        Measured {
            ns: Stat::of(&ns),
            mops: Stat::of(&mops),
        }
    }
}

/// Runs `f` in batches until `budget` has passed; the batch grows until
/// one takes a millisecond, so reading the clock costs nothing measurable.
pub fn run_for(budget: Duration, batch: &mut u64, mut f: impl FnMut()) -> Sample {
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        let t0 = Instant::now();
        for _ in 0..*batch {
            f();
        }
        ops += *batch;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Sample { ops, elapsed };
        }
        if t0.elapsed() < Duration::from_millis(1) && *batch < 1 << 30 {
            *batch *= 2;
        }
    }
}

/// A thread's state plus the batch size its loop has settled on.
pub struct Worker<S> {
    pub state: S,
    batch: u64,
}

impl<S> Worker<S> {
    pub fn new(state: S) -> Worker<S> {
        Worker { state, batch: 1 }
    }
}

/// Runs `op` on every worker at once, each on its own thread (inline for
/// one), for `budget`; `op` returns false for a wrong result, counted.
pub fn run_workers<S: Send>(
    workers: &mut [Worker<S>],
    budget: Duration,
    op: &(impl Fn(&mut S) -> bool + Sync),
) -> (Vec<Sample>, u64) {
    if let [w] = workers {
        let mut bad = 0u64;
        let st = &mut w.state;
        let s = run_for(budget, &mut w.batch, || {
            if !black_box(op(st)) {
                bad += 1;
            }
        });
        return (vec![s], bad);
    }
    let barrier = Barrier::new(workers.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut bad = 0u64;
                    let st = &mut w.state;
                    let s = run_for(budget, &mut w.batch, || {
                        if !black_box(op(st)) {
                            bad += 1;
                        }
                    });
                    (s, bad)
                })
            })
            .collect();
        let mut samples = Vec::new();
        let mut bad = 0;
        for h in handles {
            match h.join() {
                Ok((s, b)) => {
                    samples.push(s);
                    bad += b;
                }
                // A worker that panicked measured nothing: count it as wrong.
                Err(_) => bad += 1,
            }
        }
        (samples, bad)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stat::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Stat::of(&[]).median, 0.0);
    }

    #[test]
    fn one_rep_rate_and_time_agree() {
        let r = Rep::of(&[Sample {
            ops: 1000,
            elapsed: Duration::from_micros(500),
        }]);
        assert_eq!(r.ns_per_op, 500.0);
        assert!((r.ops_per_s - 2e6).abs() < 1e-6);
    }

    #[test]
    fn run_for_stops_after_the_budget() {
        let mut batch = 1;
        let mut n = 0u64;
        let s = run_for(Duration::from_millis(5), &mut batch, || n += 1);
        assert!(s.elapsed >= Duration::from_millis(5));
        assert_eq!(s.ops, n);
    }
}
