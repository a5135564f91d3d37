//! A rolling update of indicator-ingest under load loses no message and processes none twice: while two
//! partners keep publishing submissions, a replacement process starts and reports SERVING, then the old one
//! gets SIGTERM (what Kubernetes does to a pod it replaces: stop pulling, finish what it holds, flush the
//! outbox, exit); then the same again back to a third process (the roll back). At the end every batch
//! published has exactly one receipt in the stream, one processed-message record and one stored revision
//! holding the value sent.
//!
//! Each "pod" is this test binary run again with `CHILD_ENV` set, running indicator-ingest from
//! `TRUST__...` variables with the signal handling of the service's `main`. The last test is the step
//! before a pod serves: its `migrate` initContainer.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use trust_e2e::fixtures::{EAST, LAC_DENTAL, NEET, batch, observation, quarter};
use trust_e2e::{IngestClient, TestEnv, eventually, free_port};
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::{INGEST, Namespace};

/// Set (to anything) in a child: run indicator-ingest from `TRUST__` variables until SIGTERM.
const CHILD_ENV: &str = "TRUST_E2E_ROLLING_CHILD";

const SOUTH: &str = "AREA_SOUTH";
/// Who publishes what: each partner submits its own indicator.
const PARTNERS: [(&str, &str); 2] = [("connexions", NEET), ("pct", LAC_DENTAL)];
const LOCALITIES: [&str; 2] = [EAST, SOUTH];
/// Quarters 1990-Q1 to 2025-Q4: every batch a new (indicator, locality, period), so each is stored once.
const QUARTERS: usize = 36 * 4;
const CAPACITY: usize = PARTNERS.len() * LOCALITIES.len() * QUARTERS;
/// A steady stream: one batch every 20 ms (50 a second) until stopped.
const PACE: Duration = Duration::from_millis(20);
/// Batches published between one step of the roll and the next, so each runs under load.
const BETWEEN_STEPS: usize = 100;

/// Not a test of its own: the entry point of a child process (a no-op in a normal test run).
#[test]
fn ingest_pod_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config: indicator_ingest::IngestConfig =
            trust_runtime::ConfigLoader::new(indicator_ingest::DEFAULTS)
                .load()
                .expect("child configuration from TRUST__ variables");
        let running = indicator_ingest::start(config, trust_runtime::shutdown::on_signal())
            .await
            .expect("indicator-ingest in the child");
        // A failed graceful stop fails this process, which the test sees in its exit status.
        running.wait().await.expect("a clean stop after SIGTERM");
    });
}

/// One running indicator-ingest process; killed when dropped, so a failing test leaves none behind.
struct Pod {
    child: Child,
    port: u16,
}

impl Pod {
    fn start(env: &TestEnv) -> Pod {
        let port = free_port();
        let exe = std::env::current_exe().expect("this test binary");
        let child = Command::new(exe)
            .args([
                "--exact",
                "ingest_pod_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, "1")
            .env_remove(trust_runtime::config::CONFIG_FILE_ENV)
            .env("TRUST__DATABASE__URL", env.database_url("trust_ingest"))
            .env("TRUST__DATABASE__MAX_CONNECTIONS", "5")
            .env("TRUST__NATS__URL", &env.nats_url)
            .env("TRUST__NATS__NAMESPACE", &env.namespace)
            .env("TRUST__NATS__DUPLICATE_WINDOW_SECS", "120")
            .env("TRUST__GRPC__LISTEN", format!("127.0.0.1:{port}"))
            .env("TRUST__METRICS__LISTEN", "127.0.0.1:0")
            .env("TRUST__CONSUMER__ACK_WAIT_SECS", "2")
            .env("TRUST__CONSUMER__RETRY_BASE_MS", "50")
            .env("TRUST__CONSUMER__RETRY_MAX_SECS", "1")
            .env("TRUST__OUTBOX__POLL_INTERVAL_MS", "200")
            .env("TRUST__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn an indicator-ingest child");
        Pod { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the readiness probe waits for: grpc.health.v1 says SERVING.
    async fn wait_until_serving(&self) {
        let endpoint = self.endpoint();
        eventually(
            Duration::from_secs(60),
            "the new process to report SERVING",
            || {
                let endpoint = endpoint.clone();
                async move {
                    let channel = tonic::transport::Endpoint::from_shared(endpoint)
                        .ok()?
                        .connect()
                        .await
                        .ok()?;
                    let mut health = HealthClient::new(channel);
                    let status = health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .status;
                    (status == ServingStatus::Serving as i32).then_some(())
                }
            },
        )
        .await;
    }

    /// SIGTERM, as the kubelet sends it, and wait for the process to exit by itself.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the old process did not stop within 60s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One batch as published: who, and the one observation it carries.
#[derive(Debug, Clone)]
struct Sent {
    partner: &'static str,
    batch_id: String,
    indicator: &'static str,
    locality: &'static str,
    year: i32,
    quarter: i32,
    value: f64,
}

/// The n-th batch of the stream: partners, localities and quarters in turn, never the same key twice.
fn nth(n: usize) -> Sent {
    let (partner, indicator) = PARTNERS[n % PARTNERS.len()];
    let locality = LOCALITIES[(n / PARTNERS.len()) % LOCALITIES.len()];
    let index = n / (PARTNERS.len() * LOCALITIES.len());
    let value = if indicator == NEET {
        1.0 + (n % 30) as f64 * 0.5
    } else {
        50.0 + (n % 45) as f64
    };
    Sent {
        partner,
        batch_id: format!("roll-{n:04}"),
        indicator,
        locality,
        year: 1990 + (index / 4) as i32,
        quarter: (index % 4) as i32 + 1,
        value,
    }
}

/// Publish one batch after another as the partners (over JetStream, with its acknowledgement) until
/// `stop`, counting in `published`.
async fn publish_steadily(
    nats: async_nats::Client,
    namespace: Namespace,
    published: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Vec<Sent> {
    let js = async_nats::jetstream::new(nats);
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(PACE);
    for n in 0..CAPACITY {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let one = nth(n);
        let payload = batch(
            &one.batch_id,
            vec![observation(
                one.indicator,
                one.locality,
                quarter(one.year, one.quarter),
                one.value,
            )],
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", one.batch_id.as_str());
        headers.insert("content-type", "application/protobuf");
        js.publish_with_headers(
            namespace.subject(&format!("ingest.submit.{}", one.partner)),
            headers,
            payload.encode_to_vec().into(),
        )
        .await
        .expect("publish")
        .await
        .expect("JetStream acknowledged the submission");
        sent.push(one);
        published.fetch_add(1, Ordering::SeqCst);
    }
    sent
}

async fn wait_for_published(published: &AtomicUsize, at_least: usize) {
    eventually(
        Duration::from_secs(60),
        "more submissions to be published",
        || async move { (published.load(Ordering::SeqCst) >= at_least).then_some(()) },
    )
    .await;
}

/// Replace `old` with a new process the way a Deployment's rolling update does (maxSurge 1,
/// maxUnavailable 0): the new one serves before the old one is told to stop.
async fn roll(env: &TestEnv, old: Pod) -> Pod {
    let new = Pod::start(env);
    new.wait_until_serving().await;
    let status = old.terminate().await;
    assert!(status.success(), "the old process stopped gracefully: {status}");
    new
}

async fn operator_client(env: &TestEnv, pod: &Pod) -> IngestClient {
    let token = env.operator_token().await;
    let channel = tonic::transport::Endpoint::from_shared(pod.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("gRPC connect");
    let token = trustctl::auth::BearerToken::optional(Some(&token)).expect("token");
    trustctl::auth::ingest_client(channel, token)
}

/// Every receipt in the INGEST stream, by (partner, batch id).
async fn receipts_in_stream(env: &TestEnv) -> HashMap<(String, String), Vec<pb::SubmissionReceipt>> {
    let js = async_nats::jetstream::new(env.nats().await);
    let namespace = Namespace::new(env.namespace.clone());
    let mut stream = js
        .get_stream(namespace.stream(INGEST.name))
        .await
        .expect("the INGEST stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let receipts_prefix = env.subject("ingest.receipts.");
    let mut receipts: HashMap<(String, String), Vec<pb::SubmissionReceipt>> = HashMap::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.expect("stream message");
        let Some(partner) = message.subject.as_str().strip_prefix(&receipts_prefix) else {
            continue;
        };
        let receipt = pb::SubmissionReceipt::decode(message.payload).expect("a receipt");
        receipts
            .entry((partner.to_owned(), receipt.batch_id.clone()))
            .or_default()
            .push(receipt);
    }
    receipts
}

#[tokio::test]
async fn rolling_indicator_ingest_under_load_processes_every_submission_exactly_once() {
    let env = TestEnv::new().await;
    let first = Pod::start(&env);
    first.wait_until_serving().await;
    operator_client(&env, &first)
        .await
        .put_catalogue(trust_e2e::fixtures::catalogue())
        .await
        .expect("load the fixture catalogue");

    let published = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let publisher = tokio::spawn(publish_steadily(
        env.nats().await,
        Namespace::new(env.namespace.clone()),
        published.clone(),
        stop.clone(),
    ));

    // Roll forward, then back, each step under a steady stream of submissions.
    wait_for_published(&published, BETWEEN_STEPS).await;
    let second = roll(&env, first).await;
    let after_first_roll = published.load(Ordering::SeqCst);
    wait_for_published(&published, after_first_roll + BETWEEN_STEPS).await;
    let third = roll(&env, second).await;
    let after_roll_back = published.load(Ordering::SeqCst);
    wait_for_published(&published, after_roll_back + BETWEEN_STEPS).await;
    stop.cancel();
    let sent = publisher.await.expect("the publisher");
    assert!(
        sent.len() < CAPACITY,
        "the stream of submissions ran out before both rolls were done; lengthen it"
    );
    let total = sent.len();
    eprintln!(
        "published {total} submissions: {after_first_roll} before the first roll completed, \
         {after_roll_back} before the roll back completed"
    );

    // Every message processed once: one processed-message record per submission (the consumer's
    // idempotency record, keyed by message id).
    let pool = env.pool("trust_ingest", "ingest").await;
    let processed: i64 = eventually(
        Duration::from_secs(90),
        "every submission to be processed",
        || {
            let pool = pool.clone();
            async move {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM processed_message WHERE consumer = 'indicator-ingest-submissions'",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                (count >= total as i64).then_some(count)
            }
        },
    )
    .await;
    assert_eq!(
        processed, total as i64,
        "one processed-message record per submission"
    );
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter")
        .fetch_one(&pool)
        .await
        .expect("dead letters");
    assert_eq!(parked, 0, "nothing parked as a dead letter");

    // Exactly one receipt per batch in the stream partners read, each accepting a newly created value.
    let receipts = eventually(Duration::from_secs(30), "a receipt for every submission", || {
        let env = &env;
        async move {
            let receipts = receipts_in_stream(env).await;
            (receipts.len() >= total).then_some(receipts)
        }
    })
    .await;
    assert_eq!(receipts.len(), total, "receipts for exactly the batches sent");
    for one in &sent {
        let key = (one.partner.to_owned(), one.batch_id.clone());
        let found = receipts.get(&key).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(found.len(), 1, "{key:?}: {} receipts", found.len());
        assert_eq!(
            (found[0].outcome, found[0].created),
            (pb::SubmissionOutcome::Accepted as i32, 1),
            "{key:?}: {:?}",
            found[0]
        );
    }

    // What is stored is what was sent: one revision of each value, from its batch (read through the
    // process now serving).
    let mut operator = operator_client(&env, &third).await;
    for indicator in [NEET, LAC_DENTAL] {
        let stored = operator
            .list_observations(pb::ListObservationsRequest {
                indicator_code: indicator.into(),
                locality_code: String::new(),
            })
            .await
            .expect("list observations")
            .into_inner()
            .observations;
        let stored: BTreeMap<(String, i32, i32), (f64, u32, String)> = stored
            .into_iter()
            .filter_map(|s| {
                let o = s.observation?;
                let period = o.period?;
                LOCALITIES.contains(&o.locality_code.as_str()).then_some((
                    (o.locality_code, period.year, period.number),
                    (o.value, s.revision, s.batch_id),
                ))
            })
            .collect();
        let expected: BTreeMap<(String, i32, i32), (f64, u32, String)> = sent
            .iter()
            .filter(|s| s.indicator == indicator)
            .map(|s| {
                (
                    (s.locality.to_owned(), s.year, s.quarter),
                    (s.value, 1, s.batch_id.clone()),
                )
            })
            .collect();
        assert_eq!(
            stored, expected,
            "{indicator}: stored values, revisions and batches"
        );
    }

    let status = third.terminate().await;
    assert!(status.success(), "the last process stopped gracefully: {status}");
    pool.close().await;
    env.cleanup().await;
}

/// What each pod's `migrate` initContainer runs (`<service> migrate`): the service's migrations, with its own
/// role, in its own schema, and nothing else. A second run (the next pod, the service's own start) is a
/// no-op, and a database that is not provisioned yet is a clear error (the initContainer restarts).
#[tokio::test]
async fn the_migrate_step_applies_each_service_s_migrations_with_its_own_role() {
    use sqlx::migrate::Migrator;
    use trust_runtime::{Platform, Settings};

    let env = TestEnv::new().await;
    let services: [(&'static str, &'static str, &str, &str, &Migrator); 4] = [
        (
            indicator_ingest::SERVICE,
            indicator_ingest::DEFAULTS,
            "trust_ingest",
            "ingest",
            &indicator_ingest::MIGRATIONS,
        ),
        (
            safeguarding_qa::SERVICE,
            safeguarding_qa::DEFAULTS,
            "trust_safeguarding",
            "safeguarding",
            &safeguarding_qa::MIGRATIONS,
        ),
        (
            commissioning::SERVICE,
            commissioning::DEFAULTS,
            "trust_commissioning",
            "commissioning",
            &commissioning::MIGRATIONS,
        ),
        (
            notifications::SERVICE,
            notifications::DEFAULTS,
            "trust_notifications",
            "notifications",
            &notifications::MIGRATIONS,
        ),
    ];
    for (service, defaults, role, schema, migrations) in services {
        let settings: Settings = env.config(defaults, role);
        for run in ["first", "second"] {
            Platform::migrate_only(service, &settings, migrations)
                .await
                .unwrap_or_else(|err| panic!("{service}: {run} migrate: {err}"));
        }
        let pool = env.pool(role, schema).await;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .expect("the service's migrations table");
        assert_eq!(
            applied as usize,
            migrations.iter().count(),
            "{service}: every migration, once"
        );
        let owners: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = $1")
                .bind(schema)
                .fetch_all(&pool)
                .await
                .expect("table owners");
        assert_eq!(
            owners,
            vec![role.to_owned()],
            "{service}: its tables are its role's"
        );
        pool.close().await;
    }

    let mut unprovisioned: Settings = env.config(indicator_ingest::DEFAULTS, "trust_ingest");
    unprovisioned.database.url = format!("{}_not_provisioned", env.database_url("trust_ingest"));
    let err = Platform::migrate_only(
        indicator_ingest::SERVICE,
        &unprovisioned,
        &indicator_ingest::MIGRATIONS,
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("does not exist"), "{err}");
    env.cleanup().await;
}
