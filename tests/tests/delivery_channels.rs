//! Channels end to end (real Postgres, JetStream, SMTP, an HTTP receiver the test starts, gRPC): a webhook
//! level posts signed JSON and a receiver's "try later" is honoured; a refused post falls back to the
//! level's next channel, and when none is left the next level is told at once; an email the relay could
//! not take is retried until it can.

use std::time::Duration;

use prost::Message;
use trust_e2e::notifications::{NotificationsUnderTest, level, member, raised, start_notifications_with};
use trust_e2e::smtp::SmtpSink;
use trust_e2e::webhook_receiver::{Answer, WebhookReceiver};
use trust_e2e::{TestEnv, eventually, free_port};
use trust_proto::notifications::v1 as notify;

const SECRET: &str = "a-test-secret-of-32-bytes-length";
const LINEAGE: &[&str] = &["CLUSTER_E1", "AREA_EAST", "LEEDS"];

fn policy(levels: Vec<notify::EscalationLevel>) -> notify::RoutingConfig {
    notify::RoutingConfig {
        default_policy: "case".into(),
        routes: vec![],
        policies: vec![notify::EscalationPolicy {
            name: "case".into(),
            levels,
            repeat: "1h".into(),
            acknowledgement_timeout: "1h".into(),
            flap_hold: String::new(),
        }],
    }
}

fn webhook_level(people: &[&str], fallback: &[notify::Channel]) -> notify::EscalationLevel {
    notify::EscalationLevel {
        channel: notify::Channel::Webhook.into(),
        webhook: "case_system".into(),
        fallback: fallback.iter().map(|c| (*c).into()).collect(),
        ..level(&[], people, "1h")
    }
}

async fn with_receiver(receiver: &WebhookReceiver) -> NotificationsUnderTest {
    let mut n = NotificationsUnderTest::start_with(&[
        ("webhooks.case_system.url", &receiver.url),
        ("webhooks.case_system.secret", SECRET),
        ("delivery.retry_base_ms", "100"),
        ("delivery.max_attempts", "3"),
    ])
    .await;
    n.client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("caseworker", &["locality_enabler"], &[]),
                member("head", &["head_of_service"], &[]),
            ],
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    n
}

#[tokio::test]
async fn a_webhook_level_posts_signed_json_and_waits_as_long_as_the_receiver_asks() {
    let receiver = WebhookReceiver::start(
        &[Answer {
            status: 503,
            retry_after: Some("2"),
        }],
        Answer::OK,
    )
    .await;
    let n = with_receiver(&receiver).await;
    n.client
        .clone()
        .put_routing(policy(vec![webhook_level(&["caseworker"], &[])]))
        .await
        .expect("routing");
    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    n.publish(
        "ingest.escalation.raised",
        "w-1",
        raised(key, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;

    let delivered = n
        .await_delivery_records(key, "the post delivered", |list| {
            list.iter().any(|d| d.state == notify::DeliveryState::Sent as i32)
        })
        .await;
    assert_eq!(
        delivered.len(),
        1,
        "one delivery, retried in place: {delivered:?}"
    );
    let delivery = &delivered[0];
    assert_eq!(delivery.channel, notify::Channel::Webhook as i32);
    assert_eq!(delivery.webhook, "case_system");
    assert_eq!(delivery.attempts, 2);

    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "refused once, then accepted");
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(1_900),
        "the receiver asked for 2 s (the backoff alone is 100 ms); retried after {waited:?}"
    );
    for post in &posts {
        assert_eq!(
            post.id, delivery.id,
            "the same id on every retry, so a receiver can drop repeats"
        );
        let timestamp: i64 = post.timestamp.parse().expect("a Unix timestamp");
        let id = uuid::Uuid::parse_str(&post.id).expect("a uuid");
        assert_eq!(
            post.signature,
            notifications::webhook::signature(SECRET.as_bytes(), id, timestamp, &post.body),
            "signed over id, time and body with the configured secret"
        );
        let body = post.json();
        assert_eq!(body["dedup_key"], key);
        assert_eq!(body["event"], "raised");
        assert_eq!(body["recipient"]["staff_code"], "caseworker");
        assert_eq!(body["indicator"]["locality_code"], "CLUSTER_E1");
    }
    assert!(n.smtp.messages().is_empty(), "a webhook level sends no email");
    receiver.stop();
    n.finish().await;
}

#[tokio::test]
async fn a_refused_post_falls_back_to_the_levels_next_channel() {
    let receiver = WebhookReceiver::start(
        &[],
        Answer {
            status: 410,
            retry_after: None,
        },
    )
    .await;
    let n = with_receiver(&receiver).await;
    n.client
        .clone()
        .put_routing(policy(vec![webhook_level(
            &["caseworker"],
            &[notify::Channel::Email],
        )]))
        .await
        .expect("routing");
    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    n.publish(
        "ingest.escalation.raised",
        "f-1",
        raised(key, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;

    let list = n
        .await_delivery_records(key, "the fallback email sent", |list| {
            list.iter().any(|d| {
                d.channel == notify::Channel::Email as i32 && d.state == notify::DeliveryState::Sent as i32
            })
        })
        .await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].channel, notify::Channel::Webhook as i32);
    assert_eq!(list[0].state, notify::DeliveryState::Failed as i32);
    assert_eq!(list[0].attempts, 1, "a 410 is not retried");
    assert!(list[0].last_error.contains("410"), "{}", list[0].last_error);
    assert_eq!(
        (list[1].staff_code.as_str(), list[1].email.as_str()),
        ("caseworker", "caseworker@example.org")
    );
    assert_eq!(receiver.posts().len(), 1);
    let emails = n.smtp.messages();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].contains("To: caseworker@example.org"), "{}", emails[0]);

    let history = n
        .client
        .clone()
        .get_alert(notify::GetAlertRequest {
            dedup_key: key.into(),
        })
        .await
        .expect("alert")
        .into_inner()
        .history;
    assert!(
        history.iter().any(
            |h| h.what == "delivery-failed" && h.detail.contains("webhook to caseworker failed for good")
        ),
        "{history:?}"
    );
    receiver.stop();
    n.finish().await;
}

#[tokio::test]
async fn when_every_channel_fails_the_next_level_is_told_at_once() {
    let receiver = WebhookReceiver::start(
        &[],
        Answer {
            status: 400,
            retry_after: None,
        },
    )
    .await;
    let n = with_receiver(&receiver).await;
    n.client
        .clone()
        .put_routing(policy(vec![
            webhook_level(&["caseworker"], &[]),
            // Told by email an hour later if nobody acknowledges, or at once if nobody could be reached.
            level(&[], &["head"], "1h"),
        ]))
        .await
        .expect("routing");
    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    n.publish(
        "ingest.escalation.raised",
        "n-1",
        raised(key, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;

    let list = n
        .await_delivery_records(key, "the next level told", |list| {
            list.iter()
                .any(|d| d.staff_code == "head" && d.state == notify::DeliveryState::Sent as i32)
        })
        .await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].state, notify::DeliveryState::Failed as i32);
    assert!(list[1].step.starts_with("escalated/1/"), "{}", list[1].step);
    let emails = n.smtp.messages();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].contains("To: head@example.org"), "{}", emails[0]);
    receiver.stop();
    n.finish().await;
}

#[tokio::test]
async fn an_email_the_relay_could_not_take_is_retried_until_it_can() {
    let env = TestEnv::new().await;
    // Nothing listens on this port yet: connection refused is a transient failure.
    let port = free_port();
    let running = start_notifications_with(&env, port, &[("delivery.retry_base_ms", "200")]).await;
    let mut client =
        notify::notifications_client::NotificationsClient::connect(format!("http://{}", running.grpc_addr))
            .await
            .expect("connect");
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![member("perf-lead", &["performance_lead"], &[])],
            responsibilities: vec![notify::Responsibility {
                staff_code: "perf-lead".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("directory");
    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    trust_e2e::notifications::publish_escalation(
        &env,
        "ingest.escalation.raised",
        "r-1",
        raised(key, "occ-1", LINEAGE).encode_to_vec(),
    )
    .await;
    let failed_once = eventually(Duration::from_secs(20), "a failed attempt", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_deliveries(notify::ListDeliveriesRequest {
                    dedup_key: key.into(),
                    limit: 0,
                })
                .await
                .ok()?
                .into_inner()
                .deliveries;
            list.into_iter().find(|d| d.attempts >= 1)
        }
    })
    .await;
    assert_eq!(
        failed_once.state,
        notify::DeliveryState::Pending as i32,
        "transient: still to be sent"
    );
    assert!(!failed_once.last_error.is_empty());

    let smtp = SmtpSink::start_on(port).await;
    let sent = eventually(Duration::from_secs(30), "the email sent on a retry", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_deliveries(notify::ListDeliveriesRequest {
                    dedup_key: key.into(),
                    limit: 0,
                })
                .await
                .ok()?
                .into_inner()
                .deliveries;
            list.into_iter()
                .find(|d| d.state == notify::DeliveryState::Sent as i32)
        }
    })
    .await;
    assert!(sent.attempts >= 2, "sent on attempt {}", sent.attempts);
    let emails = smtp.messages();
    assert_eq!(emails.len(), 1, "one email, however many attempts");
    assert!(emails[0].contains("To: perf-lead@example.org"));
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}
