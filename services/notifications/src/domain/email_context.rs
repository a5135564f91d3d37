//! What an email template can use: the facts of an escalation event formatted as the plain rendering
//! formats them ([`EmailContext`]), and the sample events a template set must render before it is accepted.

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::datetime;
use trust_proto::alerting::v1::{
    EscalationRaised, EscalationResolved, IndicatorBreach, Severity, escalation_raised, escalation_resolved,
};
use trust_proto::common::v1::{DirectionOfTravel, MeasureType, Period, PeriodType, Polarity, Rag};

use super::event::Escalation;
use super::render::{
    amber_band, format_time, format_value, headline, or_unknown, period_label, polarity_phrase, rag_label,
    severity_label,
};

/// The person an email goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientFacts {
    pub code: String,
    pub name: String,
    /// The away person this one covers for, when it reached them as cover.
    pub covering_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalityFacts {
    pub code: String,
    pub name: String,
    /// The locality and those above it, nearest first.
    pub lineage: Vec<String>,
}

/// An indicator breach with every value formatted for its measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorFacts {
    pub code: String,
    pub name: String,
    pub locality: LocalityFacts,
    /// "2026-Q2".
    pub period: String,
    /// "9.1%", "£1,234.56", "12 days".
    pub value: String,
    pub target: String,
    /// "lower is better" / "higher is better".
    pub polarity: &'static str,
    /// "within 0.5 percentage points of the target".
    pub amber_band: Option<String>,
    /// "Red", "Amber", "Green" or "not rated".
    pub status: &'static str,
    /// "improving", "worsening", "no change".
    pub direction_vs_previous: Option<&'static str>,
    pub direction_vs_baseline: Option<&'static str>,
    /// What fired, in words.
    pub detail: Option<String>,
    pub submitted_by: Option<String>,
    pub accountable: Option<String>,
    pub outcome: Option<String>,
    pub priority: Option<String>,
}

/// Everything a template can use. Optional facts are present as `none`, so `{% if why %}` works in strict
/// mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailContext {
    /// "raised" or "resolved".
    pub event: &'static str,
    /// The subject's tag: the RAG ("Red"), else the severity ("Critical"), or "Cleared".
    pub tag: &'static str,
    /// The subject line of the plain rendering: indicator, locality, period, value and target, or the
    /// summary.
    pub headline: String,
    pub summary: String,
    /// "Critical", "Warning" or "Escalation"; none for a resolution.
    pub severity: Option<&'static str>,
    /// When it was raised or resolved, "2026-07-03 09:15 UTC", or "not stated".
    pub occurred_at: String,
    pub source: String,
    pub rule: String,
    /// The deduplication key.
    pub reference: String,
    pub occurrence: String,
    pub indicator: Option<IndicatorFacts>,
    /// Why a later step of the ladder tells this person (escalated, reminder); none for the first email.
    pub why: Option<String>,
    pub recipient: RecipientFacts,
    /// The one-use acknowledgement link (raised emails, when links are enabled).
    pub ack_url: Option<String>,
    pub ack_expires_at: Option<String>,
}

/// The acknowledgement link of one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckLink<'a> {
    pub url: &'a str,
    pub expires_at: OffsetDateTime,
}

impl EmailContext {
    pub fn new(
        event: &Escalation,
        why: Option<&str>,
        recipient: RecipientFacts,
        link: Option<AckLink<'_>>,
    ) -> Self {
        let breach = event.indicator();
        let (event_name, tag, severity) = match event {
            Escalation::Raised(raised) => (
                "raised",
                breach
                    .and_then(|b| rag_label(b.rag()))
                    .unwrap_or_else(|| severity_label(raised.severity())),
                Some(severity_label(raised.severity())),
            ),
            Escalation::Resolved(_) => ("resolved", "Cleared", None),
        };
        Self {
            event: event_name,
            tag,
            headline: headline(event, breach),
            summary: event.summary().trim().to_owned(),
            severity,
            occurred_at: event
                .occurred_at()
                .map_or_else(|| "not stated".to_owned(), format_time),
            source: or_unknown(event.source()).to_owned(),
            rule: or_unknown(event.rule()).to_owned(),
            reference: event.dedup_key().to_owned(),
            occurrence: event.occurrence_id().to_owned(),
            indicator: breach.map(indicator_facts),
            why: why.map(str::to_owned),
            recipient,
            ack_url: link.map(|l| l.url.to_owned()),
            ack_expires_at: link.map(|l| format_time(l.expires_at)),
        }
    }
}

fn indicator_facts(b: &IndicatorBreach) -> IndicatorFacts {
    let measure = b.measure();
    let present = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    IndicatorFacts {
        code: b.indicator_code.clone(),
        name: b.indicator_name.clone(),
        locality: LocalityFacts {
            code: b.locality_code.clone(),
            name: b.locality_name.clone(),
            lineage: b.locality_lineage.clone(),
        },
        period: period_label(b),
        value: format_value(b.value, measure),
        target: format_value(b.target, measure),
        polarity: polarity_phrase(b.polarity()),
        amber_band: amber_band(b),
        status: rag_label(b.rag()).unwrap_or("not rated"),
        direction_vs_previous: direction(b.direction_vs_previous()),
        direction_vs_baseline: direction(b.direction_vs_baseline()),
        detail: present(&b.detail),
        submitted_by: present(&b.partner_code),
        accountable: present(&b.owner_partner_code),
        outcome: present(&b.outcome_code),
        priority: present(&b.priority_code),
    }
}

fn direction(direction: DirectionOfTravel) -> Option<&'static str> {
    match direction {
        DirectionOfTravel::Improving => Some("improving"),
        DirectionOfTravel::Worsening => Some("worsening"),
        DirectionOfTravel::NoChange => Some("no change"),
        DirectionOfTravel::Unspecified => None,
    }
}

/// What each of [`samples`] is, for error messages.
pub const SAMPLE_NAMES: [&str; 5] = [
    "raised indicator escalation (first email, with a link)",
    "raised indicator escalation (escalated, to a cover)",
    "raised escalation not about an indicator",
    "resolved indicator escalation",
    "resolved escalation not about an indicator",
];

/// The events a template set must render before it is accepted.
pub fn samples() -> Vec<EmailContext> {
    let breach = IndicatorBreach {
        indicator_code: "NEET_16_18".into(),
        indicator_name: "Young people aged 16-18 not in education, employment or training".into(),
        locality_code: "CLUSTER_E1".into(),
        locality_name: "East Leeds <Cluster 1> & Seacroft".into(),
        locality_lineage: vec!["CLUSTER_E1".into(), "AREA_EAST".into(), "CITY".into()],
        period: Some(Period {
            r#type: PeriodType::Quarter.into(),
            year: 2026,
            number: 2,
        }),
        period_label: "2026-Q2".into(),
        value: 9.1,
        target: 8.0,
        amber_tolerance: 0.5,
        polarity: Polarity::LowerIsBetter.into(),
        measure: MeasureType::Percentage.into(),
        rag: Rag::Red.into(),
        partner_code: "connexions".into(),
        owner_partner_code: "council".into(),
        detail: "9.1% is above the target of 8.0% by more than the amber band".into(),
        direction_vs_previous: DirectionOfTravel::Worsening.into(),
        direction_vs_baseline: DirectionOfTravel::NoChange.into(),
        outcome_code: "ENJOY_ACHIEVE".into(),
        priority_code: "P1".into(),
    };
    let raised_at = Some(trust_runtime::grpc::timestamp(datetime!(2026-07-03 09:15 UTC)));
    let raised = Escalation::Raised(EscalationRaised {
        dedup_key: "ingest/target-breach/NEET_16_18/CLUSTER_E1".into(),
        occurrence_id: "sample-occurrence".into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        severity: Severity::Critical.into(),
        summary: "NEET 16-18 in East Leeds Cluster 1 is 9.1% against a target of 8.0%".into(),
        raised_at,
        subject: Some(escalation_raised::Subject::Indicator(breach.clone())),
    });
    let without_indicator = Escalation::Raised(EscalationRaised {
        dedup_key: "qa/audit-overdue/LSCB".into(),
        occurrence_id: "sample-occurrence-2".into(),
        severity: Severity::Warning.into(),
        summary: "Case file audit overdue".into(),
        ..Default::default()
    });
    let mut recovered = breach;
    recovered.value = 7.4;
    recovered.rag = Rag::Green.into();
    let resolved = Escalation::Resolved(EscalationResolved {
        dedup_key: "ingest/target-breach/NEET_16_18/CLUSTER_E1".into(),
        occurrence_id: "sample-occurrence".into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        summary: "back within target".into(),
        resolved_at: raised_at,
        subject: Some(escalation_resolved::Subject::Indicator(recovered)),
    });
    let resolved_without_indicator = Escalation::Resolved(EscalationResolved {
        dedup_key: "qa/audit-overdue/LSCB".into(),
        occurrence_id: "sample-occurrence-2".into(),
        ..Default::default()
    });
    let person = |covering_for: Option<&str>| RecipientFacts {
        code: "enabler-east".into(),
        name: "Sam O'Neill".into(),
        covering_for: covering_for.map(str::to_owned),
    };
    let link = AckLink {
        url: "https://trust.example/ack/c2FtcGxlLXRva2Vu?x=1&y=2",
        expires_at: datetime!(2026-07-17 09:15 UTC),
    };
    vec![
        EmailContext::new(&raised, None, person(None), Some(link)),
        EmailContext::new(
            &raised,
            Some(
                "Escalated to you: nobody acknowledged this alert within 2 working day(s) of telling \
                 the level before you.",
            ),
            person(Some("head")),
            Some(link),
        ),
        EmailContext::new(&without_indicator, None, person(None), None),
        EmailContext::new(&resolved, None, person(None), None),
        EmailContext::new(&resolved_without_indicator, None, person(None), None),
    ]
}
