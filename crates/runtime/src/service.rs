//! A service's life: connect and migrate, declare streams, start consumers and workers, serve gRPC and
//! metrics, report health, and on shutdown stop pulling, finish in-flight work and flush the outbox.

use std::future::Future;
use std::net::SocketAddr;

use async_nats::jetstream;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;

use crate::bus::{self, Namespace};
use crate::config::Settings;
use crate::consumer::{ConsumerSpec, IdempotentConsumer, MessageHandler};
use crate::error::{Error, Result};
use crate::operations::OperationsApi;
use crate::outbox::OutboxRelay;
use crate::{db, grpc, metrics};

type TaskResult = (String, Result<()>);

const OPERATIONS_SERVICE: &str = trust_proto::operations::v1::operations_server::SERVICE_NAME;

/// The shared runtime of one running service.
pub struct Platform {
    pub service: &'static str,
    pub settings: Settings,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    shutdown: CancellationToken,
    workers: JoinSet<TaskResult>,
}

impl Platform {
    /// Connect to Postgres (as the service's role) and migrate, connect to NATS and declare the streams.
    pub async fn start(
        service: &'static str,
        settings: Settings,
        migrations: &Migrator,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        metrics::install()?;
        let pool = db::connect(&settings.database).await?;
        db::migrate(&pool, migrations).await?;
        tracing::info!(schema = %settings.database.schema, "database migrated");
        let nats = bus::connect(&settings.nats, service).await?;
        let jetstream = jetstream::new(nats.clone());
        let namespace = Namespace::new(settings.nats.namespace.clone());
        bus::declare_streams(&jetstream, &namespace, &settings.nats).await?;
        tracing::info!(url = %settings.nats.url, "JetStream streams declared");
        Ok(Self {
            service,
            settings,
            pool,
            nats,
            jetstream,
            namespace,
            shutdown,
            workers: JoinSet::new(),
        })
    }

    /// Only connect to Postgres as the service's role and apply its migrations (`<service> migrate`): what
    /// a deployment runs before the service's first replica serves, so a failing migration stops the
    /// rollout with the old pods still serving.
    pub async fn migrate_only(
        service: &'static str,
        settings: &Settings,
        migrations: &Migrator,
    ) -> Result<()> {
        let pool = db::connect(&settings.database).await?;
        let migrated = db::migrate(&pool, migrations).await;
        pool.close().await;
        migrated?;
        tracing::info!(service, schema = %settings.database.schema, "database migrated");
        Ok(())
    }

    /// Create a durable consumer and start pulling from it.
    pub async fn add_consumer<H: MessageHandler>(&mut self, spec: ConsumerSpec, handler: H) -> Result<()> {
        let name = spec.durable.to_owned();
        let consumer = IdempotentConsumer::create(
            &self.jetstream,
            self.pool.clone(),
            self.namespace.clone(),
            spec,
            self.settings.consumer.clone(),
            handler,
        )
        .await?;
        let stop = self.shutdown.clone();
        self.workers
            .spawn(async move { (name, consumer.run(stop).await) });
        Ok(())
    }

    /// Run a background loop (e.g. a delivery worker) until shutdown; it must return when the token fires.
    pub fn spawn_worker<F, Fut>(&mut self, name: &str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = name.to_owned();
        let run = worker(self.shutdown.clone());
        self.workers.spawn(async move {
            let result = run.await.map_err(|reason| Error::Task {
                task: name.clone(),
                reason,
            });
            (name, result)
        });
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serve gRPC (with health, reflection and operations) and metrics, relay the outbox, and report
    /// SERVING, both overall ("") and for each of `service_names` (the gRPC services `add_services` adds).
    pub async fn serve(
        self,
        service_names: &[&'static str],
        add_services: impl FnOnce(&mut RoutesBuilder),
    ) -> Result<RunningService> {
        let Platform {
            service,
            settings,
            pool,
            jetstream,
            shutdown,
            mut workers,
            ..
        } = self;

        let grpc_listener = grpc::bind(&settings.grpc.listen).await?;
        let grpc_addr = grpc::local_addr(&grpc_listener, &settings.grpc.listen)?;
        let metrics_listener = if settings.metrics.listen.is_empty() {
            None
        } else {
            Some(grpc::bind(&settings.metrics.listen).await?)
        };
        let metrics_addr = match &metrics_listener {
            Some(listener) => Some(grpc::local_addr(listener, &settings.metrics.listen)?),
            None => None,
        };

        let (mut routes, health) = grpc::standard_routes().await?;
        routes.add_service(
            trust_proto::operations::v1::operations_server::OperationsServer::new(OperationsApi::new(
                pool.clone(),
            )),
        );
        add_services(&mut routes);

        // The relay outlives the consumers so the events of in-flight messages are flushed on shutdown.
        let relay_stop = CancellationToken::new();
        let relay = OutboxRelay::new(
            pool.clone(),
            jetstream,
            settings.outbox.clone(),
            &settings.database.schema,
        );
        let relay_task = tokio::spawn(relay.run(relay_stop.clone()));

        let mut servers: JoinSet<TaskResult> = JoinSet::new();
        let grpc_shutdown = shutdown.clone();
        servers.spawn(async move {
            let result = grpc::serve(grpc_listener, routes.routes(), grpc_shutdown).await;
            ("grpc".to_owned(), result)
        });
        if let Some(listener) = metrics_listener {
            let metrics_shutdown = shutdown.clone();
            servers.spawn(async move {
                (
                    "metrics".to_owned(),
                    metrics::serve(listener, metrics_shutdown).await,
                )
            });
        }

        let mut names = vec!["", OPERATIONS_SERVICE];
        names.extend_from_slice(service_names);
        for name in &names {
            health.set_service_status(*name, ServingStatus::Serving).await;
        }
        tracing::info!(service, %grpc_addr, ?metrics_addr, "serving");

        let supervisor_shutdown = shutdown.clone();
        let handle = tokio::spawn(async move {
            let mut failure: Option<Error> = None;
            // Run until asked to stop, or until any part fails (then stop the rest and report it).
            tokio::select! {
                biased;
                () = supervisor_shutdown.cancelled() => {}
                Some(joined) = workers.join_next() => failure = unexpected_end(joined, &supervisor_shutdown, "worker"),
                Some(joined) = servers.join_next() => failure = unexpected_end(joined, &supervisor_shutdown, "server"),
            }
            for name in &names {
                health.set_service_status(*name, ServingStatus::NotServing).await;
            }
            supervisor_shutdown.cancel();
            while let Some(joined) = workers.join_next().await {
                if let Some(err) = task_failure(joined) {
                    failure.get_or_insert(err);
                }
            }
            relay_stop.cancel();
            if let Ok(Err(err)) = relay_task.await {
                tracing::warn!(error = %err, "outbox relay stopped with an error");
            }
            while let Some(joined) = servers.join_next().await {
                if let Some(err) = task_failure(joined) {
                    failure.get_or_insert(err);
                }
            }
            pool.close().await;
            tracing::info!(service, "stopped");
            match failure {
                Some(err) => Err(err),
                None => Ok(()),
            }
        });
        Ok(RunningService {
            grpc_addr,
            metrics_addr,
            shutdown,
            handle,
        })
    }
}

/// A task that ended before shutdown was asked for has failed, even if it returned Ok.
fn unexpected_end(
    joined: std::result::Result<TaskResult, tokio::task::JoinError>,
    shutdown: &CancellationToken,
    kind: &str,
) -> Option<Error> {
    let failure = task_failure(joined);
    if failure.is_some() || shutdown.is_cancelled() {
        return failure;
    }
    Some(Error::Task {
        task: kind.to_owned(),
        reason: "stopped unexpectedly".into(),
    })
}

fn task_failure(joined: std::result::Result<TaskResult, tokio::task::JoinError>) -> Option<Error> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((task, Err(err))) => {
            tracing::error!(%task, error = %err, "task failed");
            Some(err)
        }
        Err(join) => Some(Error::Task {
            task: "task".into(),
            reason: join.to_string(),
        }),
    }
}

/// A started service.
pub struct RunningService {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<()>>,
}

impl RunningService {
    /// Wait until the service has stopped (after a shutdown signal, or a failure).
    pub async fn wait(self) -> Result<()> {
        self.handle.await.map_err(|e| Error::Task {
            task: "supervisor".into(),
            reason: e.to_string(),
        })?
    }

    /// Ask the service to stop gracefully and wait for it.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}
