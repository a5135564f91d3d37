use serde::Deserialize;
use trust_runtime::Settings;

/// safeguarding-qa's own defaults, layered over the platform's.
pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct SafeguardingConfig {
    #[serde(flatten)]
    pub platform: Settings,
}
