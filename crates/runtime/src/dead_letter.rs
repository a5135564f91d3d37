//! The dead-letter table: messages a consumer gave up on, kept with their error until an operator replays
//! them (`trustctl dead-letters replay`).

use sqlx::PgPool;
use thiserror::Error;
use time::OffsetDateTime;

use crate::bus::MessageHeaders;
use crate::outbox::{self, OutboxMessage};

/// A message being parked.
pub struct ParkedMessage<'a> {
    pub consumer: &'a str,
    pub stream: &'a str,
    pub stream_sequence: u64,
    /// Full subject as received.
    pub subject: &'a str,
    pub message_id: &'a str,
    pub headers: &'a MessageHeaders,
    pub payload: &'a [u8],
    pub deliveries: i64,
    pub error: &'a str,
}

/// A row of the dead-letter table.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    pub message_id: String,
    pub deliveries: i32,
    pub error: String,
    pub parked_at: OffsetDateTime,
    pub replayed_at: Option<OffsetDateTime>,
    pub payload_bytes: i32,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("no dead letter with id {0}")]
    NotFound(i64),
    #[error("dead letter {id} was already replayed as {replay_message_id}")]
    AlreadyReplayed { id: i64, replay_message_id: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct ParkedRow {
    consumer: String,
    subject: String,
    message_id: String,
    payload: Vec<u8>,
    headers: sqlx::types::Json<MessageHeaders>,
    replay_message_id: Option<String>,
}

pub async fn park(pool: &PgPool, message: &ParkedMessage<'_>) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    park_in(&mut conn, message).await
}

/// [`park`] inside the caller's transaction.
pub async fn park_in(conn: &mut sqlx::PgConnection, message: &ParkedMessage<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letter (consumer, stream, stream_sequence, subject, message_id, headers, payload, \
         deliveries, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (consumer, message_id) DO UPDATE SET deliveries = EXCLUDED.deliveries, \
         error = EXCLUDED.error, parked_at = now(), replayed_at = NULL, replay_message_id = NULL",
    )
    .bind(message.consumer)
    .bind(message.stream)
    .bind(i64::try_from(message.stream_sequence).unwrap_or(i64::MAX))
    .bind(message.subject)
    .bind(message.message_id)
    .bind(sqlx::types::Json(message.headers))
    .bind(message.payload)
    .bind(i32::try_from(message.deliveries).unwrap_or(i32::MAX))
    .bind(message.error)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(pool: &PgPool, include_replayed: bool) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, consumer, subject, message_id, deliveries, error, parked_at, replayed_at, \
         octet_length(payload) AS payload_bytes FROM dead_letter \
         WHERE $1 OR replayed_at IS NULL ORDER BY id",
    )
    .bind(include_replayed)
    .fetch_all(pool)
    .await
}

/// Re-publish a parked message to its original subject through the outbox, under a new message id (JetStream
/// may still hold the original id in its duplicate window), marked for the consumer that parked it so other
/// consumers of the subject, which processed the original, skip it. Returns the replay's message id. A
/// message is replayed at most once.
pub async fn replay(pool: &PgPool, id: i64) -> Result<String, ReplayError> {
    let mut tx = pool.begin().await?;
    let row: Option<ParkedRow> = sqlx::query_as(
        "SELECT consumer, subject, message_id, payload, headers, replay_message_id FROM dead_letter \
             WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ParkedRow {
        consumer,
        subject,
        message_id,
        payload,
        headers,
        replay_message_id: replayed_as,
    }) = row
    else {
        return Err(ReplayError::NotFound(id));
    };
    if let Some(replay_message_id) = replayed_as {
        return Err(ReplayError::AlreadyReplayed {
            id,
            replay_message_id,
        });
    }
    let replay_message_id = format!("{message_id}:replay:{id}");
    let mut headers = headers.0;
    headers.set_message_id(&replay_message_id);
    headers.set_replay_for(&consumer);
    let message = OutboxMessage {
        message_id: replay_message_id.clone(),
        subject,
        payload,
        headers,
    };
    outbox::enqueue(&mut tx, &message).await?;
    sqlx::query("UPDATE dead_letter SET replayed_at = now(), replay_message_id = $2 WHERE id = $1")
        .bind(id)
        .bind(&replay_message_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(replay_message_id)
}
