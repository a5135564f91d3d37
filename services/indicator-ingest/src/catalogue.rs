//! Loading the catalogue: partners, localities, indicators and targets, upserted by code in one
//! transaction. An invalid entry refuses the whole load and names the entry, field and reason.

use sqlx::PgConnection;
use thiserror::Error;
use trust_proto::common::v1::{MeasureType, Polarity};
use trust_proto::ingest::v1 as pb;

use crate::domain::PeriodType;

#[derive(Debug, Error)]
pub enum CatalogueError {
    #[error("{entry}: {field}: {reason}")]
    Invalid {
        entry: String,
        field: &'static str,
        reason: String,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn invalid(entry: impl Into<String>, field: &'static str, reason: impl Into<String>) -> CatalogueError {
    CatalogueError::Invalid {
        entry: entry.into(),
        field,
        reason: reason.into(),
    }
}

fn check_code(entry: &str, code: &str) -> Result<(), CatalogueError> {
    let valid = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(invalid(
            entry,
            "code",
            format!("{code:?} must be 1-64 letters, digits, '_' or '-'"),
        ))
    }
}

fn period_type_name(value: i32) -> Option<&'static str> {
    let kind = match trust_proto::common::v1::PeriodType::try_from(value).ok()? {
        trust_proto::common::v1::PeriodType::Month => PeriodType::Month,
        trust_proto::common::v1::PeriodType::Quarter => PeriodType::Quarter,
        trust_proto::common::v1::PeriodType::AcademicYear => PeriodType::AcademicYear,
        trust_proto::common::v1::PeriodType::FinancialYear => PeriodType::FinancialYear,
        trust_proto::common::v1::PeriodType::Unspecified => return None,
    };
    Some(kind.as_str())
}

/// Check what can be checked without the database.
pub fn validate(catalogue: &pb::Catalogue) -> Result<(), CatalogueError> {
    for partner in &catalogue.partners {
        check_code("partner", &partner.code)?;
        if partner.name.trim().is_empty() {
            return Err(invalid(format!("partner {}", partner.code), "name", "is empty"));
        }
    }
    for locality in &catalogue.localities {
        check_code("locality", &locality.code)?;
        if locality.name.trim().is_empty() {
            return Err(invalid(format!("locality {}", locality.code), "name", "is empty"));
        }
    }
    for indicator in &catalogue.indicators {
        let entry = format!("indicator {}", indicator.code);
        check_code("indicator", &indicator.code)?;
        if indicator.name.trim().is_empty() {
            return Err(invalid(entry, "name", "is empty"));
        }
        if matches!(
            MeasureType::try_from(indicator.measure),
            Err(_) | Ok(MeasureType::Unspecified)
        ) {
            return Err(invalid(entry, "measure", "must be set"));
        }
        if matches!(
            Polarity::try_from(indicator.polarity),
            Err(_) | Ok(Polarity::Unspecified)
        ) {
            return Err(invalid(
                entry,
                "polarity",
                "must say whether higher or lower is better",
            ));
        }
        if period_type_name(indicator.period_type).is_none() {
            return Err(invalid(entry, "period_type", "must be set"));
        }
    }
    for target in &catalogue.targets {
        let entry = format!("target {}/{}", target.indicator_code, target.locality_code);
        if !target.value.is_finite() {
            return Err(invalid(entry, "value", "must be a finite number"));
        }
        if !target.amber_tolerance.is_finite() || target.amber_tolerance < 0.0 {
            return Err(invalid(
                entry,
                "amber_tolerance",
                "must be a finite number of 0 or more",
            ));
        }
    }
    Ok(())
}

/// Upsert the catalogue. References (an indicator's owner, a target's indicator) must exist afterwards.
pub async fn put(
    conn: &mut PgConnection,
    catalogue: &pb::Catalogue,
) -> Result<pb::PutCatalogueResponse, CatalogueError> {
    validate(catalogue)?;
    for partner in &catalogue.partners {
        sqlx::query("INSERT INTO partner (code, name) VALUES ($1, $2) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name")
            .bind(&partner.code)
            .bind(&partner.name)
            .execute(&mut *conn)
            .await?;
    }
    // Parents may come later in the list: insert every locality first, then link parents.
    for locality in &catalogue.localities {
        sqlx::query("INSERT INTO locality (code, name) VALUES ($1, $2) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name")
            .bind(&locality.code)
            .bind(&locality.name)
            .execute(&mut *conn)
            .await?;
    }
    for locality in &catalogue.localities {
        let parent = (!locality.parent_code.is_empty()).then_some(locality.parent_code.as_str());
        sqlx::query("UPDATE locality SET parent_code = $2 WHERE code = $1")
            .bind(&locality.code)
            .bind(parent)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                reference_error(
                    e,
                    format!("locality {}", locality.code),
                    "parent_code",
                    &locality.parent_code,
                )
            })?;
    }
    for indicator in &catalogue.indicators {
        let period_type = period_type_name(indicator.period_type).unwrap_or("quarter");
        sqlx::query(
            "INSERT INTO indicator (code, name, definition, measure, polarity, period_type, owner_partner_code, \
             outcome_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO UPDATE SET \
             name = EXCLUDED.name, definition = EXCLUDED.definition, measure = EXCLUDED.measure, \
             polarity = EXCLUDED.polarity, period_type = EXCLUDED.period_type, \
             owner_partner_code = EXCLUDED.owner_partner_code, outcome_code = EXCLUDED.outcome_code",
        )
        .bind(&indicator.code)
        .bind(&indicator.name)
        .bind(&indicator.definition)
        .bind(indicator.measure)
        .bind(indicator.polarity)
        .bind(period_type)
        .bind(&indicator.owner_partner_code)
        .bind(&indicator.outcome_code)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            reference_error(e, format!("indicator {}", indicator.code), "owner_partner_code", &indicator.owner_partner_code)
        })?;
    }
    for partner in &catalogue.partners {
        sqlx::query("DELETE FROM submission_permission WHERE partner_code = $1")
            .bind(&partner.code)
            .execute(&mut *conn)
            .await?;
        for indicator in &partner.may_submit {
            sqlx::query("INSERT INTO submission_permission (partner_code, indicator_code) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&partner.code)
                .bind(indicator)
                .execute(&mut *conn)
                .await
                .map_err(|e| reference_error(e, format!("partner {}", partner.code), "may_submit", indicator))?;
        }
    }
    for target in &catalogue.targets {
        let locality = (!target.locality_code.is_empty()).then_some(target.locality_code.as_str());
        let entry = format!("target {}/{}", target.indicator_code, target.locality_code);
        sqlx::query(
            "INSERT INTO target (indicator_code, locality_code, value, amber_tolerance) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (indicator_code, locality_code) DO UPDATE SET value = EXCLUDED.value, \
             amber_tolerance = EXCLUDED.amber_tolerance, updated_at = now()",
        )
        .bind(&target.indicator_code)
        .bind(locality)
        .bind(target.value)
        .bind(target.amber_tolerance)
        .execute(&mut *conn)
        .await
        .map_err(|e| reference_error(e, entry, "indicator_code/locality_code", &target.indicator_code))?;
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(pb::PutCatalogueResponse {
        partners: count(catalogue.partners.len()),
        localities: count(catalogue.localities.len()),
        indicators: count(catalogue.indicators.len()),
        targets: count(catalogue.targets.len()),
    })
}

/// A foreign-key violation means the entry names something the catalogue does not have.
fn reference_error(err: sqlx::Error, entry: String, field: &'static str, value: &str) -> CatalogueError {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => {
            invalid(entry, field, format!("{value:?} is not in the catalogue"))
        }
        _ => CatalogueError::Database(err),
    }
}
