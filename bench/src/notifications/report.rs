//! The figures of one run, with the notifications targets beside them. A measuring tool: a missed
//! target is reported, never asserted.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;
use trust_bench::cpu::Usage;
use trust_bench::figures::{latency_line, percentile, rate, thousands, write_rows};

use crate::ladders::LadderRun;
use crate::latency::{LatencyRun, Plan as LatencyPlan};
use crate::service::{Buckets, ServiceSettings};

/// From an escalation published to the relay accepting its email: p99 under 250 ms at 1,000 a second.
pub const LATENCY_RATE: u64 = 1_000;
pub const LATENCY_P99_TARGET: Duration = Duration::from_millis(250);
/// Open alerts whose ladders run without the timer loop falling behind.
pub const LADDER_ALERTS: usize = 100_000;
/// "Not behind": every due step is queued within a scheduler tick plus this.
pub const LADDER_SLACK: Duration = Duration::from_secs(1);

/// What every report starts with.
pub struct Context {
    pub service: ServiceSettings,
    /// Postgres's version and whether autovacuum runs (dead queue rows stay in the indexes without it).
    pub postgres: String,
    pub people: usize,
    pub cpu: Usage,
    pub service_stop: String,
}

impl Context {
    fn common_rows(&self, rows: &mut Vec<(String, String)>) {
        rows.push((
            "CPU while measured".into(),
            format!(
                "benchmark process (service, publisher and SMTP sink) {:.1} s, Postgres backends of this \
                 database {:.1} s; machine {:.0}% busy (steal {:.0}%) of {} cores",
                self.cpu.service_secs,
                self.cpu.postgres_secs,
                self.cpu.machine_busy * 100.0,
                self.cpu.machine_steal * 100.0,
                self.cpu.cores
            ),
        ));
        rows.push(("service stop".into(), self.service_stop.clone()));
    }

    fn header(&self, out: &mut String, mode: &str) {
        let _ = writeln!(out, "\n== notifications-bench: mode {mode} ==");
        let _ = writeln!(
            out,
            "service: notifications in this process ({}); SMTP sink in this process",
            self.service.describe()
        );
        let _ = writeln!(out, "postgres: {}", self.postgres);
        let _ = writeln!(
            out,
            "directory: {} people, person i responsible for indicator IND<i>; event k is about IND<k mod {}>",
            self.people, self.people
        );
    }
}

fn states_line(states: &[(String, i64)]) -> String {
    if states.is_empty() {
        return "none".to_owned();
    }
    states
        .iter()
        .map(|(state, n)| format!("{} {state}", thousands(u64::try_from(*n).unwrap_or(0))))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

/// Latency figures of the measured events (after the warm-up).
struct LatencyFigures {
    measured: usize,
    published: usize,
    emailed: usize,
    missing: usize,
    duplicates: usize,
    latencies: Vec<Duration>,
    /// (publish, latency) in publishing order.
    timeline: Vec<(Instant, Duration)>,
    /// Publish to the consumer's transaction queueing the email, and from there to the sink accepting it.
    to_queue: Vec<Duration>,
    queue_to_email: Vec<Duration>,
    publish_span: Option<Duration>,
    last_accept: Option<Instant>,
}

impl LatencyRun {
    fn figures(&self, plan: &LatencyPlan) -> LatencyFigures {
        let measured = &self.events[plan.warmup_events.min(self.events.len())..];
        let mut f = LatencyFigures {
            measured: plan.measured_events,
            published: 0,
            emailed: 0,
            missing: 0,
            duplicates: 0,
            latencies: Vec::new(),
            timeline: Vec::new(),
            to_queue: Vec::new(),
            queue_to_email: Vec::new(),
            publish_span: None,
            last_accept: None,
        };
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        for event in measured {
            let Some(published) = event.published else {
                continue;
            };
            f.published += 1;
            first = Some(first.map_or(published, |t| t.min(published)));
            last = Some(last.map_or(published, |t| t.max(published)));
            match event.accepted.iter().min() {
                Some(&accepted) => {
                    f.emailed += 1;
                    f.duplicates += event.accepted.len() - 1;
                    let latency = accepted.saturating_duration_since(published);
                    f.latencies.push(latency);
                    f.timeline.push((published, latency));
                    if let Some(queued) = event.queued {
                        f.to_queue.push(queued.saturating_duration_since(published));
                        f.queue_to_email.push(accepted.saturating_duration_since(queued));
                    }
                    f.last_accept = Some(f.last_accept.map_or(accepted, |t| t.max(accepted)));
                }
                None => f.missing += 1,
            }
        }
        f.publish_span = first.zip(last).map(|(a, b)| b.saturating_duration_since(a));
        f.latencies.sort();
        f.to_queue.sort();
        f.queue_to_email.sort();
        f.timeline.sort_by_key(|(at, _)| *at);
        f
    }

    pub fn render(&self, plan: &LatencyPlan, context: &Context) -> String {
        let f = self.figures(plan);
        let mut out = String::new();
        context.header(&mut out, "latency");
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push((
            "offered".into(),
            format!(
                "{} escalation raises a second: {} warm-up, then {} measured ({} in all), each a new alert \
                 for one person",
                thousands(plan.rate),
                thousands(plan.warmup_events as u64),
                thousands(plan.measured_events as u64),
                thousands(plan.total() as u64)
            ),
        ));
        let achieved = f
            .publish_span
            .filter(|d| !d.is_zero())
            .map(|d| (f.published.saturating_sub(1)) as f64 / d.as_secs_f64());
        rows.push((
            "published (measured)".into(),
            match (f.publish_span, achieved) {
                (Some(span), Some(achieved)) => format!(
                    "{} events over {:.2} s = {} events/s",
                    thousands(f.published as u64),
                    span.as_secs_f64(),
                    thousands(achieved as u64)
                ),
                _ => format!("{} events", thousands(f.published as u64)),
            },
        ));
        rows.push((
            "emails (measured)".into(),
            format!(
                "{} of {} events got an email; {} missing, {} duplicate emails{}{}",
                thousands(f.emailed as u64),
                thousands(f.published as u64),
                f.missing,
                f.duplicates,
                if self.strays > 0 {
                    format!("; {} emails of no event of this run", self.strays)
                } else {
                    String::new()
                },
                if self.misaddressed > 0 {
                    format!(
                        "; {} emails to someone other than the person responsible",
                        self.misaddressed
                    )
                } else {
                    String::new()
                }
            ),
        ));
        let all_missing = self
            .events
            .iter()
            .filter(|e| e.published.is_some() && e.accepted.is_empty())
            .count();
        let all_duplicates: usize = self
            .events
            .iter()
            .map(|e| e.accepted.len().saturating_sub(1))
            .sum();
        rows.push((
            "emails (with warm-up)".into(),
            format!("{all_missing} missing, {all_duplicates} duplicates"),
        ));
        rows.push((
            "email throughput".into(),
            match (self.measured_from, f.last_accept) {
                (Some(from), Some(to)) => format!(
                    "{} emails/s (first measured publish to last email)",
                    rate(f.emailed as f64, to.saturating_duration_since(from))
                ),
                _ => "n/a".into(),
            },
        ));
        rows.push((
            "latency".into(),
            if f.latencies.is_empty() {
                "no email".into()
            } else {
                format!(
                    "publish -> SMTP accepted: {} ({} events)",
                    latency_line(&f.latencies),
                    thousands(f.latencies.len() as u64)
                )
            },
        ));
        if !f.to_queue.is_empty() {
            rows.push((
                "  publish -> queued".into(),
                format!(
                    "{} (to the start of the consumer's transaction that queued the email)",
                    latency_line(&f.to_queue)
                ),
            ));
            rows.push((
                "  queued -> accepted".into(),
                format!(
                    "{} (the delivery queue, claim and SMTP conversation)",
                    latency_line(&f.queue_to_email)
                ),
            ));
        }
        rows.push(("latency over the run".into(), latency_trend(&f.timeline)));
        rows.push(("deliveries at the end".into(), states_line(&self.states)));
        context.common_rows(&mut rows);
        write_rows(&mut out, &rows);
        if !self.drained {
            let _ = writeln!(
                out,
                "\nINCOMPLETE: not every email arrived within --drain-seconds; missing ones are counted as such."
            );
        }
        if let Some(stopped) = &self.published.stopped {
            let _ = writeln!(out, "\nPUBLISHING STOPPED: {stopped}");
        }
        let _ = writeln!(out, "\nverdicts against the notifications targets:");
        let kept_up = achieved.is_some_and(|a| a >= plan.rate as f64 * 0.95);
        let _ = writeln!(out, "  {}", self.latency_verdict(&f, plan, kept_up));
        let exact =
            f.missing == 0 && f.duplicates == 0 && f.published == f.measured && self.misaddressed == 0;
        let _ = writeln!(
            out,
            "  exactly one email per escalation: {} missing, {} duplicates {}",
            f.missing,
            f.duplicates,
            verdict(exact)
        );
        let _ = writeln!(
            out,
            "  100,000 open alerts with ladders running: not measured by this run (--mode ladders)"
        );
        out
    }

    fn latency_verdict(&self, f: &LatencyFigures, plan: &LatencyPlan, kept_up: bool) -> String {
        let Some(p99) = percentile(&f.latencies, 99.0) else {
            return "latency p99: no email, nothing to judge NOT MET".into();
        };
        let target_ms = LATENCY_P99_TARGET.as_millis();
        let judged = if plan.rate < LATENCY_RATE || !kept_up {
            format!(
                "NOT SHOWN (the target is defined at {} events/s{})",
                thousands(LATENCY_RATE),
                if kept_up {
                    ""
                } else {
                    " and publishing did not keep the offered rate"
                }
            )
        } else {
            // Missing emails would hide the slowest: they count against the target.
            verdict(p99 < LATENCY_P99_TARGET && f.missing == 0).to_owned()
        };
        format!(
            "latency p99: {:.0} ms at {} events/s offered (target under {target_ms} ms at {} events/s) {judged}",
            p99.as_secs_f64() * 1000.0,
            thousands(plan.rate),
            thousands(LATENCY_RATE),
        )
    }
}

/// p99 of the first and the last quarter of the events (by publish time): a rising figure means the
/// service falls behind the offered rate.
fn latency_trend(timeline: &[(Instant, Duration)]) -> String {
    if timeline.len() < 40 {
        return "too few events to compare".into();
    }
    let p99_of = |part: &[(Instant, Duration)]| {
        let mut sorted: Vec<Duration> = part.iter().map(|(_, d)| *d).collect();
        sorted.sort();
        percentile(&sorted, 99.0).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let n = timeline.len();
    format!(
        "p99 {:.0} ms in the first quarter of events, {:.0} ms in the last",
        p99_of(&timeline[..n / 4]),
        p99_of(&timeline[n - n / 4..])
    )
}

fn seconds_line(sorted: &[f64]) -> String {
    let at = |p: f64| percentile_f64(sorted, p).unwrap_or(0.0);
    format!(
        "p50 {:.2} s, p95 {:.2} s, p99 {:.2} s, worst {:.2} s",
        at(50.0),
        at(95.0),
        at(99.0),
        at(100.0)
    )
}

impl LadderRun {
    pub fn render(&self, alerts: usize, buckets: &Buckets, context: &Context) -> String {
        let mut out = String::new();
        context.header(&mut out, "ladders");
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push((
            "alerts".into(),
            format!(
                "{} opened ({} load) in {:.1} s = {} alerts/s; {} ladders open",
                thousands(alerts as u64),
                self.load.name(),
                self.load_took.as_secs_f64(),
                rate(alerts as f64, self.load_took),
                thousands(u64::try_from(self.alerts_open).unwrap_or(0))
            ),
        ));
        rows.push((
            "ladder".into(),
            format!(
                "level 1 (responsible) told at once; level 2 (responsible) after {}..{} s, in {} buckets \
                 {} s apart; then nothing for 24 h",
                buckets.wait(0),
                buckets.wait(buckets.count - 1),
                buckets.count,
                buckets.step
            ),
        ));
        let mut queued: Vec<f64> = self.steps.iter().map(|s| s.queued_late.max(0.0)).collect();
        queued.sort_by(f64::total_cmp);
        let mut sent: Vec<f64> = self
            .steps
            .iter()
            .filter_map(|s| s.sent_late)
            .map(|l| l.max(0.0))
            .collect();
        sent.sort_by(f64::total_cmp);
        let coarse = self.steps.iter().filter(|s| s.coarse).count();
        let due_span = self.due_window.map(|(a, b)| b - a);
        rows.push((
            "steps due".into(),
            match due_span {
                Some(span) if span > 0.0 => format!(
                    "{} over {:.0} s = {} steps/s due on average",
                    thousands(alerts as u64),
                    span,
                    thousands((alerts as f64 / span) as u64)
                ),
                _ => format!("{} at once", thousands(alerts as u64)),
            },
        ));
        let queue_span = {
            let first = self.steps.iter().map(|s| s.queued).fold(f64::MAX, f64::min);
            let last = self.steps.iter().map(|s| s.queued).fold(f64::MIN, f64::max);
            (last > first).then_some(last - first)
        };
        rows.push((
            "steps queued".into(),
            format!(
                "{} of {}{}",
                thousands(self.steps.len() as u64),
                thousands(alerts as u64),
                queue_span.map_or_else(String::new, |span| format!(
                    " over {span:.0} s = {} steps/s",
                    thousands((self.steps.len() as f64 / span) as u64)
                ))
            ),
        ));
        rows.push((
            "queued after due".into(),
            format!(
                "{} (delivery created_at - the ladder's next_due{})",
                seconds_line(&queued),
                if coarse > 0 {
                    format!("; {coarse} steps due before the due times were read: to the whole second")
                } else {
                    String::new()
                }
            ),
        ));
        rows.push((
            "queued after due, by due time".into(),
            lateness_trend(&self.steps),
        ));
        rows.push((
            "emailed after due".into(),
            format!(
                "{} ({} of {} step emails accepted by the sink; the alerts' first-level emails share the queue)",
                if sent.is_empty() {
                    "none accepted".to_owned()
                } else {
                    seconds_line(&sent)
                },
                thousands(sent.len() as u64),
                thousands(self.steps.len() as u64)
            ),
        ));
        rows.push((
            "scheduler lag sampled".into(),
            format!(
                "worst {:.2} s (each second: now - the earliest next_due not yet taken)",
                self.worst_sampled_lag
            ),
        ));
        rows.push((
            "emails accepted".into(),
            format!(
                "{} of {} (one at fire, one at the escalation, per alert)",
                thousands(self.emails_accepted as u64),
                thousands(2 * alerts as u64)
            ),
        ));
        rows.push(("deliveries at the end".into(), states_line(&self.states)));
        rows.push((
            "measured".into(),
            format!("{:.0} s after the alerts were open", self.measured.as_secs_f64()),
        ));
        context.common_rows(&mut rows);
        write_rows(&mut out, &rows);
        if self.early_steps > 0 {
            let _ = writeln!(
                out,
                "\nnote: {} steps were queued before the due times were read (loading outlasted --first-wait).",
                self.early_steps
            );
        }
        if !self.drained {
            let _ = writeln!(
                out,
                "\nINCOMPLETE: not every step and email within --drain-seconds of the last due time."
            );
        }
        let _ = writeln!(out, "\nverdicts against the notifications targets:");
        let _ = writeln!(
            out,
            "  latency p99 at 1,000 events/s: not measured by this run (--mode latency)"
        );
        let allowed = Duration::from_millis(context.service.tick_ms) + LADDER_SLACK;
        let worst = queued.last().copied();
        let met = alerts >= LADDER_ALERTS
            && self.steps.len() >= alerts
            && worst.is_some_and(|w| w <= allowed.as_secs_f64());
        let _ = writeln!(
            out,
            "  {} open alerts with ladders running: worst step queued {} after its due time, p99 {} \
             (target: the timer loop does not fall behind, taken as every step queued within a tick + {} s = \
             {:.1} s, at {} open alerts) {}{}",
            thousands(alerts as u64),
            worst.map_or_else(|| "n/a".into(), |w| format!("{w:.2} s")),
            percentile_f64(&queued, 99.0).map_or_else(|| "n/a".into(), |w| format!("{w:.2} s")),
            LADDER_SLACK.as_secs(),
            allowed.as_secs_f64(),
            thousands(LADDER_ALERTS as u64),
            if alerts < LADDER_ALERTS {
                "NOT SHOWN (fewer alerts than the target)"
            } else {
                verdict(met)
            },
            if self.steps.len() < alerts {
                format!("; {} steps never queued", alerts - self.steps.len())
            } else {
                String::new()
            }
        );
        let worst_sent = sent.last().copied();
        let _ = writeln!(
            out,
            "  worst notification sent {} after its due time (reported, not judged: it includes the email queue)",
            worst_sent.map_or_else(|| "n/a".into(), |w| format!("{w:.2} s"))
        );
        out
    }
}

/// Worst queueing lateness among the steps due in the first and in the last quarter of the due window: a
/// rising figure means the scheduler fell further behind as the run went on.
fn lateness_trend(steps: &[crate::ladders::Step]) -> String {
    if steps.len() < 40 {
        return "too few steps to compare".into();
    }
    let mut by_due: Vec<(f64, f64)> = steps.iter().map(|s| (s.due, s.queued_late.max(0.0))).collect();
    by_due.sort_by(|a, b| a.0.total_cmp(&b.0));
    let worst = |part: &[(f64, f64)]| part.iter().map(|(_, l)| *l).fold(0.0, f64::max);
    let n = by_due.len();
    format!(
        "worst {:.2} s among the first quarter due, {:.2} s among the last",
        worst(&by_due[..n / 4]),
        worst(&by_due[n - n / 4..])
    )
}

/// Nearest-rank percentile of sorted seconds.
fn percentile_f64(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}
