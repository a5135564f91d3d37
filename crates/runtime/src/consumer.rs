//! Idempotent JetStream consumers. A handler's effect and the id of the message that caused it commit in one
//! transaction; the message is acked only after that commit. A redelivered message whose id is already
//! recorded is acked without running the handler again. A transient failure is nak'd with a growing delay;
//! after the last allowed delivery (or at once, for a permanent failure) the message is parked in the
//! dead-letter table with its error, and terminated so JetStream stops redelivering it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::{MessageHeaders, Namespace, PlatformStream};
use crate::config::ConsumerSettings;
use crate::dead_letter::{self, ParkedMessage};
use crate::error::{Error, Result};
use crate::telemetry::TraceContext;

/// Why a handler could not apply a message.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// Retrying cannot help (e.g. undecodable bytes): park at once.
    #[error("{0}")]
    Permanent(String),
    /// Might succeed later (e.g. a database timeout): nak and retry.
    #[error("{0}")]
    Transient(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Integrity, data and statement errors (SQLSTATE classes 22, 23, 42) fail the same way every time;
    /// connection loss, timeouts, deadlocks and serialization failures may not.
    fn from(err: sqlx::Error) -> Self {
        let permanent = match &err {
            sqlx::Error::Database(db) => {
                matches!(
                    db.code().as_deref().and_then(|c| c.get(..2)),
                    Some("22" | "23" | "42")
                )
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
                true
            }
            _ => false,
        };
        if permanent {
            HandlerError::Permanent(format!("database: {err}"))
        } else {
            HandlerError::Transient(format!("database: {err}"))
        }
    }
}

/// A message as a handler sees it.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// Subject in documented form (namespace removed), e.g. `ingest.submit.pct`.
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub headers: &'a MessageHeaders,
    pub message_id: &'a str,
    /// Trace the message belongs to; events it causes should carry `trace.child()`.
    pub trace: TraceContext,
    /// 1 on first delivery.
    pub delivered: i64,
}

/// What a consumer does with one message. `conn` is inside the transaction that will also record the
/// message as processed: everything the handler writes commits with it or not at all.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// A durable consumer's identity: its name, its stream and the subjects it takes.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub durable: &'static str,
    pub stream: PlatformStream,
    /// Documented-form subject filter, e.g. `ingest.submit.*`.
    pub filter_subject: &'static str,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    AlreadyProcessed,
    /// Nak'd; JetStream redelivers after the delay.
    RetryLater(Duration),
    Parked(String),
}

pub struct IdempotentConsumer<H> {
    pool: PgPool,
    consumer: PullConsumer,
    spec: ConsumerSpec,
    stream_name: String,
    namespace: Namespace,
    settings: ConsumerSettings,
    handler: H,
}

impl<H: MessageHandler> IdempotentConsumer<H> {
    /// Create (or bind to) the durable pull consumer.
    pub async fn create(
        jetstream: &jetstream::Context,
        pool: PgPool,
        namespace: Namespace,
        spec: ConsumerSpec,
        settings: ConsumerSettings,
        handler: H,
    ) -> Result<Self> {
        let stream_name = namespace.stream(spec.stream.name);
        let durable = namespace.stream(spec.durable);
        let stream = jetstream
            .get_stream(&stream_name)
            .await
            .map_err(|e| Error::jetstream(&format!("stream {stream_name}"), e))?;
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            description: Some(format!("{} (idempotent, explicit ack)", spec.durable)),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(settings.ack_wait_secs),
            max_deliver: settings.max_deliver,
            filter_subject: namespace.subject(spec.filter_subject),
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| Error::jetstream(&format!("consumer {durable}"), e))?;
        Ok(Self {
            pool,
            consumer,
            spec,
            stream_name,
            namespace,
            settings,
            handler,
        })
    }

    /// Pull and process messages one at a time until `shutdown`; the message in hand is finished first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let durable = self.spec.durable;
        while !shutdown.is_cancelled() {
            let pulled = self
                .consumer
                .stream()
                .max_messages_per_batch(self.settings.batch_size)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match pulled {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(consumer = durable, error = %err, "cannot pull; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        self.process(message).await;
                    }
                    Some(Err(err)) => {
                        tracing::warn!(consumer = durable, error = %err, "pull stream error");
                        if matches!(err.kind(), pull::MessagesErrorKind::ConsumerDeleted) {
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
        tracing::info!(consumer = durable, "consumer stopped");
        Ok(())
    }

    /// Apply one message and settle it with JetStream.
    pub async fn process(&self, message: jetstream::Message) -> Outcome {
        let outcome = self.apply(&message).await;
        self.settle(&message, &outcome).await;
        outcome
    }

    /// Apply one message without telling JetStream anything: the effect and the processed id commit
    /// together, or the failure is recorded. Dropping the message after this is a crash before ack.
    pub async fn apply(&self, message: &jetstream::Message) -> Outcome {
        let headers = MessageHeaders::from_nats(message.headers.as_ref());
        let (stream_sequence, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(err) => {
                tracing::warn!(error = %err, "message without JetStream metadata");
                (0, 1)
            }
        };
        let message_id = headers
            .message_id()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}:{stream_sequence}", self.stream_name));
        let delivery = Delivery {
            subject: self.namespace.strip(message.subject.as_str()),
            payload: &message.payload,
            headers: &headers,
            message_id: &message_id,
            trace: headers.trace(),
            delivered,
        };
        let span = tracing::info_span!(
            "consume",
            consumer = self.spec.durable,
            subject = delivery.subject,
            message_id = %message_id,
            trace_id = %delivery.trace.trace_id(),
            delivered,
        );
        let result = self
            .apply_in_transaction(&delivery)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        match result {
            Ok(true) => {
                metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "applied").increment(1);
                Outcome::Applied
            }
            Ok(false) => {
                metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "duplicate").increment(1);
                tracing::debug!("already processed; acking without effect");
                Outcome::AlreadyProcessed
            }
            Err(HandlerError::Transient(reason)) if delivered < self.settings.max_deliver => {
                let delay = self.settings.retry_delay(delivered);
                metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "retry").increment(1);
                tracing::warn!(%reason, ?delay, "transient failure; will retry");
                Outcome::RetryLater(delay)
            }
            Err(err) => {
                let reason = match &err {
                    HandlerError::Permanent(reason) => format!("rejected: {reason}"),
                    HandlerError::Transient(reason) => {
                        format!("failed {delivered} deliveries, last error: {reason}")
                    }
                };
                let parked = ParkedMessage {
                    consumer: self.spec.durable,
                    stream: &self.stream_name,
                    stream_sequence,
                    subject: message.subject.as_str(),
                    message_id: &message_id,
                    headers: &headers,
                    payload: &message.payload,
                    deliveries: delivered,
                    error: &reason,
                };
                match dead_letter::park(&self.pool, &parked).await {
                    Ok(()) => {
                        metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "parked").increment(1);
                        tracing::error!(%reason, "message parked in the dead-letter table");
                        Outcome::Parked(reason)
                    }
                    Err(db) => {
                        // Cannot park: leave it to JetStream to redeliver rather than lose it.
                        tracing::error!(%reason, error = %db, "cannot park message; will retry");
                        Outcome::RetryLater(self.settings.retry_delay(delivered))
                    }
                }
            }
        }
    }

    /// Returns true when the handler ran, false when the message had been processed before.
    async fn apply_in_transaction(&self, delivery: &Delivery<'_>) -> Result<bool, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let first_time = sqlx::query(
            "INSERT INTO processed_message (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(self.spec.durable)
        .bind(delivery.message_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first_time {
            tx.rollback().await?;
            return Ok(false);
        }
        self.handler.handle(&mut tx, delivery).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn settle(&self, message: &jetstream::Message, outcome: &Outcome) {
        let kind = match outcome {
            Outcome::Applied | Outcome::AlreadyProcessed => AckKind::Ack,
            Outcome::RetryLater(delay) => AckKind::Nak(Some(*delay)),
            Outcome::Parked(_) => AckKind::Term,
        };
        if let Err(err) = message.ack_with(kind).await {
            // The effect is committed; a redelivery will be recognised as already processed.
            tracing::warn!(error = %err, "could not settle message with JetStream");
        }
    }
}
