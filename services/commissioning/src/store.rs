//! Postgres adapter of commissioning: the `indicator_concern` register. Every function runs on the caller's
//! connection (inside the consumer's transaction when called from the receiver).

use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::commissioning::v1 as pb;
use trust_runtime::grpc::timestamp;

use crate::domain::{Concern, Held};

/// The occurrence held for a key, locked until the transaction ends so two replicas cannot both decide
/// against the same row.
pub async fn lock_held(conn: &mut PgConnection, dedup_key: &str) -> Result<Option<Held>, sqlx::Error> {
    let row: Option<(String, Option<OffsetDateTime>, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT occurrence_id, raised_at, resolved_at FROM indicator_concern WHERE dedup_key = $1 FOR UPDATE",
    )
    .bind(dedup_key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(occurrence_id, raised_at, resolved_at)| Held {
        occurrence_id,
        raised_at,
        resolved_at,
    }))
}

/// Record a concern nothing was held for, open (`resolved_at` None) or already resolved. Returns false
/// when another transaction inserted the key first (the caller retries and decides again against it).
pub async fn insert(
    conn: &mut PgConnection,
    concern: &Concern,
    raised_at: Option<OffsetDateTime>,
    resolved_at: Option<OffsetDateTime>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO indicator_concern (dedup_key, occurrence_id, indicator_code, locality_code, \
         owner_partner_code, summary, raised_at, resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(&concern.dedup_key)
    .bind(&concern.occurrence_id)
    .bind(&concern.indicator_code)
    .bind(&concern.locality_code)
    .bind(&concern.owner_partner_code)
    .bind(&concern.summary)
    .bind(raised_at)
    .bind(resolved_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Replace the occurrence held for the key with `concern`: open when `resolved_at` is None.
pub async fn replace(
    conn: &mut PgConnection,
    concern: &Concern,
    raised_at: Option<OffsetDateTime>,
    resolved_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE indicator_concern SET occurrence_id = $2, indicator_code = $3, locality_code = $4, \
         owner_partner_code = $5, summary = $6, raised_at = $7, resolved_at = $8 WHERE dedup_key = $1",
    )
    .bind(&concern.dedup_key)
    .bind(&concern.occurrence_id)
    .bind(&concern.indicator_code)
    .bind(&concern.locality_code)
    .bind(&concern.owner_partner_code)
    .bind(&concern.summary)
    .bind(raised_at)
    .bind(resolved_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Fill in the raise of the held occurrence whose resolve came first; it stays resolved. The raise's
/// summary describes the concern, so it replaces the resolve's.
pub async fn complete_raise(
    conn: &mut PgConnection,
    concern: &Concern,
    raised_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE indicator_concern SET indicator_code = $3, locality_code = $4, owner_partner_code = $5, \
         summary = $6, raised_at = $7 WHERE dedup_key = $1 AND occurrence_id = $2",
    )
    .bind(&concern.dedup_key)
    .bind(&concern.occurrence_id)
    .bind(&concern.indicator_code)
    .bind(&concern.locality_code)
    .bind(&concern.owner_partner_code)
    .bind(&concern.summary)
    .bind(raised_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Resolve the held occurrence.
pub async fn resolve(
    conn: &mut PgConnection,
    dedup_key: &str,
    occurrence_id: &str,
    resolved_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE indicator_concern SET resolved_at = $3 WHERE dedup_key = $1 AND occurrence_id = $2")
        .bind(dedup_key)
        .bind(occurrence_id)
        .bind(resolved_at)
        .execute(conn)
        .await?;
    Ok(())
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

/// Concerns newest first (open ones only unless `include_resolved`).
pub async fn list(
    conn: &mut PgConnection,
    include_resolved: bool,
) -> Result<Vec<pb::IndicatorConcern>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT dedup_key, indicator_code, locality_code, owner_partner_code, summary, raised_at, resolved_at \
         FROM indicator_concern WHERE $1 OR resolved_at IS NULL \
         ORDER BY coalesce(raised_at, resolved_at) DESC, dedup_key",
    )
    .bind(include_resolved)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                dedup_key,
                indicator_code,
                locality_code,
                owner_partner_code,
                summary,
                raised_at,
                resolved_at,
            )| {
                pb::IndicatorConcern {
                    dedup_key,
                    indicator_code,
                    locality_code,
                    owner_partner_code,
                    summary,
                    raised_at: raised_at.map(timestamp),
                    resolved_at: resolved_at.map(timestamp),
                }
            },
        )
        .collect())
}
