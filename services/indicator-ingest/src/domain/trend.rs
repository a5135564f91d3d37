//! Direction of travel: whether a value is better or worse than the previous period's and than the
//! baseline, in the sense the indicator's polarity gives.

use serde::{Deserialize, Serialize};
use trust_proto::common::v1::Polarity;

/// Differences within this count as no change, so that float noise from summed numerators and
/// denominators does not read as movement. Absolute for values up to 1, relative above (see [`direction`]).
pub const DEFAULT_EPSILON: f64 = 1e-9;

/// Which way a value moved, judged by polarity rather than by sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Improving,
    Worsening,
    NoChange,
}

impl Direction {
    /// Stable name for events and the status board.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Improving => "improving",
            Self::Worsening => "worsening",
            Self::NoChange => "no_change",
        }
    }
}

/// Direction of travel against each reference; `None` where there is no reference to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionOfTravel {
    pub against_previous: Option<Direction>,
    pub against_baseline: Option<Direction>,
}

/// Direction of travel of `value` against the previous period's value and against the baseline.
pub fn direction_of_travel(
    value: f64,
    previous: Option<f64>,
    baseline: Option<f64>,
    polarity: Polarity,
    epsilon: f64,
) -> DirectionOfTravel {
    DirectionOfTravel {
        against_previous: previous.and_then(|p| direction(value, p, polarity, epsilon)),
        against_baseline: baseline.and_then(|b| direction(value, b, polarity, epsilon)),
    }
}

/// Direction of `value` against one `reference`. No change when the two differ by at most
/// `epsilon × max(1, |value|, |reference|)`: absolute near zero, relative for large values such as money
/// in pence. A negative or NaN `epsilon` means exact comparison. `None` when either value is not finite,
/// since no direction can honestly be given.
pub fn direction(value: f64, reference: f64, polarity: Polarity, epsilon: f64) -> Option<Direction> {
    if !value.is_finite() || !reference.is_finite() {
        return None;
    }
    let scale = 1.0_f64.max(value.abs()).max(reference.abs());
    // f64::max ignores NaN, so a NaN epsilon becomes 0.
    let tolerance = epsilon.max(0.0) * scale;
    let change = value - reference;
    if change.abs() <= tolerance {
        return Some(Direction::NoChange);
    }
    let rose = change > 0.0;
    Some(if rose == higher_is_better(polarity) {
        Direction::Improving
    } else {
        Direction::Worsening
    })
}

/// The one place polarity becomes a sense. Unspecified reads as higher-is-better, as in
/// [`super::evaluation::evaluate`], so RAG, trend and SPC never disagree about the same indicator.
pub(crate) fn higher_is_better(polarity: Polarity) -> bool {
    !matches!(polarity, Polarity::LowerIsBetter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_is_better_rising_is_improving() {
        let travel = direction_of_travel(
            92.0,
            Some(90.0),
            Some(95.0),
            Polarity::HigherIsBetter,
            DEFAULT_EPSILON,
        );
        assert_eq!(travel.against_previous, Some(Direction::Improving));
        assert_eq!(travel.against_baseline, Some(Direction::Worsening));
    }

    #[test]
    fn lower_is_better_flips_the_sense() {
        let travel = direction_of_travel(
            92.0,
            Some(90.0),
            Some(95.0),
            Polarity::LowerIsBetter,
            DEFAULT_EPSILON,
        );
        assert_eq!(travel.against_previous, Some(Direction::Worsening));
        assert_eq!(travel.against_baseline, Some(Direction::Improving));
    }

    #[test]
    fn unspecified_polarity_reads_as_higher_is_better() {
        assert_eq!(
            direction(2.0, 1.0, Polarity::Unspecified, DEFAULT_EPSILON),
            Some(Direction::Improving)
        );
    }

    #[test]
    fn missing_references_give_no_direction() {
        let travel = direction_of_travel(5.0, None, None, Polarity::HigherIsBetter, DEFAULT_EPSILON);
        assert_eq!(travel, DirectionOfTravel::default());
        let travel = direction_of_travel(5.0, Some(4.0), None, Polarity::LowerIsBetter, DEFAULT_EPSILON);
        assert_eq!(travel.against_previous, Some(Direction::Worsening));
        assert_eq!(travel.against_baseline, None);
    }

    #[test]
    fn equal_within_tolerance_is_no_change_for_both_polarities() {
        for polarity in [Polarity::HigherIsBetter, Polarity::LowerIsBetter] {
            // 0.1 + 0.2 is 0.30000000000000004: noise, not movement.
            assert_eq!(
                direction(0.1 + 0.2, 0.3, polarity, DEFAULT_EPSILON),
                Some(Direction::NoChange)
            );
            assert_eq!(direction(7.0, 7.0, polarity, 0.0), Some(Direction::NoChange));
        }
    }

    #[test]
    fn tolerance_is_relative_for_large_values() {
        // Money in pence: half a penny on £10m is within 1e-9 relative; a penny on £1 is not.
        let big = 1_000_000_000.0;
        assert_eq!(
            direction(big + 0.5, big, Polarity::HigherIsBetter, DEFAULT_EPSILON),
            Some(Direction::NoChange)
        );
        assert_eq!(
            direction(101.0, 100.0, Polarity::HigherIsBetter, DEFAULT_EPSILON),
            Some(Direction::Improving)
        );
        // A caller-supplied epsilon widens the band: 1% either way.
        assert_eq!(
            direction(100.5, 100.0, Polarity::LowerIsBetter, 0.01),
            Some(Direction::NoChange)
        );
        assert_eq!(
            direction(102.0, 100.0, Polarity::LowerIsBetter, 0.01),
            Some(Direction::Worsening)
        );
    }

    #[test]
    fn bad_epsilon_means_exact_and_non_finite_values_give_none() {
        assert_eq!(
            direction(1.0 + 1e-12, 1.0, Polarity::HigherIsBetter, f64::NAN),
            Some(Direction::Improving)
        );
        assert_eq!(
            direction(1.0, 1.0 + 1e-12, Polarity::HigherIsBetter, -1.0),
            Some(Direction::Worsening)
        );
        assert_eq!(
            direction(f64::NAN, 1.0, Polarity::HigherIsBetter, DEFAULT_EPSILON),
            None
        );
        assert_eq!(
            direction(1.0, f64::INFINITY, Polarity::LowerIsBetter, DEFAULT_EPSILON),
            None
        );
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(Direction::Improving.as_str(), "improving");
        assert_eq!(Direction::Worsening.as_str(), "worsening");
        assert_eq!(Direction::NoChange.as_str(), "no_change");
    }
}
