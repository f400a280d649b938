//! Report section `alloc`: `P2pPool` against the allocators a driver author would compare it
//! with, on the workload of `alloc_workload.rs` (256 MiB, 4 KiB granularity, 4 KiB–1 MiB
//! requests, ~50% fill).
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other load on the
//! machine does not count; elsewhere wall-clock time. The allocators run in turn, in short
//! rounds of equal length, and each ratio is the median over rounds of the ratio within a round:
//! a change in the machine's speed (another job on a sibling CPU, frequency) then touches both
//! sides of a ratio alike.
//!
//! Rows (ratios relative to the genalloc-style bitmap first-fit of the same run; `p2p-tlsf` is
//! the pool as built, with one arena per CPU, and `p2p-tlsf 1 arena` the same with one lock):
//! - `churn@50%`: alloc+free pairs per second in the steady state (median over rounds; the
//!   ratio is the median of the per-round ratios);
//! - `largest@50%`: the largest allocation still possible with the region 50% full, in bytes
//!   (median over samples taken as the fill reaches 50% during the churn);
//! - `scale@25%`: the same churn run by one thread, then by two threads at once, each thread
//!   its own buffers (two churns of the same pool, each holding 25% of the region: 50% in all;
//!   in a one-thread round the other churn's buffers stay allocated). Both threads start
//!   together and stop together (a flag the measuring thread raises after a fixed wall-clock
//!   window), and the rate is all their pairs over the window. A round counts only if every
//!   thread in it ran for at least 90% of the window (its CPU time over the window), so that
//!   the threads ran at the same time for at least 80% of it: a
//!   thread descheduled by other work on the machine would make two threads look like one
//!   after the other; such rounds are run again, up to 50 times as many as asked for
//!   (`scale-spread`: `rounds dropped`; NaN figures if no round counted: the machine was busy). One- and
//!   two-thread rounds alternate; the ratio is the median of the per-round ratios (min and max
//!   in the `scale-spread` rows). For the pool as built (one arena per CPU), for comparison with
//!   one arena (one lock for both threads), and as a control with a pool for each thread (the
//!   same code sharing nothing: what the machine allows at the time, e.g. when the two vCPUs
//!   share a core);
//!   The `scale` rows are left out when the process may run on one CPU only (its affinity, e.g.
//!   under `taskset -c 1`): two threads would take turns;
//! - `target`: the section's goals, `value` = the measured ratio, `unit` = MET or MISS (SKIP and
//!   a NaN value for the scaling goal when it was not measured).

use crate::{median, Opts, Row};

#[path = "alloc_workload.rs"]
pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use workload::{p2p_pool, p2p_pool_arenas, Alloc, BTreeFit, Bitmap, Churn, Stopwatch, REGION};

const SECTION: &str = "alloc";
const REFERENCE: &str = "bitmap-first-fit (ref)";

/// Pairs per second of `c` over one round of at least `secs` of CPU time, growing `chunk` (the
/// pairs per timing) until a round is that long.
fn round<A: Alloc>(c: &mut Churn<A>, chunk: &mut u64, secs: f64) -> f64 {
    let t = Stopwatch::start();
    let mut done = 0u64;
    loop {
        c.pairs(*chunk);
        done += *chunk;
        let s = t.secs();
        if s >= secs {
            return done as f64 / s;
        }
        *chunk = (*chunk * 2).min(1 << 20);
    }
}

/// `samples` largest-free readings, taken each time the churn brings the fill back to 50%.
fn largest<A: Alloc>(c: &mut Churn<A>, samples: usize) -> Vec<f64> {
    (0..samples)
        .map(|_| {
            c.pairs(5_000);
            c.fill_to_half();
            c.alloc.largest_free() as f64
        })
        .collect()
}

/// One seed: every allocator churns in turn for `rounds` rounds of `secs`. Returns, per
/// allocator (the pool as built, the pool with one arena, then `r` and `t`), the per-round
/// rates, and the largest-free samples.
fn seed_run<P: Alloc, R: Alloc, T: Alloc>(
    (p, p1, r, t): (P, P, R, T),
    seed: u64,
    rounds: usize,
    secs: f64,
    samples: usize,
) -> [(Vec<f64>, Vec<f64>); 4] {
    let (mut p, mut p1, mut r, mut t) = (
        Churn::new(p, seed),
        Churn::new(p1, seed),
        Churn::new(r, seed),
        Churn::new(t, seed),
    );
    // reach the steady state
    p.pairs(20_000);
    p1.pairs(20_000);
    r.pairs(20_000);
    t.pairs(20_000);
    let mut chunks = [1_000u64; 4];
    let mut rates: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        rates[0].push(round(&mut p, &mut chunks[0], secs));
        rates[1].push(round(&mut p1, &mut chunks[1], secs));
        rates[2].push(round(&mut r, &mut chunks[2], secs));
        rates[3].push(round(&mut t, &mut chunks[3], secs));
    }
    let [a, a1, b, c] = rates;
    [
        (a, largest(&mut p, samples)),
        (a1, largest(&mut p1, samples)),
        (b, largest(&mut r, samples)),
        (c, largest(&mut t, samples)),
    ]
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (seeds, rounds, secs, samples) = if opts.quick {
        (1u64, 5, 0.01, 8)
    } else {
        (5, 10, 0.03, 16)
    };
    let variants = ["p2p-tlsf", "p2p-tlsf 1 arena", REFERENCE, "btree-best-fit"];
    let ref_i = variants.iter().position(|v| *v == REFERENCE).unwrap();
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut ratios: [Vec<f64>; 4] = Default::default();
    let mut largests: [Vec<f64>; 4] = Default::default();
    for seed in 1..=seeds {
        let runs = seed_run(
            (
                p2p_pool(),
                p2p_pool_arenas(1),
                Bitmap::new(),
                BTreeFit::new(),
            ),
            seed,
            rounds,
            secs,
            samples,
        );
        for i in 0..4 {
            // paired: the ratio within each round
            for (x, r) in runs[i].0.iter().zip(&runs[ref_i].0) {
                ratios[i].push(x / r);
            }
            rates[i].extend(&runs[i].0);
            largests[i].extend(&runs[i].1);
        }
    }
    let rate: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    let ratio: Vec<f64> = ratios.iter_mut().map(|v| median(v)).collect();
    let largest: Vec<f64> = largests.iter_mut().map(|v| median(v)).collect();
    let mut rows = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        rows.push(Row {
            section: SECTION,
            case: "churn@50%".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: v.to_string(),
            value: rate[i],
            unit: "pairs/s",
            ratio: Some(ratio[i]),
        });
    }
    for (i, v) in variants.iter().enumerate() {
        rows.push(Row {
            section: SECTION,
            case: "largest@50%".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: v.to_string(),
            value: largest[i],
            unit: "bytes",
            ratio: Some(largest[i] / largest[ref_i]),
        });
    }
    let speed = ratio[0];
    let frag = largest[0] / largest[ref_i];
    let (scale_rounds, window) = if opts.quick { (7, 0.004) } else { (15, 0.01) };
    // Two threads on one CPU take turns: there is no scaling to measure, only rounds to drop.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let measured = cpus >= 2;
    let variants: &[(&str, Option<usize>)] = if measured {
        &[
            ("p2p-tlsf", Some(0)),
            ("p2p-tlsf 1 arena", Some(1)),
            ("control: a pool each", None),
        ]
    } else {
        &[]
    };
    let mut scaling = f64::NAN;
    for &(name, arenas) in variants {
        let s = scale(arenas, scale_rounds, window);
        if arenas == Some(0) {
            scaling = s.ratio;
        }
        for (case, variant, value, unit, ratio) in [
            ("scale@25%", "1 thread", s.one, "pairs/s", Some(1.0)),
            ("scale@25%", "2 threads", s.two, "pairs/s", Some(s.ratio)),
            ("scale-spread", "min 2t/1t", s.min, "x", None),
            ("scale-spread", "max 2t/1t", s.max, "x", None),
            (
                "scale-spread",
                "rounds dropped",
                s.dropped as f64,
                "rounds",
                None,
            ),
        ] {
            rows.push(Row {
                section: SECTION,
                case: case.into(),
                bytes: REGION as u64,
                misalign: "-".into(),
                variant: format!("{name} {variant}"),
                value,
                unit,
                ratio,
            });
        }
    }
    let scale_goal = if measured {
        "2 threads >= 1.7x 1 thread".to_string()
    } else {
        format!("2 threads >= 1.7x 1 thread: not measured, {cpus} CPU available")
    };
    for (what, ratio, goal) in [
        ("p2p pairs/s >= 10x bitmap".to_string(), speed, 10.0),
        ("p2p largest@50% >= bitmap".to_string(), frag, 1.0),
        (scale_goal, scaling, 1.7),
    ] {
        rows.push(Row {
            section: SECTION,
            case: "target".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: what,
            value: ratio,
            unit: target_tag(ratio, goal),
            ratio: None,
        });
    }
    rows
}

/// `MET` or `MISS` for a measured ratio against its goal; `SKIP` for one not measured (NaN).
fn target_tag(ratio: f64, goal: f64) -> &'static str {
    if ratio.is_nan() {
        "SKIP"
    } else if ratio >= goal {
        "MET"
    } else {
        "MISS"
    }
}

/// Scaling figures: median rates of one and of two threads, and the median, least and greatest
/// per-round ratio of the two.
struct Scale {
    one: f64,
    two: f64,
    ratio: f64,
    min: f64,
    max: f64,
    /// Rounds run again because a thread did not run for most of them.
    dropped: usize,
}

/// Pairs per timing between looks at the stop flag.
const CHUNK: u64 = 256;

/// Two worker threads, each churning its own 25% of one pool (with `arenas` arenas; `None`: of a
/// pool of its own, the control, which shares nothing and so shows what the machine allows):
/// `rounds` rounds of one thread (worker 0) and of both, each `window` seconds of wall-clock time.
fn scale(arenas: Option<usize>, rounds: usize, window: f64) -> Scale {
    let pool = p2p_pool_arenas(arenas.unwrap_or(1));
    // `start` and `stop` hold the number of the round the workers may start and must stop
    let (start, stop) = (AtomicU64::new(0), AtomicU64::new(0));
    // per thread and round: pairs, and seconds of CPU time
    let (done_tx, done_rx) = mpsc::channel::<(u64, f64)>();
    let mut dropped = 0;
    let mut ones = Vec::new();
    let mut twos = Vec::new();
    let mut ratios = Vec::new();
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let cmds: Vec<mpsc::Sender<u64>> = (0..2u64)
            .map(|w| {
                let (tx, rx) = mpsc::channel::<u64>();
                let pool = match arenas {
                    Some(_) => pool.clone(),
                    None => p2p_pool_arenas(1),
                };
                let (start, stop) = (&start, &stop);
                let (done, ready) = (done_tx.clone(), ready_tx.clone());
                s.spawn(move || {
                    let mut c = Churn::with_fill(pool, 7 + w, REGION / 4, workload::BAND / 2);
                    c.pairs(20_000);
                    ready.send(()).unwrap();
                    for round in rx {
                        while start.load(Ordering::Acquire) < round {
                            std::hint::spin_loop();
                        }
                        let cpu = Stopwatch::start();
                        let mut pairs = 0u64;
                        while stop.load(Ordering::Relaxed) < round {
                            c.pairs(CHUNK);
                            pairs += CHUNK;
                        }
                        done.send((pairs, cpu.secs())).unwrap();
                    }
                });
                tx
            })
            .collect();
        for _ in 0..2 {
            ready_rx.recv().unwrap();
        }
        let mut round = 0;
        // pairs per second of wall-clock time of `threads` threads, or `None` if one of them
        // ran for less than 90% of the window
        let mut run = |threads: usize| -> Option<f64> {
            round += 1;
            for cmd in &cmds[..threads] {
                cmd.send(round).unwrap();
            }
            let t = std::time::Instant::now();
            start.store(round, Ordering::Release);
            std::thread::sleep(std::time::Duration::from_secs_f64(window));
            stop.store(round, Ordering::Relaxed);
            let secs = t.elapsed().as_secs_f64();
            let got: Vec<(u64, f64)> = (0..threads).map(|_| done_rx.recv().unwrap()).collect();
            got.iter()
                .all(|g| g.1 >= 0.9 * secs)
                .then(|| got.iter().map(|g| g.0).sum::<u64>() as f64 / secs)
        };
        let _ = run(2); // warm-up
        let mut tries = 0;
        while ones.len() < rounds && tries < 50 * rounds {
            tries += 1;
            match (run(1), run(2)) {
                (Some(one), Some(two)) => {
                    ones.push(one);
                    twos.push(two);
                    ratios.push(two / one);
                }
                _ => dropped += 1,
            }
        }
        if ones.is_empty() {
            (ones, twos, ratios) = (vec![f64::NAN], vec![f64::NAN], vec![f64::NAN]);
        }
        drop(cmds);
    });
    let min = ratios.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
    let max = ratios.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
    Scale {
        one: median(&mut ones),
        two: median(&mut twos),
        ratio: median(&mut ratios),
        min,
        max,
        dropped,
    }
}
