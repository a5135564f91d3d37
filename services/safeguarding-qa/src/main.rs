use anyhow::Context;
use safeguarding_qa::{DEFAULTS, MIGRATIONS, SERVICE, SafeguardingConfig, start};
use trust_runtime::{Command, ConfigLoader, Platform, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Command::from_env()?;
    let config: SafeguardingConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    if command == Command::Migrate {
        return Platform::migrate_only(SERVICE, &config.platform, &MIGRATIONS)
            .await
            .context("migrating safeguarding-qa");
    }
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting safeguarding-qa")?;
    running
        .wait()
        .await
        .context("safeguarding-qa stopped with an error")
}
