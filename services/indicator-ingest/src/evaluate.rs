//! What happens to a stored value: it is evaluated in the submission's transaction against the target in
//! force for its period (RAG), against the previous period and the baseline (direction of travel), and by
//! statistical process control on its series; when the value is the latest of its series, each rule's
//! escalation is raised when it starts firing and resolved when it stops.

use sqlx::PgConnection;
use trust_proto::alerting::v1 as alerting;
use trust_proto::common::v1::{DirectionOfTravel, Rag};
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::subjects;
use trust_runtime::grpc::timestamp;
use trust_runtime::outbox::{self, OutboxMessage};
use uuid::Uuid;

use crate::domain::spc::{Side, TrendDirection};
use crate::domain::trend::{DEFAULT_EPSILON, Direction, direction_of_travel};
use crate::domain::validation::ValidObservation;
use crate::domain::{self, SeriesState, SpcConfig, SpcSignal};
use crate::store::{self, Change};
use crate::submission::Context;

/// The rule name of a red value against target.
pub const TARGET_BREACH_RULE: &str = "target-breach";
/// Statistical process control rules, as named in deduplication keys.
pub const SPC_RULES: [&str; 3] = ["spc-beyond-limits", "spc-run", "spc-trend"];
const SOURCE: &str = "indicator-ingest";

/// Who submitted a value.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub partner: &'a str,
    pub batch_id: &'a str,
    pub submitted_by: &'a str,
}

/// What storing and evaluating one value found.
pub struct Evaluated {
    pub change: Change,
    pub revision: i32,
    pub rag: Rag,
    /// Against the previous period, and against the baseline.
    pub direction: (DirectionOfTravel, DirectionOfTravel),
    /// SPC rules signalling a concern at this value.
    pub spc_rules: Vec<&'static str>,
    /// Why the value is flagged as an outlier against its own history, if it is.
    pub outlier: Option<String>,
}

/// Stable across every raise of the same concern, so notifications updates one alert.
pub fn dedup_key(indicator: &str, locality: &str, rule: &str) -> String {
    format!("ingest/{rule}/{indicator}/{locality}")
}

pub async fn store_and_evaluate(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    source: Source<'_>,
    observation: &ValidObservation,
) -> Result<Evaluated, sqlx::Error> {
    let indicator = &observation.indicator;
    let locality = observation.locality_code.as_str();
    let target = store::target_for(conn, &indicator.code, locality, observation.period).await?;
    let evaluation = target.map(|t| domain::evaluate(observation.value, indicator.polarity, t.spec));
    let rag = evaluation.map_or(Rag::Unspecified, |e| e.rag);
    let previous = store::previous_period_value(conn, &indicator.code, locality, observation.period).await?;
    let travel = direction_of_travel(
        observation.value,
        previous,
        target.and_then(|t| t.baseline),
        indicator.polarity,
        DEFAULT_EPSILON,
    );
    let direction = (
        to_proto(travel.against_previous),
        to_proto(travel.against_baseline),
    );
    let prior_status = store::latest_status(conn, &indicator.code, locality).await?;
    let (change, revision) = store::store_observation(
        conn,
        observation,
        rag,
        source.partner,
        source.batch_id,
        source.submitted_by,
    )
    .await?;
    if change == Change::Unchanged {
        return Ok(Evaluated {
            change,
            revision,
            rag,
            direction,
            spc_rules: Vec::new(),
            outlier: None,
        });
    }
    let latest = store::is_latest_period(conn, &indicator.code, locality, observation.period).await?;
    let signals = spc_signals(conn, observation, latest).await?;
    let spc_rules: Vec<&'static str> = signals
        .iter()
        .filter(|s| s.is_concern())
        .map(SpcSignal::rule_name)
        .collect();
    let outlier = signals
        .iter()
        .find(|s| matches!(s, SpcSignal::BeyondLimits { .. }))
        .map(|s| format!("outlier against its own history: {}", describe(s)));
    if outlier.is_some() {
        store::flag_outlier(conn, observation).await?;
    }
    let status_changed = match prior_status {
        Some(prior) => prior != rag,
        None => rag != Rag::Unspecified,
    };
    if latest && status_changed {
        let event = pb::StatusChanged {
            indicator_code: indicator.code.clone(),
            locality_code: locality.to_owned(),
            period: Some(observation.period.to_proto()),
            from_rag: prior_status.unwrap_or(Rag::Unspecified) as i32,
            to_rag: rag as i32,
            value: observation.value,
            target: target.map(|t| t.spec.value),
            batch_id: source.batch_id.to_owned(),
        };
        // Each change is its own event: the same period can change status more than once.
        let message_id = format!(
            "status/{}/{locality}/{}/{}",
            indicator.code,
            observation.period,
            Uuid::new_v4()
        );
        let message = OutboxMessage::protobuf(
            ctx.namespace,
            subjects::STATUS_CHANGED,
            message_id,
            &event,
            &ctx.trace,
        );
        outbox::enqueue(conn, &message).await?;
    }
    if latest {
        let facts = Facts {
            observation,
            partner: source.partner,
            target,
            rag,
            direction,
        };
        if let Some(evaluation) = evaluation {
            let detail = format!("red against the target for {}", observation.period);
            apply_rule(
                conn,
                ctx,
                &facts,
                TARGET_BREACH_RULE,
                evaluation.breach.then_some(detail),
            )
            .await?;
        }
        for rule in SPC_RULES {
            let firing = signals.iter().find(|s| s.rule_name() == rule && s.is_concern());
            apply_rule(conn, ctx, &facts, rule, firing.map(describe)).await?;
        }
    }
    Ok(Evaluated {
        change,
        revision,
        rag,
        direction,
        spc_rules,
        outlier,
    })
}

/// Feed the value to its series' SPC state: in O(1) when it extends the series; by rebuilding the state from
/// the series (the one place that reads history) when it corrects or back-fills an earlier period.
async fn spc_signals(
    conn: &mut PgConnection,
    observation: &ValidObservation,
    latest: bool,
) -> Result<Vec<SpcSignal>, sqlx::Error> {
    let indicator = &observation.indicator;
    let config = SpcConfig::default();
    let period = observation.period;
    let held = store::series_state(conn, &indicator.code, &observation.locality_code).await?;
    let extends = match &held {
        Some((last, _)) => latest && (period.year(), period.number()) > *last,
        None => true,
    };
    let (state, signals, last) = if extends {
        let mut state = held.map(|(_, state)| state).unwrap_or_default();
        let signals = state.observe(observation.value, &config, indicator.polarity);
        (state, signals, (period.year(), period.number()))
    } else {
        let (values, last) = store::series_values(conn, &indicator.code, &observation.locality_code).await?;
        let state = SeriesState::from_values(&values, &config);
        let signals = if latest {
            state.signals(&config, indicator.polarity)
        } else {
            Vec::new()
        };
        (state, signals, last)
    };
    store::save_series_state(conn, &indicator.code, &observation.locality_code, last, &state).await?;
    Ok(signals)
}

fn describe(signal: &SpcSignal) -> String {
    match signal {
        SpcSignal::BeyondLimits {
            value, side, limit, ..
        } => {
            let side = if *side == Side::Above {
                "above the upper"
            } else {
                "below the lower"
            };
            format!("{value} is {side} process limit of {limit:.2}")
        }
        SpcSignal::Run {
            side, mean, length, ..
        } => {
            let side = if *side == Side::Above { "above" } else { "below" };
            format!("{length} points in a row {side} the mean of {mean:.2}")
        }
        SpcSignal::Trend {
            direction, length, ..
        } => {
            let direction = if *direction == TrendDirection::Rising {
                "rising"
            } else {
                "falling"
            };
            format!("{length} points in a row each {direction}")
        }
    }
}

fn to_proto(direction: Option<Direction>) -> DirectionOfTravel {
    match direction {
        Some(Direction::Improving) => DirectionOfTravel::Improving,
        Some(Direction::Worsening) => DirectionOfTravel::Worsening,
        Some(Direction::NoChange) => DirectionOfTravel::NoChange,
        None => DirectionOfTravel::Unspecified,
    }
}

/// The facts an escalation about this value carries.
struct Facts<'a> {
    observation: &'a ValidObservation,
    partner: &'a str,
    target: Option<store::TargetInForce>,
    rag: Rag,
    direction: (DirectionOfTravel, DirectionOfTravel),
}

/// Raise the rule's escalation when it starts firing (`firing` says what fired); resolve it when it stops.
async fn apply_rule(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    facts: &Facts<'_>,
    rule: &str,
    firing: Option<String>,
) -> Result<(), sqlx::Error> {
    let observation = facts.observation;
    let key = dedup_key(&observation.indicator.code, &observation.locality_code, rule);
    let open = store::open_escalation(conn, &key).await?;
    match (firing, open) {
        (Some(detail), None) => {
            let occurrence_id = Uuid::new_v4();
            let period_label = observation.period.to_string();
            store::open_new_escalation(
                conn,
                &store::NewEscalation {
                    occurrence_id,
                    dedup_key: &key,
                    rule,
                    indicator_code: &observation.indicator.code,
                    locality_code: &observation.locality_code,
                    period_label: &period_label,
                    value: observation.value,
                    target: facts.target.map_or(f64::NAN, |t| t.spec.value),
                },
            )
            .await?;
            let subject = indicator_subject(conn, facts, detail).await?;
            let severity = if rule == TARGET_BREACH_RULE {
                alerting::Severity::Critical
            } else {
                alerting::Severity::Warning
            };
            let event = alerting::EscalationRaised {
                dedup_key: key,
                occurrence_id: occurrence_id.to_string(),
                source: SOURCE.to_owned(),
                rule: rule.to_owned(),
                severity: severity as i32,
                summary: summary(&subject, "needs attention"),
                raised_at: Some(timestamp(ctx.now)),
                subject: Some(alerting::escalation_raised::Subject::Indicator(subject)),
            };
            let message = OutboxMessage::protobuf(
                ctx.namespace,
                subjects::INGEST_ESCALATION_RAISED,
                format!("escalation/{occurrence_id}/raised"),
                &event,
                &ctx.trace,
            );
            outbox::enqueue(conn, &message).await
        }
        (None, Some(occurrence_id)) => {
            store::resolve_escalation(conn, occurrence_id).await?;
            let subject = indicator_subject(conn, facts, format!("{rule} no longer fires")).await?;
            let event = alerting::EscalationResolved {
                dedup_key: key,
                occurrence_id: occurrence_id.to_string(),
                source: SOURCE.to_owned(),
                rule: rule.to_owned(),
                summary: summary(&subject, "has recovered"),
                resolved_at: Some(timestamp(ctx.now)),
                subject: Some(alerting::escalation_resolved::Subject::Indicator(subject)),
            };
            let message = OutboxMessage::protobuf(
                ctx.namespace,
                subjects::INGEST_ESCALATION_RESOLVED,
                format!("escalation/{occurrence_id}/resolved"),
                &event,
                &ctx.trace,
            );
            outbox::enqueue(conn, &message).await
        }
        // Still firing and already escalated, or quiet and nothing open: nothing to say.
        _ => Ok(()),
    }
}

async fn indicator_subject(
    conn: &mut PgConnection,
    facts: &Facts<'_>,
    detail: String,
) -> Result<alerting::IndicatorBreach, sqlx::Error> {
    let observation = facts.observation;
    let indicator = &observation.indicator;
    Ok(alerting::IndicatorBreach {
        indicator_code: indicator.code.clone(),
        indicator_name: indicator.name.clone(),
        locality_code: observation.locality_code.clone(),
        locality_name: store::locality_name(conn, &observation.locality_code).await?,
        period: Some(observation.period.to_proto()),
        period_label: observation.period.to_string(),
        value: observation.value,
        target: facts.target.map_or(0.0, |t| t.spec.value),
        amber_tolerance: facts.target.map_or(0.0, |t| t.spec.amber_tolerance),
        polarity: indicator.polarity as i32,
        measure: indicator.measure as i32,
        rag: facts.rag as i32,
        partner_code: facts.partner.to_owned(),
        owner_partner_code: indicator.owner_partner_code.clone(),
        detail,
        direction_vs_previous: facts.direction.0 as i32,
        direction_vs_baseline: facts.direction.1 as i32,
    })
}

/// One line for people; the figures, formatted for the measure, travel in the structured fields.
fn summary(subject: &alerting::IndicatorBreach, state: &str) -> String {
    format!(
        "{} in {} {state} for {}: {}",
        subject.indicator_name, subject.locality_name, subject.period_label, subject.detail
    )
}
