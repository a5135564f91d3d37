//! What people do to an alert — acknowledge, resolve by hand, comment — from any door (gRPC, the inbox,
//! `trustctl`): one place, so the ladder and the history change the same way whoever acts and however.

use prost::Message;
use sqlx::PgConnection;
use thiserror::Error;
use time::OffsetDateTime;
use trust_proto::alerting::v1::{
    EscalationRaised, EscalationResolved, escalation_raised, escalation_resolved,
};

use crate::domain::Escalation;
use crate::email_templates::EmailComposer;
use crate::store::{self, AlertFilter, AlertRecord, HistoryEntry};
use crate::telling::tell_of_resolution_now;

#[derive(Debug, Error)]
pub enum ActionError {
    /// A required field is empty.
    #[error("{field}: {reason}")]
    Missing {
        field: &'static str,
        reason: &'static str,
    },
    #[error("no alert {0:?}")]
    UnknownAlert(String),
    #[error("alert {0:?} is not firing: only a firing alert can be {1}")]
    NotFiring(String, &'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn required(value: &str, field: &'static str, reason: &'static str) -> Result<String, ActionError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ActionError::Missing { field, reason });
    }
    Ok(value.to_owned())
}

async fn current(conn: &mut PgConnection, dedup_key: &str) -> Result<AlertRecord, ActionError> {
    store::list_alerts(conn, AlertFilter::key(dedup_key), 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ActionError::UnknownAlert(dedup_key.to_owned()))
}

/// Someone is acting on a firing alert: recorded with who (and an optional note), and its ladder stops
/// climbing until the policy's acknowledgement timeout.
pub async fn acknowledge(
    conn: &mut PgConnection,
    dedup_key: &str,
    by: &str,
    note: &str,
) -> Result<AlertRecord, ActionError> {
    let by = required(by, "by", "say who acknowledges (it is kept with the alert)")?;
    let alert = store::lock_alert(conn, dedup_key)
        .await?
        .ok_or_else(|| ActionError::UnknownAlert(dedup_key.to_owned()))?;
    if !store::acknowledge_alert(conn, dedup_key, &by).await? {
        return Err(ActionError::NotFiring(dedup_key.to_owned(), "acknowledged"));
    }
    for (occurrence, mut ladder) in store::lock_ladders(conn, dedup_key).await? {
        ladder.acknowledge(OffsetDateTime::now_utc());
        store::save_ladder(conn, dedup_key, &occurrence, &ladder).await?;
    }
    store::record_history(
        conn,
        dedup_key,
        &alert.occurrence_id,
        "acknowledged",
        &by,
        note.trim(),
    )
    .await?;
    tracing::info!(dedup_key, by, "alert acknowledged");
    current(conn, dedup_key).await
}

/// Close a firing alert by hand: recorded with who and why, its ladder closed, and everyone told of it hears
/// it was resolved and by whom. The source's own resolution of the same occurrence later tells nobody again;
/// a new raise from the source is a new occurrence and fires.
pub async fn resolve_by_hand(
    conn: &mut PgConnection,
    email: &EmailComposer,
    dedup_key: &str,
    by: &str,
    reason: &str,
) -> Result<AlertRecord, ActionError> {
    let by = required(by, "by", "say who resolves it (it is kept with the alert)")?;
    let reason = required(
        reason,
        "reason",
        "say why it is resolved (it is kept in the history)",
    )?;
    let alert = store::lock_alert(conn, dedup_key)
        .await?
        .ok_or_else(|| ActionError::UnknownAlert(dedup_key.to_owned()))?;
    if !store::resolve_by_hand(conn, dedup_key, &by).await? {
        return Err(ActionError::NotFiring(dedup_key.to_owned(), "resolved"));
    }
    let now = OffsetDateTime::now_utc();
    for (occurrence, mut ladder) in store::lock_ladders(conn, dedup_key).await? {
        ladder.resolve(now);
        store::save_ladder(conn, dedup_key, &occurrence, &ladder).await?;
    }
    store::record_history(
        conn,
        dedup_key,
        &alert.occurrence_id,
        "resolved-by-hand",
        &by,
        &reason,
    )
    .await?;
    let raised = store::last_event(conn, dedup_key)
        .await?
        .and_then(|bytes| EscalationRaised::decode(bytes.as_slice()).ok());
    if let Some(raised) = raised {
        let resolution = Escalation::Resolved(EscalationResolved {
            dedup_key: raised.dedup_key.clone(),
            occurrence_id: raised.occurrence_id.clone(),
            source: raised.source.clone(),
            rule: raised.rule.clone(),
            summary: format!("Resolved by {by}: {reason}. {}", raised.summary),
            resolved_at: Some(trust_runtime::grpc::timestamp(now)),
            subject: raised.subject.map(|subject| match subject {
                escalation_raised::Subject::Indicator(breach) => {
                    escalation_resolved::Subject::Indicator(breach)
                }
            }),
        });
        // Step "" as the source's resolution would use: whichever comes first is the one people get.
        tell_of_resolution_now(conn, email, &resolution, "").await?;
    }
    tracing::info!(dedup_key, by, reason, "alert resolved by hand");
    current(conn, dedup_key).await
}

/// Add a comment to the alert's history.
pub async fn comment(
    conn: &mut PgConnection,
    dedup_key: &str,
    by: &str,
    text: &str,
) -> Result<HistoryEntry, ActionError> {
    let by = required(by, "by", "say who comments")?;
    let text = required(text, "text", "a comment needs text")?;
    let alert = current(conn, dedup_key).await?;
    store::record_history(conn, dedup_key, &alert.occurrence_id, "commented", &by, &text).await?;
    Ok(HistoryEntry {
        at: OffsetDateTime::now_utc(),
        occurrence_id: alert.occurrence_id,
        what: "commented".to_owned(),
        by,
        detail: text,
    })
}
