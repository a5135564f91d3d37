//! `ingest-bench`: how fast indicator-ingest takes partners' submissions end to end (published on
//! JetStream, validated, stored, evaluated, receipted), how much memory it uses doing so, and how that
//! compares with a raw Postgres COPY of the same rows; with a verdict per target of issue 3.
//!
//! It provisions its own database and NATS namespace, runs the release build of indicator-ingest as a
//! separate process, loads a catalogue sized for the run, optionally preloads history, measures, and removes
//! the database and streams again (unless `--keep`).

mod copy;
mod ingest;
mod load;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trust_proto::ingest::v1::indicator_ingest_client::IndicatorIngestClient;
use trust_runtime::bus::Namespace;
use uuid::Uuid;

use trust_bench::cpu;
use trust_bench::database::Database;
use trust_bench::figures::thousands;

use crate::ingest::Ingest;
use crate::load::Batch;
use crate::report::Run;
use crate::workload::{PARTNER, Plan, quarter_label};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `--batch-size` observations per message, published as fast as JetStream acknowledges.
    Batched,
    /// One observation per message, published as fast as JetStream acknowledges.
    Single,
    /// Paced at `--rate` observations per second; publish-to-receipt latency per batch.
    Latency,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::Single => "single",
            Mode::Latency => "latency",
        }
    }
}

/// Measure indicator-ingest end to end against issue 3's targets. Needs Postgres, NATS JetStream and
/// `cargo build --release -p indicator-ingest`.
#[derive(Debug, Parser)]
#[command(name = "ingest-bench", version)]
struct Args {
    /// Observations to submit.
    #[arg(long, default_value_t = 200_000)]
    observations: u64,
    /// Observations per message (default: 1,000 batched; rate/100 in latency mode, i.e. 100 messages a
    /// second; always 1 in single mode).
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, value_enum, default_value_t = Mode::Batched)]
    mode: Mode,
    /// Offered load in latency mode, observations per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Observations of history to preload (COPY into ingest.observation) before the run.
    #[arg(long, default_value_t = 0)]
    history: u64,
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
    /// Cap on the measured phase (publishing and waiting for receipts); what completed is reported.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Publishes awaiting JetStream's acknowledgement at once.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Keep the database and streams afterwards (to inspect them).
    #[arg(long)]
    keep: bool,
    /// The indicator-ingest binary (default: target/release/indicator-ingest).
    #[arg(long)]
    ingest_bin: Option<PathBuf>,
}

impl Args {
    fn batch_size(&self) -> usize {
        match self.mode {
            Mode::Single => 1,
            Mode::Batched => self.batch_size.unwrap_or(1_000),
            Mode::Latency => self
                .batch_size
                .unwrap_or_else(|| usize::try_from(self.rate / 100).unwrap_or(1_000).clamp(1, 1_000)),
        }
        .max(1)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ingest-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    let binary = ingest::locate(args.ingest_bin.as_deref())?;
    // An explicit binary may be built from other sources than this checkout's.
    if args.ingest_bin.is_none()
        && let Some(warning) = ingest::staleness(&binary)
    {
        eprintln!("{warning}");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build of ingest-bench; use `cargo run --release -p trust-bench ...`"
        );
    }
    if args.mode == Mode::Single && args.batch_size.is_some_and(|b| b != 1) {
        eprintln!("note: --mode single sends one observation per message; --batch-size is ignored");
    }
    let plan = Plan::new(
        args.observations,
        args.history,
        time::OffsetDateTime::now_utc().date(),
    );
    let id = Uuid::new_v4().simple().to_string();
    let namespace = format!("bench{}", &id[..10]);
    let database_name = format!("trust_bench_{}", &id[..16]);
    eprintln!(
        "ingest-bench: {} mode, {} observations, database {database_name}, NATS namespace {namespace}, \
         service {}",
        args.mode.name(),
        thousands(args.observations),
        binary.display()
    );
    let database = Database::provision(&args.admin_url, &database_name).await?;
    let log_file = std::env::temp_dir().join(format!("ingest-bench-{namespace}.log"));
    let measured = tokio::select! {
        run = measure(&args, &plan, &database, &binary, &namespace, &log_file) => run,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    cleanup(&args, &database, &namespace).await;
    let run = measured.with_context(|| format!("the service's log is {}", log_file.display()))?;
    println!("{}", run.render(&plan));
    let failed = run.failed();
    if failed || args.keep {
        eprintln!("the service's log is {}", log_file.display());
    } else {
        let _ = std::fs::remove_file(&log_file);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn measure(
    args: &Args,
    plan: &Plan,
    database: &Database,
    binary: &Path,
    namespace: &str,
    log_file: &Path,
) -> Result<Run> {
    let mut ingest = Ingest::spawn(
        binary,
        &ingest::Settings {
            database_url: database.url_as(copy::INGEST_ROLE),
            nats_url: args.nats_url.clone(),
            namespace: namespace.to_owned(),
            grpc_port: ingest::free_port()?,
            log_file: log_file.to_owned(),
        },
    )?;
    eprintln!(
        "  started indicator-ingest (pid {}, gRPC {}, log {})",
        ingest.pid,
        ingest.endpoint(),
        log_file.display()
    );
    ingest.wait_serving(Duration::from_secs(60)).await?;

    // Loading a catalogue is an operator's call: issue the benchmark an operator credential, as
    // `trustctl credential issue --operator` would.
    let mut conn = database.connect_as(copy::INGEST_ROLE, "ingest").await?;
    let issued = indicator_ingest::access::issue(
        &mut conn,
        &indicator_ingest::access::Caller::Operator("ingest-bench".to_owned()),
        "ingest-bench",
    )
    .await
    .context("issuing the benchmark an operator credential")?;
    drop(conn);
    let mut request = tonic::Request::new(plan.catalogue());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", issued.token)
            .parse()
            .context("the issued token is not valid metadata")?,
    );
    let started = Instant::now();
    IndicatorIngestClient::connect(ingest.endpoint())
        .await
        .context("connecting to indicator-ingest's gRPC API")?
        .put_catalogue(request)
        .await
        .context("loading the benchmark catalogue")?;
    eprintln!(
        "  catalogue loaded in {:.1} s: {} series, run quarters {}..{}",
        started.elapsed().as_secs_f64(),
        thousands(plan.series()),
        quarter_label(plan.first_run_quarter),
        quarter_label(plan.current_quarter)
    );
    let history_load = if plan.history.rows > 0 {
        eprintln!("  preloading {} history rows...", thousands(plan.history.rows));
        let took = copy::preload_history(database, plan).await?;
        eprintln!("  history loaded in {:.1} s", took.as_secs_f64());
        Some(took)
    } else {
        None
    };

    let batch_size = args.batch_size();
    let prefix = format!("{namespace}-");
    let batches = encode_batches(plan, batch_size, &prefix);
    let batch_observations: Vec<u64> = batches.iter().map(|b| b.observations).collect();
    let ns = Namespace::new(namespace);
    let submit_subject = ns.subject(&format!("ingest.submit.{PARTNER}"));
    let receipt_subject = ns.subject(&format!("ingest.receipts.{PARTNER}"));
    let nats = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let js = jetstream::new(nats.clone());
    let subscriber = load::subscribe(&nats, &receipt_subject).await?;
    let interval = (args.mode == Mode::Latency)
        .then(|| Duration::from_secs_f64(batch_size as f64 / args.rate.max(1) as f64));

    eprintln!(
        "  publishing {} batches of {} (cap {} s)...",
        thousands(batches.len() as u64),
        thousands(batch_size as u64),
        args.max_seconds
    );
    let stop_sampling = CancellationToken::new();
    let abort = CancellationToken::new();
    let sampler = tokio::spawn(ingest::sample_memory(
        ingest.pid,
        stop_sampling.clone(),
        abort.clone(),
    ));
    let cpu_before = cpu::snapshot(ingest.pid, &database.admin_url, &database.name).await;
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let collector = tokio::spawn(load::collect_receipts(
        subscriber,
        prefix,
        batches.len(),
        deadline,
        abort.clone(),
    ));
    let outgoing: Vec<_> = batches.iter().map(Batch::outgoing).collect();
    let published = trust_bench::publish::publish(
        &js,
        &submit_subject,
        "trust.ingest.v1.ObservationBatch",
        &outgoing,
        args.window,
        interval,
        deadline,
        &abort,
    )
    .await;
    if published.stopped.is_some() && Instant::now() < deadline {
        // Publishing failed: nothing more will come.
        abort.cancel();
    }
    let receipts = collector.await.context("receipt collector")?;
    let cpu_after = cpu::snapshot(ingest.pid, &database.admin_url, &database.name).await;
    stop_sampling.cancel();
    let memory = sampler.await.context("memory sampler")?;
    let ingest_died = ingest::proc_status(ingest.pid)
        .exited
        .then(|| format!("Its log ends:\n{}", ingest.log_tail(30)));
    let ingest_stop = ingest.stop(Duration::from_secs(30)).await?;
    drop(batches);
    drop(outgoing);

    eprintln!("  measuring raw COPY of the same rows...");
    let copy = copy::raw_copy_rate(database, plan)
        .await
        .map_err(|e| format!("{e:#}"));
    Ok(Run {
        mode: args.mode,
        rate: args.rate,
        batch_size,
        batch_observations,
        max_seconds: args.max_seconds,
        history_load,
        published,
        receipts,
        memory,
        cpu: cpu::usage(&cpu_before, &cpu_after),
        copy,
        ingest_died,
        ingest_stop,
    })
}

/// Encode every submission before the clock starts: batch `k` is observations `k*size..` with id
/// `<prefix><k>`.
fn encode_batches(plan: &Plan, size: usize, prefix: &str) -> Vec<Batch> {
    let size = size as u64;
    (0..plan.observations.div_ceil(size))
        .map(|k| {
            let range = k * size..((k + 1) * size).min(plan.observations);
            let observations = range.end - range.start;
            let id = format!("{prefix}{k:07}");
            let batch = plan.batch(id.clone(), range);
            Batch {
                id,
                observations,
                payload: Bytes::from(batch.encode_to_vec()),
            }
        })
        .collect()
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
