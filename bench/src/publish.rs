//! Publishing on JetStream as a producer would: `Nats-Msg-Id` on every message, pipelined with a bounded
//! window of unacknowledged publishes, optionally paced.

use std::time::Duration;

use anyhow::anyhow;
use async_nats::jetstream;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One encoded message and its id.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub payload: Bytes,
}

/// The publishing side of a run.
#[derive(Debug, Default)]
pub struct Published {
    /// When each message was handed to the client (None: never published, e.g. the run was capped).
    pub at: Vec<Option<Instant>>,
    /// When the last JetStream publish acknowledgement arrived.
    pub last_ack: Option<Instant>,
    /// Set when publishing stopped early and why.
    pub stopped: Option<String>,
}

/// Publish `batches` on `subject` (headers `Nats-Msg-Id` = the message's id and `Trust-Message-Type` =
/// `message_type`), keeping at most `window` publishes unacknowledged; with `interval`, message `k` is
/// published no earlier than `k * interval` after the first. Stops at `deadline` or on `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    message_type: &str,
    batches: &[Outgoing],
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
            published.stopped = Some(format!("--max-seconds reached after {k} messages"));
            break;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", batch.id.as_str());
        headers.insert("content-type", "application/protobuf");
        headers.insert("Trust-Message-Type", message_type);
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
