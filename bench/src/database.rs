//! A benchmark's own database, provisioned as the tests' TestEnv does (one role and schema per service), and
//! removed again at the end.

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::str::FromStr;
use trust_runtime::db::{self, ServiceSchema};

/// (role, schema) of each service, as provisioned for tests and deployments.
pub const SERVICES: [(&str, &str); 4] = [
    ("trust_ingest", "ingest"),
    ("trust_safeguarding", "safeguarding"),
    ("trust_commissioning", "commissioning"),
    ("trust_notifications", "notifications"),
];

pub struct Database {
    pub admin_url: String,
    pub name: String,
    /// Host (or socket directory) and port of the admin URL, for the service roles' URLs.
    host: String,
    port: u16,
}

impl Database {
    pub async fn provision(admin_url: &str, name: &str) -> Result<Self> {
        let schemas: Vec<ServiceSchema> = SERVICES
            .iter()
            .map(|(role, schema)| ServiceSchema {
                role: (*role).to_owned(),
                schema: (*schema).to_owned(),
                password: None,
            })
            .collect();
        db::provision(admin_url, name, &schemas)
            .await
            .with_context(|| format!("provisioning database {name} (is Postgres running at {admin_url}?)"))?;
        let admin = PgConnectOptions::from_str(admin_url).context("parsing --admin-url")?;
        let host = admin.get_host().to_owned();
        let port = admin.get_port();
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            host,
            port,
        })
    }

    /// The database's URL as a service's role (no password: roles are provisioned without one).
    pub fn url_as(&self, role: &str) -> String {
        let (name, host, port) = (&self.name, &self.host, self.port);
        if host.starts_with('/') {
            format!("postgres:///{name}?host={host}&port={port}&user={role}")
        } else {
            format!("postgres://{role}@{host}:{port}/{name}")
        }
    }

    /// A connection as a service's role with its schema on the search path (as the service connects).
    pub async fn connect_as(&self, role: &str, schema: &str) -> Result<PgConnection> {
        let options = PgConnectOptions::from_str(&self.url_as(role))?.options([("search_path", schema)]);
        Ok(PgConnection::connect_with(&options).await?)
    }

    /// Logs the plan of every statement on this database slower than `threshold_ms` to the server's log
    /// (`auto_explain`, for connections opened from now on): to find which statement a slow run waited on.
    pub async fn explain_slower_than(&self, threshold_ms: u64) -> Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let name = &self.name;
        for setting in [
            "session_preload_libraries = 'auto_explain'".to_owned(),
            format!("auto_explain.log_min_duration = {threshold_ms}"),
            "auto_explain.log_nested_statements = on".to_owned(),
        ] {
            // The name is the benchmark's own (hex), the settings are the literals above.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{name}\" SET {setting}"
            )))
            .execute(&mut admin)
            .await
            .with_context(|| format!("setting {setting} on database {name}"))?;
        }
        Ok(())
    }

    pub async fn drop(&self) -> Result<()> {
        db::drop_database(&self.admin_url, &self.name).await?;
        Ok(())
    }
}
