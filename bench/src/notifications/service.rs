//! notifications under measurement, in this process: configured for the benchmark's database, namespace and
//! SMTP sink, with the staff directory and (for ladders) the routing configuration loaded over gRPC; and
//! the escalation events the benchmark publishes.

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use trust_bench::database::Database;
use trust_proto::alerting::v1::{EscalationRaised, IndicatorBreach, Severity, escalation_raised};
use trust_proto::common::v1::Rag;
use trust_proto::notifications::v1 as pb;
use trust_runtime::{ConfigLoader, RunningService};

pub const ROLE: &str = "trust_notifications";
pub const SCHEMA: &str = "notifications";
/// Where the benchmark's escalations are published (the service takes `*.escalation.*`).
pub const RAISED_SUBJECT: &str = "bench.escalation.raised";
pub const RAISED_TYPE: &str = "trust.alerting.v1.EscalationRaised";
/// The city every locality is under (the last of each event's lineage).
const CITY: &str = "CITY";

/// Settings the run overrides (None: the service's defaults, as deployed).
#[derive(Debug, Clone)]
pub struct Overrides {
    pub senders: Option<usize>,
    pub claim_batch: Option<u32>,
    pub tick_ms: Option<u64>,
    pub group_max: Option<usize>,
    pub max_connections: Option<u32>,
    /// `database.plan_cache_mode` as PostgreSQL spells it (`auto`, `force_custom_plan`, ...).
    pub plan_cache_mode: Option<String>,
    pub digest_window_secs: u64,
}

/// What the service ran with, for the report.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub senders: usize,
    pub claim_batch: u32,
    pub tick_ms: u64,
    pub group_max: usize,
    pub max_connections: u32,
    pub poll_interval_ms: u64,
    pub digest_window_secs: u64,
    pub plan_cache_mode: &'static str,
}

impl ServiceSettings {
    pub fn describe(&self) -> String {
        format!(
            "delivery.senders {}, delivery.claim_batch {}, escalation.tick_ms {}, consumer.group_max {}, database.max_connections {}, \
             delivery.poll_interval_ms {}, delivery.digest_window_secs {}, database.plan_cache_mode {}",
            self.senders,
            self.claim_batch,
            self.tick_ms,
            self.group_max,
            self.max_connections,
            self.poll_interval_ms,
            self.digest_window_secs,
            self.plan_cache_mode
        )
    }
}

pub struct Service {
    pub running: RunningService,
    pub client: pb::notifications_client::NotificationsClient<tonic::transport::Channel>,
    pub settings: ServiceSettings,
}

impl Service {
    /// Start notifications as its binary would, but configured only by the benchmark (no environment, no
    /// file): its role and schema in the benchmark's database, the namespace, the SMTP sink, no metrics
    /// listener, warnings and errors logged to stderr.
    pub async fn start(
        database: &Database,
        nats_url: &str,
        namespace: &str,
        smtp_port: u16,
        overrides: &Overrides,
    ) -> Result<Self> {
        let mut loader = ConfigLoader::new(notifications::DEFAULTS)
            .without_environment()
            .set("database.url", database.url_as(ROLE))
            .set("database.schema", SCHEMA)
            .set("nats.url", nats_url.to_owned())
            .set("nats.namespace", namespace.to_owned())
            .set("grpc.listen", "127.0.0.1:0")
            .set("metrics.listen", "")
            .set("log.filter", "warn")
            .set("smtp.host", "127.0.0.1")
            .set("smtp.port", i64::from(smtp_port))
            .set("smtp.tls", "none")
            .set(
                "delivery.digest_window_secs",
                i64::try_from(overrides.digest_window_secs)?,
            )
            // Emails carry signed acknowledgement links, as deployed (the listener on a free port).
            .set("links.listen", "127.0.0.1:0")
            .set(
                "links.secret",
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            );
        if let Some(senders) = overrides.senders {
            loader = loader.set("delivery.senders", i64::try_from(senders)?);
        }
        if let Some(claim_batch) = overrides.claim_batch {
            loader = loader.set("delivery.claim_batch", i64::from(claim_batch));
        }
        if let Some(tick_ms) = overrides.tick_ms {
            loader = loader.set("escalation.tick_ms", i64::try_from(tick_ms)?);
        }
        if let Some(group_max) = overrides.group_max {
            loader = loader.set("consumer.group_max", i64::try_from(group_max)?);
        }
        if let Some(max_connections) = overrides.max_connections {
            loader = loader.set("database.max_connections", i64::from(max_connections));
        }
        if let Some(mode) = &overrides.plan_cache_mode {
            loader = loader.set("database.plan_cache_mode", mode.clone());
        }
        let config: notifications::NotificationsConfig =
            loader.load().context("configuring notifications")?;
        let settings = ServiceSettings {
            senders: config.delivery.senders,
            claim_batch: config.delivery.claim_batch,
            tick_ms: config.escalation.tick_ms,
            group_max: config.platform.consumer.group_max,
            max_connections: config.platform.database.max_connections,
            poll_interval_ms: config.delivery.poll_interval_ms,
            digest_window_secs: config.delivery.digest_window_secs,
            plan_cache_mode: config.platform.database.plan_cache_mode.as_postgres(),
        };
        trust_runtime::telemetry::init_tracing(&config.platform.log);
        let running = notifications::start(config, CancellationToken::new())
            .await
            .context("starting notifications")?;
        let client =
            pb::notifications_client::NotificationsClient::connect(format!("http://{}", running.grpc_addr))
                .await
                .context("connecting to notifications' gRPC API")?;
        Ok(Self {
            running,
            client,
            settings,
        })
    }

    /// `people` members of staff, person `i` responsible for indicator `IND<i>` everywhere.
    pub async fn put_directory(&mut self, people: usize) -> Result<()> {
        let staff = (0..people)
            .map(|i| pb::StaffMember {
                code: staff_code(i),
                name: format!("Bench Person {i}"),
                email: format!("{}@bench.localhost", staff_code(i)),
                partner_code: "bench".into(),
                roles: vec!["performance_lead".into()],
                ..Default::default()
            })
            .collect();
        let responsibilities = (0..people)
            .map(|i| pb::Responsibility {
                staff_code: staff_code(i),
                indicator_code: indicator_code(i),
                locality_code: String::new(),
            })
            .collect();
        self.client
            .put_staff_directory(pb::StaffDirectory {
                staff,
                responsibilities,
            })
            .await
            .context("PutStaffDirectory")?;
        Ok(())
    }

    /// One route and policy per bucket: an alert in locality `bucket_locality(j)` tells the person
    /// responsible at once, and again (escalated) `first_wait + j * step` seconds later; after that nothing
    /// is due for a day.
    pub async fn put_bucketed_routing(&mut self, buckets: &Buckets) -> Result<()> {
        let policy = |j: usize| pb::EscalationPolicy {
            name: bucket_name(j),
            levels: vec![
                pb::EscalationLevel {
                    responsible: true,
                    wait: format!("{}s", buckets.wait(j)),
                    ..Default::default()
                },
                pb::EscalationLevel {
                    responsible: true,
                    wait: "24h".into(),
                    ..Default::default()
                },
            ],
            repeat: "24h".into(),
            acknowledgement_timeout: "24h".into(),
            flap_hold: String::new(),
        };
        let route = |j: usize| pb::Route {
            name: bucket_name(j),
            matchers: Some(pb::RouteMatchers {
                localities: vec![bucket_locality(j)],
                ..Default::default()
            }),
            policy: bucket_name(j),
            ..Default::default()
        };
        self.client
            .put_routing(pb::RoutingConfig {
                default_policy: bucket_name(0),
                routes: (0..buckets.count).map(route).collect(),
                policies: (0..buckets.count).map(policy).collect(),
            })
            .await
            .context("PutRouting")?;
        Ok(())
    }
}

/// First escalation steps spread over a window: bucket `j` waits `first_wait + j * step` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    pub count: usize,
    pub first_wait: u32,
    pub step: u32,
}

impl Buckets {
    /// At most `MAX` buckets (each is a route and a policy the service reads for every event).
    pub fn spread(first_wait: u32, spread: u32) -> Self {
        const MAX: u32 = 120;
        let step = spread.div_ceil(MAX).max(1);
        let count = (spread / step).max(1) as usize;
        Self {
            count,
            first_wait: first_wait.max(1),
            step,
        }
    }

    pub fn wait(&self, j: usize) -> u32 {
        self.first_wait + u32::try_from(j).unwrap_or(0) * self.step
    }
}

pub fn staff_code(i: usize) -> String {
    format!("bench-{i:04}")
}

pub fn indicator_code(i: usize) -> String {
    format!("IND{i:04}")
}

pub fn bucket_name(j: usize) -> String {
    format!("bucket-{j:03}")
}

pub fn bucket_locality(j: usize) -> String {
    format!("B{j:03}")
}

/// A raise about indicator `indicator` in `locality` (under the city), as indicator-ingest publishes one.
pub fn raise(dedup_key: String, indicator: String, locality: String) -> EscalationRaised {
    EscalationRaised {
        occurrence_id: format!("{dedup_key}/1"),
        dedup_key,
        source: "bench".into(),
        rule: "target-breach".into(),
        severity: Severity::Warning as i32,
        summary: format!("{indicator} in {locality} is red: 41.5% against a target of 50%"),
        raised_at: None,
        subject: Some(escalation_raised::Subject::Indicator(IndicatorBreach {
            indicator_name: format!("Bench indicator {indicator}"),
            locality_name: format!("Bench locality {locality}"),
            period_label: "2026-Q3".into(),
            value: 41.5,
            target: 50.0,
            amber_tolerance: 5.0,
            rag: Rag::Red as i32,
            partner_code: "bench".into(),
            owner_partner_code: "bench".into(),
            detail: "below target by more than the amber tolerance".into(),
            locality_lineage: vec![locality.clone(), CITY.into()],
            indicator_code: indicator,
            locality_code: locality,
            ..Default::default()
        })),
    }
}
