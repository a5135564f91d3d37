//! Keeping roll-ups current: after a submission's values are stored, each ancestor of their localities (by
//! the hierarchy in force on the period's first day) is recomputed from its children for that period.

use std::collections::BTreeSet;

use sqlx::PgConnection;

use crate::domain::Period;
use crate::domain::rollup::{self, Contribution};
use crate::domain::validation::IndicatorSpec;

/// A value that changed: its indicator, locality and period.
pub struct Touched<'a> {
    pub indicator: &'a IndicatorSpec,
    pub locality: &'a str,
    pub period: Period,
}

/// Recompute the roll-ups above every changed value, level by level, each parent once per indicator and
/// period however many of its children changed (a batch of a thousand clusters recomputes their area once).
pub async fn propagate(conn: &mut PgConnection, touched: &[Touched<'_>]) -> Result<(), sqlx::Error> {
    let mut frontier: BTreeSet<(usize, String, PeriodKey)> = BTreeSet::new();
    let specs: Vec<&IndicatorSpec> = touched.iter().map(|t| t.indicator).collect();
    for (index, t) in touched.iter().enumerate() {
        let first = specs
            .iter()
            .position(|s| s.code == t.indicator.code)
            .unwrap_or(index);
        frontier.insert((first, t.locality.to_owned(), PeriodKey(t.period)));
    }
    // A hierarchy is shallow (city, area, cluster); the bound guards against a cycle in bad data.
    for _ in 0..16 {
        let mut parents: BTreeSet<(usize, String, PeriodKey)> = BTreeSet::new();
        for (spec, locality, period) in &frontier {
            if let Some(parent) = parent_on(conn, locality, period.0.starts_on()).await? {
                parents.insert((*spec, parent, *period));
            }
        }
        if parents.is_empty() {
            return Ok(());
        }
        for (spec, parent, period) in &parents {
            recompute(conn, specs[*spec], parent, period.0).await?;
        }
        frontier = parents;
    }
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

async fn parent_on(
    conn: &mut PgConnection,
    locality: &str,
    on: time::Date,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT parent_code FROM locality_parent WHERE locality_code = $1 AND effective_from <= $2 \
         ORDER BY effective_from DESC LIMIT 1",
    )
    .bind(locality)
    .bind(on)
    .fetch_optional(conn)
    .await
}

/// Recompute one parent's roll-up for one indicator and period from its children in force then.
async fn recompute(
    conn: &mut PgConnection,
    indicator: &IndicatorSpec,
    parent: &str,
    period: Period,
) -> Result<(), sqlx::Error> {
    let on = period.starts_on();
    // Each child's own reported value, else its roll-up.
    let children: Vec<(f64, Option<f64>, Option<f64>)> = sqlx::query_as(
        "WITH candidates AS (SELECT DISTINCT locality_code FROM locality_parent WHERE parent_code = $1), \
         children AS ( \
           SELECT c.locality_code FROM candidates c \
           WHERE (SELECT p.parent_code FROM locality_parent p WHERE p.locality_code = c.locality_code \
                  AND p.effective_from <= $2 ORDER BY p.effective_from DESC LIMIT 1) = $1) \
         SELECT COALESCE(o.value, r.value), COALESCE(o.numerator, r.numerator), \
                COALESCE(o.denominator, r.denominator) \
         FROM children c \
         LEFT JOIN observation o ON o.locality_code = c.locality_code AND o.indicator_code = $3 \
           AND o.period_type = $4 AND o.period_year = $5 AND o.period_number = $6 \
         LEFT JOIN rollup r ON r.locality_code = c.locality_code AND r.indicator_code = $3 \
           AND r.period_type = $4 AND r.period_year = $5 AND r.period_number = $6 \
         WHERE o.value IS NOT NULL OR r.value IS NOT NULL",
    )
    .bind(parent)
    .bind(on)
    .bind(&indicator.code)
    .bind(period.kind().as_str())
    .bind(period.year())
    .bind(period.number())
    .fetch_all(&mut *conn)
    .await?;
    let contributions: Vec<Contribution> = children
        .iter()
        .map(|(value, numerator, denominator)| Contribution {
            value: *value,
            numerator: *numerator,
            denominator: *denominator,
        })
        .collect();
    match rollup::roll_up(indicator.measure, &contributions) {
        Some(rolled) => {
            sqlx::query(
                "INSERT INTO rollup (indicator_code, locality_code, period_type, period_year, period_number, \
                 numerator, denominator, value, contributors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (indicator_code, locality_code, period_type, period_year, period_number) \
                 DO UPDATE SET numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, \
                 value = EXCLUDED.value, contributors = EXCLUDED.contributors, computed_at = now()",
            )
            .bind(&indicator.code)
            .bind(parent)
            .bind(period.kind().as_str())
            .bind(period.year())
            .bind(period.number())
            .bind(rolled.numerator)
            .bind(rolled.denominator)
            .bind(rolled.value)
            .bind(i32::try_from(contributions.len()).unwrap_or(i32::MAX))
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM rollup WHERE indicator_code = $1 AND locality_code = $2 AND period_type = $3 \
                 AND period_year = $4 AND period_number = $5",
            )
            .bind(&indicator.code)
            .bind(parent)
            .bind(period.kind().as_str())
            .bind(period.year())
            .bind(period.number())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
