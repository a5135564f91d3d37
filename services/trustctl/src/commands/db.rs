//! `trustctl db provision`: the database, and one role and schema per service.

use std::process::ExitCode;

use anyhow::{Context, Result};
use trust_runtime::db::{ServiceSchema, provision};

/// Each service's role and schema; they match the services' default database URLs and schemas.
pub const SERVICES: [(&str, &str, &str); 4] = [
    ("indicator-ingest", "trust_ingest", "ingest"),
    ("safeguarding-qa", "trust_safeguarding", "safeguarding"),
    ("commissioning", "trust_commissioning", "commissioning"),
    ("notifications", "trust_notifications", "notifications"),
];

pub async fn run(admin_url: &str, database: &str) -> Result<ExitCode> {
    let schemas: Vec<ServiceSchema> = SERVICES
        .iter()
        .map(|(_, role, schema)| ServiceSchema {
            role: (*role).to_owned(),
            schema: (*schema).to_owned(),
            password: None,
        })
        .collect();
    provision(admin_url, database, &schemas)
        .await
        .with_context(|| format!("provisioning database {database} as {}", redact(admin_url)))?;
    println!("database {database} is ready:");
    for (service, role, schema) in SERVICES {
        println!("  {service:<17} role {role:<20} schema {schema}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A connection URL fit for a message: any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact("postgres://postgres:s3cret@db:5432/postgres"),
            "postgres://postgres:***@db:5432/postgres"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
