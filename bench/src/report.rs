//! The figures of one run and a verdict per target of issue 3 ("Speed and scale"). A measuring tool: a
//! missed target is reported, never asserted.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;
use trust_proto::ingest::v1 as pb;

use trust_bench::cpu::Usage;
use trust_bench::figures::{latency_line, mb, percentile, rate, thousands, write_rows};
use trust_bench::publish::Published;

use crate::Mode;
use crate::copy::CopyRate;
use crate::ingest::Memory;
use crate::load::Receipt;
use crate::workload::{INDICATORS, Plan, quarter_label};

pub const BATCHED_TARGET: f64 = 100_000.0;
pub const SINGLE_TARGET: f64 = 30_000.0;
pub const LATENCY_RATE: u64 = 10_000;
pub const LATENCY_P99_TARGET: Duration = Duration::from_millis(100);
pub const RSS_TARGET_MB: f64 = 150.0;

/// Everything one run measured.
pub struct Run {
    pub mode: Mode,
    pub rate: u64,
    pub batch_size: usize,
    pub batch_observations: Vec<u64>,
    pub max_seconds: u64,
    pub history_load: Option<Duration>,
    pub published: Published,
    pub receipts: Vec<Option<Receipt>>,
    pub memory: Memory,
    pub cpu: Usage,
    pub copy: Result<CopyRate, String>,
    /// The service exited during the run (it should not).
    pub ingest_died: Option<String>,
    pub ingest_stop: String,
}

/// Figures derived from a run.
struct Figures {
    batches: usize,
    published_batches: usize,
    published_observations: u64,
    publish_elapsed: Option<Duration>,
    receipted: usize,
    accepted: usize,
    not_accepted: Vec<(usize, pb::SubmissionOutcome, Option<String>)>,
    stored: u64,
    end_to_end: Option<Duration>,
    latencies: Vec<Duration>,
    /// (when, observations stored) of each ACCEPTED receipt, in arrival order.
    arrivals: Vec<(Instant, u64)>,
}

impl Run {
    fn figures(&self) -> Figures {
        let first_publish = self.published.at.iter().flatten().min().copied();
        let published_batches = self.published.at.iter().flatten().count();
        let published_observations = self
            .published
            .at
            .iter()
            .zip(&self.batch_observations)
            .filter(|(at, _)| at.is_some())
            .map(|(_, n)| n)
            .sum();
        let receipted = self.receipts.iter().flatten().count();
        let mut accepted = 0;
        let mut stored = 0;
        let mut not_accepted = Vec::new();
        let mut last_receipt: Option<Instant> = None;
        let mut latencies = Vec::new();
        let mut arrivals = Vec::new();
        for (k, receipt) in self.receipts.iter().enumerate() {
            let Some(receipt) = receipt else { continue };
            last_receipt = Some(last_receipt.map_or(receipt.at, |t| t.max(receipt.at)));
            if receipt.outcome == pb::SubmissionOutcome::Accepted {
                accepted += 1;
                stored += receipt.stored;
                arrivals.push((receipt.at, receipt.stored));
            } else {
                not_accepted.push((k, receipt.outcome, receipt.first_rejection.clone()));
            }
            if let Some(Some(at)) = self.published.at.get(k) {
                latencies.push(receipt.at.saturating_duration_since(*at));
            }
        }
        latencies.sort();
        arrivals.sort_by_key(|(at, _)| *at);
        Figures {
            batches: self.batch_observations.len(),
            published_batches,
            published_observations,
            publish_elapsed: first_publish
                .zip(self.published.last_ack)
                .map(|(first, last)| last.saturating_duration_since(first)),
            receipted,
            accepted,
            not_accepted,
            stored,
            end_to_end: first_publish
                .zip(last_receipt)
                .map(|(first, last)| last.saturating_duration_since(first)),
            latencies,
            arrivals,
        }
    }

    /// A receipt that was not ACCEPTED, or the service dying, is a failed run (a missed target is not).
    pub fn failed(&self) -> bool {
        let figures = self.figures();
        !figures.not_accepted.is_empty() || self.ingest_died.is_some()
    }

    pub fn render(&self, plan: &Plan) -> String {
        let f = self.figures();
        let mut out = String::new();
        let throughput = f
            .end_to_end
            .filter(|d| !d.is_zero())
            .map(|d| f.stored as f64 / d.as_secs_f64());
        let _ = writeln!(out, "\n== ingest-bench: mode {} ==", self.mode.name());
        let _ = writeln!(
            out,
            "catalogue: {INDICATORS} indicators x {} clusters (under 5 areas under 1 city) = {} series; \
             {} run quarters per series, {}..{}",
            plan.clusters,
            thousands(plan.series()),
            plan.run_periods,
            quarter_label(plan.first_run_quarter),
            quarter_label(plan.current_quarter),
        );
        let history = match self.history_load {
            Some(took) => format!(
                "{} rows preloaded by COPY in {:.1} s ({} in the run's series, {} archive indicators)",
                thousands(plan.history.rows),
                took.as_secs_f64(),
                thousands(plan.history.in_run_series),
                plan.history.archive_indicators
            ),
            None => "none".to_owned(),
        };
        let _ = writeln!(out, "history: {history}");
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |name: &str, value: String| rows.push((name.to_owned(), value));
        row(
            "submitted",
            format!(
                "{} observations in {} batches of {}{}",
                thousands(plan.observations),
                thousands(f.batches as u64),
                thousands(self.batch_size as u64),
                match self.mode {
                    Mode::Latency => format!(", paced at {} obs/s", thousands(self.rate)),
                    _ => String::new(),
                }
            ),
        );
        row(
            "published (JetStream acked)",
            match f.publish_elapsed {
                Some(d) => format!(
                    "{} obs in {} batches, {:.2} s ({} obs/s)",
                    thousands(f.published_observations),
                    thousands(f.published_batches as u64),
                    d.as_secs_f64(),
                    rate(f.published_observations as f64, d)
                ),
                None => "nothing acknowledged".to_owned(),
            },
        );
        row(
            "receipts",
            format!(
                "{} of {} batches; {} ACCEPTED, {} other",
                thousands(f.receipted as u64),
                thousands(f.batches as u64),
                thousands(f.accepted as u64),
                f.not_accepted.len()
            ),
        );
        row(
            "stored and evaluated",
            format!("{} observations (per ACCEPTED receipts)", thousands(f.stored)),
        );
        row(
            "end to end",
            match f.end_to_end {
                Some(d) => format!("{:.2} s from first publish to last receipt", d.as_secs_f64()),
                None => "no receipt".to_owned(),
            },
        );
        row(
            "ingest throughput",
            throughput.map_or_else(|| "n/a".to_owned(), |t| format!("{} obs/s", thousands(t as u64))),
        );
        let copy_rate = self
            .copy
            .as_ref()
            .ok()
            .filter(|c| !c.elapsed.is_zero())
            .map(|c| c.rows as f64 / c.elapsed.as_secs_f64());
        row(
            "raw COPY, same rows",
            match (&self.copy, copy_rate) {
                (Ok(copy), Some(copy_rate)) => format!(
                    "{} rows in {:.2} s = {} rows/s{}",
                    thousands(copy.rows),
                    copy.elapsed.as_secs_f64(),
                    thousands(copy_rate as u64),
                    // Paced runs measure latency; their throughput is the offered rate, not a capacity.
                    throughput
                        .filter(|_| self.mode != Mode::Latency)
                        .map_or_else(String::new, |t| format!(
                            "; ingest is {:.2}% of COPY (COPY {:.0}x faster)",
                            t / copy_rate * 100.0,
                            copy_rate / t
                        ))
                ),
                (Err(err), _) => format!("not measured: {err}"),
                _ => "not measured".to_owned(),
            },
        );
        row("receipt rate over the run", rate_over_time(&f.arrivals));
        row("latency per batch", latency_summary(&f.latencies));
        row(
            "ingest memory",
            format!(
                "peak VmRSS {:.1} MB over {} samples (200 ms), VmHWM {:.1} MB, RSS at start {:.1} MB",
                mb(self.memory.peak_rss_kb),
                self.memory.samples,
                mb(self.memory.hwm_kb),
                mb(self.memory.first_rss_kb)
            ),
        );
        row(
            "CPU while measured",
            format!(
                "ingest {:.1} s, Postgres backends of this database {:.1} s; machine {:.0}% busy \
                 (steal {:.0}%) of {} cores",
                self.cpu.service_secs,
                self.cpu.postgres_secs,
                self.cpu.machine_busy * 100.0,
                self.cpu.machine_steal * 100.0,
                self.cpu.cores
            ),
        );
        row("ingest process", self.ingest_stop.clone());
        write_rows(&mut out, &rows);

        let complete = f.receipted == f.batches;
        if !complete {
            let _ = writeln!(
                out,
                "\nINCOMPLETE: {} of {} batches receipted within --max-seconds {}{}; figures are for what completed.",
                f.receipted,
                f.batches,
                self.max_seconds,
                self.published
                    .stopped
                    .as_ref()
                    .map_or_else(String::new, |s| format!(" (publishing: {s})"))
            );
        }
        if let Some(died) = &self.ingest_died {
            let _ = writeln!(out, "\nFAILURE: indicator-ingest exited during the run. {died}");
        }
        if !f.not_accepted.is_empty() {
            let _ = writeln!(
                out,
                "\nFAILURE: {} receipts were not ACCEPTED (every batch is valid, so each should be).",
                f.not_accepted.len()
            );
            for (k, outcome, reason) in f.not_accepted.iter().take(5) {
                let _ = writeln!(
                    out,
                    "  batch {k}: {}{}",
                    outcome.as_str_name(),
                    reason.as_ref().map_or_else(String::new, |r| format!(" ({r})"))
                );
            }
        }

        let _ = writeln!(out, "\nverdicts against issue 3, \"Speed and scale\":");
        for line in self.verdicts(&f, throughput) {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    fn verdicts(&self, f: &Figures, throughput: Option<f64>) -> Vec<String> {
        let throughput_line = |what: &str, target: f64| match throughput {
            Some(t) => format!(
                "{what}: {} obs/s (target {}) {}",
                thousands(t as u64),
                thousands(target as u64),
                if t >= target {
                    "MEETS TARGET"
                } else {
                    "BELOW TARGET"
                }
            ),
            None => format!(
                "{what}: no receipt, nothing to judge (target {})",
                thousands(target as u64)
            ),
        };
        let mut lines = Vec::new();
        lines.push(match self.mode {
            Mode::Batched => throughput_line("batched throughput", BATCHED_TARGET),
            _ => "batched throughput: not measured by this run (--mode batched)".to_owned(),
        });
        lines.push(match self.mode {
            Mode::Single => throughput_line("one observation per message", SINGLE_TARGET),
            _ => "one observation per message: not measured by this run (--mode single)".to_owned(),
        });
        lines.push(match self.mode {
            Mode::Latency => self.latency_verdict(f, throughput),
            _ => format!(
                "latency at {} obs/s: not measured by this run (--mode latency --rate {})",
                thousands(LATENCY_RATE),
                LATENCY_RATE
            ),
        });
        let peak = mb(self.memory.peak_rss_kb.max(self.memory.hwm_kb));
        lines.push(format!(
            "ingest memory: peak RSS {peak:.1} MB (target under {RSS_TARGET_MB:.0} MB) {}",
            if peak < RSS_TARGET_MB {
                "MEETS TARGET"
            } else {
                "OVER TARGET"
            }
        ));
        lines.push(
            "throughput flat from 1M to 10M stored observations: not judged by one run; compare \
             --history 1000000 with --history 10000000"
                .to_owned(),
        );
        lines
    }

    fn latency_verdict(&self, f: &Figures, throughput: Option<f64>) -> String {
        let Some(p99) = percentile(&f.latencies, 99.0) else {
            return "latency: no receipt, nothing to judge".to_owned();
        };
        let p99_ms = p99.as_secs_f64() * 1000.0;
        let kept_up = throughput.is_some_and(|t| t >= self.rate as f64 * 0.95);
        let keep_up_note = if kept_up {
            String::new()
        } else {
            format!(
                "; ingest did not keep up with the offered {} obs/s (achieved {} obs/s), so latency grows with \
                 the length of the run",
                thousands(self.rate),
                thousands(throughput.unwrap_or(0.0) as u64)
            )
        };
        let verdict = if p99 >= LATENCY_P99_TARGET {
            "OVER TARGET"
        } else if self.rate >= LATENCY_RATE && kept_up {
            "MEETS TARGET"
        } else {
            "NOT SHOWN (target is defined at 10,000 obs/s)"
        };
        format!(
            "latency p99: {p99_ms:.0} ms at {} obs/s offered (target under {} ms at {} obs/s) {verdict}{keep_up_note}",
            thousands(self.rate),
            LATENCY_P99_TARGET.as_millis(),
            thousands(LATENCY_RATE)
        )
    }
}

/// Stored observations per second between receipts, over the first and the last quarter of the receipts:
/// a falling rate means the run slows as the tables grow.
fn rate_over_time(arrivals: &[(Instant, u64)]) -> String {
    if arrivals.len() < 8 {
        return "too few receipts to compare".to_owned();
    }
    let segment = |from: usize, to: usize| {
        let stored: u64 = arrivals[from + 1..=to].iter().map(|(_, n)| n).sum();
        rate(
            stored as f64,
            arrivals[to].0.saturating_duration_since(arrivals[from].0),
        )
    };
    let n = arrivals.len();
    format!(
        "first quarter of receipts {} obs/s, last quarter {} obs/s",
        segment(0, n / 4),
        segment(n - 1 - n / 4, n - 1)
    )
}

fn latency_summary(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "no receipt".to_owned();
    }
    format!(
        "publish -> receipt: {} ({} batches)",
        latency_line(sorted),
        sorted.len()
    )
}
