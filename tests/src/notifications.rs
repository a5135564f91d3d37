//! notifications under test: the service in this process for a fresh environment, with an SMTP sink, its
//! scheduler and delivery worker looking every 100 ms, a gRPC client, and helpers to publish escalation
//! events and read what was delivered.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;
use trust_runtime::RunningService;

use crate::TestEnv;
use crate::smtp::SmtpSink;

pub type NotificationsClient = notify::notifications_client::NotificationsClient<tonic::transport::Channel>;

/// The key tests sign acknowledgement links with (`links.secret`).
pub const TEST_LINK_SECRET: &str = "test-only acknowledgement link secret, 48 chars";

/// Acknowledgement links for a test: signed with [`TEST_LINK_SECRET`], served on a port of their own.
pub fn with_test_links(loader: trust_runtime::ConfigLoader) -> trust_runtime::ConfigLoader {
    let port = crate::free_port();
    loader
        .set("links.secret", TEST_LINK_SECRET)
        .set("links.listen", format!("127.0.0.1:{port}"))
        .set("links.base_url", format!("http://127.0.0.1:{port}"))
}

/// Start notifications for `env`, mailing `smtp`.
pub async fn start_notifications(env: &TestEnv, smtp: &SmtpSink) -> RunningService {
    start_notifications_with(env, smtp.port, &[]).await
}

/// Start notifications for `env`, mailing the SMTP server on `smtp_port` (which need not be listening
/// yet), with further `settings` (key, value) over the test defaults.
pub async fn start_notifications_with(
    env: &TestEnv,
    smtp_port: u16,
    settings: &[(&str, &str)],
) -> RunningService {
    let mut loader = with_test_links(env.loader(notifications::DEFAULTS, "trust_notifications"))
        .set("smtp.host", "127.0.0.1")
        .set("smtp.port", i64::from(smtp_port))
        .set("smtp.tls", "none")
        .set("delivery.poll_interval_ms", 100_i64)
        // Every email alone unless a test is about digests (it sets a window).
        .set("delivery.digest_window_secs", 0_i64)
        .set("escalation.tick_ms", 100_i64);
    for (key, value) in settings {
        loader = loader.set(*key, *value);
    }
    let config: notifications::NotificationsConfig = loader.load().expect("notifications config");
    notifications::start(config, CancellationToken::new())
        .await
        .expect("notifications")
}

/// Publish an escalation event (or any bytes) on `subject` (documented form) with its own message id.
pub async fn publish_escalation(env: &TestEnv, subject: &str, message_id: &str, payload: Vec<u8>) {
    let js = async_nats::jetstream::new(env.nats().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    js.publish_with_headers(env.subject(subject), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// Every delivery notifications holds (up to 1,000), newest first.
pub async fn all_deliveries(client: &NotificationsClient) -> Vec<notify::Delivery> {
    client
        .clone()
        .list_deliveries(notify::ListDeliveriesRequest {
            dedup_key: String::new(),
            limit: 1000,
        })
        .await
        .expect("deliveries")
        .into_inner()
        .deliveries
}

/// Wait until at least `expected` deliveries exist and every one is sent; returns them.
pub async fn await_all_sent(
    client: &NotificationsClient,
    expected: usize,
    within: Duration,
) -> Vec<notify::Delivery> {
    crate::eventually(within, "every delivery sent", || async move {
        let list = all_deliveries(client).await;
        (list.len() >= expected && list.iter().all(|d| d.state == notify::DeliveryState::Sent as i32))
            .then_some(list)
    })
    .await
}

/// A critical NEET target breach raised in the first locality of `lineage` (nearest first, to the city).
pub fn raised(key: &str, occurrence: &str, lineage: &[&str]) -> alerting::EscalationRaised {
    alerting::EscalationRaised {
        dedup_key: key.into(),
        occurrence_id: occurrence.into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        severity: alerting::Severity::Critical as i32,
        summary: format!("{key} needs attention"),
        subject: Some(alerting::escalation_raised::Subject::Indicator(
            alerting::IndicatorBreach {
                indicator_code: "NEET_16_18".into(),
                indicator_name: "NEET".into(),
                locality_code: lineage[0].into(),
                locality_name: lineage[0].into(),
                locality_lineage: lineage.iter().map(|l| (*l).to_owned()).collect(),
                period_label: "2026-Q2".into(),
                value: 9.4,
                target: 8.0,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// The source's resolution of an occurrence.
pub fn resolved(key: &str, occurrence: &str) -> alerting::EscalationResolved {
    alerting::EscalationResolved {
        dedup_key: key.into(),
        occurrence_id: occurrence.into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        summary: "recovered".into(),
        ..Default::default()
    }
}

/// A member of staff with these roles and localities, mailed at `<code>@example.org`.
pub fn member(code: &str, roles: &[&str], localities: &[&str]) -> notify::StaffMember {
    notify::StaffMember {
        code: code.into(),
        name: format!("{code} (test)"),
        email: format!("{code}@example.org"),
        partner_code: "council".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        localities: localities.iter().map(|l| (*l).to_owned()).collect(),
        ..Default::default()
    }
}

/// A ladder level telling these roles and people, with this wait.
pub fn level(roles: &[&str], people: &[&str], wait: &str) -> notify::EscalationLevel {
    notify::EscalationLevel {
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        people: people.iter().map(|p| (*p).to_owned()).collect(),
        wait: wait.into(),
        ..Default::default()
    }
}

/// notifications running for one test, with its environment, SMTP sink and a client.
pub struct NotificationsUnderTest {
    pub env: TestEnv,
    pub smtp: SmtpSink,
    pub running: RunningService,
    pub client: NotificationsClient,
}

impl NotificationsUnderTest {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With further settings, e.g. `("webhooks.case_system.url", url)`.
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let env = TestEnv::new().await;
        let smtp = SmtpSink::start().await;
        let running = start_notifications_with(&env, smtp.port, settings).await;
        let client = NotificationsClient::connect(format!("http://{}", running.grpc_addr))
            .await
            .expect("connect");
        Self {
            env,
            smtp,
            running,
            client,
        }
    }

    /// A directory of one person, `perf-lead`, holding the default responsibility.
    pub async fn with_default_owner_only(&mut self) {
        self.client
            .put_staff_directory(notify::StaffDirectory {
                staff: vec![member("perf-lead", &["performance_lead"], &[])],
                responsibilities: vec![notify::Responsibility {
                    staff_code: "perf-lead".into(),
                    indicator_code: String::new(),
                    locality_code: String::new(),
                }],
            })
            .await
            .expect("directory");
    }

    pub async fn publish(&self, subject: &str, message_id: &str, payload: Vec<u8>) {
        publish_escalation(&self.env, subject, message_id, payload).await;
    }

    /// (staff, event) of every delivery of an alert, oldest first.
    pub async fn deliveries(&self, key: &str) -> Vec<(String, String)> {
        self.delivery_records(key)
            .await
            .into_iter()
            .map(|d| (d.staff_code, d.event))
            .collect()
    }

    /// Every delivery of an alert as listed, oldest first.
    pub async fn delivery_records(&self, key: &str) -> Vec<notify::Delivery> {
        let mut list = self
            .client
            .clone()
            .list_deliveries(notify::ListDeliveriesRequest {
                dedup_key: key.into(),
                limit: 0,
            })
            .await
            .expect("deliveries")
            .into_inner()
            .deliveries;
        list.reverse();
        list
    }

    /// Wait until the alert's deliveries (oldest first) satisfy `done`; returns them.
    pub async fn await_delivery_records(
        &self,
        key: &str,
        what: &str,
        done: impl Fn(&[notify::Delivery]) -> bool,
    ) -> Vec<notify::Delivery> {
        let done = &done;
        crate::eventually(Duration::from_secs(20), what, || async move {
            Some(self.delivery_records(key).await).filter(|list| done(list))
        })
        .await
    }

    /// The alert with this key, as `ListAlerts` shows it.
    pub async fn alert(&self, key: &str) -> notify::Alert {
        self.client
            .clone()
            .list_alerts(notify::ListAlertsRequest::default())
            .await
            .expect("alerts")
            .into_inner()
            .alerts
            .into_iter()
            .find(|a| a.dedup_key == key)
            .expect("the alert is listed")
    }

    /// Wait until an alert has at least `count` deliveries; returns them.
    pub async fn await_deliveries(&self, key: &str, count: usize) -> Vec<(String, String)> {
        crate::eventually(
            Duration::from_secs(15),
            "deliveries of the alert",
            || async move { Some(self.deliveries(key).await).filter(|d| d.len() >= count) },
        )
        .await
    }

    /// Stop the service gracefully and remove the environment.
    pub async fn finish(self) {
        self.running.stop().await.expect("clean stop");
        self.smtp.stop().await;
        self.env.cleanup().await;
    }
}
