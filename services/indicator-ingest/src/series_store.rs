//! Postgres adapter for a whole submission at once: the series it touches are read in one statement each
//! (their SPC state, or their history when a value corrects or back-fills one), and what evaluation decided
//! is written back in one statement per table, so a batch of thousands costs a handful of round trips.

use std::collections::HashMap;

use sqlx::PgConnection;
use trust_proto::common::v1::Rag;
use uuid::Uuid;

use crate::domain::SeriesState;
pub use crate::domain::series::{HeldState, PeriodIndex, SeriesKey, StoredPoint};

fn split(keys: &[SeriesKey]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(i, l)| (i.as_str(), l.as_str())).unzip()
}

fn rag(value: i32) -> Rag {
    Rag::try_from(value).unwrap_or(Rag::Unspecified)
}

/// The held states of these series, locked until the transaction ends so that two writers of one series
/// take turns.
pub async fn held_states(
    conn: &mut PgConnection,
    keys: &[SeriesKey],
) -> Result<HashMap<SeriesKey, HeldState>, sqlx::Error> {
    let (indicators, localities) = split(keys);
    type Row = (String, String, i32, i32, Option<f64>, Option<i32>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.indicator_code, s.locality_code, s.last_year, s.last_number, s.last_value, s.last_rag, \
         s.state::text FROM series_state s JOIN unnest($1::text[], $2::text[]) AS k (i, l) \
         ON s.indicator_code = k.i AND s.locality_code = k.l ORDER BY 1, 2 FOR UPDATE OF s",
    )
    .bind(&indicators)
    .bind(&localities)
    .fetch_all(conn)
    .await?;
    let mut held = HashMap::with_capacity(rows.len());
    for (indicator, locality, year, number, last_value, last_rag, state) in rows {
        let state: SeriesState = serde_json::from_str(&state).map_err(|e| sqlx::Error::ColumnDecode {
            index: "state".to_owned(),
            source: Box::new(e),
        })?;
        held.insert(
            (indicator, locality),
            HeldState {
                last: (year, number),
                last_value,
                last_rag: last_rag.map(rag),
                state,
            },
        );
    }
    Ok(held)
}

/// Make a row for each of these series that has none, so that [`held_states`] can lock it: two
/// submissions starting the same new series then take turns instead of both believing it empty. The
/// placeholder holds no latest value, so whoever finds it reads the series' history.
pub async fn claim_new_series(conn: &mut PgConnection, keys: &[SeriesKey]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let (indicators, localities) = split(keys);
    sqlx::query(
        "INSERT INTO series_state (indicator_code, locality_code, last_year, last_number, state) \
         SELECT i, l, 0, 0, '{}'::jsonb FROM unnest($1::text[], $2::text[]) AS k (i, l) \
         ON CONFLICT (indicator_code, locality_code) DO NOTHING",
    )
    .bind(&indicators)
    .bind(&localities)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every stored value of these series, in period order.
pub async fn histories(
    conn: &mut PgConnection,
    keys: &[SeriesKey],
) -> Result<HashMap<SeriesKey, Vec<(PeriodIndex, StoredPoint)>>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (indicators, localities) = split(keys);
    type Row = (String, String, i32, i32, f64, Option<f64>, Option<f64>, i32, i32);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.indicator_code, o.locality_code, o.period_year, o.period_number, o.value, o.numerator, \
         o.denominator, o.revision, o.rag FROM observation o JOIN unnest($1::text[], $2::text[]) AS k (i, l) \
         ON o.indicator_code = k.i AND o.locality_code = k.l \
         ORDER BY o.indicator_code, o.locality_code, o.period_year, o.period_number",
    )
    .bind(&indicators)
    .bind(&localities)
    .fetch_all(conn)
    .await?;
    let mut histories: HashMap<SeriesKey, Vec<(PeriodIndex, StoredPoint)>> = HashMap::new();
    for (indicator, locality, year, number, value, numerator, denominator, revision, rag_value) in rows {
        histories.entry((indicator, locality)).or_default().push((
            (year, number),
            StoredPoint {
                value,
                numerator,
                denominator,
                revision,
                rag: rag(rag_value),
            },
        ));
    }
    Ok(histories)
}

/// Open escalations of these series, by deduplication key, locked.
pub async fn open_escalations(
    conn: &mut PgConnection,
    keys: &[SeriesKey],
) -> Result<HashMap<String, Uuid>, sqlx::Error> {
    let (indicators, localities) = split(keys);
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT e.dedup_key, e.occurrence_id FROM escalation e \
         JOIN unnest($1::text[], $2::text[]) AS k (i, l) ON e.indicator_code = k.i AND e.locality_code = k.l \
         WHERE e.resolved_at IS NULL ORDER BY e.dedup_key FOR UPDATE OF e",
    )
    .bind(&indicators)
    .bind(&localities)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A value to store as the current one for its period, with the revision it becomes.
#[derive(Debug, Clone)]
pub struct ObservationWrite<'a> {
    pub author: Author<'a>,
    pub indicator: &'a str,
    pub locality: &'a str,
    pub period_type: &'static str,
    pub period: PeriodIndex,
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub note: &'a str,
    pub correction_reason: &'a str,
    pub rag: Rag,
    pub revision: i32,
    pub outlier: bool,
}

/// Who submitted a value.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub partner: &'a str,
    pub batch_id: &'a str,
    pub submitted_by: &'a str,
}

/// Store the values as current (inserting or replacing) and append each as a revision.
pub async fn write_observations(
    conn: &mut PgConnection,
    writes: &[ObservationWrite<'_>],
) -> Result<(), sqlx::Error> {
    if writes.is_empty() {
        return Ok(());
    }
    let indicators: Vec<&str> = writes.iter().map(|w| w.indicator).collect();
    let localities: Vec<&str> = writes.iter().map(|w| w.locality).collect();
    let types: Vec<&str> = writes.iter().map(|w| w.period_type).collect();
    let years: Vec<i32> = writes.iter().map(|w| w.period.0).collect();
    let numbers: Vec<i32> = writes.iter().map(|w| w.period.1).collect();
    let values: Vec<f64> = writes.iter().map(|w| w.value).collect();
    let numerators: Vec<Option<f64>> = writes.iter().map(|w| w.numerator).collect();
    let denominators: Vec<Option<f64>> = writes.iter().map(|w| w.denominator).collect();
    let notes: Vec<&str> = writes.iter().map(|w| w.note).collect();
    let reasons: Vec<&str> = writes.iter().map(|w| w.correction_reason).collect();
    let rags: Vec<i32> = writes.iter().map(|w| w.rag as i32).collect();
    let revisions: Vec<i32> = writes.iter().map(|w| w.revision).collect();
    let outliers: Vec<bool> = writes.iter().map(|w| w.outlier).collect();
    let partners: Vec<&str> = writes.iter().map(|w| w.author.partner).collect();
    let batches: Vec<&str> = writes.iter().map(|w| w.author.batch_id).collect();
    let authors: Vec<&str> = writes.iter().map(|w| w.author.submitted_by).collect();
    sqlx::query(
        "INSERT INTO observation (indicator_code, locality_code, period_type, period_year, period_number, \
         value, numerator, denominator, note, rag, revision, outlier, partner_code, batch_id) \
         SELECT i, l, t, y, n, v, nu, de, note, rag, rev, outlier, p, b FROM unnest($1::text[], \
         $2::text[], $3::text[], $4::int4[], $5::int4[], $6::float8[], $7::float8[], $8::float8[], \
         $9::text[], $10::int4[], $11::int4[], $12::bool[], $13::text[], $14::text[]) \
         AS w (i, l, t, y, n, v, nu, de, note, rag, rev, outlier, p, b) \
         ON CONFLICT (indicator_code, locality_code, period_type, period_year, period_number) DO UPDATE SET \
         value = EXCLUDED.value, numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, \
         note = EXCLUDED.note, rag = EXCLUDED.rag, revision = EXCLUDED.revision, outlier = EXCLUDED.outlier, \
         partner_code = EXCLUDED.partner_code, batch_id = EXCLUDED.batch_id, recorded_at = now()",
    )
    .bind(&indicators)
    .bind(&localities)
    .bind(&types)
    .bind(&years)
    .bind(&numbers)
    .bind(&values)
    .bind(&numerators)
    .bind(&denominators)
    .bind(&notes)
    .bind(&rags)
    .bind(&revisions)
    .bind(&outliers)
    .bind(&partners)
    .bind(&batches)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO observation_revision (indicator_code, locality_code, period_type, period_year, \
         period_number, revision, value, numerator, denominator, note, correction_reason, partner_code, \
         batch_id, submitted_by) \
         SELECT i, l, t, y, n, rev, v, nu, de, note, reason, p, b, a FROM unnest($1::text[], \
         $2::text[], $3::text[], $4::int4[], $5::int4[], $6::int4[], $7::float8[], $8::float8[], \
         $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[]) \
         AS w (i, l, t, y, n, rev, v, nu, de, note, reason, p, b, a)",
    )
    .bind(&indicators)
    .bind(&localities)
    .bind(&types)
    .bind(&years)
    .bind(&numbers)
    .bind(&revisions)
    .bind(&values)
    .bind(&numerators)
    .bind(&denominators)
    .bind(&notes)
    .bind(&reasons)
    .bind(&partners)
    .bind(&batches)
    .bind(&authors)
    .execute(conn)
    .await?;
    Ok(())
}

/// Save the states of series whose latest period or SPC state moved.
pub async fn save_states(
    conn: &mut PgConnection,
    states: &[(&SeriesKey, &HeldState)],
) -> Result<(), sqlx::Error> {
    if states.is_empty() {
        return Ok(());
    }
    let indicators: Vec<&str> = states.iter().map(|(k, _)| k.0.as_str()).collect();
    let localities: Vec<&str> = states.iter().map(|(k, _)| k.1.as_str()).collect();
    let years: Vec<i32> = states.iter().map(|(_, s)| s.last.0).collect();
    let numbers: Vec<i32> = states.iter().map(|(_, s)| s.last.1).collect();
    let values: Vec<Option<f64>> = states.iter().map(|(_, s)| s.last_value).collect();
    let rags: Vec<Option<i32>> = states.iter().map(|(_, s)| s.last_rag.map(|r| r as i32)).collect();
    let json: Vec<String> = states
        .iter()
        .map(|(_, s)| serde_json::to_string(&s.state))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO series_state (indicator_code, locality_code, last_year, last_number, last_value, \
         last_rag, state) SELECT i, l, y, n, v, r, s::jsonb FROM unnest($1::text[], $2::text[], $3::int4[], \
         $4::int4[], $5::float8[], $6::int4[], $7::text[]) AS w (i, l, y, n, v, r, s) \
         ON CONFLICT (indicator_code, locality_code) DO UPDATE SET last_year = EXCLUDED.last_year, \
         last_number = EXCLUDED.last_number, last_value = EXCLUDED.last_value, \
         last_rag = EXCLUDED.last_rag, state = EXCLUDED.state",
    )
    .bind(&indicators)
    .bind(&localities)
    .bind(&years)
    .bind(&numbers)
    .bind(&values)
    .bind(&rags)
    .bind(&json)
    .execute(conn)
    .await?;
    Ok(())
}

/// An escalation occurrence opened by this batch (already resolved when a later value in the same batch
/// cleared it).
#[derive(Debug, Clone)]
pub struct OpenedEscalation {
    pub occurrence_id: Uuid,
    pub dedup_key: String,
    pub rule: &'static str,
    pub indicator_code: String,
    pub locality_code: String,
    pub period_label: String,
    pub value: f64,
    pub target: f64,
    pub resolved: bool,
}

/// Record the occurrences opened by a batch, and resolve those it cleared that were open before it.
pub async fn write_escalations(
    conn: &mut PgConnection,
    opened: &[OpenedEscalation],
    resolved_before: &[Uuid],
) -> Result<(), sqlx::Error> {
    if !opened.is_empty() {
        let ids: Vec<Uuid> = opened.iter().map(|e| e.occurrence_id).collect();
        let keys: Vec<&str> = opened.iter().map(|e| e.dedup_key.as_str()).collect();
        let rules: Vec<&str> = opened.iter().map(|e| e.rule).collect();
        let indicators: Vec<&str> = opened.iter().map(|e| e.indicator_code.as_str()).collect();
        let localities: Vec<&str> = opened.iter().map(|e| e.locality_code.as_str()).collect();
        let labels: Vec<&str> = opened.iter().map(|e| e.period_label.as_str()).collect();
        let values: Vec<f64> = opened.iter().map(|e| e.value).collect();
        let targets: Vec<f64> = opened.iter().map(|e| e.target).collect();
        let resolved: Vec<bool> = opened.iter().map(|e| e.resolved).collect();
        sqlx::query(
            "INSERT INTO escalation (occurrence_id, dedup_key, rule, indicator_code, locality_code, \
             period_label, value, target, resolved_at) \
             SELECT id, k, r, i, l, p, v, t, CASE WHEN done THEN now() END FROM unnest($1::uuid[], \
             $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], \
             $9::bool[]) AS e (id, k, r, i, l, p, v, t, done)",
        )
        .bind(&ids)
        .bind(&keys)
        .bind(&rules)
        .bind(&indicators)
        .bind(&localities)
        .bind(&labels)
        .bind(&values)
        .bind(&targets)
        .bind(&resolved)
        .execute(&mut *conn)
        .await?;
    }
    if !resolved_before.is_empty() {
        sqlx::query("UPDATE escalation SET resolved_at = now() WHERE occurrence_id = ANY($1)")
            .bind(resolved_before)
            .execute(conn)
            .await?;
    }
    Ok(())
}
