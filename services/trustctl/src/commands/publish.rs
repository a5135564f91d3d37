//! `trustctl publish`: submit one observation exactly as a partner system would (its own NATS user, its own
//! submission subject, through JetStream), then show the receipt indicator-ingest wrote for it. The receipt
//! is taken from whichever comes first: `ingest.receipts.<partner>` (which the partner may read) or, when a
//! token is given (`--token`, the partner's or an operator's), the ledger through
//! `IndicatorIngest.GetReceipt`. Dry-run receipts are not kept in the ledger, so for those only the bus
//! answers.
//! `trustctl receipt`: show the receipt of an earlier submission.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::{ConnectErrorKind, Subscriber, jetstream};
use futures::StreamExt as _;
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Code;
use trust_proto::ingest::v1::{
    GetReceiptRequest, Observation, ObservationBatch, SubmissionMode, SubmissionOutcome, SubmissionReceipt,
};
use trust_runtime::bus::{MessageHeaders, Namespace, subjects};
use trust_runtime::telemetry::TraceContext;

use super::{negative, status_error, timestamp};
use crate::auth::IngestClient;
use crate::cli::{Endpoints, PublishArgs, ReceiptArgs, Service};
use crate::period;

const MESSAGE_TYPE: &str = "trust.ingest.v1.ObservationBatch";
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A partner code is one NATS subject token and a NATS user name.
pub(crate) fn check_partner(partner: &str) -> Result<()> {
    let valid = !partner.is_empty()
        && partner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!("--partner {partner:?} is not a partner code (letters, digits, '-' or '_')");
    }
    Ok(())
}

fn batch(args: &PublishArgs, batch_id: &str) -> ObservationBatch {
    ObservationBatch {
        batch_id: batch_id.to_owned(),
        partner_code: args.partner.clone(),
        mode: SubmissionMode::Atomic as i32,
        dry_run: args.dry_run,
        observations: vec![Observation {
            indicator_code: args.indicator.clone(),
            locality_code: args.locality.clone(),
            period: Some(args.period),
            value: args.value,
            numerator: None,
            denominator: None,
            note: args.note.clone(),
            correction_reason: args.correction_reason.clone(),
        }],
        submitted_by: args.submitted_by.clone(),
    }
}

pub async fn run(endpoints: &Endpoints, args: &PublishArgs) -> Result<ExitCode> {
    let partner = args.partner.as_str();
    check_partner(partner)?;
    let batch_id = args
        .batch_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let namespace = Namespace::new(args.namespace.clone());
    let subject = namespace.subject(&subjects::submission(partner));
    let dry_run = args.dry_run;
    let password = args
        .password
        .clone()
        .unwrap_or_else(|| format!("{partner}-dev-password"));

    // The server reports refusals (a publish outside the partner's permissions) asynchronously; keep them
    // to explain a missing acknowledgement.
    let (server_errors, mut refusals) = mpsc::unbounded_channel::<String>();
    let client = async_nats::ConnectOptions::new()
        .name(format!("trustctl publish ({partner})"))
        .user_and_password(partner.to_owned(), password)
        .custom_inbox_prefix(format!("_INBOX.{partner}"))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let server_errors = server_errors.clone();
            async move {
                if let async_nats::Event::ServerError(err) = event {
                    let _ = server_errors.send(err.to_string());
                }
            }
        })
        .connect(args.nats_url.as_str())
        .await
        .map_err(|err| match err.kind() {
            ConnectErrorKind::AuthorizationViolation => anyhow::anyhow!(
                "NATS at {} refused user {partner} with the password given (--password or \
                 TRUSTCTL_PARTNER_PASSWORD; the default is {partner}-dev-password)",
                args.nats_url
            ),
            // The error's text already includes its source; chaining it would say it twice.
            _ => anyhow::anyhow!(
                "connecting to NATS at {} as partner {partner}: {err}",
                args.nats_url
            ),
        })?;
    // Subscribe before publishing, so the receipt cannot be missed. A refusal here is not fatal: the
    // ledger still answers (except for dry runs).
    let receipts = client
        .subscribe(namespace.subject(&subjects::receipt(partner)))
        .await
        .ok();

    let trace = TraceContext::new_root();
    let headers = MessageHeaders::protobuf(MESSAGE_TYPE, &batch_id, &trace).to_nats();
    let payload = batch(args, &batch_id).encode_to_vec();
    let ack = async {
        jetstream::new(client.clone())
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await?
            .await
    }
    .await;
    let ack = match ack {
        Ok(ack) => ack,
        Err(err) => {
            // Give a refusal already on its way a moment to arrive.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut reasons = Vec::new();
            while let Ok(reason) = refusals.try_recv() {
                reasons.push(reason);
            }
            if reasons.is_empty() {
                bail!(
                    "publishing batch {batch_id} to {subject} as {partner}: no acknowledgement from JetStream \
                     ({err}); is a platform service running (they create the SUBMISSIONS stream), and is \
                     {subject} a subject the stream takes?"
                );
            }
            bail!(
                "publishing batch {batch_id} to {subject} as {partner}: the NATS server refused it: {}",
                reasons.join("; ")
            );
        }
    };
    println!(
        "published {} {} {} = {} as {partner}: batch {batch_id} on {subject} (stream {}, sequence {}, trace {})",
        args.indicator,
        args.locality,
        period::display(&args.period),
        args.value,
        ack.stream,
        ack.sequence,
        trace.trace_id()
    );
    if ack.duplicate {
        println!(
            "note: JetStream already had a message with id {batch_id} within its duplicate window; this copy \
             was dropped"
        );
    }

    if args.wait_secs == 0 {
        if dry_run {
            println!(
                "not waiting for the receipt (a dry run's receipt is only published, on {})",
                namespace.subject(&subjects::receipt(partner))
            );
        } else {
            println!(
                "not waiting for the receipt; see it later with: trustctl receipt --partner {partner} {batch_id}"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = Wanted {
        partner,
        batch_id: &batch_id,
        dry_run,
    };
    let receipt = wait_for_receipt(endpoints, &wanted, receipts, Duration::from_secs(args.wait_secs))
        .await
        .with_context(|| {
            if dry_run {
                format!("dry run {batch_id} is in the stream but no receipt came back")
            } else {
                format!(
                    "batch {batch_id} is in the stream but has no receipt yet; indicator-ingest will process \
                     it when it consumes the stream (check with: trustctl receipt --partner {partner} {batch_id})"
                )
            }
        })?;
    drop(client);
    Ok(print_receipt(&receipt))
}

/// The receipt being waited for.
struct Wanted<'a> {
    partner: &'a str,
    batch_id: &'a str,
    dry_run: bool,
}

impl Wanted<'_> {
    fn matches(&self, receipt: &SubmissionReceipt) -> bool {
        receipt.batch_id == self.batch_id
            && receipt.partner_code == self.partner
            && receipt.dry_run == self.dry_run
    }
}

/// The next message of a subscription, or never when there is none.
async fn next_message(subscriber: &mut Option<Subscriber>) -> Option<async_nats::Message> {
    match subscriber {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

/// Wait for the receipt on the bus and, for real submissions, in indicator-ingest's ledger, until one
/// answers or `wait` is over.
async fn wait_for_receipt(
    endpoints: &Endpoints,
    wanted: &Wanted<'_>,
    mut receipts: Option<Subscriber>,
    wait: Duration,
) -> Result<SubmissionReceipt> {
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let request = GetReceiptRequest {
        partner_code: wanted.partner.to_owned(),
        batch_id: wanted.batch_id.to_owned(),
    };
    let mut client: Option<IngestClient> = None;
    // Without a credential the ledger cannot be asked; the bus still answers.
    let mut ask_ledger = !wanted.dry_run && endpoints.token.is_some();
    let mut last_problem = if receipts.is_some() {
        "no receipt has been published".to_owned()
    } else {
        "could not subscribe to the receipts subject".to_owned()
    };
    loop {
        tokio::select! {
            () = &mut deadline => break,
            message = next_message(&mut receipts) => match message {
                Some(message) => {
                    if let Ok(receipt) = SubmissionReceipt::decode(message.payload)
                        && wanted.matches(&receipt)
                    {
                        return Ok(receipt);
                    }
                }
                None => receipts = None,
            },
            _ = poll.tick(), if ask_ledger => {
                if client.is_none() {
                    match super::ingest(endpoints).await {
                        Ok(ingest) => client = Some(ingest),
                        Err(err) => last_problem = format!("{err:#}"),
                    }
                }
                if let Some(ingest) = client.as_mut() {
                    match ingest.get_receipt(request.clone()).await {
                        Ok(receipt) => return Ok(receipt.into_inner()),
                        Err(status) if status.code() == Code::NotFound => {
                            last_problem = "indicator-ingest has not processed it".to_owned();
                        }
                        Err(status)
                            if matches!(
                                status.code(),
                                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                            ) =>
                        {
                            last_problem = status_error(Service::Ingest, "the receipt", &status).to_string();
                        }
                        // A credential the ledger does not accept for this partner: wait for the bus alone.
                        Err(status)
                            if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied) =>
                        {
                            last_problem = status_error(Service::Ingest, "the receipt", &status).to_string();
                            ask_ledger = false;
                        }
                        Err(status) => return Err(status_error(Service::Ingest, "the receipt", &status)),
                    }
                }
            }
        }
    }
    bail!("no receipt within {}s: {last_problem}", wait.as_secs())
}

pub async fn show_receipt(endpoints: &Endpoints, args: &ReceiptArgs) -> Result<ExitCode> {
    check_partner(&args.partner)?;
    let mut client = super::ingest(endpoints).await?;
    let receipt = client
        .get_receipt(GetReceiptRequest {
            partner_code: args.partner.clone(),
            batch_id: args.batch_id.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Ingest, "the receipt", &status))?
        .into_inner();
    Ok(print_receipt(&receipt))
}

/// Print a receipt for a person; REJECTED is the negative exit status.
fn print_receipt(receipt: &SubmissionReceipt) -> ExitCode {
    print!("{}", describe(receipt));
    if receipt.outcome == SubmissionOutcome::Rejected as i32 {
        negative()
    } else {
        ExitCode::SUCCESS
    }
}

fn describe(receipt: &SubmissionReceipt) -> String {
    let outcome = SubmissionOutcome::try_from(receipt.outcome).unwrap_or(SubmissionOutcome::Unspecified);
    let meaning = match outcome {
        SubmissionOutcome::Accepted => "every record accepted",
        SubmissionOutcome::PartiallyAccepted => "some records accepted, the rejected ones listed below",
        SubmissionOutcome::Rejected => "nothing stored",
        SubmissionOutcome::Duplicate => "this batch id was already processed; nothing new stored",
        SubmissionOutcome::Unspecified => "outcome not given",
    };
    let name = outcome
        .as_str_name()
        .strip_prefix("SUBMISSION_OUTCOME_")
        .unwrap_or(outcome.as_str_name());
    let mut out = format!(
        "receipt for batch {} from {}: {name} ({meaning}){}\n",
        receipt.batch_id,
        receipt.partner_code,
        match (receipt.dry_run, outcome) {
            (false, _) => "",
            (true, SubmissionOutcome::Rejected) => " [dry run]",
            (true, _) => " [dry run: nothing stored]",
        }
    );
    out.push_str(&format!(
        "  received {}; created {}, updated {}, unchanged {}, rejected {}\n",
        timestamp(receipt.received_at.as_ref().map(|t| t.seconds)),
        receipt.created,
        receipt.updated,
        receipt.unchanged,
        receipt.rejected
    ));
    for rejection in &receipt.rejections {
        let record = if rejection.position < 0 {
            "whole message".to_owned()
        } else {
            format!("record {}", rejection.position)
        };
        out.push_str(&format!("  {record} {}: {}\n", rejection.field, rejection.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trust_proto::ingest::v1::RecordRejection;

    #[test]
    fn a_rejection_names_the_record_and_field() {
        let receipt = SubmissionReceipt {
            batch_id: "b1".into(),
            partner_code: "pct".into(),
            outcome: SubmissionOutcome::Rejected as i32,
            rejected: 1,
            rejections: vec![
                RecordRejection {
                    position: 0,
                    field: "indicator_code".into(),
                    reason: "NOPE is not in the catalogue".into(),
                },
                RecordRejection {
                    position: -1,
                    field: "message".into(),
                    reason: "not a protobuf ObservationBatch".into(),
                },
            ],
            ..Default::default()
        };
        let text = describe(&receipt);
        assert!(
            text.starts_with("receipt for batch b1 from pct: REJECTED (nothing stored)\n"),
            "{text}"
        );
        assert!(
            text.contains("  record 0 indicator_code: NOPE is not in the catalogue\n"),
            "{text}"
        );
        assert!(
            text.contains("  whole message message: not a protobuf ObservationBatch\n"),
            "{text}"
        );
        assert_eq!(print_receipt(&receipt), negative());
    }

    #[test]
    fn an_accepted_receipt_is_success() {
        let receipt = SubmissionReceipt {
            outcome: SubmissionOutcome::Accepted as i32,
            created: 1,
            ..Default::default()
        };
        assert!(describe(&receipt).contains("ACCEPTED (every record accepted)"));
        assert_eq!(print_receipt(&receipt), ExitCode::SUCCESS);
    }

    #[test]
    fn partner_codes_must_be_one_subject_token() {
        assert!(check_partner("pct").is_ok());
        assert!(check_partner("pct.other").is_err());
        assert!(check_partner("*").is_err());
        assert!(check_partner("").is_err());
    }
}
