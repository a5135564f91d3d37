//! Watches the ladder scheduler from beside it: when escalation steps are overdue by more than
//! `escalation.stall_alert_secs` (the scheduler has stopped, or something holds the ladders it needs), it
//! raises an alert about itself through the normal path — routed like any other, first level told at once
//! without the scheduler — and resolves it when the steps are on time again. Escalations must not stop
//! silently. (If the whole service or its database is down, the `ladder_scheduler_overdue_seconds` gauge
//! going stale is for Prometheus to alert on.)

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use trust_proto::alerting::v1::{EscalationRaised, EscalationResolved, Severity};

use crate::domain::{AlertState, Escalation};
use crate::email_templates::EmailComposer;
use crate::receiver::apply;
use crate::store;

/// The deduplication key of the alert about a stalled scheduler.
pub const STALLED_KEY: &str = "notifications/scheduler-stalled";
pub const STALLED_RULE: &str = "scheduler-stalled";

pub struct SchedulerWatchdog {
    pool: PgPool,
    email: Arc<EmailComposer>,
    every: Duration,
    stall_after: Duration,
}

impl SchedulerWatchdog {
    pub fn new(pool: PgPool, email: Arc<EmailComposer>, every: Duration, stall_after: Duration) -> Self {
        Self {
            pool,
            email,
            every,
            stall_after,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), String> {
        loop {
            if let Err(err) = self.check().await {
                tracing::warn!(error = %err, "scheduler watchdog check failed; will retry");
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// One look: raise or resolve the alert about the scheduler as the overdue steps say.
    pub async fn check(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let now = OffsetDateTime::now_utc();
        let (oldest, overdue) = store::overdue_ladders(&mut tx, now).await?;
        let behind = oldest.map_or(Duration::ZERO, |due| {
            Duration::try_from(now - due).unwrap_or(Duration::ZERO)
        });
        metrics::gauge!("ladder_scheduler_overdue_seconds").set(behind.as_secs_f64());
        let firing = store::lock_alert(&mut tx, STALLED_KEY)
            .await?
            .filter(|alert| alert.state == AlertState::Firing);
        match firing {
            None if behind > self.stall_after => {
                raise(&mut tx, &self.email, now, behind, overdue).await?;
            }
            Some(alert) if behind <= self.stall_after => {
                resolve(&mut tx, &self.email, alert.occurrence_id).await?;
            }
            _ => {}
        }
        tx.commit().await
    }
}

async fn raise(
    tx: &mut PgConnection,
    email: &EmailComposer,
    now: OffsetDateTime,
    behind: Duration,
    overdue: i64,
) -> Result<(), sqlx::Error> {
    tracing::error!(
        behind_secs = behind.as_secs(),
        overdue,
        "escalation steps are overdue: the ladder scheduler has stalled"
    );
    let event = Escalation::Raised(EscalationRaised {
        dedup_key: STALLED_KEY.to_owned(),
        occurrence_id: format!("stalled/{}", now.unix_timestamp()),
        source: crate::SERVICE.to_owned(),
        rule: STALLED_RULE.to_owned(),
        severity: Severity::Critical.into(),
        summary: format!(
            "Escalations are not being sent on time: {overdue} escalation step(s) are overdue, the oldest by \
             {} s. The notifications ladder scheduler has stalled (a stuck database lock or a failing \
             replica); staff who should have been told more senior are not being told. Check the \
             notifications pods and their logs.",
            behind.as_secs()
        ),
        raised_at: Some(trust_runtime::grpc::timestamp(now)),
        subject: None,
    });
    apply(tx, email, &event).await?;
    Ok(())
}

async fn resolve(
    tx: &mut PgConnection,
    email: &EmailComposer,
    occurrence_id: String,
) -> Result<(), sqlx::Error> {
    tracing::info!("escalation steps are on time again: the ladder scheduler has recovered");
    let event = Escalation::Resolved(EscalationResolved {
        dedup_key: STALLED_KEY.to_owned(),
        occurrence_id,
        source: crate::SERVICE.to_owned(),
        rule: STALLED_RULE.to_owned(),
        summary: "Escalation steps are being sent on time again.".to_owned(),
        resolved_at: Some(trust_runtime::grpc::timestamp(OffsetDateTime::now_utc())),
        subject: None,
    });
    apply(tx, email, &event).await?;
    Ok(())
}
