//! Who is calling indicator-ingest on gRPC, and the information sharing protocol's read side: every
//! IndicatorIngest call needs a bearer token naming a partner or an operator; a partner submits only as
//! itself, cannot load the catalogue or approve periods, and reads only what it may submit or may read
//! (an area's permission covering its clusters, by the hierarchy in force in each period); an operator reads
//! everything. Credentials are issued and revoked with `trustctl credential` in the service's database.

use clap::Parser as _;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use trust_e2e::IngestUnderTest as Ingest;
use trust_e2e::fixtures::{CITY, EAST, LAC_DENTAL, NEET, batch, observation, quarter};
use trust_e2e::{IngestClient, TestEnv};
use trust_proto::ingest::v1 as pb;

const SOUTH: &str = "AREA_SOUTH";

/// A NEET value with the counts behind it, so that it rolls up to the areas and the city.
fn counted(locality: &str, q: i32, numerator: f64, denominator: f64) -> pb::Observation {
    let mut o = observation(NEET, locality, quarter(2026, q), numerator / denominator * 100.0);
    o.numerator = Some(numerator);
    o.denominator = Some(denominator);
    o
}

/// Submit one value as the client's partner (the batch names no partner) and expect it stored.
async fn store(client: &mut IngestClient, batch_id: &str, observations: Vec<pb::Observation>) {
    let receipt = client
        .submit_observations(batch(batch_id, observations))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(
        receipt.outcome,
        pb::SubmissionOutcome::Accepted as i32,
        "{receipt:?}"
    );
}

/// Connexions stores NEET in `neet_locality` and pct stores dental checks in East, both for 2026-Q1.
async fn store_neet_and_dental(ingest: &Ingest, neet_locality: &str, neet: f64) {
    let mut connexions = ingest.as_partner("connexions").await;
    let mut pct = ingest.as_partner("pct").await;
    store(
        &mut connexions,
        "neet",
        vec![observation(NEET, neet_locality, quarter(2026, 1), neet)],
    )
    .await;
    store(
        &mut pct,
        "dental",
        vec![observation(LAC_DENTAL, EAST, quarter(2026, 1), 92.0)],
    )
    .await;
}

/// The refusal of a call: its code and message.
fn refusal<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call is refused");
    (status.code(), status.message().to_owned())
}

/// (indicator, locality) of every row of a board, in order.
fn cells(board: &pb::StatusBoard) -> Vec<(String, String)> {
    board
        .rows
        .iter()
        .map(|r| (r.indicator_code.clone(), r.locality_code.clone()))
        .collect()
}

async fn board(client: &mut IngestClient, indicators: &[&str]) -> Result<pb::StatusBoard, tonic::Status> {
    client
        .get_status_board(pb::GetStatusBoardRequest {
            indicator_codes: indicators.iter().map(|s| (*s).to_owned()).collect(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn series(
    client: &mut IngestClient,
    indicator: &str,
    locality: &str,
) -> Result<pb::Series, tonic::Status> {
    client
        .get_series(pb::GetSeriesRequest {
            indicator_code: indicator.into(),
            locality_code: locality.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn pair(indicator: &str, locality: &str) -> (String, String) {
    (indicator.to_owned(), locality.to_owned())
}

#[tokio::test]
async fn calls_without_a_token_or_with_an_unknown_or_revoked_one_are_unauthenticated() {
    let ingest = Ingest::start().await;

    let mut anonymous = ingest.with_token(None).await;
    let (code, message) = refusal(anonymous.get_catalogue(pb::GetCatalogueRequest {}).await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(message.contains("authorization: Bearer <token>"), "{message}");
    let (code, _) = refusal(anonymous.submit_observations(batch("b", vec![])).await);
    assert_eq!(code, Code::Unauthenticated, "a submission needs a token too");

    let mut unknown = ingest
        .with_token(Some(
            "trust_0000000000000000000000000000000000000000000000000000000000000000",
        ))
        .await;
    let (code, message) = refusal(board(&mut unknown, &[]).await.map(tonic::Response::new));
    assert_eq!(code, Code::Unauthenticated);
    assert!(message.contains("unknown token"), "{message}");

    let token = ingest.env.partner_token("connexions").await;
    let mut revoked = ingest.with_token(Some(&token)).await;
    revoked
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect("the token works before it is revoked");
    let pool = ingest.env.pool("trust_ingest", "ingest").await;
    let mut conn = pool.acquire().await.expect("connect");
    let gone = indicator_ingest::access::revoke(&mut conn, indicator_ingest::access::Revoke::Token(&token))
        .await
        .expect("revoke");
    assert_eq!(gone.len(), 1);
    let (code, message) = refusal(revoked.get_catalogue(pb::GetCatalogueRequest {}).await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(message.contains("revoked"), "{message}");
    drop(conn);

    // Health (and reflection, and dead letters) stay open: only IndicatorIngest asks for a credential.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", ingest.running.grpc_addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "trust.ingest.v1.IndicatorIngest".into(),
        })
        .await
        .expect("health without a token")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    ingest.finish().await;
}

#[tokio::test]
async fn a_partner_submits_only_as_itself_and_an_operator_cannot_submit() {
    let mut ingest = Ingest::start().await;
    let mut connexions = ingest.as_partner("connexions").await;

    let mut forged = batch("forged", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]);
    forged.partner_code = "pct".into();
    let (code, message) = refusal(connexions.submit_observations(forged).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(
        message.contains("\"pct\"") && message.contains("\"connexions\""),
        "names both partners: {message}"
    );

    let mut operator_batch = batch(
        "by-operator",
        vec![observation(NEET, EAST, quarter(2026, 1), 7.1)],
    );
    operator_batch.partner_code = "connexions".into();
    let (code, message) = refusal(ingest.client.submit_observations(operator_batch).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("comes from a partner"), "{message}");
    assert!(ingest.stored(NEET).await.is_empty(), "nothing refused is stored");

    // A batch naming no partner is the caller's.
    let receipt = connexions
        .submit_observations(batch("own", vec![observation(NEET, EAST, quarter(2026, 1), 7.1)]))
        .await
        .expect("own submission")
        .into_inner();
    assert_eq!(receipt.partner_code, "connexions");
    assert_eq!(receipt.created, 1, "{receipt:?}");
    let stored = ingest.stored(NEET).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].partner_code, "connexions");

    // Receipts: a partner its own (by default), not another's; an operator any.
    let own = connexions
        .get_receipt(pb::GetReceiptRequest {
            partner_code: String::new(),
            batch_id: "own".into(),
        })
        .await
        .expect("own receipt")
        .into_inner();
    assert_eq!(own.batch_id, "own");
    let mut pct = ingest.as_partner("pct").await;
    let (code, message) = refusal(
        pct.get_receipt(pb::GetReceiptRequest {
            partner_code: "connexions".into(),
            batch_id: "own".into(),
        })
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("only its own receipts"), "{message}");
    ingest
        .client
        .get_receipt(pb::GetReceiptRequest {
            partner_code: "connexions".into(),
            batch_id: "own".into(),
        })
        .await
        .expect("an operator reads any receipt");
    ingest.finish().await;
}

#[tokio::test]
async fn a_partner_cannot_load_the_catalogue_or_approve_or_unlock_a_period() {
    let ingest = Ingest::start().await;
    let mut connexions = ingest.as_partner("connexions").await;

    let (code, message) = refusal(connexions.put_catalogue(trust_e2e::fixtures::catalogue()).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(
        message.contains("loading the catalogue") && message.contains("operator"),
        "{message}"
    );
    let (code, _) = refusal(
        connexions
            .approve_period(pb::ApprovePeriodRequest {
                indicator_code: NEET.into(),
                period: Some(quarter(2026, 1)),
                approved_by: "connexions".into(),
            })
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    let (code, _) = refusal(
        connexions
            .unlock_period(pb::UnlockPeriodRequest {
                indicator_code: NEET.into(),
                period: Some(quarter(2026, 1)),
                unlocked_by: "connexions".into(),
                reason: "we would like to".into(),
            })
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    let pool = ingest.env.pool("trust_ingest", "ingest").await;
    let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM period_lock")
        .fetch_one(&pool)
        .await
        .expect("locks");
    assert_eq!(locks, 0, "nothing was approved");

    // Any caller with a credential reads the catalogue.
    let catalogue = connexions
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect("catalogue")
        .into_inner();
    assert!(catalogue.indicators.iter().any(|i| i.code == NEET));
    ingest.finish().await;
}

#[tokio::test]
async fn a_partner_reading_a_series_outside_its_read_permissions_is_refused_naming_it() {
    let mut ingest = Ingest::start().await;
    store_neet_and_dental(&ingest, EAST, 7.1).await;
    let mut pct = ingest.as_partner("pct").await;

    // pct may submit (so read) dental checks, not NEET.
    assert_eq!(
        series(&mut pct, LAC_DENTAL, EAST)
            .await
            .expect("own")
            .points
            .len(),
        1
    );
    let status = series(&mut pct, NEET, EAST)
        .await
        .expect_err("NEET is not pct's to read");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "indicator NEET_16_18 is outside partner pct's read permissions under the information sharing protocol"
    );
    let (code, message) = refusal(
        pct.list_observations(pb::ListObservationsRequest {
            indicator_code: NEET.into(),
            locality_code: String::new(),
        })
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("NEET_16_18"), "{message}");
    let (code, _) = refusal(board(&mut pct, &[NEET]).await.map(tonic::Response::new));
    assert_eq!(
        code,
        Code::PermissionDenied,
        "a board naming NEET is a read of it"
    );

    // Granted under the protocol, pct reads it, and may_read reads back from the catalogue.
    let mut catalogue = trust_e2e::fixtures::catalogue();
    for partner in &mut catalogue.partners {
        if partner.code == "pct" {
            partner.may_read = vec![NEET.into()];
        }
    }
    ingest.client.put_catalogue(catalogue).await.expect("grant");
    let read = ingest
        .client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect("catalogue")
        .into_inner();
    let granted = read.partners.iter().find(|p| p.code == "pct").expect("pct");
    assert_eq!(granted.may_read, vec![NEET.to_owned()]);
    assert!(granted.may_read_localities.is_empty());
    let neet = series(&mut pct, NEET, EAST).await.expect("now pct may read NEET");
    assert_eq!(neet.points.len(), 1);
    assert_eq!(neet.points[0].revisions[0].value, 7.1);
    ingest.finish().await;
}

#[tokio::test]
async fn the_status_board_for_a_partner_holds_only_what_it_may_read() {
    let ingest = Ingest::start().await;
    let mut connexions = ingest.as_partner("connexions").await;
    let mut pct = ingest.as_partner("pct").await;
    store(
        &mut connexions,
        "neet",
        vec![
            observation(NEET, EAST, quarter(2026, 1), 7.1),
            observation(NEET, SOUTH, quarter(2026, 1), 5.5),
        ],
    )
    .await;
    store(
        &mut pct,
        "dental",
        vec![observation(LAC_DENTAL, EAST, quarter(2026, 1), 92.0)],
    )
    .await;

    let seen = cells(&board(&mut connexions, &[]).await.expect("connexions' board"));
    assert!(seen.contains(&pair(NEET, EAST)), "{seen:?}");
    assert!(seen.contains(&pair(NEET, SOUTH)), "{seen:?}");
    assert!(seen.iter().all(|(indicator, _)| indicator == NEET), "{seen:?}");
    assert_eq!(
        cells(&board(&mut pct, &[]).await.expect("pct's board")),
        vec![pair(LAC_DENTAL, EAST)],
        "only pct's own indicator"
    );
    // The police may submit and read nothing in the fixture catalogue: an empty board.
    let mut police = ingest.as_partner("police").await;
    assert!(
        board(&mut police, &[])
            .await
            .expect("police board")
            .rows
            .is_empty()
    );
    ingest.finish().await;
}

#[tokio::test]
async fn an_area_read_permission_covers_its_clusters_by_the_hierarchy_in_force() {
    let ingest = Ingest::start().await;
    let mut catalogue = trust_e2e::fixtures::catalogue();
    let cluster = |code: &str, parent: &str| pb::Locality {
        code: code.into(),
        name: code.into(),
        parent_code: parent.into(),
        ..Default::default()
    };
    catalogue.localities.push(cluster("CLUSTER_EAST", EAST));
    catalogue.localities.push(cluster("CLUSTER_SOUTH", SOUTH));
    // Moves from South to East on 1 April 2026.
    let mut moving = cluster("CLUSTER_MOVING", SOUTH);
    moving.parent_changes = vec![pb::LocalityParentChange {
        parent_code: EAST.into(),
        effective_from: "2026-04-01".into(),
    }];
    catalogue.localities.push(moving);
    for partner in &mut catalogue.partners {
        if partner.code == "police" {
            partner.may_read = vec![NEET.into()];
            partner.may_read_localities = vec![EAST.into()];
        }
    }
    let mut operator = ingest.client.clone();
    operator.put_catalogue(catalogue).await.expect("catalogue");
    let mut connexions = ingest.as_partner("connexions").await;
    store(
        &mut connexions,
        "clusters",
        vec![
            counted("CLUSTER_EAST", 1, 14.0, 200.0),
            counted("CLUSTER_SOUTH", 1, 10.0, 200.0),
            counted("CLUSTER_MOVING", 1, 12.0, 200.0),
            counted("CLUSTER_MOVING", 2, 13.0, 200.0),
        ],
    )
    .await;

    let mut police = ingest.as_partner("police").await;
    let east = series(&mut police, NEET, "CLUSTER_EAST")
        .await
        .expect("a cluster of East");
    assert_eq!(east.points.len(), 1);
    let status = series(&mut police, NEET, "CLUSTER_SOUTH")
        .await
        .expect_err("a cluster of South");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "NEET_16_18 in locality CLUSTER_SOUTH is outside partner police's read permissions under the \
         information sharing protocol"
    );
    // The moving cluster was South's in 2026-Q1 and is East's from 2026-Q2: only Q2 is the police's.
    let moved = series(&mut police, NEET, "CLUSTER_MOVING")
        .await
        .expect("East's now");
    let labels: Vec<&str> = moved.points.iter().map(|p| p.period_label.as_str()).collect();
    assert_eq!(labels, vec!["2026-Q2"]);

    let seen = cells(&board(&mut police, &[]).await.expect("police board"));
    assert_eq!(
        seen,
        vec![
            pair(NEET, EAST),
            pair(NEET, "CLUSTER_EAST"),
            pair(NEET, "CLUSTER_MOVING")
        ],
        "East's own roll-up and its clusters; not South, its cluster or the city"
    );
    let operator_sees = cells(&board(&mut operator, &[NEET]).await.expect("operator board"));
    assert!(operator_sees.contains(&pair(NEET, CITY)), "{operator_sees:?}");
    assert!(operator_sees.contains(&pair(NEET, SOUTH)), "{operator_sees:?}");
    let listed = police
        .list_observations(pb::ListObservationsRequest {
            indicator_code: NEET.into(),
            locality_code: String::new(),
        })
        .await
        .expect("list")
        .into_inner()
        .observations;
    let listed: Vec<(String, String)> = listed
        .iter()
        .filter_map(|s| s.observation.as_ref())
        .map(|o| {
            let period = o
                .period
                .map(|p| format!("{}-Q{}", p.year, p.number))
                .unwrap_or_default();
            (o.locality_code.clone(), period)
        })
        .collect();
    assert_eq!(
        listed,
        vec![pair("CLUSTER_EAST", "2026-Q1"), pair("CLUSTER_MOVING", "2026-Q2")]
    );
    ingest.finish().await;
}

#[tokio::test]
async fn an_operator_reads_everything() {
    let mut ingest = Ingest::start().await;
    store_neet_and_dental(&ingest, SOUTH, 5.5).await;
    let seen = cells(&board(&mut ingest.client, &[]).await.expect("operator board"));
    assert_eq!(seen, vec![pair(LAC_DENTAL, EAST), pair(NEET, SOUTH)]);
    assert_eq!(
        series(&mut ingest.client, NEET, SOUTH)
            .await
            .expect("NEET")
            .points
            .len(),
        1
    );
    assert_eq!(
        series(&mut ingest.client, LAC_DENTAL, EAST)
            .await
            .expect("dental")
            .points
            .len(),
        1
    );
    assert_eq!(ingest.stored(LAC_DENTAL).await.len(), 1);
    ingest.finish().await;
}

#[tokio::test]
async fn changing_read_permissions_moves_the_reference_generation() {
    let ingest = Ingest::start().await;
    let pool = ingest.env.pool("trust_ingest", "ingest").await;
    let generation = || async {
        sqlx::query_scalar::<_, i64>("SELECT generation FROM reference_generation")
            .fetch_one(&pool)
            .await
            .expect("generation")
    };
    let before = generation().await;
    sqlx::query("INSERT INTO read_permission (partner_code, indicator_code) VALUES ('police', $1)")
        .bind(NEET)
        .execute(&pool)
        .await
        .expect("grant");
    let granted = generation().await;
    assert!(granted > before, "{before} -> {granted}");
    sqlx::query("INSERT INTO read_locality_permission (partner_code, locality_code) VALUES ('police', $1)")
        .bind(EAST)
        .execute(&pool)
        .await
        .expect("place");
    assert!(generation().await > granted);
    ingest.finish().await;
}

/// Run trustctl's command line (its library) and return its exit status.
async fn trustctl(args: &[&str]) -> anyhow::Result<std::process::ExitCode> {
    let cli = trustctl::cli::Cli::try_parse_from(std::iter::once("trustctl").chain(args.iter().copied()))
        .expect("a valid command line");
    trustctl::commands::run(cli).await
}

#[tokio::test]
async fn trustctl_issues_lists_and_revokes_credentials_and_sends_its_token() {
    let env = TestEnv::new().await;
    let (running, _operator) = trust_e2e::start_ingest(&env).await;
    let database_url = env.database_url("trust_ingest");
    let database = ["--database-url", database_url.as_str()];

    let issue = [
        &[
            "credential",
            "issue",
            "--partner",
            "pct",
            "--label",
            "pct warehouse",
        ][..],
        &database[..],
    ]
    .concat();
    assert_eq!(
        trustctl(&issue).await.expect("issue"),
        std::process::ExitCode::SUCCESS
    );
    let unknown = [&["credential", "issue", "--partner", "nobody"][..], &database[..]].concat();
    let err = trustctl(&unknown).await.expect_err("nobody is not a partner");
    assert!(
        format!("{err:#}").contains("\"nobody\" is not in the catalogue"),
        "{err:#}"
    );

    let pool = env.pool("trust_ingest", "ingest").await;
    let mut conn = pool.acquire().await.expect("connect");
    let listed = indicator_ingest::access::list(&mut conn).await.expect("list");
    let pct: Vec<_> = listed.iter().filter(|c| c.label == "pct warehouse").collect();
    assert_eq!(pct.len(), 1, "{listed:?}");
    assert_eq!(
        pct[0].holder,
        indicator_ingest::access::Caller::Partner("pct".into())
    );
    assert!(pct[0].revoked_at.is_none());
    let list = [&["credential", "list"][..], &database[..]].concat();
    assert_eq!(
        trustctl(&list).await.expect("list"),
        std::process::ExitCode::SUCCESS
    );

    // A token from a file, revoked with trustctl: the service refuses it from then on.
    let token = env.partner_token("connexions").await;
    let file = std::env::temp_dir().join(format!("trust-e2e-token-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("{token}\n")).expect("write token");
    let file_arg = file.display().to_string();
    let mut client = trust_e2e::ingest_client(&running, Some(&token)).await;
    client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect("before revocation");
    let revoke = [
        &["credential", "revoke", "--token-file", file_arg.as_str()][..],
        &database[..],
    ]
    .concat();
    assert_eq!(
        trustctl(&revoke).await.expect("revoke"),
        std::process::ExitCode::SUCCESS
    );
    let status = client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect_err("after revocation");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        trustctl(&revoke).await.expect("revoke again"),
        std::process::ExitCode::from(2),
        "nothing left to revoke"
    );
    let by_label = [
        &["credential", "revoke", "--label", "pct warehouse"][..],
        &database[..],
    ]
    .concat();
    assert_eq!(
        trustctl(&by_label).await.expect("by label"),
        std::process::ExitCode::SUCCESS
    );
    assert!(
        indicator_ingest::access::list(&mut conn)
            .await
            .expect("list")
            .iter()
            .filter(|c| c.label == "pct warehouse")
            .all(|c| c.revoked_at.is_some())
    );
    let _ = std::fs::remove_file(&file);

    // trustctl's gRPC commands send --token; without one the service's refusal says what to do.
    let ingest_url = format!("http://{}", running.grpc_addr);
    let err = trustctl(&["--ingest", &ingest_url, "catalogue", "show"])
        .await
        .expect_err("no token");
    assert!(format!("{err:#}").contains("--token or TRUST_TOKEN"), "{err:#}");
    let operator = env.operator_token().await;
    assert_eq!(
        trustctl(&["--ingest", &ingest_url, "--token", &operator, "board"])
            .await
            .expect("board with the operator's token"),
        std::process::ExitCode::SUCCESS
    );
    drop(conn);
    running.stop().await.expect("stop");
    env.cleanup().await;
}
