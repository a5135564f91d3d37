use anyhow::Context;
use notifications::{DEFAULTS, MIGRATIONS, NotificationsConfig, SERVICE, start};
use trust_runtime::{Command, ConfigLoader, Platform, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Command::from_env()?;
    let config: NotificationsConfig = ConfigLoader::new(DEFAULTS)
        .load()
        .context("loading configuration")?;
    telemetry::init_tracing(&config.platform.log);
    if command == Command::Migrate {
        return Platform::migrate_only(SERVICE, &config.platform, &MIGRATIONS)
            .await
            .context("migrating notifications");
    }
    let running = start(config, shutdown::on_signal())
        .await
        .context("starting notifications")?;
    running
        .wait()
        .await
        .context("notifications stopped with an error")
}
