//! Shared benchmark harness: time a closure over a workload, print a side-by-side table with
//! absolutes (records/s, MB/s) and the ratio to a named baseline row measured in the same run.
//!
//! `cargo bench --bench NAME` runs the full workload; `EMBROKER_BENCH_SCALE=0.1` scales record
//! counts down (CI smoke runs). Each measurement is the best of `EMBROKER_BENCH_RUNS` runs
//! (default 3), which is the usual way to report a throughput on a noisy shared machine; rows
//! compared with each other can take their runs in turn (`Report::measure_interleaved`), after
//! `EMBROKER_BENCH_WARMUP` untimed rounds (default 1). `EMBROKER_BENCH_ONLY=text` runs only the
//! rows whose name contains `text` (for `perf` or `valgrind --tool=callgrind` on one row).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

/// One measured row.
#[derive(Clone, Debug)]
pub struct Row {
    pub group: String,
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The row in the same group this one is compared against.
    pub baseline: Option<String>,
    pub note: String,
    /// Every pass's time, in round order, for rows timed by `Report::measure_interleaved`
    /// (empty otherwise): the table then also gives the median of the per-round ratios.
    pub rounds: Vec<Duration>,
}

impl Row {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Multiplies a record count by `EMBROKER_BENCH_SCALE` (default 1).
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("EMBROKER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}

/// Untimed passes of every row before the timed ones in `Report::measure_interleaved`
/// (`EMBROKER_BENCH_WARMUP`, default 1): the first pass of a process pays for page faults,
/// allocator growth and cold caches that later passes do not.
pub fn warmup() -> usize {
    std::env::var("EMBROKER_BENCH_WARMUP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Whether a row named `name` runs: `EMBROKER_BENCH_ONLY` (a substring of row names, for
/// profiling one row under `perf` or callgrind) when set, every row otherwise.
pub fn selected(name: &str) -> bool {
    std::env::var("EMBROKER_BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

pub fn runs() -> usize {
    std::env::var("EMBROKER_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// One row for [`Report::measure_interleaved`]: its labels and sizes as for
/// [`Report::measure`], and one timed pass (set-up untimed, then the work).
pub struct Contender<'a> {
    group: String,
    name: String,
    baseline: Option<String>,
    records: u64,
    bytes: u64,
    run: Box<dyn FnMut() -> Duration + 'a>,
}

impl<'a> Contender<'a> {
    #[allow(clippy::too_many_arguments)] // as `Report::measure`
    pub fn new<S, T>(
        group: &str,
        name: &str,
        baseline: Option<&str>,
        records: u64,
        bytes: u64,
        mut setup: impl FnMut() -> S + 'a,
        mut work: impl FnMut(S) -> T + 'a,
    ) -> Self {
        Contender {
            group: group.into(),
            name: name.into(),
            baseline: baseline.map(str::to_string),
            records,
            bytes,
            run: Box::new(move || {
                let state = setup();
                let start = Instant::now();
                let out = work(state);
                let elapsed = start.elapsed();
                // Dropped after the clock stops, as in `Report::measure`.
                std::hint::black_box(out);
                elapsed
            }),
        }
    }
}

/// Collects rows and prints them.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Runs `setup` then times `work` `runs()` times; keeps the fastest run. A row left out by
    /// `EMBROKER_BENCH_ONLY` is not run (`Duration::MAX`).
    #[allow(clippy::too_many_arguments)] // one row: its labels, its sizes, its two closures
    pub fn measure<S, T>(
        &mut self,
        group: &str,
        name: &str,
        baseline: Option<&str>,
        records: u64,
        bytes: u64,
        mut setup: impl FnMut() -> S,
        mut work: impl FnMut(S) -> T,
    ) -> Duration {
        let mut best = Duration::MAX;
        if !selected(name) {
            return best;
        }
        for _ in 0..runs() {
            let state = setup();
            let start = Instant::now();
            let out = work(state);
            let elapsed = start.elapsed();
            std::hint::black_box(out);
            best = best.min(elapsed);
        }
        self.push(Row {
            group: group.into(),
            name: name.into(),
            records,
            bytes,
            elapsed: best,
            baseline: baseline.map(str::to_string),
            note: String::new(),
            rounds: Vec::new(),
        });
        best
    }

    /// Times `rows` as [`Report::measure`] does, but interleaved: pass `k` of every row runs
    /// before pass `k + 1` of any, in turn forwards and backwards (so no row always follows
    /// the same one and pays for its after-effects: the kernel writing back its pages, a
    /// fragmented heap), after `warmup()` untimed passes. Rows compared with each other then
    /// meet the machine's slow spells (another VM on the host, the kernel's writeback) alike,
    /// instead of one row taking all of a spell and its baseline none. The table gives each
    /// row's best pass and the median of its per-round ratios to its baseline.
    pub fn measure_interleaved(&mut self, rows: Vec<Contender<'_>>) {
        let mut rows: Vec<Contender<'_>> = rows.into_iter().filter(|r| selected(&r.name)).collect();
        let mut times = vec![Vec::new(); rows.len()];
        for round in 0..warmup() + runs() {
            let mut order: Vec<usize> = (0..rows.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let elapsed = (rows[i].run)();
                if round >= warmup() {
                    times[i].push(elapsed);
                }
            }
        }
        for (row, rounds) in rows.into_iter().zip(times) {
            self.push(Row {
                group: row.group,
                name: row.name,
                records: row.records,
                bytes: row.bytes,
                elapsed: rounds.iter().copied().min().unwrap_or(Duration::MAX),
                baseline: row.baseline,
                note: String::new(),
                rounds,
            });
        }
    }

    /// Adds a note comparing two measured rows of `group` (a second baseline for `name`):
    /// the ratio of their best passes and, when interleaved, the median and range of their
    /// per-round ratios. Nothing when either row did not run.
    pub fn compare(&mut self, group: &str, name: &str, baseline: &str) {
        let find = |n: &str| {
            self.rows
                .iter()
                .find(|r| r.group == group && r.name == n && r.note.is_empty())
        };
        let (Some(row), Some(base)) = (find(name), find(baseline)) else {
            return;
        };
        let mut note = format!(
            "{:.0}% of {baseline}",
            100.0 * row.records_per_sec() / base.records_per_sec()
        );
        if let Some((median, lo, hi)) = round_ratios(&base.rounds, &row.rounds) {
            note.push_str(&format!(
                " (per round: median {median:.0}%, {lo:.0}-{hi:.0}% over {})",
                row.rounds.len()
            ));
        }
        self.note(group, name, note);
    }

    /// The measured row `name` of `group`, if it ran.
    pub fn row(&self, group: &str, name: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.group == group && r.name == name && r.note.is_empty())
    }

    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {:<10} {:<44} {:>12.0} rec/s {:>9.1} MB/s",
            row.group,
            row.name,
            row.records_per_sec(),
            row.mb_per_sec()
        );
        self.rows.push(row);
    }

    /// Adds a free-form row (latency figures and the like).
    pub fn note(&mut self, group: &str, name: &str, note: String) {
        eprintln!("  {group:<10} {name:<44} {note}");
        self.rows.push(Row {
            group: group.into(),
            name: name.into(),
            records: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            baseline: None,
            note,
            rounds: Vec::new(),
        });
    }

    /// Prints the table (Markdown, so it can be pasted into the docs).
    pub fn print(&self, title: &str) {
        println!("\n### {title}\n");
        println!("| group | what | records/s | MB/s | time | vs baseline |");
        println!("|---|---|---:|---:|---:|---|");
        for row in &self.rows {
            if !row.note.is_empty() {
                println!("| {} | {} | | | | {} |", row.group, row.name, row.note);
                continue;
            }
            let baseline = row.baseline.as_ref().and_then(|b| {
                self.rows
                    .iter()
                    .find(|r| r.group == row.group && &r.name == b)
            });
            let ratio = baseline
                .map(|b| {
                    let best = format!(
                        "{:.0}% of {}",
                        100.0 * row.records_per_sec() / b.records_per_sec(),
                        b.name
                    );
                    match round_ratios(&b.rounds, &row.rounds) {
                        Some((median, lo, hi)) => format!(
                            "{best} (per round: median {median:.0}%, {lo:.0}-{hi:.0}% over {})",
                            row.rounds.len()
                        ),
                        None => best,
                    }
                })
                .unwrap_or_default();
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.1} ms | {} |",
                row.group,
                row.name,
                row.records_per_sec(),
                row.mb_per_sec(),
                row.elapsed.as_secs_f64() * 1e3,
                ratio
            );
        }
    }
}

/// The ratios (%) of a row's speed to its baseline's, round by round: median, min, max.
fn round_ratios(baseline: &[Duration], row: &[Duration]) -> Option<(f64, f64, f64)> {
    if baseline.len() != row.len() || row.is_empty() {
        return None;
    }
    let mut ratios: Vec<f64> = baseline
        .iter()
        .zip(row)
        .map(|(b, r)| 100.0 * b.as_secs_f64() / r.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    Some((median, ratios[0], ratios[n - 1]))
}

/// Percentiles of a set of latencies.
pub fn percentiles(mut samples: Vec<Duration>, ps: &[f64]) -> Vec<Duration> {
    samples.sort_unstable();
    ps.iter()
        .map(|p| {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let i = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
            samples[i.min(samples.len() - 1)]
        })
        .collect()
}

/// Median of `n` fsyncs of a small append to a scratch file: the machine's own fsync latency.
#[allow(clippy::disallowed_methods)] // a raw fsync is the baseline
pub fn fsync_latency(dir: &std::path::Path, n: usize) -> Duration {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).expect("probe file");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&[0u8; 100]).expect("probe write");
        let start = Instant::now();
        f.sync_data().expect("probe fsync");
        samples.push(start.elapsed());
    }
    percentiles(samples, &[50.0])[0]
}

/// Median of `n` fsyncs (`fdatasync`) of a scratch file in `dir`, each after appending `bytes`
/// bytes: what one group commit of that many bytes costs on this disk.
#[allow(clippy::disallowed_methods)] // a raw fsync is the baseline
pub fn fsync_latency_of(dir: &std::path::Path, bytes: u64, n: usize) -> Duration {
    use std::io::Write;
    let path = dir.join("fsync-probe-sized");
    let mut f = std::fs::File::create(&path).expect("probe file");
    let chunk = vec![0u8; usize::try_from(bytes).unwrap_or(usize::MAX).max(1)];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&chunk).expect("probe write");
        let start = Instant::now();
        f.sync_data().expect("probe fsync");
        samples.push(start.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    percentiles(samples, &[50.0])[0]
}
