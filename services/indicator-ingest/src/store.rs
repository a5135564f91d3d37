//! Postgres adapter of indicator ingest: catalogue lookups, the submission ledger, observations and their
//! revisions, and escalation state. Every function runs inside the caller's transaction.

use std::collections::HashMap;

use prost::Message;
use sqlx::PgConnection;
use trust_proto::common::v1::{MeasureType, Polarity};
use trust_proto::ingest::v1 as pb;

use crate::domain::{IndicatorSpec, Period, PeriodType, TargetSpec};

type IndicatorRow = (String, String, i32, i32, String, String, Option<f64>, Option<f64>);

pub async fn indicators(
    conn: &mut PgConnection,
    codes: &[String],
) -> Result<HashMap<String, IndicatorSpec>, sqlx::Error> {
    let rows: Vec<IndicatorRow> = sqlx::query_as(
        "SELECT code, name, measure, polarity, period_type, owner_partner_code, valid_min, valid_max \
         FROM indicator WHERE code = ANY($1)",
    )
    .bind(codes)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(code, name, measure, polarity, period_type, owner, valid_min, valid_max)| {
                let spec = IndicatorSpec {
                    code: code.clone(),
                    name,
                    measure: MeasureType::try_from(measure).unwrap_or(MeasureType::Unspecified),
                    polarity: Polarity::try_from(polarity).unwrap_or(Polarity::Unspecified),
                    period_type: PeriodType::parse(&period_type)?,
                    owner_partner_code: owner,
                    valid_min,
                    valid_max,
                };
                Some((code, spec))
            },
        )
        .collect())
}

/// A target in force, with the baseline it was set against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetInForce {
    pub spec: TargetSpec,
    pub baseline: Option<f64>,
}

/// Who locked a period, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodLock {
    pub locked_by: String,
    pub locked_at: time::OffsetDateTime,
}

/// Locked (approved) periods of these indicators, keyed by (indicator, year, number).
pub async fn period_locks(
    conn: &mut PgConnection,
    indicators: &[String],
) -> Result<HashMap<(String, i32, i32), PeriodLock>, sqlx::Error> {
    let rows: Vec<(String, i32, i32, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT indicator_code, period_year, period_number, locked_by, locked_at FROM period_lock \
         WHERE indicator_code = ANY($1)",
    )
    .bind(indicators)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(indicator, year, number, locked_by, locked_at)| {
            ((indicator, year, number), PeriodLock { locked_by, locked_at })
        })
        .collect())
}

/// Lock a period; false when it was locked already.
pub async fn lock_period(
    conn: &mut PgConnection,
    indicator: &str,
    period: Period,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let locked = sqlx::query(
        "INSERT INTO period_lock (indicator_code, period_type, period_year, period_number, locked_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(indicator)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .bind(by)
    .execute(conn)
    .await?;
    Ok(locked.rows_affected() == 1)
}

/// Unlock a period; the lock that was removed, if any.
pub async fn unlock_period(
    conn: &mut PgConnection,
    indicator: &str,
    period: Period,
) -> Result<Option<PeriodLock>, sqlx::Error> {
    let removed: Option<(String, time::OffsetDateTime)> = sqlx::query_as(
        "DELETE FROM period_lock WHERE indicator_code = $1 AND period_type = $2 AND period_year = $3 \
         AND period_number = $4 RETURNING locked_by, locked_at",
    )
    .bind(indicator)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .fetch_optional(conn)
    .await?;
    Ok(removed.map(|(locked_by, locked_at)| PeriodLock { locked_by, locked_at }))
}

/// One accountable change.
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub entity: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: &'a str,
}

pub async fn audit(conn: &mut PgConnection, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (actor, action, entity, before, after, reason) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(entry.actor)
        .bind(entry.action)
        .bind(&entry.entity)
        .bind(entry.before.map(sqlx::types::Json))
        .bind(entry.after.map(sqlx::types::Json))
        .bind(entry.reason)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn find_receipt(
    conn: &mut PgConnection,
    partner: &str,
    batch_id: &str,
) -> Result<Option<pb::SubmissionReceipt>, sqlx::Error> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT receipt FROM submission WHERE partner_code = $1 AND batch_id = $2")
            .bind(partner)
            .bind(batch_id)
            .fetch_optional(conn)
            .await?;
    Ok(bytes.and_then(|bytes| pb::SubmissionReceipt::decode(bytes.as_slice()).ok()))
}

/// Keep the receipt in the ledger. Returns false if this batch was recorded already (a concurrent twin).
pub async fn record_submission(
    conn: &mut PgConnection,
    receipt: &pb::SubmissionReceipt,
) -> Result<bool, sqlx::Error> {
    let outcome = pb::SubmissionOutcome::try_from(receipt.outcome)
        .unwrap_or(pb::SubmissionOutcome::Unspecified)
        .as_str_name();
    let inserted = sqlx::query(
        "INSERT INTO submission (partner_code, batch_id, outcome, receipt) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&receipt.partner_code)
    .bind(&receipt.batch_id)
    .bind(outcome)
    .bind(receipt.encode_to_vec())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

#[derive(sqlx::FromRow)]
struct ObservationRow {
    indicator_code: String,
    locality_code: String,
    period_type: String,
    period_year: i32,
    period_number: i32,
    value: f64,
    numerator: Option<f64>,
    denominator: Option<f64>,
    note: String,
    rag: i32,
    revision: i32,
    partner_code: String,
    batch_id: String,
    recorded_at: time::OffsetDateTime,
}

/// Current values of an indicator, for the read API.
pub async fn list_observations(
    conn: &mut PgConnection,
    indicator: &str,
    locality: Option<&str>,
) -> Result<Vec<pb::StoredObservation>, sqlx::Error> {
    let rows: Vec<ObservationRow> = sqlx::query_as(
        "SELECT indicator_code, locality_code, period_type, period_year, period_number, value, numerator, \
         denominator, note, rag, revision, partner_code, batch_id, recorded_at FROM observation \
         WHERE indicator_code = $1 AND ($2::text IS NULL OR locality_code = $2) \
         ORDER BY locality_code, period_year, period_number",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let period =
                Period::new(PeriodType::parse(&r.period_type)?, r.period_year, r.period_number).ok()?;
            Some(pb::StoredObservation {
                observation: Some(pb::Observation {
                    indicator_code: r.indicator_code,
                    locality_code: r.locality_code,
                    period: Some(period.to_proto()),
                    value: r.value,
                    numerator: r.numerator,
                    denominator: r.denominator,
                    note: r.note,
                    correction_reason: String::new(),
                }),
                rag: r.rag,
                revision: u32::try_from(r.revision).unwrap_or(0),
                partner_code: r.partner_code,
                batch_id: r.batch_id,
                recorded_at: Some(trust_runtime::grpc::timestamp(r.recorded_at)),
            })
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct RevisionRow {
    period_type: String,
    period_year: i32,
    period_number: i32,
    revision: i32,
    value: f64,
    numerator: Option<f64>,
    denominator: Option<f64>,
    note: String,
    partner_code: String,
    batch_id: String,
    submitted_by: String,
    correction_reason: String,
    recorded_at: time::OffsetDateTime,
    locked: bool,
}

/// Every period of a series with all its revisions, oldest first.
pub async fn series(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
) -> Result<Vec<pb::SeriesPoint>, sqlx::Error> {
    let rows: Vec<RevisionRow> = sqlx::query_as(
        "SELECT r.period_type, r.period_year, r.period_number, r.revision, r.value, r.numerator, r.denominator, \
         r.note, r.partner_code, r.batch_id, r.submitted_by, r.correction_reason, r.recorded_at, \
         (l.indicator_code IS NOT NULL) AS locked \
         FROM observation_revision r LEFT JOIN period_lock l ON l.indicator_code = r.indicator_code \
         AND l.period_type = r.period_type AND l.period_year = r.period_year AND l.period_number = r.period_number \
         WHERE r.indicator_code = $1 AND r.locality_code = $2 \
         ORDER BY r.period_year, r.period_number, r.revision",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_all(conn)
    .await?;
    let mut points: Vec<pb::SeriesPoint> = Vec::new();
    for row in rows {
        let Some(period) = PeriodType::parse(&row.period_type)
            .and_then(|kind| Period::new(kind, row.period_year, row.period_number).ok())
        else {
            continue;
        };
        let revision = pb::Revision {
            revision: u32::try_from(row.revision).unwrap_or(0),
            value: row.value,
            numerator: row.numerator,
            denominator: row.denominator,
            note: row.note,
            partner_code: row.partner_code,
            batch_id: row.batch_id,
            submitted_by: row.submitted_by,
            correction_reason: row.correction_reason,
            recorded_at: Some(trust_runtime::grpc::timestamp(row.recorded_at)),
        };
        let label = period.to_string();
        match points.last_mut() {
            Some(point) if point.period_label == label => point.revisions.push(revision),
            _ => points.push(pb::SeriesPoint {
                period: Some(period.to_proto()),
                period_label: label,
                revisions: vec![revision],
                locked: row.locked,
            }),
        }
    }
    Ok(points)
}
