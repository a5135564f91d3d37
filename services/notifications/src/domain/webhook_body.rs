//! What a webhook receives: the alert as JSON, for chat tools and partner case systems. Fixed when the
//! delivery is queued, so every retry posts the same bytes under the same signature scheme.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::event::Escalation;
use super::render::{format_period, format_value, polarity_phrase};

/// Who the post tells, for the receiver to assign or mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee<'a> {
    pub staff_code: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub covering_for: Option<&'a str>,
}

/// The JSON body for one person told about one event at one ladder step (`step` "" for the first telling;
/// `why` says why a later step came).
pub fn webhook_body(event: &Escalation, to: &Addressee<'_>, step: &str, why: Option<&str>) -> Value {
    let severity = event.severity_label();
    let indicator = event.indicator().map(|b| {
        json!({
            "indicator_code": b.indicator_code,
            "indicator_name": b.indicator_name,
            "locality_code": b.locality_code,
            "locality_name": b.locality_name,
            "locality_lineage": b.locality_lineage,
            "period": b.period.as_ref().map(format_period).unwrap_or_else(|| b.period_label.clone()),
            "value": b.value,
            "value_text": format_value(b.value, b.measure()),
            "target": b.target,
            "target_text": format_value(b.target, b.measure()),
            "better": polarity_phrase(b.polarity()),
            "partner_code": b.partner_code,
            "owner_partner_code": b.owner_partner_code,
            "outcome_code": b.outcome_code,
            "priority_code": b.priority_code,
            "detail": b.detail,
        })
    });
    json!({
        "event": event.kind().as_str(),
        "dedup_key": event.dedup_key(),
        "occurrence_id": event.occurrence_id(),
        "source": event.source(),
        "rule": event.rule(),
        "severity": severity,
        "summary": event.summary(),
        "at": event.occurred_at().and_then(|at: OffsetDateTime| at.format(&Rfc3339).ok()),
        "step": step,
        "why": why,
        "indicator": indicator,
        "recipient": {
            "staff_code": to.staff_code,
            "name": to.name,
            "email": to.email,
            "covering_for": to.covering_for,
        },
    })
}

#[cfg(test)]
mod tests {
    use trust_proto::alerting::v1::{EscalationRaised, IndicatorBreach, Severity};

    use super::*;

    #[test]
    fn the_body_names_the_alert_the_indicator_and_the_person() {
        let event = Escalation::Raised(EscalationRaised {
            dedup_key: "ingest/target-breach/NEET/AREA_EAST".into(),
            occurrence_id: "o-1".into(),
            source: "indicator-ingest".into(),
            rule: "target-breach".into(),
            severity: Severity::Critical.into(),
            summary: "NEET above target".into(),
            raised_at: None,
            subject: Some(trust_proto::alerting::v1::escalation_raised::Subject::Indicator(
                IndicatorBreach {
                    indicator_code: "NEET".into(),
                    indicator_name: "16-18 NEET".into(),
                    locality_code: "AREA_EAST".into(),
                    value: 9.5,
                    target: 6.0,
                    ..Default::default()
                },
            )),
        });
        let to = Addressee {
            staff_code: "enabler-ene",
            name: "Enabler",
            email: "ene@leeds.localhost",
            covering_for: Some("enabler-e"),
        };
        let body = webhook_body(&event, &to, "escalated/1/1795430400", Some("Escalated to you"));
        assert_eq!(body["event"], "raised");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["indicator"]["indicator_code"], "NEET");
        assert_eq!(body["indicator"]["value"], 9.5);
        assert_eq!(body["recipient"]["covering_for"], "enabler-e");
        assert_eq!(body["step"], "escalated/1/1795430400");
        assert_eq!(body["why"], "Escalated to you");
    }
}
