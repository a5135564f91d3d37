//! Killing notifications (SIGKILL, no chance to tidy up) while escalation ladders are climbing, then
//! starting it again: every due step is queued exactly once and emailed (counted by the Message-ID each
//! delivery carries); only an email in flight at the kill may go a second time, under the same Message-ID.
//!
//! The service runs in a child process: this test binary run again with `CHILD_ENV` set, so the process
//! can be killed like a pod, while the test keeps its own process.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use trust_e2e::notifications::{all_deliveries, await_all_sent, level, member};
use trust_e2e::smtp::SmtpSink;
use trust_e2e::{TestEnv, eventually, free_port};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;

/// Set (to anything) in the child: run notifications from `TRUST__...` variables until killed.
const CHILD_ENV: &str = "TRUST_E2E_NOTIFICATIONS_CHILD";

/// Not a test of its own: the entry point of the child process (a no-op in a normal test run).
#[test]
fn notifications_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config: notifications::NotificationsConfig =
            trust_runtime::ConfigLoader::new(notifications::DEFAULTS)
                .load()
                .expect("child configuration from TRUST__ variables");
        let running = notifications::start(config, CancellationToken::new())
            .await
            .expect("notifications in the child");
        // Until killed.
        let _ = running.wait().await;
    });
}

/// The child process, killed when dropped (so a failing test leaves no service behind).
struct ChildService(Child);

impl ChildService {
    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start notifications in a child process for `env`, listening for gRPC on `port`.
fn spawn_child(env: &TestEnv, smtp_port: u16, port: u16) -> ChildService {
    let exe = std::env::current_exe().expect("this test binary");
    Command::new(exe)
        .args([
            "--exact",
            "notifications_child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, "1")
        .env("TRUST__DATABASE__URL", env.database_url("trust_notifications"))
        .env("TRUST__DATABASE__MAX_CONNECTIONS", "5")
        .env("TRUST__NATS__URL", &env.nats_url)
        .env("TRUST__NATS__NAMESPACE", &env.namespace)
        .env("TRUST__GRPC__LISTEN", format!("127.0.0.1:{port}"))
        .env("TRUST__METRICS__LISTEN", "127.0.0.1:0")
        .env("TRUST__CONSUMER__ACK_WAIT_SECS", "2")
        .env("TRUST__SMTP__HOST", "127.0.0.1")
        .env("TRUST__SMTP__PORT", smtp_port.to_string())
        .env("TRUST__SMTP__TLS", "none")
        .env("TRUST__DELIVERY__POLL_INTERVAL_MS", "100")
        .env("TRUST__DELIVERY__DIGEST_WINDOW_SECS", "0")
        // A kill mid-batch leaves the batch's unsent emails leased: a short lease (and the short SMTP
        // timeout it must cover) has them sent again well within the test's wait.
        .env("TRUST__SMTP__TIMEOUT_SECS", "2")
        .env("TRUST__DELIVERY__CLAIM_LEASE_SECS", "25")
        .env("TRUST__ESCALATION__TICK_MS", "100")
        .env("TRUST__LINKS__SECRET", trust_e2e::notifications::TEST_LINK_SECRET)
        .env("TRUST__LINKS__LISTEN", "127.0.0.1:0")
        .env("TRUST__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(ChildService)
        .expect("spawn the notifications child")
}

async fn connect(port: u16) -> NotificationsClient<tonic::transport::Channel> {
    eventually(Duration::from_secs(30), "the child's gRPC port", || async move {
        NotificationsClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .ok()
    })
    .await
}

/// Message-IDs of the emails the sink holds.
fn message_ids(smtp: &SmtpSink) -> Vec<String> {
    smtp.messages()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(|l| l.trim().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn killing_notifications_while_ladders_climb_sends_every_due_step_once() {
    let env = TestEnv::new().await;
    let smtp = SmtpSink::start().await;
    let port = free_port();
    let mut child = spawn_child(&env, smtp.port, port);
    let mut client = connect(port).await;
    client
        .put_staff_directory(notify::StaffDirectory {
            staff: vec![
                member("enabler", &[], &[]),
                member("head", &[], &[]),
                member("dcs", &[], &[]),
            ],
            responsibilities: vec![],
        })
        .await
        .expect("directory");
    client
        .put_routing(notify::RoutingConfig {
            default_policy: "climb".into(),
            routes: vec![],
            policies: vec![notify::EscalationPolicy {
                name: "climb".into(),
                levels: vec![
                    level(&[], &["enabler"], "1s"),
                    level(&[], &["head"], "1s"),
                    level(&[], &["dcs"], "1h"),
                ],
                repeat: "1h".into(),
                acknowledgement_timeout: "1h".into(),
                flap_hold: String::new(),
            }],
        })
        .await
        .expect("routing");

    const ALERTS: usize = 30;
    let js = async_nats::jetstream::new(env.nats().await);
    for n in 0..ALERTS {
        let event = alerting::EscalationRaised {
            dedup_key: format!("test/kill/{n}"),
            occurrence_id: format!("occ-{n}"),
            source: "test".into(),
            rule: "kill".into(),
            summary: format!("alert {n}"),
            ..Default::default()
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raise-{n}").as_str());
        js.publish_with_headers(
            env.subject("test.escalation.raised"),
            headers,
            event.encode_to_vec().into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    }
    // Mid-climb: the first level told for some, the second due soon. Kill without warning.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    child.kill();

    let mut child = spawn_child(&env, smtp.port, port);
    let client = connect(port).await;
    let expected = ALERTS * 3;
    await_all_sent(&client, expected, Duration::from_secs(60)).await;
    // Past every due step: nothing more may be queued or sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deliveries = all_deliveries(&client).await;
    assert_eq!(deliveries.len(), expected, "each step queued once");
    let ids = message_ids(&smtp);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), expected, "every step emailed");
    // The one window no transaction closes: the relay accepted an email and the process died before
    // recording it as sent. That email goes again after the restart under the same Message-ID (which
    // mail systems deduplicate on); the worker sends one email at a time, so a kill repeats at most one.
    assert!(
        ids.len() - distinct.len() <= 1,
        "{} emails for {expected} steps: more repeated than the one in flight at the kill",
        ids.len()
    );
    child.kill();
    smtp.stop().await;
    env.cleanup().await;
}
