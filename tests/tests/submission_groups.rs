//! Submissions that arrive together are applied together (one transaction, one set-based evaluation), with
//! the receipts and stored values they would have had one by one: a repeated batch id is a duplicate, a
//! value repeated from an earlier submission of the group is judged against it, and a refused submission
//! refuses only itself.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use trust_e2e::fixtures::{EAST, NEET, batch, observation, quarter};
use trust_e2e::{TestEnv, start_ingest};
use trust_proto::ingest::v1 as pb;

/// Publish `batch` as connexions with its own message id, without waiting for anything but JetStream.
async fn publish(env: &TestEnv, message_id: &str, batch: &pb::ObservationBatch) {
    let js = async_nats::jetstream::new(env.nats().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    js.publish_with_headers(
        env.subject("ingest.submit.connexions"),
        headers,
        batch.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
}

#[tokio::test]
async fn submissions_waiting_together_get_the_receipts_they_would_get_one_by_one() {
    let env = TestEnv::new().await;
    // Start once to create the streams, the consumer and the catalogue; stop, so that every submission
    // below is waiting in the stream when the service starts again and pulls them as one group.
    let (running, _) = start_ingest(&env).await;
    running.stop().await.expect("stop");

    let nats = env.nats().await;
    let mut receipts = nats
        .subscribe(env.subject("ingest.receipts.connexions"))
        .await
        .expect("subscribe");
    let first = batch("g-1", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]);
    publish(&env, "m-1", &first).await;
    publish(
        &env,
        "m-2",
        &batch("g-2", vec![observation(NEET, EAST, quarter(2026, 2), 7.4)]),
    )
    .await;
    // The same batch id again, under another message id: a duplicate of g-1.
    publish(&env, "m-3", &first).await;
    // Changes g-1's value without a reason: refused because g-1 came first.
    publish(
        &env,
        "m-4",
        &batch("g-4", vec![observation(NEET, EAST, quarter(2026, 1), 8.0)]),
    )
    .await;
    // Atomic with one unknown indicator: nothing of it is stored.
    publish(
        &env,
        "m-5",
        &batch(
            "g-5",
            vec![
                observation(NEET, EAST, quarter(2026, 3), 9.9),
                observation("NO_SUCH_INDICATOR", EAST, quarter(2026, 3), 1.0),
            ],
        ),
    )
    .await;
    // Partial: the good record is kept.
    let mut partial = batch(
        "g-6",
        vec![
            observation(NEET, EAST, quarter(2026, 3), 7.0),
            observation(NEET, "NO_SUCH_PLACE", quarter(2026, 3), 1.0),
        ],
    );
    partial.mode = pb::SubmissionMode::Partial as i32;
    publish(&env, "m-6", &partial).await;

    // One worker: the six are applied in stream order (in one group, or in successive ones), which is what
    // "the receipts they would get one by one" means here. With the default two workers, a second group can
    // commit before the first (the order between concurrent groups is not kept), and g-6's value for
    // 2026-Q3 would then make g-5's a correction without a reason.
    let config: indicator_ingest::IngestConfig = env
        .loader(indicator_ingest::DEFAULTS, "trust_ingest")
        .set("consumer.workers", 1_i64)
        .load()
        .expect("ingest config");
    let running = indicator_ingest::start(config, tokio_util::sync::CancellationToken::new())
        .await
        .expect("restart indicator-ingest");

    let mut by_batch: HashMap<String, Vec<pb::SubmissionReceipt>> = HashMap::new();
    for _ in 0..6 {
        let message = tokio::time::timeout(Duration::from_secs(20), receipts.next())
            .await
            .expect("six receipts within 20s")
            .expect("receipt");
        let receipt = pb::SubmissionReceipt::decode(message.payload).expect("decode receipt");
        by_batch
            .entry(receipt.batch_id.clone())
            .or_default()
            .push(receipt);
    }
    let outcome = |r: &pb::SubmissionReceipt| {
        pb::SubmissionOutcome::try_from(r.outcome).unwrap_or(pb::SubmissionOutcome::Unspecified)
    };
    let g1 = &by_batch["g-1"];
    assert_eq!(g1.len(), 2, "the receipt and the duplicate's: {g1:?}");
    let mut g1_outcomes: Vec<_> = g1.iter().map(outcome).collect();
    g1_outcomes.sort_by_key(|o| *o as i32);
    assert_eq!(
        g1_outcomes,
        vec![pb::SubmissionOutcome::Accepted, pb::SubmissionOutcome::Duplicate],
        "{g1:?}"
    );
    let single = |id: &str| {
        let receipts = &by_batch[id];
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        receipts[0].clone()
    };
    let g2 = single("g-2");
    assert_eq!(
        (outcome(&g2), g2.created),
        (pb::SubmissionOutcome::Accepted, 1),
        "{g2:?}"
    );
    let g4 = single("g-4");
    assert_eq!(outcome(&g4), pb::SubmissionOutcome::Rejected, "{g4:?}");
    assert_eq!(g4.rejections[0].field, "correction_reason", "{g4:?}");
    assert!(g4.rejections[0].reason.contains("7.1"), "{g4:?}");
    let g5 = single("g-5");
    assert_eq!(
        (outcome(&g5), g5.created),
        (pb::SubmissionOutcome::Rejected, 0),
        "{g5:?}"
    );
    assert_eq!(g5.rejections[0].position, 1, "{g5:?}");
    let g6 = single("g-6");
    assert_eq!(
        (outcome(&g6), g6.created, g6.rejected),
        (pb::SubmissionOutcome::PartiallyAccepted, 1, 1),
        "{g6:?}"
    );

    let mut client = trust_e2e::operator_client(&env, &running).await;
    let stored = client
        .list_observations(pb::ListObservationsRequest {
            indicator_code: NEET.into(),
            locality_code: EAST.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .observations;
    let mut values: Vec<((i32, i32), f64, u32)> = stored
        .iter()
        .filter_map(|s| {
            let o = s.observation.as_ref()?;
            let period = o.period.as_ref()?;
            Some(((period.year, period.number), o.value, s.revision))
        })
        .collect();
    values.sort_by_key(|v| v.0);
    assert_eq!(
        values,
        vec![((2026, 1), 7.1, 1), ((2026, 2), 7.4, 1), ((2026, 3), 7.0, 1)]
    );
    running.stop().await.expect("clean stop");
    env.cleanup().await;
}
