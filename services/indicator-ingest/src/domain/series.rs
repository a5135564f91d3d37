//! One series (an indicator in a locality) as a submission changes it. A value that extends the series is
//! evaluated from the state held with it (the latest period, its value and RAG, and the SPC state), in
//! O(1) and without reading history; a correction or a back-filled period needs the series' stored values,
//! which the caller reads once per submission.

use std::collections::BTreeMap;

use trust_proto::common::v1::{Polarity, Rag};

use super::spc::{SeriesState, SpcConfig, SpcSignal};

/// (indicator code, locality code).
pub type SeriesKey = (String, String);
/// (year, number) of a period within its indicator's period type.
pub type PeriodIndex = (i32, i32);

/// A series' state as held: the latest period, its value and RAG, and the SPC state through it.
#[derive(Debug, Clone)]
pub struct HeldState {
    pub last: PeriodIndex,
    /// None for states kept before these were: such a series is read from its history once.
    pub last_value: Option<f64>,
    pub last_rag: Option<Rag>,
    pub state: SeriesState,
}

impl HeldState {
    /// Whether this state alone can take values for `periods` (in submission order): each must come after
    /// the latest held period and after the one before it.
    pub fn suffices_for(&self, periods: &[PeriodIndex]) -> bool {
        self.last_value.is_some()
            && self.last_rag.is_some()
            && periods
                .iter()
                .try_fold(self.last, |last, &p| (p > last).then_some(p))
                .is_some()
    }
}

/// A stored value of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredPoint {
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub revision: i32,
    pub rag: Rag,
}

/// What storing one value does.
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

/// A value offered to a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offered {
    pub period: PeriodIndex,
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    /// Its RAG against the target in force for its period.
    pub rag: Rag,
}

/// What the series made of a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub change: Change,
    pub revision: i32,
    /// The current value of the latest period before this one.
    pub previous_period_value: Option<f64>,
    /// RAG of the series' latest period before this value.
    pub prior_status: Option<Rag>,
    /// No later period is stored: only the latest value moves the series' escalations.
    pub latest: bool,
    /// SPC signals at this value (empty for a back-filled period and for an unchanged value).
    pub signals: Vec<SpcSignal>,
}

/// A series during one submission.
#[derive(Debug, Clone)]
pub struct Series {
    /// Every stored value, when the series was read whole; None when the held state suffices.
    points: Option<BTreeMap<PeriodIndex, StoredPoint>>,
    held: Option<HeldState>,
    changed: bool,
}

impl Series {
    /// A series evaluated from its held state alone (see [`HeldState::suffices_for`]).
    pub fn from_state(held: HeldState) -> Self {
        Self {
            points: None,
            held: Some(held),
            changed: false,
        }
    }

    /// A series read whole, in period order (empty for a new series).
    pub fn from_history(points: Vec<(PeriodIndex, StoredPoint)>, config: &SpcConfig) -> Self {
        let values: Vec<f64> = points.iter().map(|(_, p)| p.value).collect();
        let held = points.last().map(|(last, point)| HeldState {
            last: *last,
            last_value: Some(point.value),
            last_rag: Some(point.rag),
            state: SeriesState::from_values(&values, config),
        });
        Self {
            points: Some(points.into_iter().collect()),
            held,
            changed: false,
        }
    }

    /// The value held for a period, if any.
    pub fn current(&self, period: PeriodIndex) -> Option<StoredPoint> {
        self.points.as_ref()?.get(&period).copied()
    }

    /// The state to keep, once this submission has changed the series.
    pub fn changed_state(&self) -> Option<&HeldState> {
        self.held.as_ref().filter(|_| self.changed)
    }

    fn previous_value(&self, period: PeriodIndex) -> Option<f64> {
        match &self.points {
            Some(points) => points.range(..period).next_back().map(|(_, p)| p.value),
            None => self.held.as_ref().and_then(|h| h.last_value),
        }
    }

    fn latest_period(&self) -> Option<PeriodIndex> {
        match &self.points {
            Some(points) => points.keys().next_back().copied(),
            None => self.held.as_ref().map(|h| h.last),
        }
    }

    /// Store `offered` as the current value for its period and evaluate it against the series.
    pub fn record(&mut self, offered: Offered, config: &SpcConfig, polarity: Polarity) -> Recorded {
        let period = offered.period;
        let previous_period_value = self.previous_value(period);
        let prior_status = self.held.as_ref().and_then(|h| h.last_rag);
        let latest = self.latest_period().is_none_or(|last| period >= last);
        let current = self.current(period);
        let (change, revision) = match current {
            Some(c)
                if c.value == offered.value
                    && c.numerator == offered.numerator
                    && c.denominator == offered.denominator =>
            {
                return Recorded {
                    change: Change::Unchanged,
                    revision: c.revision,
                    previous_period_value,
                    prior_status,
                    latest,
                    signals: Vec::new(),
                };
            }
            Some(c) => (
                Change::Updated {
                    revision: c.revision + 1,
                    previous: c.value,
                },
                c.revision + 1,
            ),
            None => (Change::Created, 1),
        };
        self.changed = true;
        let extends = latest && self.held.as_ref().is_none_or(|h| period > h.last);
        if let Some(points) = &mut self.points {
            points.insert(
                period,
                StoredPoint {
                    value: offered.value,
                    numerator: offered.numerator,
                    denominator: offered.denominator,
                    revision,
                    rag: offered.rag,
                },
            );
        }
        let mut held = self.held.take().unwrap_or_else(|| HeldState {
            last: period,
            last_value: None,
            last_rag: None,
            state: SeriesState::default(),
        });
        let signals = match &self.points {
            Some(points) if !extends => {
                // A correction or back-fill changes what came before: rebuild the state from the series.
                let values: Vec<f64> = points.values().map(|p| p.value).collect();
                held.state = SeriesState::from_values(&values, config);
                if latest {
                    held.state.signals(config, polarity)
                } else {
                    Vec::new()
                }
            }
            _ => held.state.observe(offered.value, config, polarity),
        };
        if latest {
            held.last = period;
            held.last_value = Some(offered.value);
            held.last_rag = Some(offered.rag);
        }
        self.held = Some(held);
        Recorded {
            change,
            revision,
            previous_period_value,
            prior_status,
            latest,
            signals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(period: PeriodIndex, value: f64, rag: Rag) -> Offered {
        Offered {
            period,
            value,
            numerator: None,
            denominator: None,
            rag,
        }
    }

    fn point(value: f64, revision: i32, rag: Rag) -> StoredPoint {
        StoredPoint {
            value,
            numerator: None,
            denominator: None,
            revision,
            rag,
        }
    }

    const UP: Polarity = Polarity::HigherIsBetter;

    #[test]
    fn extending_from_state_matches_reading_the_whole_history() {
        let config = SpcConfig::default();
        let values = [
            50.0, 52.0, 49.0, 51.0, 50.5, 48.0, 53.0, 50.0, 49.5, 51.5, 50.0, 52.5, 70.0,
        ];
        let history: Vec<(PeriodIndex, StoredPoint)> = values[..12]
            .iter()
            .enumerate()
            .map(|(i, v)| ((2020, i32::try_from(i).unwrap() + 1), point(*v, 1, Rag::Green)))
            .collect();
        let mut whole = Series::from_history(history.clone(), &config);
        let held = Series::from_history(history, &config).held.expect("held");
        assert!(held.suffices_for(&[(2020, 13)]));
        let mut from_state = Series::from_state(held);
        let a = whole.record(offered((2020, 13), values[12], Rag::Red), &config, UP);
        let b = from_state.record(offered((2020, 13), values[12], Rag::Red), &config, UP);
        assert_eq!(a, b);
        assert_eq!(a.previous_period_value, Some(52.5));
        assert_eq!(a.prior_status, Some(Rag::Green));
        assert!(a.latest);
        assert!(
            a.signals.iter().any(|s| s.rule_name() == "spc-beyond-limits"),
            "{:?}",
            a.signals
        );
        assert_eq!(
            whole.changed_state().map(|h| (&h.state, h.last)),
            from_state.changed_state().map(|h| (&h.state, h.last))
        );
    }

    #[test]
    fn a_state_does_not_suffice_for_a_back_fill_or_periods_out_of_order() {
        let held = HeldState {
            last: (2020, 4),
            last_value: Some(1.0),
            last_rag: Some(Rag::Green),
            state: SeriesState::default(),
        };
        assert!(held.suffices_for(&[(2021, 1), (2021, 2)]));
        assert!(!held.suffices_for(&[(2020, 4)]));
        assert!(!held.suffices_for(&[(2021, 2), (2021, 1)]));
        let legacy = HeldState {
            last_rag: None,
            ..held
        };
        assert!(!legacy.suffices_for(&[(2021, 1)]));
    }

    #[test]
    fn a_correction_is_a_new_revision_and_an_equal_value_is_unchanged() {
        let config = SpcConfig::default();
        let mut series = Series::from_history(
            vec![
                ((2020, 1), point(10.0, 1, Rag::Green)),
                ((2020, 2), point(12.0, 1, Rag::Green)),
            ],
            &config,
        );
        let same = series.record(offered((2020, 2), 12.0, Rag::Green), &config, UP);
        assert_eq!(same.change, Change::Unchanged);
        assert!(series.changed_state().is_none());
        let corrected = series.record(offered((2020, 2), 8.0, Rag::Red), &config, UP);
        assert_eq!(
            corrected.change,
            Change::Updated {
                revision: 2,
                previous: 12.0
            }
        );
        assert!(corrected.latest);
        assert_eq!(corrected.previous_period_value, Some(10.0));
        let held = series.changed_state().expect("changed");
        assert_eq!(
            (held.last, held.last_value, held.last_rag),
            ((2020, 2), Some(8.0), Some(Rag::Red))
        );
    }

    #[test]
    fn a_back_filled_period_is_not_latest_and_leaves_the_latest_alone() {
        let config = SpcConfig::default();
        let mut series = Series::from_history(vec![((2020, 3), point(10.0, 1, Rag::Amber))], &config);
        let back = series.record(offered((2020, 1), 30.0, Rag::Green), &config, UP);
        assert_eq!(back.change, Change::Created);
        assert!(!back.latest);
        assert!(back.signals.is_empty());
        assert_eq!(back.previous_period_value, None);
        let held = series.changed_state().expect("changed");
        assert_eq!(
            (held.last, held.last_value, held.last_rag),
            ((2020, 3), Some(10.0), Some(Rag::Amber))
        );
        assert_eq!(held.state.count(), 2);
    }
}
