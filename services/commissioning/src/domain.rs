//! The rules of the indicator-concern register, in plain Rust (no I/O): reading an escalation event, and
//! deciding what a raise or a resolve does to the occurrence held for its key.
//!
//! Escalations normally arrive in order (raise, resolve, raise again...), but a message retried after a
//! transient failure is redelivered later, behind messages that came after it, and replicas process
//! messages concurrently. The rules below give the same register whatever the order: an occurrence
//! is never reopened by its own late raise, and an older occurrence never replaces a newer one.

use prost_types::Timestamp;
use thiserror::Error;
use time::OffsetDateTime;
use trust_proto::alerting::v1 as alerting;

/// Which escalation event a message is, from the last part of its subject (`<service>.escalation.<event>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Raised,
    Resolved,
}

impl EventKind {
    /// None for an event this service does not know (a later kind of escalation event).
    pub fn from_subject(subject: &str) -> Option<Self> {
        match subject.rsplit_once('.').map(|(_, last)| last) {
            Some("raised") => Some(Self::Raised),
            Some("resolved") => Some(Self::Resolved),
            _ => None,
        }
    }
}

/// An indicator concern as an escalation event describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concern {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub indicator_code: String,
    pub locality_code: String,
    pub owner_partner_code: String,
    pub summary: String,
}

/// The occurrence held for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub occurrence_id: String,
    /// None while only its resolve has arrived.
    pub raised_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
}

impl Held {
    /// The earliest time known of the held occurrence: when it was raised, or else when it was resolved
    /// (it was raised before that).
    fn known_since(&self) -> Option<OffsetDateTime> {
        self.raised_at.or(self.resolved_at)
    }

    /// Whether an event of another occurrence at `at` is older than the held one. Occurrences of one key
    /// do not overlap (a key has one open occurrence at a time), so anything that happened before the held
    /// occurrence was raised belongs to an earlier occurrence.
    fn is_newer_than(&self, at: OffsetDateTime) -> bool {
        self.known_since().is_some_and(|since| at < since)
    }
}

/// What a raise does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRaised {
    /// Nothing held for the key: a new open concern.
    Insert,
    /// A new occurrence of a key held (resolved, or open with its resolve still to come): it replaces the
    /// held one and is open.
    Reopen,
    /// The raise of the occurrence whose resolve came first: fill in when it was raised; it stays resolved.
    Complete,
    /// The held occurrence's raise again: nothing changes.
    Duplicate,
    /// An earlier occurrence than the one held, arriving late: nothing changes.
    Older,
}

pub fn on_raised(held: Option<&Held>, occurrence_id: &str, raised_at: OffsetDateTime) -> OnRaised {
    match held {
        None => OnRaised::Insert,
        Some(held) if held.occurrence_id == occurrence_id => {
            if held.raised_at.is_none() {
                OnRaised::Complete
            } else {
                OnRaised::Duplicate
            }
        }
        Some(held) if held.is_newer_than(raised_at) => OnRaised::Older,
        Some(_) => OnRaised::Reopen,
    }
}

/// What a resolve does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnResolved {
    /// The held occurrence is resolved.
    Resolve,
    /// The held occurrence was resolved already: nothing changes.
    Duplicate,
    /// Nothing held for the key: the occurrence's raise has not arrived yet. Record it as resolved so its
    /// late raise does not open it.
    InsertResolved,
    /// A later occurrence than the one held was resolved before its raise arrived: it replaces the held
    /// one, resolved.
    ReplaceResolved,
    /// The resolve of an earlier occurrence than the one held: nothing changes.
    Older,
}

pub fn on_resolved(held: Option<&Held>, occurrence_id: &str, resolved_at: OffsetDateTime) -> OnResolved {
    match held {
        None => OnResolved::InsertResolved,
        Some(held) if held.occurrence_id == occurrence_id => {
            if held.resolved_at.is_none() {
                OnResolved::Resolve
            } else {
                OnResolved::Duplicate
            }
        }
        Some(held) if held.is_newer_than(resolved_at) || held.known_since() == Some(resolved_at) => {
            OnResolved::Older
        }
        Some(_) => OnResolved::ReplaceResolved,
    }
}

/// An escalation event that breaks the contract (no key, no occurrence id).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidEscalation {
    #[error("dedup_key is empty")]
    NoDedupKey,
    #[error("occurrence_id is empty")]
    NoOccurrenceId,
}

/// A raise as this service reads it. `concern` is None when the escalation is not about an indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub concern: Option<Concern>,
    /// None when the producer left it unset (the caller uses the time it received the event).
    pub raised_at: Option<OffsetDateTime>,
}

/// A resolve as this service reads it. `concern` is None when the escalation is not about an indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub concern: Option<Concern>,
    pub resolved_at: Option<OffsetDateTime>,
}

fn check_ids(dedup_key: &str, occurrence_id: &str) -> Result<(), InvalidEscalation> {
    if dedup_key.is_empty() {
        return Err(InvalidEscalation::NoDedupKey);
    }
    if occurrence_id.is_empty() {
        return Err(InvalidEscalation::NoOccurrenceId);
    }
    Ok(())
}

fn concern(
    dedup_key: &str,
    occurrence_id: &str,
    summary: &str,
    subject: Option<&alerting::IndicatorBreach>,
) -> Option<Concern> {
    subject.map(|breach| Concern {
        dedup_key: dedup_key.to_owned(),
        occurrence_id: occurrence_id.to_owned(),
        indicator_code: breach.indicator_code.clone(),
        locality_code: breach.locality_code.clone(),
        owner_partner_code: breach.owner_partner_code.clone(),
        summary: summary.to_owned(),
    })
}

pub fn read_raised(event: &alerting::EscalationRaised) -> Result<Raised, InvalidEscalation> {
    check_ids(&event.dedup_key, &event.occurrence_id)?;
    let breach = event.subject.as_ref().map(|subject| match subject {
        alerting::escalation_raised::Subject::Indicator(breach) => breach,
    });
    Ok(Raised {
        dedup_key: event.dedup_key.clone(),
        occurrence_id: event.occurrence_id.clone(),
        concern: concern(&event.dedup_key, &event.occurrence_id, &event.summary, breach),
        raised_at: to_datetime(event.raised_at.as_ref()),
    })
}

pub fn read_resolved(event: &alerting::EscalationResolved) -> Result<Resolved, InvalidEscalation> {
    check_ids(&event.dedup_key, &event.occurrence_id)?;
    let breach = event.subject.as_ref().map(|subject| match subject {
        alerting::escalation_resolved::Subject::Indicator(breach) => breach,
    });
    Ok(Resolved {
        dedup_key: event.dedup_key.clone(),
        occurrence_id: event.occurrence_id.clone(),
        concern: concern(&event.dedup_key, &event.occurrence_id, &event.summary, breach),
        resolved_at: to_datetime(event.resolved_at.as_ref()),
    })
}

/// A protobuf timestamp as a time; None when unset or out of range.
pub fn to_datetime(timestamp: Option<&Timestamp>) -> Option<OffsetDateTime> {
    let timestamp = timestamp?;
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T1: OffsetDateTime = datetime!(2026-04-01 09:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);
    const T3: OffsetDateTime = datetime!(2026-06-01 09:00 UTC);
    const T4: OffsetDateTime = datetime!(2026-07-01 09:00 UTC);

    fn held(
        occurrence_id: &str,
        raised_at: Option<OffsetDateTime>,
        resolved_at: Option<OffsetDateTime>,
    ) -> Held {
        Held {
            occurrence_id: occurrence_id.into(),
            raised_at,
            resolved_at,
        }
    }

    #[test]
    fn the_kind_of_event_is_the_last_part_of_its_subject() {
        assert_eq!(
            EventKind::from_subject("ingest.escalation.raised"),
            Some(EventKind::Raised)
        );
        assert_eq!(
            EventKind::from_subject("ingest.escalation.resolved"),
            Some(EventKind::Resolved)
        );
        assert_eq!(
            EventKind::from_subject("commissioning.escalation.acknowledged"),
            None
        );
        assert_eq!(EventKind::from_subject("raised"), None);
    }

    #[test]
    fn in_order_raise_resolve_raise_opens_closes_and_reopens() {
        assert_eq!(on_raised(None, "a", T1), OnRaised::Insert);
        let open_a = held("a", Some(T1), None);
        assert_eq!(on_resolved(Some(&open_a), "a", T2), OnResolved::Resolve);
        let resolved_a = held("a", Some(T1), Some(T2));
        assert_eq!(on_raised(Some(&resolved_a), "b", T3), OnRaised::Reopen);
    }

    #[test]
    fn repeats_change_nothing() {
        assert_eq!(
            on_raised(Some(&held("a", Some(T1), None)), "a", T1),
            OnRaised::Duplicate
        );
        assert_eq!(
            on_resolved(Some(&held("a", Some(T1), Some(T2))), "a", T2),
            OnResolved::Duplicate
        );
    }

    #[test]
    fn a_late_raise_does_not_reopen_its_resolved_occurrence() {
        assert_eq!(on_resolved(None, "a", T2), OnResolved::InsertResolved);
        let resolved_first = held("a", None, Some(T2));
        assert_eq!(on_raised(Some(&resolved_first), "a", T1), OnRaised::Complete);
    }

    #[test]
    fn a_late_raise_of_an_earlier_occurrence_does_not_replace_a_later_one() {
        // a: raised T1, resolved T2; b: raised T3. a's raise arrives last.
        assert_eq!(
            on_raised(Some(&held("b", Some(T3), None)), "a", T1),
            OnRaised::Older
        );
        // Only b's resolve has arrived so far (at T4): a's raise is still older.
        assert_eq!(
            on_raised(Some(&held("b", None, Some(T4))), "a", T1),
            OnRaised::Older
        );
    }

    #[test]
    fn a_late_resolve_of_an_earlier_occurrence_does_not_close_a_later_one() {
        assert_eq!(
            on_resolved(Some(&held("b", Some(T3), None)), "a", T2),
            OnResolved::Older
        );
    }

    #[test]
    fn a_later_occurrence_resolved_before_its_raise_arrives_replaces_the_held_one() {
        // a: raised T1 (held, open; its resolve at T2 is still to come); b: raised T3, resolved T4.
        let open_a = held("a", Some(T1), None);
        assert_eq!(on_resolved(Some(&open_a), "b", T4), OnResolved::ReplaceResolved);
        // Then a's late resolve and b's late raise change nothing but filling in b's raise.
        let resolved_b = held("b", None, Some(T4));
        assert_eq!(on_resolved(Some(&resolved_b), "a", T2), OnResolved::Older);
        assert_eq!(on_raised(Some(&resolved_b), "b", T3), OnRaised::Complete);
    }

    fn breach() -> alerting::IndicatorBreach {
        alerting::IndicatorBreach {
            indicator_code: "NEET_16_18".into(),
            locality_code: "AREA_EAST".into(),
            owner_partner_code: "connexions".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_raise_about_an_indicator_is_read_as_a_concern() {
        let event = alerting::EscalationRaised {
            dedup_key: "ingest/target-breach/NEET_16_18/AREA_EAST".into(),
            occurrence_id: "occ-1".into(),
            summary: "NEET 16-18 in East is red".into(),
            raised_at: Some(trust_runtime::grpc::timestamp(T1)),
            subject: Some(alerting::escalation_raised::Subject::Indicator(breach())),
            ..Default::default()
        };
        let raised = read_raised(&event).expect("valid");
        assert_eq!(raised.raised_at, Some(T1));
        let concern = raised.concern.expect("about an indicator");
        assert_eq!(concern.indicator_code, "NEET_16_18");
        assert_eq!(concern.locality_code, "AREA_EAST");
        assert_eq!(concern.owner_partner_code, "connexions");
        assert_eq!(concern.summary, "NEET 16-18 in East is red");
    }

    #[test]
    fn an_escalation_without_an_indicator_subject_has_no_concern() {
        let event = alerting::EscalationRaised {
            dedup_key: "k".into(),
            occurrence_id: "o".into(),
            ..Default::default()
        };
        let raised = read_raised(&event).expect("valid");
        assert_eq!(raised.concern, None);
        assert_eq!(raised.raised_at, None);
        let resolved = read_resolved(&alerting::EscalationResolved {
            dedup_key: "k".into(),
            occurrence_id: "o".into(),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(resolved.concern, None);
    }

    #[test]
    fn an_escalation_without_its_ids_is_refused() {
        let no_key = alerting::EscalationRaised {
            occurrence_id: "o".into(),
            ..Default::default()
        };
        assert_eq!(read_raised(&no_key), Err(InvalidEscalation::NoDedupKey));
        let no_occurrence = alerting::EscalationResolved {
            dedup_key: "k".into(),
            ..Default::default()
        };
        assert_eq!(
            read_resolved(&no_occurrence),
            Err(InvalidEscalation::NoOccurrenceId)
        );
    }

    #[test]
    fn timestamps_convert_and_unset_is_none() {
        assert_eq!(to_datetime(Some(&trust_runtime::grpc::timestamp(T2))), Some(T2));
        assert_eq!(to_datetime(None), None);
    }
}
