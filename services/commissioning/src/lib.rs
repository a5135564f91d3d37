//! commissioning: the Integrated Strategic Commissioning Board (ISCB).
//!
//! So far (issue 2) this service has only the shared runtime and the one input it will need: it starts,
//! migrates its own schema, keeps a register of indicator concerns from the escalations raised and
//! resolved on `*.escalation.*` (what contract monitoring of providers will draw on), serves it through
//! `Commissioning.ListIndicatorConcerns`, and answers the gRPC health check. The board's real capabilities
//! (the commissioning plan, contracts with providers, hosting agreements, budgets, risk registers) come in
//! later issues.
//!
//! "What happens to an escalation" is [`receiver`]; the rules for what a raise or resolve does to the
//! concern held are [`domain::on_raised`] and [`domain::on_resolved`].

mod config;
pub mod domain;
mod grpc;
pub mod receiver;
pub mod store;

pub use config::{CommissioningConfig, DEFAULTS};

use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use trust_proto::commissioning::v1::commissioning_server::CommissioningServer;
use trust_runtime::bus::{ESCALATIONS, subjects};
use trust_runtime::{ConsumerSpec, Platform, RunningService};

pub const SERVICE: &str = "commissioning";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The durable consumer of escalations raised and resolved by any service.
pub const ESCALATIONS_CONSUMER: ConsumerSpec = ConsumerSpec {
    durable: "commissioning-escalations",
    stream: ESCALATIONS,
    filter_subject: subjects::ALL_ESCALATIONS,
};

/// Start the service: migrate, consume escalations, serve gRPC.
pub async fn start(
    config: CommissioningConfig,
    shutdown: CancellationToken,
) -> trust_runtime::Result<RunningService> {
    let mut platform = Platform::start(SERVICE, config.platform, &MIGRATIONS, shutdown).await?;
    platform
        .add_consumer(ESCALATIONS_CONSUMER, receiver::EscalationsReceiver::new())
        .await?;
    let api = grpc::CommissioningApi::new(platform.pool.clone());
    platform
        .serve(
            &[trust_proto::commissioning::v1::commissioning_server::SERVICE_NAME],
            |routes| {
                routes.add_service(CommissioningServer::new(api));
            },
        )
        .await
}
