//! Test harness for the end-to-end tests: each test gets its own database (with the four service roles and
//! schemas), its own NATS namespace on the shared JetStream server, and where it needs them a real SMTP
//! server (Debian's python3-aiosmtpd) or a private nats-server started from `deploy/nats`.

pub mod fixtures;
pub mod nats_server;
pub mod notifications;
pub mod smtp;
pub mod webhook_receiver;

use std::path::PathBuf;
use std::time::Duration;

use trust_runtime::ConfigLoader;
use trust_runtime::db::{self, ServiceSchema};
use uuid::Uuid;

pub const ADMIN_URL_ENV: &str = "TRUST_TEST_ADMIN_DATABASE_URL";
pub const NATS_URL_ENV: &str = "TRUST_TEST_NATS_URL";

/// The repository root (for `deploy/` files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (role, schema) of each service.
pub const SERVICES: [(&str, &str); 4] = [
    ("trust_ingest", "ingest"),
    ("trust_safeguarding", "safeguarding"),
    ("trust_commissioning", "commissioning"),
    ("trust_notifications", "notifications"),
];

/// One test's private slice of Postgres and NATS.
pub struct TestEnv {
    pub admin_url: String,
    pub database: String,
    /// Subject and stream prefix on the shared NATS server.
    pub namespace: String,
    pub nats_url: String,
    host_port: String,
    cleaned: bool,
}

impl TestEnv {
    pub async fn new() -> Self {
        let admin_url = std::env::var(ADMIN_URL_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nats_url = std::env::var(NATS_URL_ENV).unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("trust_t_{}", &id[..16]);
        let namespace = format!("t{}", &id[..12]);
        let host_port = admin_url
            .rsplit_once('@')
            .map(|(_, rest)| rest)
            .unwrap_or("127.0.0.1:5432/postgres")
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let schemas: Vec<ServiceSchema> = SERVICES
            .iter()
            .map(|(role, schema)| ServiceSchema {
                role: (*role).to_owned(),
                schema: (*schema).to_owned(),
                password: None,
            })
            .collect();
        db::provision(&admin_url, &database, &schemas)
            .await
            .expect("provision the test database (is Postgres running? see deploy/local/ensure-infra.sh)");
        Self {
            admin_url,
            database,
            namespace,
            nats_url,
            host_port,
            cleaned: false,
        }
    }

    /// Connection URL as a service role.
    pub fn database_url(&self, role: &str) -> String {
        format!("postgres://{role}@{}/{}", self.host_port, self.database)
    }

    /// Configuration for a service under test: its role and schema, this test's namespace, random ports,
    /// short consumer timings.
    pub fn config<T: serde::de::DeserializeOwned>(&self, defaults: &'static str, role: &str) -> T {
        self.loader(defaults, role).load().expect("test configuration")
    }

    pub fn loader(&self, defaults: &'static str, role: &str) -> ConfigLoader {
        ConfigLoader::new(defaults)
            .without_environment()
            .set("database.url", self.database_url(role))
            .set("database.max_connections", 5_i64)
            .set("nats.url", self.nats_url.clone())
            .set("nats.namespace", self.namespace.clone())
            .set("nats.duplicate_window_secs", 120_i64)
            .set("grpc.listen", "127.0.0.1:0")
            .set("metrics.listen", "127.0.0.1:0")
            .set("consumer.ack_wait_secs", 2_i64)
            .set("consumer.retry_base_ms", 50_i64)
            .set("consumer.retry_max_secs", 1_i64)
            .set("outbox.poll_interval_ms", 200_i64)
    }

    /// A pool as a service role, with its schema on the search path.
    pub async fn pool(&self, role: &str, schema: &str) -> sqlx::PgPool {
        let settings = trust_runtime::config::DatabaseSettings {
            url: self.database_url(role),
            schema: schema.to_owned(),
            max_connections: 5,
            acquire_timeout_secs: 10,
            plan_cache_mode: Default::default(),
        };
        db::connect(&settings).await.expect("connect as service role")
    }

    pub async fn nats(&self) -> async_nats::Client {
        async_nats::connect(&self.nats_url)
            .await
            .expect("connect to NATS")
    }

    /// Subject in this test's namespace.
    pub fn subject(&self, subject: &str) -> String {
        format!("{}.{subject}", self.namespace)
    }

    /// Drop the database and this namespace's streams.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        remove(&self.admin_url, &self.database, &self.nats_url, &self.namespace).await;
    }
}

impl Drop for TestEnv {
    /// A test that panicked before `cleanup` still leaves nothing behind: clean up on a thread of its own,
    /// since Drop cannot await.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (admin_url, database, nats_url, namespace) = (
            self.admin_url.clone(),
            self.database.clone(),
            self.nats_url.clone(),
            self.namespace.clone(),
        );
        let cleaner = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(remove(&admin_url, &database, &nats_url, &namespace));
            }
        });
        let _ = cleaner.join();
    }
}

async fn remove(admin_url: &str, database: &str, nats_url: &str, namespace: &str) {
    {
        if let Ok(client) = async_nats::connect(nats_url).await {
            let js = async_nats::jetstream::new(client);
            let ns = trust_runtime::bus::Namespace::new(namespace);
            for stream in trust_runtime::bus::STREAMS {
                let _ = js.delete_stream(ns.stream(stream.name)).await;
            }
        }
        if let Err(err) = db::drop_database(admin_url, database).await {
            eprintln!("could not drop test database {database}: {err}");
        }
    }
}

/// A client of indicator-ingest's API that sends a bearer token (or none) with every call, as trustctl's.
pub type IngestClient = trustctl::auth::IngestClient;

/// The operator every test environment's default client acts as.
pub const TEST_OPERATOR: &str = "test operator";

impl TestEnv {
    /// Issue a credential in indicator-ingest's database (it must have started: it creates the table) and
    /// return its token. A partner must be in the catalogue.
    pub async fn issue_token(&self, holder: &indicator_ingest::access::Caller) -> String {
        let pool = self.pool("trust_ingest", "ingest").await;
        let mut conn = pool.acquire().await.expect("connect as trust_ingest");
        let issued = indicator_ingest::access::issue(&mut conn, holder, "test")
            .await
            .unwrap_or_else(|err| panic!("issue a credential for {holder}: {err}"));
        drop(conn);
        pool.close().await;
        issued.token
    }

    /// A new operator credential's token.
    pub async fn operator_token(&self) -> String {
        self.issue_token(&indicator_ingest::access::Caller::Operator(TEST_OPERATOR.into()))
            .await
    }

    /// A new credential's token for `partner` (in the catalogue).
    pub async fn partner_token(&self, partner: &str) -> String {
        self.issue_token(&indicator_ingest::access::Caller::Partner(partner.into()))
            .await
    }
}

/// A client of indicator-ingest running at `service`, over TCP, sending `token` (None: no credential).
pub async fn ingest_client(service: &trust_runtime::RunningService, token: Option<&str>) -> IngestClient {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.grpc_addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("gRPC connect");
    let token = trustctl::auth::BearerToken::optional(token).expect("a token fit for metadata");
    trustctl::auth::ingest_client(channel, token)
}

/// A client of indicator-ingest acting as a new operator credential of `env`.
pub async fn operator_client(env: &TestEnv, service: &trust_runtime::RunningService) -> IngestClient {
    ingest_client(service, Some(&env.operator_token().await)).await
}

/// A client of indicator-ingest acting as a new credential of `partner` (which must be in the catalogue).
pub async fn partner_client(
    env: &TestEnv,
    service: &trust_runtime::RunningService,
    partner: &str,
) -> IngestClient {
    ingest_client(service, Some(&env.partner_token(partner).await)).await
}

/// Start indicator-ingest in this process for `env`, connect a gRPC client over TCP acting as an operator
/// (the partnership's performance team) and load the fixture catalogue with it. Submissions need a
/// partner's client ([`partner_client`]).
pub async fn start_ingest(env: &TestEnv) -> (trust_runtime::RunningService, IngestClient) {
    let config: indicator_ingest::IngestConfig = env.config(indicator_ingest::DEFAULTS, "trust_ingest");
    let running = indicator_ingest::start(config, tokio_util::sync::CancellationToken::new())
        .await
        .expect("start indicator-ingest");
    let mut client = operator_client(env, &running).await;
    client
        .put_catalogue(fixtures::catalogue())
        .await
        .expect("load the fixture catalogue");
    (running, client)
}

/// indicator-ingest running in this process for one test, with its environment and a client acting as an
/// operator.
pub struct IngestUnderTest {
    pub env: TestEnv,
    pub running: trust_runtime::RunningService,
    pub client: IngestClient,
}

impl IngestUnderTest {
    /// A fresh environment with indicator-ingest started and the fixture catalogue loaded.
    pub async fn start() -> Self {
        let env = TestEnv::new().await;
        let (running, client) = start_ingest(&env).await;
        Self { env, running, client }
    }

    /// A client acting as a new credential of `partner`.
    pub async fn as_partner(&self, partner: &str) -> IngestClient {
        partner_client(&self.env, &self.running, partner).await
    }

    /// A client sending `token` (None: no credential at all).
    pub async fn with_token(&self, token: Option<&str>) -> IngestClient {
        ingest_client(&self.running, token).await
    }

    /// The current value of every period of `indicator`, in every locality.
    pub async fn stored(&mut self, indicator: &str) -> Vec<trust_proto::ingest::v1::StoredObservation> {
        self.client
            .list_observations(trust_proto::ingest::v1::ListObservationsRequest {
                indicator_code: indicator.into(),
                locality_code: String::new(),
            })
            .await
            .expect("list observations")
            .into_inner()
            .observations
    }

    /// Stop the service gracefully and remove the environment.
    pub async fn finish(self) {
        self.running.stop().await.expect("clean stop");
        self.env.cleanup().await;
    }
}

/// Poll `check` until it returns Some, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on the loopback interface.
/// An HTTP client. reqwest is built without a TLS provider of its own; ring is the one the platform uses
/// (installing it again is harmless).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
