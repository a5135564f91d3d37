//! indicator-ingest: partners' observations in, validated, stored, evaluated against targets; escalations
//! out. "What happens to a submission" is [`submission::process`].

pub mod access;
mod board;
pub mod catalogue;
mod config;
pub mod domain;
mod evaluate;
mod grpc;
mod ledger;
mod receiver;
mod reference;
mod rollups;
mod series_store;
pub mod store;
pub mod submission;

pub use config::{DEFAULTS, IngestConfig};

use std::sync::Arc;

use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use trust_proto::ingest::v1::indicator_ingest_server::IndicatorIngestServer;
use trust_runtime::bus::{SUBMISSIONS, subjects};
use trust_runtime::{ConsumerSpec, Platform, RunningService};

pub const SERVICE: &str = "indicator-ingest";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The durable consumer of partners' submissions.
pub const SUBMISSIONS_CONSUMER: ConsumerSpec = ConsumerSpec {
    durable: "indicator-ingest-submissions",
    stream: SUBMISSIONS,
    filter_subject: subjects::SUBMISSIONS_ALL,
};

/// Start the service: migrate, consume submissions, serve gRPC.
pub async fn start(
    config: IngestConfig,
    shutdown: CancellationToken,
) -> trust_runtime::Result<RunningService> {
    let mut platform = Platform::start(SERVICE, config.platform, &MIGRATIONS, shutdown).await?;
    let namespace = platform.namespace.clone();
    let reference = Arc::new(reference::ReferenceCache::default());
    platform
        .add_consumer(
            SUBMISSIONS_CONSUMER,
            receiver::SubmissionReceiver::new(namespace.clone(), Arc::clone(&reference)),
        )
        .await?;
    let api = grpc::IngestApi::new(platform.pool.clone(), namespace, reference);
    platform
        .serve(
            &[trust_proto::ingest::v1::indicator_ingest_server::SERVICE_NAME],
            |routes| {
                routes.add_service(IndicatorIngestServer::new(api));
            },
        )
        .await
}
