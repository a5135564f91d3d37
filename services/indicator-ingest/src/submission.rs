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
use crate::ledger;
use crate::reference::{Reference, ReferenceCache};
use crate::rollups::{self, Touched};

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

/// One submission as received, from a partner.
pub struct Submission<'a> {
    pub partner: &'a str,
    pub received: Received,
    /// The trace the submission's events belong to.
    pub trace: TraceContext,
}

/// Process one submission inside the caller's transaction and return its receipt (also published).
pub async fn process(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    partner: &str,
    received: Received,
) -> Result<pb::SubmissionReceipt, sqlx::Error> {
    let submission = Submission {
        partner,
        received,
        trace: ctx.trace,
    };
    let mut receipts = process_group(conn, ctx, vec![submission]).await?;
    receipts
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("a submission produced no receipt".to_owned()))
}

/// Process submissions that arrived together inside the caller's transaction, with the same result as
/// processing them one after another: they are validated, stored and evaluated together, except that a
/// submission repeating a batch id or a value (indicator, locality and period) of an earlier one in the
/// group waits for that one. Returns a receipt per submission, in order.
pub async fn process_group(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    submissions: Vec<Submission<'_>>,
) -> Result<Vec<pb::SubmissionReceipt>, sqlx::Error> {
    let reference = ctx.reference.current(conn).await?;
    let mut receipts = Vec::with_capacity(submissions.len());
    let mut run: Vec<Submission<'_>> = Vec::new();
    let mut batches: HashSet<(String, String)> = HashSet::new();
    let mut values: HashSet<ValueKey> = HashSet::new();
    for submission in submissions {
        let (batch_key, value_keys) = match &submission.received {
            Received::Batch(batch) => (
                Some((submission.partner.to_owned(), batch.batch_id.clone())),
                batch.observations.iter().map(value_key).collect(),
            ),
            Received::Undecodable { .. } => (None, Vec::new()),
        };
        let clashes = batch_key.as_ref().is_some_and(|k| batches.contains(k))
            || value_keys.iter().any(|k| values.contains(k));
        if clashes {
            receipts.extend(process_run(conn, ctx, &reference, std::mem::take(&mut run)).await?);
            batches.clear();
            values.clear();
        }
        batches.extend(batch_key);
        values.extend(value_keys);
        run.push(submission);
    }
    receipts.extend(process_run(conn, ctx, &reference, run).await?);
    Ok(receipts)
}

/// What makes two submitted values the same value: indicator, locality and period.
type ValueKey = (String, String, Option<(i32, i32, i32)>);

fn value_key(o: &pb::Observation) -> ValueKey {
    (
        o.indicator_code.clone(),
        o.locality_code.clone(),
        o.period.map(|p| (p.r#type, p.year, p.number)),
    )
}

/// A submission of a run, once its whole-message checks are done.
struct Pending<'a> {
    index: usize,
    partner: &'a str,
    trace: TraceContext,
    batch: pb::ObservationBatch,
    valid: Vec<ValidObservation>,
    rejections: Vec<Rejection>,
}

/// Process submissions with no batch id and no value in common.
async fn process_run(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    reference: &Reference,
    run: Vec<Submission<'_>>,
) -> Result<Vec<pb::SubmissionReceipt>, sqlx::Error> {
    let mut receipts: Vec<Option<pb::SubmissionReceipt>> = vec![None; run.len()];
    let mut events = Vec::new();
    let mut pending = Vec::new();
    let mut traces = Vec::with_capacity(run.len());
    for (index, submission) in run.into_iter().enumerate() {
        let Submission {
            partner,
            received,
            trace,
        } = submission;
        traces.push(trace);
        match whole_message_checks(ctx, reference, partner, received) {
            Ok(batch) => pending.push(Pending {
                index,
                partner,
                trace,
                batch,
                valid: Vec::new(),
                rejections: Vec::new(),
            }),
            Err(receipt) => receipts[index] = Some(*receipt),
        }
    }
    // A batch id already in the ledger is a repeat: nothing is stored and the receipt says so.
    let keys: Vec<(&str, &str)> = pending
        .iter()
        .filter(|p| !p.batch.dry_run)
        .map(|p| (p.partner, p.batch.batch_id.as_str()))
        .collect();
    let originals = ledger::find(conn, &keys).await?;
    pending.retain(|p| {
        let original = originals.get(&(p.partner.to_owned(), p.batch.batch_id.clone()));
        match original.filter(|_| !p.batch.dry_run) {
            Some(original) => {
                let receipt = duplicate_receipt(ctx, original, p.batch.observations.len());
                events.push(receipt_message(ctx, &receipt, "duplicate", &p.trace));
                receipts[p.index] = Some(receipt);
                false
            }
            None => true,
        }
    });
    for p in &mut pending {
        let (valid, rejections) = validate_batch(reference, ctx, p.partner, &p.batch);
        p.valid = valid;
        p.rejections = rejections;
    }
    let mut book = SeriesBook::load(conn, pending.iter().flat_map(|p| &p.valid)).await?;
    // Which submissions store their values, and the receipt each starts from.
    let mut to_store: Vec<(Source<'_>, &ValidObservation)> = Vec::new();
    let mut drafts = Vec::with_capacity(pending.len());
    for p in &mut pending {
        let valid = std::mem::take(&mut p.valid);
        p.valid = refuse_unexplained_corrections(&book, valid, &mut p.rejections);
        p.rejections.sort_by_key(|r| r.position);
        let atomic = p.batch.mode != pb::SubmissionMode::Partial as i32;
        let receipt = pb::SubmissionReceipt {
            batch_id: p.batch.batch_id.clone(),
            partner_code: p.partner.to_owned(),
            dry_run: p.batch.dry_run,
            rejected: count(p.rejections.len()),
            rejections: p.rejections.iter().map(Rejection::to_proto).collect(),
            received_at: Some(timestamp(ctx.now)),
            // A dry run reports what would have been stored.
            created: if p.batch.dry_run { count(p.valid.len()) } else { 0 },
            ..Default::default()
        };
        // Atomic: one refused record refuses the submission.
        let refused = atomic && !p.rejections.is_empty();
        let stores = !(p.batch.dry_run || refused || p.valid.is_empty());
        drafts.push((receipt, atomic, stores, Vec::new()));
    }
    for (p, (_, _, stores, _)) in pending.iter().zip(&drafts) {
        if *stores {
            let source = Source {
                trace: p.trace,
                partner: p.partner,
                batch_id: &p.batch.batch_id,
                submitted_by: &p.batch.submitted_by,
            };
            to_store.extend(p.valid.iter().map(|o| (source, o)));
        }
    }
    let evaluated =
        evaluate::store_and_evaluate(conn, ctx, reference, &to_store, &mut book, &mut events).await?;
    let mut evaluated = evaluated.into_iter();
    let mut touched = Vec::new();
    for (p, (receipt, _, stores, recorded)) in pending.iter().zip(&mut drafts) {
        if !*stores {
            continue;
        }
        for (observation, evaluated) in p.valid.iter().zip(evaluated.by_ref()) {
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
                Change::Unchanged => {
                    receipt.unchanged += 1;
                    continue;
                }
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
    }
    rollups::propagate(conn, reference, &touched).await?;
    for (p, (mut receipt, atomic, _, recorded)) in pending.iter().zip(drafts) {
        receipt.outcome = outcome(&receipt, atomic, p.valid.len()) as i32;
        if !recorded.is_empty() {
            events.push(recorded_message(ctx, &receipt, recorded, &p.trace));
        }
        receipts[p.index] = Some(receipt);
    }
    let receipts: Vec<(pb::SubmissionReceipt, TraceContext)> = receipts
        .into_iter()
        .zip(traces)
        .filter_map(|(receipt, trace)| receipt.map(|r| (r, trace)))
        .collect();
    let kept: Vec<&pb::SubmissionReceipt> = receipts
        .iter()
        .map(|(r, _)| r)
        .filter(|r| {
            !r.dry_run && !r.batch_id.is_empty() && r.outcome != pb::SubmissionOutcome::Duplicate as i32
        })
        .collect();
    ledger::record(conn, &kept).await?;
    for (receipt, trace) in &receipts {
        if receipt.outcome != pb::SubmissionOutcome::Duplicate as i32 {
            let kind = if receipt.dry_run { "dry-run" } else { "receipt" };
            events.push(receipt_message(ctx, receipt, kind, trace));
        }
    }
    outbox::enqueue_many(conn, &events).await?;
    Ok(receipts.into_iter().map(|(r, _)| r).collect())
}

/// Checks on the message as a whole: it decodes, its partner is registered and is the one submitting, and
/// it has a batch id. The batch, or the receipt refusing it.
fn whole_message_checks(
    ctx: &Context<'_>,
    reference: &Reference,
    partner: &str,
    received: Received,
) -> Result<pb::ObservationBatch, Box<pb::SubmissionReceipt>> {
    let batch = match received {
        Received::Batch(batch) => batch,
        Received::Undecodable { message_id, error } => {
            return Err(Box::new(whole_rejection(
                ctx,
                partner,
                &message_id,
                false,
                Rejection::whole_message(
                    "message",
                    format!("not a trust.ingest.v1.ObservationBatch: {error}"),
                ),
            )));
        }
    };
    let refuse = |rejection| {
        Err(Box::new(whole_rejection(
            ctx,
            partner,
            &batch.batch_id,
            batch.dry_run,
            rejection,
        )))
    };
    if !reference.partner_exists(partner) {
        return refuse(Rejection::whole_message(
            "partner_code",
            format!("partner {partner:?} is not registered in the catalogue"),
        ));
    }
    if !batch.partner_code.is_empty() && batch.partner_code != partner {
        return refuse(Rejection::whole_message(
            "partner_code",
            format!(
                "batch names partner {:?} but was submitted by {partner:?}; a partner submits only its own data",
                batch.partner_code
            ),
        ));
    }
    if batch.batch_id.trim().is_empty() {
        return refuse(Rejection::whole_message(
            "batch_id",
            "a batch_id (idempotency key) is required",
        ));
    }
    Ok(batch)
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

fn recorded_message(
    ctx: &Context<'_>,
    receipt: &pb::SubmissionReceipt,
    observations: Vec<pb::RecordedObservation>,
    trace: &TraceContext,
) -> OutboxMessage {
    let event = pb::ObservationsRecorded {
        batch_id: receipt.batch_id.clone(),
        partner_code: receipt.partner_code.clone(),
        observations,
    };
    OutboxMessage::protobuf(
        ctx.namespace,
        subjects::OBSERVATIONS_RECORDED,
        format!("observations/{}/{}", receipt.partner_code, receipt.batch_id),
        &event,
        trace,
    )
}

fn receipt_message(
    ctx: &Context<'_>,
    receipt: &pb::SubmissionReceipt,
    kind: &str,
    trace: &TraceContext,
) -> OutboxMessage {
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
        trace,
    )
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
