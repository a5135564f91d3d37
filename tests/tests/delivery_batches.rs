//! Delivery in leased batches (digests off), against the real Postgres and SMTP server:
//! - emails queued together go out over one SMTP connection, each exactly once;
//! - a batch claimed by a worker that died (its lease left behind, never marked) is not sent while the
//!   lease lasts, then exactly once, and the dead worker's late outcome is not written over the new one;
//! - a worker stopped in the middle of a batch gives back what it had not sent, due at once.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use trust_e2e::notifications::{
    NotificationsClient, all_deliveries, await_all_sent, level, member, publish_escalation,
    start_notifications_with,
};
use trust_e2e::smtp::SmtpSink;
use trust_e2e::{TestEnv, eventually};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;
use uuid::Uuid;

/// How many times each Message-ID arrived.
fn message_id_counts(smtp: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in smtp.messages() {
        if let Some(line) = message
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        {
            let id = line.split_once(':').map_or("", |(_, id)| id).trim().to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

fn message_id(delivery_id: &str) -> String {
    format!("<{delivery_id}@trust.localhost>")
}

/// Migrate, and queue `count` emails for one alert straight into the table, as the receiver would; their
/// ids in the order they are claimed.
async fn queue_directly(pool: &sqlx::PgPool, count: usize) -> Vec<Uuid> {
    trust_runtime::db::migrate(pool, &notifications::MIGRATIONS)
        .await
        .expect("migrate");
    let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    // Queued together (the same due time), they are claimed in id order.
    ids.sort();
    sqlx::query(
        "INSERT INTO alert (dedup_key, occurrence_id, state, source, rule, summary, last_event) \
         VALUES ('test/lease', 'occ-1', 'firing', 'test', 'lease', 'queued by the test', '\\x')",
    )
    .execute(pool)
    .await
    .expect("alert");
    sqlx::query(
        "INSERT INTO delivery (id, dedup_key, occurrence_id, event, staff_code, email, subject, body_text) \
         SELECT id, 'test/lease', 'occ-1', 'raised', 'person-' || n, 'person-' || n || '@example.org', \
                'Lease test ' || n, 'Queued by the test.' \
         FROM UNNEST($1::uuid[]) WITH ORDINALITY AS t (id, n)",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .expect("deliveries");
    ids
}

#[tokio::test]
async fn emails_queued_together_go_out_over_one_smtp_connection_each_once() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start_counting().await;
    // One sender: several woken by the same NOTIFY may split a burst between them (each skips the rows
    // another is locking), each part then going over a conversation of its own.
    let running = start_notifications_with(&env, smtp.port, &[("delivery.senders", "1")]).await;
    let mut client = NotificationsClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");

    const PEOPLE: usize = 12;
    let codes: Vec<String> = (0..PEOPLE).map(|n| format!("lead-{n}")).collect();
    let people: Vec<&str> = codes.iter().map(String::as_str).collect();
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: people.iter().map(|code| member(code, &[], &[])).collect(),
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    client
        .put_routing(notify::RoutingConfig {
            default_policy: "everyone".into(),
            routes: vec![],
            policies: vec![notify::EscalationPolicy {
                name: "everyone".into(),
                levels: vec![level(&[], &people, "1h")],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            }],
        })
        .await
        .expect("routing");

    // One raise: its first level queues an email to each of the twelve at once.
    let event = alerting::EscalationRaised {
        dedup_key: "test/batch/1".into(),
        occurrence_id: "occ-1".into(),
        source: "test".into(),
        rule: "batch".into(),
        summary: "twelve people to tell".into(),
        ..Default::default()
    };
    publish_escalation(&env, "test.escalation.raised", "raise-1", event.encode_to_vec()).await;
    let deliveries = await_all_sent(&client, PEOPLE, Duration::from_secs(20)).await;
    assert_eq!(deliveries.len(), PEOPLE);
    // Anything sent twice would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let counts = message_id_counts(&smtp);
    assert_eq!(counts.len(), PEOPLE, "one email per person: {counts:?}");
    for delivery in &deliveries {
        assert_eq!(
            counts.get(&message_id(&delivery.id)),
            Some(&1),
            "delivery {} emailed exactly once: {counts:?}",
            delivery.id
        );
        assert_eq!(delivery.attempts, 1);
    }
    assert_eq!(
        smtp.connections(),
        1,
        "the emails claimed together shared one SMTP conversation"
    );

    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_left_by_a_dead_worker_is_sent_once_when_its_lease_ends() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start_counting().await;
    let pool = env.pool("trust_notifications", "notifications").await;

    // Five emails queued for an alert.
    const EMAILS: usize = 5;
    let ids = queue_directly(&pool, EMAILS).await;

    // A worker claims them all, then is killed before sending any or recording anything.
    let dead = Uuid::new_v4();
    let mut conn = pool.acquire().await.expect("connection");
    let claimed = notifications::store::claim_batch(&mut conn, dead, Duration::from_secs(600), 50)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids,
        "the whole batch, earliest due first"
    );
    assert!(
        notifications::store::claim_batch(&mut conn, Uuid::new_v4(), Duration::from_secs(600), 50)
            .await
            .expect("claim again")
            .is_empty(),
        "a leased delivery is due to no one else"
    );

    // A new worker leaves them alone while the lease lasts...
    let running = start_notifications_with(&env, smtp.port, &[]).await;
    let client = NotificationsClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        smtp.messages().is_empty(),
        "nothing sent under the dead worker's lease"
    );
    assert!(
        all_deliveries(&client)
            .await
            .iter()
            .all(|d| d.state == notify::DeliveryState::Pending as i32)
    );

    // ...and sends each once when it ends (here: made to have ended).
    sqlx::query("UPDATE delivery SET next_attempt_at = now() - interval '1 second' WHERE claim = $1")
        .bind(dead)
        .execute(&pool)
        .await
        .expect("end the lease");
    let deliveries = await_all_sent(&client, EMAILS, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = message_id_counts(&smtp);
    assert_eq!(counts.len(), EMAILS, "{counts:?}");
    for id in &ids {
        assert_eq!(
            counts.get(&message_id(&id.to_string())),
            Some(&1),
            "{id} emailed exactly once: {counts:?}"
        );
    }
    assert!(deliveries.iter().all(|d| d.attempts == 1));
    assert!(
        smtp.connections() <= 4,
        "one conversation per batch, at most one batch per sender: {}",
        smtp.connections()
    );

    // The dead worker's outcomes, arriving late, are not recorded over the new claim's.
    assert!(
        !notifications::store::mark_retry_claimed(&mut conn, ids[0], dead, Duration::ZERO, "late")
            .await
            .expect("late mark")
    );
    assert_eq!(
        notifications::store::release(&mut conn, &ids, dead)
            .await
            .expect("late release"),
        0
    );
    let (state, attempts, last_error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, attempts, last_error FROM delivery WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&pool)
            .await
            .expect("delivery");
    assert_eq!((state.as_str(), attempts, last_error), ("sent", 1, None));
    eventually(Duration::from_secs(5), "no claim left", || {
        let pool = pool.clone();
        async move {
            let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery WHERE claim IS NOT NULL")
                .fetch_one(&pool)
                .await
                .ok()?;
            (claimed == 0).then_some(())
        }
    })
    .await;

    drop(conn);
    pool.close().await;
    running.stop().await.expect("clean stop");
    smtp.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_worker_stopped_mid_batch_gives_back_what_it_had_not_sent() {
    let env = TestEnv::new().await;
    let pool = env.pool("trust_notifications", "notifications").await;
    let ids = queue_directly(&pool, 3).await;
    // A relay that takes the connection and never answers: the first email hangs.
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = silent.local_addr().expect("address").port();
    let relay = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let running = start_notifications_with(&env, port, &[]).await;
    eventually(Duration::from_secs(10), "the batch to be claimed", || {
        let pool = pool.clone();
        async move {
            let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery WHERE claim IS NOT NULL")
                .fetch_one(&pool)
                .await
                .ok()?;
            (claimed == 3).then_some(())
        }
    })
    .await;

    running.stop().await.expect("clean stop");
    let rows: Vec<(Uuid, String, i32, Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT id, state, attempts, claim, next_attempt_at <= now() FROM delivery ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("deliveries");
    assert_eq!(
        rows,
        ids.iter()
            .map(|id| (*id, "pending".to_owned(), 0, None, true))
            .collect::<Vec<_>>(),
        "every delivery back in the queue, due now, no attempt counted"
    );

    relay.abort();
    pool.close().await;
    env.cleanup().await;
}
