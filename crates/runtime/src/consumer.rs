//! Idempotent JetStream consumers. A handler's effect and the id of the message that caused it commit in one
//! transaction; the message is acked only after that commit. A redelivered message whose id is already
//! recorded is acked without running the handler again. A transient failure is nak'd with a growing delay;
//! after the last allowed delivery (or at once, for a permanent failure) the message is parked in the
//! dead-letter table with its error, and terminated so JetStream stops redelivering it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
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

    /// A message is being parked in the dead-letter table (`conn` is the parking transaction): a handler
    /// may record that someone must hear of it. An error here is logged and the message parked anyway.
    fn on_parked<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        parked: &'a ParkedMessage<'a>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        let _ = (conn, parked);
        async { Ok(()) }
    }

    /// Apply several messages, in order, in one transaction (see `consumer.group_max`). An error fails the
    /// whole group: the consumer rolls it back and applies each message alone, so a handler may apply a
    /// group set-wise. The default applies them one after another.
    fn handle_group<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            for delivery in deliveries {
                self.handle(&mut *conn, delivery).await?;
            }
            Ok(())
        }
    }
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

    /// Pull and process messages until `shutdown`, up to `workers` at once; messages in hand are finished
    /// first.
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
            let workers = self.settings.workers.max(1);
            let mut in_flight = FuturesUnordered::new();
            loop {
                if in_flight.len() >= workers {
                    in_flight.next().await;
                    continue;
                }
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        // Whatever else has already arrived joins it, up to the group's limits.
                        let mut group = vec![message];
                        let mut bytes = group[0].payload.len();
                        while group.len() < self.settings.group_max.max(1)
                            && bytes < self.settings.group_max_bytes
                        {
                            match messages.next().now_or_never() {
                                Some(Some(Ok(more))) => {
                                    bytes += more.payload.len();
                                    group.push(more);
                                }
                                Some(Some(Err(err))) => {
                                    tracing::warn!(consumer = durable, error = %err, "pull stream error");
                                    break;
                                }
                                Some(None) | None => break,
                            }
                        }
                        in_flight.push(self.process_group(group));
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
            // Messages in hand are finished (applied and settled) before stopping or pulling again.
            while in_flight.next().await.is_some() {}
        }
        tracing::info!(consumer = durable, "consumer stopped");
        Ok(())
    }

    /// Apply messages that arrived together in one transaction and settle each with JetStream; when the
    /// group fails, each message is applied alone, so one bad message costs only itself.
    pub async fn process_group(&self, group: Vec<jetstream::Message>) {
        if group.len() > 1 {
            match self.apply_group(&group).await {
                Ok(outcomes) => {
                    for (message, outcome) in group.iter().zip(&outcomes) {
                        self.settle(message, outcome).await;
                    }
                    return;
                }
                Err(err) => {
                    tracing::debug!(consumer = self.spec.durable, error = %err, size = group.len(), "group failed; applying its messages one by one");
                }
            }
        }
        for message in group {
            self.process(message).await;
        }
    }

    async fn apply_group(&self, group: &[jetstream::Message]) -> Result<Vec<Outcome>, HandlerError> {
        let received: Vec<(MessageHeaders, String, i64)> = group
            .iter()
            .map(|message| {
                let (headers, id, _, delivered) = self.identify(message);
                (headers, id, delivered)
            })
            .collect();
        let ids: Vec<&str> = received.iter().map(|(_, id, _)| id.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let first_time: Vec<String> = sqlx::query_scalar(
            "INSERT INTO processed_message (consumer, message_id) SELECT $1, id FROM unnest($2::text[]) AS id \
             ON CONFLICT DO NOTHING RETURNING message_id",
        )
        .bind(self.spec.durable)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let first_time: std::collections::HashSet<&str> = first_time.iter().map(String::as_str).collect();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut deliveries = Vec::with_capacity(group.len());
        for (message, (headers, id, delivered)) in group.iter().zip(&received) {
            // The first of two copies of one id in a group is the one applied.
            if first_time.contains(id.as_str())
                && !deliveries.iter().any(|d: &Delivery<'_>| d.message_id == id)
            {
                outcomes.push(Outcome::Applied);
                deliveries.push(Delivery {
                    subject: self.namespace.strip(message.subject.as_str()),
                    payload: &message.payload,
                    headers,
                    message_id: id,
                    trace: headers.trace(),
                    delivered: *delivered,
                });
            } else {
                outcomes.push(Outcome::AlreadyProcessed);
            }
        }
        let span = tracing::info_span!("consume_group", consumer = self.spec.durable, size = group.len());
        self.handler
            .handle_group(&mut tx, &deliveries)
            .instrument(span)
            .await?;
        tx.commit().await?;
        let applied = outcomes.iter().filter(|o| **o == Outcome::Applied).count() as u64;
        metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "applied")
            .increment(applied);
        metrics::counter!("consumer_messages_total", "consumer" => self.spec.durable, "outcome" => "duplicate")
            .increment(outcomes.len() as u64 - applied);
        Ok(outcomes)
    }

    /// A message's headers, its id (`Nats-Msg-Id`, else stream and sequence), stream sequence and delivery
    /// count (1 on first delivery).
    fn identify(&self, message: &jetstream::Message) -> (MessageHeaders, String, u64, i64) {
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
        (headers, message_id, stream_sequence, delivered)
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
        let (headers, message_id, stream_sequence, delivered) = self.identify(message);
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
                match self.park(&parked).await {
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

    /// Park the message and let the handler react in the same transaction; if its reaction fails, park
    /// the message alone rather than not at all.
    async fn park(&self, parked: &ParkedMessage<'_>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        dead_letter::park_in(&mut tx, parked).await?;
        match self.handler.on_parked(&mut tx, parked).await {
            Ok(()) => tx.commit().await,
            Err(err) => {
                tracing::error!(error = %err, "reacting to a parked message failed; parking it alone");
                tx.rollback().await?;
                dead_letter::park(&self.pool, parked).await
            }
        }
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
