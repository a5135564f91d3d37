//! Keeping roll-ups current: after a submission's values are stored, each ancestor of their localities (by
//! the hierarchy in force on the period's first day) is recomputed from its children for that period, level
//! by level, every parent of a level in one read and one write however many of its children changed.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgConnection;

use crate::domain::Period;
use crate::domain::rollup::{self, Contribution, RolledUp};
use crate::reference::Reference;

/// A value that changed: its indicator, locality and period.
pub struct Touched<'a> {
    pub indicator: &'a str,
    pub locality: &'a str,
    pub period: Period,
}

/// (indicator, locality, period) in a stable order.
type Cell = (String, String, PeriodKey);

/// Recompute the roll-ups above every changed value.
pub async fn propagate(
    conn: &mut PgConnection,
    reference: &Reference,
    touched: &[Touched<'_>],
) -> Result<(), sqlx::Error> {
    let mut frontier: BTreeSet<Cell> = touched
        .iter()
        .map(|t| (t.indicator.to_owned(), t.locality.to_owned(), PeriodKey(t.period)))
        .collect();
    // A hierarchy is shallow (city, area, cluster); the bound guards against a cycle in bad data.
    for _ in 0..16 {
        let parents: BTreeSet<Cell> = frontier
            .iter()
            .filter_map(|(indicator, locality, period)| {
                reference
                    .parent_on(locality, period.0.starts_on())
                    .map(|parent| (indicator.clone(), parent.to_owned(), *period))
            })
            .collect();
        if parents.is_empty() {
            return Ok(());
        }
        recompute(conn, reference, &parents).await?;
        frontier = parents;
    }
    Ok(())
}

/// Recompute these parents' roll-ups from their children in force in each period: each child's own
/// reported value, else its roll-up.
async fn recompute(
    conn: &mut PgConnection,
    reference: &Reference,
    parents: &BTreeSet<Cell>,
) -> Result<(), sqlx::Error> {
    let parents: Vec<&Cell> = parents.iter().collect();
    let mut owner = Vec::new();
    let mut indicators = Vec::new();
    let mut children = Vec::new();
    let mut types = Vec::new();
    let mut years = Vec::new();
    let mut numbers = Vec::new();
    for (index, (indicator, parent, period)) in parents.iter().enumerate() {
        for child in reference.children_on(parent, period.0.starts_on()) {
            owner.push(i32::try_from(index).unwrap_or(i32::MAX));
            indicators.push(indicator.as_str());
            children.push(child);
            types.push(period.0.kind().as_str());
            years.push(period.0.year());
            numbers.push(period.0.number());
        }
    }
    let rows: Vec<(i32, f64, Option<f64>, Option<f64>)> = sqlx::query_as(
        "SELECT k.owner, \
                CASE WHEN o.value IS NOT NULL THEN o.value ELSE r.value END, \
                CASE WHEN o.value IS NOT NULL THEN o.numerator ELSE r.numerator END, \
                CASE WHEN o.value IS NOT NULL THEN o.denominator ELSE r.denominator END \
         FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[]) \
              AS k (owner, i, l, t, y, n) \
         LEFT JOIN observation o ON o.indicator_code = k.i AND o.locality_code = k.l \
           AND o.period_type = k.t AND o.period_year = k.y AND o.period_number = k.n \
         LEFT JOIN rollup r ON r.indicator_code = k.i AND r.locality_code = k.l \
           AND r.period_type = k.t AND r.period_year = k.y AND r.period_number = k.n \
         WHERE o.value IS NOT NULL OR r.value IS NOT NULL",
    )
    .bind(&owner)
    .bind(&indicators)
    .bind(&children)
    .bind(&types)
    .bind(&years)
    .bind(&numbers)
    .fetch_all(&mut *conn)
    .await?;
    let mut contributions: BTreeMap<usize, Vec<Contribution>> = BTreeMap::new();
    for (index, value, numerator, denominator) in rows {
        contributions
            .entry(usize::try_from(index).unwrap_or(usize::MAX))
            .or_default()
            .push(Contribution {
                value,
                numerator,
                denominator,
            });
    }
    let mut rolled: Vec<(&Cell, RolledUp, i32)> = Vec::new();
    let mut emptied: Vec<&Cell> = Vec::new();
    for (index, cell) in parents.iter().enumerate() {
        let from_children = contributions.get(&index).map(Vec::as_slice).unwrap_or_default();
        let measure = reference.indicators.get(&cell.0).map(|i| i.measure);
        match measure.and_then(|m| rollup::roll_up(m, from_children)) {
            Some(value) => rolled.push((
                cell,
                value,
                i32::try_from(from_children.len()).unwrap_or(i32::MAX),
            )),
            None => emptied.push(cell),
        }
    }
    save(conn, &rolled).await?;
    remove(conn, &emptied).await
}

async fn save(conn: &mut PgConnection, rolled: &[(&Cell, RolledUp, i32)]) -> Result<(), sqlx::Error> {
    if rolled.is_empty() {
        return Ok(());
    }
    let indicators: Vec<&str> = rolled.iter().map(|(c, _, _)| c.0.as_str()).collect();
    let localities: Vec<&str> = rolled.iter().map(|(c, _, _)| c.1.as_str()).collect();
    let types: Vec<&str> = rolled.iter().map(|(c, _, _)| c.2.0.kind().as_str()).collect();
    let years: Vec<i32> = rolled.iter().map(|(c, _, _)| c.2.0.year()).collect();
    let numbers: Vec<i32> = rolled.iter().map(|(c, _, _)| c.2.0.number()).collect();
    let numerators: Vec<Option<f64>> = rolled.iter().map(|(_, r, _)| r.numerator).collect();
    let denominators: Vec<Option<f64>> = rolled.iter().map(|(_, r, _)| r.denominator).collect();
    let values: Vec<f64> = rolled.iter().map(|(_, r, _)| r.value).collect();
    let contributors: Vec<i32> = rolled.iter().map(|(_, _, n)| *n).collect();
    sqlx::query(
        "INSERT INTO rollup (indicator_code, locality_code, period_type, period_year, period_number, \
         numerator, denominator, value, contributors) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::float8[], \
         $7::float8[], $8::float8[], $9::int4[]) \
         ON CONFLICT (indicator_code, locality_code, period_type, period_year, period_number) \
         DO UPDATE SET numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, \
         value = EXCLUDED.value, contributors = EXCLUDED.contributors, computed_at = now()",
    )
    .bind(&indicators)
    .bind(&localities)
    .bind(&types)
    .bind(&years)
    .bind(&numbers)
    .bind(&numerators)
    .bind(&denominators)
    .bind(&values)
    .bind(&contributors)
    .execute(conn)
    .await?;
    Ok(())
}

/// A parent whose children no longer give an honest roll-up has none.
async fn remove(conn: &mut PgConnection, emptied: &[&Cell]) -> Result<(), sqlx::Error> {
    if emptied.is_empty() {
        return Ok(());
    }
    let indicators: Vec<&str> = emptied.iter().map(|c| c.0.as_str()).collect();
    let localities: Vec<&str> = emptied.iter().map(|c| c.1.as_str()).collect();
    let types: Vec<&str> = emptied.iter().map(|c| c.2.0.kind().as_str()).collect();
    let years: Vec<i32> = emptied.iter().map(|c| c.2.0.year()).collect();
    let numbers: Vec<i32> = emptied.iter().map(|c| c.2.0.number()).collect();
    sqlx::query(
        "DELETE FROM rollup r USING unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[]) \
         AS k (i, l, t, y, n) WHERE r.indicator_code = k.i AND r.locality_code = k.l \
         AND r.period_type = k.t AND r.period_year = k.y AND r.period_number = k.n",
    )
    .bind(&indicators)
    .bind(&localities)
    .bind(&types)
    .bind(&years)
    .bind(&numbers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Periods ordered for set membership.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PeriodKey(Period);

impl PartialOrd for PeriodKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PeriodKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.kind(), self.0.year(), self.0.number()).cmp(&(
            other.0.kind(),
            other.0.year(),
            other.0.number(),
        ))
    }
}
