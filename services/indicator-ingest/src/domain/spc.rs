//! Statistical process control as in NHS England's "Making Data Count": an XmR (individuals) chart with
//! three special-cause rules: a point beyond the process limits, a run on one side of the mean, and a
//! trend of points each rising or each falling.
//!
//! Evaluating a point never reads history. The caller keeps one small [`SeriesState`] per series
//! (indicator and locality), stores it as JSON beside the series (e.g. a jsonb column, written in the same
//! transaction as the value), and feeds each new value to [`SeriesState::observe`] in period order. The
//! state holds at most `baseline_points` values, and none once the limits are frozen.
//!
//! The limits are computed once, from the first `baseline_points` values, and then frozen: a later point,
//! however extreme, does not move them. Recalculating is a deliberate act, [`SeriesState::rebaseline`],
//! taken when a value already seen is corrected, a period is inserted out of order, or an analyst asks
//! for new limits after a known change to the process.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trust_proto::common::v1::Polarity;

use super::trend::higher_is_better;

/// 3 / d2, where d2 = 1.128 is the bias constant for ranges of two consecutive points: turns the mean
/// moving range into three standard deviations of an individual value.
const XMR_SCALING: f64 = 2.66;

/// How the chart is built and when its rules fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpcConfig {
    /// Values from the start of the series from which the limits are computed, then frozen. Making Data
    /// Count recommends at least 12 to 20. Below 2 is treated as 2: one point has no moving range.
    pub baseline_points: usize,
    /// Consecutive points on one side of the mean that make a run. Below 1 is treated as 1.
    pub run_length: usize,
    /// Consecutive points, the first included, each above (or each below) the one before, that make a
    /// trend. Below 2 is treated as 2: one point has no direction.
    pub trend_length: usize,
}

impl Default for SpcConfig {
    fn default() -> Self {
        Self {
            baseline_points: 12,
            run_length: 7,
            trend_length: 6,
        }
    }
}

impl SpcConfig {
    fn baseline_points(&self) -> usize {
        self.baseline_points.max(2)
    }

    fn run_length(&self) -> usize {
        self.run_length.max(1)
    }

    fn trend_length(&self) -> usize {
        self.trend_length.max(2)
    }
}

/// The frozen centre line and process limits. The lower limit is not clipped at zero: a caller showing a
/// chart of counts or percentages may clip it for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessLimits {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Which side of the mean, or of the limits, a point lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Above,
    Below,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    Rising,
    Falling,
}

/// What a signal means for the children behind the figures, given the indicator's polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    Improvement,
    Concern,
}

impl Assessment {
    /// Upward movement is an improvement exactly when higher is better.
    fn of(upward: bool, polarity: Polarity) -> Self {
        if upward == higher_is_better(polarity) {
            Self::Improvement
        } else {
            Self::Concern
        }
    }
}

/// A special cause found at the latest point, with what a person needs to read it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum SpcSignal {
    /// The point lies strictly outside a process limit (a point on the limit is inside).
    BeyondLimits {
        value: f64,
        side: Side,
        /// The limit crossed: the upper limit when above, the lower when below.
        limit: f64,
        assessment: Assessment,
    },
    /// The point extends a run of `length` consecutive points on one `side` of the mean.
    Run {
        value: f64,
        side: Side,
        mean: f64,
        length: usize,
        assessment: Assessment,
    },
    /// The point extends a trend of `length` consecutive points each rising (or each falling).
    Trend {
        value: f64,
        direction: TrendDirection,
        length: usize,
        assessment: Assessment,
    },
}

impl SpcSignal {
    /// Stable rule name for deduplication keys (indicator, locality, rule). It names the rule, not its
    /// configured length or the side, so changing the configuration does not orphan open escalations.
    pub fn rule_name(&self) -> &'static str {
        match self {
            Self::BeyondLimits { .. } => "spc-beyond-limits",
            Self::Run { .. } => "spc-run",
            Self::Trend { .. } => "spc-trend",
        }
    }

    pub fn assessment(&self) -> Assessment {
        match self {
            Self::BeyondLimits { assessment, .. }
            | Self::Run { assessment, .. }
            | Self::Trend { assessment, .. } => *assessment,
        }
    }

    /// True when the signal points the bad way for the indicator's polarity.
    pub fn is_concern(&self) -> bool {
        self.assessment() == Assessment::Concern
    }

    /// The value of the point that raised the signal.
    pub fn value(&self) -> f64 {
        match self {
            Self::BeyondLimits { value, .. } | Self::Run { value, .. } | Self::Trend { value, .. } => *value,
        }
    }
}

/// A float stored as its shortest exact decimal text. serde_json without its `float_roundtrip` feature
/// (not enabled here) can read a JSON number back one unit in the last place off, and a state must read
/// back exactly: otherwise a value equal to the last would look like a rise, and a stored state would
/// judge points differently from a rebuilt one. Numbers are accepted too, for hand-written states.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Exact(f64);

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Display for f64 prints the shortest text that parses back to the same value.
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExactVisitor;

        impl Visitor<'_> for ExactVisitor {
            type Value = Exact;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a finite number, or a string holding one")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Exact, E> {
                let value: f64 = text.parse().map_err(E::custom)?;
                self.visit_f64(value)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Exact, E> {
                // A NaN or infinity in a stored state would silence the chart for good.
                if value.is_finite() {
                    Ok(Exact(value))
                } else {
                    Err(E::custom("not a finite number"))
                }
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Exact, E> {
                Ok(Exact(value as f64))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Exact, E> {
                Ok(Exact(value as f64))
            }
        }

        deserializer.deserialize_any(ExactVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Centre {
    mean: Exact,
    mean_moving_range: Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct RunState {
    side: Side,
    length: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct TrendState {
    direction: TrendDirection,
    length: usize,
}

/// Everything the rules need about one series, updated in O(1) per point. Store it as JSON (serde) and
/// hand it back for the next point; its field names are the stored format. Floats are stored as decimal
/// strings so they read back bit for bit. Missing fields deserialize to their defaults so that a field
/// added later does not break stored states.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesState {
    /// Points observed since the state was built or rebaselined.
    count: u64,
    /// Values held only until the limits freeze: needed then for the mean moving range and for the run
    /// already under way at the end of the baseline. Emptied on freezing.
    baseline_values: Vec<Exact>,
    /// Frozen once the baseline is complete; `None` until then.
    centre: Option<Centre>,
    last_value: Option<Exact>,
    /// The run the latest point belongs to; `None` when it lies on the mean or before the mean is known.
    run: Option<RunState>,
    /// The trend the latest point ends; `None` when it equals the point before it or is the first.
    trend: Option<TrendState>,
}

impl SeriesState {
    /// A state built from a series' values in period order, as if each had been observed in turn.
    pub fn from_values(values: &[f64], config: &SpcConfig) -> Self {
        let mut state = Self::default();
        state.rebaseline(values, config);
        state
    }

    /// Discard everything and rebuild from `values` in period order: the limits come from the first
    /// `baseline_points` of them. Pass the whole series after a correction to a value already observed,
    /// or the values from a known change to the process onward when an analyst asks for new limits. This
    /// is the one operation that costs O(n); call [`Self::signals`] afterwards to learn what fires now.
    pub fn rebaseline(&mut self, values: &[f64], config: &SpcConfig) {
        *self = Self::default();
        for &value in values {
            self.advance(value, config);
        }
    }

    /// Take the next value of the series and return the signals at that point.
    ///
    /// Until `baseline_points` values have been seen there are no limits, so neither the beyond-limits
    /// rule nor the run rule (which needs the mean) can fire; the trend rule, which needs no limits, can.
    /// The point that completes the baseline is judged against the limits it helped freeze, and a run
    /// already under way within the baseline counts towards the run rule.
    ///
    /// A rule fires when its run reaches the configured length and again at every point while the run
    /// continues, with the current length; the caller deduplicates by [`SpcSignal::rule_name`].
    ///
    /// A non-finite value is ignored (state unchanged, no signals): validation refuses them upstream, and
    /// one NaN in the accumulators would silence the chart for good.
    pub fn observe(&mut self, value: f64, config: &SpcConfig, polarity: Polarity) -> Vec<SpcSignal> {
        if !self.advance(value, config) {
            return Vec::new();
        }
        self.signals(config, polarity)
    }

    /// The signals at the latest point, without taking a new one: what is firing now, e.g. after a
    /// rebaseline, to raise or resolve escalations.
    pub fn signals(&self, config: &SpcConfig, polarity: Polarity) -> Vec<SpcSignal> {
        let mut signals = Vec::new();
        let Some(Exact(value)) = self.last_value else {
            return signals;
        };
        if let Some(limits) = self.limits() {
            let beyond = if value > limits.upper {
                Some((Side::Above, limits.upper))
            } else if value < limits.lower {
                Some((Side::Below, limits.lower))
            } else {
                None
            };
            if let Some((side, limit)) = beyond {
                signals.push(SpcSignal::BeyondLimits {
                    value,
                    side,
                    limit,
                    assessment: Assessment::of(side == Side::Above, polarity),
                });
            }
            if let Some(run) = self.run.filter(|run| run.length >= config.run_length()) {
                signals.push(SpcSignal::Run {
                    value,
                    side: run.side,
                    mean: limits.mean,
                    length: run.length,
                    assessment: Assessment::of(run.side == Side::Above, polarity),
                });
            }
        }
        if let Some(trend) = self.trend.filter(|trend| trend.length >= config.trend_length()) {
            signals.push(SpcSignal::Trend {
                value,
                direction: trend.direction,
                length: trend.length,
                assessment: Assessment::of(trend.direction == TrendDirection::Rising, polarity),
            });
        }
        signals
    }

    /// The frozen limits, once the baseline is complete.
    pub fn limits(&self) -> Option<ProcessLimits> {
        self.centre.map(|centre| {
            let (Exact(mean), Exact(mean_moving_range)) = (centre.mean, centre.mean_moving_range);
            let spread = XMR_SCALING * mean_moving_range;
            ProcessLimits {
                mean,
                lower: mean - spread,
                upper: mean + spread,
            }
        })
    }

    /// The mean of the absolute differences between consecutive baseline values, once frozen.
    pub fn mean_moving_range(&self) -> Option<f64> {
        self.centre.map(|centre| centre.mean_moving_range.0)
    }

    /// Points observed since the state was built or rebaselined.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn last_value(&self) -> Option<f64> {
        self.last_value.map(|Exact(value)| value)
    }

    /// Update the counters with one value; false when the value was refused.
    fn advance(&mut self, value: f64, config: &SpcConfig) -> bool {
        if !value.is_finite() {
            return false;
        }
        self.count = self.count.saturating_add(1);
        self.trend = next_trend(self.trend, self.last_value(), value);
        self.last_value = Some(Exact(value));
        match self.centre {
            Some(centre) => self.run = next_run(self.run, centre.mean.0, value),
            None => {
                self.baseline_values.push(Exact(value));
                // `>=`, not `==`: the configured length may have been lowered since the last point.
                if self.baseline_values.len() >= config.baseline_points() {
                    self.freeze();
                }
            }
        }
        true
    }

    fn freeze(&mut self) {
        let values: Vec<f64> = std::mem::take(&mut self.baseline_values)
            .into_iter()
            .map(|Exact(value)| value)
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let ranges: f64 = values.windows(2).map(|pair| (pair[1] - pair[0]).abs()).sum();
        // freeze is only reached with at least two values, so there is at least one moving range.
        let mean_moving_range = ranges / (n - 1.0);
        self.centre = Some(Centre {
            mean: Exact(mean),
            mean_moving_range: Exact(mean_moving_range),
        });
        // Replay the baseline against the new mean: a run under way at its end is already a run.
        self.run = values.iter().fold(None, |run, &value| next_run(run, mean, value));
    }
}

fn next_run(run: Option<RunState>, mean: f64, value: f64) -> Option<RunState> {
    let side = if value > mean {
        Side::Above
    } else if value < mean {
        Side::Below
    } else {
        // A point exactly on the mean belongs to neither side, so it breaks the run.
        return None;
    };
    Some(match run {
        Some(run) if run.side == side => RunState {
            side,
            length: run.length.saturating_add(1),
        },
        _ => RunState { side, length: 1 },
    })
}

fn next_trend(trend: Option<TrendState>, last: Option<f64>, value: f64) -> Option<TrendState> {
    let last = last?;
    let direction = if value > last {
        TrendDirection::Rising
    } else if value < last {
        TrendDirection::Falling
    } else {
        // Equal to the point before: neither rising nor falling, so the trend is broken.
        return None;
    };
    Some(match trend {
        Some(trend) if trend.direction == direction => TrendState {
            direction,
            length: trend.length.saturating_add(1),
        },
        // A turn: the previous point is the first of the new trend.
        _ => TrendState { direction, length: 2 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean 12; moving ranges 2,1,2,1,2,4,2,1,2,1,2 sum to 20 over 11, so the mean moving range is
    /// 20/11 = 1.8181..., the spread 2.66 × 20/11 = 4.8363... and the limits 7.1636... and 16.8363....
    /// It ends 12 (on the mean), 14 (above): a run of one above, and a rising trend of two.
    const BASELINE: [f64; 12] = [
        10.0, 12.0, 11.0, 13.0, 12.0, 14.0, 10.0, 12.0, 11.0, 13.0, 12.0, 14.0,
    ];

    fn config() -> SpcConfig {
        SpcConfig::default()
    }

    fn baselined() -> SeriesState {
        SeriesState::from_values(&BASELINE, &config())
    }

    fn rules(signals: &[SpcSignal]) -> Vec<&'static str> {
        signals.iter().map(SpcSignal::rule_name).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn limits_are_computed_from_the_baseline() {
        let state = baselined();
        let limits = state.limits().expect("baseline complete");
        assert!(close(limits.mean, 12.0));
        assert!(close(state.mean_moving_range().expect("mr"), 20.0 / 11.0));
        assert!(close(limits.upper, 12.0 + 2.66 * 20.0 / 11.0));
        assert!(close(limits.lower, 12.0 - 2.66 * 20.0 / 11.0));
        assert_eq!(state.count(), 12);
    }

    #[test]
    fn no_limits_until_the_baseline_is_complete() {
        let mut state = SeriesState::from_values(&BASELINE[..11], &config());
        assert_eq!(state.limits(), None);
        // Far outside where the limits will be, but there are no limits yet to be outside.
        let mut short = state.clone();
        assert!(
            short
                .observe(
                    1000.0,
                    &SpcConfig {
                        baseline_points: 13,
                        ..config()
                    },
                    Polarity::HigherIsBetter
                )
                .is_empty()
        );
        assert!(short.limits().is_none());
        // The twelfth point freezes the limits and is judged against them.
        assert!(
            state
                .observe(14.0, &config(), Polarity::HigherIsBetter)
                .is_empty()
        );
        assert!(state.limits().is_some());
    }

    #[test]
    fn frozen_limits_do_not_move_with_later_points() {
        let mut state = baselined();
        let before = state.limits();
        for value in [100.0, -50.0, 3.0, 1e6, 12.0] {
            let _ = state.observe(value, &config(), Polarity::HigherIsBetter);
        }
        assert_eq!(state.limits(), before);
        assert_eq!(state.count(), 17);
    }

    #[test]
    fn beyond_limits_fires_strictly_outside_either_limit() {
        let limits = baselined().limits().expect("limits");
        let observe_one = |value: f64| baselined().observe(value, &config(), Polarity::HigherIsBetter);

        assert!(observe_one(16.8).is_empty());
        assert!(
            observe_one(limits.upper).is_empty(),
            "a point on the limit is inside"
        );
        assert_eq!(
            observe_one(17.0),
            vec![SpcSignal::BeyondLimits {
                value: 17.0,
                side: Side::Above,
                limit: limits.upper,
                assessment: Assessment::Improvement,
            }]
        );
        let below = observe_one(7.0);
        assert!(matches!(
            below.as_slice(),
            [SpcSignal::BeyondLimits { side: Side::Below, limit, .. }] if *limit == limits.lower
        ));
        assert!(below[0].is_concern());
        assert_eq!(below[0].value(), 7.0);
    }

    #[test]
    fn run_fires_at_its_length_and_keeps_firing() {
        let mut state = baselined();
        // The baseline ends with 14, a run of one above. Five more above make six: one short.
        for _ in 0..5 {
            let signals = state.observe(13.0, &config(), Polarity::HigherIsBetter);
            assert!(!rules(&signals).contains(&"spc-run"));
        }
        let seventh = state.observe(13.0, &config(), Polarity::HigherIsBetter);
        assert_eq!(
            seventh,
            vec![SpcSignal::Run {
                value: 13.0,
                side: Side::Above,
                mean: 12.0,
                length: 7,
                assessment: Assessment::Improvement,
            }]
        );
        let eighth = state.observe(15.0, &config(), Polarity::HigherIsBetter);
        assert!(matches!(eighth.as_slice(), [SpcSignal::Run { length: 8, .. }]));
    }

    #[test]
    fn a_point_on_the_mean_breaks_the_run() {
        let mut state = baselined();
        for _ in 0..5 {
            let _ = state.observe(13.0, &config(), Polarity::HigherIsBetter);
        }
        assert!(
            state
                .observe(12.0, &config(), Polarity::HigherIsBetter)
                .is_empty()
        );
        // The run starts again from one: six more above are still one short.
        for _ in 0..6 {
            assert!(
                state
                    .observe(13.0, &config(), Polarity::HigherIsBetter)
                    .is_empty()
            );
        }
        let signals = state.observe(13.0, &config(), Polarity::HigherIsBetter);
        assert!(matches!(signals.as_slice(), [SpcSignal::Run { length: 7, .. }]));
    }

    #[test]
    fn a_run_under_way_in_the_baseline_counts_when_the_limits_freeze() {
        // Mean 19/12; the last seven values lie above it. Moving ranges sum to 1 over 11, so the upper
        // limit is 19/12 + 2.66/11 = 1.825... and the twelfth point, 2, is also beyond it.
        let values = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        let mut state = SeriesState::from_values(&values, &config());
        let signals = state.observe(2.0, &config(), Polarity::LowerIsBetter);
        assert_eq!(rules(&signals), ["spc-beyond-limits", "spc-run"]);
        assert!(matches!(
            signals[1],
            SpcSignal::Run {
                side: Side::Above,
                length: 7,
                ..
            }
        ));
        assert!(signals.iter().all(SpcSignal::is_concern));
    }

    #[test]
    fn trend_fires_at_its_length_even_before_the_baseline() {
        let mut state = SeriesState::default();
        for value in [1.0, 2.0, 3.0, 4.0, 5.0] {
            assert!(
                state
                    .observe(value, &config(), Polarity::HigherIsBetter)
                    .is_empty()
            );
        }
        assert_eq!(
            state.observe(6.0, &config(), Polarity::HigherIsBetter),
            vec![SpcSignal::Trend {
                value: 6.0,
                direction: TrendDirection::Rising,
                length: 6,
                assessment: Assessment::Improvement,
            }]
        );
        let seventh = state.observe(7.0, &config(), Polarity::HigherIsBetter);
        assert!(matches!(seventh.as_slice(), [SpcSignal::Trend { length: 7, .. }]));
        assert!(state.limits().is_none());
    }

    #[test]
    fn an_equal_point_breaks_the_trend() {
        let mut state = SeriesState::default();
        // 3, 3 breaks it; 3, 4, 5, 6, 7 is five points, one short; 8 makes six.
        for value in [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0] {
            assert!(
                state
                    .observe(value, &config(), Polarity::HigherIsBetter)
                    .is_empty()
            );
        }
        let signals = state.observe(8.0, &config(), Polarity::HigherIsBetter);
        assert!(matches!(signals.as_slice(), [SpcSignal::Trend { length: 6, .. }]));
    }

    #[test]
    fn a_turn_starts_a_trend_from_the_turning_point() {
        let mut state = SeriesState::default();
        // 3 is the peak and the first point of the fall 3, 2, 1, 0, -1, -2.
        for value in [1.0, 2.0, 3.0, 2.0, 1.0, 0.0, -1.0] {
            assert!(
                state
                    .observe(value, &config(), Polarity::LowerIsBetter)
                    .is_empty()
            );
        }
        let signals = state.observe(-2.0, &config(), Polarity::LowerIsBetter);
        assert!(matches!(
            signals.as_slice(),
            [SpcSignal::Trend {
                direction: TrendDirection::Falling,
                length: 6,
                assessment: Assessment::Improvement,
                ..
            }]
        ));
    }

    #[test]
    fn polarity_decides_concern_or_improvement() {
        let cases = [
            (Polarity::HigherIsBetter, 17.0, false),
            (Polarity::HigherIsBetter, 7.0, true),
            (Polarity::LowerIsBetter, 17.0, true),
            (Polarity::LowerIsBetter, 7.0, false),
            (Polarity::Unspecified, 7.0, true),
        ];
        for (polarity, value, concern) in cases {
            let signals = baselined().observe(value, &config(), polarity);
            assert_eq!(signals.len(), 1, "{polarity:?} {value}");
            assert_eq!(signals[0].is_concern(), concern, "{polarity:?} {value}");
        }

        // Lower is better: a run above the mean and a rising trend are concerns.
        let mut state = baselined();
        let mut last = Vec::new();
        for value in [12.5, 13.0, 13.5, 14.0, 14.5, 15.0] {
            last = state.observe(value, &config(), Polarity::LowerIsBetter);
        }
        assert_eq!(rules(&last), ["spc-run", "spc-trend"]);
        assert!(last.iter().all(SpcSignal::is_concern));
    }

    #[test]
    fn configured_lengths_are_honoured_and_names_stay_stable() {
        let short = SpcConfig {
            baseline_points: 4,
            run_length: 3,
            trend_length: 3,
        };
        // Mean 2.5, moving ranges 1, 1, 1: limits 2.5 ± 2.66.
        let mut state = SeriesState::from_values(&[1.0, 2.0, 3.0, 4.0], &short);
        let limits = state.limits().expect("limits");
        assert!(close(limits.upper, 5.16));
        // The baseline ends 3, 4 above the mean, so 4.5 makes a run of three; 1, 2, 3, 4, 4.5 a trend of five.
        let signals = state.observe(4.5, &short, Polarity::HigherIsBetter);
        assert_eq!(rules(&signals), ["spc-run", "spc-trend"]);
        assert!(matches!(signals[0], SpcSignal::Run { length: 3, .. }));
        assert!(matches!(signals[1], SpcSignal::Trend { length: 5, .. }));
    }

    #[test]
    fn rebaseline_recomputes_the_limits() {
        let mut state = baselined();
        for _ in 0..3 {
            let _ = state.observe(40.0, &config(), Polarity::HigherIsBetter);
        }
        let corrected: Vec<f64> = BASELINE.iter().map(|v| v + 10.0).chain([40.0; 3]).collect();
        state.rebaseline(&corrected, &config());
        let limits = state.limits().expect("limits");
        assert!(close(limits.mean, 22.0));
        assert!(close(state.mean_moving_range().expect("mr"), 20.0 / 11.0));
        assert_eq!(state.count(), 15);
        // What fires now, at the latest point: 40 is still beyond the recomputed upper limit.
        assert_eq!(
            rules(&state.signals(&config(), Polarity::HigherIsBetter)),
            ["spc-beyond-limits"]
        );

        // Rebaselining from too few values leaves no limits.
        state.rebaseline(&BASELINE[..5], &config());
        assert_eq!(state.limits(), None);
        assert_eq!(state.count(), 5);
    }

    #[test]
    fn rebuilding_from_values_matches_observing_one_by_one() {
        let values = [
            5.0, 7.0, 6.0, 8.0, 9.0, 4.0, 6.0, 7.0, 5.0, 6.0, 8.0, 7.0, 6.0, 9.0, 10.0,
        ];
        let mut observed = SeriesState::default();
        for &value in &values {
            let _ = observed.observe(value, &config(), Polarity::HigherIsBetter);
        }
        assert_eq!(observed, SeriesState::from_values(&values, &config()));
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut state = baselined();
        let before = state.clone();
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(
                state
                    .observe(value, &config(), Polarity::HigherIsBetter)
                    .is_empty()
            );
        }
        assert_eq!(state, before);
    }

    #[test]
    fn a_state_read_back_from_json_behaves_as_the_original() {
        use sqlx::types::Json;

        let thirds: Vec<f64> = (0..8).map(|i| f64::from(i) / 3.0 + 0.1).collect();
        let later = [0.7, 4.0, 1.0 / 3.0, 2.9, 3.1, 3.3, 3.5, 3.7, 3.9, 4.1, 0.2];
        let config = SpcConfig {
            baseline_points: 8,
            ..SpcConfig::default()
        };
        // Mid-baseline (values held) and after freezing (values dropped).
        for prefix in [&thirds[..5], &thirds[..]] {
            let original = SeriesState::from_values(prefix, &config);
            // The same encoding sqlx uses to bind a value to a jsonb column.
            let text = Json(&original).encode_to_string().expect("encode");
            let mut restored = Json::<SeriesState>::decode_from_string(&text).expect("decode").0;
            assert_eq!(restored, original);
            let mut original = original;
            for value in later {
                assert_eq!(
                    restored.observe(value, &config, Polarity::LowerIsBetter),
                    original.observe(value, &config, Polarity::LowerIsBetter)
                );
            }
            assert_eq!(restored, original);
        }
    }

    #[test]
    fn a_state_missing_fields_reads_as_empty() {
        use sqlx::types::Json;

        let state = Json::<SeriesState>::decode_from_string("{}").expect("decode").0;
        assert_eq!(state, SeriesState::default());
    }

    #[test]
    fn stored_floats_are_exact_text_and_numbers_are_accepted() {
        use sqlx::types::Json;

        let state = SeriesState::from_values(&[0.1, 1.4333333333333333], &config());
        let text = Json(&state).encode_to_string().expect("encode");
        assert!(text.contains(r#""last_value":"1.4333333333333333""#), "{text}");

        let written = r#"{"count": 2, "baseline_values": [1, 2.5], "last_value": 2.5,
            "trend": {"direction": "rising", "length": 2}}"#;
        let state = Json::<SeriesState>::decode_from_string(written)
            .expect("decode")
            .0;
        assert_eq!(state, SeriesState::from_values(&[1.0, 2.5], &config()));

        for bad in [
            r#"{"last_value": "NaN"}"#,
            r#"{"last_value": "inf"}"#,
            r#"{"last_value": "x"}"#,
        ] {
            assert!(Json::<SeriesState>::decode_from_string(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_names_are_stable() {
        let assessment = Assessment::Concern;
        let signals = [
            SpcSignal::BeyondLimits {
                value: 1.0,
                side: Side::Above,
                limit: 0.5,
                assessment,
            },
            SpcSignal::Run {
                value: 1.0,
                side: Side::Above,
                mean: 0.0,
                length: 9,
                assessment,
            },
            SpcSignal::Trend {
                value: 1.0,
                direction: TrendDirection::Rising,
                length: 6,
                assessment,
            },
        ];
        assert_eq!(rules(&signals), ["spc-beyond-limits", "spc-run", "spc-trend"]);
    }
}
