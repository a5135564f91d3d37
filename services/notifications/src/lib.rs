//! notifications: escalations in, email out. "What happens to an escalation" is [`receiver::apply`] (and
//! [`receiver::apply_events`] for the groups the consumer pulls, decided by [`telling`]): the
//! alert is recorded and one email per responsible person is queued in the consumer's transaction; the
//! [`delivery`] worker then sends them through SMTP and records each outcome. With a routing configuration
//! (`PutRouting`), a raise starts an escalation ladder that the [`ladder_scheduler`] climbs. Emails are
//! made from templates ([`email_templates`]); a raised one carries a one-use signed link ([`ack_link`])
//! that [`links_http`] serves to acknowledge the alert.

pub mod ack_link;
pub mod alert_actions;
mod config;
pub mod delivery;
pub mod domain;
pub mod email_templates;
mod grpc;
pub mod ladder_scheduler;
pub mod links_http;
pub mod receiver;
pub mod reference;
pub mod scheduler_watchdog;
pub mod store;
pub mod telling;
pub mod webhook;

pub use config::{
    DEFAULTS, DeliverySettings, EscalationSettings, LinkSettings, NotificationsConfig, SmtpSettings, SmtpTls,
    WebhookSettings,
};

use std::sync::Arc;

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

/// Name of the background task that raises an alert when escalation steps are overdue.
pub const SCHEDULER_WATCHDOG: &str = "scheduler-watchdog";

/// Name of the background task that sends queued emails.
pub const DELIVERY_WORKER: &str = "email-delivery";

/// Name of the HTTP listener behind acknowledgement links.
pub const LINKS_LISTENER: &str = "acknowledgement-links";

/// Start the service: migrate, consume escalations, send email, serve gRPC.
pub async fn start(
    config: NotificationsConfig,
    shutdown: CancellationToken,
) -> trust_runtime::Result<RunningService> {
    // Checked before connecting anything, so a bad SMTP setting fails start-up with a clear message.
    let mailer = delivery::Mailer::new(&config.smtp)?;
    let webhooks = webhook::WebhookSender::new(&config.webhooks, config.delivery.webhook_timeout())?;
    let links = ack_link::LinkSigner::from_settings(&config.links).map_err(|err| {
        trust_runtime::Error::InvalidSetting {
            key: err.key(),
            reason: err.to_string(),
        }
    })?;
    // Bound before anything else starts, so a port in use fails start-up at once.
    let links_listener = match &links {
        Some(_) => Some(
            tokio::net::TcpListener::bind(&config.links.listen)
                .await
                .map_err(|source| trust_runtime::Error::Listen {
                    addr: config.links.listen.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let email = Arc::new(email_templates::EmailComposer::new(links.clone()));
    let mut platform = Platform::start(SERVICE, config.platform, &MIGRATIONS, shutdown).await?;
    platform
        .add_consumer(
            ESCALATIONS_CONSUMER,
            receiver::EscalationReceiver::new(Arc::clone(&email)),
        )
        .await?;
    let worker = delivery::DeliveryWorker::new(
        platform.pool.clone(),
        mailer,
        webhooks.clone(),
        config.delivery,
        &platform.settings.database.schema,
    );
    platform.spawn_worker(DELIVERY_WORKER, move |stop| worker.run(stop));
    let scheduler = ladder_scheduler::LadderScheduler::new(
        platform.pool.clone(),
        config.escalation.tick(),
        Arc::clone(&email),
    );
    platform.spawn_worker(LADDER_SCHEDULER, move |stop| scheduler.run(stop));
    if let (Some(signer), Some(listener)) = (links, links_listener) {
        tracing::info!(listen = %config.links.listen, "serving acknowledgement links");
        let router = links_http::router(platform.pool.clone(), signer);
        platform.spawn_worker(LINKS_LISTENER, move |stop| {
            links_http::serve(listener, router, stop)
        });
    }
    let watchdog = scheduler_watchdog::SchedulerWatchdog::new(
        platform.pool.clone(),
        Arc::clone(&email),
        config.escalation.tick(),
        config.escalation.stall_after(),
    );
    platform.spawn_worker(SCHEDULER_WATCHDOG, move |stop| watchdog.run(stop));
    let api = NotificationsApi::new(platform.pool.clone(), webhooks.names(), email);
    platform
        .serve(
            &[trust_proto::notifications::v1::notifications_server::SERVICE_NAME],
            |routes| {
                routes.add_service(NotificationsServer::new(api));
            },
        )
        .await
}
