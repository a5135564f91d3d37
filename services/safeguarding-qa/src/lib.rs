//! safeguarding-qa: quality assurance for the Local Safeguarding Children Board (LSCB).
//!
//! So far (issue 2) this service has only the shared runtime and the one input it will need: it starts,
//! migrates its own schema, keeps the latest value of every indicator in every locality from indicator
//! ingest's `ingest.observations.recorded` events (the basis of the board's quarterly performance report),
//! serves it through `SafeguardingQa.ListPerformance`, and answers the gRPC health check. The board's real
//! capabilities (the quarterly report itself, audits of case files, serious case review lessons) come in
//! later issues.
//!
//! "What happens to a recorded observation" is [`receiver`]; the rule for which value to keep is
//! [`domain::supersedes`].

mod config;
pub mod domain;
mod grpc;
pub mod receiver;
pub mod store;

pub use config::{DEFAULTS, SafeguardingConfig};

use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use trust_proto::safeguarding::v1::safeguarding_qa_server::SafeguardingQaServer;
use trust_runtime::bus::{INGEST, subjects};
use trust_runtime::{ConsumerSpec, Platform, RunningService};

pub const SERVICE: &str = "safeguarding-qa";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The durable consumer of the observations indicator ingest records.
pub const OBSERVATIONS_CONSUMER: ConsumerSpec = ConsumerSpec {
    durable: "safeguarding-qa-observations",
    stream: INGEST,
    filter_subject: subjects::OBSERVATIONS_RECORDED,
};

/// Start the service: migrate, consume recorded observations, serve gRPC.
pub async fn start(
    config: SafeguardingConfig,
    shutdown: CancellationToken,
) -> trust_runtime::Result<RunningService> {
    let mut platform = Platform::start(SERVICE, config.platform, &MIGRATIONS, shutdown).await?;
    platform
        .add_consumer(OBSERVATIONS_CONSUMER, receiver::ObservationsReceiver::new())
        .await?;
    let api = grpc::SafeguardingApi::new(platform.pool.clone());
    platform
        .serve(
            &[trust_proto::safeguarding::v1::safeguarding_qa_server::SERVICE_NAME],
            |routes| {
                routes.add_service(SafeguardingQaServer::new(api));
            },
        )
        .await
}
