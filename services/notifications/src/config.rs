use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use trust_runtime::Settings;

/// notifications' own defaults, layered over the platform's.
pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct NotificationsConfig {
    #[serde(flatten)]
    pub platform: Settings,
    pub smtp: SmtpSettings,
    pub delivery: DeliverySettings,
    pub escalation: EscalationSettings,
    pub links: LinkSettings,
    /// Webhooks escalation policies may post to, by name (`webhooks.<name>.url`, `webhooks.<name>.secret`).
    #[serde(default)]
    pub webhooks: HashMap<String, WebhookSettings>,
}

/// One webhook: where to post, and the secret its posts are signed with (set it from a Secret, e.g.
/// `TRUST__WEBHOOKS__CASE_SYSTEM__SECRET`).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: String,
}

/// One-use signed acknowledgement links in "raised" emails, and the small HTTP listener that serves them.
#[derive(Debug, Clone, Deserialize)]
pub struct LinkSettings {
    /// Off: emails carry no link and nothing listens.
    pub enabled: bool,
    /// Where the listener binds.
    pub listen: String,
    /// How staff reach the listener; links are `{base_url}/ack/{token}`.
    pub base_url: String,
    /// HMAC-SHA256 key the links are signed with (at least 32 characters when links are enabled).
    #[serde(default)]
    pub secret: String,
    /// How long a link stays usable after its email is queued.
    pub valid_hours: u32,
}

impl LinkSettings {
    pub fn valid_for(&self) -> Duration {
        Duration::from_secs(u64::from(self.valid_hours) * 3_600)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EscalationSettings {
    /// How often the scheduler looks for ladders whose next step is due.
    pub tick_ms: u64,
    /// Steps overdue by more than this raise an alert about the scheduler itself.
    pub stall_alert_secs: u64,
}

impl EscalationSettings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }

    pub fn stall_after(&self) -> Duration {
        Duration::from_secs(self.stall_alert_secs.max(1))
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or network (and tests).
    None,
    /// Connect in plain text, then require STARTTLS before anything is sent.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Mailbox the emails come from, e.g. `Children's Trust Platform <alerts@trust.localhost>`.
    pub from: String,
    pub timeout_secs: u64,
}

impl SmtpSettings {
    /// Username and password, when both are set and non-empty.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match (self.username.as_deref(), self.password.as_deref()) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Some((user, password))
            }
            _ => None,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliverySettings {
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub poll_interval_ms: u64,
    /// Per webhook post.
    pub webhook_timeout_secs: u64,
    /// The longest `Retry-After` honoured; a receiver asking for more is retried after this.
    pub retry_after_max_secs: u64,
    /// Emails reaching one address within this long of the last go out together as one digest at its end
    /// (the first of a burst goes at once); 0 sends every email alone.
    pub digest_window_secs: u64,
    /// Emails handed to the relay at once, each by its own sender holding its own claim (and database
    /// connection) while the relay answers.
    pub senders: usize,
    /// Without digests, due deliveries a sender claims in one statement and sends over one SMTP
    /// conversation, each outcome recorded as it happens.
    pub claim_batch: u32,
    /// How long a claimed batch stays hidden from other senders; a sender that dies leaves its unsent
    /// deliveries to come due again when it ends.
    pub claim_lease_secs: u64,
}

impl DeliverySettings {
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_secs(self.webhook_timeout_secs.max(1))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn claim_lease(&self) -> Duration {
        Duration::from_secs(self.claim_lease_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trust_runtime::ConfigLoader;

    #[test]
    fn defaults_load_and_layer_over_the_platform() {
        let config: NotificationsConfig = ConfigLoader::new(DEFAULTS)
            .without_environment()
            .set("smtp.tls", "starttls")
            .load()
            .expect("defaults load");
        assert_eq!(config.platform.database.schema, "notifications");
        assert_eq!(
            config.platform.database.plan_cache_mode,
            trust_runtime::config::PlanCacheMode::ForceCustomPlan
        );
        assert_eq!(config.platform.grpc.listen, "0.0.0.0:50054");
        assert_eq!(config.platform.metrics.listen, "0.0.0.0:9104");
        assert_eq!(config.smtp.port, 2525);
        assert_eq!(config.smtp.tls, SmtpTls::Starttls);
        assert_eq!(config.smtp.credentials(), None);
        assert_eq!(config.delivery.max_attempts, 5);
        assert_eq!(config.delivery.poll_interval(), Duration::from_millis(500));
        assert!(config.links.enabled);
        assert_eq!(config.links.listen, "0.0.0.0:8104");
        assert_eq!(
            config.links.secret, "",
            "no secret ships: the service refuses to start without one"
        );
        assert_eq!(config.links.valid_for(), Duration::from_secs(14 * 24 * 3_600));
        assert_eq!(config.delivery.senders, 8);
        assert_eq!(config.platform.database.max_connections, 16);
        assert_eq!(config.delivery.claim_batch, 20);
        assert_eq!(config.delivery.claim_lease(), Duration::from_secs(60));
    }
}
