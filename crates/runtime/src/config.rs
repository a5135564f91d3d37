//! Layered configuration: built-in defaults, the service's defaults, an optional file, then environment
//! variables such as `TRUST__DATABASE__URL` (section and key joined by double underscores).

use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::Result;

const PLATFORM_DEFAULTS: &str = include_str!("defaults.toml");

/// Environment variable naming a configuration file to layer over the defaults.
pub const CONFIG_FILE_ENV: &str = "TRUST_CONFIG";

/// Settings every service has. A service embeds this with `#[serde(flatten)]` beside its own sections.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub grpc: GrpcSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub consumer: ConsumerSettings,
    pub outbox: OutboxSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub schema: String,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// PostgreSQL's `plan_cache_mode` for the service's connections (default in defaults.toml).
    pub plan_cache_mode: PlanCacheMode,
}

/// How PostgreSQL plans the service's prepared statements (every sqlx query is one).
///
/// `auto` (PostgreSQL's default) switches a statement to one generic plan after five executions if that
/// plan looks no dearer, and keeps it until the table's statistics change. A generic plan chosen while a
/// table was nearly empty (a new deployment; a server with autovacuum off, where no ANALYZE ever comes) can
/// be a sequential scan that grows with the table. `force_custom_plan` plans each execution for its values
/// and the table as it is now: planning costs tens of microseconds, worth it for statements that each
/// handle a set of rows.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanCacheMode {
    #[default]
    Auto,
    ForceCustomPlan,
    ForceGenericPlan,
}

impl PlanCacheMode {
    /// The setting's value as PostgreSQL spells it.
    pub fn as_postgres(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ForceCustomPlan => "force_custom_plan",
            Self::ForceGenericPlan => "force_generic_plan",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NatsSettings {
    pub url: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    pub namespace: String,
    pub stream_replicas: usize,
    pub duplicate_window_secs: u64,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub listen: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    pub max_deliver: i64,
    pub ack_wait_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub batch_size: usize,
    /// Messages (or groups) applied concurrently, each in its own transaction (at least 1).
    pub workers: usize,
    /// Messages already pulled that may be applied together in one transaction, and their total size.
    pub group_max: usize,
    pub group_max_bytes: usize,
}

impl ConsumerSettings {
    /// Nak delay before redelivery number `delivered + 1`: exponential, capped.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let exponent = u32::try_from(delivered.clamp(1, 20) - 1).unwrap_or(0);
        let delay = Duration::from_millis(self.retry_base_ms.saturating_mul(1u64 << exponent));
        delay.min(Duration::from_secs(self.retry_max_secs))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    pub batch_size: i64,
    pub poll_interval_ms: u64,
    pub retry_base_ms: u64,
    pub max_backoff_secs: u64,
}

/// Builds a service's configuration from its layers.
pub struct ConfigLoader {
    service_defaults: &'static str,
    file: Option<PathBuf>,
    use_environment: bool,
    overrides: Vec<(String, config::Value)>,
}

impl ConfigLoader {
    /// `service_defaults` is the service's own TOML defaults, layered over the platform's.
    pub fn new(service_defaults: &'static str) -> Self {
        Self {
            service_defaults,
            file: std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from),
            use_environment: true,
            overrides: Vec::new(),
        }
    }

    /// Layer this file (overrides `TRUST_CONFIG`).
    pub fn file(mut self, path: Option<PathBuf>) -> Self {
        if path.is_some() {
            self.file = path;
        }
        self
    }

    /// Ignore the process environment (tests build their configuration explicitly).
    pub fn without_environment(mut self) -> Self {
        self.use_environment = false;
        self.file = None;
        self
    }

    /// Set one key, e.g. `("database.url", "...")`, above every other layer.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<config::Value>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    pub fn load<T: DeserializeOwned>(self) -> Result<T> {
        let mut builder = Config::builder()
            .add_source(File::from_str(PLATFORM_DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str(self.service_defaults, FileFormat::Toml));
        if let Some(path) = &self.file {
            builder = builder.add_source(File::from(path.as_path()).required(true));
        }
        if self.use_environment {
            builder = builder.add_source(
                Environment::with_prefix("TRUST")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        for (key, value) in self.overrides {
            builder = builder.set_override(key, value)?;
        }
        let layered = builder.build()?;
        let loaded = layered.clone().try_deserialize().map_err(|err| {
            // A service embeds the platform's settings with #[serde(flatten)], which hides the key of a bad
            // platform value (an unknown plan_cache_mode says only "unknown variant"). Read alone, the
            // platform's settings name it.
            match layered.try_deserialize::<Settings>() {
                Err(platform) => platform,
                Ok(_) => err,
            }
        });
        Ok(loaded?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_override_platform_defaults_and_overrides_win() {
        let settings: Settings = ConfigLoader::new("[grpc]\nlisten = \"127.0.0.1:1\"\n")
            .without_environment()
            .set("nats.namespace", "t1")
            .load()
            .expect("load");
        assert_eq!(settings.grpc.listen, "127.0.0.1:1");
        assert_eq!(settings.nats.namespace, "t1");
        assert_eq!(settings.consumer.max_deliver, 5);
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key() {
        let misspelt = ConfigLoader::new("")
            .without_environment()
            .set("database.plan_cache_mode", "custom")
            .load::<Settings>()
            .expect_err("an unknown plan cache mode is refused");
        assert!(
            misspelt.to_string().contains("database.plan_cache_mode"),
            "{misspelt}"
        );
        let wrong_type = ConfigLoader::new("")
            .without_environment()
            .set("database.max_connections", "many")
            .load::<Settings>()
            .expect_err("a word for a number is refused");
        assert!(wrong_type.to_string().contains("max_connections"), "{wrong_type}");
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let consumer = ConsumerSettings {
            max_deliver: 5,
            ack_wait_secs: 30,
            retry_base_ms: 100,
            retry_max_secs: 1,
            batch_size: 10,
            workers: 1,
            group_max: 1,
            group_max_bytes: 1,
        };
        assert_eq!(consumer.retry_delay(1), Duration::from_millis(100));
        assert_eq!(consumer.retry_delay(3), Duration::from_millis(400));
        assert_eq!(consumer.retry_delay(10), Duration::from_secs(1));
    }
}
