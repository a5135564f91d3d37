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

/// JetStream keeps a stream on at most five servers.
const MAX_REPLICAS: usize = 5;

/// The configuration a platform stream is created with: file storage, limits retention, the duplicate
/// window and the number of replicas from the settings (`nats.stream_replicas`: 1 on a single dev server,
/// 3 in production so a stream survives the loss of one node of a three-node cluster).
pub fn stream_config(
    platform: &PlatformStream,
    namespace: &Namespace,
    settings: &NatsSettings,
) -> Result<stream::Config> {
    if !(1..=MAX_REPLICAS).contains(&settings.stream_replicas) {
        return Err(Error::InvalidSetting {
            key: "nats.stream_replicas",
            reason: format!(
                "{} must be between 1 and {MAX_REPLICAS} (JetStream's limit); 3 for a three-node cluster",
                settings.stream_replicas
            ),
        });
    }
    Ok(stream::Config {
        name: namespace.stream(platform.name),
        subjects: platform.subjects.iter().map(|s| namespace.subject(s)).collect(),
        description: Some(platform.description.to_owned()),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.stream_replicas,
        max_age: platform.max_age,
        duplicate_window: Duration::from_secs(settings.duplicate_window_secs),
        ..Default::default()
    })
}

/// Create every platform stream that does not exist yet, and add subjects a newer release publishes to an
/// existing stream. Other settings of an existing stream are left alone (changing retention or replicas is
/// an operator's decision, not a side effect of a deploy).
pub async fn declare_streams(
    jetstream: &jetstream::Context,
    namespace: &Namespace,
    settings: &NatsSettings,
) -> Result<()> {
    for platform in STREAMS {
        let config = stream_config(platform, namespace, settings)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigLoader, Settings};

    fn nats_settings(loader: ConfigLoader) -> NatsSettings {
        let settings: Settings = loader.without_environment().load().expect("settings");
        settings.nats
    }

    #[test]
    fn streams_have_one_replica_by_default_and_as_many_as_configured() {
        let namespace = Namespace::new("");
        let local = nats_settings(ConfigLoader::new(""));
        for platform in STREAMS {
            let config = stream_config(platform, &namespace, &local).expect("config");
            assert_eq!(config.num_replicas, 1, "{}", platform.name);
        }
        // What the production overlay sets (TRUST__NATS__STREAM_REPLICAS=3).
        let production = nats_settings(ConfigLoader::new("").set("nats.stream_replicas", 3_i64));
        for platform in STREAMS {
            let config = stream_config(platform, &namespace, &production).expect("config");
            assert_eq!(config.num_replicas, 3, "{}", platform.name);
            assert_eq!(config.storage, stream::StorageType::File);
            assert_eq!(config.name, platform.name);
        }
    }

    #[test]
    fn a_replica_count_jetstream_cannot_keep_is_refused_by_name() {
        let namespace = Namespace::new("");
        for replicas in [0_i64, 6] {
            let settings = nats_settings(ConfigLoader::new("").set("nats.stream_replicas", replicas));
            let err = stream_config(&SUBMISSIONS, &namespace, &settings)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("nats.stream_replicas"), "{err}");
            assert!(err.contains("between 1 and 5"), "{err}");
        }
    }
}
