//! The rules of the performance picture, in plain Rust (no I/O): what a recorded observation must carry,
//! and which of two values of the same indicator and locality is the one to keep.

use thiserror::Error;
use trust_proto::ingest::v1 as ingest;

/// Where a value sits in time: its period, and within the period its revision (1 first, higher for
/// corrections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub period_year: i32,
    pub period_number: i32,
    pub revision: u32,
}

impl Version {
    /// Ordering key: a later period wins whatever its revision; within one period the higher revision wins.
    fn key(self) -> (i32, i32, u32) {
        (self.period_year, self.period_number, self.revision)
    }
}

/// Whether `incoming` should replace the value held for the same indicator and locality: only a newer
/// period, or the same period with a higher revision. A late correction of an older period, or a repeat of
/// what is held, changes nothing.
///
/// Periods are compared by (year, number): an indicator is collected for one period type (the catalogue
/// says which), so both values are of the same type.
pub fn supersedes(incoming: Version, held: Version) -> bool {
    incoming.key() > held.key()
}

/// What to do with one recorded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing held yet for this indicator and locality.
    Insert,
    /// Newer than what is held.
    Replace,
    /// Older than, or the same as, what is held.
    Keep,
}

pub fn decide(held: Option<Version>, incoming: Version) -> Decision {
    match held {
        None => Decision::Insert,
        Some(held) if supersedes(incoming, held) => Decision::Replace,
        Some(_) => Decision::Keep,
    }
}

/// One indicator value for one locality and period, as indicator ingest recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceValue {
    pub indicator_code: String,
    pub locality_code: String,
    /// `trust.common.v1.PeriodType`.
    pub period_type: i32,
    pub period_year: i32,
    pub period_number: i32,
    pub value: f64,
    /// `trust.common.v1.Rag`.
    pub rag: i32,
    pub revision: u32,
}

impl PerformanceValue {
    pub fn version(&self) -> Version {
        Version {
            period_year: self.period_year,
            period_number: self.period_number,
            revision: self.revision,
        }
    }
}

/// A recorded observation that breaks the `ObservationsRecorded` contract (indicator ingest validated it
/// before recording, so this is a producer fault, not a partner's).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRecord {
    #[error("observation {position}: indicator_code is empty")]
    NoIndicator { position: usize },
    #[error("observation {position}: locality_code is empty")]
    NoLocality { position: usize },
    #[error("observation {position}: period is missing")]
    NoPeriod { position: usize },
    #[error("observation {position}: value is not a finite number")]
    NotFinite { position: usize },
}

/// Take a recorded observation (at `position` in its event) as a performance value.
pub fn from_recorded(
    position: usize,
    recorded: &ingest::RecordedObservation,
) -> Result<PerformanceValue, InvalidRecord> {
    if recorded.indicator_code.is_empty() {
        return Err(InvalidRecord::NoIndicator { position });
    }
    if recorded.locality_code.is_empty() {
        return Err(InvalidRecord::NoLocality { position });
    }
    let period = recorded
        .period
        .as_ref()
        .ok_or(InvalidRecord::NoPeriod { position })?;
    if !recorded.value.is_finite() {
        return Err(InvalidRecord::NotFinite { position });
    }
    Ok(PerformanceValue {
        indicator_code: recorded.indicator_code.clone(),
        locality_code: recorded.locality_code.clone(),
        period_type: period.r#type,
        period_year: period.year,
        period_number: period.number,
        value: recorded.value,
        rag: recorded.rag,
        revision: recorded.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trust_proto::common::v1::{Period, PeriodType, Rag};

    fn v(period_year: i32, period_number: i32, revision: u32) -> Version {
        Version {
            period_year,
            period_number,
            revision,
        }
    }

    #[test]
    fn a_later_period_supersedes_whatever_its_revision() {
        assert!(supersedes(v(2026, 3, 1), v(2026, 2, 4)));
        assert!(supersedes(v(2027, 1, 1), v(2026, 4, 9)));
    }

    #[test]
    fn a_late_revision_of_an_older_period_does_not_supersede_a_newer_period() {
        assert!(!supersedes(v(2026, 1, 5), v(2026, 2, 1)));
        assert!(!supersedes(v(2025, 4, 2), v(2026, 1, 1)));
    }

    #[test]
    fn within_a_period_only_a_higher_revision_supersedes() {
        assert!(supersedes(v(2026, 2, 2), v(2026, 2, 1)));
        assert!(
            !supersedes(v(2026, 2, 1), v(2026, 2, 1)),
            "a repeat changes nothing"
        );
        assert!(
            !supersedes(v(2026, 2, 1), v(2026, 2, 2)),
            "an older revision arriving late"
        );
    }

    #[test]
    fn decide_inserts_when_nothing_is_held() {
        assert_eq!(decide(None, v(2026, 1, 1)), Decision::Insert);
        assert_eq!(decide(Some(v(2026, 1, 1)), v(2026, 2, 1)), Decision::Replace);
        assert_eq!(decide(Some(v(2026, 2, 1)), v(2026, 1, 3)), Decision::Keep);
    }

    fn recorded() -> ingest::RecordedObservation {
        ingest::RecordedObservation {
            indicator_code: "NEET_16_18".into(),
            locality_code: "AREA_EAST".into(),
            period: Some(Period {
                r#type: PeriodType::Quarter.into(),
                year: 2026,
                number: 2,
            }),
            value: 7.5,
            rag: Rag::Red.into(),
            revision: 2,
            ..Default::default()
        }
    }

    #[test]
    fn a_recorded_observation_becomes_a_performance_value() {
        let value = from_recorded(0, &recorded()).expect("valid");
        assert_eq!(value.version(), v(2026, 2, 2));
        assert_eq!(value.period_type, i32::from(PeriodType::Quarter));
        assert_eq!(value.rag, i32::from(Rag::Red));
    }

    #[test]
    fn a_recorded_observation_breaking_the_contract_is_refused_with_its_position() {
        let mut no_period = recorded();
        no_period.period = None;
        assert_eq!(
            from_recorded(3, &no_period),
            Err(InvalidRecord::NoPeriod { position: 3 })
        );
        let mut no_indicator = recorded();
        no_indicator.indicator_code.clear();
        assert_eq!(
            from_recorded(0, &no_indicator),
            Err(InvalidRecord::NoIndicator { position: 0 })
        );
        let mut nan = recorded();
        nan.value = f64::NAN;
        assert_eq!(
            from_recorded(1, &nan),
            Err(InvalidRecord::NotFinite { position: 1 })
        );
    }
}
