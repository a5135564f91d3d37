//! Batches of deliveries claimed under a lease (the delivery worker without digests).
//!
//! [`claim_batch`] takes up to `limit` due deliveries in one autocommitted statement: their
//! `next_attempt_at` moves to the end of the lease, so nobody else finds them due, and they carry the
//! claimer's token. Each outcome is then written on its own, only while the row still carries that token
//! (`mark_*_claimed` return false when it does not: the lease ran out and someone else took the row).
//! Rows the claimer will not send go back with [`release`]. A claimer that dies leaves its rows to come
//! due again when the lease ends.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{DUE_COLUMNS, DueDelivery};

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Claim up to `limit` due deliveries for `lease` under `token`, earliest due first. Rows another
/// claimer is taking at the same moment are skipped (`SKIP LOCKED`); rows under a live lease are not due.
pub async fn claim_batch(
    conn: &mut PgConnection,
    token: Uuid,
    lease: Duration,
    limit: u32,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "WITH due AS MATERIALIZED ( \
             SELECT id AS due_id, next_attempt_at AS due_at FROM delivery \
             WHERE state = 'pending' AND next_attempt_at <= now() \
             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
         claimed AS ( \
             UPDATE delivery SET next_attempt_at = now() + $2::bigint * interval '1 millisecond', claim = $1 \
             FROM due WHERE id = due.due_id \
             RETURNING {DUE_COLUMNS}, due.due_at) \
         SELECT {DUE_COLUMNS} FROM claimed ORDER BY due_at, id"
    )))
    .bind(token)
    .bind(millis(lease))
    .bind(i64::from(limit.max(1)))
    .fetch_all(conn)
    .await
}

/// Sent: true when recorded, false when the claim was no longer `token`'s.
pub async fn mark_sent_claimed(conn: &mut PgConnection, id: Uuid, token: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE delivery SET state = 'sent', attempts = attempts + 1, sent_at = now(), last_error = NULL, \
                claim = NULL \
         WHERE id = $1 AND claim = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Not sent, try again after `delay`: true when recorded, false when the claim was no longer `token`'s.
pub async fn mark_retry_claimed(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    delay: Duration,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE delivery SET attempts = attempts + 1, last_error = $4, claim = NULL, \
                next_attempt_at = now() + ($3::bigint * interval '1 millisecond') \
         WHERE id = $1 AND claim = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(token)
    .bind(millis(delay))
    .bind(error)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Failed for good: true when recorded, false when the claim was no longer `token`'s.
pub async fn mark_failed_claimed(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE delivery SET state = 'failed', attempts = attempts + 1, last_error = $3, claim = NULL \
         WHERE id = $1 AND claim = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(token)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Give back claimed deliveries that were not sent: due now, unclaimed, no attempt counted. Returns how
/// many were still `token`'s.
pub async fn release(conn: &mut PgConnection, ids: &[Uuid], token: Uuid) -> Result<u64, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE delivery SET next_attempt_at = now(), claim = NULL \
         WHERE id = ANY($1) AND claim = $2 AND state = 'pending'",
    )
    .bind(ids)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(released.rows_affected())
}
