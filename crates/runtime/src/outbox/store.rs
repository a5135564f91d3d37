use sqlx::{PgConnection, Postgres, Transaction};

use super::OutboxMessage;
use crate::bus::MessageHeaders;

/// Write `message` into the outbox as part of the caller's transaction. Writing the same message id twice
/// keeps the first.
pub async fn enqueue(conn: &mut PgConnection, message: &OutboxMessage) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox_message (message_id, subject, payload, headers) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&message.message_id)
    .bind(&message.subject)
    .bind(&message.payload)
    .bind(sqlx::types::Json(&message.headers))
    .execute(conn)
    .await?;
    Ok(())
}

/// Write many messages in one statement, as [`enqueue`] does one.
pub async fn enqueue_many(conn: &mut PgConnection, messages: &[OutboxMessage]) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_slice()).collect();
    let headers: Vec<String> = messages
        .iter()
        .map(|m| serde_json::to_string(&m.headers))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO outbox_message (message_id, subject, payload, headers) \
         SELECT i, s, p, h::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) AS m (i, s, p, h) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&subjects)
    .bind(&payloads)
    .bind(&headers)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) struct PendingRow {
    pub id: i64,
    pub message: OutboxMessage,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    message_id: String,
    subject: String,
    payload: Vec<u8>,
    headers: sqlx::types::Json<MessageHeaders>,
}

/// Lock up to `limit` unpublished messages, oldest first; other relays skip them.
pub(super) async fn claim_pending(
    tx: &mut Transaction<'static, Postgres>,
    limit: i64,
) -> Result<Vec<PendingRow>, sqlx::Error> {
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, message_id, subject, payload, headers FROM outbox_message \
         WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| PendingRow {
            id: row.id,
            message: OutboxMessage {
                message_id: row.message_id,
                subject: row.subject,
                payload: row.payload,
                headers: row.headers.0,
            },
        })
        .collect())
}

pub(super) async fn mark_published(
    tx: &mut Transaction<'static, Postgres>,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox_message SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn record_failure(
    tx: &mut Transaction<'static, Postgres>,
    id: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox_message SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Age in seconds of the oldest unpublished message (0 when none): the relay's lag.
pub(super) async fn oldest_pending_age(conn: &mut PgConnection) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) FROM outbox_message \
         WHERE published_at IS NULL",
    )
    .fetch_one(conn)
    .await
}
