//! Grouping into digests end to end (real Postgres, JetStream, SMTP, gRPC): the first alert to reach a
//! person is emailed at once; the ones that reach them within the digest window after it wait for the
//! window's end and go out together as one email; none is lost or sent twice.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::{NotificationsUnderTest, member, raised};
use trust_proto::notifications::v1 as notify;

#[tokio::test]
async fn alerts_reaching_one_person_within_the_window_go_out_as_one_digest() {
    let mut n = NotificationsUnderTest::start_with(&[("delivery.digest_window_secs", "3")]).await;
    n.client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![member("perf-lead", &["performance_lead"], &[])],
            responsibilities: vec![notify::Responsibility {
                staff_code: "perf-lead".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("directory");
    let lineage = ["CLUSTER_E1", "AREA_EAST", "LEEDS"];
    let first = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    n.publish(
        "ingest.escalation.raised",
        "d-0",
        raised(first, "occ-0", &lineage).encode_to_vec(),
    )
    .await;
    let alone = eventually(Duration::from_secs(15), "the first email", || async {
        let messages = n.smtp.messages();
        (messages.len() == 1).then(|| messages[0].clone())
    })
    .await;
    assert!(
        !alone.contains("[Digest]"),
        "the first of a burst goes alone and at once: {alone}"
    );

    // A storm: three more alerts for the same person within the window.
    let storm: Vec<String> = (1..=3)
        .map(|i| format!("ingest/target-breach/IND_{i}/CLUSTER_E1"))
        .collect();
    for (i, key) in storm.iter().enumerate() {
        n.publish(
            "ingest.escalation.raised",
            &format!("d-{}", i + 1),
            raised(key, &format!("occ-{}", i + 1), &lineage).encode_to_vec(),
        )
        .await;
    }
    let deliveries = eventually(Duration::from_secs(20), "every delivery sent", || async {
        let list = trust_e2e::notifications::all_deliveries(&n.client).await;
        (list.len() == 4 && list.iter().all(|d| d.state == notify::DeliveryState::Sent as i32))
            .then_some(list)
    })
    .await;
    let messages = n.smtp.messages();
    assert_eq!(messages.len(), 2, "one alone, then one digest of three");
    let digest = messages
        .iter()
        .find(|m| m.contains("[Digest]"))
        .expect("a digest email");
    let text = trust_e2e::smtp::decode_quoted_printable(digest);
    assert!(text.contains("3 alerts for you"), "{text}");
    for key in &storm {
        assert!(text.contains(key.as_str()), "the digest names {key}: {text}");
    }
    let in_digest: Vec<&notify::Delivery> = deliveries.iter().filter(|d| !d.digest_id.is_empty()).collect();
    assert_eq!(in_digest.len(), 3, "{deliveries:?}");
    assert!(
        in_digest.iter().all(|d| d.digest_id == in_digest[0].digest_id),
        "one digest carried all three"
    );
    n.finish().await;
}
