//! The ladder's clocks end to end (real Postgres, JetStream, SMTP, gRPC): an acknowledged alert still
//! unresolved after the acknowledgement timeout is told again; a re-fire soon after a resolve (flapping) is
//! held, told only if still firing when the hold ends, and a flap that clears within the hold tells
//! nobody; escalation steps held up past the stall threshold raise an alert about the scheduler itself,
//! resolved when they are on time again.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::{NotificationsUnderTest, level, member, raised, resolved};
use trust_proto::notifications::v1 as notify;

const KEY: &str = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
const LINEAGE: &[&str] = &["CLUSTER_E1", "AREA_EAST", "LEEDS"];

async fn start(policy: notify::EscalationPolicy, settings: &[(&str, &str)]) -> NotificationsUnderTest {
    let mut n = NotificationsUnderTest::start_with(settings).await;
    n.client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("duty", &["locality_enabler"], &[]),
                member("head", &["head_of_service"], &[]),
            ],
            responsibilities: vec![notify::Responsibility {
                staff_code: "duty".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("directory");
    n.client
        .put_routing(notify::RoutingConfig {
            default_policy: policy.name.clone(),
            routes: vec![],
            policies: vec![policy],
        })
        .await
        .expect("routing");
    n
}

fn policy(
    levels: Vec<notify::EscalationLevel>,
    acknowledgement_timeout: &str,
    flap_hold: &str,
) -> notify::EscalationPolicy {
    notify::EscalationPolicy {
        name: "duty".into(),
        levels,
        repeat: "1h".into(),
        acknowledgement_timeout: acknowledgement_timeout.into(),
        flap_hold: flap_hold.into(),
    }
}

async fn steps(n: &NotificationsUnderTest) -> Vec<(String, String, String)> {
    n.delivery_records(KEY)
        .await
        .into_iter()
        .map(|d| {
            (
                d.staff_code,
                d.event,
                d.step.split('/').next().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn step(staff: &str, event: &str, reason: &str) -> (String, String, String) {
    (staff.into(), event.into(), reason.into())
}

#[tokio::test]
async fn an_acknowledged_alert_still_unresolved_after_the_timeout_is_told_again() {
    let n = start(policy(vec![level(&[], &["duty"], "1h")], "3s", ""), &[]).await;
    n.publish(
        "ingest.escalation.raised",
        "a-1",
        raised(KEY, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;
    n.await_deliveries(KEY, 1).await;
    n.client
        .clone()
        .acknowledge_alert(notify::AcknowledgeAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            note: "on it".into(),
        })
        .await
        .expect("acknowledge");
    let told = eventually(
        Duration::from_secs(20),
        "told again after the timeout",
        || async { Some(steps(&n).await).filter(|s| s.len() >= 2) },
    )
    .await;
    assert_eq!(
        told,
        vec![
            step("duty", "raised", ""),
            step("duty", "raised", "acknowledgement-expired")
        ]
    );
    let emails = eventually(Duration::from_secs(10), "both emails", || async {
        let messages = n.smtp.messages();
        (messages.len() == 2).then_some(messages)
    })
    .await;
    assert!(
        emails.iter().any(|m| trust_e2e::smtp::decode_quoted_printable(m)
            .contains("acknowledged but is still unresolved after the acknowledgement timeout")),
        "the second email says why it came: {emails:?}"
    );
    n.finish().await;
}

#[tokio::test]
async fn a_flapping_alert_is_held_and_told_only_if_still_firing_when_the_hold_ends() {
    let n = start(policy(vec![level(&[], &["duty"], "1h")], "1h", "3s"), &[]).await;
    n.publish(
        "ingest.escalation.raised",
        "f-1",
        raised(KEY, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;
    n.await_deliveries(KEY, 1).await;
    n.publish(
        "ingest.escalation.resolved",
        "f-2",
        resolved(KEY, "occ-1").encode_to_vec(),
    )
    .await;
    n.await_deliveries(KEY, 2).await;

    // Fires again at once, and clears within the hold: nobody hears of occ-2 at all.
    n.publish(
        "ingest.escalation.raised",
        "f-3",
        raised(KEY, "occ-2", LINEAGE).encode_to_vec(),
    )
    .await;
    n.publish(
        "ingest.escalation.resolved",
        "f-4",
        resolved(KEY, "occ-2").encode_to_vec(),
    )
    .await;
    // Fires again, still within the hold of occ-2's resolve: held, then told once the hold has passed.
    n.publish(
        "ingest.escalation.raised",
        "f-5",
        raised(KEY, "occ-3", LINEAGE).encode_to_vec(),
    )
    .await;
    eventually(Duration::from_secs(15), "occ-3 recorded", || async {
        let alert = n.alert(KEY).await;
        (alert.occurrence_id == "occ-3").then_some(())
    })
    .await;
    assert_eq!(
        steps(&n).await.len(),
        2,
        "held: nobody told of occ-2 or (yet) occ-3"
    );
    let told = eventually(Duration::from_secs(20), "occ-3 told after the hold", || async {
        Some(steps(&n).await).filter(|s| s.len() >= 3)
    })
    .await;
    assert_eq!(
        told,
        vec![
            step("duty", "raised", ""),
            step("duty", "resolved", ""),
            step("duty", "raised", "fired"),
        ]
    );
    let occurrences: Vec<String> = n
        .delivery_records(KEY)
        .await
        .into_iter()
        .map(|d| d.occurrence_id)
        .collect();
    assert!(!occurrences.contains(&"occ-2".to_owned()), "{occurrences:?}");
    n.finish().await;
}

#[tokio::test]
async fn overdue_escalation_steps_raise_an_alert_about_the_scheduler_itself() {
    let n = start(
        policy(
            vec![level(&[], &["duty"], "1s"), level(&[], &["head"], "1h")],
            "1h",
            "",
        ),
        &[("escalation.stall_alert_secs", "2")],
    )
    .await;
    n.publish(
        "ingest.escalation.raised",
        "s-1",
        raised(KEY, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;
    n.await_deliveries(KEY, 1).await;

    // Something holds the ladder rows (a stuck transaction): the scheduler skips them and the step to
    // "head" falls behind.
    let pool = n.env.pool("trust_notifications", "notifications").await;
    let mut stuck = pool.begin().await.expect("begin");
    sqlx::query("SELECT dedup_key FROM alert_ladder FOR UPDATE")
        .fetch_all(&mut *stuck)
        .await
        .expect("lock the ladders");
    let stalled = notifications::scheduler_watchdog::STALLED_KEY;
    let alarm = eventually(
        Duration::from_secs(20),
        "the alert about the scheduler",
        || async {
            let list = n
                .client
                .clone()
                .list_deliveries(notify::ListDeliveriesRequest {
                    dedup_key: stalled.into(),
                    limit: 0,
                })
                .await
                .ok()?
                .into_inner()
                .deliveries;
            list.into_iter().find(|d| d.event == "raised")
        },
    )
    .await;
    assert_eq!(alarm.staff_code, "duty", "routed like any other alert");
    assert!(
        steps(&n).await.iter().all(|(staff, _, _)| staff != "head"),
        "the held step has not gone"
    );

    // Released: the step goes, and the alert about the scheduler clears.
    stuck.rollback().await.expect("release");
    eventually(Duration::from_secs(20), "the held step sent", || async {
        steps(&n)
            .await
            .iter()
            .any(|(staff, _, _)| staff == "head")
            .then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "the scheduler alert resolved",
        || async {
            let alert = n.alert(stalled).await;
            (alert.state == notify::AlertState::Resolved as i32).then_some(())
        },
    )
    .await;
    pool.close().await;
    n.finish().await;
}
