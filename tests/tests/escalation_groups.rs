//! The consumer applies the escalation events it pulls together as one group, set-wise
//! (`receiver::apply_events`). A group must do exactly what the same events applied one at a time do:
//! the same alerts in the same states, the same people told of the same events.

use std::collections::BTreeSet;

use prost::Message;
use trust_e2e::notifications::{NotificationsUnderTest, raised, resolved};

use notifications::domain::Escalation;
use notifications::email_templates::EmailComposer;

/// Raises, resolutions, a repeat, a re-raise under a new occurrence, city-wide alerts with local ones of
/// the same indicator, and a resolution older than the alert's occurrence.
fn events() -> Vec<Escalation> {
    let raise =
        |key: &str, occurrence: &str, lineage: &[&str]| Escalation::Raised(raised(key, occurrence, lineage));
    let resolve = |key: &str, occurrence: &str| Escalation::Resolved(resolved(key, occurrence));
    vec![
        raise("a", "a1", &["EAST-1", "EAST", "CITY"]),
        raise("b", "b1", &["WEST-2", "WEST", "CITY"]),
        raise("a", "a1", &["EAST-1", "EAST", "CITY"]),
        resolve("a", "a1"),
        raise("city", "c1", &["CITY"]),
        raise("east", "e1", &["EAST", "CITY"]),
        raise("a", "a2", &["EAST-1", "EAST", "CITY"]),
        resolve("a", "a1"),
        resolve("b", "b1"),
        // A second city-wide alert for the same place: when the first clears, the second still inhibits.
        raise("city2", "c2", &["CITY"]),
        resolve("city", "c1"),
        raise("west", "w1", &["WEST", "CITY"]),
    ]
}

/// (state, alert, occurrence, inhibited by) of every alert, and (alert, occurrence, event, person) of every
/// delivery.
type Outcome = (
    BTreeSet<(String, String, String, String)>,
    BTreeSet<(String, String, String, String)>,
);

async fn outcome(n: &NotificationsUnderTest) -> Outcome {
    let alerts = n
        .client
        .clone()
        .list_alerts(trust_proto::notifications::v1::ListAlertsRequest::default())
        .await
        .expect("alerts")
        .into_inner()
        .alerts
        .into_iter()
        .map(|a| {
            (
                a.state().as_str_name().to_owned(),
                a.dedup_key,
                a.occurrence_id,
                a.inhibited_by,
            )
        })
        .collect();
    let deliveries = n
        .client
        .clone()
        .list_deliveries(trust_proto::notifications::v1::ListDeliveriesRequest {
            dedup_key: String::new(),
            limit: 0,
        })
        .await
        .expect("deliveries")
        .into_inner()
        .deliveries
        .into_iter()
        .map(|d| (d.dedup_key, d.occurrence_id, d.event, d.staff_code))
        .collect();
    (alerts, deliveries)
}

/// Apply `groups` (each in one transaction, as the consumer does) to a fresh service; its outcome.
async fn applied_in(groups: &[&[Escalation]]) -> Outcome {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    let pool = n.env.pool("trust_notifications", "notifications").await;
    let email = EmailComposer::new(None);
    for group in groups {
        let mut tx = pool.begin().await.expect("begin");
        notifications::receiver::apply_events(&mut tx, &email, group)
            .await
            .expect("group applied");
        tx.commit().await.expect("commit");
    }
    let seen = outcome(&n).await;
    pool.close().await;
    n.finish().await;
    seen
}

#[tokio::test]
async fn a_group_does_what_its_events_one_at_a_time_do() {
    let events = events();
    let one_at_a_time: Vec<&[Escalation]> = events.iter().map(std::slice::from_ref).collect();
    let all_at_once = [events.as_slice()];
    let (alone, together) = tokio::join!(applied_in(&one_at_a_time), applied_in(&all_at_once));
    assert_eq!(together, alone, "grouped (left) against one at a time (right)");

    // And what that is: a's first occurrence raised and resolved; b raised and resolved; the city-wide
    // alert told, and the local ones of the same indicator raised after it (east, a's second occurrence)
    // kept quiet, while those raised before it were told.
    let (alerts, deliveries) = together;
    let state = |key: &str| alerts.iter().find(|a| a.1 == key).cloned().expect("alert");
    assert_eq!(state("a").0, "ALERT_STATE_FIRING");
    assert_eq!(state("a").2, "a2");
    assert_eq!(state("b").0, "ALERT_STATE_RESOLVED");
    assert_eq!(
        state("east").3,
        "city",
        "inhibited by the city-wide alert in the same group"
    );
    let told = |key: &str, occurrence: &str, event: &str| {
        deliveries
            .iter()
            .filter(|d| d.0 == key && d.1 == occurrence && d.2 == event)
            .count()
    };
    assert_eq!(
        told("a", "a1", "raised"),
        1,
        "a repeat of the raise sends nothing more"
    );
    assert_eq!(
        told("a", "a1", "resolved"),
        1,
        "the later copy of the resolution is stale"
    );
    assert_eq!(told("a", "a2", "raised"), 0, "raised after the city-wide alert");
    assert_eq!(state("a").3, "city");
    assert_eq!(told("b", "b1", "raised"), 1);
    assert_eq!(told("b", "b1", "resolved"), 1);
    assert_eq!(told("city", "c1", "raised"), 1);
    assert_eq!(told("east", "e1", "raised"), 0);
    assert_eq!(state("west").3, "city2", "the other city-wide alert still firing");
    assert_eq!(told("west", "w1", "raised"), 0);
}

#[tokio::test]
async fn an_undecodable_event_in_a_pulled_group_is_parked_alone_and_the_rest_are_told() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    // Published back to back, so the consumer pulls them as one group.
    let mut published = Vec::new();
    for i in 0..20 {
        let key = format!("group/{i}");
        if i == 7 {
            n.publish("ingest.escalation.raised", "bad-7", b"\xffnot protobuf".to_vec())
                .await;
            continue;
        }
        let payload = raised(&key, &format!("{key}/1"), &["EAST-1", "EAST", "CITY"]).encode_to_vec();
        n.publish("ingest.escalation.raised", &format!("m-{i}"), payload)
            .await;
        published.push(key);
    }
    for key in &published {
        let told = n.await_deliveries(key, 1).await;
        assert_eq!(told, vec![("perf-lead".to_owned(), "raised".to_owned())], "{key}");
    }
    let parked = n
        .await_deliveries("notifications/unprocessable-event/bad-7", 1)
        .await;
    assert_eq!(
        parked.len(),
        1,
        "the parked event's own alert reached the default owner"
    );
    n.finish().await;
}

/// notifications' connections plan each statement for the rows it is given (`database.plan_cache_mode`),
/// so a generic plan chosen while the tables were small cannot turn the group statements into scans of
/// every alert as the tables grow; the setting can be put back to PostgreSQL's `auto`, and a misspelt value
/// is refused naming the key.
#[tokio::test]
async fn notifications_connections_plan_each_statement_for_its_rows() {
    let env = trust_e2e::TestEnv::new().await;
    let mode_of = |loader: trust_runtime::ConfigLoader| async {
        let config: notifications::NotificationsConfig = loader.load().expect("configuration");
        let pool = trust_runtime::db::connect(&config.platform.database)
            .await
            .expect("connect");
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&pool)
            .await
            .expect("show plan_cache_mode");
        pool.close().await;
        mode
    };
    let role = "trust_notifications";
    assert_eq!(
        mode_of(env.loader(notifications::DEFAULTS, role)).await,
        "force_custom_plan"
    );
    assert_eq!(
        mode_of(
            env.loader(notifications::DEFAULTS, role)
                .set("database.plan_cache_mode", "auto")
        )
        .await,
        "auto"
    );
    let misspelt = env
        .loader(notifications::DEFAULTS, role)
        .set("database.plan_cache_mode", "custom")
        .load::<notifications::NotificationsConfig>()
        .expect_err("an unknown plan cache mode is refused");
    assert!(
        misspelt.to_string().contains("plan_cache_mode"),
        "the error names the key: {misspelt}"
    );
    env.cleanup().await;
}
