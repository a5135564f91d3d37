//! Statistical process control on a series: a value beyond the process limits raises an escalation even
//! while it is green against target, and the next ordinary value resolves it; direction of travel is
//! reported with every recorded observation.

use prost::Message;
use trust_e2e::TestEnv;
use trust_e2e::fixtures::{NEET, batch, observation, quarter};
use trust_proto::common::v1::Rag;

const SOUTH: &str = "AREA_SOUTH";

#[tokio::test]
async fn a_point_beyond_the_process_limits_raises_and_an_ordinary_point_resolves() {
    let env = TestEnv::new().await;
    let (running, _operator) = trust_e2e::start_ingest(&env).await;
    let mut client = trust_e2e::partner_client(&env, &running, "connexions").await;

    // Twelve quarters around 5.0 (mean 5.0, mean moving range 2.4/11, upper limit about 5.58): the baseline.
    let baseline = [5.0, 5.2, 4.8, 5.1, 4.9, 5.0, 5.2, 4.8, 5.1, 4.9, 5.0, 5.0];
    let observations = baseline
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let i = i32::try_from(i).expect("small");
            observation(NEET, SOUTH, quarter(2023 + i / 4, i % 4 + 1), *value)
        })
        .collect();
    let mut history = batch("baseline", observations);
    history.partner_code = "connexions".into();
    let receipt = client
        .submit_observations(history)
        .await
        .expect("baseline")
        .into_inner();
    assert_eq!(receipt.created, 12, "{receipt:?}");

    // 5.9 is green against the city target of 6.0, but beyond the upper process limit: a concern for an
    // indicator where lower is better.
    let mut spike = batch("spike", vec![observation(NEET, SOUTH, quarter(2026, 1), 5.9)]);
    spike.partner_code = "connexions".into();
    let receipt = client
        .submit_observations(spike)
        .await
        .expect("spike")
        .into_inner();
    assert_eq!(receipt.created, 1, "an outlier is stored");
    assert_eq!(receipt.flags.len(), 1, "and flagged: {receipt:?}");
    assert!(receipt.flags[0].reason.contains("outlier"), "{:?}", receipt.flags);
    let pool = env.pool("trust_ingest", "ingest").await;
    let open: Vec<(String, String)> =
        sqlx::query_as("SELECT rule, dedup_key FROM escalation WHERE resolved_at IS NULL ORDER BY rule")
            .fetch_all(&pool)
            .await
            .expect("escalations");
    assert_eq!(
        open,
        vec![(
            "spc-beyond-limits".to_owned(),
            format!("ingest/spc-beyond-limits/{NEET}/{SOUTH}")
        )],
        "only the SPC rule fires; the value is within target"
    );

    // Back to an ordinary value: the escalation resolves.
    let mut calm = batch("calm", vec![observation(NEET, SOUTH, quarter(2026, 2), 5.0)]);
    calm.partner_code = "connexions".into();
    client.submit_observations(calm).await.expect("calm");
    let still_open: i64 = sqlx::query_scalar("SELECT count(*) FROM escalation WHERE resolved_at IS NULL")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(still_open, 0);
    let resolved: Option<String> =
        sqlx::query_scalar("SELECT rule FROM escalation WHERE resolved_at IS NOT NULL")
            .fetch_optional(&pool)
            .await
            .expect("resolved");
    assert_eq!(resolved.as_deref(), Some("spc-beyond-limits"));

    // A red value changes the series' status, announced on ingest.status.changed.
    let mut red = batch("red", vec![observation(NEET, SOUTH, quarter(2026, 3), 7.0)]);
    red.partner_code = "connexions".into();
    client.submit_observations(red).await.expect("red");
    let js = async_nats::jetstream::new(env.nats().await);
    let namespace = trust_runtime::bus::Namespace::new(env.namespace.clone());
    let stream = js.get_stream(namespace.stream("INGEST")).await.expect("stream");
    let changed = trust_e2e::eventually(
        std::time::Duration::from_secs(10),
        "the status change event",
        || {
            let stream = stream.clone();
            let subject = env.subject("ingest.status.changed");
            async move {
                let message = stream.get_last_raw_message_by_subject(&subject).await.ok()?;
                let event = trust_proto::ingest::v1::StatusChanged::decode(message.payload).ok()?;
                (event.to_rag == Rag::Red as i32).then_some(event)
            }
        },
    )
    .await;
    assert_eq!(changed.from_rag, Rag::Green as i32);
    assert_eq!(changed.target, Some(6.0));

    // The SPC state followed the series without reading history.
    let last: (i32, i32) =
        sqlx::query_as("SELECT last_year, last_number FROM series_state WHERE locality_code = $1")
            .bind(SOUTH)
            .fetch_one(&pool)
            .await
            .expect("state");
    assert_eq!(last, (2026, 3));
    running.stop().await.expect("stop");
    env.cleanup().await;
}
