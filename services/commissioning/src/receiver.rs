//! Bus adapter: what happens to an escalation (`<service>.escalation.raised` / `.resolved`). A raise about an
//! indicator opens (or reopens) the concern of its key; a resolve closes the occurrence it names. Which of
//! those an event does to the occurrence held is decided by [`domain::on_raised`] and
//! [`domain::on_resolved`]. Escalations that are not about an indicator are not this register's business.

use prost::Message;
use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::alerting::v1 as alerting;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::domain::{self, Concern, EventKind, OnRaised, OnResolved};
use crate::store;

/// Keeps the indicator-concern register from `trust.alerting.v1` escalation events.
#[derive(Debug, Default)]
pub struct EscalationsReceiver;

impl EscalationsReceiver {
    pub fn new() -> Self {
        Self
    }
}

impl MessageHandler for EscalationsReceiver {
    async fn handle(&self, conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        match EventKind::from_subject(delivery.subject) {
            Some(EventKind::Raised) => raised(conn, delivery).await,
            Some(EventKind::Resolved) => resolved(conn, delivery).await,
            None => {
                tracing::debug!(
                    subject = delivery.subject,
                    "not an escalation event this register reads; skipped"
                );
                Ok(())
            }
        }
    }
}

fn undecodable(delivery: &Delivery<'_>, message_type: &str, err: prost::DecodeError) -> HandlerError {
    HandlerError::Permanent(format!(
        "{} payload is not a {message_type}: {err}",
        delivery.subject
    ))
}

fn invalid(delivery: &Delivery<'_>, err: domain::InvalidEscalation) -> HandlerError {
    HandlerError::Permanent(format!(
        "{} breaks the escalation contract: {err}",
        delivery.subject
    ))
}

/// A concurrent replica inserted the key first; a retry decides against what it stored.
fn inserted_concurrently(concern: &Concern) -> HandlerError {
    HandlerError::Transient(format!(
        "concern {} was stored concurrently; retrying",
        concern.dedup_key
    ))
}

/// The event's own time, or the time it was received when the producer left it unset.
fn event_time(at: Option<OffsetDateTime>, field: &str, delivery: &Delivery<'_>) -> OffsetDateTime {
    at.unwrap_or_else(|| {
        tracing::warn!(
            subject = delivery.subject,
            field,
            "escalation without its time; using the time received"
        );
        OffsetDateTime::now_utc()
    })
}

async fn raised(conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
    let event = alerting::EscalationRaised::decode(delivery.payload)
        .map_err(|err| undecodable(delivery, "trust.alerting.v1.EscalationRaised", err))?;
    let raised = domain::read_raised(&event).map_err(|err| invalid(delivery, err))?;
    let Some(concern) = raised.concern else {
        tracing::debug!(dedup_key = %raised.dedup_key, "escalation raised is not about an indicator; skipped");
        return Ok(());
    };
    let raised_at = event_time(raised.raised_at, "raised_at", delivery);
    let held = store::lock_held(conn, &concern.dedup_key).await?;
    let decision = domain::on_raised(held.as_ref(), &concern.occurrence_id, raised_at);
    match decision {
        OnRaised::Insert => {
            if !store::insert(conn, &concern, Some(raised_at), None).await? {
                return Err(inserted_concurrently(&concern));
            }
        }
        OnRaised::Reopen => store::replace(conn, &concern, Some(raised_at), None).await?,
        OnRaised::Complete => store::complete_raise(conn, &concern, raised_at).await?,
        OnRaised::Duplicate | OnRaised::Older => {}
    }
    tracing::info!(
        dedup_key = %concern.dedup_key,
        occurrence_id = %concern.occurrence_id,
        indicator = %concern.indicator_code,
        locality = %concern.locality_code,
        ?decision,
        "indicator concern raised"
    );
    Ok(())
}

async fn resolved(conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
    let event = alerting::EscalationResolved::decode(delivery.payload)
        .map_err(|err| undecodable(delivery, "trust.alerting.v1.EscalationResolved", err))?;
    let resolved = domain::read_resolved(&event).map_err(|err| invalid(delivery, err))?;
    let resolved_at = event_time(resolved.resolved_at, "resolved_at", delivery);
    let held = store::lock_held(conn, &resolved.dedup_key).await?;
    let decision = domain::on_resolved(held.as_ref(), &resolved.occurrence_id, resolved_at);
    match (decision, &resolved.concern) {
        // The held occurrence is an indicator concern, whether or not its resolve repeats the subject.
        (OnResolved::Resolve, _) => {
            store::resolve(conn, &resolved.dedup_key, &resolved.occurrence_id, resolved_at).await?;
        }
        (OnResolved::InsertResolved, Some(concern)) => {
            if !store::insert(conn, concern, None, Some(resolved_at)).await? {
                return Err(inserted_concurrently(concern));
            }
        }
        (OnResolved::ReplaceResolved, Some(concern)) => {
            store::replace(conn, concern, None, Some(resolved_at)).await?;
        }
        (OnResolved::InsertResolved | OnResolved::ReplaceResolved, None) => {
            tracing::debug!(dedup_key = %resolved.dedup_key, "escalation resolved is not about an indicator; skipped");
            return Ok(());
        }
        (OnResolved::Duplicate | OnResolved::Older, _) => {}
    }
    tracing::info!(
        dedup_key = %resolved.dedup_key,
        occurrence_id = %resolved.occurrence_id,
        ?decision,
        "indicator concern resolved"
    );
    Ok(())
}
