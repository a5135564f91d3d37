//! History preloaded with COPY as the ingest role, and the raw COPY rate of the run's rows.

use std::time::Duration;

use anyhow::Result;
use sqlx::Connection;
use tokio::time::Instant;
use trust_bench::database::Database;

use crate::workload::{COPY_COLUMNS, Plan};

pub const INGEST_ROLE: &str = "trust_ingest";

/// Rows per COPY data message while streaming history.
const HISTORY_CHUNK_ROWS: u64 = 20_000;

/// Stream `plan.history.rows` observations into `observation` with COPY (foreign keys, primary key and
/// all), then VACUUM (ANALYZE), as a long-running deployment's table would be. Returns the time it took.
pub async fn preload_history(database: &Database, plan: &Plan) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = database.connect_as(INGEST_ROLE, "ingest").await?;
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
    let mut conn = database.connect_as(INGEST_ROLE, "ingest").await?;
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
