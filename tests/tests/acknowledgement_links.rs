//! One-use signed acknowledgement links end to end (real Postgres, JetStream, SMTP sink, gRPC, and HTTP
//! over a socket): the link in a received email shows the alert on GET without acknowledging it, and
//! acknowledges it once on POST as the person emailed, which stops the ladder; a second use is 410, a
//! tampered token 403, an expired one 410, and a link to an alert since resolved or fired again changes
//! nothing; two clicks at once acknowledge once. The service will not start with links on and no proper
//! secret.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::{NotificationsUnderTest, TEST_LINK_SECRET, level, member};
use trust_e2e::smtp::mime_parts;
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;

fn raised(key: &str, occurrence: &str, locality: &str) -> alerting::EscalationRaised {
    alerting::EscalationRaised {
        dedup_key: key.into(),
        occurrence_id: occurrence.into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        severity: alerting::Severity::Critical as i32,
        summary: format!("{key} needs attention"),
        subject: Some(alerting::escalation_raised::Subject::Indicator(
            alerting::IndicatorBreach {
                indicator_code: "NEET_16_18".into(),
                indicator_name: "NEET 16-18".into(),
                locality_code: locality.into(),
                locality_name: locality.into(),
                locality_lineage: vec![locality.into(), "CITY".into()],
                period_label: "2026-Q2".into(),
                value: 9.4,
                target: 8.0,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn resolved(key: &str, occurrence: &str) -> alerting::EscalationResolved {
    alerting::EscalationResolved {
        dedup_key: key.into(),
        occurrence_id: occurrence.into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        summary: "recovered".into(),
        ..Default::default()
    }
}

/// The acknowledgement link in the text part of the `nth` email (oldest first) sent to `address`.
async fn link_in_email(n: &NotificationsUnderTest, address: &str, nth: usize) -> String {
    eventually(Duration::from_secs(15), "the email with its link", || {
        let mut messages: Vec<String> = n
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {address}")))
            .collect();
        async move {
            // Message-IDs are the deliveries' ids (UUIDv7, in time order): the order they were queued.
            messages.sort_by_key(|m| {
                m.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                    .map(str::to_owned)
            });
            let raw = messages.get(nth)?;
            let parts = mime_parts(raw);
            let text = parts.iter().find(|p| p.content_type.starts_with("text/plain"))?;
            text.body
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/ack/"))
                .map(str::to_owned)
        }
    })
    .await
}

/// (status, page) of a GET or POST.
async fn call(method: reqwest::Method, url: &str) -> (u16, String) {
    let response = trust_e2e::http_client()
        .request(method, url)
        .send()
        .await
        .expect("the links listener answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a page"))
}

async fn get(url: &str) -> (u16, String) {
    call(reqwest::Method::GET, url).await
}

async fn post(url: &str) -> (u16, String) {
    call(reqwest::Method::POST, url).await
}

/// The link with one character of its token's signature changed.
fn tampered(link: &str) -> String {
    let mut chars: Vec<char> = link.chars().collect();
    let at = chars.len() - 3;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn the_emailed_link_acknowledges_once_as_its_recipient_and_stops_the_ladder() {
    let n = NotificationsUnderTest::start().await;
    n.client
        .clone()
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("enabler-east", &["locality_enabler"], &["AREA_EAST"]),
                member("head", &["head_of_service"], &[]),
            ],
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    n.client
        .clone()
        .put_routing(notify::RoutingConfig {
            default_policy: "east".into(),
            routes: vec![],
            policies: vec![notify::EscalationPolicy {
                name: "east".into(),
                // Long enough for the email to arrive and be clicked on a loaded machine.
                levels: vec![
                    level(&["locality_enabler"], &[], "6s"),
                    level(&[], &["head"], "1h"),
                ],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            }],
        })
        .await
        .expect("routing");

    let key = "ingest/target-breach/NEET_16_18/AREA_EAST";
    n.publish(
        "ingest.escalation.raised",
        "l-1",
        raised(key, "occ-1", "AREA_EAST").encode_to_vec(),
    )
    .await;
    let link = link_in_email(&n, "enabler-east@example.org", 0).await;

    // A tampered token is refused, on GET and POST alike.
    let (status, page) = get(&tampered(&link)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not valid"), "{page}");
    assert_eq!(post(&tampered(&link)).await.0, 403);

    // GET (what a mail scanner does) shows the alert and a confirm button, and changes nothing.
    let (status, page) = get(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Acknowledge as enabler-east"), "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains(key), "names the alert: {page}");
    assert_eq!(n.alert(key).await.acknowledged_by, "", "GET does not acknowledge");

    // POST acknowledges as the person emailed.
    let (status, page) = post(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Acknowledged by enabler-east via email link"),
        "{page}"
    );
    let alert = n.alert(key).await;
    assert_eq!(alert.acknowledged_by, "enabler-east");
    assert!(alert.acknowledged_at.is_some());

    // Once only.
    let (status, page) = post(&link).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("already been used"), "{page}");
    assert_eq!(get(&link).await.0, 410);
    let metrics_addr = n.running.metrics_addr.expect("metrics served");
    let (_, metrics) = get(&format!("http://{metrics_addr}/metrics")).await;
    for counted in [
        r#"notifications_ack_link_requests_total{method="POST",status="200"}"#,
        r#"notifications_ack_link_requests_total{method="POST",status="410"}"#,
        r#"notifications_ack_link_requests_total{method="GET",status="403"}"#,
    ] {
        assert!(metrics.contains(counted), "{counted} in {metrics}");
    }

    // The ladder stopped: after the first level's wait, the head of service has not been told.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        n.deliveries(key).await,
        vec![("enabler-east".to_owned(), "raised".to_owned())],
        "no next level after the acknowledgement"
    );
    n.finish().await;
}

#[tokio::test]
async fn expired_resolved_and_superseded_links_change_nothing() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    let key = "ingest/target-breach/NEET_16_18/AREA_WEST";
    n.publish(
        "ingest.escalation.raised",
        "x-1",
        raised(key, "occ-1", "AREA_WEST").encode_to_vec(),
    )
    .await;
    let first = link_in_email(&n, "perf-lead@example.org", 0).await;

    // Properly signed for this very email, but expired.
    let delivery = trust_e2e::notifications::await_all_sent(&n.client, 1, Duration::from_secs(15))
        .await
        .remove(0);
    let base = first.split("/ack/").next().expect("a base URL");
    let signer =
        notifications::ack_link::LinkSigner::new(TEST_LINK_SECRET.as_bytes(), base, time::Duration::hours(1))
            .expect("signer");
    let delivery_id: uuid::Uuid = delivery.id.parse().expect("a uuid");
    let expired = signer.link(
        delivery_id,
        time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
    );
    let (status, page) = post(&expired).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    // The same email's link signed to last: accepted as genuine (GET only; nothing changes).
    let fresh = signer.link(
        delivery_id,
        time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
    );
    assert_eq!(get(&fresh).await.0, 200);

    // Resolved since: nothing to acknowledge.
    n.publish(
        "ingest.escalation.resolved",
        "x-2",
        resolved(key, "occ-1").encode_to_vec(),
    )
    .await;
    n.await_deliveries(key, 2).await;
    let (status, page) = post(&first).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already been resolved"), "{page}");
    assert_eq!(n.alert(key).await.acknowledged_by, "");

    // Fired again: the old email's link does not acknowledge the new occurrence; the new email's does.
    n.publish(
        "ingest.escalation.raised",
        "x-3",
        raised(key, "occ-2", "AREA_WEST").encode_to_vec(),
    )
    .await;
    n.await_deliveries(key, 3).await;
    let (status, page) = post(&first).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("fired again"), "{page}");
    assert_eq!(n.alert(key).await.acknowledged_by, "");
    // The resolution email carries no link, so the newest raise's is the second with one.
    let second = link_in_email(&n, "perf-lead@example.org", 2).await;
    assert_ne!(second, first);
    // Two clicks at once: one acknowledges, the other finds the link used.
    let (one, other) = tokio::join!(post(&second), post(&second));
    let mut statuses = [one.0, other.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410], "{one:?} {other:?}");
    assert_eq!(n.alert(key).await.acknowledged_by, "perf-lead");
    n.finish().await;
}

#[tokio::test]
async fn links_on_without_a_proper_secret_refuse_to_start() {
    for secret in ["", "too short"] {
        let config: notifications::NotificationsConfig =
            trust_runtime::ConfigLoader::new(notifications::DEFAULTS)
                .without_environment()
                .set("links.secret", secret)
                .load()
                .expect("config");
        let Err(err) = notifications::start(config, tokio_util::sync::CancellationToken::new()).await else {
            panic!("started with links.secret {secret:?}");
        };
        let message = err.to_string();
        assert!(message.contains("links.secret"), "{message}");
        assert!(message.contains("at least 32"), "{message}");
    }
}
