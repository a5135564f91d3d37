//! Escalation events as they arrive on the bus, and what each does to the alert they belong to.

use prost::Message;
use thiserror::Error;
use time::OffsetDateTime;
use trust_proto::alerting::v1::{
    EscalationRaised, EscalationResolved, IndicatorBreach, Severity, escalation_raised, escalation_resolved,
};

/// An escalation event: raised or resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Escalation {
    Raised(EscalationRaised),
    Resolved(EscalationResolved),
}

/// Which of the two events; stored as `delivery.event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Raised,
    Resolved,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Resolved => "resolved",
        }
    }
}

/// Why bytes on an escalation subject are not an escalation we can act on. Retrying cannot help.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("subject {subject:?} is neither <service>.escalation.raised nor <service>.escalation.resolved")]
    UnknownSubject { subject: String },
    #[error("cannot decode {message} from subject {subject:?}: {reason}")]
    Undecodable {
        subject: String,
        message: &'static str,
        reason: String,
    },
    #[error("{message} on subject {subject:?} has no {field}; it cannot be deduplicated")]
    MissingField {
        subject: String,
        message: &'static str,
        field: &'static str,
    },
}

impl Escalation {
    /// Decode by subject suffix: `*.escalation.raised` carries `EscalationRaised`, `*.escalation.resolved`
    /// carries `EscalationResolved`.
    pub fn decode(subject: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        let undecodable = |message: &'static str, err: prost::DecodeError| DecodeError::Undecodable {
            subject: subject.to_owned(),
            message,
            reason: err.to_string(),
        };
        let event = if subject.ends_with(".escalation.raised") {
            let message = "trust.alerting.v1.EscalationRaised";
            Escalation::Raised(EscalationRaised::decode(payload).map_err(|e| undecodable(message, e))?)
        } else if subject.ends_with(".escalation.resolved") {
            let message = "trust.alerting.v1.EscalationResolved";
            Escalation::Resolved(EscalationResolved::decode(payload).map_err(|e| undecodable(message, e))?)
        } else {
            return Err(DecodeError::UnknownSubject {
                subject: subject.to_owned(),
            });
        };
        // Without these the event cannot be deduplicated or tied to its occurrence.
        for (field, value) in [
            ("dedup_key", event.dedup_key()),
            ("occurrence_id", event.occurrence_id()),
        ] {
            if value.trim().is_empty() {
                return Err(DecodeError::MissingField {
                    subject: subject.to_owned(),
                    message: event.message_name(),
                    field,
                });
            }
        }
        Ok(event)
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Escalation::Raised(_) => EventKind::Raised,
            Escalation::Resolved(_) => EventKind::Resolved,
        }
    }

    fn message_name(&self) -> &'static str {
        match self {
            Escalation::Raised(_) => "trust.alerting.v1.EscalationRaised",
            Escalation::Resolved(_) => "trust.alerting.v1.EscalationResolved",
        }
    }

    pub fn dedup_key(&self) -> &str {
        match self {
            Escalation::Raised(e) => &e.dedup_key,
            Escalation::Resolved(e) => &e.dedup_key,
        }
    }

    pub fn occurrence_id(&self) -> &str {
        match self {
            Escalation::Raised(e) => &e.occurrence_id,
            Escalation::Resolved(e) => &e.occurrence_id,
        }
    }

    pub fn source(&self) -> &str {
        match self {
            Escalation::Raised(e) => &e.source,
            Escalation::Resolved(e) => &e.source,
        }
    }

    pub fn rule(&self) -> &str {
        match self {
            Escalation::Raised(e) => &e.rule,
            Escalation::Resolved(e) => &e.rule,
        }
    }

    pub fn summary(&self) -> &str {
        match self {
            Escalation::Raised(e) => &e.summary,
            Escalation::Resolved(e) => &e.summary,
        }
    }

    /// When the event happened (raised_at or resolved_at), if the sender said.
    pub fn occurred_at(&self) -> Option<OffsetDateTime> {
        let at = match self {
            Escalation::Raised(e) => e.raised_at.as_ref(),
            Escalation::Resolved(e) => e.resolved_at.as_ref(),
        };
        at.and_then(to_datetime)
    }

    /// The indicator breach this is about, when it is about one.
    pub fn indicator(&self) -> Option<&IndicatorBreach> {
        match self {
            Escalation::Raised(e) => match &e.subject {
                Some(escalation_raised::Subject::Indicator(breach)) => Some(breach),
                None => None,
            },
            Escalation::Resolved(e) => match &e.subject {
                Some(escalation_resolved::Subject::Indicator(breach)) => Some(breach),
                None => None,
            },
        }
    }

    /// Indicator and locality codes used to find who is responsible ('' when not about an indicator).
    pub fn indicator_code(&self) -> &str {
        self.indicator().map_or("", |b| b.indicator_code.as_str())
    }

    pub fn locality_code(&self) -> &str {
        self.indicator().map_or("", |b| b.locality_code.as_str())
    }

    /// The event as stored in `alert.last_event`.
    /// "warning" or "critical" for a raise that says; "" otherwise.
    pub fn severity_label(&self) -> &'static str {
        match self {
            Escalation::Raised(raised) => match raised.severity() {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Unspecified => "",
            },
            Escalation::Resolved(_) => "",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Escalation::Raised(e) => e.encode_to_vec(),
            Escalation::Resolved(e) => e.encode_to_vec(),
        }
    }

    /// What this event does to the alert as it stands.
    pub fn transition(&self, current: Option<&CurrentAlert>) -> Transition {
        let Some(current) = current else {
            return Transition::Apply;
        };
        let same_occurrence = current.occurrence_id == self.occurrence_id();
        match self.kind() {
            EventKind::Raised if same_occurrence && current.state == AlertState::Resolved => {
                // Redelivered out of order after its own resolution: telling people now would be wrong.
                Transition::Stale("this occurrence has already been resolved")
            }
            EventKind::Raised if !same_occurrence => match (self.occurred_at(), current.raised_at) {
                (Some(incoming), Some(stored)) if incoming < stored => {
                    Transition::Stale("a later occurrence of this escalation has already been raised")
                }
                _ => Transition::Apply,
            },
            EventKind::Raised => Transition::Apply,
            EventKind::Resolved if same_occurrence => Transition::Apply,
            EventKind::Resolved => {
                // Clearing an older occurrence must not clear (or announce clearing of) the current one.
                Transition::Stale("it resolves an earlier occurrence, not the current one")
            }
        }
    }
}

/// Whether an alert is firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "firing" => Some(AlertState::Firing),
            "resolved" => Some(AlertState::Resolved),
            _ => None,
        }
    }
}

/// The stored alert an event is applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAlert {
    pub occurrence_id: String,
    pub state: AlertState,
    pub raised_at: Option<OffsetDateTime>,
}

/// What to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Record it and tell people (a duplicate is harmless: deliveries are unique per occurrence, event and
    /// person).
    Apply,
    /// Out of date: change nothing and tell nobody (the reason is logged).
    Stale(&'static str),
}

/// A protobuf timestamp as a point in time; None when out of range.
pub fn to_datetime(at: &prost_types::Timestamp) -> Option<OffsetDateTime> {
    let seconds = OffsetDateTime::from_unix_timestamp(at.seconds).ok()?;
    let nanos = u32::try_from(at.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    seconds.replace_nanosecond(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn raised(occurrence: &str, at: Option<OffsetDateTime>) -> Escalation {
        Escalation::Raised(EscalationRaised {
            dedup_key: "ingest/target-breach/NEET/EAST".into(),
            occurrence_id: occurrence.into(),
            raised_at: at.map(trust_runtime::grpc::timestamp),
            ..Default::default()
        })
    }

    fn resolved(occurrence: &str) -> Escalation {
        Escalation::Resolved(EscalationResolved {
            dedup_key: "ingest/target-breach/NEET/EAST".into(),
            occurrence_id: occurrence.into(),
            ..Default::default()
        })
    }

    fn current(occurrence: &str, state: AlertState, raised_at: Option<OffsetDateTime>) -> CurrentAlert {
        CurrentAlert {
            occurrence_id: occurrence.into(),
            state,
            raised_at,
        }
    }

    #[test]
    fn decodes_by_subject_suffix() {
        let event = raised("occ-1", None);
        let decoded = Escalation::decode("t1.ingest.escalation.raised", &event.encode()).unwrap();
        assert_eq!(decoded, event);
        let event = resolved("occ-1");
        let decoded = Escalation::decode("ingest.escalation.resolved", &event.encode()).unwrap();
        assert_eq!(decoded.kind(), EventKind::Resolved);
    }

    #[test]
    fn garbage_and_unknown_subjects_are_named_in_the_error() {
        let err = Escalation::decode("ingest.escalation.raised", &[0xff, 0xff, 0xff]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ingest.escalation.raised"), "{text}");
        assert!(text.contains("EscalationRaised"), "{text}");

        let err = Escalation::decode("ingest.escalation.acknowledged", &[]).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownSubject { .. }));

        let empty = EscalationRaised::default().encode_to_vec();
        let err = Escalation::decode("ingest.escalation.raised", &empty).unwrap_err();
        assert!(err.to_string().contains("dedup_key"), "{err}");
    }

    #[test]
    fn first_event_and_repeats_apply() {
        assert_eq!(raised("a", None).transition(None), Transition::Apply);
        assert_eq!(resolved("a").transition(None), Transition::Apply);
        let firing = current("a", AlertState::Firing, None);
        assert_eq!(raised("a", None).transition(Some(&firing)), Transition::Apply);
        assert_eq!(resolved("a").transition(Some(&firing)), Transition::Apply);
        let cleared = current("a", AlertState::Resolved, None);
        assert_eq!(resolved("a").transition(Some(&cleared)), Transition::Apply);
        assert_eq!(raised("b", None).transition(Some(&cleared)), Transition::Apply);
    }

    #[test]
    fn late_events_are_stale() {
        let cleared = current("a", AlertState::Resolved, None);
        assert!(matches!(
            raised("a", None).transition(Some(&cleared)),
            Transition::Stale(_)
        ));

        let firing_b = current("b", AlertState::Firing, Some(datetime!(2026-05-02 0:00 UTC)));
        assert!(matches!(
            resolved("a").transition(Some(&firing_b)),
            Transition::Stale(_)
        ));
        let older = raised("a", Some(datetime!(2026-05-01 0:00 UTC)));
        assert!(matches!(older.transition(Some(&firing_b)), Transition::Stale(_)));
        let newer = raised("c", Some(datetime!(2026-05-03 0:00 UTC)));
        assert_eq!(newer.transition(Some(&firing_b)), Transition::Apply);
    }

    #[test]
    fn timestamps_convert() {
        let at = datetime!(2026-05-01 12:30:15.5 UTC);
        assert_eq!(to_datetime(&trust_runtime::grpc::timestamp(at)), Some(at));
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(to_datetime(&bad), None);
    }
}
