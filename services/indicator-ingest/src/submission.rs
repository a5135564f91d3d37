//! What happens to a submission: the partner and batch are checked, every record is validated against the
//! catalogue and the information sharing protocol, good records are stored (as new revisions when they
//! correct a value) and evaluated against their targets in the same transaction, escalations are raised or
//! resolved, and a receipt says what happened to each record. Events go out through the outbox.

use std::collections::HashSet;

use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::{Namespace, subjects};
use trust_runtime::grpc::timestamp;
use trust_runtime::outbox::{self, OutboxMessage};
use trust_runtime::telemetry::TraceContext;
use uuid::Uuid;

use crate::domain::series::Change;
use crate::domain::validation::{References, ValidObservation};
use crate::domain::{self, Rejection};
use crate::evaluate::{self, SeriesBook, Source};
use crate::reference::{Reference, ReferenceCache};
use crate::rollups::{self, Touched};
use crate::store;

pub use crate::evaluate::{TARGET_BREACH_RULE, dedup_key};

/// Where the submission came from and what it caused.
pub struct Context<'a> {
    pub namespace: &'a Namespace,
    /// The reference data this replica holds.
    pub reference: &'a ReferenceCache,
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
    let reference = ctx.reference.current(conn).await?;
    if !reference.partner_exists(partner) {
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

    let (valid, mut rejections) = validate_batch(&reference, ctx, partner, &batch);
    let mut book = SeriesBook::load(conn, &valid).await?;
    let valid = refuse_unexplained_corrections(&book, valid, &mut rejections);
    rejections.sort_by_key(|r| r.position);
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
    let mut events = Vec::new();
    if store_nothing {
        if batch.dry_run {
            // A dry run reports what would have been stored.
            receipt.created = count(valid.len());
        }
    } else {
        let source = Source {
            partner,
            batch_id: &batch_id,
            submitted_by: &batch.submitted_by,
        };
        let evaluated =
            evaluate::store_and_evaluate(conn, ctx, &reference, source, &valid, &mut book, &mut events)
                .await?;
        let mut touched = Vec::new();
        for (observation, evaluated) in valid.iter().zip(&evaluated) {
            if let Some(reason) = &evaluated.outlier {
                receipt.flags.push(pb::RecordFlag {
                    position: observation.position,
                    field: "value".to_owned(),
                    reason: reason.clone(),
                });
            }
            match evaluated.change {
                Change::Created => receipt.created += 1,
                Change::Updated { .. } => receipt.updated += 1,
                Change::Unchanged => continue,
            }
            touched.push(Touched {
                indicator: &observation.indicator.code,
                locality: &observation.locality_code,
                period: observation.period,
            });
            recorded.push(pb::RecordedObservation {
                indicator_code: observation.indicator.code.clone(),
                locality_code: observation.locality_code.clone(),
                period: Some(observation.period.to_proto()),
                value: observation.value,
                rag: evaluated.rag as i32,
                revision: u32::try_from(evaluated.revision).unwrap_or(0),
                direction_vs_previous: evaluated.direction.0 as i32,
                direction_vs_baseline: evaluated.direction.1 as i32,
                spc_signals: evaluated.spc_rules.iter().map(|r| (*r).to_owned()).collect(),
                outlier: evaluated.outlier.is_some(),
            });
        }
        receipt.unchanged = count(valid.len() - touched.len());
        rollups::propagate(conn, &reference, &touched).await?;
    }
    receipt.outcome = outcome(&receipt, atomic, valid.len()) as i32;
    finish_with(conn, ctx, receipt, &recorded, events).await
}

/// Validate every record against the reference data: the catalogue, the information sharing protocol and
/// locked periods. No database access: the reference data is held in memory.
fn validate_batch(
    reference: &Reference,
    ctx: &Context<'_>,
    partner: &str,
    batch: &pb::ObservationBatch,
) -> (Vec<ValidObservation>, Vec<Rejection>) {
    let today = ctx.now.date();
    let mut valid = Vec::with_capacity(batch.observations.len());
    let mut rejections = Vec::new();
    let mut seen = HashSet::new();
    for (position, record) in batch.observations.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let refs = References {
            indicator: reference.indicators.get(&record.indicator_code),
            locality_known: reference.locality_known(&record.locality_code),
            partner_may_submit: reference.may_submit(partner, &record.indicator_code),
        };
        let checked = domain::validate_observation(position, partner, record, &refs, today)
            .and_then(|observation| refuse_out_of_place(reference, partner, observation))
            .and_then(|observation| refuse_locked(reference, observation));
        match checked {
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
    (valid, rejections)
}

/// A partner limited to some localities submits only for them (or places within them when the period
/// began).
fn refuse_out_of_place(
    reference: &Reference,
    partner: &str,
    observation: ValidObservation,
) -> Result<ValidObservation, Rejection> {
    if reference.may_submit_for(partner, &observation.locality_code, observation.period) {
        return Ok(observation);
    }
    Err(Rejection {
        position: observation.position,
        field: "locality_code",
        reason: format!(
            "partner {partner:?} is not permitted to submit for locality {:?} under the information sharing protocol",
            observation.locality_code
        ),
    })
}

/// A value for an approved period is refused until the period is unlocked.
fn refuse_locked(
    reference: &Reference,
    observation: ValidObservation,
) -> Result<ValidObservation, Rejection> {
    let period = observation.period;
    match reference.lock(&observation.indicator.code, period) {
        None => Ok(observation),
        Some(lock) => Err(Rejection {
            position: observation.position,
            field: "period",
            reason: format!(
                "period {period} of {} was approved by {} on {} and is locked; ask the performance lead to unlock it",
                observation.indicator.code,
                lock.locked_by,
                lock.locked_at.date()
            ),
        }),
    }
}

/// A changed value for a period already reported is a correction and must say why.
fn refuse_unexplained_corrections(
    book: &SeriesBook,
    valid: Vec<ValidObservation>,
    rejections: &mut Vec<Rejection>,
) -> Vec<ValidObservation> {
    let mut kept = Vec::with_capacity(valid.len());
    for observation in valid {
        let held = book
            .current(&observation)
            .filter(|_| observation.correction_reason.is_empty());
        match held {
            Some(held)
                if (held.value, held.numerator, held.denominator)
                    != (observation.value, observation.numerator, observation.denominator) =>
            {
                rejections.push(Rejection {
                    position: observation.position,
                    field: "correction_reason",
                    reason: format!(
                        "{} for {} in {} is already reported as {}; a correction needs a reason",
                        observation.indicator.code, observation.locality_code, observation.period, held.value
                    ),
                });
            }
            _ => kept.push(observation),
        }
    }
    kept
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

/// Keep the receipt in the ledger (real submissions only) and publish it.
async fn finish(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    receipt: pb::SubmissionReceipt,
    recorded: &[pb::RecordedObservation],
) -> Result<pb::SubmissionReceipt, sqlx::Error> {
    finish_with(conn, ctx, receipt, recorded, Vec::new()).await
}

/// Keep the receipt in the ledger (real submissions only) and publish it, the recorded observations and the
/// submission's other `events`, all in one write to the outbox.
async fn finish_with(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    receipt: pb::SubmissionReceipt,
    recorded: &[pb::RecordedObservation],
    mut events: Vec<OutboxMessage>,
) -> Result<pb::SubmissionReceipt, sqlx::Error> {
    if !receipt.dry_run && !receipt.batch_id.is_empty() {
        store::record_submission(conn, &receipt).await?;
    }
    events.push(receipt_message(
        ctx,
        &receipt,
        if receipt.dry_run { "dry-run" } else { "receipt" },
    ));
    if !recorded.is_empty() {
        let event = pb::ObservationsRecorded {
            batch_id: receipt.batch_id.clone(),
            partner_code: receipt.partner_code.clone(),
            observations: recorded.to_vec(),
        };
        events.push(OutboxMessage::protobuf(
            ctx.namespace,
            subjects::OBSERVATIONS_RECORDED,
            format!("observations/{}/{}", receipt.partner_code, receipt.batch_id),
            &event,
            &ctx.trace,
        ));
    }
    outbox::enqueue_many(conn, &events).await?;
    Ok(receipt)
}

async fn publish_receipt(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    receipt: &pb::SubmissionReceipt,
    kind: &str,
) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, &receipt_message(ctx, receipt, kind)).await
}

fn receipt_message(ctx: &Context<'_>, receipt: &pb::SubmissionReceipt, kind: &str) -> OutboxMessage {
    // Receipts of repeats and dry runs are distinct messages: each answers a separate request.
    let unique = if kind == "receipt" {
        String::new()
    } else {
        format!("/{}", Uuid::new_v4())
    };
    OutboxMessage::protobuf(
        ctx.namespace,
        &subjects::receipt(&receipt.partner_code),
        format!(
            "receipt/{}/{}/{kind}{unique}",
            receipt.partner_code, receipt.batch_id
        ),
        receipt,
        &ctx.trace,
    )
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
