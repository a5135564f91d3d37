//! notifications: escalations in, email out. "What happens to an escalation" is [`receiver::apply`]: the
//! alert is recorded and one email per responsible person is queued in the consumer's transaction; the
//! [`delivery`] worker then sends them through SMTP and records each outcome. With a routing configuration
//! (`PutRouting`), a raise starts an escalation ladder that the [`ladder_scheduler`] climbs.

pub mod ack_link;
mod config;
pub mod delivery;
pub mod domain;
mod grpc;
pub mod ladder_scheduler;
pub mod receiver;
pub mod store;

pub use config::{
    DEFAULTS, DeliverySettings, EscalationSettings, LinkSettings, NotificationsConfig, SmtpSettings,
    SmtpTls,
};

use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use trust_proto::notifications::v1::notifications_server::NotificationsServer;
use trust_runtime::bus::{ESCALATIONS, subjects};
use trust_runtime::{ConsumerSpec, Platform, RunningService};

pub use grpc::NotificationsApi;

pub const SERVICE: &str = "notifications";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The durable consumer of every service's escalations.
pub const ESCALATIONS_CONSUMER: ConsumerSpec = ConsumerSpec {
    durable: "notifications-escalations",
    stream: ESCALATIONS,
    filter_subject: subjects::ALL_ESCALATIONS,
};

/// Name of the background task that climbs escalation ladders.
pub const LADDER_SCHEDULER: &str = "ladder-scheduler";

/// Name of the background task that sends queued emails.
pub const DELIVERY_WORKER: &str = "email-delivery";

/// Start the service: migrate, consume escalations, send email, serve gRPC.
pub async fn start(
    config: NotificationsConfig,
    shutdown: CancellationToken,
) -> trust_runtime::Result<RunningService> {
    // Checked before connecting anything, so a bad SMTP setting fails start-up with a clear message.
    let mailer = delivery::Mailer::new(&config.smtp)?;
    let mut platform = Platform::start(SERVICE, config.platform, &MIGRATIONS, shutdown).await?;
    platform
        .add_consumer(ESCALATIONS_CONSUMER, receiver::EscalationReceiver::new())
        .await?;
    let worker = delivery::DeliveryWorker::new(
        platform.pool.clone(),
        mailer,
        config.delivery,
        &platform.settings.database.schema,
    );
    platform.spawn_worker(DELIVERY_WORKER, move |stop| worker.run(stop));
    let scheduler = ladder_scheduler::LadderScheduler::new(platform.pool.clone(), config.escalation.tick());
    platform.spawn_worker(LADDER_SCHEDULER, move |stop| scheduler.run(stop));
    let api = NotificationsApi::new(platform.pool.clone());
    platform
        .serve(
            &[trust_proto::notifications::v1::notifications_server::SERVICE_NAME],
            |routes| {
                routes.add_service(NotificationsServer::new(api));
            },
        )
        .await
}
