//! The consumer of escalations: "what happens to an escalation" is [`apply`]. It runs inside the consumer's
//! transaction, so the alert, the queued emails and the processed message id commit together; sending is
//! left to the delivery worker, so a slow mail relay never holds up the bus.

use std::collections::HashMap;

use sqlx::PgConnection;
use trust_proto::alerting::v1::{EscalationRaised, Severity};
use trust_runtime::dead_letter::ParkedMessage;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::domain::cover::{self, Answering};
use crate::domain::{self, Escalation, EventKind, Transition};
use crate::store;

/// Applies escalation events from the ESCALATIONS stream.
#[derive(Debug, Clone, Default)]
pub struct EscalationReceiver;

impl EscalationReceiver {
    pub fn new() -> Self {
        Self
    }
}

/// The rule of the alert notifications raises about an escalation event it had to park.
pub const UNPROCESSABLE_EVENT_RULE: &str = "unprocessable-event";

/// An alert about a parked event, for the default route's owners: the event itself reached nobody.
fn alert_about_parked(parked: &ParkedMessage<'_>) -> Escalation {
    Escalation::Raised(EscalationRaised {
        dedup_key: format!("notifications/{UNPROCESSABLE_EVENT_RULE}/{}", parked.message_id),
        occurrence_id: format!("parked/{}", parked.message_id),
        source: crate::SERVICE.to_owned(),
        rule: UNPROCESSABLE_EVENT_RULE.to_owned(),
        severity: Severity::Warning as i32,
        summary: format!(
            "An escalation event on {} (message {}) could not be processed and was parked in the dead-letter \
             table, so whoever it was meant for has not been told: {}. Fix the sender, then replay it with \
             `trustctl dead-letters`.",
            parked.subject, parked.message_id, parked.error
        ),
        raised_at: None,
        subject: None,
    })
}

impl MessageHandler for EscalationReceiver {
    async fn on_parked<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        parked: &'a ParkedMessage<'a>,
    ) -> Result<(), HandlerError> {
        let queued = apply(conn, &alert_about_parked(parked)).await?;
        tracing::warn!(
            message_id = parked.message_id,
            queued,
            "escalation event parked; the default route's owners are told"
        );
        Ok(())
    }

    async fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let event = Escalation::decode(delivery.subject, delivery.payload)
            .map_err(|err| HandlerError::Permanent(err.to_string()))?;
        apply(conn, &event).await?;
        Ok(())
    }
}

/// Record the event on its alert and queue an email for each person to tell. Returns how many emails were
/// newly queued (0 for a repeat of an event already handled).
pub async fn apply(conn: &mut PgConnection, event: &Escalation) -> Result<u64, sqlx::Error> {
    let current = store::lock_alert(conn, event.dedup_key()).await?;
    if let Transition::Stale(reason) = event.transition(current.as_ref()) {
        tracing::info!(
            dedup_key = event.dedup_key(),
            occurrence_id = event.occurrence_id(),
            event = event.kind().as_str(),
            reason,
            "ignoring out-of-date escalation event"
        );
        return Ok(0);
    }
    store::upsert_alert(conn, event).await?;

    // Who hears of it, and for whom each is covering.
    let mut answering: Vec<Answering> = Vec::new();
    if event.kind() == EventKind::Resolved {
        // Tell the people who were told it was raised (covers included) that it has cleared.
        answering = store::raised_recipients(conn, event.dedup_key(), event.occurrence_id())
            .await?
            .into_iter()
            .map(|staff_code| Answering {
                staff_code,
                covering_for: None,
            })
            .collect();
    }
    if answering.is_empty() {
        // A raise, or a resolution whose raise reached nobody here: whoever is responsible now, or their
        // cover when they are away.
        let candidates =
            store::candidate_responsibilities(conn, event.indicator_code(), event.locality_code()).await?;
        let responsible =
            domain::select_recipients(&candidates, event.indicator_code(), event.locality_code());
        let presence = store::presence(conn).await?;
        for staff_code in responsible {
            let who = cover::who_answers(&staff_code, &presence);
            if !answering.iter().any(|a| a.staff_code == who.staff_code) {
                answering.push(who);
            }
        }
    }
    let staff_codes: Vec<String> = answering.iter().map(|a| a.staff_code.clone()).collect();
    let covering_for: HashMap<String, String> = answering
        .into_iter()
        .filter_map(|a| a.covering_for.map(|away| (a.staff_code, away)))
        .collect();
    let recipients = store::staff_contacts(conn, &staff_codes).await?;
    if recipients.is_empty() {
        // The alert is recorded all the same (and listed by operators). Issue 4 adds a default route so an
        // escalation always reaches someone; until then a directory without a default contact can miss one.
        tracing::error!(
            dedup_key = event.dedup_key(),
            occurrence_id = event.occurrence_id(),
            indicator_code = event.indicator_code(),
            locality_code = event.locality_code(),
            event = event.kind().as_str(),
            "no staff member is responsible for this escalation; nobody will be emailed"
        );
        return Ok(0);
    }
    let email = domain::render(event);
    let queued = store::queue_deliveries(conn, event, &recipients, &covering_for, &email).await?;
    tracing::info!(
        dedup_key = event.dedup_key(),
        occurrence_id = event.occurrence_id(),
        event = event.kind().as_str(),
        recipients = recipients.len(),
        queued,
        "escalation recorded; emails queued"
    );
    Ok(queued)
}
