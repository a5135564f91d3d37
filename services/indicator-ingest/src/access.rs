//! Who is calling `IndicatorIngest` on gRPC, and what the information sharing protocol lets them read.
//!
//! Every call carries `authorization: Bearer <token>`. A token is issued once (`trustctl credential issue`,
//! which calls [`issue`]) and only its SHA-256 is kept, in `credential`, naming either a partner or an
//! operator (the partnership's own performance team). [`authenticate`] turns the metadata into a [`Caller`].
//!
//! A partner may read what it may submit (`submission_permission` for the localities of
//! `submission_locality_permission`) and, in addition, the indicators of `read_permission` for the
//! localities of `read_locality_permission`. No localities means the whole city; a locality covers those
//! under it in the hierarchy in force when each period began, so an area's read permission covers its
//! clusters (and its own rolled-up values). An operator reads everything. [`ReadScope`] answers for one
//! caller.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use thiserror::Error;
use time::{Date, OffsetDateTime};
use tonic::Status;
use tonic::metadata::MetadataMap;
use uuid::Uuid;

use crate::domain::Period;
use crate::reference::{Reference, ReferenceCache};

/// Every token starts with this, so a leaked one is recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "trust_";

/// The caller of an RPC, as its credential names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A partner organisation, by code: it acts under the information sharing protocol.
    Partner(String),
    /// The partnership's performance team, by name: the catalogue, approval, and every read.
    Operator(String),
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Partner(code) => write!(f, "partner {code}"),
            Caller::Operator(name) => write!(f, "operator {name}"),
        }
    }
}

#[derive(Debug, Error)]
pub enum AccessError {
    /// No credential, or one the service does not honour.
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that does not allow this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A credential that cannot be issued or revoked as asked.
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<AccessError> for Status {
    fn from(err: AccessError) -> Status {
        match err {
            AccessError::Unauthenticated(message) => Status::unauthenticated(message),
            AccessError::PermissionDenied(message) => Status::permission_denied(message),
            AccessError::Invalid(message) => Status::invalid_argument(message),
            AccessError::Database(err) => Status::unavailable(format!("database: {err}")),
        }
    }
}

/// A new random token: the prefix and 64 hex digits (two version-4 UUIDs, 244 random bits).
pub fn new_token() -> String {
    format!(
        "{TOKEN_PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// What is stored of a token.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How a credential is named without its token: the first 16 hex digits of the token's SHA-256.
pub fn fingerprint(sha256: &[u8]) -> String {
    sha256.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token(metadata: &MetadataMap) -> Result<&str, AccessError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        AccessError::Unauthenticated(
            "no credential: trust.ingest.v1.IndicatorIngest needs the metadata `authorization: Bearer <token>` \
             (a token from `trustctl credential issue`)"
                .to_owned(),
        )
    })?;
    let malformed = || {
        AccessError::Unauthenticated(
            "the authorization metadata must be `Bearer <token>` (a token from `trustctl credential issue`)"
                .to_owned(),
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

/// The caller named by the request's bearer token: UNAUTHENTICATED when there is none, or it is unknown
/// or revoked.
pub async fn authenticate(conn: &mut PgConnection, metadata: &MetadataMap) -> Result<Caller, AccessError> {
    let token = bearer_token(metadata)?;
    let row: Option<(Option<String>, Option<String>, Option<OffsetDateTime>)> =
        sqlx::query_as("SELECT partner_code, operator, revoked_at FROM credential WHERE token_sha256 = $1")
            .bind(&token_sha256(token)[..])
            .fetch_optional(conn)
            .await?;
    match row {
        None => Err(AccessError::Unauthenticated(
            "the bearer token is not a credential of this service (unknown token; `trustctl credential issue` \
             issues one)"
                .to_owned(),
        )),
        Some((_, _, Some(revoked_at))) => Err(AccessError::Unauthenticated(format!(
            "the bearer token was revoked at {revoked_at}; ask for a new one"
        ))),
        Some((Some(partner), None, None)) => Ok(Caller::Partner(partner)),
        Some((None, Some(operator), None)) => Ok(Caller::Operator(operator)),
        Some(_) => Err(AccessError::Unauthenticated(
            "the credential names neither one partner nor one operator".to_owned(),
        )),
    }
}

/// Only an operator may do this.
pub fn require_operator(caller: &Caller, doing: &str) -> Result<(), AccessError> {
    match caller {
        Caller::Operator(_) => Ok(()),
        Caller::Partner(code) => Err(AccessError::PermissionDenied(format!(
            "{doing} is for the partnership's performance team (an operator credential); partner {code} may not"
        ))),
    }
}

/// The partner a submission is from: the caller's, never the batch's `partner_code`, which must be empty
/// or the same.
pub fn submitting_partner<'a>(caller: &'a Caller, batch_partner: &str) -> Result<&'a str, AccessError> {
    match caller {
        Caller::Operator(name) => Err(AccessError::PermissionDenied(format!(
            "operator {name} cannot submit observations: a submission comes from a partner, with the partner's \
             own credential"
        ))),
        Caller::Partner(code) if batch_partner.is_empty() || batch_partner == code => Ok(code),
        Caller::Partner(code) => Err(AccessError::PermissionDenied(format!(
            "the batch names partner {batch_partner:?} but the credential is partner {code:?}'s; a partner \
             submits only its own data"
        ))),
    }
}

/// The partner whose receipts a caller asks for: an operator any (named), a partner only its own.
pub fn receipt_partner(caller: &Caller, asked: &str) -> Result<String, AccessError> {
    match caller {
        Caller::Operator(_) => Ok(asked.to_owned()),
        Caller::Partner(code) if asked.is_empty() || asked == code => Ok(code.clone()),
        Caller::Partner(code) => Err(AccessError::PermissionDenied(format!(
            "partner {code} may read only its own receipts, not partner {asked:?}'s"
        ))),
    }
}

/// Indicators, and the localities they are allowed for (empty: the whole city).
#[derive(Debug, Default)]
struct Grant {
    indicators: HashSet<String>,
    places: HashSet<String>,
}

/// What one partner may read: what it may submit, and its read permissions besides.
#[derive(Debug)]
pub struct PartnerReads {
    partner: String,
    submit: Grant,
    read: Grant,
    reference: Arc<Reference>,
}

/// What a caller may read.
#[derive(Debug)]
pub enum ReadScope {
    Everything,
    Partner(Box<PartnerReads>),
}

impl ReadScope {
    /// The caller's scope: everything for an operator; a partner's from the catalogue in force.
    pub async fn of(
        conn: &mut PgConnection,
        caller: &Caller,
        reference: &ReferenceCache,
    ) -> Result<ReadScope, sqlx::Error> {
        let partner = match caller {
            Caller::Operator(_) => return Ok(ReadScope::Everything),
            Caller::Partner(code) => code,
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT 'submit', indicator_code FROM submission_permission WHERE partner_code = $1 \
             UNION ALL SELECT 'submit_place', locality_code FROM submission_locality_permission \
               WHERE partner_code = $1 \
             UNION ALL SELECT 'read', indicator_code FROM read_permission WHERE partner_code = $1 \
             UNION ALL SELECT 'read_place', locality_code FROM read_locality_permission WHERE partner_code = $1",
        )
        .bind(partner)
        .fetch_all(&mut *conn)
        .await?;
        let (mut submit, mut read) = (Grant::default(), Grant::default());
        for (kind, code) in rows {
            let set = match kind.as_str() {
                "submit" => &mut submit.indicators,
                "submit_place" => &mut submit.places,
                "read" => &mut read.indicators,
                _ => &mut read.places,
            };
            set.insert(code);
        }
        Ok(ReadScope::Partner(Box::new(PartnerReads {
            partner: partner.clone(),
            submit,
            read,
            reference: reference.current(conn).await?,
        })))
    }

    /// The indicators the caller may read for some locality, sorted; None for every indicator.
    pub fn readable_indicators(&self) -> Option<Vec<String>> {
        match self {
            ReadScope::Everything => None,
            ReadScope::Partner(reads) => {
                let mut codes: Vec<String> = reads
                    .submit
                    .indicators
                    .union(&reads.read.indicators)
                    .cloned()
                    .collect();
                codes.sort();
                Some(codes)
            }
        }
    }

    /// Whether the caller may read this indicator for some locality.
    pub fn indicator(&self, indicator: &str) -> bool {
        match self {
            ReadScope::Everything => true,
            ReadScope::Partner(reads) => [&reads.submit, &reads.read]
                .iter()
                .any(|grant| grant.indicators.contains(indicator)),
        }
    }

    /// Whether the caller may read the indicator for the locality under the hierarchy in force on `on`.
    pub fn locality_on(&self, indicator: &str, locality: &str, on: Date) -> bool {
        let reads = match self {
            ReadScope::Everything => return true,
            ReadScope::Partner(reads) => reads,
        };
        let lineage = reads.reference.lineage(locality, on);
        [&reads.submit, &reads.read].iter().any(|grant| {
            grant.indicators.contains(indicator)
                && (grant.places.is_empty() || lineage.iter().any(|l| grant.places.contains(*l)))
        })
    }

    /// Whether the caller may read the indicator's value for the locality in the period (the hierarchy in
    /// force when the period began decides what an area covers, as for submissions).
    pub fn value(&self, indicator: &str, locality: &str, period: Period) -> bool {
        self.locality_on(indicator, locality, period.starts_on())
    }

    /// A read that names this indicator is refused when the caller may read it nowhere.
    pub fn require_indicator(&self, indicator: &str) -> Result<(), AccessError> {
        match self {
            ReadScope::Partner(reads) if !self.indicator(indicator) => {
                Err(AccessError::PermissionDenied(format!(
                    "indicator {indicator} is outside partner {}'s read permissions under the information sharing \
                     protocol",
                    reads.partner
                )))
            }
            _ => Ok(()),
        }
    }

    /// A read of one series (an indicator in a named locality), given the periods it holds: refused when
    /// the caller may read the indicator nowhere, or may read the locality neither today nor in any of the
    /// periods. The caller then keeps only the periods [`ReadScope::value`] allows.
    pub fn require_series(
        &self,
        indicator: &str,
        locality: &str,
        periods: impl IntoIterator<Item = Period>,
        today: Date,
    ) -> Result<(), AccessError> {
        self.require_indicator(indicator)?;
        let reads = match self {
            ReadScope::Everything => return Ok(()),
            ReadScope::Partner(reads) => reads,
        };
        if self.locality_on(indicator, locality, today)
            || periods
                .into_iter()
                .any(|period| self.value(indicator, locality, period))
        {
            return Ok(());
        }
        Err(AccessError::PermissionDenied(format!(
            "{indicator} in locality {locality} is outside partner {}'s read permissions under the information \
             sharing protocol",
            reads.partner
        )))
    }
}

/// A credential as listed: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub fingerprint: String,
    pub holder: Caller,
    pub label: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

type CredentialRow = (
    Vec<u8>,
    Option<String>,
    Option<String>,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

fn credential_info(
    (sha256, partner, operator, label, created_at, revoked_at): CredentialRow,
) -> Option<CredentialInfo> {
    let holder = match (partner, operator) {
        (Some(partner), None) => Caller::Partner(partner),
        (None, Some(operator)) => Caller::Operator(operator),
        _ => return None,
    };
    Some(CredentialInfo {
        fingerprint: fingerprint(&sha256),
        holder,
        label,
        created_at,
        revoked_at,
    })
}

/// A credential just issued: its token, shown once, and how it is listed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub fingerprint: String,
}

/// Issue a credential for a partner (which must be in the catalogue) or an operator.
pub async fn issue(conn: &mut PgConnection, holder: &Caller, label: &str) -> Result<Issued, AccessError> {
    let (partner, operator) = match holder {
        Caller::Partner(code) => {
            if !crate::submission::valid_partner_code(code) {
                return Err(AccessError::Invalid(format!(
                    "partner {code:?}: a partner code is letters, digits, '-' or '_'"
                )));
            }
            (Some(code.as_str()), None)
        }
        Caller::Operator(name) => {
            if name.trim().is_empty() {
                return Err(AccessError::Invalid(
                    "operator: a name is required (it says who holds the credential)".to_owned(),
                ));
            }
            (None, Some(name.trim()))
        }
    };
    let token = new_token();
    let sha256 = token_sha256(&token);
    sqlx::query(
        "INSERT INTO credential (token_sha256, partner_code, operator, label) VALUES ($1, $2, $3, $4)",
    )
    .bind(&sha256[..])
    .bind(partner)
    .bind(operator)
    .bind(label.trim())
    .execute(conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => AccessError::Invalid(format!(
            "partner {:?} is not in the catalogue (load the catalogue first)",
            partner.unwrap_or_default()
        )),
        _ => AccessError::Database(err),
    })?;
    Ok(Issued {
        token,
        fingerprint: fingerprint(&sha256),
    })
}

/// Whether the database holds credentials yet (indicator-ingest creates the table when it first starts).
pub async fn credentials_table_exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass('credential') IS NOT NULL")
        .fetch_one(conn)
        .await
}

/// Every credential, oldest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<CredentialInfo>, sqlx::Error> {
    let rows: Vec<CredentialRow> = sqlx::query_as(
        "SELECT token_sha256, partner_code, operator, label, created_at, revoked_at FROM credential \
         ORDER BY created_at, token_sha256",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(credential_info).collect())
}

/// Which credentials to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke<'a> {
    /// The one whose fingerprint (as listed) this is.
    Fingerprint(&'a str),
    /// Every one not yet revoked with this label.
    Label(&'a str),
    /// The one of this token.
    Token(&'a str),
}

/// Revoke credentials; the ones revoked now (none when they were revoked already or do not exist).
pub async fn revoke(conn: &mut PgConnection, which: Revoke<'_>) -> Result<Vec<CredentialInfo>, AccessError> {
    let rows: Vec<CredentialRow> = match which {
        Revoke::Fingerprint(fingerprint) => {
            let fingerprint = fingerprint.trim().to_ascii_lowercase();
            if fingerprint.len() != 16 || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(AccessError::Invalid(format!(
                    "fingerprint {fingerprint:?}: 16 hex digits, as `trustctl credential list` shows"
                )));
            }
            sqlx::query_as(
                "UPDATE credential SET revoked_at = now() \
                 WHERE substr(encode(token_sha256, 'hex'), 1, 16) = $1 AND revoked_at IS NULL \
                 RETURNING token_sha256, partner_code, operator, label, created_at, revoked_at",
            )
            .bind(fingerprint)
            .fetch_all(conn)
            .await?
        }
        Revoke::Label(label) => {
            if label.trim().is_empty() {
                return Err(AccessError::Invalid("label: empty".to_owned()));
            }
            sqlx::query_as(
                "UPDATE credential SET revoked_at = now() WHERE label = $1 AND revoked_at IS NULL \
                 RETURNING token_sha256, partner_code, operator, label, created_at, revoked_at",
            )
            .bind(label.trim())
            .fetch_all(conn)
            .await?
        }
        Revoke::Token(token) => {
            sqlx::query_as(
                "UPDATE credential SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL \
                 RETURNING token_sha256, partner_code, operator, label, created_at, revoked_at",
            )
            .bind(&token_sha256(token.trim())[..])
            .fetch_all(conn)
            .await?
        }
    };
    Ok(rows.into_iter().filter_map(credential_info).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn metadata(value: &'static str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", MetadataValue::from_static(value));
        metadata
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_as_their_sha256() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(token_sha256(&a), token_sha256(&a));
        assert_ne!(token_sha256(&a), token_sha256(&b));
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(fingerprint(&token_sha256("abc")), "ba7816bf8f01cfea");
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_metadata() {
        assert_eq!(
            bearer_token(&metadata("Bearer trust_abc")).ok(),
            Some("trust_abc")
        );
        assert_eq!(
            bearer_token(&metadata("bearer  trust_abc ")).ok(),
            Some("trust_abc")
        );
        for bad in ["trust_abc", "Basic dXNlcg==", "Bearer ", "Bearer"] {
            let err = bearer_token(&metadata(bad)).expect_err(bad);
            assert!(
                err.to_string().contains("must be `Bearer <token>`"),
                "{bad}: {err}"
            );
        }
        let err = bearer_token(&MetadataMap::new()).expect_err("none");
        assert!(err.to_string().starts_with("no credential"), "{err}");
    }

    #[test]
    fn submissions_and_receipts_are_the_callers_own() {
        let connexions = Caller::Partner("connexions".into());
        let operator = Caller::Operator("performance team".into());
        assert_eq!(submitting_partner(&connexions, "").ok(), Some("connexions"));
        assert_eq!(
            submitting_partner(&connexions, "connexions").ok(),
            Some("connexions")
        );
        let err = submitting_partner(&connexions, "police").expect_err("another partner");
        assert!(
            err.to_string().contains("\"police\"") && err.to_string().contains("\"connexions\""),
            "{err}"
        );
        assert!(matches!(
            submitting_partner(&operator, "connexions"),
            Err(AccessError::PermissionDenied(_))
        ));
        assert_eq!(
            receipt_partner(&connexions, "").ok().as_deref(),
            Some("connexions")
        );
        assert!(matches!(
            receipt_partner(&connexions, "police"),
            Err(AccessError::PermissionDenied(_))
        ));
        assert_eq!(
            receipt_partner(&operator, "police").ok().as_deref(),
            Some("police")
        );
        assert!(require_operator(&operator, "loading the catalogue").is_ok());
        let err = require_operator(&connexions, "loading the catalogue").expect_err("partner");
        assert_eq!(
            err.to_string(),
            "loading the catalogue is for the partnership's performance team (an operator credential); \
             partner connexions may not"
        );
    }
}
