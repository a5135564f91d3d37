use anyhow::Context;
use indicator_ingest::{DEFAULTS, IngestConfig, start};
use trust_runtime::{ConfigLoader, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: IngestConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting indicator-ingest")?;
    running
        .wait()
        .await
        .context("indicator-ingest stopped with an error")
}
