use anyhow::Context;
use safeguarding_qa::{DEFAULTS, SafeguardingConfig, start};
use trust_runtime::{ConfigLoader, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: SafeguardingConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting safeguarding-qa")?;
    running
        .wait()
        .await
        .context("safeguarding-qa stopped with an error")
}
