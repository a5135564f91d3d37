//! The catalogue file: outcomes, priorities, partners, localities, indicators and targets in TOML, written by
//! people and turned into a `trust.ingest.v1.Catalogue` for `IndicatorIngest.PutCatalogue`.
//!
//! ```toml
//! version = 3                   # optional; a load older than the version in force is refused (0 or left
//!                               # out: an unversioned patch)
//! loaded_by = "Performance lead"  # optional; who loads it [default: the OS user, $USER]
//!
//! [[outcome]]
//! code = "DO_WELL_IN_LEARNING"
//! name = "Children and young people do well in learning and have skills for life"
//! framework = "PLAN_2011"       # ECM_2006 (Every Child Matters, 2006-09) | PLAN_2011 (the 2011-15 plan)
//!
//! [[priority]]
//! code = "REDUCE_NEET"
//! name = "More young people in education, employment or training"
//! outcome = "DO_WELL_IN_LEARNING"
//!
//! [[partner]]
//! code = "connexions"
//! name = "Connexions West Yorkshire"
//! may_submit = ["NEET_16_18"]
//! may_submit_localities = ["AREA_EAST"]  # optional; an area covers the clusters under it; left out: the city
//! may_read = ["SCHOOL_ATTENDANCE"]       # optional; indicators it may read besides those it may submit
//! may_read_localities = ["AREA_EAST"]    # optional; where it may read may_read's indicators (an area covers
//!                                        # its clusters); left out: the city. What it may submit, it may
//!                                        # always read, for the localities it may submit for
//!
//! [[locality]]
//! code = "CLUSTER_SEACROFT_MANSTON"
//! name = "Seacroft Manston cluster"
//! parent = "AREA_EAST_NORTH_EAST"  # leave out for the city itself
//! parent_changes = [{ parent = "AREA_EAST", from = "2010-04-01" }]  # optional; in date order
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
//! priority = "REDUCE_NEET"      # optional; a [[priority]] of this file, under the indicator's outcome
//! numerator = "young people aged 16-18 known to be NEET"      # optional; both or neither
//! denominator = "young people aged 16-18 known to Connexions" # optional
//! valid_min = 0.0               # optional valid range; a value outside it is refused
//! valid_max = 100.0
//! small_number_threshold = 5    # optional; counts below it are suppressed when shown (count measures, or
//!                               # indicators with a numerator and denominator)
//!
//! [[target]]
//! indicator = "NEET_16_18"
//! locality = "AREA_EAST_NORTH_EAST"  # leave out for the city-wide default
//! value = 8.0
//! amber_tolerance = 0.5
//! from = "2025-Q2"              # optional first period (the indicator's period type); open-ended if left out
//! to = "2027-Q1"                # optional last period
//! baseline = 9.4                # optional: the value the target was set against
//! set_by = "Performance lead"   # optional: who set it (kept in the service's audit log)
//! ```
//!
//! An indicator and locality may have several targets for ranges of periods that do not overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use trust_proto::common::v1::{MeasureType, Period, PeriodType, Polarity};
use trust_proto::ingest::v1 as pb;

use crate::period;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    version: Option<i64>,
    loaded_by: Option<String>,
    #[serde(default)]
    outcome: Vec<OutcomeEntry>,
    #[serde(default)]
    priority: Vec<PriorityEntry>,
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
    #[serde(default)]
    may_submit_localities: Vec<String>,
    #[serde(default)]
    may_read: Vec<String>,
    #[serde(default)]
    may_read_localities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeEntry {
    code: String,
    name: String,
    framework: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityEntry {
    code: String,
    name: String,
    outcome: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalityEntry {
    code: String,
    name: String,
    parent: Option<String>,
    #[serde(default)]
    parent_changes: Vec<ParentChangeEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentChangeEntry {
    parent: String,
    from: String,
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
    priority: Option<String>,
    numerator: Option<String>,
    denominator: Option<String>,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
    #[serde(default)]
    small_number_threshold: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    indicator: String,
    locality: Option<String>,
    value: f64,
    amber_tolerance: f64,
    from: Option<String>,
    to: Option<String>,
    baseline: Option<f64>,
    set_by: Option<String>,
}

/// Read and parse a catalogue file; a file that does not say who loads it is loaded by the OS user.
pub fn load(path: &Path) -> Result<pb::Catalogue> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut catalogue =
        parse(&text).with_context(|| format!("{} is not a valid catalogue file", path.display()))?;
    if catalogue.loaded_by.is_empty() {
        catalogue.loaded_by = os_user().unwrap_or_default();
    }
    Ok(catalogue)
}

/// The user running trustctl, from `$USER` (or `$LOGNAME`).
pub fn os_user() -> Option<String> {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|user| user.trim().to_owned())
        .find(|user| !user.is_empty())
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
/// Every code of a partner's list is a code, and none is listed twice.
fn distinct_codes(entry: &str, field: &str, codes: &[String]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for code in codes {
        check_code(entry, &format!("{field} entry"), code)?;
        if !seen.insert(code.as_str()) {
            bail!("{entry}: {field} lists {code} more than once");
        }
    }
    Ok(())
}

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

/// The two outcome frameworks the service knows.
pub const FRAMEWORKS: [&str; 2] = ["ECM_2006", "PLAN_2011"];

fn framework(entry: &str, value: &str) -> Result<String> {
    if !FRAMEWORKS.contains(&value) {
        bail!(
            "{entry}: framework {value:?} must be ECM_2006 (Every Child Matters, 2006-09) or PLAN_2011 (the \
             2011-15 plan)"
        );
    }
    Ok(value.to_owned())
}

/// The first day of a change of parent: an ISO 8601 date, `YYYY-MM-DD`, in the years periods may have.
fn effective_date(entry: &str, text: &str) -> Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, format).map_err(|e| {
        anyhow::anyhow!("{entry}: parent_changes from {text:?} is not a YYYY-MM-DD date ({e})")
    })?;
    if !(1990..=2100).contains(&date.year()) {
        bail!("{entry}: parent_changes from {text:?}: the year must be 1990-2100");
    }
    Ok(date)
}

/// What the numerator and denominator count: both or neither, and not blank.
fn meanings(entry: &str, numerator: Option<String>, denominator: Option<String>) -> Result<(String, String)> {
    for (field, text) in [("numerator", &numerator), ("denominator", &denominator)] {
        if let Some(text) = text
            && text.trim().is_empty()
        {
            bail!("{entry}: {field} is empty; say what it counts, or leave the key out");
        }
    }
    match (numerator, denominator) {
        (Some(numerator), Some(denominator)) => Ok((numerator, denominator)),
        (None, None) => Ok((String::new(), String::new())),
        (Some(_), None) => bail!("{entry}: numerator is given without a denominator; give both or neither"),
        (None, Some(_)) => bail!("{entry}: denominator is given without a numerator; give both or neither"),
    }
}

/// The valid range of a value: finite bounds, the lower not above the upper, and for a percentage within
/// 0-100 (the service refuses a percentage outside 0-100 whatever the range says).
fn valid_range(
    entry: &str,
    measure: MeasureType,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<(Option<f64>, Option<f64>)> {
    for (field, bound) in [("valid_min", min), ("valid_max", max)] {
        if let Some(bound) = bound {
            if !bound.is_finite() {
                bail!("{entry}: {field} must be a finite number");
            }
            if measure == MeasureType::Percentage && !(0.0..=100.0).contains(&bound) {
                bail!("{entry}: {field} {bound} is outside 0-100, and the measure is a percentage");
            }
        }
    }
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        bail!("{entry}: valid_min {min} is above valid_max {max}");
    }
    Ok((min, max))
}

/// A value a target gives (its value or baseline) must be one the indicator could report.
fn check_in_range(entry: &str, field: &str, value: f64, indicator: &pb::Indicator) -> Result<()> {
    let below = indicator.valid_min.is_some_and(|min| value < min);
    let above = indicator.valid_max.is_some_and(|max| value > max);
    if below || above {
        bail!(
            "{entry}: {field} {value} is outside the valid range of {} ({})",
            indicator.code,
            range_text(indicator.valid_min, indicator.valid_max)
        );
    }
    Ok(())
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("{min} to {max}"),
        (Some(min), None) => format!("{min} or more"),
        (None, Some(max)) => format!("{max} or less"),
        (None, None) => "any".to_owned(),
    }
}

/// A target's `from` or `to`, in the text form of a period.
fn bound(entry: &str, field: &str, text: Option<&str>) -> Result<Option<Period>> {
    text.map(|text| period::parse(text).map_err(|reason| anyhow::anyhow!("{entry}: {field}: {reason}")))
        .transpose()
}

/// The periods a target applies to; an absent bound is open.
#[derive(Debug, Clone, Copy)]
struct Range {
    from: Option<Period>,
    to: Option<Period>,
}

/// Periods of one type in time order.
fn order(period: &Period) -> (i32, i32) {
    (period.year, period.number)
}

impl Range {
    /// Both bounds of one type, the first not after the last.
    fn check(&self, entry: &str) -> Result<()> {
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            if from.r#type != to.r#type {
                bail!(
                    "{entry}: from {} and to {} are different kinds of period",
                    period::display(from),
                    period::display(to)
                );
            }
            if order(from) > order(to) {
                bail!(
                    "{entry}: from {} is after to {}",
                    period::display(from),
                    period::display(to)
                );
            }
        }
        Ok(())
    }

    /// The bounds are periods of the indicator's type.
    fn check_type(&self, entry: &str, indicator: &pb::Indicator) -> Result<()> {
        for (field, bound) in [("from", &self.from), ("to", &self.to)] {
            if let Some(bound) = bound
                && bound.r#type != indicator.period_type
            {
                let kind = period_type_name(indicator.period_type);
                bail!(
                    "{entry}: {field} {} is not {kind}, and {} is a {kind} indicator",
                    period::display(bound),
                    indicator.code,
                );
            }
        }
        Ok(())
    }

    /// The period type of its bounds, if it has any (`check` has made them agree).
    fn kind(&self) -> Option<i32> {
        self.from.or(self.to).map(|p| p.r#type)
    }

    /// Whether two ranges share a period. Ranges with bounds of different types are compared by `kind`
    /// first; here they are taken to be of one type.
    fn overlaps(&self, other: &Range) -> bool {
        // [a, b] and [c, d] overlap when a <= d and c <= b; an open bound is minus or plus infinity.
        let starts_before_end = |start: &Option<Period>, end: &Option<Period>| match (start, end) {
            (Some(start), Some(end)) => order(start) <= order(end),
            _ => true,
        };
        starts_before_end(&self.from, &other.to) && starts_before_end(&other.from, &self.to)
    }

    fn describe(&self) -> String {
        describe_range(self.from.as_ref(), self.to.as_ref())
    }
}

fn describe_range(from: Option<&Period>, to: Option<&Period>) -> String {
    match (from, to) {
        (None, None) => "all periods".to_owned(),
        (Some(from), None) => format!("from {} on", period::display(from)),
        (None, Some(to)) => format!("up to {}", period::display(to)),
        (Some(from), Some(to)) => format!("{} to {}", period::display(from), period::display(to)),
    }
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
        let version = match self.version {
            None => 0,
            Some(version) => u32::try_from(version)
                .ok()
                .filter(|v| i32::try_from(*v).is_ok())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "version {version} must be a whole number from 0 (an unversioned patch) to {}",
                        i32::MAX
                    )
                })?,
        };
        let loaded_by = match self.loaded_by {
            None => String::new(),
            Some(name) if name.trim().is_empty() => {
                bail!("loaded_by is empty; leave the key out to record the OS user")
            }
            Some(name) => name.trim().to_owned(),
        };

        let mut catalogue = pb::Catalogue {
            version,
            loaded_by,
            ..Default::default()
        };

        let mut seen = BTreeSet::new();
        for outcome in self.outcome {
            let entry = format!("outcome {}", outcome.code);
            check_code(&entry, "code", &outcome.code)?;
            check_name(&entry, &outcome.name)?;
            once(&mut seen, outcome.code.clone(), &entry)?;
            let framework = framework(&entry, &outcome.framework)?;
            catalogue.outcomes.push(pb::Outcome {
                code: outcome.code,
                name: outcome.name,
                framework,
            });
        }

        let mut seen = BTreeSet::new();
        for priority in self.priority {
            let entry = format!("priority {}", priority.code);
            check_code(&entry, "code", &priority.code)?;
            check_name(&entry, &priority.name)?;
            once(&mut seen, priority.code.clone(), &entry)?;
            check_code(&entry, "outcome", &priority.outcome)?;
            catalogue.priorities.push(pb::Priority {
                code: priority.code,
                name: priority.name,
                outcome_code: priority.outcome,
            });
        }
        let priorities: BTreeMap<String, String> = catalogue
            .priorities
            .iter()
            .map(|p| (p.code.clone(), p.outcome_code.clone()))
            .collect();

        let mut seen = BTreeSet::new();
        for partner in self.partner {
            let entry = format!("partner {}", partner.code);
            check_code(&entry, "code", &partner.code)?;
            check_name(&entry, &partner.name)?;
            once(&mut seen, partner.code.clone(), &entry)?;
            distinct_codes(&entry, "may_submit", &partner.may_submit)?;
            distinct_codes(&entry, "may_submit_localities", &partner.may_submit_localities)?;
            distinct_codes(&entry, "may_read", &partner.may_read)?;
            distinct_codes(&entry, "may_read_localities", &partner.may_read_localities)?;
            if !partner.may_read_localities.is_empty() && partner.may_read.is_empty() {
                bail!(
                    "{entry}: may_read_localities says where it may read may_read's indicators, but may_read is \
                     empty (what it may submit it reads for the localities it may submit for)"
                );
            }
            catalogue.partners.push(pb::Partner {
                code: partner.code,
                name: partner.name,
                may_submit: partner.may_submit,
                may_submit_localities: partner.may_submit_localities,
                may_read: partner.may_read,
                may_read_localities: partner.may_read_localities,
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
            let mut parent_changes = Vec::with_capacity(locality.parent_changes.len());
            let mut previous: Option<(time::Date, &str)> = None;
            for change in &locality.parent_changes {
                check_code(&entry, "parent_changes parent", &change.parent)?;
                if change.parent == locality.code {
                    bail!(
                        "{entry}: a locality cannot be its own parent (parent_changes from {})",
                        change.from
                    );
                }
                let from = effective_date(&entry, &change.from)?;
                if let Some((before, text)) = previous
                    && from <= before
                {
                    bail!(
                        "{entry}: parent_changes from {} is not after the change before it ({text}); list the \
                         changes in date order, one per date",
                        change.from
                    );
                }
                previous = Some((from, change.from.as_str()));
                parent_changes.push(pb::LocalityParentChange {
                    parent_code: change.parent.clone(),
                    effective_from: from.to_string(),
                });
            }
            catalogue.localities.push(pb::Locality {
                code: locality.code,
                name: locality.name,
                parent_code,
                parent_changes,
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
            let priority_code = optional_code(&entry, "priority", indicator.priority, "no priority")?;
            if !priority_code.is_empty() {
                match priorities.get(&priority_code) {
                    None => bail!(
                        "{entry}: priority {priority_code} is not a [[priority]] of this file; define it, or \
                         leave the key out"
                    ),
                    Some(outcome) if *outcome != indicator.outcome => bail!(
                        "{entry}: priority {priority_code} is under outcome {outcome}, but the indicator's outcome \
                         is {}",
                        indicator.outcome
                    ),
                    Some(_) => {}
                }
            }
            let (numerator_meaning, denominator_meaning) =
                meanings(&entry, indicator.numerator, indicator.denominator)?;
            let (valid_min, valid_max) =
                valid_range(&entry, measure, indicator.valid_min, indicator.valid_max)?;
            if indicator.small_number_threshold > 0
                && measure != MeasureType::Count
                && numerator_meaning.is_empty()
            {
                bail!(
                    "{entry}: small_number_threshold applies to counts: give it to a count measure, or say what \
                     the numerator and denominator count"
                );
            }
            catalogue.indicators.push(pb::Indicator {
                code: indicator.code,
                name: indicator.name,
                definition: indicator.definition,
                measure: measure as i32,
                polarity: polarity as i32,
                period_type: period_type as i32,
                owner_partner_code: indicator.owner,
                outcome_code: indicator.outcome,
                numerator_meaning,
                denominator_meaning,
                valid_min,
                valid_max,
                small_number_threshold: indicator.small_number_threshold,
                priority_code,
            });
        }

        let defined: BTreeMap<&str, &pb::Indicator> = catalogue
            .indicators
            .iter()
            .map(|i| (i.code.as_str(), i))
            .collect();
        let mut ranges: BTreeMap<(String, String), Vec<Range>> = BTreeMap::new();
        let mut targets = Vec::with_capacity(self.target.len());
        for target in self.target {
            let scope = target.locality.as_deref().unwrap_or("city-wide");
            let entry = format!("target {} ({scope})", target.indicator);
            check_code(&entry, "indicator", &target.indicator)?;
            let locality_code = optional_code(&entry, "locality", target.locality, "the city-wide default")?;
            if !target.value.is_finite() {
                bail!("{entry}: value must be a finite number");
            }
            if !target.amber_tolerance.is_finite() || target.amber_tolerance < 0.0 {
                bail!(
                    "{entry}: amber_tolerance {} must be a finite number of 0 or more",
                    target.amber_tolerance
                );
            }
            if let Some(baseline) = target.baseline
                && !baseline.is_finite()
            {
                bail!("{entry}: baseline must be a finite number");
            }
            let set_by = match target.set_by {
                None => String::new(),
                Some(name) if name.trim().is_empty() => {
                    bail!("{entry}: set_by is empty; leave the key out if nobody is named")
                }
                Some(name) => name,
            };
            let from_period = bound(&entry, "from", target.from.as_deref())?;
            let to_period = bound(&entry, "to", target.to.as_deref())?;
            let range = Range {
                from: from_period,
                to: to_period,
            };
            range.check(&entry)?;
            if let Some(indicator) = defined.get(target.indicator.as_str()) {
                range.check_type(&entry, indicator)?;
                for (field, value) in [("value", Some(target.value)), ("baseline", target.baseline)] {
                    if let Some(value) = value {
                        check_in_range(&entry, field, value, indicator)?;
                    }
                }
            }
            let earlier = ranges
                .entry((target.indicator.clone(), locality_code.clone()))
                .or_default();
            for other in earlier.iter() {
                if let (Some(mine), Some(theirs)) = (range.kind(), other.kind())
                    && mine != theirs
                {
                    bail!(
                        "{entry}: periods {} and another target's {} for the same indicator and locality are \
                         different kinds of period",
                        range.describe(),
                        other.describe()
                    );
                }
                if range.overlaps(other) {
                    bail!(
                        "{entry}: periods {} overlap those of another target for the same indicator and \
                         locality ({}); give each target its own from/to",
                        range.describe(),
                        other.describe()
                    );
                }
            }
            earlier.push(range);
            targets.push(pb::Target {
                indicator_code: target.indicator,
                locality_code,
                value: target.value,
                amber_tolerance: target.amber_tolerance,
                from_period,
                to_period,
                baseline: target.baseline,
                set_by,
            });
        }
        catalogue.targets = targets;
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
    let outcomes: BTreeSet<&str> = catalogue.outcomes.iter().map(|o| o.code.as_str()).collect();
    let mut missing = Vec::new();
    for priority in &catalogue.priorities {
        if !outcomes.contains(priority.outcome_code.as_str()) {
            missing.push(format!(
                "priority {} outcome: outcome {}",
                priority.code, priority.outcome_code
            ));
        }
    }
    for partner in &catalogue.partners {
        for code in &partner.may_submit {
            if !indicators.contains(code.as_str()) {
                missing.push(format!("partner {} may_submit: indicator {code}", partner.code));
            }
        }
        for code in &partner.may_submit_localities {
            if !localities.contains(code.as_str()) {
                missing.push(format!(
                    "partner {} may_submit_localities: locality {code}",
                    partner.code
                ));
            }
        }
        for code in &partner.may_read {
            if !indicators.contains(code.as_str()) {
                missing.push(format!("partner {} may_read: indicator {code}", partner.code));
            }
        }
        for code in &partner.may_read_localities {
            if !localities.contains(code.as_str()) {
                missing.push(format!(
                    "partner {} may_read_localities: locality {code}",
                    partner.code
                ));
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
        for change in &locality.parent_changes {
            if !localities.contains(change.parent_code.as_str()) {
                missing.push(format!(
                    "locality {} parent_changes: locality {}",
                    locality.code, change.parent_code
                ));
            }
        }
    }
    for indicator in &catalogue.indicators {
        if !partners.contains(indicator.owner_partner_code.as_str()) {
            missing.push(format!(
                "indicator {} owner: partner {}",
                indicator.code, indicator.owner_partner_code
            ));
        }
        // Outcomes are only checked when the file defines some: a file without any leaves them to the
        // service's catalogue, as before outcomes were defined in files.
        if !outcomes.is_empty() && !outcomes.contains(indicator.outcome_code.as_str()) {
            missing.push(format!(
                "indicator {} outcome: outcome {}",
                indicator.code, indicator.outcome_code
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

/// The catalogue's version and who loaded it, as one line.
pub fn version_line(catalogue: &pb::Catalogue) -> String {
    let mut line = if catalogue.version == 0 {
        "version 0 (an unversioned patch)".to_owned()
    } else {
        format!("version {}", catalogue.version)
    };
    if !catalogue.loaded_by.is_empty() {
        let _ = write!(line, ", loaded by {}", catalogue.loaded_by);
    }
    line
}

fn framework_name(framework: &str) -> &str {
    match framework {
        "ECM_2006" => "ECM_2006 (Every Child Matters, 2006-09)",
        "PLAN_2011" => "PLAN_2011 (Children and Young People's Plan, 2011-15)",
        other => other,
    }
}

/// A readable account of what the file holds.
pub fn summary(catalogue: &pb::Catalogue) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", version_line(catalogue));
    let _ = writeln!(
        out,
        "outcomes ({}) and priorities ({}):",
        catalogue.outcomes.len(),
        catalogue.priorities.len()
    );
    // Columns as wide as the longest code, so names line up.
    let widest = |codes: &mut dyn Iterator<Item = usize>, least: usize| codes.max().unwrap_or(0).max(least);
    let outcome_width = widest(
        &mut catalogue
            .outcomes
            .iter()
            .map(|o| o.code.len())
            .chain(catalogue.priorities.iter().map(|p| p.code.len() + 2)),
        26,
    );
    let locality_width = widest(&mut catalogue.localities.iter().map(|l| l.code.len()), 26);
    let indicator_width = widest(&mut catalogue.indicators.iter().map(|i| i.code.len()), 26);
    let scope_width = widest(&mut catalogue.targets.iter().map(|t| t.locality_code.len()), 22);
    let mut listed = BTreeSet::new();
    for framework in FRAMEWORKS {
        let outcomes: Vec<&pb::Outcome> = catalogue
            .outcomes
            .iter()
            .filter(|o| o.framework == framework)
            .collect();
        if outcomes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  {}:", framework_name(framework));
        for o in outcomes {
            let _ = writeln!(out, "    {:<outcome_width$} {}", o.code, o.name);
            for p in catalogue.priorities.iter().filter(|p| p.outcome_code == o.code) {
                let _ = writeln!(out, "      {:<w$} {}", p.code, p.name, w = outcome_width - 2);
                listed.insert(p.code.as_str());
            }
        }
    }
    for p in catalogue
        .priorities
        .iter()
        .filter(|p| !listed.contains(p.code.as_str()))
    {
        let _ = writeln!(
            out,
            "    {:<outcome_width$} {} (under {})",
            p.code, p.name, p.outcome_code
        );
    }
    let _ = writeln!(out, "partners ({}):", catalogue.partners.len());
    for p in &catalogue.partners {
        let may = if p.may_submit.is_empty() {
            "submits nothing".to_owned()
        } else {
            format!("may submit {}", p.may_submit.join(", "))
        };
        let places = if p.may_submit_localities.is_empty() {
            String::new()
        } else {
            format!(", only for {}", p.may_submit_localities.join(", "))
        };
        let _ = writeln!(out, "  {:<12} {} - {may}{places}", p.code, p.name);
        if !p.may_read.is_empty() {
            let read_places = if p.may_read_localities.is_empty() {
                String::new()
            } else {
                format!(", only for {}", p.may_read_localities.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:<12} and may read {}{read_places}",
                "",
                p.may_read.join(", ")
            );
        }
    }
    let _ = writeln!(out, "localities ({}):", catalogue.localities.len());
    for l in &catalogue.localities {
        let mut parent = if l.parent_code.is_empty() {
            "(city)".to_owned()
        } else {
            format!("in {}", l.parent_code)
        };
        for change in &l.parent_changes {
            let _ = write!(
                parent,
                "; from {} in {}",
                change.effective_from, change.parent_code
            );
        }
        let _ = writeln!(out, "  {:<locality_width$} {} {parent}", l.code, l.name);
    }
    let _ = writeln!(out, "indicators ({}):", catalogue.indicators.len());
    for i in &catalogue.indicators {
        let priority = if i.priority_code.is_empty() {
            String::new()
        } else {
            format!(", priority {}", i.priority_code)
        };
        let _ = writeln!(
            out,
            "  {:<indicator_width$} {}; {}, {}, {}; owner {}; outcome {}{priority}",
            i.code,
            i.name,
            measure_name(i.measure),
            polarity_name(i.polarity),
            period_type_name(i.period_type),
            i.owner_partner_code,
            i.outcome_code
        );
        let mut details = Vec::new();
        if !i.numerator_meaning.is_empty() {
            details.push(format!("{} / {}", i.numerator_meaning, i.denominator_meaning));
        }
        if i.valid_min.is_some() || i.valid_max.is_some() {
            details.push(format!("valid {}", range_text(i.valid_min, i.valid_max)));
        }
        if i.small_number_threshold > 0 {
            details.push(format!("counts below {} suppressed", i.small_number_threshold));
        }
        if !details.is_empty() {
            let _ = writeln!(out, "  {:<indicator_width$} {}", "", details.join("; "));
        }
    }
    let _ = writeln!(out, "targets ({}):", catalogue.targets.len());
    for t in &catalogue.targets {
        let scope = if t.locality_code.is_empty() {
            "city-wide"
        } else {
            t.locality_code.as_str()
        };
        let mut line = format!(
            "  {:<indicator_width$} {:<scope_width$} {} (amber within {}), {}",
            t.indicator_code,
            scope,
            t.value,
            t.amber_tolerance,
            describe_range(t.from_period.as_ref(), t.to_period.as_ref())
        );
        if let Some(baseline) = t.baseline {
            let _ = write!(line, ", baseline {baseline}");
        }
        if !t.set_by.is_empty() {
            let _ = write!(line, ", set by {}", t.set_by);
        }
        let _ = writeln!(out, "{line}");
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

    const RANGED: &str = r#"
        [[indicator]]
        code = "NEET_16_18"
        name = "NEET"
        measure = "percentage"
        polarity = "lower_is_better"
        period_type = "quarter"
        owner = "connexions"
        outcome = "DO_WELL_IN_LEARNING"
        numerator = "young people aged 16-18 known to be NEET"
        denominator = "young people aged 16-18 known to Connexions"
        valid_min = 0
        valid_max = 100
        small_number_threshold = 5

        [[indicator]]
        code = "LAC_COUNT"
        name = "Looked-after children"
        measure = "count"
        polarity = "lower_is_better"
        period_type = "month"
        owner = "council"
        outcome = "SAFE_FROM_HARM"
        valid_min = 0
        small_number_threshold = 5

        [[target]]
        indicator = "NEET_16_18"
        value = 7.0
        amber_tolerance = 0.5
        to = "2025-Q4"
        baseline = 8.2
        set_by = "Performance lead"

        [[target]]
        indicator = "NEET_16_18"
        value = 6.0
        amber_tolerance = 0.5
        from = "2026-Q1"

        [[target]]
        indicator = "LAC_COUNT"
        value = 1350
        amber_tolerance = 50
        from = "2025-04"
        to = "2026-03"
    "#;

    #[test]
    fn meanings_ranges_thresholds_and_target_periods_are_read() {
        let catalogue = parse(RANGED).unwrap();
        let neet = &catalogue.indicators[0];
        assert_eq!(neet.numerator_meaning, "young people aged 16-18 known to be NEET");
        assert_eq!(
            neet.denominator_meaning,
            "young people aged 16-18 known to Connexions"
        );
        assert_eq!((neet.valid_min, neet.valid_max), (Some(0.0), Some(100.0)));
        assert_eq!(neet.small_number_threshold, 5);
        let lac = &catalogue.indicators[1];
        assert_eq!((lac.valid_min, lac.valid_max), (Some(0.0), None));
        assert_eq!(lac.numerator_meaning, "");

        let until = &catalogue.targets[0];
        assert_eq!(until.from_period, None);
        assert_eq!(until.to_period, Some(period::parse("2025-Q4").unwrap()));
        assert_eq!(until.baseline, Some(8.2));
        assert_eq!(until.set_by, "Performance lead");
        let after = &catalogue.targets[1];
        assert_eq!(after.from_period, Some(period::parse("2026-Q1").unwrap()));
        assert_eq!(
            (after.to_period, after.baseline, after.set_by.as_str()),
            (None, None, "")
        );
        assert_eq!(
            catalogue.targets[2].to_period,
            Some(period::parse("2026-03").unwrap())
        );

        let text = summary(&catalogue);
        assert!(
            text.contains("valid 0 to 100; counts below 5 suppressed"),
            "{text}"
        );
        assert!(
            text.contains("up to 2025-Q4, baseline 8.2, set by Performance lead"),
            "{text}"
        );
        assert!(text.contains("from 2026-Q1 on"), "{text}");
        assert!(text.contains("2025-04 to 2026-03"), "{text}");
    }

    #[test]
    fn indicator_meanings_ranges_and_thresholds_are_checked() {
        let bad = RANGED.replace(
            "        denominator = \"young people aged 16-18 known to Connexions\"\n",
            "",
        );
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: numerator is given without a denominator; give both or neither"
        );
        let bad = RANGED.replace(
            "numerator = \"young people aged 16-18 known to be NEET\"",
            "numerator = \" \"",
        );
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: numerator is empty; say what it counts, or leave the key out"
        );
        let bad = RANGED.replace("valid_max = 100", "valid_max = 120");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: valid_max 120 is outside 0-100, and the measure is a percentage"
        );
        let bad = RANGED.replace(
            "valid_min = 0\n        valid_max = 100",
            "valid_min = 50\n        valid_max = 10",
        );
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: valid_min 50 is above valid_max 10"
        );
        let bad = RANGED.replace("valid_max = 100", "valid_max = nan");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: valid_max must be a finite number"
        );
        let bad = RANGED.replace("small_number_threshold = 5", "small_number_threshold = -1");
        assert!(
            error_of(&bad).contains("small_number_threshold"),
            "{}",
            error_of(&bad)
        );
        // A percentage with no counts behind it has nothing to suppress.
        let bad = RANGED
            .replace(
                "        numerator = \"young people aged 16-18 known to be NEET\"\n",
                "",
            )
            .replace(
                "        denominator = \"young people aged 16-18 known to Connexions\"\n",
                "",
            );
        assert!(
            error_of(&bad).starts_with("indicator NEET_16_18: small_number_threshold applies to counts"),
            "{}",
            error_of(&bad)
        );
    }

    #[test]
    fn target_periods_baselines_and_authors_are_checked() {
        let bad = RANGED.replace("to = \"2025-Q4\"", "to = \"2025-Q9\"");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): to: \"2025-Q9\": the quarter must be Q1-Q4"
        );
        let bad = RANGED.replace("from = \"2026-Q1\"", "from = \"2026-01\"");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): from 2026-01 is not quarterly, and NEET_16_18 is a quarterly indicator"
        );
        let bad = RANGED.replace("to = \"2026-03\"", "to = \"2025-03\"");
        assert_eq!(
            error_of(&bad),
            "target LAC_COUNT (city-wide): from 2025-04 is after to 2025-03"
        );
        let bad = RANGED.replace("to = \"2026-03\"", "to = \"FY2025/26\"");
        assert_eq!(
            error_of(&bad),
            "target LAC_COUNT (city-wide): from 2025-04 and to FY2025/26 are different kinds of period"
        );
        let bad = RANGED.replace("from = \"2026-Q1\"", "from = \"2025-Q4\"");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): periods from 2025-Q4 on overlap those of another target for the \
             same indicator and locality (up to 2025-Q4); give each target its own from/to"
        );
        let bad = RANGED.replace("set_by = \"Performance lead\"", "set_by = \"\"");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): set_by is empty; leave the key out if nobody is named"
        );
        let bad = RANGED.replace("baseline = 8.2", "baseline = 108.2");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): baseline 108.2 is outside the valid range of NEET_16_18 (0 to 100)"
        );
        let bad = RANGED.replace("baseline = 8.2", "baseline = inf");
        assert_eq!(
            error_of(&bad),
            "target NEET_16_18 (city-wide): baseline must be a finite number"
        );
        let bad = RANGED.replace("value = 1350", "value = -3");
        assert_eq!(
            error_of(&bad),
            "target LAC_COUNT (city-wide): value -3 is outside the valid range of LAC_COUNT (0 or more)"
        );
        // Two open-ended targets for one indicator and locality cannot both apply.
        let twice =
            GOOD.to_owned() + "\n[[target]]\nindicator = \"NEET_16_18\"\nvalue = 5\namber_tolerance = 1\n";
        assert_eq!(
            error_of(&twice),
            "target NEET_16_18 (city-wide): periods all periods overlap those of another target for the same \
             indicator and locality (all periods); give each target its own from/to"
        );
        // Targets for an indicator defined elsewhere are checked against each other only.
        let elsewhere = "[[target]]\nindicator = \"X\"\nvalue = 1\namber_tolerance = 0\nfrom = \"2025-03\"\n\
                         [[target]]\nindicator = \"X\"\nvalue = 1\namber_tolerance = 0\nto = \"2024-Q4\"\n";
        assert_eq!(
            error_of(elsewhere),
            "target X (city-wide): periods up to 2024-Q4 and another target's from 2025-03 on for the same \
             indicator and locality are different kinds of period"
        );
    }

    #[test]
    fn the_demo_catalogue_is_valid() {
        let text = include_str!("../../../deploy/demo/catalogue.toml");
        let catalogue = parse(text).unwrap();
        assert!(
            external_references(&catalogue).is_empty(),
            "{:?}",
            external_references(&catalogue)
        );
        assert!(catalogue.indicators.iter().all(|i| i.valid_min.is_some()));
        assert!(catalogue.version >= 1);
        // Both frameworks, five outcomes each; every indicator behind a priority.
        for framework in FRAMEWORKS {
            assert_eq!(
                catalogue
                    .outcomes
                    .iter()
                    .filter(|o| o.framework == framework)
                    .count(),
                5,
                "{framework}"
            );
        }
        assert!(catalogue.indicators.iter().all(|i| !i.priority_code.is_empty()));
        // The five wedges until 2010, three areas after: every cluster moves on 2010-04-01.
        let clusters: Vec<&pb::Locality> = catalogue
            .localities
            .iter()
            .filter(|l| l.code.starts_with("CLUSTER_"))
            .collect();
        assert!(!clusters.is_empty());
        for cluster in clusters {
            assert_eq!(cluster.parent_changes.len(), 1, "{}", cluster.code);
            assert_eq!(cluster.parent_changes[0].effective_from, "2010-04-01");
        }
        // The README's demo: Connexions may publish NEET for East North East, which has its own target.
        let connexions = catalogue
            .partners
            .iter()
            .find(|p| p.code == "connexions")
            .unwrap();
        assert!(connexions.may_submit.contains(&"NEET_16_18".to_owned()));
        assert!(connexions.may_submit_localities.is_empty());
        assert!(
            catalogue
                .targets
                .iter()
                .any(|t| t.indicator_code == "NEET_16_18" && t.locality_code == "AREA_EAST_NORTH_EAST")
        );
        assert!(
            catalogue
                .partners
                .iter()
                .any(|p| !p.may_submit_localities.is_empty())
        );
        // Every partner reads something besides what it submits, and one only in its own area.
        assert!(catalogue.partners.iter().all(|p| !p.may_read.is_empty()));
        assert!(
            catalogue
                .partners
                .iter()
                .any(|p| !p.may_read_localities.is_empty())
        );
    }

    const FRAMED: &str = r#"
        version = 3
        loaded_by = "Performance lead"

        [[outcome]]
        code = "ECM_ENJOY_AND_ACHIEVE"
        name = "Enjoy and achieve"
        framework = "ECM_2006"

        [[outcome]]
        code = "DO_WELL_IN_LEARNING"
        name = "Do well in learning and have skills for life"
        framework = "PLAN_2011"

        [[outcome]]
        code = "SAFE_FROM_HARM"
        name = "Safe from harm"
        framework = "PLAN_2011"

        [[priority]]
        code = "REDUCE_NEET"
        name = "Young people in education, employment or training"
        outcome = "DO_WELL_IN_LEARNING"

        [[priority]]
        code = "SAFE_FAMILIES"
        name = "Help children live in safe and supportive families"
        outcome = "SAFE_FROM_HARM"

        [[partner]]
        code = "connexions"
        name = "Connexions"
        may_submit = ["NEET_16_18"]
        may_submit_localities = ["AREA_EAST", "AREA_WEST"]

        [[locality]]
        code = "LEEDS"
        name = "Leeds"

        [[locality]]
        code = "AREA_EAST_NORTH_EAST"
        name = "East North East"
        parent = "LEEDS"

        [[locality]]
        code = "AREA_EAST"
        name = "East"
        parent = "LEEDS"

        [[locality]]
        code = "AREA_WEST"
        name = "West"
        parent = "LEEDS"

        [[locality]]
        code = "CLUSTER_SEACROFT_MANSTON"
        name = "Seacroft Manston cluster"
        parent = "AREA_EAST_NORTH_EAST"
        parent_changes = [{ parent = "AREA_EAST", from = "2010-04-01" }]

        [[indicator]]
        code = "NEET_16_18"
        name = "NEET"
        measure = "percentage"
        polarity = "lower_is_better"
        period_type = "quarter"
        owner = "connexions"
        outcome = "DO_WELL_IN_LEARNING"
        priority = "REDUCE_NEET"
    "#;

    #[test]
    fn version_outcomes_priorities_and_the_hierarchy_are_read() {
        let catalogue = parse(FRAMED).unwrap();
        assert_eq!(catalogue.version, 3);
        assert_eq!(catalogue.loaded_by, "Performance lead");
        assert_eq!(
            catalogue.outcomes[0],
            pb::Outcome {
                code: "ECM_ENJOY_AND_ACHIEVE".into(),
                name: "Enjoy and achieve".into(),
                framework: "ECM_2006".into(),
            }
        );
        assert_eq!(catalogue.outcomes[1].framework, "PLAN_2011");
        assert_eq!(catalogue.priorities[0].outcome_code, "DO_WELL_IN_LEARNING");
        assert_eq!(catalogue.indicators[0].priority_code, "REDUCE_NEET");
        assert_eq!(
            catalogue.partners[0].may_submit_localities,
            vec!["AREA_EAST", "AREA_WEST"]
        );
        let cluster = &catalogue.localities[4];
        assert_eq!(cluster.parent_code, "AREA_EAST_NORTH_EAST");
        assert_eq!(
            cluster.parent_changes,
            vec![pb::LocalityParentChange {
                parent_code: "AREA_EAST".into(),
                effective_from: "2010-04-01".into(),
            }]
        );
        assert!(
            external_references(&catalogue).is_empty(),
            "{:?}",
            external_references(&catalogue)
        );

        let text = summary(&catalogue);
        assert!(
            text.starts_with("version 3, loaded by Performance lead\n"),
            "{text}"
        );
        assert!(
            text.contains("ECM_2006 (Every Child Matters, 2006-09):"),
            "{text}"
        );
        assert!(text.contains("      REDUCE_NEET"), "{text}");
        assert!(
            text.contains("may submit NEET_16_18, only for AREA_EAST, AREA_WEST"),
            "{text}"
        );
        assert!(
            text.contains("in AREA_EAST_NORTH_EAST; from 2010-04-01 in AREA_EAST"),
            "{text}"
        );
        assert!(
            text.contains("outcome DO_WELL_IN_LEARNING, priority REDUCE_NEET"),
            "{text}"
        );
    }

    #[test]
    fn version_and_loaded_by_are_optional() {
        let catalogue = parse(GOOD).unwrap();
        assert_eq!((catalogue.version, catalogue.loaded_by.as_str()), (0, ""));
        assert!(summary(&catalogue).starts_with("version 0 (an unversioned patch)\n"));

        let bad = FRAMED.replace("version = 3", "version = -1");
        assert!(
            error_of(&bad).starts_with("version -1 must be a whole number from 0"),
            "{}",
            error_of(&bad)
        );
        let bad = FRAMED.replace("version = 3", "version = 1.5");
        assert!(error_of(&bad).contains("version"), "{}", error_of(&bad));
        let bad = FRAMED.replace("loaded_by = \"Performance lead\"", "loaded_by = \" \"");
        assert_eq!(
            error_of(&bad),
            "loaded_by is empty; leave the key out to record the OS user"
        );
    }

    #[test]
    fn a_file_without_loaded_by_is_loaded_by_the_os_user() {
        let dir = std::env::temp_dir().join(format!("trustctl-catalogue-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let unnamed = dir.join("unnamed.toml");
        std::fs::write(&unnamed, FRAMED.replace("loaded_by = \"Performance lead\"", "")).unwrap();
        let named = dir.join("named.toml");
        std::fs::write(&named, FRAMED).unwrap();
        let unnamed = load(&unnamed).unwrap();
        let named = load(&named).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(unnamed.loaded_by, os_user().unwrap_or_default());
        assert_eq!(named.loaded_by, "Performance lead");
    }

    #[test]
    fn a_bad_framework_is_refused() {
        let bad = FRAMED.replace("framework = \"ECM_2006\"", "framework = \"ECM_2005\"");
        assert_eq!(
            error_of(&bad),
            "outcome ECM_ENJOY_AND_ACHIEVE: framework \"ECM_2005\" must be ECM_2006 (Every Child Matters, \
             2006-09) or PLAN_2011 (the 2011-15 plan)"
        );
        let bad = FRAMED.replace("        framework = \"ECM_2006\"\n", "");
        assert!(
            error_of(&bad).contains("missing field `framework`"),
            "{}",
            error_of(&bad)
        );
    }

    #[test]
    fn an_indicator_priority_must_be_in_the_file_and_under_its_outcome() {
        let bad = FRAMED.replace("priority = \"REDUCE_NEET\"", "priority = \"REDUCE_TRUANCY\"");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: priority REDUCE_TRUANCY is not a [[priority]] of this file; define it, or \
             leave the key out"
        );
        let bad = FRAMED.replace("priority = \"REDUCE_NEET\"", "priority = \"SAFE_FAMILIES\"");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: priority SAFE_FAMILIES is under outcome SAFE_FROM_HARM, but the indicator's \
             outcome is DO_WELL_IN_LEARNING"
        );
        let bad = FRAMED.replace("priority = \"REDUCE_NEET\"", "priority = \"\"");
        assert_eq!(
            error_of(&bad),
            "indicator NEET_16_18: priority is empty; leave the key out for no priority"
        );
        // Without the key the indicator sits behind no priority.
        let none = FRAMED.replace("priority = \"REDUCE_NEET\"", "");
        assert_eq!(parse(&none).unwrap().indicators[0].priority_code, "");
    }

    #[test]
    fn outcome_and_priority_entries_are_checked() {
        let twice = format!(
            "{FRAMED}\n[[priority]]\ncode = \"REDUCE_NEET\"\nname = \"again\"\noutcome = \"SAFE_FROM_HARM\"\n"
        );
        assert_eq!(error_of(&twice), "priority REDUCE_NEET is listed more than once");
        let bad = FRAMED.replace("name = \"Enjoy and achieve\"", "name = \"\"");
        assert_eq!(error_of(&bad), "outcome ECM_ENJOY_AND_ACHIEVE: name is empty");
        // A priority under an outcome the file does not define is left to the service's catalogue.
        let elsewhere = FRAMED.replace("outcome = \"SAFE_FROM_HARM\"", "outcome = \"HAVE_FUN\"");
        assert_eq!(
            external_references(&parse(&elsewhere).unwrap()),
            vec!["priority SAFE_FAMILIES outcome: outcome HAVE_FUN"]
        );
        // So is an indicator's outcome, once the file defines outcomes at all.
        let elsewhere = FRAMED
            .replace(
                "outcome = \"DO_WELL_IN_LEARNING\"\n        priority",
                "outcome = \"X\"\n        #",
            )
            .replace("priority = \"REDUCE_NEET\"", "");
        assert_eq!(
            external_references(&parse(&elsewhere).unwrap()),
            vec!["indicator NEET_16_18 outcome: outcome X"]
        );
    }

    #[test]
    fn localities_a_partner_may_submit_for_are_checked() {
        let bad = FRAMED.replace("[\"AREA_EAST\", \"AREA_WEST\"]", "[\"AREA_EAST\", \"AREA_EAST\"]");
        assert_eq!(
            error_of(&bad),
            "partner connexions: may_submit_localities lists AREA_EAST more than once"
        );
        let bad = FRAMED.replace("[\"AREA_EAST\", \"AREA_WEST\"]", "[\"AREA EAST\"]");
        assert_eq!(
            error_of(&bad),
            "partner connexions: may_submit_localities entry \"AREA EAST\" must be 1-64 letters, digits, '_' or '-'"
        );
        let elsewhere = FRAMED.replace("\"AREA_WEST\"]", "\"AREA_SOUTH\"]");
        assert_eq!(
            external_references(&parse(&elsewhere).unwrap()),
            vec!["partner connexions may_submit_localities: locality AREA_SOUTH"]
        );
    }

    #[test]
    fn read_permissions_are_read_and_checked() {
        let reader = FRAMED.replace(
            "may_submit_localities = [\"AREA_EAST\", \"AREA_WEST\"]",
            "may_submit_localities = [\"AREA_EAST\", \"AREA_WEST\"]\n        may_read = [\"NEET_16_18\"]\n        \
             may_read_localities = [\"LEEDS\"]",
        );
        let catalogue = parse(&reader).unwrap();
        assert_eq!(catalogue.partners[0].may_read, vec!["NEET_16_18"]);
        assert_eq!(catalogue.partners[0].may_read_localities, vec!["LEEDS"]);
        assert!(external_references(&catalogue).is_empty());
        assert!(
            summary(&catalogue).contains("and may read NEET_16_18, only for LEEDS"),
            "{}",
            summary(&catalogue)
        );

        let twice = reader.replace(
            "may_read = [\"NEET_16_18\"]",
            "may_read = [\"NEET_16_18\", \"NEET_16_18\"]",
        );
        assert_eq!(
            error_of(&twice),
            "partner connexions: may_read lists NEET_16_18 more than once"
        );
        let bad = reader.replace(
            "may_read_localities = [\"LEEDS\"]",
            "may_read_localities = [\"LEEDS\", \"LEEDS\"]",
        );
        assert_eq!(
            error_of(&bad),
            "partner connexions: may_read_localities lists LEEDS more than once"
        );
        let bad = reader.replace(
            "may_read_localities = [\"LEEDS\"]",
            "may_read_localities = [\"ALL OF IT\"]",
        );
        assert_eq!(
            error_of(&bad),
            "partner connexions: may_read_localities entry \"ALL OF IT\" must be 1-64 letters, digits, '_' or '-'"
        );
        // Left out, may_read_localities is the whole city.
        let citywide = parse(&reader.replace("may_read_localities = [\"LEEDS\"]", "")).unwrap();
        assert!(citywide.partners[0].may_read_localities.is_empty());
        let nowhere = reader.replace("may_read = [\"NEET_16_18\"]", "");
        assert!(
            error_of(&nowhere).starts_with("partner connexions: may_read_localities says where"),
            "{}",
            error_of(&nowhere)
        );
        let elsewhere = reader
            .replace("may_read = [\"NEET_16_18\"]", "may_read = [\"GCSE_5AC\"]")
            .replace("[\"LEEDS\"]", "[\"AREA_NORTH\"]");
        assert_eq!(
            external_references(&parse(&elsewhere).unwrap()),
            vec![
                "partner connexions may_read: indicator GCSE_5AC",
                "partner connexions may_read_localities: locality AREA_NORTH"
            ]
        );
    }

    #[test]
    fn parent_changes_are_checked() {
        let change = "[{ parent = \"AREA_EAST\", from = \"2010-04-01\" }]";
        let with = |changes: &str| FRAMED.replace(change, changes);
        assert!(
            error_of(&with("[{ parent = \"AREA_EAST\", from = \"2010-13-01\" }]")).starts_with(
                "locality CLUSTER_SEACROFT_MANSTON: parent_changes from \"2010-13-01\" is not a YYYY-MM-DD date"
            )
        );
        assert!(
            error_of(&with("[{ parent = \"AREA_EAST\", from = \"1 April 2010\" }]"))
                .contains("is not a YYYY-MM-DD date"),
        );
        assert!(
            error_of(&with("[{ parent = \"AREA_EAST\", from = \"2010-02-30\" }]"))
                .contains("is not a YYYY-MM-DD date"),
        );
        assert_eq!(
            error_of(&with("[{ parent = \"AREA_EAST\", from = \"0210-04-01\" }]")),
            "locality CLUSTER_SEACROFT_MANSTON: parent_changes from \"0210-04-01\": the year must be 1990-2100"
        );
        assert_eq!(
            error_of(&with(
                "[{ parent = \"AREA_EAST\", from = \"2010-04-01\" }, { parent = \"AREA_WEST\", from = \"2009-04-01\" }]"
            )),
            "locality CLUSTER_SEACROFT_MANSTON: parent_changes from 2009-04-01 is not after the change before it \
             (2010-04-01); list the changes in date order, one per date"
        );
        assert_eq!(
            error_of(&with(
                "[{ parent = \"CLUSTER_SEACROFT_MANSTON\", from = \"2010-04-01\" }]"
            )),
            "locality CLUSTER_SEACROFT_MANSTON: a locality cannot be its own parent (parent_changes from 2010-04-01)"
        );
        assert!(
            error_of(&with("[{ parent = \"AREA_EAST\" }]")).contains("missing field `from`"),
            "{}",
            error_of(&with("[{ parent = \"AREA_EAST\" }]"))
        );
        let two = parse(&with(
            "[{ parent = \"AREA_EAST\", from = \"2010-04-01\" }, { parent = \"AREA_WEST\", from = \"2014-09-01\" }]",
        ))
        .unwrap();
        assert_eq!(two.localities[4].parent_changes.len(), 2);
        let elsewhere = parse(&with("[{ parent = \"AREA_NORTH\", from = \"2010-04-01\" }]")).unwrap();
        assert_eq!(
            external_references(&elsewhere),
            vec!["locality CLUSTER_SEACROFT_MANSTON parent_changes: locality AREA_NORTH"]
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
