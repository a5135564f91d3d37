//! What happens to the values of a submission: each is stored (a new revision when it corrects one) and
//! evaluated in the submission's transaction against the target in force for its period (RAG), against the
//! previous period and the baseline (direction of travel), and by statistical process control on its
//! series; when a value is the latest of its series, each rule's escalation is raised when it starts firing
//! and resolved when it stops. The series a submission touches are read once ([`SeriesBook::load`]) and
//! everything decided is written back in one statement per table.

use std::collections::HashMap;

use sqlx::PgConnection;
use trust_proto::alerting::v1 as alerting;
use trust_proto::common::v1::{DirectionOfTravel, Rag};
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::subjects;
use trust_runtime::grpc::timestamp;
use trust_runtime::outbox::OutboxMessage;
use trust_runtime::telemetry::TraceContext;
use uuid::Uuid;

use crate::domain::series::{Change, Offered, Series, SeriesKey, StoredPoint};
use crate::domain::spc::{Side, TrendDirection};
use crate::domain::trend::{DEFAULT_EPSILON, Direction, direction_of_travel};
use crate::domain::validation::ValidObservation;
use crate::domain::{self, SpcConfig, SpcSignal};
use crate::reference::Reference;
use crate::series_store::{self, Author, ObservationWrite, OpenedEscalation};
use crate::store::TargetInForce;
use crate::submission::Context;

/// The rule name of a red value against target.
pub const TARGET_BREACH_RULE: &str = "target-breach";
/// Statistical process control rules, as named in deduplication keys.
pub const SPC_RULES: [&str; 3] = ["spc-beyond-limits", "spc-run", "spc-trend"];
const SOURCE: &str = "indicator-ingest";

/// Stable across every raise of the same concern, so notifications updates one alert.
pub fn dedup_key(indicator: &str, locality: &str, rule: &str) -> String {
    format!("ingest/{rule}/{indicator}/{locality}")
}

fn series_key(observation: &ValidObservation) -> SeriesKey {
    (
        observation.indicator.code.clone(),
        observation.locality_code.clone(),
    )
}

/// The series a submission touches, and their open escalations, read once and locked for the transaction.
pub struct SeriesBook {
    series: HashMap<SeriesKey, Series>,
    /// Open escalation occurrences by deduplication key.
    open: HashMap<String, Uuid>,
}

impl SeriesBook {
    pub async fn load<'o>(
        conn: &mut PgConnection,
        observations: impl IntoIterator<Item = &'o ValidObservation>,
    ) -> Result<Self, sqlx::Error> {
        let mut periods: HashMap<SeriesKey, Vec<(i32, i32)>> = HashMap::new();
        for observation in observations {
            let period = (observation.period.year(), observation.period.number());
            periods.entry(series_key(observation)).or_default().push(period);
        }
        // Sorted, so that concurrent writers lock series in the same order.
        let mut keys: Vec<SeriesKey> = periods.keys().cloned().collect();
        keys.sort();
        let mut held = series_store::held_states(conn, &keys).await?;
        let new: Vec<SeriesKey> = keys.iter().filter(|k| !held.contains_key(*k)).cloned().collect();
        if !new.is_empty() {
            series_store::claim_new_series(conn, &new).await?;
            held.extend(series_store::held_states(conn, &new).await?);
        }
        let mut series = HashMap::with_capacity(keys.len());
        let mut to_read = Vec::new();
        for key in &keys {
            match held.remove(key) {
                Some(state) if periods.get(key).is_some_and(|p| state.suffices_for(p)) => {
                    series.insert(key.clone(), Series::from_state(state));
                }
                _ => to_read.push(key.clone()),
            }
        }
        let mut histories = series_store::histories(conn, &to_read).await?;
        let config = SpcConfig::default();
        for key in to_read {
            let history = histories.remove(&key).unwrap_or_default();
            series.insert(key, Series::from_history(history, &config));
        }
        let open = series_store::open_escalations(conn, &keys).await?;
        Ok(Self { series, open })
    }

    /// The value held for an observation's period, if any.
    pub fn current(&self, observation: &ValidObservation) -> Option<StoredPoint> {
        let period = (observation.period.year(), observation.period.number());
        self.series
            .get(&series_key(observation))
            .and_then(|s| s.current(period))
    }
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

/// Who submitted the values.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The trace of the submission, which the events a value causes belong to.
    pub trace: TraceContext,
    pub partner: &'a str,
    pub batch_id: &'a str,
    pub submitted_by: &'a str,
}

/// Store and evaluate `observations` (valid, at most one per series and period, each with who submitted
/// it), in order. Events go into `outbox` for the caller to enqueue with the receipts.
pub async fn store_and_evaluate(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    reference: &Reference,
    observations: &[(Source<'_>, &ValidObservation)],
    book: &mut SeriesBook,
    outbox: &mut Vec<OutboxMessage>,
) -> Result<Vec<Evaluated>, sqlx::Error> {
    let config = SpcConfig::default();
    let mut evaluated = Vec::with_capacity(observations.len());
    let mut writes = Vec::with_capacity(observations.len());
    let mut escalations = Escalations {
        ctx,
        reference,
        open: &mut book.open,
        opened: Vec::new(),
        resolved_before: Vec::new(),
        outbox,
    };
    for &(source, observation) in observations {
        let indicator = &observation.indicator;
        let locality = observation.locality_code.as_str();
        let target = reference.target_for(&indicator.code, locality, observation.period);
        let evaluation = target.map(|t| domain::evaluate(observation.value, indicator.polarity, t.spec));
        let rag = evaluation.map_or(Rag::Unspecified, |e| e.rag);
        let Some(series) = book.series.get_mut(&series_key(observation)) else {
            return Err(sqlx::Error::Protocol(format!(
                "series {}/{locality} was not loaded for this submission",
                indicator.code
            )));
        };
        let recorded = series.record(
            Offered {
                period: (observation.period.year(), observation.period.number()),
                value: observation.value,
                numerator: observation.numerator,
                denominator: observation.denominator,
                rag,
            },
            &config,
            indicator.polarity,
        );
        let travel = direction_of_travel(
            observation.value,
            recorded.previous_period_value,
            target.and_then(|t| t.baseline),
            indicator.polarity,
            DEFAULT_EPSILON,
        );
        let direction = (
            to_proto(travel.against_previous),
            to_proto(travel.against_baseline),
        );
        let spc_rules: Vec<&'static str> = recorded
            .signals
            .iter()
            .filter(|s| s.is_concern())
            .map(SpcSignal::rule_name)
            .collect();
        let outlier = recorded
            .signals
            .iter()
            .find(|s| matches!(s, SpcSignal::BeyondLimits { .. }))
            .map(|s| format!("outlier against its own history: {}", describe(s)));
        if recorded.change != Change::Unchanged {
            writes.push(ObservationWrite {
                author: Author {
                    partner: source.partner,
                    batch_id: source.batch_id,
                    submitted_by: source.submitted_by,
                },
                indicator: &indicator.code,
                locality,
                period_type: observation.period.kind().as_str(),
                period: (observation.period.year(), observation.period.number()),
                value: observation.value,
                numerator: observation.numerator,
                denominator: observation.denominator,
                note: &observation.note,
                correction_reason: &observation.correction_reason,
                rag,
                revision: recorded.revision,
                outlier: outlier.is_some(),
            });
            let facts = Facts {
                observation,
                trace: source.trace,
                partner: source.partner,
                target,
                rag,
                direction,
            };
            if recorded.latest {
                let status_changed = match recorded.prior_status {
                    Some(prior) => prior != rag,
                    None => rag != Rag::Unspecified,
                };
                if status_changed {
                    escalations.status_changed(&facts, recorded.prior_status, source.batch_id);
                }
                if let Some(evaluation) = evaluation {
                    let detail = format!("red against the target for {}", observation.period);
                    escalations.apply_rule(&facts, TARGET_BREACH_RULE, evaluation.breach.then_some(detail));
                }
                for rule in SPC_RULES {
                    let firing = recorded
                        .signals
                        .iter()
                        .find(|s| s.rule_name() == rule && s.is_concern());
                    escalations.apply_rule(&facts, rule, firing.map(describe));
                }
            }
        }
        evaluated.push(Evaluated {
            change: recorded.change,
            revision: recorded.revision,
            rag,
            direction,
            spc_rules,
            outlier,
        });
    }
    series_store::write_observations(conn, &writes).await?;
    let mut states: Vec<_> = book
        .series
        .iter()
        .filter_map(|(key, series)| series.changed_state().map(|state| (key, state)))
        .collect();
    states.sort_by(|a, b| a.0.cmp(b.0));
    series_store::save_states(conn, &states).await?;
    series_store::write_escalations(conn, &escalations.opened, &escalations.resolved_before).await?;
    Ok(evaluated)
}

/// The facts an event about a value carries.
struct Facts<'a> {
    observation: &'a ValidObservation,
    trace: TraceContext,
    partner: &'a str,
    target: Option<TargetInForce>,
    rag: Rag,
    direction: (DirectionOfTravel, DirectionOfTravel),
}

/// Escalation state during one submission: what was open before it, what it opened and what it cleared.
struct Escalations<'a> {
    ctx: &'a Context<'a>,
    reference: &'a Reference,
    open: &'a mut HashMap<String, Uuid>,
    opened: Vec<OpenedEscalation>,
    resolved_before: Vec<Uuid>,
    outbox: &'a mut Vec<OutboxMessage>,
}

impl Escalations<'_> {
    fn status_changed(&mut self, facts: &Facts<'_>, prior: Option<Rag>, batch_id: &str) {
        let observation = facts.observation;
        let event = pb::StatusChanged {
            indicator_code: observation.indicator.code.clone(),
            locality_code: observation.locality_code.clone(),
            period: Some(observation.period.to_proto()),
            from_rag: prior.unwrap_or(Rag::Unspecified) as i32,
            to_rag: facts.rag as i32,
            value: observation.value,
            target: facts.target.map(|t| t.spec.value),
            batch_id: batch_id.to_owned(),
        };
        // Each change is its own event: the same period can change status more than once.
        let message_id = format!(
            "status/{}/{}/{}/{}",
            observation.indicator.code,
            observation.locality_code,
            observation.period,
            Uuid::new_v4()
        );
        self.outbox.push(OutboxMessage::protobuf(
            self.ctx.namespace,
            subjects::STATUS_CHANGED,
            message_id,
            &event,
            &facts.trace,
        ));
    }

    /// Raise the rule's escalation when it starts firing (`firing` says what fired); resolve it when it
    /// stops.
    fn apply_rule(&mut self, facts: &Facts<'_>, rule: &'static str, firing: Option<String>) {
        let observation = facts.observation;
        let key = dedup_key(&observation.indicator.code, &observation.locality_code, rule);
        match (firing, self.open.get(&key).copied()) {
            (Some(detail), None) => {
                let occurrence_id = Uuid::new_v4();
                self.opened.push(OpenedEscalation {
                    occurrence_id,
                    dedup_key: key.clone(),
                    rule,
                    indicator_code: observation.indicator.code.clone(),
                    locality_code: observation.locality_code.clone(),
                    period_label: observation.period.to_string(),
                    value: observation.value,
                    target: facts.target.map_or(f64::NAN, |t| t.spec.value),
                    resolved: false,
                });
                self.open.insert(key.clone(), occurrence_id);
                let subject = self.subject(facts, detail);
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
                    raised_at: Some(timestamp(self.ctx.now)),
                    subject: Some(alerting::escalation_raised::Subject::Indicator(subject)),
                };
                self.outbox.push(OutboxMessage::protobuf(
                    self.ctx.namespace,
                    subjects::INGEST_ESCALATION_RAISED,
                    format!("escalation/{occurrence_id}/raised"),
                    &event,
                    &facts.trace,
                ));
            }
            (None, Some(occurrence_id)) => {
                self.open.remove(&key);
                match self.opened.iter_mut().find(|e| e.occurrence_id == occurrence_id) {
                    Some(opened_here) => opened_here.resolved = true,
                    None => self.resolved_before.push(occurrence_id),
                }
                let subject = self.subject(facts, format!("{rule} no longer fires"));
                let event = alerting::EscalationResolved {
                    dedup_key: key,
                    occurrence_id: occurrence_id.to_string(),
                    source: SOURCE.to_owned(),
                    rule: rule.to_owned(),
                    summary: summary(&subject, "has recovered"),
                    resolved_at: Some(timestamp(self.ctx.now)),
                    subject: Some(alerting::escalation_resolved::Subject::Indicator(subject)),
                };
                self.outbox.push(OutboxMessage::protobuf(
                    self.ctx.namespace,
                    subjects::INGEST_ESCALATION_RESOLVED,
                    format!("escalation/{occurrence_id}/resolved"),
                    &event,
                    &facts.trace,
                ));
            }
            // Still firing and already escalated, or quiet and nothing open: nothing to say.
            _ => {}
        }
    }

    fn subject(&self, facts: &Facts<'_>, detail: String) -> alerting::IndicatorBreach {
        let observation = facts.observation;
        let indicator = &observation.indicator;
        let (outcome, priority) = self.reference.outcome_and_priority(&indicator.code);
        alerting::IndicatorBreach {
            indicator_code: indicator.code.clone(),
            indicator_name: indicator.name.clone(),
            locality_code: observation.locality_code.clone(),
            locality_name: self.reference.locality_name(&observation.locality_code),
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
            locality_lineage: self
                .reference
                .lineage(&observation.locality_code, observation.period.starts_on())
                .into_iter()
                .map(str::to_owned)
                .collect(),
            outcome_code: outcome.to_owned(),
            priority_code: priority.to_owned(),
        }
    }
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

/// One line for people; the figures, formatted for the measure, travel in the structured fields.
fn summary(subject: &alerting::IndicatorBreach, state: &str) -> String {
    format!(
        "{} in {} {state} for {}: {}",
        subject.indicator_name, subject.locality_name, subject.period_label, subject.detail
    )
}
