//! Where the CPU went during the measured phase: the service's process, the Postgres backends serving the
//! benchmark's database, and the machine as a whole (so contention from anything else shows).

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Result;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// CPU time counters at one moment, in clock ticks.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    service: u64,
    backends: HashMap<i32, u64>,
    machine_busy: u64,
    machine_steal: u64,
    machine_total: u64,
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub service_secs: f64,
    pub postgres_secs: f64,
    /// Busy share of all cores (0-1) across the machine, and the share the hypervisor took (steal).
    pub machine_busy: f64,
    pub machine_steal: f64,
    pub cores: usize,
}

pub async fn snapshot(service_pid: u32, admin_url: &str, database: &str) -> Snapshot {
    let (machine_busy, machine_steal, machine_total) = machine().unwrap_or((0, 0, 0));
    let pids = backend_pids(admin_url, database).await.unwrap_or_default();
    Snapshot {
        service: process_ticks(service_pid).unwrap_or(0),
        backends: pids
            .into_iter()
            .filter_map(|pid| Some((pid, process_ticks(u32::try_from(pid).ok()?)?)))
            .collect(),
        machine_busy,
        machine_steal,
        machine_total,
    }
}

pub fn usage(before: &Snapshot, after: &Snapshot) -> Usage {
    let hz = clock_ticks_per_second() as f64;
    let postgres: u64 = after
        .backends
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(before.backends.get(pid).copied().unwrap_or(0)))
        .sum();
    let total = after.machine_total.saturating_sub(before.machine_total);
    let share = |a: u64, b: u64| {
        if total == 0 {
            0.0
        } else {
            a.saturating_sub(b) as f64 / total as f64
        }
    };
    Usage {
        service_secs: after.service.saturating_sub(before.service) as f64 / hz,
        postgres_secs: postgres as f64 / hz,
        machine_busy: share(after.machine_busy, before.machine_busy),
        machine_steal: share(after.machine_steal, before.machine_steal),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
    }
}

/// Backends connected to the benchmark's database (the service's pool, its outbox listener).
async fn backend_pids(admin_url: &str, database: &str) -> Result<Vec<i32>> {
    let mut admin = PgConnection::connect_with(&PgConnectOptions::from_str(admin_url)?).await?;
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_all(&mut admin)
        .await?;
    admin.close().await?;
    Ok(pids)
}

/// utime + stime of a process, from /proc/<pid>/stat.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, steal, total) jiffies of all cores, from /proc/stat (busy includes steal).
fn machine() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    let steal = values.get(7).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), steal, total))
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|hz| *hz > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_have_counters() {
        assert!(process_ticks(std::process::id()).is_some());
        let (busy, steal, total) = machine().expect("/proc/stat");
        assert!(total >= busy && busy >= steal);
    }
}
