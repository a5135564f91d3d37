//! The catalogue file: partners, localities, indicators and targets in TOML, written by people and turned
//! into a `trust.ingest.v1.Catalogue` for `IndicatorIngest.PutCatalogue`.
//!
//! ```toml
//! [[partner]]
//! code = "connexions"
//! name = "Connexions West Yorkshire"
//! may_submit = ["NEET_16_18"]
//!
//! [[locality]]
//! code = "AREA_EAST_NORTH_EAST"
//! name = "East North East"
//! parent = "LEEDS"              # leave out for the city itself
//!
//! [[indicator]]
//! code = "NEET_16_18"
//! name = "16-18 year olds not in education, employment or training"
//! definition = "..."            # optional
//! measure = "percentage"        # percentage | rate_per_1000 | rate_per_10000 | count | money_pence | days
//! polarity = "lower_is_better"  # higher_is_better | lower_is_better
//! period_type = "quarter"       # month | quarter | academic_year | financial_year
//! owner = "connexions"          # partner code
//! outcome = "DO_WELL_IN_LEARNING"
//!
//! [[target]]
//! indicator = "NEET_16_18"
//! locality = "AREA_EAST_NORTH_EAST"  # leave out for the city-wide default
//! value = 8.0
//! amber_tolerance = 0.5
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use trust_proto::common::v1::{MeasureType, PeriodType, Polarity};
use trust_proto::ingest::v1 as pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    partner: Vec<PartnerEntry>,
    #[serde(default)]
    locality: Vec<LocalityEntry>,
    #[serde(default)]
    indicator: Vec<IndicatorEntry>,
    #[serde(default)]
    target: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    code: String,
    name: String,
    #[serde(default)]
    may_submit: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalityEntry {
    code: String,
    name: String,
    parent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorEntry {
    code: String,
    name: String,
    #[serde(default)]
    definition: String,
    measure: String,
    polarity: String,
    period_type: String,
    owner: String,
    outcome: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    indicator: String,
    locality: Option<String>,
    value: f64,
    amber_tolerance: f64,
}

/// Read and parse a catalogue file.
pub fn load(path: &Path) -> Result<pb::Catalogue> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a valid catalogue file", path.display()))
}

/// Parse the text of a catalogue file.
pub fn parse(text: &str) -> Result<pb::Catalogue> {
    let file: CatalogueFile = toml::from_str(text)?;
    file.into_catalogue()
}

/// Same rule as the service: codes are 1-64 letters, digits, '_' or '-'.
pub(crate) fn check_code(entry: &str, field: &str, code: &str) -> Result<()> {
    let valid = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        bail!("{entry}: {field} {code:?} must be 1-64 letters, digits, '_' or '-'");
    }
    Ok(())
}

pub(crate) fn check_name(entry: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        bail!("{entry}: name is empty");
    }
    Ok(())
}

/// An optional code: absent is fine, present must be a real code (an empty string is a mistake, not "none").
pub(crate) fn optional_code(
    entry: &str,
    field: &str,
    code: Option<String>,
    absent_means: &str,
) -> Result<String> {
    match code {
        None => Ok(String::new()),
        Some(code) if code.is_empty() => {
            bail!("{entry}: {field} is empty; leave the key out for {absent_means}")
        }
        Some(code) => {
            check_code(entry, field, &code)?;
            Ok(code)
        }
    }
}

fn measure(entry: &str, value: &str) -> Result<MeasureType> {
    Ok(match value {
        "percentage" => MeasureType::Percentage,
        "rate_per_1000" => MeasureType::RatePer1000,
        "rate_per_10000" => MeasureType::RatePer10000,
        "count" => MeasureType::Count,
        "money_pence" => MeasureType::MoneyPence,
        "days" => MeasureType::Days,
        _ => bail!(
            "{entry}: measure {value:?} must be percentage, rate_per_1000, rate_per_10000, count, \
             money_pence or days"
        ),
    })
}

fn polarity(entry: &str, value: &str) -> Result<Polarity> {
    Ok(match value {
        "higher_is_better" => Polarity::HigherIsBetter,
        "lower_is_better" => Polarity::LowerIsBetter,
        _ => bail!("{entry}: polarity {value:?} must be higher_is_better or lower_is_better"),
    })
}

fn period_type(entry: &str, value: &str) -> Result<PeriodType> {
    Ok(match value {
        "month" => PeriodType::Month,
        "quarter" => PeriodType::Quarter,
        "academic_year" => PeriodType::AcademicYear,
        "financial_year" => PeriodType::FinancialYear,
        _ => bail!("{entry}: period_type {value:?} must be month, quarter, academic_year or financial_year"),
    })
}

/// Remember a key and refuse it the second time.
fn once(seen: &mut BTreeSet<String>, key: String, entry: &str) -> Result<()> {
    if !seen.insert(key) {
        bail!("{entry} is listed more than once");
    }
    Ok(())
}

impl CatalogueFile {
    fn into_catalogue(self) -> Result<pb::Catalogue> {
        let mut catalogue = pb::Catalogue::default();

        let mut seen = BTreeSet::new();
        for partner in self.partner {
            let entry = format!("partner {}", partner.code);
            check_code(&entry, "code", &partner.code)?;
            check_name(&entry, &partner.name)?;
            once(&mut seen, partner.code.clone(), &entry)?;
            let mut allowed = BTreeSet::new();
            for indicator in &partner.may_submit {
                check_code(&entry, "may_submit entry", indicator)?;
                if !allowed.insert(indicator.as_str()) {
                    bail!("{entry}: may_submit lists {indicator} more than once");
                }
            }
            catalogue.partners.push(pb::Partner {
                code: partner.code,
                name: partner.name,
                may_submit: partner.may_submit,
            });
        }

        let mut seen = BTreeSet::new();
        for locality in self.locality {
            let entry = format!("locality {}", locality.code);
            check_code(&entry, "code", &locality.code)?;
            check_name(&entry, &locality.name)?;
            once(&mut seen, locality.code.clone(), &entry)?;
            let parent_code = optional_code(&entry, "parent", locality.parent, "the city itself")?;
            if parent_code == locality.code {
                bail!("{entry}: a locality cannot be its own parent");
            }
            catalogue.localities.push(pb::Locality {
                code: locality.code,
                name: locality.name,
                parent_code,
            });
        }

        let mut seen = BTreeSet::new();
        for indicator in self.indicator {
            let entry = format!("indicator {}", indicator.code);
            check_code(&entry, "code", &indicator.code)?;
            check_name(&entry, &indicator.name)?;
            once(&mut seen, indicator.code.clone(), &entry)?;
            let measure = measure(&entry, &indicator.measure)?;
            let polarity = polarity(&entry, &indicator.polarity)?;
            let period_type = period_type(&entry, &indicator.period_type)?;
            check_code(&entry, "owner", &indicator.owner)?;
            check_code(&entry, "outcome", &indicator.outcome)?;
            catalogue.indicators.push(pb::Indicator {
                code: indicator.code,
                name: indicator.name,
                definition: indicator.definition,
                measure: measure as i32,
                polarity: polarity as i32,
                period_type: period_type as i32,
                owner_partner_code: indicator.owner,
                outcome_code: indicator.outcome,
            });
        }

        let mut seen = BTreeSet::new();
        for target in self.target {
            let scope = target.locality.as_deref().unwrap_or("city-wide");
            let entry = format!("target {} ({scope})", target.indicator);
            check_code(&entry, "indicator", &target.indicator)?;
            let locality_code = optional_code(&entry, "locality", target.locality, "the city-wide default")?;
            once(&mut seen, format!("{}/{locality_code}", target.indicator), &entry)?;
            if !target.value.is_finite() {
                bail!("{entry}: value must be a finite number");
            }
            if !target.amber_tolerance.is_finite() || target.amber_tolerance < 0.0 {
                bail!(
                    "{entry}: amber_tolerance {} must be a finite number of 0 or more",
                    target.amber_tolerance
                );
            }
            catalogue.targets.push(pb::Target {
                indicator_code: target.indicator,
                locality_code,
                value: target.value,
                amber_tolerance: target.amber_tolerance,
            });
        }
        Ok(catalogue)
    }
}

fn measure_name(value: i32) -> &'static str {
    match MeasureType::try_from(value) {
        Ok(MeasureType::Percentage) => "%",
        Ok(MeasureType::RatePer1000) => "per 1,000",
        Ok(MeasureType::RatePer10000) => "per 10,000",
        Ok(MeasureType::Count) => "count",
        Ok(MeasureType::MoneyPence) => "pence",
        Ok(MeasureType::Days) => "days",
        Ok(MeasureType::Unspecified) | Err(_) => "?",
    }
}

fn polarity_name(value: i32) -> &'static str {
    match Polarity::try_from(value) {
        Ok(Polarity::HigherIsBetter) => "higher is better",
        Ok(Polarity::LowerIsBetter) => "lower is better",
        Ok(Polarity::Unspecified) | Err(_) => "?",
    }
}

fn period_type_name(value: i32) -> &'static str {
    match PeriodType::try_from(value) {
        Ok(PeriodType::Month) => "monthly",
        Ok(PeriodType::Quarter) => "quarterly",
        Ok(PeriodType::AcademicYear) => "academic year",
        Ok(PeriodType::FinancialYear) => "financial year",
        Ok(PeriodType::Unspecified) | Err(_) => "?",
    }
}

/// Codes the catalogue refers to without defining them. The service accepts them only if an earlier load
/// defined them, so an operator checking a file should see them.
pub fn external_references(catalogue: &pb::Catalogue) -> Vec<String> {
    let partners: BTreeSet<&str> = catalogue.partners.iter().map(|p| p.code.as_str()).collect();
    let localities: BTreeSet<&str> = catalogue.localities.iter().map(|l| l.code.as_str()).collect();
    let indicators: BTreeSet<&str> = catalogue.indicators.iter().map(|i| i.code.as_str()).collect();
    let mut missing = Vec::new();
    for partner in &catalogue.partners {
        for code in &partner.may_submit {
            if !indicators.contains(code.as_str()) {
                missing.push(format!("partner {} may_submit: indicator {code}", partner.code));
            }
        }
    }
    for locality in &catalogue.localities {
        if !locality.parent_code.is_empty() && !localities.contains(locality.parent_code.as_str()) {
            missing.push(format!(
                "locality {} parent: locality {}",
                locality.code, locality.parent_code
            ));
        }
    }
    for indicator in &catalogue.indicators {
        if !partners.contains(indicator.owner_partner_code.as_str()) {
            missing.push(format!(
                "indicator {} owner: partner {}",
                indicator.code, indicator.owner_partner_code
            ));
        }
    }
    for target in &catalogue.targets {
        if !indicators.contains(target.indicator_code.as_str()) {
            missing.push(format!("target indicator: indicator {}", target.indicator_code));
        }
        if !target.locality_code.is_empty() && !localities.contains(target.locality_code.as_str()) {
            missing.push(format!(
                "target {} locality: locality {}",
                target.indicator_code, target.locality_code
            ));
        }
    }
    missing
}

/// A readable account of what the file holds.
pub fn summary(catalogue: &pb::Catalogue) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "partners ({}):", catalogue.partners.len());
    for p in &catalogue.partners {
        let may = if p.may_submit.is_empty() {
            "submits nothing".to_owned()
        } else {
            format!("may submit {}", p.may_submit.join(", "))
        };
        let _ = writeln!(out, "  {:<12} {} - {may}", p.code, p.name);
    }
    let _ = writeln!(out, "localities ({}):", catalogue.localities.len());
    for l in &catalogue.localities {
        let parent = if l.parent_code.is_empty() {
            "(city)".to_owned()
        } else {
            format!("in {}", l.parent_code)
        };
        let _ = writeln!(out, "  {:<26} {} {parent}", l.code, l.name);
    }
    let _ = writeln!(out, "indicators ({}):", catalogue.indicators.len());
    for i in &catalogue.indicators {
        let _ = writeln!(
            out,
            "  {:<26} {}; {}, {}, {}; owner {}; outcome {}",
            i.code,
            i.name,
            measure_name(i.measure),
            polarity_name(i.polarity),
            period_type_name(i.period_type),
            i.owner_partner_code,
            i.outcome_code
        );
    }
    let _ = writeln!(out, "targets ({}):", catalogue.targets.len());
    for t in &catalogue.targets {
        let scope = if t.locality_code.is_empty() {
            "city-wide"
        } else {
            t.locality_code.as_str()
        };
        let _ = writeln!(
            out,
            "  {:<26} {:<22} {} (amber within {})",
            t.indicator_code, scope, t.value, t.amber_tolerance
        );
    }
    let missing = external_references(catalogue);
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "refers to codes this file does not define (they must already be in the service's catalogue):"
        );
        for line in missing {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[partner]]
        code = "connexions"
        name = "Connexions"
        may_submit = ["NEET_16_18"]

        [[locality]]
        code = "LEEDS"
        name = "Leeds"

        [[locality]]
        code = "AREA_EAST_NORTH_EAST"
        name = "East North East"
        parent = "LEEDS"

        [[indicator]]
        code = "NEET_16_18"
        name = "16-18 year olds not in education, employment or training"
        measure = "percentage"
        polarity = "lower_is_better"
        period_type = "quarter"
        owner = "connexions"
        outcome = "DO_WELL_IN_LEARNING"

        [[target]]
        indicator = "NEET_16_18"
        value = 6
        amber_tolerance = 0.5

        [[target]]
        indicator = "NEET_16_18"
        locality = "AREA_EAST_NORTH_EAST"
        value = 8.0
        amber_tolerance = 0.5
    "#;

    fn error_of(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn a_good_file_becomes_the_catalogue() {
        let catalogue = parse(GOOD).unwrap();
        assert_eq!(catalogue.partners.len(), 1);
        assert_eq!(catalogue.partners[0].may_submit, vec!["NEET_16_18"]);
        assert_eq!(catalogue.localities[0].parent_code, "");
        assert_eq!(catalogue.localities[1].parent_code, "LEEDS");
        let neet = &catalogue.indicators[0];
        assert_eq!(neet.measure, MeasureType::Percentage as i32);
        assert_eq!(neet.polarity, Polarity::LowerIsBetter as i32);
        assert_eq!(neet.period_type, PeriodType::Quarter as i32);
        assert_eq!(neet.owner_partner_code, "connexions");
        assert_eq!(neet.outcome_code, "DO_WELL_IN_LEARNING");
        assert_eq!(neet.definition, "");
        // An integer value is read as a number; an absent locality is the city-wide default.
        assert_eq!(catalogue.targets[0].value, 6.0);
        assert_eq!(catalogue.targets[0].locality_code, "");
        assert_eq!(catalogue.targets[1].locality_code, "AREA_EAST_NORTH_EAST");
        assert!(external_references(&catalogue).is_empty());
        assert!(summary(&catalogue).contains("AREA_EAST_NORTH_EAST"));
    }

    #[test]
    fn an_empty_file_is_an_empty_catalogue() {
        assert_eq!(parse("").unwrap(), pb::Catalogue::default());
    }

    #[test]
    fn a_bad_enum_value_names_the_entry() {
        let bad = GOOD.replace("\"lower_is_better\"", "\"up\"");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: polarity \"up\" must be higher_is_better or lower_is_better"
        );
        let bad = GOOD.replace("\"percentage\"", "\"percent\"");
        assert!(error_of(&bad).starts_with("indicator NEET_16_18: measure \"percent\" must be percentage"));
        let bad = GOOD.replace("\"quarter\"", "\"termly\"");
        assert!(error_of(&bad).starts_with("indicator NEET_16_18: period_type \"termly\" must be month"));
    }

    #[test]
    fn unknown_fields_and_sections_are_refused() {
        let bad = GOOD.replace("outcome = ", "colour = \"red\"\noutcome = ");
        let err = error_of(&bad);
        assert!(err.contains("unknown field `colour`"), "{err}");
        let bad = GOOD.replace("[[partner]]", "[[partners]]");
        let err = error_of(&bad);
        assert!(err.contains("unknown field `partners`"), "{err}");
    }

    #[test]
    fn missing_fields_are_refused() {
        let bad = GOOD.replace("amber_tolerance = 0.5\n\n", "\n");
        assert!(error_of(&bad).contains("missing field `amber_tolerance`"));
    }

    #[test]
    fn mistakes_in_entries_are_named() {
        let twice = format!("{GOOD}\n[[locality]]\ncode = \"LEEDS\"\nname = \"Leeds again\"\n");
        assert_eq!(error_of(&twice), "locality LEEDS is listed more than once");

        let bad = GOOD.replace("parent = \"LEEDS\"", "parent = \"\"");
        assert_eq!(
            error_of(&bad),
            "locality AREA_EAST_NORTH_EAST: parent is empty; leave the key out for the city itself"
        );

        let bad = GOOD.replace(
            "value = 8.0\n        amber_tolerance = 0.5",
            "value = 8.0\n        amber_tolerance = -1",
        );
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (AREA_EAST_NORTH_EAST): amber_tolerance -1 must be a finite number of 0 or more"
        );

        let bad = GOOD.replace("code = \"NEET_16_18\"", "code = \"NEET 16-18\"");
        assert_eq!(
            error_of(&bad),
            "indicator NEET 16-18: code \"NEET 16-18\" must be 1-64 letters, digits, '_' or '-'"
        );
    }

    #[test]
    fn references_outside_the_file_are_reported() {
        let partial = GOOD.replace("parent = \"LEEDS\"", "parent = \"WEST_YORKSHIRE\"");
        let catalogue = parse(&partial).unwrap();
        assert_eq!(
            external_references(&catalogue),
            vec!["locality AREA_EAST_NORTH_EAST parent: locality WEST_YORKSHIRE"]
        );
    }
}
