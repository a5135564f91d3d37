//! Publishing submissions as a partner would (JetStream, `Nats-Msg-Id`, pipelined with a bounded window of
//! unacknowledged publishes, optionally paced) and collecting their receipts from
//! `ingest.receipts.<partner>`.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trust_proto::ingest::v1 as pb;

/// One encoded submission.
pub struct Batch {
    pub id: String,
    pub observations: u64,
    pub payload: Bytes,
}

/// What came back for one batch.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub at: Instant,
    pub outcome: pb::SubmissionOutcome,
    /// created + updated + unchanged.
    pub stored: u64,
    pub first_rejection: Option<String>,
}

/// The publishing side of a run.
#[derive(Debug, Default)]
pub struct Published {
    /// When each batch was handed to the client (None: never published, e.g. the run was capped).
    pub at: Vec<Option<Instant>>,
    /// When the last JetStream publish acknowledgement arrived.
    pub last_ack: Option<Instant>,
    /// Set when publishing stopped early and why.
    pub stopped: Option<String>,
}

/// Publish `batches` on `subject`, keeping at most `window` publishes unacknowledged; with `interval`, batch
/// `k` is published no earlier than `k * interval` after the first. Stops at `deadline` or on `stop`.
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    batches: &[Batch],
    window: usize,
    interval: Option<Duration>,
    deadline: Instant,
    stop: &CancellationToken,
) -> Published {
    let mut published = Published {
        at: vec![None; batches.len()],
        ..Default::default()
    };
    // Acks are awaited in order by a separate task, so publishing never waits for one unless `window` are
    // outstanding.
    let (acks_tx, mut acks_rx) = mpsc::channel::<jetstream::context::PublishAckFuture>(window.max(1));
    let acks = tokio::spawn(async move {
        let mut last = None;
        while let Some(ack) = acks_rx.recv().await {
            ack.await
                .map_err(|e| anyhow!("JetStream did not acknowledge a publish: {e}"))?;
            last = Some(Instant::now());
        }
        Ok::<_, anyhow::Error>(last)
    });
    let start = Instant::now();
    for (k, batch) in batches.iter().enumerate() {
        if let Some(interval) = interval {
            let due = start + interval.mul_f64(k as f64);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = stop.cancelled() => {}
            }
        }
        if stop.is_cancelled() {
            published.stopped = Some("stopped".to_owned());
            break;
        }
        if Instant::now() >= deadline {
            published.stopped = Some(format!("--max-seconds reached after {k} batches"));
            break;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", batch.id.as_str());
        headers.insert("content-type", "application/protobuf");
        headers.insert("Trust-Message-Type", "trust.ingest.v1.ObservationBatch");
        let at = Instant::now();
        let sent = js
            .publish_with_headers(subject.to_owned(), headers, batch.payload.clone())
            .await;
        match sent {
            Ok(ack) => {
                published.at[k] = Some(at);
                if acks_tx.send(ack).await.is_err() {
                    published.stopped = Some("publish acknowledgements failed".to_owned());
                    break;
                }
            }
            Err(err) => {
                published.stopped = Some(format!("publish failed: {err}"));
                break;
            }
        }
    }
    drop(acks_tx);
    match acks.await {
        Ok(Ok(last)) => published.last_ack = last,
        Ok(Err(err)) => published.stopped = Some(format!("{err:#}")),
        Err(err) => published.stopped = Some(format!("ack task: {err}")),
    }
    published
}

/// Collect receipts for batch ids `<prefix><k>` until every one of `expected` has come, `deadline`, or
/// `stop`. A repeated receipt for a batch keeps the first.
pub async fn collect_receipts(
    mut subscriber: async_nats::Subscriber,
    prefix: String,
    expected: usize,
    deadline: Instant,
    stop: CancellationToken,
) -> Vec<Option<Receipt>> {
    let mut receipts: Vec<Option<Receipt>> = vec![None; expected];
    let mut received = 0;
    while received < expected {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(deadline) => break,
            message = subscriber.next() => message,
        };
        let Some(message) = message else { break };
        let at = Instant::now();
        let Ok(receipt) = pb::SubmissionReceipt::decode(message.payload) else {
            continue;
        };
        let Some(k) = receipt
            .batch_id
            .strip_prefix(prefix.as_str())
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|k| *k < expected)
        else {
            continue;
        };
        if receipts[k].is_some() {
            continue;
        }
        received += 1;
        receipts[k] = Some(Receipt {
            at,
            outcome: pb::SubmissionOutcome::try_from(receipt.outcome)
                .unwrap_or(pb::SubmissionOutcome::Unspecified),
            stored: u64::from(receipt.created) + u64::from(receipt.updated) + u64::from(receipt.unchanged),
            first_rejection: receipt
                .rejections
                .first()
                .map(|r| format!("position {} field {}: {}", r.position, r.field, r.reason)),
        });
    }
    receipts
}

/// Subscribe before anything is published, and make sure the server has the subscription.
pub async fn subscribe(client: &async_nats::Client, subject: &str) -> Result<async_nats::Subscriber> {
    let subscriber = client
        .subscribe(subject.to_owned())
        .await
        .with_context(|| format!("subscribing to {subject}"))?;
    client.flush().await.context("flushing the subscription")?;
    Ok(subscriber)
}
