//! The benchmark's own database (provisioned as the tests' TestEnv does: one role and schema per service),
//! history preloaded with COPY as the ingest role, and the raw COPY rate of the run's rows.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use trust_runtime::db::{self, ServiceSchema};

use crate::workload::{COPY_COLUMNS, Plan};

/// (role, schema) of each service, as provisioned for tests and deployments.
const SERVICES: [(&str, &str); 4] = [
    ("trust_ingest", "ingest"),
    ("trust_safeguarding", "safeguarding"),
    ("trust_commissioning", "commissioning"),
    ("trust_notifications", "notifications"),
];
pub const INGEST_ROLE: &str = "trust_ingest";

/// Rows per COPY data message while streaming history.
const HISTORY_CHUNK_ROWS: u64 = 20_000;

pub struct Database {
    pub admin_url: String,
    pub name: String,
    /// As the ingest service's role.
    pub ingest_url: String,
}

impl Database {
    pub async fn provision(admin_url: &str, name: &str) -> Result<Self> {
        let schemas: Vec<ServiceSchema> = SERVICES
            .iter()
            .map(|(role, schema)| ServiceSchema {
                role: (*role).to_owned(),
                schema: (*schema).to_owned(),
                password: None,
            })
            .collect();
        db::provision(admin_url, name, &schemas)
            .await
            .with_context(|| format!("provisioning database {name} (is Postgres running at {admin_url}?)"))?;
        let admin = PgConnectOptions::from_str(admin_url).context("parsing --admin-url")?;
        let host = admin.get_host().to_owned();
        let port = admin.get_port();
        let ingest_url = if host.starts_with('/') {
            format!("postgres:///{name}?host={host}&port={port}&user={INGEST_ROLE}")
        } else {
            format!("postgres://{INGEST_ROLE}@{host}:{port}/{name}")
        };
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            ingest_url,
        })
    }

    /// A connection as the ingest role with its schema on the search path (as the service connects).
    pub async fn connect_as_ingest(&self) -> Result<PgConnection> {
        let options = PgConnectOptions::from_str(&self.ingest_url)?.options([("search_path", "ingest")]);
        Ok(PgConnection::connect_with(&options).await?)
    }

    pub async fn drop(&self) -> Result<()> {
        db::drop_database(&self.admin_url, &self.name).await?;
        Ok(())
    }
}

/// Stream `plan.history.rows` observations into `observation` with COPY (foreign keys, primary key and
/// all), then VACUUM (ANALYZE), as a long-running deployment's table would be. Returns the time it took.
pub async fn preload_history(database: &Database, plan: &Plan) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = database.connect_as_ingest().await?;
    let statement = format!("COPY observation ({COPY_COLUMNS}) FROM STDIN");
    let mut copy = conn.copy_in_raw(&statement).await?;
    let total = plan.history.rows;
    let mut buffer = String::with_capacity(2 << 20);
    let mut next_report = 1_000_000;
    let mut j = 0;
    while j < total {
        let end = (j + HISTORY_CHUNK_ROWS).min(total);
        buffer.clear();
        for row in j..end {
            plan.history_row(row).copy_line("history", &mut buffer);
        }
        copy.send(buffer.as_bytes()).await?;
        j = end;
        if j >= next_report {
            eprintln!(
                "  history: {j} of {total} rows ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            next_report += 1_000_000;
        }
    }
    copy.finish().await?;
    // What autovacuum would have done to a table this old (and it may be off, as on CI machines): hint bits
    // and the visibility map set, statistics current.
    sqlx::query("VACUUM (ANALYZE) observation")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(started.elapsed())
}

/// The raw COPY rate of the run's rows (same columns as `observation`) into a scratch table shaped like it
/// (its defaults and primary key; not its foreign keys) in the same database, as the ingest role.
pub struct CopyRate {
    pub rows: u64,
    pub elapsed: Duration,
}

pub async fn raw_copy_rate(database: &Database, plan: &Plan) -> Result<CopyRate> {
    let mut conn = database.connect_as_ingest().await?;
    sqlx::query("DROP TABLE IF EXISTS bench_copy_scratch")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE bench_copy_scratch (LIKE observation INCLUDING DEFAULTS INCLUDING INDEXES)")
        .execute(&mut conn)
        .await?;
    // The rows are made before the clock starts: this is the database's rate, not the generator's.
    let mut text = String::with_capacity(usize::try_from(plan.observations).unwrap_or(0) * 96);
    for i in 0..plan.observations {
        plan.run_row(i).copy_line("copy", &mut text);
    }
    let statement = format!("COPY bench_copy_scratch ({COPY_COLUMNS}) FROM STDIN");
    let started = Instant::now();
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(text.as_bytes()).await?;
    let rows = copy.finish().await?;
    let elapsed = started.elapsed();
    sqlx::query("DROP TABLE bench_copy_scratch")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(CopyRate { rows, elapsed })
}
