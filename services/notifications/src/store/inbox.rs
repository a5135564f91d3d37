//! SQL for what people do with alerts and what they see of them: the inbox, the history, resolving by hand.

// Only constant fragments are formatted into these queries; every value is bound.
use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;

use super::{ALERT_COLUMNS, ALERT_FILTER, AlertFilter, AlertRecord, DeliveryRecord};

/// One line of an alert's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryEntry {
    pub at: OffsetDateTime,
    pub occurrence_id: String,
    pub what: String,
    pub by: String,
    pub detail: String,
}

/// Every occurrence's history of an alert, oldest first.
pub async fn alert_history(
    conn: &mut PgConnection,
    dedup_key: &str,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, occurrence_id, what, by, detail FROM alert_history WHERE dedup_key = $1 ORDER BY id",
    )
    .bind(dedup_key)
    .fetch_all(conn)
    .await
}

/// Every delivery of an alert, newest first.
pub async fn deliveries_of(
    conn: &mut PgConnection,
    dedup_key: &str,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {} FROM delivery WHERE dedup_key = $1 ORDER BY created_at DESC, id DESC",
        super::DELIVERY_COLUMNS
    )))
    .bind(dedup_key)
    .fetch_all(conn)
    .await
}

/// An alert in someone's inbox: when they were last told of its current occurrence, at which step, and
/// whom they covered for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRecord {
    #[sqlx(flatten)]
    pub alert: AlertRecord,
    pub last_told_at: OffsetDateTime,
    pub last_step: String,
    pub covering_for: Option<String>,
}

/// The alerts whose current occurrence `staff_code` was told of (by any channel), most recently changed
/// first.
pub async fn inbox(
    conn: &mut PgConnection,
    staff_code: &str,
    filter: AlertFilter<'_>,
    limit: i64,
) -> Result<Vec<InboxRecord>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS}, t.last_told_at, t.last_step, t.covering_for \
         FROM (SELECT DISTINCT ON (dedup_key, occurrence_id) dedup_key, occurrence_id, \
                      created_at AS last_told_at, step AS last_step, covering_for \
               FROM delivery WHERE staff_code = $5 AND event = 'raised' \
               ORDER BY dedup_key, occurrence_id, created_at DESC) t \
         JOIN alert a ON a.dedup_key = t.dedup_key AND a.occurrence_id = t.occurrence_id \
         WHERE {ALERT_FILTER} ORDER BY a.updated_at DESC, a.dedup_key LIMIT $3"
    )))
    .bind(filter.state)
    .bind(filter.dedup_key)
    .bind(limit)
    .bind(filter.also)
    .bind(staff_code)
    .fetch_all(conn)
    .await
}

/// Close a firing alert by hand; false when it is not firing.
pub async fn resolve_by_hand(
    conn: &mut PgConnection,
    dedup_key: &str,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE alert SET state = 'resolved', resolved_at = now(), resolved_by = $2, updated_at = now() \
         WHERE dedup_key = $1 AND state = 'firing'",
    )
    .bind(dedup_key)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The last event recorded on an alert (an encoded raise or resolution).
pub async fn last_event(conn: &mut PgConnection, dedup_key: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT last_event FROM alert WHERE dedup_key = $1")
        .bind(dedup_key)
        .fetch_optional(conn)
        .await
}
