//! `trustctl credential issue|list|revoke`: bearer tokens for indicator-ingest's API, written to and read
//! from its database directly (as its role), so the first operator credential needs no credential. The
//! rules are indicator-ingest's own ([`indicator_ingest::access`]).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use indicator_ingest::access::{self, Caller, CredentialInfo, Revoke};
use sqlx::PgPool;
use trust_runtime::config::DatabaseSettings;

use super::negative;
use crate::cli::{CredentialDatabase, IssueArgs, RevokeArgs};

/// A pool on indicator-ingest's database, once it has the credential table.
async fn connect(database: &CredentialDatabase) -> Result<PgPool> {
    let settings = DatabaseSettings {
        url: database.database_url.clone(),
        schema: database.schema.clone(),
        max_connections: 1,
        acquire_timeout_secs: 10,
        plan_cache_mode: Default::default(),
    };
    let pool = trust_runtime::db::connect(&settings).await.with_context(|| {
        format!(
            "connecting to indicator-ingest's database (--database-url or TRUSTCTL_INGEST_DATABASE_URL, schema \
             {})",
            database.schema
        )
    })?;
    let mut conn = pool
        .acquire()
        .await
        .context("connecting to indicator-ingest's database")?;
    let ready = access::credentials_table_exists(&mut conn)
        .await
        .context("looking for the credential table")?;
    if !ready {
        bail!(
            "schema {} has no credential table: start indicator-ingest (this version) once; it creates its \
             tables at start-up",
            database.schema
        );
    }
    Ok(pool)
}

fn holder(args: &IssueArgs) -> Result<Caller> {
    match (&args.partner, &args.operator) {
        (Some(partner), None) => Ok(Caller::Partner(partner.trim().to_owned())),
        (None, Some(operator)) => Ok(Caller::Operator(operator.trim().to_owned())),
        _ => bail!("say either --partner or --operator"),
    }
}

/// Print the new token alone on stdout (so `TOKEN=$(trustctl credential issue ...)` captures it), and what
/// it is on stderr.
pub async fn issue(args: &IssueArgs) -> Result<ExitCode> {
    let holder = holder(args)?;
    let pool = connect(&args.database).await?;
    let mut conn = pool.acquire().await?;
    let issued = access::issue(&mut conn, &holder, &args.label)
        .await
        .with_context(|| format!("issuing a credential for {holder}"))?;
    println!("{}", issued.token);
    let label = if args.label.trim().is_empty() {
        String::new()
    } else {
        format!(", label {:?}", args.label.trim())
    };
    eprintln!(
        "issued a credential for {holder} (fingerprint {}{label}). The token above is shown only now and only \
         its SHA-256 is kept: store it as a secret, and send it as --token or TRUST_TOKEN.",
        issued.fingerprint
    );
    Ok(ExitCode::SUCCESS)
}

fn when(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

fn line(credential: &CredentialInfo) -> String {
    let revoked = credential
        .revoked_at
        .map_or_else(|| "active".to_owned(), |at| format!("revoked {}", when(at)));
    format!(
        "{}  {:<32} {:<24} issued {}  {revoked}",
        credential.fingerprint,
        credential.holder.to_string(),
        if credential.label.is_empty() {
            "-"
        } else {
            credential.label.as_str()
        },
        when(credential.created_at)
    )
}

pub async fn list(database: &CredentialDatabase) -> Result<ExitCode> {
    let pool = connect(database).await?;
    let mut conn = pool.acquire().await?;
    let credentials = access::list(&mut conn).await.context("listing the credentials")?;
    if credentials.is_empty() {
        println!("no credentials have been issued (trustctl credential issue)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16}  {:<32} {:<24} issued / state",
        "fingerprint", "holder", "label"
    );
    for credential in &credentials {
        println!("{}", line(credential));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(args: &RevokeArgs) -> Result<ExitCode> {
    let token;
    let which = match (&args.fingerprint, &args.label, &args.token_file) {
        (Some(fingerprint), None, None) => Revoke::Fingerprint(fingerprint),
        (None, Some(label), None) => Revoke::Label(label),
        (None, None, Some(path)) => {
            token = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token in {}", path.display()))?;
            if token.trim().is_empty() {
                bail!("{} holds no token", path.display());
            }
            Revoke::Token(&token)
        }
        _ => bail!("say one of --fingerprint, --label or --token-file"),
    };
    let pool = connect(&args.database).await?;
    let mut conn = pool.acquire().await?;
    let revoked = access::revoke(&mut conn, which).await.context("revoking")?;
    if revoked.is_empty() {
        eprintln!(
            "no active credential matched (`trustctl credential list` shows them); nothing was revoked"
        );
        return Ok(negative());
    }
    println!(
        "revoked {} credential(s); calls with them are refused from now on:",
        revoked.len()
    );
    for credential in &revoked {
        println!("  {}", line(credential));
    }
    Ok(ExitCode::SUCCESS)
}
