//! Who hears of an escalation beyond the person responsible: the cover of someone away (and on along the
//! chain while covers are away too), recorded as covering for them, with the resolution going to whoever
//! was told; and the default route's owners, for an event that cannot be processed at all.

use std::time::Duration;

use prost::Message;
use trust_e2e::fixtures::{EAST, NEET};
use trust_e2e::notifications::{publish_escalation, start_notifications};
use trust_e2e::smtp::SmtpSink;
use trust_e2e::{TestEnv, eventually};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;

fn member(code: &str, email: &str, away: bool, cover: &str) -> notify::StaffMember {
    notify::StaffMember {
        code: code.into(),
        name: format!("{code} (test)"),
        email: email.into(),
        partner_code: "council".into(),
        roles: vec!["locality_enabler".into()],
        away,
        cover_staff_code: cover.into(),
        ..Default::default()
    }
}

/// The first email the sink received, decoded.
async fn first_email(smtp: &SmtpSink, what: &str) -> String {
    let email = eventually(Duration::from_secs(20), what, || {
        let messages = smtp.messages();
        async move { messages.into_iter().next() }
    })
    .await;
    trust_e2e::smtp::decode_quoted_printable(&email)
}

fn breach() -> alerting::IndicatorBreach {
    alerting::IndicatorBreach {
        indicator_code: NEET.into(),
        indicator_name: "NEET 16-18".into(),
        locality_code: EAST.into(),
        locality_name: "East Leeds".into(),
        period_label: "2026-Q2".into(),
        value: 9.4,
        target: 8.0,
        ..Default::default()
    }
}

#[tokio::test]
async fn an_escalation_for_an_away_person_goes_to_their_cover_and_its_resolution_too() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start_notifications(&env, &smtp).await;
    let mut client = NotificationsClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    // The East enabler is away; the deputy covering is away too; the head of service covers the deputy.
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("east-enabler", "enabler@example.org", true, "east-deputy"),
                member("east-deputy", "deputy@example.org", true, "head-of-service"),
                member("head-of-service", "head@example.org", false, ""),
            ],
            responsibilities: vec![notify::Responsibility {
                staff_code: "east-enabler".into(),
                indicator_code: NEET.into(),
                locality_code: EAST.into(),
            }],
        })
        .await
        .expect("directory");

    let key = format!("ingest/target-breach/{NEET}/{EAST}");
    let raised = alerting::EscalationRaised {
        dedup_key: key.clone(),
        occurrence_id: "occ-cover-1".into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        severity: alerting::Severity::Critical as i32,
        summary: "NEET in East Leeds needs attention".into(),
        subject: Some(alerting::escalation_raised::Subject::Indicator(breach())),
        ..Default::default()
    };
    publish_escalation(
        &env,
        "ingest.escalation.raised",
        "raise-1",
        raised.encode_to_vec(),
    )
    .await;
    let email = first_email(&smtp, "the email to the cover").await;
    assert!(email.contains("head@example.org"), "{email}");
    assert!(!email.contains("enabler@example.org") && !email.contains("deputy@example.org"));

    let list = |client: &mut NotificationsClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move {
            client
                .list_deliveries(notify::ListDeliveriesRequest::default())
                .await
                .expect("list")
                .into_inner()
                .deliveries
        }
    };
    let deliveries = list(&mut client).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].staff_code, "head-of-service");
    assert_eq!(deliveries[0].covering_for, "east-enabler");

    let resolved = alerting::EscalationResolved {
        dedup_key: key,
        occurrence_id: "occ-cover-1".into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        summary: "NEET in East Leeds has recovered".into(),
        subject: Some(alerting::escalation_resolved::Subject::Indicator(breach())),
        ..Default::default()
    };
    publish_escalation(
        &env,
        "ingest.escalation.resolved",
        "resolve-1",
        resolved.encode_to_vec(),
    )
    .await;
    let deliveries = eventually(Duration::from_secs(20), "the resolution's delivery", || {
        let mut client = client.clone();
        async move {
            let deliveries = list(&mut client).await;
            (deliveries.len() == 2).then_some(deliveries)
        }
    })
    .await;
    let resolution = deliveries
        .iter()
        .find(|d| d.event == "resolved")
        .expect("a resolution delivery");
    assert_eq!(
        resolution.staff_code, "head-of-service",
        "whoever was told hears it cleared"
    );
    // The alert is listed as resolved, with both deliveries of its occurrence.
    let alerts = client
        .list_alerts(notify::ListAlertsRequest::default())
        .await
        .expect("list alerts")
        .into_inner()
        .alerts;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].state, notify::AlertState::Resolved as i32);
    assert_eq!((alerts[0].deliveries, alerts[0].failed_deliveries), (2, 0));
    let firing = client
        .list_alerts(notify::ListAlertsRequest {
            state: notify::AlertState::Firing.into(),
            limit: 0,
        })
        .await
        .expect("list firing alerts")
        .into_inner()
        .alerts;
    assert!(firing.is_empty(), "{firing:?}");
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_event_that_cannot_be_decoded_is_parked_and_its_alert_reaches_the_default_route() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start_notifications(&env, &smtp).await;
    let mut client = NotificationsClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    // perf-lead holds the default responsibility (no indicator, no locality).
    client
        .put_staff_directory(trust_e2e::fixtures::directory())
        .await
        .expect("directory");

    publish_escalation(
        &env,
        "ingest.escalation.raised",
        "garbage-1",
        vec![0xff, 0x01, 0x02],
    )
    .await;

    let email = first_email(&smtp, "the alert about the parked event").await;
    assert!(
        email.contains("tom.price@example.org"),
        "to the default route's owner:\n{email}"
    );
    assert!(email.contains("could not be processed"), "{email}");
    assert!(email.contains("garbage-1"), "names the message:\n{email}");

    // And the event itself is parked with its reason.
    let pool = env.pool("trust_notifications", "notifications").await;
    let (consumer, error): (String, String) =
        sqlx::query_as("SELECT consumer, error FROM dead_letter WHERE message_id = 'garbage-1'")
            .fetch_one(&pool)
            .await
            .expect("a dead letter");
    assert_eq!(consumer, notifications::ESCALATIONS_CONSUMER.durable);
    assert!(error.contains("cannot decode"), "{error}");
    pool.close().await;
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}
