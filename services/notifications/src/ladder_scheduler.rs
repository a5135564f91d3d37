//! The ladder scheduler: every tick it claims the ladders whose next step is due (`FOR UPDATE SKIP
//! LOCKED`, so two replicas never take the same one), queues that step's emails and saves the ladder, all in
//! one transaction. A step's deliveries are unique per occurrence, step and person, and the step is named
//! by its due time, so a crash before commit repeats the step and sends nothing twice.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use trust_proto::alerting::v1::EscalationRaised;

use crate::domain::Escalation;
use crate::domain::ladder::{Ladder, Reason, Wait};
use crate::email_templates::EmailComposer;
use crate::reference::Reference;
use crate::store::{self, DueLadder, batch};
use crate::telling::{Effects, Telling, city_of};

/// Ladders taken per transaction.
const CLAIM: i64 = 200;

pub struct LadderScheduler {
    pool: PgPool,
    tick: Duration,
    email: Arc<EmailComposer>,
}

impl LadderScheduler {
    pub fn new(pool: PgPool, tick: Duration, email: Arc<EmailComposer>) -> Self {
        Self { pool, tick, email }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), String> {
        loop {
            match self.step_due().await {
                // A full claim means more may be due: go again at once.
                Ok(taken) if i64::try_from(taken).unwrap_or(i64::MAX) >= CLAIM => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "ladder scheduler pass failed; will retry"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.tick) => {}
            }
        }
    }

    /// Take every ladder due now (up to the claim size) one step; returns how many were taken. The claim is
    /// stepped set-wise: what telling reads is read once for it, and its writes go in one statement per
    /// table.
    pub async fn step_due(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let due = store::claim_due_ladders(&mut tx, CLAIM).await?;
        let now = OffsetDateTime::now_utc();
        let lag = due
            .iter()
            .map(|d| (now - d.due).as_seconds_f64())
            .fold(0.0, f64::max);
        metrics::gauge!("ladder_scheduler_lag_seconds").set(lag);
        let taken = due.len();
        if due.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let due: Vec<(DueLadder, Option<Escalation>)> = due
            .into_iter()
            .map(|ladder| {
                let event = EscalationRaised::decode(ladder.last_event.as_slice())
                    .map(Escalation::Raised)
                    .map_err(|err| {
                        // Only a firing alert has a due ladder; a last event that is not a raise cannot be
                        // told.
                        tracing::error!(
                            dedup_key = %ladder.dedup_key,
                            error = %err,
                            "due ladder without a readable raise; closing it"
                        );
                    })
                    .ok();
                (ladder, event)
            })
            .collect();
        let events: Vec<&Escalation> = due.iter().filter_map(|(_, e)| e.as_ref()).collect();
        let reference = Reference::load(&mut tx, &self.email, &events).await?;
        let mut places: Vec<(String, String, String)> = events.iter().filter_map(|e| city_of(e)).collect();
        places.sort();
        places.dedup();
        let city_alerts = batch::firing_city_alerts(&mut tx, &places).await?;
        let telling = Telling {
            reference: &reference,
            city_alerts: &city_alerts,
            email: &self.email,
            now,
        };
        let mut effects = Effects::default();
        for (mut ladder, event) in due {
            match event {
                None => {
                    ladder.ladder.resolve(now);
                }
                Some(event) => {
                    if let Some(step) = ladder.ladder.due(now) {
                        let name = format!(
                            "{}/{}/{}",
                            reason_name(step.reason),
                            step.level,
                            ladder.due.unix_timestamp()
                        );
                        let answering = reference.answering(&event, &step.targets);
                        let why = why_now(step.reason, &ladder.ladder, step.level);
                        telling.tell(
                            &mut effects,
                            &event,
                            &answering,
                            &step.reach,
                            &name,
                            why.as_deref(),
                        );
                    }
                }
            };
            effects.save_ladder(&ladder.dedup_key, &ladder.occurrence_id, ladder.ladder);
        }
        batch::write_effects(&mut tx, &effects).await?;
        tx.commit().await?;
        Ok(taken)
    }
}

/// The line that opens a later step's email: why this person hears of it now.
fn why_now(reason: Reason, ladder: &Ladder, level: usize) -> Option<String> {
    let below = level.checked_sub(1).and_then(|l| ladder.policy.levels.get(l));
    match reason {
        Reason::Escalated => Some(format!(
            "Escalated to you: nobody acknowledged this alert within {} of telling the level before you.",
            below.map_or_else(|| "the time allowed".to_owned(), |l| describe(l.wait))
        )),
        Reason::Repeated => {
            Some("Reminder: this alert is still firing and nobody has acknowledged it.".to_owned())
        }
        Reason::AcknowledgementExpired => Some(
            "This alert was acknowledged but is still unresolved after the acknowledgement timeout."
                .to_owned(),
        ),
        Reason::Fired | Reason::Resolved => None,
    }
}

fn describe(wait: Wait) -> String {
    match wait {
        Wait::Seconds(s) if s % 3_600 == 0 => format!("{} hour(s)", s / 3_600),
        Wait::Seconds(s) if s % 60 == 0 => format!("{} minute(s)", s / 60),
        Wait::Seconds(s) => format!("{s} second(s)"),
        Wait::WorkingDays(d) => format!("{d} working day(s)"),
    }
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Fired => "fired",
        Reason::Escalated => "escalated",
        Reason::Repeated => "repeated",
        Reason::AcknowledgementExpired => "acknowledgement-expired",
        Reason::Resolved => "resolved",
    }
}
