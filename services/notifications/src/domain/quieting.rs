//! What keeps noise down without losing anything: silences (muting by matchers for a window, with author
//! and reason; a silenced alert is kept and shown, only not sent), inhibition (a city-wide alert about an
//! indicator suppresses the same indicator's alerts for places within the city), and grouping (what
//! reaches one person within a short window goes out as one digest, and nobody is told about the same
//! alert again before the repeat interval).

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use super::routing::{AlertFacts, Matchers};

/// A silence as it is kept: who muted what, for when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub matchers: Matchers,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub author: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SilenceError {
    #[error("author: a silence must say who set it")]
    NoAuthor,
    #[error("reason: a silence must say why (it is audited)")]
    NoReason,
    #[error("ends_at: {ends_at} is not after starts_at {starts_at}")]
    EmptyWindow {
        starts_at: OffsetDateTime,
        ends_at: OffsetDateTime,
    },
    #[error("matchers: a silence with no matchers would mute every alert; name at least one")]
    MatchesEverything,
}

impl Silence {
    /// A silence that can be kept: named author and reason, a real window, and at least one matcher.
    pub fn new(
        matchers: Matchers,
        starts_at: OffsetDateTime,
        ends_at: OffsetDateTime,
        author: &str,
        reason: &str,
    ) -> Result<Self, SilenceError> {
        if author.trim().is_empty() {
            return Err(SilenceError::NoAuthor);
        }
        if reason.trim().is_empty() {
            return Err(SilenceError::NoReason);
        }
        if ends_at <= starts_at {
            return Err(SilenceError::EmptyWindow { starts_at, ends_at });
        }
        if matchers == Matchers::default() {
            return Err(SilenceError::MatchesEverything);
        }
        Ok(Self {
            matchers,
            starts_at,
            ends_at,
            author: author.trim().to_owned(),
            reason: reason.trim().to_owned(),
        })
    }

    /// Whether this silence mutes the alert at `now`.
    pub fn mutes(&self, alert: &AlertFacts<'_>, now: OffsetDateTime) -> bool {
        self.starts_at <= now && now < self.ends_at && self.matchers.matches(alert)
    }
}

/// An alert as inhibition sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing<'a> {
    pub indicator: &'a str,
    pub rule: &'a str,
    /// Its locality and those above it, nearest first; one element for the city itself.
    pub locality_lineage: &'a [String],
}

impl Firing<'_> {
    fn is_city_wide(&self) -> bool {
        self.locality_lineage.len() == 1
    }
}

/// Whether `alert` is suppressed by a city-wide alert of the same indicator and rule among `firing`.
pub fn inhibited(alert: &Firing<'_>, firing: &[Firing<'_>]) -> bool {
    !alert.is_city_wide()
        && firing.iter().any(|other| {
            other.is_city_wide()
                && other.indicator == alert.indicator
                && other.rule == alert.rule
                && alert.locality_lineage.last() == other.locality_lineage.first()
        })
}

/// When an email due now to someone goes: at once (None) when nothing went to them within the digest
/// window, so the first of a burst is not delayed; otherwise held to the end of the window that began with
/// the last one, to go out as one digest with everything else due to them by then. A zero window never
/// holds. (How often the same alert is told again is the ladder's `repeat`.)
pub fn held_until(
    last_sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
) -> Option<OffsetDateTime> {
    let ends = last_sent? + window;
    (window > Duration::ZERO && ends > now).then_some(ends)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use time::macros::datetime;

    use super::*;

    fn indicator_matcher(code: &str) -> Matchers {
        Matchers {
            indicators: [code.to_owned()].into_iter().collect::<HashSet<_>>(),
            ..Default::default()
        }
    }

    #[test]
    fn a_silence_mutes_matching_alerts_only_within_its_window() {
        let start = datetime!(2026-11-23 09:00 UTC);
        let silence = Silence::new(
            indicator_matcher("NEET_16_18"),
            start,
            start + Duration::hours(2),
            "perf-lead",
            "known data issue, resubmission due",
        )
        .expect("valid");
        let neet = AlertFacts {
            kind: "indicator",
            indicator: Some("NEET_16_18"),
            ..Default::default()
        };
        let other = AlertFacts {
            indicator: Some("GCSE_5AC"),
            ..neet.clone()
        };
        assert!(silence.mutes(&neet, start + Duration::minutes(30)));
        assert!(!silence.mutes(&other, start + Duration::minutes(30)));
        assert!(!silence.mutes(&neet, start - Duration::minutes(1)));
        assert!(!silence.mutes(&neet, start + Duration::hours(2)));
    }

    #[test]
    fn a_silence_needs_an_author_a_reason_a_window_and_a_matcher() {
        let start = datetime!(2026-11-23 09:00 UTC);
        let end = start + Duration::hours(1);
        let m = indicator_matcher("NEET_16_18");
        assert_eq!(
            Silence::new(m.clone(), start, end, " ", "why").unwrap_err(),
            SilenceError::NoAuthor
        );
        assert_eq!(
            Silence::new(m.clone(), start, end, "me", "").unwrap_err(),
            SilenceError::NoReason
        );
        assert!(matches!(
            Silence::new(m, end, start, "me", "why").unwrap_err(),
            SilenceError::EmptyWindow { .. }
        ));
        assert_eq!(
            Silence::new(Matchers::default(), start, end, "me", "why").unwrap_err(),
            SilenceError::MatchesEverything
        );
    }

    #[test]
    fn a_city_wide_alert_inhibits_the_same_indicators_local_alerts() {
        let city = vec!["CITY".to_owned()];
        let east = vec!["AREA_EAST".to_owned(), "CITY".to_owned()];
        let city_neet = Firing {
            indicator: "NEET_16_18",
            rule: "target-breach",
            locality_lineage: &city,
        };
        let east_neet = Firing {
            locality_lineage: &east,
            ..city_neet.clone()
        };
        let east_gcse = Firing {
            indicator: "GCSE_5AC",
            ..east_neet.clone()
        };
        let firing = vec![city_neet.clone(), east_neet.clone(), east_gcse.clone()];
        assert!(inhibited(&east_neet, &firing));
        assert!(!inhibited(&east_gcse, &firing), "another indicator");
        assert!(!inhibited(&city_neet, &firing), "the city-wide alert itself");
        assert!(
            !inhibited(&east_neet, std::slice::from_ref(&east_neet)),
            "nothing city-wide firing"
        );
    }

    #[test]
    fn the_first_email_goes_at_once_and_the_rest_of_a_burst_waits_for_the_window() {
        let sent = datetime!(2026-11-23 09:00 UTC);
        let window = Duration::minutes(2);
        assert_eq!(held_until(None, sent, window), None, "nothing sent yet: at once");
        assert_eq!(
            held_until(Some(sent), sent + Duration::seconds(10), window),
            Some(sent + window),
            "within the window: held to its end"
        );
        assert_eq!(
            held_until(Some(sent), sent + window, window),
            None,
            "the window has passed"
        );
        assert_eq!(
            held_until(Some(sent), sent + Duration::seconds(10), Duration::ZERO),
            None,
            "digests off"
        );
    }
}
