//! Hard validation of one submitted observation. Each failure names the field and says why, so a partner's
//! analyst can correct the record.

use time::Date;
use trust_proto::common::v1::{MeasureType, Polarity};
use trust_proto::ingest::v1 as pb;

use super::period::{Period, PeriodType};

/// What the catalogue says about an indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorSpec {
    pub code: String,
    pub name: String,
    pub measure: MeasureType,
    pub polarity: Polarity,
    pub period_type: PeriodType,
    pub owner_partner_code: String,
    pub valid_min: Option<f64>,
    pub valid_max: Option<f64>,
}

impl IndicatorSpec {
    /// How many units of the value one unit of numerator/denominator makes: 100 for a percentage, 1,000
    /// or 10,000 for rates; None where a value is not a ratio.
    pub fn ratio_scale(&self) -> Option<f64> {
        match self.measure {
            MeasureType::Percentage => Some(100.0),
            MeasureType::RatePer1000 => Some(1_000.0),
            MeasureType::RatePer10000 => Some(10_000.0),
            _ => None,
        }
    }
}

/// A value may differ from numerator/denominator x scale by rounding: half a unit in the last of one decimal
/// place, or 0.1% of the value, whichever is larger.
fn consistent_with_ratio(value: f64, numerator: f64, denominator: f64, scale: f64) -> bool {
    if denominator == 0.0 {
        return numerator == 0.0 && value == 0.0;
    }
    let expected = numerator / denominator * scale;
    (value - expected).abs() <= 0.05_f64.max(expected.abs() * 0.001)
}

/// Why a record was refused: position in the batch (-1 for the whole message), field and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub position: i32,
    pub field: &'static str,
    pub reason: String,
}

impl Rejection {
    pub fn whole_message(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            position: -1,
            field,
            reason: reason.into(),
        }
    }

    pub fn to_proto(&self) -> pb::RecordRejection {
        pb::RecordRejection {
            position: self.position,
            field: self.field.to_owned(),
            reason: self.reason.clone(),
        }
    }
}

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidObservation {
    pub position: i32,
    pub indicator: IndicatorSpec,
    pub locality_code: String,
    pub period: Period,
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub note: String,
    pub correction_reason: String,
}

/// What the catalogue knows about one record's references, looked up by the caller.
pub struct References<'a> {
    pub indicator: Option<&'a IndicatorSpec>,
    pub locality_known: bool,
    /// The information sharing protocol lets this partner submit this indicator.
    pub partner_may_submit: bool,
}

pub fn validate_observation(
    position: i32,
    partner_code: &str,
    record: &pb::Observation,
    refs: &References<'_>,
    today: Date,
) -> Result<ValidObservation, Rejection> {
    let reject = |field: &'static str, reason: String| Rejection {
        position,
        field,
        reason,
    };
    let indicator = refs.indicator.ok_or_else(|| {
        reject(
            "indicator_code",
            format!(
                "unknown indicator {:?}: it is not in the catalogue",
                record.indicator_code
            ),
        )
    })?;
    if !refs.locality_known {
        return Err(reject(
            "locality_code",
            format!(
                "unknown locality {:?}: it is not in the catalogue",
                record.locality_code
            ),
        ));
    }
    if !refs.partner_may_submit {
        return Err(reject(
            "indicator_code",
            format!(
                "partner {partner_code:?} is not permitted to submit indicator {:?} under the information sharing protocol",
                indicator.code
            ),
        ));
    }
    let period = Period::from_proto(record.period.as_ref()).map_err(|e| reject("period", e.to_string()))?;
    if period.kind() != indicator.period_type {
        return Err(reject(
            "period",
            format!(
                "indicator {:?} is reported by {}, not by {} (got {period})",
                indicator.code,
                indicator.period_type,
                period.kind()
            ),
        ));
    }
    if period.is_future(today) {
        return Err(reject(
            "period",
            format!(
                "period {period} has not begun yet (starts {})",
                period.starts_on()
            ),
        ));
    }
    if !record.value.is_finite() {
        return Err(reject(
            "value",
            format!("value {} is not a finite number", record.value),
        ));
    }
    if indicator.measure == MeasureType::Percentage && !(0.0..=100.0).contains(&record.value) {
        return Err(reject(
            "value",
            format!(
                "value {} is a percentage and must be between 0 and 100",
                record.value
            ),
        ));
    }
    let below = indicator.valid_min.is_some_and(|min| record.value < min);
    let above = indicator.valid_max.is_some_and(|max| record.value > max);
    if below || above {
        let bound = |b: Option<f64>| b.map_or_else(|| "no limit".to_owned(), |v| v.to_string());
        return Err(reject(
            "value",
            format!(
                "value {} is outside the valid range of {} ({} to {})",
                record.value,
                indicator.code,
                bound(indicator.valid_min),
                bound(indicator.valid_max)
            ),
        ));
    }
    for (field, part) in [
        ("numerator", record.numerator),
        ("denominator", record.denominator),
    ] {
        if let Some(part) = part
            && (!part.is_finite() || part < 0.0)
        {
            return Err(reject(
                field,
                format!("{field} {part} must be a finite number of 0 or more"),
            ));
        }
    }
    if let (Some(numerator), Some(denominator)) = (record.numerator, record.denominator)
        && numerator > denominator
        && indicator.measure == MeasureType::Percentage
    {
        return Err(reject(
            "numerator",
            format!("numerator {numerator} is above denominator {denominator}"),
        ));
    }
    if let (Some(numerator), Some(denominator), Some(scale)) =
        (record.numerator, record.denominator, indicator.ratio_scale())
        && !consistent_with_ratio(record.value, numerator, denominator, scale)
    {
        return Err(reject(
            "value",
            format!(
                "value {} is inconsistent with numerator {numerator} / denominator {denominator} (which gives {:.2})",
                record.value,
                if denominator == 0.0 {
                    0.0
                } else {
                    numerator / denominator * scale
                }
            ),
        ));
    }
    Ok(ValidObservation {
        position,
        indicator: indicator.clone(),
        locality_code: record.locality_code.clone(),
        period,
        value: record.value,
        numerator: record.numerator,
        denominator: record.denominator,
        note: record.note.clone(),
        correction_reason: record.correction_reason.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;
    use trust_proto::common::v1 as common;

    fn neet() -> IndicatorSpec {
        IndicatorSpec {
            code: "NEET_16_18".into(),
            name: "16-18 year olds not in education, employment or training".into(),
            measure: MeasureType::Percentage,
            polarity: Polarity::LowerIsBetter,
            period_type: PeriodType::Quarter,
            owner_partner_code: "connexions".into(),
            valid_min: Some(0.0),
            valid_max: Some(40.0),
        }
    }

    fn record(value: f64, period: common::Period) -> pb::Observation {
        pb::Observation {
            indicator_code: "NEET_16_18".into(),
            locality_code: "AREA_EAST".into(),
            period: Some(period),
            value,
            ..Default::default()
        }
    }

    fn q(year: i32, number: i32) -> common::Period {
        common::Period {
            r#type: common::PeriodType::Quarter as i32,
            year,
            number,
        }
    }

    const TODAY: Date = date!(2026 - 11 - 23);

    fn check(
        rec: &pb::Observation,
        indicator: Option<&IndicatorSpec>,
        locality: bool,
        permitted: bool,
    ) -> Result<ValidObservation, Rejection> {
        let refs = References {
            indicator,
            locality_known: locality,
            partner_may_submit: permitted,
        };
        validate_observation(3, "connexions", rec, &refs, TODAY)
    }

    #[test]
    fn a_good_record_passes() {
        let spec = neet();
        let valid = check(&record(7.5, q(2026, 2)), Some(&spec), true, true).expect("valid");
        assert_eq!(valid.period.to_string(), "2026-Q2");
    }

    #[test]
    fn each_failure_names_its_field() {
        let spec = neet();
        // (record, indicator, locality known, permitted, field, reason)
        let cases = [
            (
                record(7.5, q(2026, 2)),
                None,
                true,
                true,
                "indicator_code",
                "unknown indicator",
            ),
            (
                record(7.5, q(2026, 2)),
                Some(&spec),
                false,
                true,
                "locality_code",
                "unknown locality",
            ),
            (
                record(7.5, q(2026, 2)),
                Some(&spec),
                true,
                false,
                "indicator_code",
                "not permitted",
            ),
            (
                record(7.5, q(2027, 1)),
                Some(&spec),
                true,
                true,
                "period",
                "has not begun",
            ),
            (
                record(7.5, q(2026, 5)),
                Some(&spec),
                true,
                true,
                "period",
                "not 1-4",
            ),
            (
                record(f64::NAN, q(2026, 2)),
                Some(&spec),
                true,
                true,
                "value",
                "not a finite number",
            ),
            (
                record(140.0, q(2026, 2)),
                Some(&spec),
                true,
                true,
                "value",
                "between 0 and 100",
            ),
            (
                record(55.0, q(2026, 2)),
                Some(&spec),
                true,
                true,
                "value",
                "outside the valid range",
            ),
        ];
        for (rec, indicator, locality, permitted, field, reason) in cases {
            let rejection = check(&rec, indicator, locality, permitted).expect_err(reason);
            assert_eq!(rejection.position, 3);
            assert_eq!(rejection.field, field, "{reason}");
            assert!(
                rejection.reason.contains(reason),
                "{} should contain {reason}",
                rejection.reason
            );
        }
    }

    #[test]
    fn wrong_period_type_is_refused() {
        let spec = neet();
        let monthly = common::Period {
            r#type: common::PeriodType::Month as i32,
            year: 2026,
            number: 3,
        };
        let rejection = check(&record(7.5, monthly), Some(&spec), true, true).expect_err("month");
        assert_eq!(rejection.field, "period");
        assert!(
            rejection.reason.contains("reported by quarter"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn value_must_agree_with_numerator_and_denominator() {
        let spec = neet();
        let mut rec = record(7.1, q(2026, 2));
        rec.numerator = Some(71.0);
        rec.denominator = Some(1000.0);
        assert!(check(&rec, Some(&spec), true, true).is_ok(), "71/1000 = 7.1%");
        rec.value = 9.0;
        let rejection = check(&rec, Some(&spec), true, true).expect_err("inconsistent");
        assert_eq!(rejection.field, "value");
        assert!(
            rejection.reason.contains("inconsistent with numerator 71"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn a_negative_numerator_or_a_missing_period_is_refused() {
        let spec = neet();
        let mut rec = record(7.5, q(2026, 2));
        rec.numerator = Some(-1.0);
        rec.denominator = Some(100.0);
        let rejection = check(&rec, Some(&spec), true, true).expect_err("negative");
        assert_eq!(rejection.field, "numerator");
        let mut rec = record(7.5, q(2026, 2));
        rec.period = None;
        let rejection = check(&rec, Some(&spec), true, true).expect_err("no period");
        assert_eq!(
            (rejection.field, rejection.reason.as_str()),
            ("period", "period is missing")
        );
        rec.period = Some(common::Period::default());
        let rejection = check(&rec, Some(&spec), true, true).expect_err("no period type");
        assert!(rejection.reason.contains("period type"), "{}", rejection.reason);
    }

    #[test]
    fn numerator_above_denominator_is_refused() {
        let spec = neet();
        let mut rec = record(7.5, q(2026, 2));
        rec.numerator = Some(120.0);
        rec.denominator = Some(100.0);
        assert_eq!(
            check(&rec, Some(&spec), true, true).expect_err("num").field,
            "numerator"
        );
    }
}
