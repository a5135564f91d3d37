//! Submissions as a partner publishes them (see `trust_bench::publish`), and collecting their receipts from
//! `ingest.receipts.<partner>`.

use anyhow::{Context as _, Result};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trust_bench::publish::Outgoing;
use trust_proto::ingest::v1 as pb;

/// One encoded submission.
pub struct Batch {
    pub id: String,
    pub observations: u64,
    pub payload: Bytes,
}

impl Batch {
    pub fn outgoing(&self) -> Outgoing {
        Outgoing {
            id: self.id.clone(),
            payload: self.payload.clone(),
        }
    }
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
