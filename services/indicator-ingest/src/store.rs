//! Postgres adapter of indicator ingest: catalogue lookups, the submission ledger, observations and their
//! revisions, and escalation state. Every function runs inside the caller's transaction.

use std::collections::{HashMap, HashSet};

use prost::Message;
use sqlx::PgConnection;
use trust_proto::common::v1::{MeasureType, Polarity, Rag};
use trust_proto::ingest::v1 as pb;
use uuid::Uuid;

use crate::domain::validation::ValidObservation;
use crate::domain::{IndicatorSpec, Period, PeriodType, TargetSpec};

pub async fn partner_exists(conn: &mut PgConnection, code: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM partner WHERE code = $1)")
        .bind(code)
        .fetch_one(conn)
        .await
}

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

pub async fn known_localities(
    conn: &mut PgConnection,
    codes: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT code FROM locality WHERE code = ANY($1)")
        .bind(codes)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

pub async fn locality_name(conn: &mut PgConnection, code: &str) -> Result<String, sqlx::Error> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM locality WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await?;
    Ok(name.unwrap_or_else(|| code.to_owned()))
}

/// Indicators the partner may submit under the information sharing protocol.
pub async fn permitted_indicators(
    conn: &mut PgConnection,
    partner: &str,
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT indicator_code FROM submission_permission WHERE partner_code = $1")
            .bind(partner)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A target in force, with the baseline it was set against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetInForce {
    pub spec: TargetSpec,
    pub baseline: Option<f64>,
}

/// The target in force for a locality and period: the locality's own, else the city-wide default; of those
/// covering the period, the one that started latest.
pub async fn target_for(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
    period: Period,
) -> Result<Option<TargetInForce>, sqlx::Error> {
    let row: Option<(f64, f64, Option<f64>)> = sqlx::query_as(
        "SELECT value, amber_tolerance, baseline FROM target WHERE indicator_code = $1 \
         AND (locality_code = $2 OR locality_code IS NULL) \
         AND (from_year IS NULL OR (from_year, from_number) <= ($3, $4)) \
         AND (to_year IS NULL OR (to_year, to_number) >= ($3, $4)) \
         ORDER BY locality_code NULLS LAST, from_year DESC NULLS LAST, from_number DESC NULLS LAST LIMIT 1",
    )
    .bind(indicator)
    .bind(locality)
    .bind(period.year())
    .bind(period.number())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(value, amber_tolerance, baseline)| TargetInForce {
        spec: TargetSpec {
            value,
            amber_tolerance,
        },
        baseline,
    }))
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

/// The value currently held for an observation's period, if any (value, numerator, denominator).
pub async fn current_value(
    conn: &mut PgConnection,
    observation: &ValidObservation,
) -> Result<Option<(f64, Option<f64>, Option<f64>)>, sqlx::Error> {
    let period = observation.period;
    sqlx::query_as(
        "SELECT value, numerator, denominator FROM observation WHERE indicator_code = $1 \
         AND locality_code = $2 AND period_type = $3 AND period_year = $4 AND period_number = $5",
    )
    .bind(&observation.indicator.code)
    .bind(&observation.locality_code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .fetch_optional(conn)
    .await
}

/// What storing one observation did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Created,
    /// A correction: `previous` is the value it replaced.
    Updated {
        revision: i32,
        previous: f64,
    },
    Unchanged,
}

/// Store a value as the current one for its period, adding a revision when it differs from what is held.
pub async fn store_observation(
    conn: &mut PgConnection,
    observation: &ValidObservation,
    rag: Rag,
    partner: &str,
    batch_id: &str,
    submitted_by: &str,
) -> Result<(Change, i32), sqlx::Error> {
    let period = observation.period;
    let current: Option<(f64, Option<f64>, Option<f64>, i32)> = sqlx::query_as(
        "SELECT value, numerator, denominator, revision FROM observation WHERE indicator_code = $1 \
         AND locality_code = $2 AND period_type = $3 AND period_year = $4 AND period_number = $5 FOR UPDATE",
    )
    .bind(&observation.indicator.code)
    .bind(&observation.locality_code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .fetch_optional(&mut *conn)
    .await?;
    let (change, revision) = match current {
        Some((value, numerator, denominator, revision))
            if value == observation.value
                && numerator == observation.numerator
                && denominator == observation.denominator =>
        {
            return Ok((Change::Unchanged, revision));
        }
        Some((previous, _, _, revision)) => (
            Change::Updated {
                revision: revision + 1,
                previous,
            },
            revision + 1,
        ),
        None => (Change::Created, 1),
    };
    sqlx::query(
        "INSERT INTO observation (indicator_code, locality_code, period_type, period_year, period_number, \
         value, numerator, denominator, note, rag, revision, partner_code, batch_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (indicator_code, locality_code, period_type, period_year, period_number) DO UPDATE SET \
         value = EXCLUDED.value, numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, \
         note = EXCLUDED.note, rag = EXCLUDED.rag, revision = EXCLUDED.revision, \
         partner_code = EXCLUDED.partner_code, batch_id = EXCLUDED.batch_id, recorded_at = now()",
    )
    .bind(&observation.indicator.code)
    .bind(&observation.locality_code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .bind(observation.value)
    .bind(observation.numerator)
    .bind(observation.denominator)
    .bind(&observation.note)
    .bind(rag as i32)
    .bind(revision)
    .bind(partner)
    .bind(batch_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO observation_revision (indicator_code, locality_code, period_type, period_year, \
         period_number, revision, value, numerator, denominator, note, partner_code, batch_id, submitted_by, \
         correction_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&observation.indicator.code)
    .bind(&observation.locality_code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .bind(revision)
    .bind(observation.value)
    .bind(observation.numerator)
    .bind(observation.denominator)
    .bind(&observation.note)
    .bind(partner)
    .bind(batch_id)
    .bind(submitted_by)
    .bind(&observation.correction_reason)
    .execute(&mut *conn)
    .await?;
    Ok((change, revision))
}

/// True when no later period than `period` is stored for the series: only the latest value moves the
/// escalation state (a correction to last year must not re-raise or clear this year's concern).
pub async fn is_latest_period(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
    period: Period,
) -> Result<bool, sqlx::Error> {
    let later: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM observation WHERE indicator_code = $1 AND locality_code = $2 \
         AND (period_year, period_number) > ($3, $4))",
    )
    .bind(indicator)
    .bind(locality)
    .bind(period.year())
    .bind(period.number())
    .fetch_one(conn)
    .await?;
    Ok(!later)
}

/// The open occurrence of an escalation, if any.
pub async fn open_escalation(conn: &mut PgConnection, dedup_key: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT occurrence_id FROM escalation WHERE dedup_key = $1 AND resolved_at IS NULL FOR UPDATE",
    )
    .bind(dedup_key)
    .fetch_optional(conn)
    .await
}

pub struct NewEscalation<'a> {
    pub occurrence_id: Uuid,
    pub dedup_key: &'a str,
    pub rule: &'a str,
    pub indicator_code: &'a str,
    pub locality_code: &'a str,
    pub period_label: &'a str,
    pub value: f64,
    pub target: f64,
}

pub async fn open_new_escalation(
    conn: &mut PgConnection,
    new: &NewEscalation<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO escalation (occurrence_id, dedup_key, rule, indicator_code, locality_code, period_label, \
         value, target) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.occurrence_id)
    .bind(new.dedup_key)
    .bind(new.rule)
    .bind(new.indicator_code)
    .bind(new.locality_code)
    .bind(new.period_label)
    .bind(new.value)
    .bind(new.target)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn resolve_escalation(conn: &mut PgConnection, occurrence_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE escalation SET resolved_at = now() WHERE occurrence_id = $1")
        .bind(occurrence_id)
        .execute(conn)
        .await?;
    Ok(())
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

/// The current value of the latest period before `period` in a series (for direction of travel).
pub async fn previous_period_value(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
    period: Period,
) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT value FROM observation WHERE indicator_code = $1 AND locality_code = $2 \
         AND (period_year, period_number) < ($3, $4) ORDER BY period_year DESC, period_number DESC LIMIT 1",
    )
    .bind(indicator)
    .bind(locality)
    .bind(period.year())
    .bind(period.number())
    .fetch_optional(conn)
    .await
}

/// A series' SPC state and the last period fed to it, locked for update.
pub async fn series_state(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
) -> Result<Option<((i32, i32), crate::domain::SeriesState)>, sqlx::Error> {
    let row: Option<(i32, i32, sqlx::types::Json<crate::domain::SeriesState>)> = sqlx::query_as(
        "SELECT last_year, last_number, state FROM series_state WHERE indicator_code = $1 \
         AND locality_code = $2 FOR UPDATE",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(year, number, state)| ((year, number), state.0)))
}

pub async fn save_series_state(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
    last: (i32, i32),
    state: &crate::domain::SeriesState,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO series_state (indicator_code, locality_code, last_year, last_number, state) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (indicator_code, locality_code) DO UPDATE SET \
         last_year = EXCLUDED.last_year, last_number = EXCLUDED.last_number, state = EXCLUDED.state",
    )
    .bind(indicator)
    .bind(locality)
    .bind(last.0)
    .bind(last.1)
    .bind(sqlx::types::Json(state))
    .execute(conn)
    .await?;
    Ok(())
}

/// Current values of a series in period order, and its last period: used only to rebuild SPC state after a
/// correction or a back-filled period.
pub async fn series_values(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
) -> Result<(Vec<f64>, (i32, i32)), sqlx::Error> {
    let rows: Vec<(f64, i32, i32)> = sqlx::query_as(
        "SELECT value, period_year, period_number FROM observation WHERE indicator_code = $1 \
         AND locality_code = $2 ORDER BY period_year, period_number",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_all(conn)
    .await?;
    let last = rows.last().map_or((0, 0), |(_, year, number)| (*year, *number));
    Ok((rows.into_iter().map(|(value, _, _)| value).collect(), last))
}

/// RAG of the latest period of a series, as held now.
pub async fn latest_status(
    conn: &mut PgConnection,
    indicator: &str,
    locality: &str,
) -> Result<Option<Rag>, sqlx::Error> {
    let rag: Option<i32> = sqlx::query_scalar(
        "SELECT rag FROM observation WHERE indicator_code = $1 AND locality_code = $2 \
         ORDER BY period_year DESC, period_number DESC LIMIT 1",
    )
    .bind(indicator)
    .bind(locality)
    .fetch_optional(conn)
    .await?;
    Ok(rag.map(|r| Rag::try_from(r).unwrap_or(Rag::Unspecified)))
}

pub async fn flag_outlier(
    conn: &mut PgConnection,
    observation: &ValidObservation,
) -> Result<(), sqlx::Error> {
    let period = observation.period;
    sqlx::query(
        "UPDATE observation SET outlier = true WHERE indicator_code = $1 AND locality_code = $2 \
         AND period_type = $3 AND period_year = $4 AND period_number = $5",
    )
    .bind(&observation.indicator.code)
    .bind(&observation.locality_code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .execute(conn)
    .await?;
    Ok(())
}

/// Localities the partner may submit for; empty when it may submit for the whole city.
pub async fn permitted_localities(
    conn: &mut PgConnection,
    partner: &str,
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT locality_code FROM submission_locality_permission WHERE partner_code = $1",
    )
    .bind(partner)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The locality and its ancestors in the hierarchy in force on `on`, nearest first.
pub async fn lineage(
    conn: &mut PgConnection,
    locality: &str,
    on: time::Date,
) -> Result<Vec<String>, sqlx::Error> {
    let mut lineage = vec![locality.to_owned()];
    // Bounded: a hierarchy is shallow, and the bound guards against a cycle in bad data.
    for _ in 0..16 {
        let parent: Option<String> = sqlx::query_scalar(
            "SELECT parent_code FROM locality_parent WHERE locality_code = $1 AND effective_from <= $2 \
             ORDER BY effective_from DESC LIMIT 1",
        )
        .bind(lineage.last())
        .bind(on)
        .fetch_optional(&mut *conn)
        .await?;
        match parent {
            Some(parent) if !lineage.contains(&parent) => lineage.push(parent),
            _ => break,
        }
    }
    Ok(lineage)
}
