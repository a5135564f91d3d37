//! The platform's JetStream streams. Every service declares all of them at start-up (create if missing), so
//! services can start in any order.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::Namespace;
use crate::config::NatsSettings;
use crate::error::{Error, Result};

/// Subjects of the subject catalogue (README), before any namespace prefix.
pub mod subjects {
    /// `ingest.submit.<partner>`: a partner's `trust.ingest.v1.ObservationBatch`.
    pub fn submission(partner: &str) -> String {
        format!("ingest.submit.{partner}")
    }
    pub const SUBMISSIONS_ALL: &str = "ingest.submit.*";
    /// `ingest.receipts.<partner>`: `trust.ingest.v1.SubmissionReceipt` for every submission.
    pub fn receipt(partner: &str) -> String {
        format!("ingest.receipts.{partner}")
    }
    /// `trust.ingest.v1.ObservationsRecorded`.
    pub const OBSERVATIONS_RECORDED: &str = "ingest.observations.recorded";
    /// `trust.ingest.v1.StatusChanged`.
    pub const STATUS_CHANGED: &str = "ingest.status.changed";
    /// `trust.alerting.v1.EscalationRaised` from indicator ingest.
    pub const INGEST_ESCALATION_RAISED: &str = "ingest.escalation.raised";
    /// `trust.alerting.v1.EscalationResolved` from indicator ingest.
    pub const INGEST_ESCALATION_RESOLVED: &str = "ingest.escalation.resolved";
    /// Escalations raised or resolved by any service.
    pub const ALL_ESCALATIONS: &str = "*.escalation.*";
}

/// One stream of the platform.
#[derive(Debug, Clone, Copy)]
pub struct PlatformStream {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    pub max_age: Duration,
    pub description: &'static str,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Partners' submissions, consumed by indicator ingest.
pub const SUBMISSIONS: PlatformStream = PlatformStream {
    name: "SUBMISSIONS",
    subjects: &["ingest.submit.*"],
    max_age: DAY.saturating_mul(14),
    description: "Partners' observation batches awaiting indicator ingest",
};

/// Indicator ingest's receipts and recorded observations.
pub const INGEST: PlatformStream = PlatformStream {
    name: "INGEST",
    subjects: &["ingest.receipts.*", "ingest.observations.*", "ingest.status.*"],
    max_age: DAY.saturating_mul(90),
    description: "Submission receipts and recorded observations from indicator ingest",
};

/// Escalations raised and resolved by every service, in one stream so notifications needs one consumer.
pub const ESCALATIONS: PlatformStream = PlatformStream {
    name: "ESCALATIONS",
    subjects: &["*.escalation.*"],
    max_age: DAY.saturating_mul(365),
    description: "Escalations raised and resolved by any service",
};

pub const STREAMS: &[PlatformStream] = &[SUBMISSIONS, INGEST, ESCALATIONS];

/// Create every platform stream that does not exist yet, and add subjects a newer release publishes to an
/// existing stream. Other settings of an existing stream are left alone (changing retention or replicas is
/// an operator's decision, not a side effect of a deploy).
pub async fn declare_streams(
    jetstream: &jetstream::Context,
    namespace: &Namespace,
    settings: &NatsSettings,
) -> Result<()> {
    for platform in STREAMS {
        let config = stream::Config {
            name: namespace.stream(platform.name),
            subjects: platform.subjects.iter().map(|s| namespace.subject(s)).collect(),
            description: Some(platform.description.to_owned()),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: settings.stream_replicas,
            max_age: platform.max_age,
            duplicate_window: Duration::from_secs(settings.duplicate_window_secs),
            ..Default::default()
        };
        let wanted = config.subjects.clone();
        let mut stream = jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| Error::jetstream(&format!("declare stream {}", platform.name), e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| Error::jetstream(&format!("stream {} info", platform.name), e))?;
        let missing: Vec<String> = wanted
            .into_iter()
            .filter(|s| !info.config.subjects.contains(s))
            .collect();
        if !missing.is_empty() {
            let mut updated = info.config.clone();
            updated.subjects.extend(missing.iter().cloned());
            jetstream.update_stream(updated).await.map_err(|e| {
                Error::jetstream(&format!("add subjects {missing:?} to {}", platform.name), e)
            })?;
            tracing::info!(stream = platform.name, ?missing, "added subjects to stream");
        }
    }
    Ok(())
}
