//! The benchmark's data: a catalogue sized for the run, the run's observations (every one valid, each
//! extending its series by one quarter, so the receipt of every batch should be ACCEPTED), and history rows
//! for periods before the run.

use trust_proto::common::v1::{MeasureType, Period, PeriodType, Polarity};
use trust_proto::ingest::v1 as pb;

/// Indicators the run submits.
pub const INDICATORS: usize = 20;
/// Areas under the city; clusters are spread evenly over them.
pub const AREAS: usize = 5;
/// Clusters when the run fits in them (more are added when it does not).
pub const MIN_CLUSTERS: usize = 200;
/// The partner that submits everything.
pub const PARTNER: &str = "bench";
/// The first year a period may have (the service refuses years before 1990).
const FIRST_YEAR: i32 = 1990;
/// Every run indicator's city-wide target, amber tolerance and baseline (values are 30-70%).
const TARGET: f64 = 50.0;
const AMBER_TOLERANCE: f64 = 5.0;

/// A quarter as one number: year * 4 + (quarter - 1).
pub type QuarterIndex = i32;

pub fn quarter_label(q: QuarterIndex) -> String {
    format!("{}-Q{}", q.div_euclid(4), q.rem_euclid(4) + 1)
}

fn quarter_proto(q: QuarterIndex) -> Period {
    Period {
        r#type: PeriodType::Quarter as i32,
        year: q.div_euclid(4),
        number: q.rem_euclid(4) + 1,
    }
}

/// The quarter `today` falls in (it has begun, so the service accepts values for it).
pub fn current_quarter(today: time::Date) -> QuarterIndex {
    today.year() * 4 + (i32::from(u8::from(today.month())) - 1) / 3
}

/// How the run and the history are laid out over indicators, clusters and quarters.
#[derive(Debug, Clone)]
pub struct Plan {
    pub observations: u64,
    pub clusters: usize,
    /// Quarters each run series advances by.
    pub run_periods: u64,
    pub first_run_quarter: QuarterIndex,
    pub current_quarter: QuarterIndex,
    pub history: HistoryPlan,
}

/// History rows: first the run's own series, every quarter from 1990 up to the run's first quarter (so a
/// run value has a full series behind it); then, when more are asked for than that holds, "archive"
/// indicators over the same clusters and every quarter from 1990 to now. A quarterly series cannot be
/// longer than the calendar allows, so more history means more series, not longer ones.
#[derive(Debug, Clone, Default)]
pub struct HistoryPlan {
    pub rows: u64,
    pub in_run_series: u64,
    pub archive_indicators: usize,
}

impl Plan {
    pub fn new(observations: u64, history: u64, today: time::Date) -> Self {
        let current = current_quarter(today);
        let quarters_available = u64::try_from(current - FIRST_YEAR * 4 + 1).unwrap_or(1).max(1);
        let per_cluster = INDICATORS as u64 * quarters_available;
        let needed = usize::try_from(observations.div_ceil(per_cluster)).unwrap_or(usize::MAX);
        let clusters = needed.max(MIN_CLUSTERS).div_ceil(AREAS) * AREAS;
        let series = (INDICATORS * clusters) as u64;
        let run_periods = observations.div_ceil(series).max(1);
        let first_run_quarter = current - i32::try_from(run_periods).unwrap_or(0) + 1;
        let before_run = u64::try_from(first_run_quarter - FIRST_YEAR * 4).unwrap_or(0);
        let in_run_series = history.min(series * before_run);
        let archive_rows = history - in_run_series;
        let archive_indicators = usize::try_from(archive_rows.div_ceil(clusters as u64 * quarters_available))
            .unwrap_or(usize::MAX);
        Self {
            observations,
            clusters,
            run_periods,
            first_run_quarter,
            current_quarter: current,
            history: HistoryPlan {
                rows: history,
                in_run_series,
                archive_indicators,
            },
        }
    }

    pub fn series(&self) -> u64 {
        (INDICATORS * self.clusters) as u64
    }

    fn quarters_available(&self) -> u64 {
        u64::try_from(self.current_quarter - FIRST_YEAR * 4 + 1).unwrap_or(1)
    }

    /// Run observation `i`: series `i % series`, quarter `first + i / series`.
    pub fn run_row(&self, i: u64) -> Row {
        let series = self.series();
        let s = i % series;
        let quarter = self.first_run_quarter + i32::try_from(i / series).unwrap_or(0);
        Row::new(
            indicator_code(usize::try_from(s % INDICATORS as u64).unwrap_or(0)),
            usize::try_from(s / INDICATORS as u64).unwrap_or(0),
            quarter,
            i,
        )
    }

    /// History row `j` (0 ≤ j < history.rows).
    pub fn history_row(&self, j: u64) -> Row {
        let series = self.series();
        let seed = j ^ 0x5bd1_e995_u64.rotate_left(17);
        if j < self.history.in_run_series {
            // Newest first: the quarter just before the run, for every series, then the one before...
            let s = j % series;
            let back = i32::try_from(j / series).unwrap_or(0);
            Row::new(
                indicator_code(usize::try_from(s % INDICATORS as u64).unwrap_or(0)),
                usize::try_from(s / INDICATORS as u64).unwrap_or(0),
                self.first_run_quarter - 1 - back,
                seed,
            )
        } else {
            let k = j - self.history.in_run_series;
            let quarters = self.quarters_available();
            let cell = k / quarters;
            let clusters = self.clusters as u64;
            Row::new(
                archive_code(usize::try_from(cell / clusters).unwrap_or(0)),
                usize::try_from(cell % clusters).unwrap_or(0),
                FIRST_YEAR * 4 + i32::try_from(k % quarters).unwrap_or(0),
                seed,
            )
        }
    }

    /// The run's observations `range` as a submission.
    pub fn batch(&self, batch_id: String, range: std::ops::Range<u64>) -> pb::ObservationBatch {
        pb::ObservationBatch {
            batch_id,
            partner_code: PARTNER.to_owned(),
            observations: range.map(|i| self.run_row(i).to_proto()).collect(),
            submitted_by: "ingest-bench".to_owned(),
            ..Default::default()
        }
    }

    /// Partner, city, areas, clusters, run and archive indicators, and a city-wide target per run indicator.
    pub fn catalogue(&self) -> pb::Catalogue {
        let mut localities = vec![locality(CITY, "Benchmark city", "")];
        for area in 0..AREAS {
            localities.push(locality(
                &area_code(area),
                &format!("Benchmark area {}", area + 1),
                CITY,
            ));
        }
        for cluster in 0..self.clusters {
            localities.push(locality(
                &cluster_code(cluster),
                &format!("Benchmark cluster {}", cluster + 1),
                &area_code(cluster % AREAS),
            ));
        }
        let run_codes: Vec<String> = (0..INDICATORS).map(indicator_code).collect();
        let mut indicators: Vec<pb::Indicator> = run_codes
            .iter()
            .enumerate()
            .map(|(n, code)| indicator(code, polarity(code), &format!("Benchmark indicator {}", n + 1)))
            .collect();
        indicators.extend((0..self.history.archive_indicators).map(|n| {
            indicator(
                &archive_code(n),
                Polarity::LowerIsBetter,
                &format!("Benchmark archive indicator {}", n + 1),
            )
        }));
        let targets = run_codes
            .iter()
            .map(|code| pb::Target {
                indicator_code: code.clone(),
                value: TARGET,
                amber_tolerance: AMBER_TOLERANCE,
                baseline: Some(TARGET),
                set_by: "ingest-bench".to_owned(),
                ..Default::default()
            })
            .collect();
        pb::Catalogue {
            partners: vec![pb::Partner {
                code: PARTNER.to_owned(),
                name: "Benchmark partner".to_owned(),
                may_submit: run_codes,
                ..Default::default()
            }],
            localities,
            indicators,
            targets,
            ..Default::default()
        }
    }
}

const CITY: &str = "BENCH_CITY";

pub fn indicator_code(n: usize) -> String {
    format!("BENCH_IND_{:02}", n + 1)
}

fn archive_code(n: usize) -> String {
    format!("BENCH_ARCHIVE_{:04}", n + 1)
}

fn area_code(n: usize) -> String {
    format!("BENCH_AREA_{}", n + 1)
}

fn cluster_code(n: usize) -> String {
    format!("BENCH_CLUSTER_{:05}", n + 1)
}

/// Alternate polarities so both kinds of RAG and SPC concern are exercised.
fn polarity(code: &str) -> Polarity {
    if code.ends_with(['1', '3', '5', '7', '9']) {
        Polarity::HigherIsBetter
    } else {
        Polarity::LowerIsBetter
    }
}

fn locality(code: &str, name: &str, parent: &str) -> pb::Locality {
    pb::Locality {
        code: code.to_owned(),
        name: name.to_owned(),
        parent_code: parent.to_owned(),
        ..Default::default()
    }
}

fn indicator(code: &str, polarity: Polarity, name: &str) -> pb::Indicator {
    pb::Indicator {
        code: code.to_owned(),
        name: name.to_owned(),
        definition: "Synthetic indicator for ingest-bench".to_owned(),
        measure: MeasureType::Percentage as i32,
        polarity: polarity as i32,
        period_type: PeriodType::Quarter as i32,
        owner_partner_code: PARTNER.to_owned(),
        numerator_meaning: "children counted".to_owned(),
        denominator_meaning: "children in the cohort".to_owned(),
        valid_min: Some(0.0),
        valid_max: Some(100.0),
        ..Default::default()
    }
}

/// One observation: a percentage with its numerator and denominator (always consistent).
#[derive(Debug, Clone)]
pub struct Row {
    pub indicator: String,
    pub cluster: usize,
    pub quarter: QuarterIndex,
    pub numerator: f64,
    pub denominator: f64,
    pub value: f64,
}

impl Row {
    fn new(indicator: String, cluster: usize, quarter: QuarterIndex, seed: u64) -> Self {
        let h = mix(seed);
        let denominator = (100 + h % 900) as f64;
        // 30%-70% around a target of 50: a mix of green, amber and red, and of SPC signals.
        let share = 0.3 + 0.4 * ((h >> 20) % 10_000) as f64 / 10_000.0;
        let numerator = (denominator * share).floor();
        Self {
            indicator,
            cluster,
            quarter,
            numerator,
            denominator,
            value: numerator / denominator * 100.0,
        }
    }

    pub fn to_proto(&self) -> pb::Observation {
        pb::Observation {
            indicator_code: self.indicator.clone(),
            locality_code: cluster_code(self.cluster),
            period: Some(quarter_proto(self.quarter)),
            value: self.value,
            numerator: Some(self.numerator),
            denominator: Some(self.denominator),
            ..Default::default()
        }
    }

    /// RAG against the city-wide target (as trust.common.v1.Rag), as the service would have recorded it.
    fn rag(&self) -> i32 {
        let shortfall = match polarity(&self.indicator) {
            Polarity::HigherIsBetter => TARGET - self.value,
            _ => self.value - TARGET,
        };
        if shortfall <= 0.0 {
            1
        } else if shortfall <= AMBER_TOLERANCE {
            2
        } else {
            3
        }
    }

    /// A line of `COPY observation (COPY_COLUMNS) FROM STDIN` text format.
    pub fn copy_line(&self, batch_id: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "{}\t{}\tquarter\t{}\t{}\t{}\t{}\t{}\t\t{}\t1\t{PARTNER}\t{batch_id}",
            self.indicator,
            cluster_code(self.cluster),
            self.quarter.div_euclid(4),
            self.quarter.rem_euclid(4) + 1,
            self.value,
            self.numerator,
            self.denominator,
            self.rag(),
        );
    }
}

/// The columns `Row::copy_line` writes, in order.
pub const COPY_COLUMNS: &str = "indicator_code, locality_code, period_type, period_year, period_number, value, \
     numerator, denominator, note, rag, revision, partner_code, batch_id";

/// splitmix64: cheap, deterministic, well spread.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> time::Date {
        time::macros::date!(2026 - 11 - 23)
    }

    #[test]
    fn the_run_fits_the_default_catalogue_and_ends_in_the_current_quarter() {
        let plan = Plan::new(200_000, 0, today());
        assert_eq!(plan.clusters, 200);
        assert_eq!(plan.series(), 4_000);
        assert_eq!(plan.run_periods, 50);
        assert_eq!(quarter_label(plan.current_quarter), "2026-Q4");
        let last = plan.run_row(199_999);
        assert_eq!(last.quarter, plan.current_quarter);
        assert_eq!(plan.run_row(0).quarter, plan.first_run_quarter);
    }

    #[test]
    fn a_run_longer_than_the_calendar_gets_more_clusters() {
        let plan = Plan::new(2_000_000, 0, today());
        assert!(plan.clusters > 200);
        assert_eq!(plan.clusters % AREAS, 0);
        assert!(plan.first_run_quarter >= FIRST_YEAR * 4);
    }

    #[test]
    fn history_fills_the_run_series_before_the_run_then_archive_indicators() {
        let plan = Plan::new(20_000, 10_000_000, today());
        // 5 run quarters; 4,000 series x 143 earlier quarters in them.
        assert_eq!(plan.history.in_run_series, 4_000 * 143);
        assert!(plan.history.archive_indicators > 0);
        let newest = plan.history_row(0);
        assert_eq!(newest.quarter, plan.first_run_quarter - 1);
        let oldest_in_run = plan.history_row(plan.history.in_run_series - 1);
        assert_eq!(oldest_in_run.quarter, FIRST_YEAR * 4);
        let last = plan.history_row(plan.history.rows - 1);
        assert!(last.indicator.starts_with("BENCH_ARCHIVE_"));
        assert!(last.quarter <= plan.current_quarter && last.quarter >= FIRST_YEAR * 4);
    }

    #[test]
    fn values_are_consistent_with_numerator_and_denominator() {
        let plan = Plan::new(1_000, 0, today());
        for i in 0..1_000 {
            let row = plan.run_row(i);
            assert!(row.value >= 30.0 - 1.0 && row.value <= 70.0, "{row:?}");
            assert!((row.value - row.numerator / row.denominator * 100.0).abs() < 1e-9);
        }
    }

    #[test]
    fn no_series_and_period_repeat_in_a_run() {
        let plan = Plan::new(10_000, 0, today());
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let row = plan.run_row(i);
            assert!(seen.insert((row.indicator, row.cluster, row.quarter)));
        }
    }
}
