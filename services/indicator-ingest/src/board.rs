//! The status board: for each indicator and locality, the latest value (reported, or else rolled up), with
//! its target, RAG, direction of travel and open escalations. Small numbers are suppressed here, in what is
//! shown, not in what is stored.

use sqlx::PgConnection;
use trust_proto::common::v1::{DirectionOfTravel, MeasureType, Polarity, Rag};
use trust_proto::ingest::v1 as pb;

use crate::domain::trend::{DEFAULT_EPSILON, Direction, direction};
use crate::domain::{self, Period, PeriodType};
use crate::reference::Reference;

#[derive(sqlx::FromRow)]
struct LatestRow {
    indicator_code: String,
    indicator_name: String,
    measure: i32,
    polarity: i32,
    small_number_threshold: i32,
    locality_code: String,
    locality_name: String,
    period_type: String,
    period_year: i32,
    period_number: i32,
    value: f64,
    numerator: Option<f64>,
    rolled_up: bool,
    outlier: bool,
    previous: Option<f64>,
    open_escalations: Vec<String>,
}

/// The board of these indicators (empty: every indicator), holding only the values `readable` allows (by
/// indicator, locality and period).
pub async fn status_board(
    conn: &mut PgConnection,
    reference: &Reference,
    indicators: &[String],
    readable: &(dyn Fn(&str, &str, Period) -> bool + Sync),
) -> Result<pb::StatusBoard, sqlx::Error> {
    let rows: Vec<LatestRow> = sqlx::query_as(
        "WITH values AS ( \
           SELECT indicator_code, locality_code, period_type, period_year, period_number, value, numerator, \
                  false AS rolled_up, outlier FROM observation \
           UNION ALL \
           SELECT r.indicator_code, r.locality_code, r.period_type, r.period_year, r.period_number, r.value, \
                  r.numerator, true, false FROM rollup r \
           WHERE NOT EXISTS (SELECT 1 FROM observation o WHERE o.indicator_code = r.indicator_code \
             AND o.locality_code = r.locality_code AND o.period_type = r.period_type \
             AND o.period_year = r.period_year AND o.period_number = r.period_number)), \
         ranked AS ( \
           SELECT *, lead(value) OVER w AS previous, row_number() OVER w AS rank FROM values \
           WINDOW w AS (PARTITION BY indicator_code, locality_code ORDER BY period_year DESC, period_number DESC)) \
         SELECT r.indicator_code, i.name AS indicator_name, i.measure, i.polarity, i.small_number_threshold, \
                r.locality_code, l.name AS locality_name, r.period_type, r.period_year, r.period_number, r.value, \
                r.numerator, r.rolled_up, r.outlier, r.previous, \
                ARRAY(SELECT e.rule FROM escalation e WHERE e.indicator_code = r.indicator_code \
                      AND e.locality_code = r.locality_code AND e.resolved_at IS NULL ORDER BY e.rule) \
                  AS open_escalations \
         FROM ranked r JOIN indicator i ON i.code = r.indicator_code JOIN locality l ON l.code = r.locality_code \
         WHERE r.rank = 1 AND (cardinality($1::text[]) = 0 OR r.indicator_code = ANY($1)) \
         ORDER BY r.indicator_code, r.locality_code",
    )
    .bind(indicators)
    .fetch_all(&mut *conn)
    .await?;
    let mut board = pb::StatusBoard::default();
    for row in rows {
        let Some(period) = PeriodType::parse(&row.period_type)
            .and_then(|k| Period::new(k, row.period_year, row.period_number).ok())
        else {
            continue;
        };
        if !readable(&row.indicator_code, &row.locality_code, period) {
            continue;
        }
        let polarity = Polarity::try_from(row.polarity).unwrap_or(Polarity::Unspecified);
        let measure = MeasureType::try_from(row.measure).unwrap_or(MeasureType::Unspecified);
        let target = reference.target_for(&row.indicator_code, &row.locality_code, period);
        let rag = target.map_or(Rag::Unspecified, |t| {
            domain::evaluate(row.value, polarity, t.spec).rag
        });
        let threshold = f64::from(row.small_number_threshold.max(0));
        let small = match measure {
            MeasureType::Count => row.value < threshold,
            _ => row.numerator.is_some_and(|n| n < threshold),
        };
        let suppressed = threshold > 0.0 && small && row.value > 0.0;
        let travel = row
            .previous
            .and_then(|previous| direction(row.value, previous, polarity, DEFAULT_EPSILON));
        board.rows.push(pb::StatusBoardRow {
            indicator_code: row.indicator_code,
            indicator_name: row.indicator_name,
            locality_code: row.locality_code,
            locality_name: row.locality_name,
            period_label: period.to_string(),
            value: (!suppressed).then_some(row.value),
            suppressed,
            target: target.map(|t| t.spec.value),
            rag: rag as i32,
            direction_vs_previous: match travel {
                Some(Direction::Improving) => DirectionOfTravel::Improving,
                Some(Direction::Worsening) => DirectionOfTravel::Worsening,
                Some(Direction::NoChange) => DirectionOfTravel::NoChange,
                None => DirectionOfTravel::Unspecified,
            } as i32,
            source: if row.rolled_up {
                pb::ValueSource::RolledUp
            } else {
                pb::ValueSource::Reported
            } as i32,
            outlier: row.outlier,
            open_escalations: row.open_escalations,
            polarity: polarity as i32,
            measure: measure as i32,
        });
    }
    Ok(board)
}
