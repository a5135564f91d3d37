use anyhow::Context;
use commissioning::{CommissioningConfig, DEFAULTS, MIGRATIONS, SERVICE, start};
use trust_runtime::{Command, ConfigLoader, Platform, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Command::from_env()?;
    let config: CommissioningConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    if command == Command::Migrate {
        return Platform::migrate_only(SERVICE, &config.platform, &MIGRATIONS)
            .await
            .context("migrating commissioning");
    }
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting commissioning")?;
    running
        .wait()
        .await
        .context("commissioning stopped with an error")
}
