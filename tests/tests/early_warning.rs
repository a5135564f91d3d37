//! The early-warning path end to end, against the real Postgres, NATS JetStream and an SMTP server: a
//! partner publishes a breaching observation, indicator ingest raises an escalation, notifications emails
//! the member of staff responsible for that indicator and locality, and a second copy of the escalation
//! sends nothing more. All four services run and answer the gRPC health check as SERVING.

use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use trust_e2e::fixtures::{self, EAST, NEET, batch, observation, quarter};
use trust_e2e::smtp::{SmtpSink, decode_quoted_printable};
use trust_e2e::{TestEnv, eventually};
use trust_proto::commissioning::v1::commissioning_client::CommissioningClient;
use trust_proto::notifications::v1 as notify;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;
use trust_proto::safeguarding::v1::safeguarding_qa_client::SafeguardingQaClient;
use trust_runtime::RunningService;

struct Platform {
    ingest: RunningService,
    safeguarding: RunningService,
    commissioning: RunningService,
    notifications: RunningService,
}

async fn start_platform(env: &TestEnv, smtp_port: u16) -> Platform {
    let shutdown = CancellationToken::new;
    let ingest = indicator_ingest::start(env.config(indicator_ingest::DEFAULTS, "trust_ingest"), shutdown())
        .await
        .expect("indicator-ingest");
    let safeguarding = safeguarding_qa::start(
        env.config(safeguarding_qa::DEFAULTS, "trust_safeguarding"),
        shutdown(),
    )
    .await
    .expect("safeguarding-qa");
    let commissioning = commissioning::start(
        env.config(commissioning::DEFAULTS, "trust_commissioning"),
        shutdown(),
    )
    .await
    .expect("commissioning");
    let config: notifications::NotificationsConfig =
        trust_e2e::notifications::with_test_links(env.loader(notifications::DEFAULTS, "trust_notifications"))
            .set("smtp.host", "127.0.0.1")
            .set("smtp.port", i64::from(smtp_port))
            .set("smtp.tls", "none")
            .set("delivery.poll_interval_ms", 100_i64)
            .set("delivery.digest_window_secs", 0_i64)
            .load()
            .expect("notifications config");
    let notifications = notifications::start(config, shutdown())
        .await
        .expect("notifications");
    Platform {
        ingest,
        safeguarding,
        commissioning,
        notifications,
    }
}

fn url(service: &RunningService) -> String {
    format!("http://{}", service.grpc_addr)
}

#[tokio::test]
async fn a_breaching_observation_emails_the_responsible_person_once() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let platform = start_platform(&env, smtp.port).await;

    // Every service answers the standard health check as SERVING.
    let services = [
        (&platform.ingest, "trust.ingest.v1.IndicatorIngest"),
        (&platform.safeguarding, "trust.safeguarding.v1.SafeguardingQa"),
        (&platform.commissioning, "trust.commissioning.v1.Commissioning"),
        (&platform.notifications, "trust.notifications.v1.Notifications"),
    ];
    for (service, name) in services {
        let channel = tonic::transport::Endpoint::from_shared(url(service))
            .expect("endpoint")
            .connect()
            .await
            .expect("health connect");
        let mut health = HealthClient::new(channel);
        for checked in ["", "trust.operations.v1.Operations", name] {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: checked.to_owned(),
                })
                .await
                .expect("health check")
                .into_inner()
                .status;
            assert_eq!(
                status,
                ServingStatus::Serving as i32,
                "{name} health for {checked:?}"
            );
        }
    }

    let mut ingest = trust_e2e::operator_client(&env, &platform.ingest).await;
    ingest
        .put_catalogue(fixtures::catalogue())
        .await
        .expect("catalogue");
    let mut notifications = NotificationsClient::connect(url(&platform.notifications))
        .await
        .expect("notify");
    notifications
        .put_staff_directory(fixtures::directory())
        .await
        .expect("directory");

    // Connexions publishes NEET in East Leeds at 9.4% against the area's target of 8.0% (lower is better).
    let nats = env.nats().await;
    let js = async_nats::jetstream::new(nats.clone());
    let breach = batch(
        "connexions-2026-q2",
        vec![observation(NEET, EAST, quarter(2026, 2), 9.4)],
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "connexions-2026-q2");
    headers.insert("content-type", "application/protobuf");
    js.publish_with_headers(
        env.subject("ingest.submit.connexions"),
        headers,
        breach.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("JetStream ack");

    let email = eventually(Duration::from_secs(30), "the escalation email", || {
        let messages = smtp.messages();
        async move { messages.into_iter().next() }
    })
    .await;
    let email = decode_quoted_printable(&email);
    for expected in [
        "aisha.khan@example.org",
        NEET,
        "16-18 year olds not in education, employment or training",
        "East Leeds",
        EAST,
        "2026-Q2",
        "9.4%",
        "8.0%",
        "lower is better",
    ] {
        assert!(email.contains(expected), "email lacks {expected:?}:\n{email}");
    }

    // The delivery is recorded as sent.
    let deliveries = eventually(
        Duration::from_secs(10),
        "the delivery to be recorded as sent",
        || {
            let mut client = notifications.clone();
            async move {
                let list = client
                    .list_deliveries(notify::ListDeliveriesRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .deliveries;
                list.iter()
                    .all(|d| d.state == notify::DeliveryState::Sent as i32)
                    .then_some(list)
                    .filter(|l| !l.is_empty())
            }
        },
    )
    .await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].staff_code, "east-enabler");

    // A second copy of the same escalation event, under a new message id so JetStream does not drop it,
    // sends nothing more.
    let namespace = trust_runtime::bus::Namespace::new(env.namespace.clone());
    let stream = js
        .get_stream(namespace.stream("ESCALATIONS"))
        .await
        .expect("stream");
    let raised = stream
        .get_last_raw_message_by_subject(&env.subject("ingest.escalation.raised"))
        .await
        .expect("the raised event");
    let mut copy_headers = async_nats::HeaderMap::new();
    copy_headers.insert("Nats-Msg-Id", "a-second-copy");
    copy_headers.insert("content-type", "application/protobuf");
    js.publish_with_headers(
        env.subject("ingest.escalation.raised"),
        copy_headers,
        raised.payload,
    )
    .await
    .expect("publish copy")
    .await
    .expect("ack copy");
    // The same breach submitted again as a new batch is still red but already escalated: nothing new.
    let repeat = batch(
        "connexions-2026-q2-resend",
        vec![observation(NEET, EAST, quarter(2026, 2), 9.4)],
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "connexions-2026-q2-resend");
    js.publish_with_headers(
        env.subject("ingest.submit.connexions"),
        headers,
        repeat.encode_to_vec().into(),
    )
    .await
    .expect("publish repeat")
    .await
    .expect("ack repeat");
    // Wait until notifications has processed the copy, then check nothing more was sent.
    let consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
            &namespace.stream(notifications::ESCALATIONS_CONSUMER.durable),
        )
        .await
        .expect("notifications consumer");
    eventually(
        Duration::from_secs(15),
        "notifications to process the copy",
        || {
            let mut consumer = consumer.clone();
            async move {
                let info = consumer.info().await.ok()?.clone();
                (info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence >= 2)
                    .then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.messages().len(), 1, "exactly one email");
    let deliveries = notifications
        .list_deliveries(notify::ListDeliveriesRequest::default())
        .await
        .expect("deliveries")
        .into_inner()
        .deliveries;
    assert_eq!(deliveries.len(), 1, "exactly one delivery");

    // The other services saw the events they need.
    let mut safeguarding = SafeguardingQaClient::connect(url(&platform.safeguarding))
        .await
        .expect("sqa");
    let performance = eventually(
        Duration::from_secs(10),
        "safeguarding-qa to hold the value",
        || {
            let mut client = safeguarding.clone();
            async move {
                let values = client
                    .list_performance(trust_proto::safeguarding::v1::ListPerformanceRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .values;
                values.into_iter().next()
            }
        },
    )
    .await;
    assert_eq!(
        (performance.indicator_code.as_str(), performance.value),
        (NEET, 9.4)
    );
    let _ = &mut safeguarding;
    let mut commissioning = CommissioningClient::connect(url(&platform.commissioning))
        .await
        .expect("comm");
    let concerns = eventually(
        Duration::from_secs(10),
        "commissioning to hold the concern",
        || {
            let mut client = commissioning.clone();
            async move {
                let concerns = client
                    .list_indicator_concerns(
                        trust_proto::commissioning::v1::ListIndicatorConcernsRequest::default(),
                    )
                    .await
                    .ok()?
                    .into_inner()
                    .concerns;
                (!concerns.is_empty()).then_some(concerns)
            }
        },
    )
    .await;
    assert_eq!(
        concerns[0].dedup_key,
        format!("ingest/target-breach/{NEET}/{EAST}")
    );
    let _ = &mut commissioning;

    for service in [
        platform.ingest,
        platform.safeguarding,
        platform.commissioning,
        platform.notifications,
    ] {
        service.stop().await.expect("graceful stop");
    }
    smtp.stop().await;
    env.cleanup().await;
}
