//! Partner submissions to indicator ingest over the bus and gRPC: receipts for good and bad input, and
//! nothing stored from a refused record.

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use trust_e2e::eventually;
use trust_e2e::fixtures::{EAST, NEET, batch, observation, quarter};
use trust_proto::ingest::v1 as pb;

use trust_e2e::IngestUnderTest as Ingest;

/// Publishing on the bus as a partner, as the tests here need it.
trait PublishAsPartner {
    async fn publish_and_receive(
        &self,
        partner: &str,
        payload: Vec<u8>,
        msg_id: &str,
    ) -> pb::SubmissionReceipt;
}

impl PublishAsPartner for Ingest {
    /// Publish raw bytes as `partner` and wait for the receipt on `ingest.receipts.<partner>`.
    async fn publish_and_receive(
        &self,
        partner: &str,
        payload: Vec<u8>,
        msg_id: &str,
    ) -> pb::SubmissionReceipt {
        let nats = self.env.nats().await;
        let mut receipts = nats
            .subscribe(self.env.subject(&format!("ingest.receipts.{partner}")))
            .await
            .expect("subscribe");
        let js = async_nats::jetstream::new(nats.clone());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        headers.insert("content-type", "application/protobuf");
        js.publish_with_headers(
            self.env.subject(&format!("ingest.submit.{partner}")),
            headers,
            payload.into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
        let message = tokio::time::timeout(Duration::from_secs(20), receipts.next())
            .await
            .expect("receipt within 20s")
            .expect("receipt");
        pb::SubmissionReceipt::decode(message.payload).expect("decode receipt")
    }
}

#[tokio::test]
async fn a_good_batch_on_the_bus_is_stored_and_receipted() {
    let mut ingest = Ingest::start().await;
    let good = batch("b-good", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]);
    let receipt = ingest
        .publish_and_receive("connexions", good.encode_to_vec(), "b-good")
        .await;
    assert_eq!(
        receipt.outcome,
        pb::SubmissionOutcome::Accepted as i32,
        "{receipt:?}"
    );
    assert_eq!((receipt.created, receipt.rejected), (1, 0));
    let stored = ingest.stored(NEET).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].observation.as_ref().map(|o| o.value), Some(7.1));
    ingest.finish().await;
}

#[tokio::test]
async fn malformed_bytes_get_a_rejection_receipt_and_change_nothing() {
    let mut ingest = Ingest::start().await;
    let receipt = ingest
        .publish_and_receive("connexions", b"\xff\xff\xffnot protobuf".to_vec(), "garbage-1")
        .await;
    assert_eq!(receipt.outcome, pb::SubmissionOutcome::Rejected as i32);
    assert_eq!(receipt.rejections.len(), 1);
    let rejection = &receipt.rejections[0];
    assert_eq!((rejection.position, rejection.field.as_str()), (-1, "message"));
    assert!(
        rejection
            .reason
            .contains("not a trust.ingest.v1.ObservationBatch"),
        "{}",
        rejection.reason
    );
    assert!(ingest.stored(NEET).await.is_empty());
    ingest.finish().await;
}

#[tokio::test]
async fn an_unknown_indicator_is_rejected_by_position_and_field_and_the_batch_is_not_stored() {
    let mut ingest = Ingest::start().await;
    let mixed = batch(
        "b-mixed",
        vec![
            observation(NEET, EAST, quarter(2026, 1), 7.1),
            observation("NOT_AN_INDICATOR", EAST, quarter(2026, 1), 3.0),
        ],
    );
    let receipt = ingest
        .publish_and_receive("connexions", mixed.encode_to_vec(), "b-mixed")
        .await;
    assert_eq!(
        receipt.outcome,
        pb::SubmissionOutcome::Rejected as i32,
        "atomic by default"
    );
    assert_eq!(receipt.created, 0);
    let rejection = &receipt.rejections[0];
    assert_eq!(
        (rejection.position, rejection.field.as_str()),
        (1, "indicator_code")
    );
    assert!(
        rejection
            .reason
            .contains("unknown indicator \"NOT_AN_INDICATOR\""),
        "{}",
        rejection.reason
    );
    assert!(
        ingest.stored(NEET).await.is_empty(),
        "atomic batch stored nothing"
    );
    ingest.finish().await;
}

#[tokio::test]
async fn a_batch_naming_another_partner_is_refused() {
    let mut ingest = Ingest::start().await;
    let mut forged = batch("b-forged", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]);
    forged.partner_code = "police".into();
    let receipt = ingest
        .publish_and_receive("connexions", forged.encode_to_vec(), "b-forged")
        .await;
    assert_eq!(receipt.outcome, pb::SubmissionOutcome::Rejected as i32);
    assert_eq!(receipt.rejections[0].field, "partner_code");
    assert!(receipt.rejections[0].reason.contains("submits only its own data"));
    // And a partner the protocol does not allow for this indicator is refused record by record.
    let not_permitted = batch("b-police", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]);
    let receipt = ingest
        .publish_and_receive("police", not_permitted.encode_to_vec(), "b-police")
        .await;
    assert_eq!(receipt.outcome, pb::SubmissionOutcome::Rejected as i32);
    assert!(
        receipt.rejections[0].reason.contains("not permitted"),
        "{:?}",
        receipt.rejections
    );
    assert!(ingest.stored(NEET).await.is_empty());
    ingest.finish().await;
}

#[tokio::test]
async fn grpc_submission_partial_mode_dry_run_and_duplicate() {
    let mut ingest = Ingest::start().await;
    let mut connexions = ingest.as_partner("connexions").await;
    let mut partial = batch(
        "g-1",
        vec![
            observation(NEET, EAST, quarter(2026, 1), 7.1),
            observation(NEET, "NOWHERE", quarter(2026, 1), 7.1),
        ],
    );
    partial.partner_code = "connexions".into();
    partial.mode = pb::SubmissionMode::Partial as i32;

    let mut dry = partial.clone();
    dry.batch_id = "g-dry".into();
    dry.dry_run = true;
    let receipt = connexions
        .submit_observations(dry)
        .await
        .expect("dry run")
        .into_inner();
    assert!(receipt.dry_run);
    assert_eq!((receipt.created, receipt.rejected), (1, 1));
    assert!(ingest.stored(NEET).await.is_empty(), "a dry run stores nothing");

    let receipt = connexions
        .submit_observations(partial.clone())
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(receipt.outcome, pb::SubmissionOutcome::PartiallyAccepted as i32);
    assert_eq!((receipt.created, receipt.rejected), (1, 1));
    assert_eq!(receipt.rejections[0].field, "locality_code");

    let again = connexions
        .submit_observations(partial)
        .await
        .expect("resubmit")
        .into_inner();
    assert_eq!(again.outcome, pb::SubmissionOutcome::Duplicate as i32);
    assert_eq!((again.created, again.updated), (0, 0));
    assert_eq!(ingest.stored(NEET).await.len(), 1);

    // The ledger keeps the original receipt.
    let ledger = ingest
        .client
        .get_receipt(pb::GetReceiptRequest {
            partner_code: "connexions".into(),
            batch_id: "g-1".into(),
        })
        .await
        .expect("ledger")
        .into_inner();
    assert_eq!(ledger.outcome, pb::SubmissionOutcome::PartiallyAccepted as i32);

    // A correction is a new revision.
    let mut correction = batch("g-2", vec![observation(NEET, EAST, quarter(2026, 1), 6.4)]);
    correction.partner_code = "connexions".into();
    let refused = connexions
        .submit_observations(correction.clone())
        .await
        .expect("correct")
        .into_inner();
    assert_eq!(
        refused.rejections[0].field, "correction_reason",
        "a correction must say why"
    );
    correction.batch_id = "g-3".into();
    correction.submitted_by = "Connexions data officer".into();
    correction.observations[0].correction_reason = "late destinations returns".into();
    let receipt = connexions
        .submit_observations(correction)
        .await
        .expect("correct")
        .into_inner();
    assert_eq!(receipt.updated, 1);
    let stored = eventually(Duration::from_secs(5), "corrected value", || {
        let mut client = ingest.client.clone();
        async move {
            let list = client
                .list_observations(pb::ListObservationsRequest {
                    indicator_code: NEET.into(),
                    locality_code: EAST.into(),
                })
                .await
                .ok()?
                .into_inner()
                .observations;
            list.into_iter().find(|o| o.revision == 2)
        }
    })
    .await;
    assert_eq!(stored.observation.map(|o| o.value), Some(6.4));
    ingest.finish().await;
}

#[tokio::test]
async fn the_same_period_twice_in_one_batch_is_refused() {
    let mut ingest = Ingest::start().await;
    let mut connexions = ingest.as_partner("connexions").await;
    let mut twice = batch(
        "b-twice",
        vec![
            observation(NEET, EAST, quarter(2026, 1), 7.1),
            observation(NEET, EAST, quarter(2026, 1), 7.3),
        ],
    );
    twice.partner_code = "connexions".into();
    let receipt = connexions
        .submit_observations(twice)
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(receipt.outcome, pb::SubmissionOutcome::Rejected as i32);
    let rejection = &receipt.rejections[0];
    assert_eq!((rejection.position, rejection.field.as_str()), (1, "period"));
    assert!(
        rejection.reason.contains("appears earlier in this batch"),
        "{}",
        rejection.reason
    );
    assert!(ingest.stored(NEET).await.is_empty());
    ingest.finish().await;
}
