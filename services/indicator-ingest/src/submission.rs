//! What happens to a submission: the partner and batch are checked, every record is validated against the
//! catalogue and the information sharing protocol, good records are stored (as new revisions when they
//! correct a value) and evaluated against their targets in the same transaction, escalations are raised or
//! resolved, and a receipt says what happened to each record. Events go out through the outbox.

use std::collections::HashSet;

use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::alerting::v1 as alerting;
use trust_proto::common::v1::Rag;
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::{Namespace, subjects};
use trust_runtime::grpc::timestamp;
use trust_runtime::outbox::{self, OutboxMessage};
use trust_runtime::telemetry::TraceContext;
use uuid::Uuid;

use crate::domain::validation::{References, ValidObservation};
use crate::domain::{self, Evaluation, Rejection};
use crate::store::{self, Change};

/// The rule name of a red value against target.
pub const TARGET_BREACH_RULE: &str = "target-breach";
const SOURCE: &str = "indicator-ingest";

/// Where the submission came from and what it caused.
pub struct Context<'a> {
    pub namespace: &'a Namespace,
    pub trace: TraceContext,
    pub now: OffsetDateTime,
}

/// A submission as received: decoded, or bytes that were not an `ObservationBatch`.
pub enum Received {
    Batch(pb::ObservationBatch),
    Undecodable { message_id: String, error: String },
}

/// Partner codes are subject tokens: letters, digits, '-' and '_'.
pub fn valid_partner_code(code: &str) -> bool {
    !code.is_empty()
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Process one submission inside the caller's transaction and return its receipt (also published).
pub async fn process(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    partner: &str,
    received: Received,
) -> Result<pb::SubmissionReceipt, sqlx::Error> {
    let batch = match received {
        Received::Batch(batch) => batch,
        Received::Undecodable { message_id, error } => {
            let receipt = whole_rejection(
                ctx,
                partner,
                &message_id,
                false,
                Rejection::whole_message(
                    "message",
                    format!("not a trust.ingest.v1.ObservationBatch: {error}"),
                ),
            );
            return finish(conn, ctx, receipt, &[]).await;
        }
    };
    let batch_id = batch.batch_id.clone();
    if !store::partner_exists(conn, partner).await? {
        let rejection = Rejection::whole_message(
            "partner_code",
            format!("partner {partner:?} is not registered in the catalogue"),
        );
        return finish(
            conn,
            ctx,
            whole_rejection(ctx, partner, &batch_id, batch.dry_run, rejection),
            &[],
        )
        .await;
    }
    if !batch.partner_code.is_empty() && batch.partner_code != partner {
        let rejection = Rejection::whole_message(
            "partner_code",
            format!(
                "batch names partner {:?} but was submitted by {partner:?}; a partner submits only its own data",
                batch.partner_code
            ),
        );
        return finish(
            conn,
            ctx,
            whole_rejection(ctx, partner, &batch_id, batch.dry_run, rejection),
            &[],
        )
        .await;
    }
    if batch_id.trim().is_empty() {
        let rejection = Rejection::whole_message("batch_id", "a batch_id (idempotency key) is required");
        return finish(
            conn,
            ctx,
            whole_rejection(ctx, partner, &batch_id, batch.dry_run, rejection),
            &[],
        )
        .await;
    }
    if !batch.dry_run
        && let Some(original) = store::find_receipt(conn, partner, &batch_id).await?
    {
        let receipt = duplicate_receipt(ctx, &original, batch.observations.len());
        publish_receipt(conn, ctx, &receipt, "duplicate").await?;
        return Ok(receipt);
    }

    let (valid, rejections) = validate_batch(conn, ctx, partner, &batch).await?;
    let atomic = batch.mode != pb::SubmissionMode::Partial as i32;
    let mut receipt = pb::SubmissionReceipt {
        batch_id: batch_id.clone(),
        partner_code: partner.to_owned(),
        dry_run: batch.dry_run,
        rejected: count(rejections.len()),
        rejections: rejections.iter().map(Rejection::to_proto).collect(),
        received_at: Some(timestamp(ctx.now)),
        ..Default::default()
    };
    let store_nothing = batch.dry_run || (atomic && !rejections.is_empty()) || valid.is_empty();
    let mut recorded = Vec::new();
    if store_nothing {
        if batch.dry_run {
            // A dry run reports what would have been stored.
            receipt.created = count(valid.len());
        }
    } else {
        for observation in &valid {
            let (change, revision, rag) =
                store_and_evaluate(conn, ctx, partner, &batch_id, observation).await?;
            match change {
                Change::Created => receipt.created += 1,
                Change::Updated { .. } => receipt.updated += 1,
                Change::Unchanged => receipt.unchanged += 1,
            }
            if change != Change::Unchanged {
                recorded.push(pb::RecordedObservation {
                    indicator_code: observation.indicator.code.clone(),
                    locality_code: observation.locality_code.clone(),
                    period: Some(observation.period.to_proto()),
                    value: observation.value,
                    rag: rag as i32,
                    revision: u32::try_from(revision).unwrap_or(0),
                });
            }
        }
    }
    receipt.outcome = outcome(&receipt, atomic, valid.len()) as i32;
    finish(conn, ctx, receipt, &recorded).await
}

async fn validate_batch(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    partner: &str,
    batch: &pb::ObservationBatch,
) -> Result<(Vec<ValidObservation>, Vec<Rejection>), sqlx::Error> {
    let indicator_codes: Vec<String> = unique(batch.observations.iter().map(|o| &o.indicator_code));
    let locality_codes: Vec<String> = unique(batch.observations.iter().map(|o| &o.locality_code));
    let indicators = store::indicators(conn, &indicator_codes).await?;
    let localities = store::known_localities(conn, &locality_codes).await?;
    let permitted = store::permitted_indicators(conn, partner).await?;
    let today = ctx.now.date();
    let mut valid = Vec::with_capacity(batch.observations.len());
    let mut rejections = Vec::new();
    let mut seen = HashSet::new();
    for (position, record) in batch.observations.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let refs = References {
            indicator: indicators.get(&record.indicator_code),
            locality_known: localities.contains(&record.locality_code),
            partner_may_submit: permitted.contains(&record.indicator_code),
        };
        match domain::validate_observation(position, partner, record, &refs, today) {
            Ok(observation) => {
                let key = (
                    observation.indicator.code.clone(),
                    observation.locality_code.clone(),
                    observation.period,
                );
                if seen.insert(key) {
                    valid.push(observation);
                } else {
                    rejections.push(Rejection {
                        position,
                        field: "period",
                        reason: format!(
                            "a value for {} in {} for {} appears earlier in this batch",
                            observation.indicator.code, observation.locality_code, observation.period
                        ),
                    });
                }
            }
            Err(rejection) => rejections.push(rejection),
        }
    }
    Ok((valid, rejections))
}

/// Store one value, evaluate it against its target and move the escalation state if it is the latest
/// period of its series.
async fn store_and_evaluate(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    partner: &str,
    batch_id: &str,
    observation: &ValidObservation,
) -> Result<(Change, i32, Rag), sqlx::Error> {
    let indicator = &observation.indicator;
    let target = store::target_for(conn, &indicator.code, &observation.locality_code).await?;
    let evaluation = target.map(|t| domain::evaluate(observation.value, indicator.polarity, t));
    let rag = evaluation.map_or(Rag::Unspecified, |e| e.rag);
    let (change, revision) = store::store_observation(conn, observation, rag, partner, batch_id).await?;
    if change == Change::Unchanged {
        return Ok((change, revision, rag));
    }
    if let (Some(target), Some(evaluation)) = (target, evaluation)
        && store::is_latest_period(
            conn,
            &indicator.code,
            &observation.locality_code,
            observation.period,
        )
        .await?
    {
        let breach = Breach {
            observation,
            partner,
            target_value: target.value,
            amber_tolerance: target.amber_tolerance,
            evaluation,
        };
        apply_target_rule(conn, ctx, &breach).await?;
    }
    Ok((change, revision, rag))
}

struct Breach<'a> {
    observation: &'a ValidObservation,
    partner: &'a str,
    target_value: f64,
    amber_tolerance: f64,
    evaluation: Evaluation,
}

/// Stable across every raise of the same concern, so notifications updates one alert.
pub fn dedup_key(indicator: &str, locality: &str, rule: &str) -> String {
    format!("ingest/{rule}/{indicator}/{locality}")
}

/// Raise an escalation when the latest value turns red; resolve it when it is no longer red.
async fn apply_target_rule(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    breach: &Breach<'_>,
) -> Result<(), sqlx::Error> {
    let observation = breach.observation;
    let key = dedup_key(
        &observation.indicator.code,
        &observation.locality_code,
        TARGET_BREACH_RULE,
    );
    let open = store::open_escalation(conn, &key).await?;
    match (breach.evaluation.breach, open) {
        (true, None) => {
            let occurrence_id = Uuid::new_v4();
            let period_label = observation.period.to_string();
            store::open_new_escalation(
                conn,
                &store::NewEscalation {
                    occurrence_id,
                    dedup_key: &key,
                    rule: TARGET_BREACH_RULE,
                    indicator_code: &observation.indicator.code,
                    locality_code: &observation.locality_code,
                    period_label: &period_label,
                    value: observation.value,
                    target: breach.target_value,
                },
            )
            .await?;
            let subject = indicator_subject(conn, breach).await?;
            let event = alerting::EscalationRaised {
                dedup_key: key,
                occurrence_id: occurrence_id.to_string(),
                source: SOURCE.to_owned(),
                rule: TARGET_BREACH_RULE.to_owned(),
                severity: alerting::Severity::Critical as i32,
                summary: summary(&subject, "is worse than its target"),
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
        (false, Some(occurrence_id)) => {
            store::resolve_escalation(conn, occurrence_id).await?;
            let subject = indicator_subject(conn, breach).await?;
            let event = alerting::EscalationResolved {
                dedup_key: key,
                occurrence_id: occurrence_id.to_string(),
                source: SOURCE.to_owned(),
                rule: TARGET_BREACH_RULE.to_owned(),
                summary: summary(&subject, "is back within tolerance of target"),
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
        // Still red and already escalated, or fine and nothing open: nothing to say.
        _ => Ok(()),
    }
}

async fn indicator_subject(
    conn: &mut PgConnection,
    breach: &Breach<'_>,
) -> Result<alerting::IndicatorBreach, sqlx::Error> {
    let observation = breach.observation;
    let indicator = &observation.indicator;
    Ok(alerting::IndicatorBreach {
        indicator_code: indicator.code.clone(),
        indicator_name: indicator.name.clone(),
        locality_code: observation.locality_code.clone(),
        locality_name: store::locality_name(conn, &observation.locality_code).await?,
        period: Some(observation.period.to_proto()),
        period_label: observation.period.to_string(),
        value: observation.value,
        target: breach.target_value,
        amber_tolerance: breach.amber_tolerance,
        polarity: indicator.polarity as i32,
        measure: indicator.measure as i32,
        rag: breach.evaluation.rag as i32,
        partner_code: breach.partner.to_owned(),
        owner_partner_code: indicator.owner_partner_code.clone(),
    })
}

/// One line for people; the figures, formatted for the measure, travel in the structured fields.
fn summary(subject: &alerting::IndicatorBreach, state: &str) -> String {
    format!(
        "{} in {} {state} for {}",
        subject.indicator_name, subject.locality_name, subject.period_label
    )
}

fn outcome(receipt: &pb::SubmissionReceipt, atomic: bool, valid: usize) -> pb::SubmissionOutcome {
    match (receipt.rejected, valid) {
        (0, _) => pb::SubmissionOutcome::Accepted,
        (_, 0) => pb::SubmissionOutcome::Rejected,
        _ if atomic => pb::SubmissionOutcome::Rejected,
        _ => pb::SubmissionOutcome::PartiallyAccepted,
    }
}

fn whole_rejection(
    ctx: &Context<'_>,
    partner: &str,
    batch_id: &str,
    dry_run: bool,
    rejection: Rejection,
) -> pb::SubmissionReceipt {
    pb::SubmissionReceipt {
        batch_id: batch_id.to_owned(),
        partner_code: partner.to_owned(),
        outcome: pb::SubmissionOutcome::Rejected as i32,
        dry_run,
        rejected: 1,
        rejections: vec![rejection.to_proto()],
        received_at: Some(timestamp(ctx.now)),
        ..Default::default()
    }
}

fn duplicate_receipt(
    ctx: &Context<'_>,
    original: &pb::SubmissionReceipt,
    records: usize,
) -> pb::SubmissionReceipt {
    pb::SubmissionReceipt {
        batch_id: original.batch_id.clone(),
        partner_code: original.partner_code.clone(),
        outcome: pb::SubmissionOutcome::Duplicate as i32,
        unchanged: count(records),
        rejections: vec![pb::RecordRejection {
            position: -1,
            field: "batch_id".to_owned(),
            reason: format!(
                "batch {:?} was already processed ({}); nothing new was stored",
                original.batch_id,
                pb::SubmissionOutcome::try_from(original.outcome)
                    .unwrap_or(pb::SubmissionOutcome::Unspecified)
                    .as_str_name()
            ),
        }],
        received_at: Some(timestamp(ctx.now)),
        ..Default::default()
    }
}

/// Keep the receipt in the ledger (real submissions only) and publish it with the recorded observations.
async fn finish(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    receipt: pb::SubmissionReceipt,
    recorded: &[pb::RecordedObservation],
) -> Result<pb::SubmissionReceipt, sqlx::Error> {
    if !receipt.dry_run && !receipt.batch_id.is_empty() {
        store::record_submission(conn, &receipt).await?;
    }
    publish_receipt(
        conn,
        ctx,
        &receipt,
        if receipt.dry_run { "dry-run" } else { "receipt" },
    )
    .await?;
    if !recorded.is_empty() {
        let event = pb::ObservationsRecorded {
            batch_id: receipt.batch_id.clone(),
            partner_code: receipt.partner_code.clone(),
            observations: recorded.to_vec(),
        };
        let message = OutboxMessage::protobuf(
            ctx.namespace,
            subjects::OBSERVATIONS_RECORDED,
            format!("observations/{}/{}", receipt.partner_code, receipt.batch_id),
            &event,
            &ctx.trace,
        );
        outbox::enqueue(conn, &message).await?;
    }
    Ok(receipt)
}

async fn publish_receipt(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    receipt: &pb::SubmissionReceipt,
    kind: &str,
) -> Result<(), sqlx::Error> {
    // Receipts of repeats and dry runs are distinct messages: each answers a separate request.
    let unique = if kind == "receipt" {
        String::new()
    } else {
        format!("/{}", Uuid::new_v4())
    };
    let message = OutboxMessage::protobuf(
        ctx.namespace,
        &subjects::receipt(&receipt.partner_code),
        format!(
            "receipt/{}/{}/{kind}{unique}",
            receipt.partner_code, receipt.batch_id
        ),
        receipt,
        &ctx.trace,
    );
    outbox::enqueue(conn, &message).await
}

fn unique<'a>(codes: impl Iterator<Item = &'a String>) -> Vec<String> {
    let set: HashSet<&String> = codes.collect();
    set.into_iter().cloned().collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
