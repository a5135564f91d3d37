//! The in-app inbox and what people do to alerts (real Postgres, JetStream, gRPC): an inbox level tells
//! nobody by email but puts the alert in the person's inbox; comments and acknowledgements go into the
//! alert's history; resolving by hand needs who and why, closes the alert and tells those told, and the
//! source's own resolution afterwards tells nobody again.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::{NotificationsUnderTest, level, member, raised, resolved};
use trust_proto::notifications::v1 as notify;

const KEY: &str = "ingest/target-breach/NEET_16_18/CLUSTER_E1";

async fn inbox(n: &NotificationsUnderTest, staff: &str, state: notify::AlertState) -> Vec<notify::InboxItem> {
    n.client
        .clone()
        .list_inbox(notify::ListInboxRequest {
            staff_code: staff.into(),
            state: state.into(),
            limit: 0,
        })
        .await
        .expect("inbox")
        .into_inner()
        .items
}

async fn history(n: &NotificationsUnderTest) -> Vec<(String, String, String)> {
    n.client
        .clone()
        .get_alert(notify::GetAlertRequest {
            dedup_key: KEY.into(),
        })
        .await
        .expect("alert")
        .into_inner()
        .history
        .into_iter()
        .map(|h| (h.what, h.by, h.detail))
        .collect()
}

#[tokio::test]
async fn the_inbox_shows_what_a_person_was_told_and_they_act_on_it_there() {
    let mut n = NotificationsUnderTest::start().await;
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
            default_policy: "inbox".into(),
            routes: vec![],
            policies: vec![notify::EscalationPolicy {
                name: "inbox".into(),
                levels: vec![notify::EscalationLevel {
                    responsible: true,
                    channel: notify::Channel::Inbox.into(),
                    ..level(&[], &[], "1h")
                }],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            }],
        })
        .await
        .expect("routing");
    n.publish(
        "ingest.escalation.raised",
        "i-1",
        raised(KEY, "occ-1", &["CLUSTER_E1", "AREA_EAST", "LEEDS"]).encode_to_vec(),
    )
    .await;

    let items = eventually(Duration::from_secs(15), "the alert in duty's inbox", || async {
        Some(inbox(&n, "duty", notify::AlertState::Unspecified).await).filter(|items| !items.is_empty())
    })
    .await;
    let alert = items[0].alert.clone().expect("alert");
    assert_eq!(alert.dedup_key, KEY);
    assert_eq!(alert.severity, "critical");
    assert!(
        inbox(&n, "head", notify::AlertState::Unspecified)
            .await
            .is_empty(),
        "head was not told"
    );
    let deliveries = n.deliveries(KEY).await;
    assert_eq!(deliveries, vec![("duty".to_owned(), "raised".to_owned())]);
    assert!(n.smtp.messages().is_empty(), "an inbox level sends no email");

    // Comment, then acknowledge with a note: both in the history; the alert is listed as acknowledged.
    n.client
        .comment_on_alert(notify::CommentOnAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            text: "looking into it".into(),
        })
        .await
        .expect("comment");
    let empty = n
        .client
        .comment_on_alert(notify::CommentOnAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            text: " ".into(),
        })
        .await
        .expect_err("an empty comment is refused");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(empty.message().starts_with("text:"), "{}", empty.message());
    n.client
        .acknowledge_alert(notify::AcknowledgeAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            note: "called the school".into(),
        })
        .await
        .expect("acknowledge");
    let acknowledged = inbox(&n, "duty", notify::AlertState::Acknowledged).await;
    assert_eq!(acknowledged.len(), 1);
    assert_eq!(
        acknowledged[0].alert.as_ref().map(|a| a.acknowledged_by.as_str()),
        Some("duty")
    );

    // Resolving by hand needs a reason; with one, the alert is resolved and duty hears of it in the inbox.
    let no_reason = n
        .client
        .resolve_alert(notify::ResolveAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            reason: String::new(),
        })
        .await
        .expect_err("refused without a reason");
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    assert!(
        no_reason.message().starts_with("reason:"),
        "{}",
        no_reason.message()
    );
    let closed = n
        .client
        .resolve_alert(notify::ResolveAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            reason: "the value was entered in error".into(),
        })
        .await
        .expect("resolve")
        .into_inner()
        .alert
        .expect("alert");
    assert_eq!(closed.state, notify::AlertState::Resolved as i32);
    assert_eq!(closed.resolved_by, "duty");
    let told = n.await_deliveries(KEY, 2).await;
    assert_eq!(told[1], ("duty".to_owned(), "resolved".to_owned()));
    assert_eq!(
        inbox(&n, "duty", notify::AlertState::Resolved).await.len(),
        1,
        "resolved alerts stay in the inbox, filterable"
    );

    // The source's own resolution of the same occurrence is recorded but tells nobody again.
    n.publish(
        "ingest.escalation.resolved",
        "i-2",
        resolved(KEY, "occ-1").encode_to_vec(),
    )
    .await;
    let entries = eventually(
        Duration::from_secs(15),
        "the source's resolution recorded",
        || async {
            let entries = history(&n).await;
            entries
                .iter()
                .any(|(what, _, _)| what == "resolved")
                .then_some(entries)
        },
    )
    .await;
    let whats: Vec<&str> = entries.iter().map(|(what, _, _)| what.as_str()).collect();
    assert_eq!(
        whats,
        vec![
            "raised",
            "commented",
            "acknowledged",
            "resolved-by-hand",
            "resolved"
        ]
    );
    assert_eq!(
        entries[1],
        ("commented".into(), "duty".into(), "looking into it".into())
    );
    assert_eq!(
        entries[2],
        ("acknowledged".into(), "duty".into(), "called the school".into())
    );
    assert_eq!(
        entries[3],
        (
            "resolved-by-hand".into(),
            "duty".into(),
            "the value was entered in error".into()
        )
    );
    assert_eq!(
        n.deliveries(KEY).await.len(),
        2,
        "nobody told twice of the resolution"
    );

    let again = n
        .client
        .acknowledge_alert(notify::AcknowledgeAlertRequest {
            dedup_key: KEY.into(),
            by: "duty".into(),
            note: String::new(),
        })
        .await
        .expect_err("a resolved alert cannot be acknowledged");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let unknown = n
        .client
        .get_alert(notify::GetAlertRequest {
            dedup_key: "nope".into(),
        })
        .await
        .expect_err("unknown alert");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let stranger = n
        .client
        .list_inbox(notify::ListInboxRequest {
            staff_code: "stranger".into(),
            ..Default::default()
        })
        .await
        .expect_err("not in the directory");
    assert_eq!(stranger.code(), tonic::Code::NotFound);
    n.finish().await;
}

#[tokio::test]
async fn trustctl_alerts_acknowledges_comments_resolves_and_silences_from_the_terminal() {
    use clap::Parser;
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    let endpoint = format!("http://{}", n.running.grpc_addr);
    let trustctl = |args: &[&str]| {
        let mut argv = vec!["trustctl", "--notifications", endpoint.as_str(), "alerts"];
        argv.extend_from_slice(args);
        trustctl::commands::run(trustctl::cli::Cli::parse_from(argv))
    };
    n.publish(
        "ingest.escalation.raised",
        "t-1",
        raised(KEY, "occ-1", &["CLUSTER_E1", "AREA_EAST", "LEEDS"]).encode_to_vec(),
    )
    .await;
    n.await_deliveries(KEY, 1).await;

    let ok = std::process::ExitCode::SUCCESS;
    assert_eq!(trustctl(&[]).await.expect("list"), ok);
    assert_eq!(
        trustctl(&[
            "acknowledge",
            KEY,
            "--by",
            "perf-lead",
            "--note",
            "checking the return"
        ])
        .await
        .expect("acknowledge"),
        ok
    );
    assert_eq!(n.alert(KEY).await.acknowledged_by, "perf-lead");
    assert_eq!(
        trustctl(&["comment", KEY, "--by", "perf-lead", "--text", "school confirmed"])
            .await
            .expect("comment"),
        ok
    );
    assert_eq!(trustctl(&["show", KEY]).await.expect("show"), ok);
    assert_eq!(
        trustctl(&["inbox", "perf-lead", "--state", "acknowledged"])
            .await
            .expect("inbox"),
        ok
    );
    let refused = trustctl(&["resolve", KEY, "--by", "perf-lead", "--reason", " "])
        .await
        .expect_err("a blank reason is refused");
    assert!(refused.to_string().contains("reason:"), "{refused}");
    assert_eq!(
        trustctl(&["resolve", KEY, "--by", "perf-lead", "--reason", "data corrected"])
            .await
            .expect("resolve"),
        ok
    );
    let resolved = n.alert(KEY).await;
    assert_eq!(resolved.state, notify::AlertState::Resolved as i32);
    assert_eq!(resolved.resolved_by, "perf-lead");

    assert_eq!(
        trustctl(&[
            "silence",
            "add",
            "--match",
            "locality=AREA_EAST",
            "--for",
            "2h",
            "--author",
            "perf-lead",
            "--reason",
            "known data outage",
        ])
        .await
        .expect("silence"),
        ok
    );
    let silences = n
        .client
        .clone()
        .list_silences(notify::ListSilencesRequest { include_ended: false })
        .await
        .expect("silences")
        .into_inner()
        .silences;
    assert_eq!(silences.len(), 1);
    assert_eq!(
        silences[0].matchers.as_ref().map(|m| m.localities.clone()),
        Some(vec!["AREA_EAST".to_owned()])
    );
    assert_eq!(
        (silences[0].author.as_str(), silences[0].reason.as_str()),
        ("perf-lead", "known data outage")
    );
    let bad = trustctl(&[
        "silence", "add", "--match", "place=X", "--for", "2h", "--author", "a", "--reason", "r",
    ])
    .await
    .expect_err("an unknown field is refused");
    assert!(bad.to_string().contains("\"place\" is not a field"), "{bad}");
    assert_eq!(trustctl(&["silence", "list"]).await.expect("list silences"), ok);
    n.finish().await;
}
