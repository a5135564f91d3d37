//! The catalogue is declarative and versioned: what is loaded reads back the same, with outcomes in both
//! frameworks and the priorities under them; an older version is refused; invalid entries are named.

use trust_e2e::TestEnv;
use trust_e2e::fixtures;
use trust_proto::ingest::v1 as pb;

#[tokio::test]
async fn a_versioned_catalogue_reads_back_and_an_older_version_is_refused() {
    let env = TestEnv::new().await;
    let (running, mut client) = trust_e2e::start_ingest(&env).await;

    let mut catalogue = fixtures::catalogue();
    catalogue.version = 2;
    catalogue.loaded_by = "performance team".into();
    catalogue.outcomes = vec![
        pb::Outcome {
            code: "ECM_ENJOY_AND_ACHIEVE".into(),
            name: "Enjoy and achieve".into(),
            framework: "ECM_2006".into(),
        },
        pb::Outcome {
            code: "DO_WELL_IN_LEARNING".into(),
            name: "Do well in learning and have skills for life".into(),
            framework: "PLAN_2011".into(),
        },
    ];
    catalogue.priorities = vec![pb::Priority {
        code: "REDUCE_NEET".into(),
        name: "Increase participation in learning and employment at 16-18".into(),
        outcome_code: "DO_WELL_IN_LEARNING".into(),
    }];
    catalogue.indicators[0].priority_code = "REDUCE_NEET".into();
    let loaded = client
        .put_catalogue(catalogue.clone())
        .await
        .expect("load")
        .into_inner();
    assert_eq!((loaded.version, loaded.outcomes, loaded.priorities), (2, 2, 1));

    let read = client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!((read.version, read.loaded_by.as_str()), (2, "performance team"));
    assert_eq!(read.priorities, catalogue.priorities);
    let neet = read
        .indicators
        .iter()
        .find(|i| i.code == fixtures::NEET)
        .expect("NEET");
    let expected = catalogue
        .indicators
        .iter()
        .find(|i| i.code == fixtures::NEET)
        .expect("NEET");
    assert_eq!(neet, expected, "an indicator reads back as loaded");
    assert_eq!(read.targets.len(), catalogue.targets.len());
    assert_eq!(read.outcomes.len(), 2);

    let mut older = catalogue.clone();
    older.version = 1;
    let refused = client.put_catalogue(older).await.expect_err("older version");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("older than version 2"),
        "{}",
        refused.message()
    );

    let mut bad = pb::Catalogue::default();
    bad.outcomes.push(pb::Outcome {
        code: "X".into(),
        name: "X".into(),
        framework: "ECM_1999".into(),
    });
    let refused = client.put_catalogue(bad).await.expect_err("bad framework");
    assert!(
        refused.message().contains("outcome X: framework"),
        "{}",
        refused.message()
    );
    running.stop().await.expect("stop");
    env.cleanup().await;
}
