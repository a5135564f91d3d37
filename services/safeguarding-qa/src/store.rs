//! Postgres adapter of safeguarding-qa: the `performance_value` table. Every function runs on the caller's
//! connection (inside the consumer's transaction when called from the receiver).

use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::common::v1::Period;
use trust_proto::safeguarding::v1 as pb;
use trust_runtime::grpc::timestamp;

use crate::domain::{PerformanceValue, Version};

/// The version held for an indicator and locality, locked until the transaction ends so two replicas
/// cannot both decide against the same row.
pub async fn lock_held(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
) -> Result<Option<Version>, sqlx::Error> {
    let row: Option<(i32, i32, i64)> = sqlx::query_as(
        "SELECT period_year, period_number, revision FROM performance_value \
         WHERE indicator_code = $1 AND locality_code = $2 FOR UPDATE",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(period_year, period_number, revision)| Version {
        period_year,
        period_number,
        revision: u32::try_from(revision).unwrap_or(0),
    }))
}

/// Store the first value of an indicator and locality. Returns false when another transaction inserted
/// one first (the caller retries and decides again against it).
pub async fn insert(conn: &mut PgConnection, value: &PerformanceValue) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO performance_value (indicator_code, locality_code, period_type, period_year, \
         period_number, value, rag, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (indicator_code, locality_code) DO NOTHING",
    )
    .bind(&value.indicator_code)
    .bind(&value.locality_code)
    .bind(value.period_type)
    .bind(value.period_year)
    .bind(value.period_number)
    .bind(value.value)
    .bind(value.rag)
    .bind(i64::from(value.revision))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Replace the value held for the indicator and locality (the caller has decided it is newer).
pub async fn replace(conn: &mut PgConnection, value: &PerformanceValue) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE performance_value SET period_type = $3, period_year = $4, period_number = $5, value = $6, \
         rag = $7, revision = $8, received_at = now() WHERE indicator_code = $1 AND locality_code = $2",
    )
    .bind(&value.indicator_code)
    .bind(&value.locality_code)
    .bind(value.period_type)
    .bind(value.period_year)
    .bind(value.period_number)
    .bind(value.value)
    .bind(value.rag)
    .bind(i64::from(value.revision))
    .execute(conn)
    .await?;
    Ok(())
}

type Row = (String, String, i32, i32, i32, f64, i32, i64, OffsetDateTime);

/// The values held, ordered by indicator then locality; one indicator's when `indicator` is given.
pub async fn list(
    conn: &mut PgConnection,
    indicator: Option<&str>,
) -> Result<Vec<pb::PerformanceValue>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT indicator_code, locality_code, period_type, period_year, period_number, value, rag, \
         revision, received_at FROM performance_value \
         WHERE $1::text IS NULL OR indicator_code = $1 \
         ORDER BY indicator_code, locality_code",
    )
    .bind(indicator)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                indicator_code,
                locality_code,
                period_type,
                year,
                number,
                value,
                rag,
                revision,
                received_at,
            )| {
                pb::PerformanceValue {
                    indicator_code,
                    locality_code,
                    period: Some(Period {
                        r#type: period_type,
                        year,
                        number,
                    }),
                    value,
                    rag,
                    revision: u32::try_from(revision).unwrap_or(0),
                    received_at: Some(timestamp(received_at)),
                }
            },
        )
        .collect())
}
