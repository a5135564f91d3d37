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
}

#[derive(Debug, Clone, Deserialize)]
pub struct EscalationSettings {
    /// How often the scheduler looks for ladders whose next step is due.
    pub tick_ms: u64,
}

impl EscalationSettings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
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
    /// Emails handed to the relay at once, each by its own sender holding its own claim (and database
    /// connection) while the relay answers.
    pub senders: usize,
}

impl DeliverySettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
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
        assert_eq!(config.platform.grpc.listen, "0.0.0.0:50054");
        assert_eq!(config.platform.metrics.listen, "0.0.0.0:9104");
        assert_eq!(config.smtp.port, 2525);
        assert_eq!(config.smtp.tls, SmtpTls::Starttls);
        assert_eq!(config.smtp.credentials(), None);
        assert_eq!(config.delivery.max_attempts, 5);
        assert_eq!(config.delivery.poll_interval(), Duration::from_millis(500));
        assert_eq!(config.delivery.senders, 4);
    }
}
