use anyhow::Context;
use commissioning::{CommissioningConfig, DEFAULTS, start};
use trust_runtime::{ConfigLoader, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: CommissioningConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting commissioning")?;
    running
        .wait()
        .await
        .context("commissioning stopped with an error")
}
