//! The indicator-ingest service under test, as a separate process built by
//! `cargo build --release -p indicator-ingest`, configured through `TRUST__...` environment variables; and
//! its memory, sampled from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where the release binary is: beside this one in `target/release`, or in `target/release` when this is a
/// debug build, unless `--ingest-bin` says otherwise.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let candidate = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let exe = std::env::current_exe().context("locating ingest-bench itself")?;
            let target = exe
                .parent()
                .and_then(Path::parent)
                .map(Path::to_owned)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("release").join("indicator-ingest")
        }
    };
    if !candidate.is_file() {
        bail!(
            "the indicator-ingest release binary is not at {}.\n\
             Build it first:  cargo build --release -p indicator-ingest\n\
             (or point --ingest-bin at one)",
            candidate.display()
        );
    }
    Ok(candidate)
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A warning when the binary is older than the sources it is built from (so the figures would describe
/// older code).
pub fn staleness(binary: &Path) -> Option<String> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let root = repo_root();
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for dir in [
        "services/indicator-ingest/src",
        "services/indicator-ingest/migrations",
        "services/indicator-ingest/Cargo.toml",
        "crates/runtime/src",
        "crates/runtime/migrations",
        "proto/trust",
    ] {
        newest_under(&root.join(dir), &mut newest);
    }
    let (modified, path) = newest?;
    (modified > built).then(|| {
        format!(
            "warning: {} is older than {} (changed since the build); the figures describe the older build. \
             Rebuild with: cargo build --release -p indicator-ingest",
            binary.display(),
            path.strip_prefix(&root).unwrap_or(&path).display()
        )
    })
}

fn newest_under(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                newest_under(&entry.path(), newest);
            }
        }
    } else if let Ok(modified) = meta.modified()
        && newest.as_ref().is_none_or(|(t, _)| modified > *t)
    {
        *newest = Some((modified, path.to_owned()));
    }
}

/// How the service is configured for the run.
pub struct Settings {
    pub database_url: String,
    pub nats_url: String,
    pub namespace: String,
    pub grpc_port: u16,
    pub log_file: PathBuf,
}

/// The running service process.
pub struct Ingest {
    child: Child,
    pub pid: u32,
    pub grpc_port: u16,
    pub log_file: PathBuf,
}

impl Ingest {
    pub fn spawn(binary: &Path, settings: &Settings) -> Result<Self> {
        let log = std::fs::File::create(&settings.log_file)
            .with_context(|| format!("creating {}", settings.log_file.display()))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(binary);
        // Only our settings: nothing inherited from a developer's shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TRUST__") {
                command.env_remove(&name);
            }
        }
        command
            .env_remove("RUST_LOG")
            .env_remove("TRUST_CONFIG")
            .env("TRUST__DATABASE__URL", &settings.database_url)
            .env("TRUST__DATABASE__SCHEMA", "ingest")
            .env("TRUST__NATS__URL", &settings.nats_url)
            .env("TRUST__NATS__NAMESPACE", &settings.namespace)
            .env("TRUST__GRPC__LISTEN", format!("127.0.0.1:{}", settings.grpc_port))
            .env("TRUST__METRICS__LISTEN", "")
            .env("TRUST__LOG__FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the service exited at once")?;
        Ok(Self {
            child,
            pid,
            grpc_port: settings.grpc_port,
            log_file: settings.log_file.clone(),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Wait until `grpc.health.v1.Health/Check` says SERVING (migrated, consuming, listening).
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "indicator-ingest exited during start-up ({status}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            let last = match self.check_health().await {
                Ok(ServingStatus::Serving) => return Ok(()),
                Ok(status) => status.as_str_name().to_owned(),
                Err(err) => format!("{err:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "indicator-ingest not SERVING after {timeout:?} (last: {last}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn check_health(&self) -> Result<ServingStatus> {
        let channel = tonic::transport::Channel::from_shared(self.endpoint())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect()
            .await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
    }

    /// SIGTERM (the service reports NOT_SERVING, finishes the message in hand, flushes its outbox and
    /// exits); SIGKILL if it has not gone within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<String> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(format!("had already exited ({status})"));
        }
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if !matches!(sent, Ok(status) if status.success()) {
            self.child.kill().await?;
            return Ok("killed (SIGTERM could not be sent)".to_owned());
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(format!("stopped on SIGTERM ({})", status?)),
            Err(_) => {
                self.child.kill().await?;
                Ok(format!("killed: still running {grace:?} after SIGTERM"))
            }
        }
    }

    /// The last `lines` lines of the service's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A free TCP port on the loopback interface (the service binds it a moment later).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// What /proc says about a process's memory, in kB.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStatus {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// A zombie or gone: the process has exited.
    pub exited: bool,
}

pub fn proc_status(pid: u32) -> ProcStatus {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return ProcStatus {
            exited: true,
            ..Default::default()
        };
    };
    let mut status = ProcStatus::default();
    for line in text.lines() {
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if line.starts_with("VmRSS:") {
            status.rss_kb = kb();
        } else if line.starts_with("VmHWM:") {
            status.hwm_kb = kb();
        } else if let Some(state) = line.strip_prefix("State:") {
            status.exited = matches!(state.trim_start().chars().next(), Some('Z' | 'X'));
        }
    }
    status
}

/// Memory over the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub samples: u64,
    pub first_rss_kb: u64,
    pub peak_rss_kb: u64,
    pub hwm_kb: u64,
}

/// Sample VmRSS every 200 ms until `stop`; cancel `exited` if the process goes away.
pub async fn sample_memory(pid: u32, stop: CancellationToken, exited: CancellationToken) -> Memory {
    let mut memory = Memory::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let status = proc_status(pid);
        if status.exited {
            exited.cancel();
            break;
        }
        if memory.samples == 0 {
            memory.first_rss_kb = status.rss_kb;
        }
        memory.samples += 1;
        memory.peak_rss_kb = memory.peak_rss_kb.max(status.rss_kb);
        memory.hwm_kb = memory.hwm_kb.max(status.hwm_kb);
    }
    let last = proc_status(pid);
    memory.hwm_kb = memory.hwm_kb.max(last.hwm_kb);
    memory
}
