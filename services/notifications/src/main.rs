use anyhow::Context;
use notifications::{DEFAULTS, NotificationsConfig, start};
use trust_runtime::{ConfigLoader, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: NotificationsConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting notifications")?;
    running
        .wait()
        .await
        .context("notifications stopped with an error")
}
