//! Routing and escalation ladders end to end (real Postgres, JetStream, SMTP, gRPC): a route for an area
//! takes its clusters' alerts to the area's policy, whose first level is told at once; when nobody
//! acknowledges within the level's wait the next level is told; an acknowledgement stops the climb; an
//! alert no route takes follows the default policy; a resolution tells everyone who was told; silences and
//! a city-wide alert keep alerts from being sent without dropping them; two replicas send each step once.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::{
    NotificationsUnderTest, all_deliveries, await_all_sent, level, member, raised, resolved,
    start_notifications,
};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;

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

fn pair(staff: &str, event: &str) -> (String, String) {
    (staff.to_owned(), event.to_owned())
}

#[tokio::test]
async fn a_ladder_climbs_until_acknowledged_and_the_default_route_catches_the_rest() {
    let mut n = NotificationsUnderTest::start().await;
    n.client
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
    n.client.put_routing(routing()).await.expect("routing");
    let mut unknown_policy = routing();
    unknown_policy.default_policy = "nope".into();
    let refused = n.client.put_routing(unknown_policy).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        n.client
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
    n.publish("ingest.escalation.raised", "east-1", event.encode_to_vec())
        .await;
    let first = n.await_deliveries(east, 1).await;
    assert_eq!(first, vec![pair("enabler-east", "raised")]);
    let second = n.await_deliveries(east, 2).await;
    assert_eq!(
        second,
        vec![pair("enabler-east", "raised"), pair("head", "raised")]
    );

    // The escalated email says why it came.
    let escalated = eventually(Duration::from_secs(10), "the escalated email", || {
        let messages = n.smtp.messages();
        async move {
            messages
                .iter()
                .map(|m| trust_e2e::smtp::decode_quoted_printable(m))
                .find(|m| m.contains("head@example.org"))
        }
    })
    .await;
    assert!(escalated.contains("[Escalated]"), "{escalated}");
    assert!(
        escalated.contains("nobody acknowledged this alert within 2 second(s)"),
        "{escalated}"
    );

    // The head acknowledges: the climb stops, so the DCS is never told.
    let acknowledged = n
        .client
        .acknowledge_alert(notify::AcknowledgeAlertRequest {
            dedup_key: east.into(),
            by: "head".into(),
            note: String::new(),
        })
        .await
        .expect("acknowledge")
        .into_inner()
        .alert
        .expect("the alert");
    assert_eq!(acknowledged.acknowledged_by, "head");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        n.deliveries(east).await.len(),
        2,
        "no third level after the acknowledgement"
    );

    // A West alert no route takes follows the default policy: whoever is responsible.
    let west = "ingest/target-breach/NEET_16_18/AREA_WEST";
    let event = raised(west, "occ-west", &["AREA_WEST", "CITY"]);
    n.publish("ingest.escalation.raised", "west-1", event.encode_to_vec())
        .await;
    let told = n.await_deliveries(west, 1).await;
    assert_eq!(told, vec![pair("perf-lead", "raised")]);

    // Resolving the East alert tells both people who were told, and nobody else.
    let resolved = resolved(east, "occ-east");
    n.publish("ingest.escalation.resolved", "east-2", resolved.encode_to_vec())
        .await;
    let all = n.await_deliveries(east, 4).await;
    let mut resolutions: Vec<_> = all.into_iter().filter(|(_, e)| e == "resolved").collect();
    resolutions.sort();
    assert_eq!(
        resolutions,
        vec![pair("enabler-east", "resolved"), pair("head", "resolved")]
    );
    n.finish().await;
}

#[tokio::test]
async fn two_replicas_climbing_the_same_ladders_send_each_step_once() {
    let mut n = NotificationsUnderTest::start().await;
    let second = start_notifications(&n.env, &n.smtp).await;
    n.client
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
    n.client.put_routing(config).await.expect("routing");

    const ALERTS: usize = 20;
    for i in 0..ALERTS {
        let key = format!("ingest/target-breach/NEET_16_18/CLUSTER_E{i}");
        let event = raised(
            &key,
            &format!("occ-{i}"),
            &[&format!("CLUSTER_E{i}"), "AREA_EAST", "CITY"],
        );
        n.publish(
            "ingest.escalation.raised",
            &format!("raise-{i}"),
            event.encode_to_vec(),
        )
        .await;
    }
    // Each alert: enabler, head, DCS: three deliveries, three emails, whichever replica did the work.
    let expected = ALERTS * 3;
    let sent = await_all_sent(&n.client, expected, Duration::from_secs(30)).await;
    // Let both schedulers run on past every due step: nothing more may appear.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = all_deliveries(&n.client).await;
    assert_eq!(after.len(), expected, "no step queued twice");
    let mut steps: Vec<(String, String)> = sent
        .iter()
        .map(|d| (d.occurrence_id.clone(), d.staff_code.clone()))
        .collect();
    steps.sort();
    steps.dedup();
    assert_eq!(steps.len(), expected, "each (alert, person) once");
    assert_eq!(
        n.smtp.messages().len(),
        expected,
        "one email per step, none twice"
    );
    second.stop().await.expect("stop the second replica");
    n.finish().await;
}

#[tokio::test]
async fn the_demo_routing_file_is_accepted_and_read_back() {
    let mut n = NotificationsUnderTest::start().await;
    let file = trust_e2e::repo_root().join("deploy/demo/routing.toml");
    let config = trustctl::routing_file::load(&file).expect("the demo routing file reads");
    let loaded = n
        .client
        .put_routing(config.clone())
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(loaded.policies as usize, config.policies.len());
    let back = n
        .client
        .get_routing(notify::GetRoutingRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(back, config);
    n.finish().await;
}

#[tokio::test]
async fn a_silenced_alert_is_kept_and_listed_but_nobody_is_told() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    let in_an_hour =
        trust_runtime::grpc::timestamp(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let east_neet = notify::RouteMatchers {
        indicators: vec!["NEET_16_18".into()],
        localities: vec!["AREA_EAST".into()],
        ..Default::default()
    };
    let no_reason = n
        .client
        .put_silence(notify::Silence {
            matchers: Some(east_neet.clone()),
            ends_at: Some(in_an_hour),
            author: "perf-lead".into(),
            ..Default::default()
        })
        .await
        .expect_err("a silence needs a reason");
    assert!(no_reason.message().contains("reason"), "{}", no_reason.message());
    let silence = n
        .client
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
    n.publish("ingest.escalation.raised", "east-1", event.encode_to_vec())
        .await;
    let west = "ingest/target-breach/NEET_16_18/AREA_WEST";
    let event = raised(west, "occ-west", &["AREA_WEST", "CITY"]);
    n.publish("ingest.escalation.raised", "west-1", event.encode_to_vec())
        .await;
    let told = n.await_deliveries(west, 1).await;
    assert_eq!(told, vec![pair("perf-lead", "raised")]);
    let silenced = n.alert(east).await;
    assert_eq!(silenced.state, notify::AlertState::Firing as i32);
    assert_eq!(silenced.silenced_by, silence.id);
    assert!(
        n.deliveries(east).await.is_empty(),
        "nobody told of the silenced alert"
    );
    let listed = n
        .client
        .list_silences(notify::ListSilencesRequest::default())
        .await
        .expect("silences")
        .into_inner()
        .silences;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].author, "perf-lead");
    n.finish().await;
}

#[tokio::test]
async fn a_city_wide_alert_inhibits_the_same_indicators_local_alerts() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    let city = "ingest/target-breach/NEET_16_18/CITY";
    n.publish(
        "ingest.escalation.raised",
        "city-1",
        raised(city, "occ-city", &["CITY"]).encode_to_vec(),
    )
    .await;
    n.await_deliveries(city, 1).await;
    // The same indicator and rule in the East: kept, not sent. Another indicator in the East: sent.
    let east = "ingest/target-breach/NEET_16_18/AREA_EAST";
    n.publish(
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
    n.publish("ingest.escalation.raised", "gcse-1", gcse.encode_to_vec())
        .await;
    n.await_deliveries(other, 1).await;
    let inhibited = n.alert(east).await;
    assert_eq!(inhibited.inhibited_by, city);
    assert!(
        n.deliveries(east).await.is_empty(),
        "nobody told of the inhibited alert"
    );
    n.finish().await;
}

#[tokio::test]
async fn routes_that_continue_start_a_ladder_for_each_policy_they_lead_to() {
    let mut n = NotificationsUnderTest::start().await;
    n.client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("enabler-east", &["locality_enabler"], &["AREA_EAST"]),
                member("head", &["head_of_service"], &[]),
                member("perf-lead", &["performance_lead"], &[]),
            ],
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    let policy = |name: &str, levels| notify::EscalationPolicy {
        name: name.into(),
        levels,
        repeat: "1h".into(),
        acknowledgement_timeout: "1h".into(),
        flap_hold: String::new(),
    };
    n.client
        .put_routing(notify::RoutingConfig {
            default_policy: "neet".into(),
            routes: vec![
                notify::Route {
                    name: "east".into(),
                    matchers: Some(notify::RouteMatchers {
                        localities: vec!["AREA_EAST".into()],
                        ..Default::default()
                    }),
                    policy: "east".into(),
                    r#continue: true,
                    ..Default::default()
                },
                notify::Route {
                    name: "neet".into(),
                    matchers: Some(notify::RouteMatchers {
                        indicators: vec!["NEET_16_18".into()],
                        ..Default::default()
                    }),
                    policy: "neet".into(),
                    ..Default::default()
                },
            ],
            policies: vec![
                policy(
                    "east",
                    vec![
                        level(&["locality_enabler"], &[], "2s"),
                        level(&[], &["head"], "1h"),
                    ],
                ),
                policy("neet", vec![level(&[], &["perf-lead"], "1h")]),
            ],
        })
        .await
        .expect("routing");
    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    n.publish(
        "ingest.escalation.raised",
        "c-1",
        raised(key, "occ-1", &["CLUSTER_E1", "AREA_EAST", "LEEDS"]).encode_to_vec(),
    )
    .await;
    let mut first = n.await_deliveries(key, 2).await;
    first.sort();
    assert_eq!(
        first,
        vec![pair("enabler-east", "raised"), pair("perf-lead", "raised")],
        "both policies' first levels are told"
    );
    // The East ladder climbs on its own clock; the NEET one waits its hour.
    let climbed = n.await_deliveries(key, 3).await;
    assert_eq!(climbed[2], pair("head", "raised"));

    n.publish(
        "ingest.escalation.resolved",
        "c-2",
        resolved(key, "occ-1").encode_to_vec(),
    )
    .await;
    let all = n.await_deliveries(key, 6).await;
    let mut resolutions: Vec<_> = all.into_iter().filter(|(_, e)| e == "resolved").collect();
    resolutions.sort();
    assert_eq!(
        resolutions,
        vec![
            pair("enabler-east", "resolved"),
            pair("head", "resolved"),
            pair("perf-lead", "resolved")
        ]
    );
    n.finish().await;
}
