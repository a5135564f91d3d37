//! A private nats-server per test, started from the platform's own configuration in `deploy/nats`, so
//! tests of permissions and broker failures never touch the shared server.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{eventually, free_port, repo_root};

pub struct PrivateNats {
    pub port: u16,
    store: PathBuf,
    child: Child,
}

impl PrivateNats {
    /// `deploy/nats/local.conf` (per-partner users and permissions) on a random port.
    pub async fn with_platform_config() -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("trust-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("store dir");
        let config = repo_root().join("deploy/nats/local.conf");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .args(["-p", &port.to_string()])
            .arg("-sd")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server (deploy/local/ensure-infra.sh installs it)");
        eventually(Duration::from_secs(15), "nats-server to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { port, store, child }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
