//! `notifications-bench`: how fast notifications turns escalations into email, and whether its ladder
//! scheduler keeps up with many open alerts; with a verdict per target of the notifications issue.
//!
//! It provisions its own database and NATS namespace, starts notifications in this process against its own
//! SMTP sink (also in this process), loads a staff directory (and for ladders a routing configuration) over
//! gRPC, measures, and removes the database and streams again (unless `--keep`).

mod ladders;
mod latency;
mod report;
mod service;
mod smtp_sink;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream;
use clap::{Parser, ValueEnum};
use trust_bench::cpu;
use trust_bench::database::Database;
use uuid::Uuid;

use crate::ladders::Load;
use crate::report::Context;
use crate::service::{Buckets, Overrides, Service};
use crate::smtp_sink::SmtpSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Escalation raises at `--rate` a second: publish-to-email latency per event.
    Latency,
    /// `--alerts` open alerts whose ladders come due over `--spread` seconds: how late each step is.
    Ladders,
}

/// Measure notifications against the targets. Needs Postgres and NATS JetStream; build with
/// `cargo build --release -p trust-bench`.
#[derive(Debug, Parser)]
#[command(name = "notifications-bench", version)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::Latency)]
    mode: Mode,
    /// Latency: escalation raises published per second.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Latency: seconds measured (after the warm-up).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Latency: seconds published at the same rate before measuring (not counted).
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// Members of staff; each is responsible for one indicator, so emails spread over them.
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// Ladders: open alerts.
    #[arg(long, default_value_t = 100_000)]
    alerts: usize,
    /// Ladders: seconds from an alert firing to its escalation, in the earliest bucket (loading should
    /// finish sooner, so every due time is read before it comes).
    #[arg(long, default_value_t = 60)]
    first_wait: u32,
    /// Ladders: escalations come due over this many seconds (alerts are spread over up to 120 buckets).
    #[arg(long, default_value_t = 120)]
    spread: u32,
    /// Ladders: how the alerts are opened.
    #[arg(long, value_enum, default_value_t = Load::Direct)]
    load: Load,
    /// Ladders, `--load direct`: transactions at once.
    #[arg(long, default_value_t = 4)]
    load_connections: usize,
    /// How long to wait for the last emails (latency: after the last publish; ladders: after the last
    /// due time).
    #[arg(long, default_value_t = 120)]
    drain_seconds: u64,
    /// Publishes awaiting JetStream's acknowledgement at once.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Override the service's `delivery.senders`.
    #[arg(long)]
    senders: Option<usize>,
    /// Override the service's `delivery.claim_batch` (deliveries a sender claims at once).
    #[arg(long)]
    claim_batch: Option<u32>,
    /// Override the service's `escalation.tick_ms`.
    #[arg(long)]
    tick_ms: Option<u64>,
    /// Override the service's `consumer.group_max` (events applied in one transaction).
    #[arg(long)]
    group_max: Option<usize>,
    /// Override the service's `database.max_connections`.
    #[arg(long)]
    max_connections: Option<u32>,
    /// Override the service's `database.plan_cache_mode` (`auto`, `force_custom_plan`,
    /// `force_generic_plan`).
    #[arg(long)]
    plan_cache_mode: Option<String>,
    /// The service's `delivery.digest_window_secs`. 0 (the default here): every email goes alone, so the
    /// figures are the pipeline's own; the service's default (120) holds later emails to the same person
    /// for up to two minutes on purpose, to send them as one digest.
    #[arg(long, default_value_t = 0)]
    digest_window_secs: u64,
    /// Postgres superuser URL (creates and drops the benchmark's database).
    #[arg(
        long,
        env = "TRUST_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    /// NATS server with JetStream.
    #[arg(long, env = "TRUST_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Keep the database and streams afterwards (to inspect them).
    #[arg(long)]
    keep: bool,
    /// Diagnosis: log the plan of every service statement slower than this (milliseconds) to the
    /// PostgreSQL server's log (`auto_explain`; needs the admin URL to be a superuser's).
    #[arg(long)]
    explain_slower_than_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("notifications-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build of notifications-bench; use `cargo run --release -p trust-bench ...`"
        );
    }
    if args.people == 0 {
        return Err(anyhow!("--people must be at least 1"));
    }
    let id = Uuid::new_v4().simple().to_string();
    let namespace = format!("bench{}", &id[..10]);
    let database_name = format!("trust_bench_{}", &id[..16]);
    eprintln!(
        "notifications-bench: {} mode, database {database_name}, NATS namespace {namespace}",
        match args.mode {
            Mode::Latency => "latency",
            Mode::Ladders => "ladders",
        }
    );
    let database = Database::provision(&args.admin_url, &database_name).await?;
    let measured = tokio::select! {
        run = measure(&args, &database, &namespace) => run,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    cleanup(&args, &database, &namespace).await;
    let (report, failed) = measured?;
    println!("{report}");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The report, and whether the run failed (an email missing or sent twice; a missed target is not a
/// failure).
async fn measure(args: &Args, database: &Database, namespace: &str) -> Result<(String, bool)> {
    if let Some(threshold) = args.explain_slower_than_ms {
        database.explain_slower_than(threshold).await?;
    }
    let sink = SmtpSink::start().await?;
    let overrides = Overrides {
        senders: args.senders,
        claim_batch: args.claim_batch,
        tick_ms: args.tick_ms,
        group_max: args.group_max,
        max_connections: args.max_connections,
        plan_cache_mode: args.plan_cache_mode.clone(),
        digest_window_secs: args.digest_window_secs,
    };
    let mut service = Service::start(database, &args.nats_url, namespace, sink.port, &overrides).await?;
    eprintln!(
        "  started notifications (gRPC {}; {}), SMTP sink on port {}",
        service.running.grpc_addr,
        service.settings.describe(),
        sink.port
    );
    service.put_directory(args.people).await?;
    let nats = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let js = jetstream::new(nats);
    let pid = std::process::id();

    let before = cpu::snapshot(pid, &database.admin_url, &database.name).await;
    let measured = match args.mode {
        Mode::Latency => {
            let plan = latency::Plan {
                rate: args.rate.max(1),
                warmup_events: usize::try_from(args.rate * args.warmup_seconds)?,
                measured_events: usize::try_from(args.rate * args.seconds)?,
                people: args.people,
                window: args.window,
                drain: Duration::from_secs(args.drain_seconds),
            };
            let run = latency::measure(&plan, &js, namespace, &sink, database).await?;
            Measured::Latency { plan, run }
        }
        Mode::Ladders => {
            let buckets = Buckets::spread(args.first_wait, args.spread);
            service.put_bucketed_routing(&buckets).await?;
            let plan = ladders::Plan {
                alerts: args.alerts,
                people: args.people,
                buckets,
                load: args.load,
                load_connections: args.load_connections,
                window: args.window,
                drain: Duration::from_secs(args.drain_seconds),
            };
            let run = ladders::measure(&plan, &js, namespace, &sink, database).await?;
            Measured::Ladders { plan, run }
        }
    };
    let after = cpu::snapshot(pid, &database.admin_url, &database.name).await;
    let service_stop = match tokio::time::timeout(Duration::from_secs(30), service.running.stop()).await {
        Ok(Ok(())) => "stopped cleanly".to_owned(),
        Ok(Err(err)) => format!("stopped with an error: {err}"),
        Err(_) => "still stopping after 30 s".to_owned(),
    };
    sink.stop().await;
    let context = Context {
        service: service.settings,
        postgres: postgres_facts(database).await,
        people: args.people,
        cpu: cpu::usage(&before, &after),
        service_stop,
    };
    Ok(match measured {
        Measured::Latency { plan, run } => {
            let failed = run
                .events
                .iter()
                .any(|e| e.published.is_some() && e.accepted.len() != 1);
            (run.render(&plan, &context), failed)
        }
        Measured::Ladders { plan, run } => {
            let failed = run.steps.len() != plan.alerts || run.emails_accepted != 2 * plan.alerts;
            (run.render(plan.alerts, &plan.buckets, &context), failed)
        }
    })
}

/// "PostgreSQL 15.2, autovacuum on": what the figures depend on beyond the service.
async fn postgres_facts(database: &Database) -> String {
    let read = async {
        let mut conn = database.connect_as(service::ROLE, service::SCHEMA).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&mut conn).await?;
        let fsync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut conn)
            .await?;
        Ok::<_, anyhow::Error>(format!(
            "PostgreSQL {version}, autovacuum {autovacuum}, synchronous_commit {fsync}"
        ))
    };
    read.await.unwrap_or_else(|err| format!("unknown ({err:#})"))
}

enum Measured {
    Latency {
        plan: latency::Plan,
        run: latency::LatencyRun,
    },
    Ladders {
        plan: ladders::Plan,
        run: ladders::LadderRun,
    },
}

async fn cleanup(args: &Args, database: &Database, namespace: &str) {
    if args.keep {
        eprintln!(
            "  kept database {} and streams {} (--keep)",
            database.name,
            trust_bench::nats::stream_names(namespace).join(", ")
        );
        return;
    }
    trust_bench::nats::delete_streams(&args.nats_url, namespace).await;
    if let Err(err) = database.drop().await {
        eprintln!("  could not drop database {}: {err:#}", database.name);
    }
}
