//! Loading the catalogue: partners (with what the information sharing protocol lets each submit and read),
//! localities, indicators and targets, upserted by code in one transaction. An invalid entry refuses the
//! whole load and names the entry, field and reason.

use sqlx::PgConnection;
use thiserror::Error;
use trust_proto::common::v1::{MeasureType, Polarity};
use trust_proto::ingest::v1 as pb;

use crate::domain::{Period, PeriodType};
use crate::store::{self, AuditEntry};

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

fn bound(
    entry: &str,
    field: &'static str,
    period: Option<&trust_proto::common::v1::Period>,
) -> Result<Option<Period>, CatalogueError> {
    period
        .map(|p| Period::from_proto(Some(p)).map_err(|e| invalid(entry, field, e.to_string())))
        .transpose()
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
        if let (Some(min), Some(max)) = (indicator.valid_min, indicator.valid_max)
            && (min > max || min.is_nan() || max.is_nan())
        {
            return Err(invalid(
                entry,
                "valid_min",
                format!("{min} is above valid_max {max}"),
            ));
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
    let version = check_version(conn, catalogue).await?;
    for outcome in &catalogue.outcomes {
        check_code("outcome", &outcome.code)?;
        sqlx::query(
            "INSERT INTO outcome (code, name, framework) VALUES ($1, $2, $3) ON CONFLICT (code) DO UPDATE SET \
             name = EXCLUDED.name, framework = EXCLUDED.framework",
        )
        .bind(&outcome.code)
        .bind(&outcome.name)
        .bind(&outcome.framework)
        .execute(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23514") => invalid(
                format!("outcome {}", outcome.code),
                "framework",
                format!("{:?} must be ECM_2006 or PLAN_2011", outcome.framework),
            ),
            _ => CatalogueError::Database(e),
        })?;
    }
    for priority in &catalogue.priorities {
        check_code("priority", &priority.code)?;
        sqlx::query(
            "INSERT INTO priority (code, name, outcome_code) VALUES ($1, $2, $3) ON CONFLICT (code) DO UPDATE SET \
             name = EXCLUDED.name, outcome_code = EXCLUDED.outcome_code",
        )
        .bind(&priority.code)
        .bind(&priority.name)
        .bind(&priority.outcome_code)
        .execute(&mut *conn)
        .await
        .map_err(|e| reference_error(e, format!("priority {}", priority.code), "outcome_code", &priority.outcome_code))?;
    }
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
    for locality in &catalogue.localities {
        put_hierarchy(conn, locality).await?;
    }
    for indicator in &catalogue.indicators {
        let period_type = period_type_name(indicator.period_type).unwrap_or("quarter");
        sqlx::query(
            "INSERT INTO indicator (code, name, definition, measure, polarity, period_type, owner_partner_code, \
             outcome_code, numerator_meaning, denominator_meaning, valid_min, valid_max, small_number_threshold, \
             priority_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (code) DO UPDATE SET \
             name = EXCLUDED.name, definition = EXCLUDED.definition, measure = EXCLUDED.measure, \
             polarity = EXCLUDED.polarity, period_type = EXCLUDED.period_type, \
             owner_partner_code = EXCLUDED.owner_partner_code, outcome_code = EXCLUDED.outcome_code, \
             numerator_meaning = EXCLUDED.numerator_meaning, denominator_meaning = EXCLUDED.denominator_meaning, \
             valid_min = EXCLUDED.valid_min, valid_max = EXCLUDED.valid_max, \
             small_number_threshold = EXCLUDED.small_number_threshold, priority_code = EXCLUDED.priority_code",
        )
        .bind(&indicator.code)
        .bind(&indicator.name)
        .bind(&indicator.definition)
        .bind(indicator.measure)
        .bind(indicator.polarity)
        .bind(period_type)
        .bind(&indicator.owner_partner_code)
        .bind(&indicator.outcome_code)
        .bind(&indicator.numerator_meaning)
        .bind(&indicator.denominator_meaning)
        .bind(indicator.valid_min)
        .bind(indicator.valid_max)
        .bind(i32::try_from(indicator.small_number_threshold).unwrap_or(i32::MAX))
        .bind(&indicator.priority_code)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            reference_error(e, format!("indicator {}", indicator.code), "owner_partner_code", &indicator.owner_partner_code)
        })?;
    }
    for partner in &catalogue.partners {
        sqlx::query("DELETE FROM submission_locality_permission WHERE partner_code = $1")
            .bind(&partner.code)
            .execute(&mut *conn)
            .await?;
        for locality in &partner.may_submit_localities {
            sqlx::query(
                "INSERT INTO submission_locality_permission (partner_code, locality_code) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&partner.code)
            .bind(locality)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                reference_error(
                    e,
                    format!("partner {}", partner.code),
                    "may_submit_localities",
                    locality,
                )
            })?;
        }
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
        put_read_permissions(conn, partner).await?;
    }
    for target in &catalogue.targets {
        put_target(conn, target).await?;
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(pb::PutCatalogueResponse {
        partners: count(catalogue.partners.len()),
        localities: count(catalogue.localities.len()),
        indicators: count(catalogue.indicators.len()),
        targets: count(catalogue.targets.len()),
        outcomes: count(catalogue.outcomes.len()),
        priorities: count(catalogue.priorities.len()),
        version,
    })
}

/// Replace what the information sharing protocol lets a partner read besides what it may submit.
async fn put_read_permissions(conn: &mut PgConnection, partner: &pb::Partner) -> Result<(), CatalogueError> {
    let entry = format!("partner {}", partner.code);
    sqlx::query("DELETE FROM read_locality_permission WHERE partner_code = $1")
        .bind(&partner.code)
        .execute(&mut *conn)
        .await?;
    for locality in &partner.may_read_localities {
        sqlx::query(
            "INSERT INTO read_locality_permission (partner_code, locality_code) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&partner.code)
        .bind(locality)
        .execute(&mut *conn)
        .await
        .map_err(|e| reference_error(e, entry.clone(), "may_read_localities", locality))?;
    }
    sqlx::query("DELETE FROM read_permission WHERE partner_code = $1")
        .bind(&partner.code)
        .execute(&mut *conn)
        .await?;
    for indicator in &partner.may_read {
        sqlx::query(
            "INSERT INTO read_permission (partner_code, indicator_code) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&partner.code)
        .bind(indicator)
        .execute(&mut *conn)
        .await
        .map_err(|e| reference_error(e, entry.clone(), "may_read", indicator))?;
    }
    Ok(())
}

/// Value, amber tolerance, baseline and end period of a target, as stored.
type TargetTerms = (f64, f64, Option<f64>, Option<i32>, Option<i32>);

/// Upsert one target (keyed by indicator, locality and first period); a change is audited.
async fn put_target(conn: &mut PgConnection, target: &pb::Target) -> Result<(), CatalogueError> {
    let entry = format!("target {}/{}", target.indicator_code, target.locality_code);
    let locality = (!target.locality_code.is_empty()).then_some(target.locality_code.as_str());
    let from = bound(&entry, "from_period", target.from_period.as_ref())?;
    let to = bound(&entry, "to_period", target.to_period.as_ref())?;
    if let Some(wrong) = [from, to].into_iter().flatten().next() {
        let kind: Option<String> = sqlx::query_scalar("SELECT period_type FROM indicator WHERE code = $1")
            .bind(&target.indicator_code)
            .fetch_optional(&mut *conn)
            .await?;
        if kind.as_deref().is_some_and(|k| k != wrong.kind().as_str()) {
            return Err(invalid(
                entry,
                "from_period",
                format!("{wrong} is not of the indicator's period type"),
            ));
        }
    }
    let (from_year, from_number) = (from.map(|p| p.year()), from.map(|p| p.number()));
    let (to_year, to_number) = (to.map(|p| p.year()), to.map(|p| p.number()));
    let before: Option<TargetTerms> = sqlx::query_as(
        "SELECT value, amber_tolerance, baseline, to_year, to_number FROM target WHERE indicator_code = $1 \
         AND locality_code IS NOT DISTINCT FROM $2 AND from_year IS NOT DISTINCT FROM $3 \
         AND from_number IS NOT DISTINCT FROM $4 FOR UPDATE",
    )
    .bind(&target.indicator_code)
    .bind(locality)
    .bind(from_year)
    .bind(from_number)
    .fetch_optional(&mut *conn)
    .await?;
    let after = (
        target.value,
        target.amber_tolerance,
        target.baseline,
        to_year,
        to_number,
    );
    if before == Some(after) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO target (indicator_code, locality_code, value, amber_tolerance, from_year, from_number, \
         to_year, to_number, baseline, set_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT ON CONSTRAINT target_one_per_start DO UPDATE SET value = EXCLUDED.value, \
         amber_tolerance = EXCLUDED.amber_tolerance, to_year = EXCLUDED.to_year, to_number = EXCLUDED.to_number, \
         baseline = EXCLUDED.baseline, set_by = EXCLUDED.set_by, updated_at = now()",
    )
    .bind(&target.indicator_code)
    .bind(locality)
    .bind(target.value)
    .bind(target.amber_tolerance)
    .bind(from_year)
    .bind(from_number)
    .bind(to_year)
    .bind(to_number)
    .bind(target.baseline)
    .bind(&target.set_by)
    .execute(&mut *conn)
    .await
    .map_err(|e| reference_error(e, entry.clone(), "indicator_code/locality_code", &target.indicator_code))?;
    let describe = |(value, tolerance, baseline, _, _): TargetTerms| {
        serde_json::json!({
            "value": value,
            "amber_tolerance": tolerance,
            "baseline": baseline,
            "from": from.map(|p| p.to_string()),
            "to": to.map(|p| p.to_string()),
        })
    };
    let actor = if target.set_by.is_empty() {
        "catalogue load"
    } else {
        target.set_by.as_str()
    };
    store::audit(
        conn,
        AuditEntry {
            actor,
            action: if before.is_some() {
                "target.changed"
            } else {
                "target.set"
            },
            entity: format!(
                "{entry}/{}",
                from.map_or_else(|| "open".to_owned(), |p| p.to_string())
            ),
            before: before.map(describe),
            after: Some(describe(after)),
            reason: "",
        },
    )
    .await?;
    Ok(())
}

/// Replace a locality's effective-dated parents: the original parent (from the beginning) and each change.
async fn put_hierarchy(conn: &mut PgConnection, locality: &pb::Locality) -> Result<(), CatalogueError> {
    let entry = format!("locality {}", locality.code);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let mut parents = Vec::new();
    if !locality.parent_code.is_empty() {
        // The original parent holds from before any period the platform can record.
        parents.push((locality.parent_code.clone(), time::macros::date!(1900 - 01 - 01)));
    }
    for change in &locality.parent_changes {
        let from = time::Date::parse(&change.effective_from, format).map_err(|e| {
            invalid(
                &entry,
                "parent_changes.effective_from",
                format!("{:?} is not a YYYY-MM-DD date: {e}", change.effective_from),
            )
        })?;
        parents.push((change.parent_code.clone(), from));
    }
    sqlx::query("DELETE FROM locality_parent WHERE locality_code = $1")
        .bind(&locality.code)
        .execute(&mut *conn)
        .await?;
    for (parent, from) in parents {
        if parent == locality.code {
            return Err(invalid(
                &entry,
                "parent_code",
                "a locality cannot be its own parent",
            ));
        }
        sqlx::query(
            "INSERT INTO locality_parent (locality_code, parent_code, effective_from) VALUES ($1, $2, $3) \
             ON CONFLICT (locality_code, effective_from) DO UPDATE SET parent_code = EXCLUDED.parent_code",
        )
        .bind(&locality.code)
        .bind(&parent)
        .bind(from)
        .execute(&mut *conn)
        .await
        .map_err(|e| reference_error(e, entry.clone(), "parent_code", &parent))?;
    }
    Ok(())
}

/// A versioned load must not be older than the version in force; it becomes the version in force.
/// Returns the version in force after the load.
async fn check_version(conn: &mut PgConnection, catalogue: &pb::Catalogue) -> Result<u32, CatalogueError> {
    // Serialise concurrent loads so two cannot both pass the check.
    sqlx::query("LOCK TABLE catalogue_version IN EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let current: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM catalogue_version")
        .fetch_one(&mut *conn)
        .await?;
    let current = u32::try_from(current.unwrap_or(0)).unwrap_or(0);
    if catalogue.version == 0 {
        return Ok(current);
    }
    if catalogue.version < current {
        return Err(invalid(
            "catalogue",
            "version",
            format!(
                "version {} is older than version {current} already loaded",
                catalogue.version
            ),
        ));
    }
    let loaded_by = if catalogue.loaded_by.is_empty() {
        "unknown"
    } else {
        catalogue.loaded_by.as_str()
    };
    sqlx::query(
        "INSERT INTO catalogue_version (version, loaded_by) VALUES ($1, $2) ON CONFLICT (version) DO UPDATE \
         SET loaded_by = EXCLUDED.loaded_by, loaded_at = now()",
    )
    .bind(i32::try_from(catalogue.version).unwrap_or(i32::MAX))
    .bind(loaded_by)
    .execute(&mut *conn)
    .await?;
    Ok(catalogue.version)
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

#[derive(sqlx::FromRow)]
struct IndicatorRecord {
    code: String,
    name: String,
    definition: String,
    measure: i32,
    polarity: i32,
    period_type: String,
    owner_partner_code: String,
    outcome_code: String,
    numerator_meaning: String,
    denominator_meaning: String,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
    small_number_threshold: i32,
    priority_code: String,
}

#[derive(sqlx::FromRow)]
struct TargetRecord {
    indicator_code: String,
    locality_code: Option<String>,
    value: f64,
    amber_tolerance: f64,
    from_year: Option<i32>,
    from_number: Option<i32>,
    to_year: Option<i32>,
    to_number: Option<i32>,
    baseline: Option<f64>,
    set_by: String,
    period_type: String,
}

/// The catalogue in force, in the shape `put` takes.
pub async fn get(conn: &mut PgConnection) -> Result<pb::Catalogue, sqlx::Error> {
    let version: Option<(i32, String)> =
        sqlx::query_as("SELECT version, loaded_by FROM catalogue_version ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (version, loaded_by) = version.map_or((None, String::new()), |(v, by)| (Some(v), by));
    let outcomes: Vec<(String, String, String)> =
        sqlx::query_as("SELECT code, name, framework FROM outcome ORDER BY framework, code")
            .fetch_all(&mut *conn)
            .await?;
    let priorities: Vec<(String, String, String)> =
        sqlx::query_as("SELECT code, name, outcome_code FROM priority ORDER BY outcome_code, code")
            .fetch_all(&mut *conn)
            .await?;
    let partners: Vec<(String, String)> = sqlx::query_as("SELECT code, name FROM partner ORDER BY code")
        .fetch_all(&mut *conn)
        .await?;
    let may_submit: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_code, indicator_code FROM submission_permission ORDER BY 1, 2")
            .fetch_all(&mut *conn)
            .await?;
    let places: Vec<(String, String)> = sqlx::query_as(
        "SELECT partner_code, locality_code FROM submission_locality_permission ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let may_read: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_code, indicator_code FROM read_permission ORDER BY 1, 2")
            .fetch_all(&mut *conn)
            .await?;
    let read_places: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_code, locality_code FROM read_locality_permission ORDER BY 1, 2")
            .fetch_all(&mut *conn)
            .await?;
    let localities: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT code, name, parent_code FROM locality ORDER BY code")
            .fetch_all(&mut *conn)
            .await?;
    let changes: Vec<(String, String, time::Date)> = sqlx::query_as(
        "SELECT locality_code, parent_code, effective_from FROM locality_parent \
         WHERE effective_from > DATE '1900-01-01' ORDER BY locality_code, effective_from",
    )
    .fetch_all(&mut *conn)
    .await?;
    let indicators: Vec<IndicatorRecord> = sqlx::query_as(
        "SELECT code, name, definition, measure, polarity, period_type, owner_partner_code, outcome_code, \
         numerator_meaning, denominator_meaning, valid_min, valid_max, small_number_threshold, priority_code \
         FROM indicator ORDER BY code",
    )
    .fetch_all(&mut *conn)
    .await?;
    let targets: Vec<TargetRecord> = sqlx::query_as(
        "SELECT t.indicator_code, t.locality_code, t.value, t.amber_tolerance, t.from_year, t.from_number, \
         t.to_year, t.to_number, t.baseline, t.set_by, i.period_type FROM target t \
         JOIN indicator i ON i.code = t.indicator_code ORDER BY 1, 2 NULLS FIRST, 5 NULLS FIRST, 6",
    )
    .fetch_all(&mut *conn)
    .await?;
    let period = |kind: &str, year: Option<i32>, number: Option<i32>| {
        let kind = PeriodType::parse(kind)?;
        Period::new(kind, year?, number?).ok().map(Period::to_proto)
    };
    Ok(pb::Catalogue {
        version: version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        outcomes: outcomes
            .into_iter()
            .map(|(code, name, framework)| pb::Outcome {
                code,
                name,
                framework,
            })
            .collect(),
        priorities: priorities
            .into_iter()
            .map(|(code, name, outcome_code)| pb::Priority {
                code,
                name,
                outcome_code,
            })
            .collect(),
        partners: partners
            .into_iter()
            .map(|(code, name)| pb::Partner {
                may_submit: may_submit
                    .iter()
                    .filter(|(p, _)| *p == code)
                    .map(|(_, i)| i.clone())
                    .collect(),
                may_submit_localities: places
                    .iter()
                    .filter(|(p, _)| *p == code)
                    .map(|(_, l)| l.clone())
                    .collect(),
                may_read: may_read
                    .iter()
                    .filter(|(p, _)| *p == code)
                    .map(|(_, i)| i.clone())
                    .collect(),
                may_read_localities: read_places
                    .iter()
                    .filter(|(p, _)| *p == code)
                    .map(|(_, l)| l.clone())
                    .collect(),
                code,
                name,
            })
            .collect(),
        localities: localities
            .into_iter()
            .map(|(code, name, parent)| pb::Locality {
                parent_changes: changes
                    .iter()
                    .filter(|(l, _, _)| *l == code)
                    .map(|(_, parent, from)| pb::LocalityParentChange {
                        parent_code: parent.clone(),
                        effective_from: from.to_string(),
                    })
                    .collect(),
                code,
                name,
                parent_code: parent.unwrap_or_default(),
            })
            .collect(),
        indicators: indicators
            .into_iter()
            .map(|i| pb::Indicator {
                period_type: PeriodType::parse(&i.period_type).map_or(0, |k| k.to_proto() as i32),
                code: i.code,
                name: i.name,
                definition: i.definition,
                measure: i.measure,
                polarity: i.polarity,
                owner_partner_code: i.owner_partner_code,
                outcome_code: i.outcome_code,
                numerator_meaning: i.numerator_meaning,
                denominator_meaning: i.denominator_meaning,
                valid_min: i.valid_min,
                valid_max: i.valid_max,
                small_number_threshold: u32::try_from(i.small_number_threshold).unwrap_or(0),
                priority_code: i.priority_code,
            })
            .collect(),
        targets: targets
            .into_iter()
            .map(|t| pb::Target {
                from_period: period(&t.period_type, t.from_year, t.from_number),
                to_period: period(&t.period_type, t.to_year, t.to_number),
                indicator_code: t.indicator_code,
                locality_code: t.locality_code.unwrap_or_default(),
                value: t.value,
                amber_tolerance: t.amber_tolerance,
                baseline: t.baseline,
                set_by: t.set_by,
            })
            .collect(),
        loaded_by,
    })
}
