use anyhow::Context;
use indicator_ingest::{DEFAULTS, IngestConfig, MIGRATIONS, SERVICE, start};
use trust_runtime::{Command, ConfigLoader, Platform, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Command::from_env()?;
    let config: IngestConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    if command == Command::Migrate {
        return Platform::migrate_only(SERVICE, &config.platform, &MIGRATIONS)
            .await
            .context("migrating indicator-ingest");
    }
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting indicator-ingest")?;
    running
        .wait()
        .await
        .context("indicator-ingest stopped with an error")
}
