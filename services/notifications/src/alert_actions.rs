//! What people do to an alert, from any door (gRPC, an email's acknowledgement link): one place, so the
//! ladder stops the same way whoever acts and however.

use sqlx::PgConnection;
use thiserror::Error;
use time::OffsetDateTime;

use crate::store::{self, AlertRecord};

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

/// Someone is acting on a firing alert: recorded with who, and its ladder stops climbing until the
/// policy's acknowledgement timeout. `note` (e.g. "via email link") goes to the log with it.
pub async fn acknowledge(
    conn: &mut PgConnection,
    dedup_key: &str,
    by: &str,
    note: &str,
) -> Result<AlertRecord, ActionError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(ActionError::Missing {
            field: "by",
            reason: "say who acknowledges (it is kept with the alert)",
        });
    }
    store::lock_alert(conn, dedup_key)
        .await?
        .ok_or_else(|| ActionError::UnknownAlert(dedup_key.to_owned()))?;
    if !store::acknowledge_alert(conn, dedup_key, by).await? {
        return Err(ActionError::NotFiring(dedup_key.to_owned(), "acknowledged"));
    }
    if let Some((occurrence, mut ladder)) = store::lock_ladder(conn, dedup_key).await? {
        ladder.acknowledge(OffsetDateTime::now_utc());
        store::save_ladder(conn, dedup_key, &occurrence, &ladder).await?;
    }
    tracing::info!(dedup_key, by, note = note.trim(), "alert acknowledged");
    store::list_alerts(conn, None, Some(dedup_key), 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ActionError::UnknownAlert(dedup_key.to_owned()))
}
