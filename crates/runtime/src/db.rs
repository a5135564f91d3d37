//! Postgres: each service connects as its own role with its own schema first on the search path, and
//! applies the platform's tables and then its own migrations there.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;
use crate::error::{Error, Result};

/// Migrations table of the platform's own tables (outbox, processed messages, dead letters), kept apart
/// from the service's `_sqlx_migrations` so the two sets version independently.
const PLATFORM_MIGRATIONS_TABLE: &str = "_platform_migrations";

/// A Postgres identifier we create ourselves (schema, role, database): lower-case ASCII, digits and '_'.
fn checked_identifier(key: &'static str, value: &str) -> Result<String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Error::InvalidSetting {
            key,
            reason: format!("{value:?} must be 1-63 characters of a-z, 0-9 and _"),
        })
    }
}

/// Connect a pool as the service's role, with its schema on the search path.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool> {
    let schema = checked_identifier("database.schema", &settings.schema)?;
    let options = PgConnectOptions::from_str(&settings.url)?.options([
        ("search_path", schema.as_str()),
        ("plan_cache_mode", settings.plan_cache_mode.as_postgres()),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Apply the platform's tables and then the service's own migrations, in the service's schema.
pub async fn migrate(pool: &PgPool, service_migrations: &Migrator) -> Result<()> {
    let mut platform = sqlx::migrate!("./migrations");
    platform.dangerous_set_table_name(PLATFORM_MIGRATIONS_TABLE);
    platform.run(pool).await?;
    service_migrations.run(pool).await?;
    Ok(())
}

/// One service's place in the database: the role it logs in as and the schema it owns.
#[derive(Debug, Clone)]
pub struct ServiceSchema {
    pub role: String,
    pub schema: String,
    /// Login password; None where the server trusts local connections.
    pub password: Option<String>,
}

/// Create (idempotently) the database, one role and one schema per service, with no rights across schemas.
/// Needs a superuser connection; run by `trustctl db provision`, by a Kubernetes Job, and by tests.
pub async fn provision(admin_url: &str, database: &str, services: &[ServiceSchema]) -> Result<()> {
    let database = checked_identifier("database", database)?;
    let admin_options = PgConnectOptions::from_str(admin_url)?;
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&database)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let created = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await;
        ignore_already_exists(created)?;
    }
    for service in services {
        let role = checked_identifier("role", &service.role)?;
        let created = sqlx::query(AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut admin)
            .await;
        ignore_already_exists(created)?;
        if let Some(password) = &service.password {
            // Passwords cannot be bound as parameters in DDL; quote as a literal.
            let literal = password.replace('\'', "''");
            sqlx::query(AssertSqlSafe(format!("ALTER ROLE {role} PASSWORD '{literal}'")))
                .execute(&mut admin)
                .await?;
        }
    }
    admin.close().await?;

    let mut db = PgConnection::connect_with(&admin_options.database(&database)).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "REVOKE ALL ON DATABASE {database} FROM PUBLIC; REVOKE ALL ON SCHEMA public FROM PUBLIC"
    )))
    .execute(&mut db)
    .await?;
    for service in services {
        let role = checked_identifier("role", &service.role)?;
        let schema = checked_identifier("schema", &service.schema)?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}; \
             CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}; \
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC; \
             ALTER ROLE {role} IN DATABASE {database} SET search_path = {schema}"
        )))
        .execute(&mut db)
        .await?;
    }
    db.close().await?;
    Ok(())
}

/// Drop a database (tests clean up after themselves), disconnecting anyone still in it.
pub async fn drop_database(admin_url: &str, database: &str) -> Result<()> {
    let database = checked_identifier("database", database)?;
    let mut admin = PgConnection::connect_with(&PgConnectOptions::from_str(admin_url)?).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// Two provisioners racing (parallel tests, two replicas of a Job) may both try to create the same role or
/// database; the loser's "already exists" is success.
fn ignore_already_exists<T>(result: std::result::Result<T, sqlx::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("42710" | "42P04" | "23505")) =>
        {
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_that_could_inject_sql_are_refused() {
        assert!(checked_identifier("schema", "ingest").is_ok());
        assert!(checked_identifier("schema", "trust_t_0a1b").is_ok());
        assert!(checked_identifier("schema", "ingest; DROP TABLE x").is_err());
        assert!(checked_identifier("schema", "Ingest").is_err());
        assert!(checked_identifier("schema", "").is_err());
        assert!(checked_identifier("schema", "1abc").is_err());
    }
}
