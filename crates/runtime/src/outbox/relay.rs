use std::time::Duration;

use async_nats::jetstream;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::OutboxMessage;
use super::store::{self, PendingRow};
use crate::config::OutboxSettings;

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("outbox store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("publishing outbox message {message_id} to {subject}: {reason}")]
    Publish {
        message_id: String,
        subject: String,
        reason: String,
    },
}

/// Publishes the outbox to JetStream.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    jetstream: jetstream::Context,
    settings: OutboxSettings,
    /// NOTIFY channel raised by the outbox trigger: `<schema>_outbox`.
    channel: String,
}

/// Messages locked for publishing. Dropping the batch without `mark_published` releases them unmarked, as a
/// crash would.
pub struct ClaimedBatch {
    tx: Transaction<'static, Postgres>,
    rows: Vec<PendingRow>,
    published: Vec<i64>,
}

impl ClaimedBatch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn messages(&self) -> impl Iterator<Item = &OutboxMessage> {
        self.rows.iter().map(|row| &row.message)
    }

    /// Publish every claimed message, in order, and wait for JetStream's acks. Stops at the first failure;
    /// what was acknowledged before it is still marked by `mark_published`.
    pub async fn publish(&mut self, jetstream: &jetstream::Context) -> Result<(), RelayError> {
        // Send all, then await the acks: one round trip per batch rather than per message.
        let mut pending_acks = Vec::with_capacity(self.rows.len());
        let mut send_failure = None;
        for row in &self.rows {
            let message = &row.message;
            let sent = jetstream
                .publish_with_headers(
                    message.subject.clone(),
                    message.headers.to_nats(),
                    message.payload.clone().into(),
                )
                .await;
            match sent {
                Ok(ack) => pending_acks.push((row.id, ack)),
                Err(err) => {
                    send_failure = Some(self.publish_error(row, err.to_string()));
                    break;
                }
            }
        }
        self.await_acks(pending_acks).await?;
        match send_failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    async fn await_acks(
        &mut self,
        pending: Vec<(i64, jetstream::context::PublishAckFuture)>,
    ) -> Result<(), RelayError> {
        for (id, ack) in pending {
            match ack.await {
                Ok(ack) => {
                    if ack.duplicate {
                        tracing::debug!(outbox_id = id, "JetStream already had this message");
                    }
                    self.published.push(id);
                }
                Err(err) => {
                    let failed = self.rows.iter().find(|row| row.id == id);
                    return Err(match failed {
                        Some(row) => self.publish_error(row, err.to_string()),
                        None => RelayError::Publish {
                            message_id: id.to_string(),
                            subject: String::new(),
                            reason: err.to_string(),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    fn publish_error(&self, row: &PendingRow, reason: String) -> RelayError {
        RelayError::Publish {
            message_id: row.message.message_id.clone(),
            subject: row.message.subject.clone(),
            reason,
        }
    }

    /// Mark what was acknowledged as published, note the failure (if any) on the first unpublished
    /// message, and commit.
    pub async fn mark_published(mut self, failure: Option<&RelayError>) -> Result<usize, RelayError> {
        store::mark_published(&mut self.tx, &self.published).await?;
        if let Some(failure) = failure {
            let first_unpublished = self.rows.iter().find(|row| !self.published.contains(&row.id));
            if let Some(row) = first_unpublished {
                store::record_failure(&mut self.tx, row.id, &failure.to_string()).await?;
            }
        }
        self.tx.commit().await?;
        Ok(self.published.len())
    }
}

impl OutboxRelay {
    pub fn new(pool: PgPool, jetstream: jetstream::Context, settings: OutboxSettings, schema: &str) -> Self {
        Self {
            pool,
            jetstream,
            settings,
            channel: format!("{schema}_outbox"),
        }
    }

    /// Lock the next batch of unpublished messages.
    pub async fn claim(&self) -> Result<ClaimedBatch, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows = store::claim_pending(&mut tx, self.settings.batch_size).await?;
        Ok(ClaimedBatch {
            tx,
            rows,
            published: Vec::new(),
        })
    }

    /// Claim, publish and mark one batch; returns how many were published.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let mut batch = self.claim().await?;
        if batch.is_empty() {
            return Ok(0);
        }
        match batch.publish(&self.jetstream).await {
            Ok(()) => batch.mark_published(None).await,
            Err(err) => {
                batch.mark_published(Some(&err)).await?;
                Err(err)
            }
        }
    }

    /// Publish until the outbox is empty.
    pub async fn flush(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let published = self.relay_once().await?;
            metrics::counter!("outbox_published_total").increment(published as u64);
            if published == 0 {
                return Ok(total);
            }
            total += published;
        }
    }

    /// Relay until `shutdown`, then flush what is left.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(&self.channel).await {
                Ok(()) => Some(listener),
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay cannot LISTEN; polling only");
                    None
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "outbox relay cannot LISTEN; polling only");
                None
            }
        };
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut failures: u32 = 0;
        loop {
            match self.flush().await {
                Ok(_) => failures = 0,
                Err(err) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %err, failures, "outbox relay failed; will retry");
                }
            }
            if let Ok(mut conn) = self.pool.acquire().await
                && let Ok(age) = store::oldest_pending_age(&mut conn).await
            {
                metrics::gauge!("outbox_oldest_pending_seconds").set(age);
            }
            let wait = if failures == 0 {
                poll
            } else {
                self.backoff(failures)
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                notified = wait_for_notification(listener.as_mut()), if failures == 0 => {
                    if notified.is_err() {
                        listener = None;
                    }
                }
            }
        }
        // Graceful shutdown: whatever committed before we were asked to stop goes out now.
        match self.flush().await {
            Ok(count) => tracing::info!(count, "outbox flushed on shutdown"),
            Err(err) => {
                tracing::warn!(error = %err, "outbox flush on shutdown failed; the next start relays it")
            }
        }
        Ok(())
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let delay = Duration::from_millis(self.settings.retry_base_ms.saturating_mul(1u64 << exponent));
        delay.min(Duration::from_secs(self.settings.max_backoff_secs))
    }
}

async fn wait_for_notification(listener: Option<&mut PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
