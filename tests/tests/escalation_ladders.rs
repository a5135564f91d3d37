//! Routing and escalation ladders end to end (real Postgres, JetStream, SMTP, gRPC): a route for an area
//! takes its clusters' alerts to the area's policy, whose first level is told at once; when nobody
//! acknowledges within the level's wait the next level is told; an acknowledgement stops the climb; an
//! alert no route takes follows the default policy; a resolution tells everyone who was told.

use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use trust_e2e::smtp::SmtpSink;
use trust_e2e::{TestEnv, eventually};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;

type Client = NotificationsClient<tonic::transport::Channel>;

fn member(code: &str, roles: &[&str], localities: &[&str]) -> notify::StaffMember {
    notify::StaffMember {
        code: code.into(),
        name: format!("{code} (test)"),
        email: format!("{code}@example.org"),
        partner_code: "council".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        localities: localities.iter().map(|l| (*l).to_owned()).collect(),
        ..Default::default()
    }
}

fn level(roles: &[&str], people: &[&str], wait: &str) -> notify::EscalationLevel {
    notify::EscalationLevel {
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        people: people.iter().map(|p| (*p).to_owned()).collect(),
        wait: wait.into(),
        ..Default::default()
    }
}

fn routing() -> notify::RoutingConfig {
    notify::RoutingConfig {
        default_policy: "performance".into(),
        routes: vec![notify::Route {
            name: "east".into(),
            matchers: Some(notify::RouteMatchers {
                localities: vec!["AREA_EAST".into()],
                ..Default::default()
            }),
            policy: "east".into(),
            ..Default::default()
        }],
        policies: vec![
            notify::EscalationPolicy {
                name: "performance".into(),
                levels: vec![notify::EscalationLevel {
                    responsible: true,
                    wait: "1h".into(),
                    ..Default::default()
                }],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            },
            notify::EscalationPolicy {
                name: "east".into(),
                levels: vec![
                    level(&["locality_enabler"], &[], "2s"),
                    // Long enough that the acknowledgement below lands first even on a loaded machine.
                    level(&[], &["head"], "5s"),
                    level(&[], &["dcs"], "2s"),
                ],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            },
        ],
    }
}

fn raised(key: &str, occurrence: &str, lineage: &[&str]) -> alerting::EscalationRaised {
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
                indicator_name: "NEET".into(),
                locality_code: lineage[0].into(),
                locality_name: lineage[0].into(),
                locality_lineage: lineage.iter().map(|l| (*l).to_owned()).collect(),
                period_label: "2026-Q2".into(),
                value: 9.4,
                target: 8.0,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

async fn publish(env: &TestEnv, subject: &str, message_id: &str, payload: Vec<u8>) {
    let js = async_nats::jetstream::new(env.nats().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    js.publish_with_headers(env.subject(subject), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// notifications for `env`, mailing `smtp`, with the scheduler and delivery worker looking every 100 ms.
async fn start(env: &TestEnv, smtp: &SmtpSink) -> trust_runtime::RunningService {
    let config: notifications::NotificationsConfig = env
        .loader(notifications::DEFAULTS, "trust_notifications")
        .set("smtp.host", "127.0.0.1")
        .set("smtp.port", i64::from(smtp.port))
        .set("smtp.tls", "none")
        .set("delivery.poll_interval_ms", 100_i64)
        .set("escalation.tick_ms", 100_i64)
        .load()
        .expect("notifications config");
    notifications::start(config, CancellationToken::new())
        .await
        .expect("notifications")
}

/// (staff, event) of every delivery of an alert, oldest first.
async fn deliveries(client: &mut Client, key: &str) -> Vec<(String, String)> {
    let mut list = client
        .list_deliveries(notify::ListDeliveriesRequest {
            dedup_key: key.into(),
            limit: 0,
        })
        .await
        .expect("deliveries")
        .into_inner()
        .deliveries;
    list.reverse();
    list.into_iter().map(|d| (d.staff_code, d.event)).collect()
}

fn pair(staff: &str, event: &str) -> (String, String) {
    (staff.to_owned(), event.to_owned())
}

#[tokio::test]
async fn a_ladder_climbs_until_acknowledged_and_the_default_route_catches_the_rest() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start(&env, &smtp).await;
    let mut client = Client::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("enabler-east", &["locality_enabler"], &["AREA_EAST"]),
                member("enabler-west", &["locality_enabler"], &["AREA_WEST"]),
                member("head", &["head_of_service"], &[]),
                member("dcs", &["director_of_childrens_services"], &[]),
                member("perf-lead", &["performance_lead"], &[]),
            ],
            responsibilities: vec![notify::Responsibility {
                staff_code: "perf-lead".into(),
                indicator_code: String::new(),
                locality_code: String::new(),
            }],
        })
        .await
        .expect("directory");
    client.put_routing(routing()).await.expect("routing");
    let mut unknown_policy = routing();
    unknown_policy.default_policy = "nope".into();
    let refused = client.put_routing(unknown_policy).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        client
            .get_routing(notify::GetRoutingRequest {})
            .await
            .expect("get")
            .into_inner(),
        routing()
    );

    // A cluster in the East: the East route takes it (an area covers its clusters); the East enabler is
    // told at once, and the head of service when nobody acknowledges within 2 s.
    let east = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    let event = raised(east, "occ-east", &["CLUSTER_E1", "AREA_EAST", "CITY"]);
    publish(&env, "ingest.escalation.raised", "east-1", event.encode_to_vec()).await;
    let first = eventually(Duration::from_secs(10), "the first level", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, east).await).filter(|d| !d.is_empty()) }
    })
    .await;
    assert_eq!(first, vec![pair("enabler-east", "raised")]);
    let second = eventually(Duration::from_secs(10), "the second level", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, east).await).filter(|d| d.len() >= 2) }
    })
    .await;
    assert_eq!(
        second,
        vec![pair("enabler-east", "raised"), pair("head", "raised")]
    );

    // The head acknowledges: the climb stops, so the DCS is never told.
    let acknowledged = client
        .acknowledge_alert(notify::AcknowledgeAlertRequest {
            dedup_key: east.into(),
            by: "head".into(),
        })
        .await
        .expect("acknowledge")
        .into_inner()
        .alert
        .expect("the alert");
    assert_eq!(acknowledged.acknowledged_by, "head");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        deliveries(&mut client, east).await.len(),
        2,
        "no third level after the acknowledgement"
    );

    // A West alert no route takes follows the default policy: whoever is responsible.
    let west = "ingest/target-breach/NEET_16_18/AREA_WEST";
    let event = raised(west, "occ-west", &["AREA_WEST", "CITY"]);
    publish(&env, "ingest.escalation.raised", "west-1", event.encode_to_vec()).await;
    let told = eventually(Duration::from_secs(10), "the default route", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, west).await).filter(|d| !d.is_empty()) }
    })
    .await;
    assert_eq!(told, vec![pair("perf-lead", "raised")]);

    // Resolving the East alert tells both people who were told, and nobody else.
    let resolved = alerting::EscalationResolved {
        dedup_key: east.into(),
        occurrence_id: "occ-east".into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        summary: "recovered".into(),
        ..Default::default()
    };
    publish(
        &env,
        "ingest.escalation.resolved",
        "east-2",
        resolved.encode_to_vec(),
    )
    .await;
    let all = eventually(Duration::from_secs(10), "the resolution", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, east).await).filter(|d| d.len() == 4) }
    })
    .await;
    let mut resolutions: Vec<_> = all.into_iter().filter(|(_, e)| e == "resolved").collect();
    resolutions.sort();
    assert_eq!(
        resolutions,
        vec![pair("enabler-east", "resolved"), pair("head", "resolved")]
    );
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn two_replicas_climbing_the_same_ladders_send_each_step_once() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let first = start(&env, &smtp).await;
    let second = start(&env, &smtp).await;
    let mut client = Client::connect(format!("http://{}", first.grpc_addr))
        .await
        .expect("connect");
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("enabler-east", &["locality_enabler"], &["AREA_EAST"]),
                member("head", &["head_of_service"], &[]),
                member("dcs", &["director_of_childrens_services"], &[]),
            ],
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    let mut config = routing();
    // Every step due within seconds: told at once, then the head after 1 s, then the DCS after 1 s more.
    config.policies[1].levels = vec![
        level(&["locality_enabler"], &[], "1s"),
        level(&[], &["head"], "1s"),
        level(&[], &["dcs"], "1h"),
    ];
    client.put_routing(config).await.expect("routing");

    const ALERTS: usize = 20;
    for n in 0..ALERTS {
        let key = format!("ingest/target-breach/NEET_16_18/CLUSTER_E{n}");
        let event = raised(
            &key,
            &format!("occ-{n}"),
            &[&format!("CLUSTER_E{n}"), "AREA_EAST", "CITY"],
        );
        publish(
            &env,
            "ingest.escalation.raised",
            &format!("raise-{n}"),
            event.encode_to_vec(),
        )
        .await;
    }
    // Each alert: enabler, head, DCS: three deliveries, three emails, whichever replica did the work.
    let expected = ALERTS * 3;
    let sent = eventually(Duration::from_secs(30), "every step sent", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_deliveries(notify::ListDeliveriesRequest {
                    dedup_key: String::new(),
                    limit: 1000,
                })
                .await
                .ok()?
                .into_inner()
                .deliveries;
            (list.len() >= expected && list.iter().all(|d| d.state == notify::DeliveryState::Sent as i32))
                .then_some(list)
        }
    })
    .await;
    // Let both schedulers run on past every due step: nothing more may appear.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = client
        .list_deliveries(notify::ListDeliveriesRequest {
            dedup_key: String::new(),
            limit: 1000,
        })
        .await
        .expect("deliveries")
        .into_inner()
        .deliveries;
    assert_eq!(after.len(), expected, "no step queued twice");
    let mut steps: Vec<(String, String)> = sent
        .iter()
        .map(|d| (d.occurrence_id.clone(), d.staff_code.clone()))
        .collect();
    steps.sort();
    steps.dedup();
    assert_eq!(steps.len(), expected, "each (alert, person) once");
    assert_eq!(smtp.messages().len(), expected, "one email per step, none twice");
    first.stop().await.expect("stop first");
    second.stop().await.expect("stop second");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_demo_routing_file_is_accepted_and_read_back() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start(&env, &smtp).await;
    let mut client = Client::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    let file = trust_e2e::repo_root().join("deploy/demo/routing.toml");
    let config = trustctl::routing_file::load(&file).expect("the demo routing file reads");
    let loaded = client
        .put_routing(config.clone())
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(loaded.policies as usize, config.policies.len());
    let back = client
        .get_routing(notify::GetRoutingRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(back, config);
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_silenced_alert_is_kept_and_listed_but_nobody_is_told() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start(&env, &smtp).await;
    let mut client = Client::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![member("perf-lead", &["performance_lead"], &[])],
            responsibilities: vec![notify::Responsibility {
                staff_code: "perf-lead".into(),
                indicator_code: String::new(),
                locality_code: String::new(),
            }],
        })
        .await
        .expect("directory");
    let in_an_hour =
        trust_runtime::grpc::timestamp(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let east_neet = notify::RouteMatchers {
        indicators: vec!["NEET_16_18".into()],
        localities: vec!["AREA_EAST".into()],
        ..Default::default()
    };
    let no_reason = client
        .put_silence(notify::Silence {
            matchers: Some(east_neet.clone()),
            ends_at: Some(in_an_hour),
            author: "perf-lead".into(),
            ..Default::default()
        })
        .await
        .expect_err("a silence needs a reason");
    assert!(no_reason.message().contains("reason"), "{}", no_reason.message());
    let silence = client
        .put_silence(notify::Silence {
            matchers: Some(east_neet),
            ends_at: Some(in_an_hour),
            author: "perf-lead".into(),
            reason: "known data issue; resubmission due Friday".into(),
            ..Default::default()
        })
        .await
        .expect("silence")
        .into_inner();

    // A cluster in the East is covered by the silence on its area; the West is not.
    let east = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    let event = raised(east, "occ-east", &["CLUSTER_E1", "AREA_EAST", "CITY"]);
    publish(&env, "ingest.escalation.raised", "east-1", event.encode_to_vec()).await;
    let west = "ingest/target-breach/NEET_16_18/AREA_WEST";
    let event = raised(west, "occ-west", &["AREA_WEST", "CITY"]);
    publish(&env, "ingest.escalation.raised", "west-1", event.encode_to_vec()).await;
    let told = eventually(Duration::from_secs(10), "the unsilenced alert's delivery", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, west).await).filter(|d| !d.is_empty()) }
    })
    .await;
    assert_eq!(told, vec![pair("perf-lead", "raised")]);
    let alerts = client
        .list_alerts(notify::ListAlertsRequest::default())
        .await
        .expect("alerts")
        .into_inner()
        .alerts;
    let silenced = alerts
        .iter()
        .find(|a| a.dedup_key == east)
        .expect("the silenced alert is kept");
    assert_eq!(silenced.state, notify::AlertState::Firing as i32);
    assert_eq!(silenced.silenced_by, silence.id);
    assert!(
        deliveries(&mut client, east).await.is_empty(),
        "nobody told of the silenced alert"
    );
    let listed = client
        .list_silences(notify::ListSilencesRequest::default())
        .await
        .expect("silences")
        .into_inner()
        .silences;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].author, "perf-lead");
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_city_wide_alert_inhibits_the_same_indicators_local_alerts() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let running = start(&env, &smtp).await;
    let mut client = Client::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![member("perf-lead", &["performance_lead"], &[])],
            responsibilities: vec![notify::Responsibility {
                staff_code: "perf-lead".into(),
                indicator_code: String::new(),
                locality_code: String::new(),
            }],
        })
        .await
        .expect("directory");
    let city = "ingest/target-breach/NEET_16_18/CITY";
    publish(
        &env,
        "ingest.escalation.raised",
        "city-1",
        raised(city, "occ-city", &["CITY"]).encode_to_vec(),
    )
    .await;
    eventually(Duration::from_secs(10), "the city-wide alert's delivery", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, city).await).filter(|d| !d.is_empty()) }
    })
    .await;
    // The same indicator and rule in the East: kept, not sent. Another indicator in the East: sent.
    let east = "ingest/target-breach/NEET_16_18/AREA_EAST";
    publish(
        &env,
        "ingest.escalation.raised",
        "east-1",
        raised(east, "occ-east", &["AREA_EAST", "CITY"]).encode_to_vec(),
    )
    .await;
    let other = "ingest/target-breach/GCSE_5AC/AREA_EAST";
    let mut gcse = raised(other, "occ-gcse", &["AREA_EAST", "CITY"]);
    if let Some(alerting::escalation_raised::Subject::Indicator(breach)) = &mut gcse.subject {
        breach.indicator_code = "GCSE_5AC".into();
    }
    publish(&env, "ingest.escalation.raised", "gcse-1", gcse.encode_to_vec()).await;
    eventually(Duration::from_secs(10), "the other indicator's delivery", || {
        let mut client = client.clone();
        async move { Some(deliveries(&mut client, other).await).filter(|d| !d.is_empty()) }
    })
    .await;
    let alerts = client
        .list_alerts(notify::ListAlertsRequest::default())
        .await
        .expect("alerts")
        .into_inner()
        .alerts;
    let inhibited = alerts
        .iter()
        .find(|a| a.dedup_key == east)
        .expect("the local alert is kept");
    assert_eq!(inhibited.inhibited_by, city);
    assert!(
        deliveries(&mut client, east).await.is_empty(),
        "nobody told of the inhibited alert"
    );
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}
