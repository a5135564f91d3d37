//! Corrections as revisions with reason and author, approval (locking) and audited unlock, valid ranges,
//! and targets effective for a period range, through indicator ingest's gRPC API.

use trust_e2e::TestEnv;
use trust_e2e::fixtures::{self, EAST, NEET, batch, observation, quarter};
use trust_proto::common::v1::Rag;
use trust_proto::ingest::v1 as pb;

type Client = trust_e2e::IngestClient;

/// The environment, the service, an operator's client and Connexions' client.
async fn start() -> (TestEnv, trust_runtime::RunningService, Client, Client) {
    let env = TestEnv::new().await;
    let (running, client) = trust_e2e::start_ingest(&env).await;
    let connexions = trust_e2e::partner_client(&env, &running, "connexions").await;
    (env, running, client, connexions)
}

/// Submit as Connexions (its client) a value for NEET in East in 2026-Q1.
async fn submit(client: &mut Client, id: &str, value: f64, reason: &str) -> pb::SubmissionReceipt {
    let mut b = batch(id, vec![observation(NEET, EAST, quarter(2026, 1), value)]);
    b.partner_code = "connexions".into();
    b.submitted_by = "data officer".into();
    b.observations[0].correction_reason = reason.into();
    client.submit_observations(b).await.expect("submit").into_inner()
}

async fn audit_actions(env: &TestEnv) -> Vec<(String, String, String)> {
    let pool = env.pool("trust_ingest", "ingest").await;
    sqlx::query_as("SELECT actor, action, reason FROM audit_log ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("audit log")
}

#[tokio::test]
async fn corrections_keep_history_with_reason_and_author() {
    let (env, running, mut client, mut connexions) = start().await;
    assert_eq!(submit(&mut connexions, "r1", 7.1, "").await.created, 1);
    assert_eq!(
        submit(&mut connexions, "r2", 6.4, "late destinations returns")
            .await
            .updated,
        1
    );
    assert_eq!(
        submit(&mut connexions, "r3", 6.4, "").await.unchanged,
        1,
        "same value is not a revision"
    );
    let series = client
        .get_series(pb::GetSeriesRequest {
            indicator_code: NEET.into(),
            locality_code: EAST.into(),
        })
        .await
        .expect("series")
        .into_inner();
    assert_eq!(series.points.len(), 1);
    let revisions = &series.points[0].revisions;
    assert_eq!(
        revisions.iter().map(|r| r.value).collect::<Vec<_>>(),
        vec![7.1, 6.4]
    );
    assert_eq!(revisions[1].correction_reason, "late destinations returns");
    assert_eq!(revisions[1].submitted_by, "data officer");
    running.stop().await.expect("stop");
    env.cleanup().await;
}

#[tokio::test]
async fn an_approved_period_is_locked_until_an_audited_unlock() {
    let (env, running, mut client, mut connexions) = start().await;
    submit(&mut connexions, "a1", 7.1, "").await;
    let approved = client
        .approve_period(pb::ApprovePeriodRequest {
            indicator_code: NEET.into(),
            period: Some(quarter(2026, 1)),
            approved_by: "performance lead".into(),
        })
        .await
        .expect("approve")
        .into_inner();
    assert!(approved.locked);

    let wrong_type = client
        .approve_period(pb::ApprovePeriodRequest {
            indicator_code: NEET.into(),
            period: Some(trust_proto::common::v1::Period {
                r#type: trust_proto::common::v1::PeriodType::Month as i32,
                year: 2026,
                number: 3,
            }),
            approved_by: "performance lead".into(),
        })
        .await
        .expect_err("NEET is quarterly");
    assert_eq!(wrong_type.code(), tonic::Code::InvalidArgument);

    let refused = submit(&mut connexions, "a2", 6.0, "revised cohort").await;
    assert_eq!(refused.outcome, pb::SubmissionOutcome::Rejected as i32);
    assert_eq!(refused.rejections[0].field, "period");
    assert!(
        refused.rejections[0].reason.contains("is locked"),
        "{}",
        refused.rejections[0].reason
    );

    let no_reason = client
        .unlock_period(pb::UnlockPeriodRequest {
            indicator_code: NEET.into(),
            period: Some(quarter(2026, 1)),
            unlocked_by: "performance lead".into(),
            reason: String::new(),
        })
        .await
        .expect_err("an unlock needs a reason");
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    client
        .unlock_period(pb::UnlockPeriodRequest {
            indicator_code: NEET.into(),
            period: Some(quarter(2026, 1)),
            unlocked_by: "performance lead".into(),
            reason: "Connexions found unrecorded destinations".into(),
        })
        .await
        .expect("unlock");
    assert_eq!(
        submit(&mut connexions, "a3", 6.0, "revised cohort").await.updated,
        1
    );

    let actions = audit_actions(&env).await;
    let periods: Vec<_> = actions
        .iter()
        .filter(|(_, action, _)| action.starts_with("period."))
        .collect();
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[1].1, "period.unlocked");
    assert_eq!(periods[1].2, "Connexions found unrecorded destinations");
    running.stop().await.expect("stop");
    env.cleanup().await;
}

#[tokio::test]
async fn values_outside_the_valid_range_are_refused() {
    let (env, running, _client, mut connexions) = start().await;
    let receipt = submit(&mut connexions, "v1", 55.0, "").await;
    assert_eq!(
        receipt.rejections.first().map(|r| r.field.as_str()),
        Some("value"),
        "{receipt:?}"
    );
    assert!(
        receipt.rejections[0].reason.contains("outside the valid range"),
        "{:?}",
        receipt.rejections
    );
    running.stop().await.expect("stop");
    env.cleanup().await;
}

#[tokio::test]
async fn the_target_in_force_for_the_period_decides_rag_and_target_changes_are_audited() {
    let (env, running, mut client, mut connexions) = start().await;
    // From 2026-Q1 East's target tightens from 8.0 to 7.0.
    let mut tighter = fixtures::target(NEET, EAST, 7.0, 0.2);
    tighter.from_period = Some(quarter(2026, 1));
    tighter.set_by = "ISCB".into();
    client
        .put_catalogue(pb::Catalogue {
            targets: vec![tighter],
            ..Default::default()
        })
        .await
        .expect("new target");
    let mut b = batch(
        "t1",
        vec![
            observation(NEET, EAST, quarter(2025, 4), 7.5),
            observation(NEET, EAST, quarter(2026, 1), 7.5),
        ],
    );
    b.partner_code = "connexions".into();
    connexions.submit_observations(b).await.expect("submit");
    let stored = client
        .list_observations(pb::ListObservationsRequest {
            indicator_code: NEET.into(),
            locality_code: EAST.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .observations;
    let rags: Vec<i32> = stored.iter().map(|o| o.rag).collect();
    assert_eq!(
        rags,
        vec![Rag::Green as i32, Rag::Red as i32],
        "8.0 applies to 2025-Q4, 7.0 to 2026-Q1"
    );
    let actions = audit_actions(&env).await;
    assert!(
        actions
            .iter()
            .any(|(actor, action, _)| actor == "ISCB" && action == "target.set"),
        "{actions:?}"
    );
    running.stop().await.expect("stop");
    env.cleanup().await;
}

#[tokio::test]
async fn a_partner_limited_to_an_area_may_submit_for_it_and_its_clusters_only() {
    let (env, running, mut client, mut connexions) = start().await;
    client
        .put_catalogue(pb::Catalogue {
            partners: vec![pb::Partner {
                code: "connexions".into(),
                name: "Connexions West Yorkshire".into(),
                may_submit: vec![NEET.into()],
                may_submit_localities: vec!["AREA_SOUTH".into()],
                ..Default::default()
            }],
            localities: vec![pb::Locality {
                code: "CLUSTER_MORLEY".into(),
                name: "Morley".into(),
                parent_code: "AREA_SOUTH".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("restrict connexions to South Leeds");
    let mut b = batch(
        "places",
        vec![
            observation(NEET, "CLUSTER_MORLEY", quarter(2026, 1), 5.0),
            observation(NEET, EAST, quarter(2026, 1), 5.0),
        ],
    );
    b.partner_code = "connexions".into();
    b.mode = pb::SubmissionMode::Partial as i32;
    let receipt = connexions
        .submit_observations(b)
        .await
        .expect("submit")
        .into_inner();
    assert_eq!((receipt.created, receipt.rejected), (1, 1), "{receipt:?}");
    assert_eq!(receipt.rejections[0].position, 1);
    assert_eq!(receipt.rejections[0].field, "locality_code");
    assert!(
        receipt.rejections[0]
            .reason
            .contains("information sharing protocol")
    );
    running.stop().await.expect("stop");
    env.cleanup().await;
}
