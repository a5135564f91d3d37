//! Keeping roll-ups current: after a value is stored, each ancestor of its locality (by the hierarchy in
//! force on the period's first day) is recomputed from its children for that period.

use sqlx::PgConnection;

use crate::domain::Period;
use crate::domain::rollup::{self, Contribution};
use crate::domain::validation::IndicatorSpec;

/// Recompute the roll-ups above `locality` for one indicator and period.
pub async fn propagate(
    conn: &mut PgConnection,
    indicator: &IndicatorSpec,
    locality: &str,
    period: Period,
) -> Result<(), sqlx::Error> {
    let on = period.starts_on();
    let mut current = locality.to_owned();
    // A hierarchy is shallow (city, area, cluster); the bound guards against a cycle in bad data.
    for _ in 0..16 {
        let parent: Option<String> = sqlx::query_scalar(
            "SELECT parent_code FROM locality_parent WHERE locality_code = $1 AND effective_from <= $2 \
             ORDER BY effective_from DESC LIMIT 1",
        )
        .bind(&current)
        .bind(on)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(parent) = parent else {
            return Ok(());
        };
        // Each child's own reported value, else its roll-up.
        let children: Vec<(f64, Option<f64>, Option<f64>)> = sqlx::query_as(
            "WITH in_force AS ( \
               SELECT DISTINCT ON (locality_code) locality_code, parent_code FROM locality_parent \
               WHERE effective_from <= $2 ORDER BY locality_code, effective_from DESC), \
             children AS (SELECT locality_code FROM in_force WHERE parent_code = $1) \
             SELECT COALESCE(o.value, r.value), COALESCE(o.numerator, r.numerator), \
                    COALESCE(o.denominator, r.denominator) \
             FROM children c \
             LEFT JOIN observation o ON o.locality_code = c.locality_code AND o.indicator_code = $3 \
               AND o.period_type = $4 AND o.period_year = $5 AND o.period_number = $6 \
             LEFT JOIN rollup r ON r.locality_code = c.locality_code AND r.indicator_code = $3 \
               AND r.period_type = $4 AND r.period_year = $5 AND r.period_number = $6 \
             WHERE o.value IS NOT NULL OR r.value IS NOT NULL",
        )
        .bind(&parent)
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
                .bind(&parent)
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
                .bind(&parent)
                .bind(period.kind().as_str())
                .bind(period.year())
                .bind(period.number())
                .execute(&mut *conn)
                .await?;
            }
        }
        current = parent;
    }
    Ok(())
}
