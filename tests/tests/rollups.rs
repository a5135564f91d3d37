//! Roll-ups to parent localities: from summed numerators and denominators, using the hierarchy in force on
//! each period's first day.

use trust_e2e::TestEnv;
use trust_e2e::fixtures::{self, CITY, EAST, NEET, batch, observation, quarter};
use trust_proto::common::v1::{DirectionOfTravel, Rag};
use trust_proto::ingest::v1 as pb;

const SOUTH: &str = "AREA_SOUTH";

fn counted(locality: &str, q: i32, numerator: f64, denominator: f64) -> pb::Observation {
    let mut o = observation(NEET, locality, quarter(2026, q), numerator / denominator * 100.0);
    o.numerator = Some(numerator);
    o.denominator = Some(denominator);
    o
}

#[tokio::test]
async fn roll_ups_sum_numerators_and_follow_the_hierarchy_in_force() {
    let env = TestEnv::new().await;
    let (running, mut client) = trust_e2e::start_ingest(&env).await;
    let mut catalogue = fixtures::catalogue();
    catalogue.localities.push(pb::Locality {
        code: "CLUSTER_A".into(),
        name: "Cluster A".into(),
        parent_code: EAST.into(),
        ..Default::default()
    });
    // Cluster B moves from East to South on 1 April 2026.
    catalogue.localities.push(pb::Locality {
        code: "CLUSTER_B".into(),
        name: "Cluster B".into(),
        parent_code: EAST.into(),
        parent_changes: vec![pb::LocalityParentChange {
            parent_code: SOUTH.into(),
            effective_from: "2026-04-01".into(),
        }],
    });
    client.put_catalogue(catalogue).await.expect("catalogue");
    let mut connexions = trust_e2e::partner_client(&env, &running, "connexions").await;

    let mut submission = batch(
        "clusters",
        vec![
            counted("CLUSTER_A", 1, 5.0, 100.0),
            counted("CLUSTER_B", 1, 270.0, 900.0),
            counted("CLUSTER_A", 2, 5.0, 100.0),
            counted("CLUSTER_B", 2, 270.0, 900.0),
        ],
    );
    submission.partner_code = "connexions".into();
    let receipt = connexions
        .submit_observations(submission)
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(receipt.created, 4, "{receipt:?}");

    let pool = env.pool("trust_ingest", "ingest").await;
    let rollups: Vec<(String, i32, f64, i32)> = sqlx::query_as(
        "SELECT locality_code, period_number, value, contributors FROM rollup \
         ORDER BY locality_code, period_number",
    )
    .fetch_all(&pool)
    .await
    .expect("rollups");
    let find = |locality: &str, q: i32| {
        rollups
            .iter()
            .find(|(l, n, _, _)| l == locality && *n == q)
            .map(|(_, _, value, contributors)| ((value * 1000.0).round() / 1000.0, *contributors))
    };
    // Q1: both clusters in East: (5 + 270) / (100 + 900) = 27.5%, not the 17.5% an average of rates gives.
    assert_eq!(find(EAST, 1), Some((27.5, 2)));
    assert_eq!(find(SOUTH, 1), None);
    // Q2: cluster B is in South now.
    assert_eq!(find(EAST, 2), Some((5.0, 1)));
    assert_eq!(find(SOUTH, 2), Some((30.0, 1)));
    // The city rolls up from its areas.
    assert_eq!(find(CITY, 1), Some((27.5, 1)));
    assert_eq!(find(CITY, 2), Some((27.5, 2)));

    // The board shows each locality's latest value: reported for clusters, rolled up for areas and the city.
    let board = client
        .get_status_board(pb::GetStatusBoardRequest {
            indicator_codes: vec![NEET.into()],
        })
        .await
        .expect("board")
        .into_inner();
    let row = |locality: &str| {
        board
            .rows
            .iter()
            .find(|r| r.locality_code == locality)
            .expect(locality)
            .clone()
    };
    let east = row(EAST);
    assert_eq!(east.source, pb::ValueSource::RolledUp as i32);
    assert_eq!(
        (east.period_label.as_str(), east.value, east.target),
        ("2026-Q2", Some(5.0), Some(8.0))
    );
    assert_eq!(east.rag, Rag::Green as i32);
    assert_eq!(
        east.direction_vs_previous,
        DirectionOfTravel::Improving as i32,
        "27.5% to 5%, lower is better"
    );
    let city = row(CITY);
    assert_eq!(city.rag, Rag::Red as i32, "27.5% against the city target of 6%");
    assert_eq!(row("CLUSTER_B").source, pb::ValueSource::Reported as i32);

    // A numerator below the indicator's small-number threshold (5) is suppressed in what is shown.
    let mut small = batch("small", vec![counted("CLUSTER_A", 3, 3.0, 100.0)]);
    small.partner_code = "connexions".into();
    connexions.submit_observations(small).await.expect("small");
    let board = client
        .get_status_board(pb::GetStatusBoardRequest {
            indicator_codes: vec![NEET.into()],
        })
        .await
        .expect("board")
        .into_inner();
    let cluster = board
        .rows
        .iter()
        .find(|r| r.locality_code == "CLUSTER_A")
        .expect("cluster A");
    assert!(cluster.suppressed);
    assert_eq!(cluster.value, None);
    assert_eq!(cluster.period_label, "2026-Q3");

    running.stop().await.expect("stop");
    env.cleanup().await;
}
