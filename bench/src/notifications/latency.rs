//! Mode `latency`: escalation raises published at a steady rate, each a new alert routed to one responsible
//! person; per event, the time from handing it to JetStream to the SMTP sink accepting its email.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use async_nats::jetstream;
use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trust_bench::database::Database;
use trust_bench::publish::{Outgoing, Published, publish};
use trust_runtime::bus::Namespace;
use uuid::Uuid;

use crate::service::{self, ROLE, SCHEMA};
use crate::smtp_sink::SmtpSink;

pub struct Plan {
    pub rate: u64,
    pub warmup_events: usize,
    pub measured_events: usize,
    pub people: usize,
    pub window: usize,
    pub drain: Duration,
}

impl Plan {
    pub fn total(&self) -> usize {
        self.warmup_events + self.measured_events
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Default)]
pub struct EventOutcome {
    pub published: Option<Instant>,
    /// Every time the sink accepted an email of this event's delivery (more than one: a duplicate).
    pub accepted: Vec<Instant>,
    /// When the consumer's transaction that queued the event's email began (`delivery.created_at`), on
    /// the benchmark's clock.
    pub queued: Option<Instant>,
}

pub struct LatencyRun {
    pub published: Published,
    /// Per event, in publishing order; the first `warmup_events` are the warm-up.
    pub events: Vec<EventOutcome>,
    /// Emails the sink accepted that belong to no event of the run (should be none).
    pub strays: usize,
    /// Deliveries by state (pending, sent, failed) at the end.
    pub states: Vec<(String, i64)>,
    /// When the measured phase started and ended (first measured publish; last acceptance or the drain
    /// deadline).
    pub measured_from: Option<Instant>,
    /// Emails whose recipient was not the person responsible for the event's indicator.
    pub misaddressed: usize,
    pub drained: bool,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The event `k` of a run: a new alert about indicator `IND<k mod people>`.
fn event(run: &str, k: usize, people: usize) -> Outgoing {
    let key = format!("bench/latency/{run}/{k:07}");
    let raised = service::raise(key.clone(), service::indicator_code(k % people), "L001".into());
    Outgoing {
        id: key,
        payload: Bytes::from(raised.encode_to_vec()),
    }
}

pub async fn measure(
    plan: &Plan,
    js: &jetstream::Context,
    namespace: &str,
    sink: &SmtpSink,
    database: &Database,
) -> Result<LatencyRun> {
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    // Encoded before the clock starts.
    let outgoing: Vec<Outgoing> = (0..plan.total()).map(|k| event(&run, k, plan.people)).collect();
    let subject = Namespace::new(namespace).subject(service::RAISED_SUBJECT);
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(1) as f64);
    // Publishing stops at the deadline only if JetStream stalls far beyond the offered schedule.
    let schedule = interval.mul_f64(plan.total() as f64);
    let deadline = Instant::now() + schedule * 2 + Duration::from_secs(30);
    let before = sink.count();
    let published = publish(
        js,
        &subject,
        service::RAISED_TYPE,
        &outgoing,
        plan.window,
        Some(interval),
        deadline,
        &CancellationToken::new(),
    )
    .await;
    let sent = published.at.iter().flatten().count();
    eprintln!(
        "  published {sent} events{}; waiting up to {} s for their emails...",
        published
            .stopped
            .as_ref()
            .map_or_else(String::new, |s| format!(" (stopped: {s})")),
        plan.drain.as_secs()
    );
    let drained = sink.wait_for(before + sent, Instant::now() + plan.drain).await;
    // A moment for any duplicate to arrive after the last first copy.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut conn = database.connect_as(ROLE, SCHEMA).await?;
    let keys: Vec<(Uuid, String, f64)> =
        sqlx::query_as("SELECT id, dedup_key, EXTRACT(EPOCH FROM created_at)::float8 FROM delivery")
            .fetch_all(&mut conn)
            .await
            .context("reading the deliveries")?;
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM delivery GROUP BY state ORDER BY state")
            .fetch_all(&mut conn)
            .await?;
    // The database's clock (same machine) onto the benchmark's: an instant and the wall clock read together.
    let (anchor_instant, anchor_unix) = (Instant::now(), unix_now());
    let instant_of = |unix: f64| {
        let ago = Duration::try_from_secs_f64(anchor_unix - unix).unwrap_or(Duration::ZERO);
        anchor_instant.checked_sub(ago).unwrap_or(anchor_instant)
    };
    let queued_of: HashMap<&str, Instant> = keys
        .iter()
        .map(|(_, key, created)| (key.as_str(), instant_of(*created)))
        .collect();
    let key_of: HashMap<Uuid, &str> = keys.iter().map(|(id, key, _)| (*id, key.as_str())).collect();
    let index: HashMap<&str, usize> = outgoing
        .iter()
        .enumerate()
        .map(|(k, o)| (o.id.as_str(), k))
        .collect();
    let mut events: Vec<EventOutcome> = published
        .at
        .iter()
        .zip(&outgoing)
        .map(|(at, o)| EventOutcome {
            published: *at,
            accepted: Vec::new(),
            queued: queued_of.get(o.id.as_str()).copied(),
        })
        .collect();
    let mut strays = 0;
    let mut misaddressed = 0;
    for accepted in sink.accepted() {
        let event = accepted
            .message_id
            .split_once('@')
            .and_then(|(id, _)| Uuid::parse_str(id).ok())
            .and_then(|id| key_of.get(&id))
            .and_then(|key| index.get(key));
        match event {
            Some(&k) => {
                let meant = format!("{}@bench.localhost", service::staff_code(k % plan.people));
                if accepted.recipients != [meant] {
                    misaddressed += 1;
                }
                events[k].accepted.push(accepted.at);
            }
            None => strays += 1,
        }
    }
    let measured_from = published
        .at
        .iter()
        .skip(plan.warmup_events)
        .flatten()
        .min()
        .copied();
    Ok(LatencyRun {
        published,
        events,
        strays,
        states,
        measured_from,
        misaddressed,
        drained,
    })
}
