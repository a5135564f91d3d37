//! Mode `ladders`: many open alerts whose escalation ladders come due over a window; how late the ladder
//! scheduler queues each due step, and how late its email reaches the SMTP sink.
//!
//! Each alert's first level tells the person responsible when it fires; its second level tells them again
//! (escalated) after the wait of the alert's bucket. A step's delivery is named `escalated/1/<due unix
//! second>` by the scheduler; the exact due time is the ladder's `next_due`, read once every alert is open.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream;
use bytes::Bytes;
use clap::ValueEnum;
use notifications::domain::Escalation;
use prost::Message;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trust_bench::database::Database;
use trust_bench::publish::{Outgoing, publish};
use trust_proto::alerting::v1::EscalationRaised;
use trust_runtime::bus::Namespace;
use uuid::Uuid;

use crate::service::{self, Buckets, ROLE, SCHEMA};
use crate::smtp_sink::SmtpSink;

/// How the alerts are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Load {
    /// Published on JetStream and consumed by the service, as in production (one transaction per pulled
    /// group).
    Bus,
    /// The service's own handler (`receiver::apply_events`, what the consumer runs) called by the benchmark
    /// over several connections, many events per transaction: the same rows, much sooner.
    Direct,
}

impl Load {
    pub fn name(self) -> &'static str {
        match self {
            Load::Bus => "bus",
            Load::Direct => "direct",
        }
    }
}

pub struct Plan {
    pub alerts: usize,
    pub people: usize,
    pub buckets: Buckets,
    pub load: Load,
    pub load_connections: usize,
    pub window: usize,
    pub drain: Duration,
}

/// One escalation step as queued and sent.
#[derive(Debug, Clone)]
pub struct Step {
    /// Seconds after the due time (negative would be early; clamped at 0 when reported).
    pub queued_late: f64,
    pub sent_late: Option<f64>,
    pub due: f64,
    pub queued: f64,
    /// Only the whole second of the due time was known (the step came due before `next_due` was read).
    pub coarse: bool,
}

pub struct LadderRun {
    pub load: Load,
    pub load_took: Duration,
    pub alerts_open: i64,
    /// Due times of the escalation steps, unix seconds: earliest and latest.
    pub due_window: Option<(f64, f64)>,
    /// Steps of escalation already queued when `next_due` was read (their due time is known to the second).
    pub early_steps: i64,
    pub steps: Vec<Step>,
    /// Worst lag sampled every second: how long the earliest due, unclaimed ladder had been waiting.
    pub worst_sampled_lag: f64,
    /// Emails the sink accepted in all (the alerts' first-level emails and the escalations).
    pub emails_accepted: usize,
    pub states: Vec<(String, i64)>,
    pub drained: bool,
    pub measured: Duration,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn raise(run: &str, k: usize, plan: &Plan) -> EscalationRaised {
    service::raise(
        format!("bench/ladders/{run}/{k:07}"),
        service::indicator_code(k % plan.people),
        service::bucket_locality(k % plan.buckets.count),
    )
}

pub async fn measure(
    plan: &Plan,
    js: &jetstream::Context,
    namespace: &str,
    sink: &SmtpSink,
    database: &Database,
) -> Result<LadderRun> {
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut conn = database.connect_as(ROLE, SCHEMA).await?;
    eprintln!("  opening {} alerts ({} load)...", plan.alerts, plan.load.name());
    let started = Instant::now();
    match plan.load {
        Load::Bus => load_by_bus(plan, &run, js, namespace, &mut conn).await?,
        Load::Direct => load_directly(plan, &run, database).await?,
    }
    let load_took = started.elapsed();
    let alerts_open: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_ladder WHERE next_due IS NOT NULL")
        .fetch_one(&mut conn)
        .await?;
    eprintln!(
        "  {alerts_open} alerts open in {:.1} s; reading their ladders' due times",
        load_took.as_secs_f64()
    );
    // Ladders whose escalation is still to come (those already escalated wait a day for a repeat).
    let due: Vec<(String, f64)> = sqlx::query_as(
        "SELECT l.dedup_key, EXTRACT(EPOCH FROM l.next_due)::float8 FROM alert_ladder l \
         WHERE l.next_due IS NOT NULL \
           AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.dedup_key = l.dedup_key AND d.step <> '')",
    )
    .fetch_all(&mut conn)
    .await?;
    let early_steps: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery WHERE step <> ''")
        .fetch_one(&mut conn)
        .await?;
    let due_of: HashMap<String, f64> = due.into_iter().collect();
    let last_due = due_of.values().copied().fold(now_unix(), f64::max);
    let first_due = due_of.values().copied().fold(f64::MAX, f64::min).min(last_due);
    if early_steps > 0 {
        eprintln!(
            "  note: {early_steps} steps came due while loading (raise --first-wait to measure every step exactly)"
        );
    }

    // Until every alert's step is queued and every email is accepted (first levels and steps), or the
    // drain time after the last step's due time.
    let expected_steps = plan.alerts;
    let expected_emails = 2 * expected_steps;
    let deadline_unix = last_due.max(now_unix()) + plan.drain.as_secs_f64();
    let measuring = Instant::now();
    eprintln!(
        "  steps come due over {:.0} s from {:.0} s from now; waiting for them and their emails...",
        (last_due - first_due).max(0.0),
        (first_due - now_unix()).max(0.0)
    );
    let mut worst_sampled_lag: f64 = 0.0;
    let mut next_report = Instant::now() + Duration::from_secs(15);
    let drained = loop {
        let lag: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM now() - min(next_due))::float8 FROM alert_ladder WHERE next_due <= now()",
        )
        .fetch_one(&mut conn)
        .await?;
        worst_sampled_lag = worst_sampled_lag.max(lag.unwrap_or(0.0));
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery WHERE step <> ''")
            .fetch_one(&mut conn)
            .await?;
        let accepted = sink.count();
        if usize::try_from(queued).unwrap_or(0) >= expected_steps && accepted >= expected_emails {
            break true;
        }
        if now_unix() > deadline_unix {
            break false;
        }
        if Instant::now() >= next_report {
            eprintln!(
                "  {queued} of {expected_steps} steps queued, {accepted} of {expected_emails} emails accepted, \
                 scheduler lag now {:.1} s",
                lag.unwrap_or(0.0)
            );
            next_report += Duration::from_secs(15);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let measured = measuring.elapsed();

    // The sink's clock, in unix seconds: an instant and the wall clock read together.
    let (anchor_instant, anchor_unix) = (Instant::now(), now_unix());
    let unix_of = |at: Instant| anchor_unix - anchor_instant.saturating_duration_since(at).as_secs_f64();
    let accepted_at: HashMap<Uuid, f64> = sink
        .accepted()
        .into_iter()
        .filter_map(|a| {
            let id = Uuid::parse_str(a.message_id.split_once('@')?.0).ok()?;
            Some((id, unix_of(a.at)))
        })
        .collect();
    let rows: Vec<(Uuid, String, String, f64)> = sqlx::query_as(
        "SELECT id, dedup_key, step, EXTRACT(EPOCH FROM created_at)::float8 FROM delivery WHERE step <> ''",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut steps = Vec::with_capacity(rows.len());
    for (id, dedup_key, step, queued) in rows {
        let second: f64 = step
            .rsplit('/')
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| anyhow!("delivery {id}: step {step:?} does not end with its due time"))?
            as f64;
        let exact = due_of.get(&dedup_key).copied().filter(|d| d.floor() == second);
        let due = exact.unwrap_or(second);
        steps.push(Step {
            queued_late: queued - due,
            sent_late: accepted_at.get(&id).map(|at| at - due),
            due,
            queued,
            coarse: exact.is_none(),
        });
    }
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM delivery GROUP BY state ORDER BY state")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    Ok(LadderRun {
        load: plan.load,
        load_took,
        alerts_open,
        due_window: (!steps.is_empty()).then(|| {
            let first = steps.iter().map(|s| s.due).fold(f64::MAX, f64::min);
            let last = steps.iter().map(|s| s.due).fold(f64::MIN, f64::max);
            (first, last)
        }),
        early_steps,
        steps,
        worst_sampled_lag,
        emails_accepted: sink.count(),
        states,
        drained,
        measured,
    })
}

/// Publish every raise as fast as JetStream takes them, then wait until the service has opened them all.
async fn load_by_bus(
    plan: &Plan,
    run: &str,
    js: &jetstream::Context,
    namespace: &str,
    conn: &mut PgConnection,
) -> Result<()> {
    let outgoing: Vec<Outgoing> = (0..plan.alerts)
        .map(|k| {
            let raised = raise(run, k, plan);
            Outgoing {
                id: raised.dedup_key.clone(),
                payload: Bytes::from(raised.encode_to_vec()),
            }
        })
        .collect();
    let subject = Namespace::new(namespace).subject(service::RAISED_SUBJECT);
    let published = publish(
        js,
        &subject,
        service::RAISED_TYPE,
        &outgoing,
        plan.window,
        None,
        Instant::now() + Duration::from_secs(3600),
        &CancellationToken::new(),
    )
    .await;
    if let Some(stopped) = published.stopped {
        return Err(anyhow!("publishing the alerts stopped: {stopped}"));
    }
    let expected = i64::try_from(plan.alerts)?;
    let mut next_report = Instant::now() + Duration::from_secs(15);
    loop {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_ladder")
            .fetch_one(&mut *conn)
            .await?;
        if open >= expected {
            return Ok(());
        }
        if Instant::now() >= next_report {
            eprintln!("  {open} of {expected} alerts open");
            next_report += Duration::from_secs(15);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Events per transaction when loading directly.
const DIRECT_CHUNK: usize = 100;

/// Apply every raise with the service's own handler, `load_connections` transactions at once.
async fn load_directly(plan: &Plan, run: &str, database: &Database) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let events: Arc<Vec<Escalation>> = Arc::new(
        (0..plan.alerts)
            .map(|k| Escalation::Raised(raise(run, k, plan)))
            .collect(),
    );
    let mut loaders = JoinSet::new();
    for _ in 0..plan.load_connections.max(1) {
        let mut conn = database.connect_as(ROLE, SCHEMA).await?;
        let (next, events) = (Arc::clone(&next), Arc::clone(&events));
        // Built-in templates, no links: what the bench measures is the ladder, not the email's looks.
        let composer = notifications::email_templates::EmailComposer::new(None);
        loaders.spawn(async move {
            loop {
                let from = next.fetch_add(DIRECT_CHUNK, Ordering::Relaxed);
                if from >= events.len() {
                    break;
                }
                let mut tx = conn.begin().await?;
                let chunk = &events[from..(from + DIRECT_CHUNK).min(events.len())];
                notifications::receiver::apply_events(&mut tx, &composer, chunk).await?;
                tx.commit().await?;
            }
            conn.close().await?;
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(loaded) = loaders.join_next().await {
        loaded
            .context("a loader panicked")?
            .context("opening alerts through receiver::apply_events")?;
    }
    Ok(())
}
