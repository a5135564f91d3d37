//! The text form of a reporting period, as partners and operators write it: `2026-03` (a month),
//! `2026-Q2` (a calendar quarter), `AY2025/26` (academic year from 1 September 2025) and `FY2025/26`
//! (financial year from 1 April 2025). The service checks the period against the indicator; this only turns
//! the text into the explicit `trust.common.v1.Period`.

use trust_proto::common::v1::{Period, PeriodType};

const EXPECTED: &str = "expected a month (2026-03), a quarter (2026-Q2), an academic year (AY2025/26) \
                        or a financial year (FY2025/26)";

/// Parse the text form of a period.
pub fn parse(text: &str) -> Result<Period, String> {
    let text = text.trim();
    let unparseable = || format!("{text:?} is not a period: {EXPECTED}");
    let year = |digits: &str| -> Result<i32, String> {
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unparseable());
        }
        let year: i32 = digits.parse().map_err(|_| unparseable())?;
        if (1990..=2100).contains(&year) {
            Ok(year)
        } else {
            Err(format!("{text:?}: year {year} is outside 1990-2100"))
        }
    };
    let period = |kind: PeriodType, year: i32, number: i32| Period {
        r#type: kind as i32,
        year,
        number,
    };

    for (prefix, kind) in [
        ("AY", PeriodType::AcademicYear),
        ("FY", PeriodType::FinancialYear),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let (start, end) = rest.split_once('/').ok_or_else(unparseable)?;
            let start = year(start)?;
            let expected_end = (start + 1) % 100;
            if end.len() != 2 || end.parse::<i32>().ok() != Some(expected_end) {
                return Err(format!(
                    "{text:?}: a {prefix} year runs over two consecutive years, e.g. {prefix}{start}/{expected_end:02}"
                ));
            }
            return Ok(period(kind, start, 0));
        }
    }

    let (start, rest) = text.split_once('-').ok_or_else(unparseable)?;
    let start = year(start)?;
    if let Some(quarter) = rest.strip_prefix('Q') {
        return match quarter.parse::<i32>() {
            Ok(q @ 1..=4) if quarter.len() == 1 => Ok(period(PeriodType::Quarter, start, q)),
            _ => Err(format!("{text:?}: the quarter must be Q1-Q4")),
        };
    }
    match rest.parse::<i32>() {
        Ok(month @ 1..=12) if rest.len() == 2 => Ok(period(PeriodType::Month, start, month)),
        Ok(_) => Err(format!("{text:?}: the month must be two digits, 01-12")),
        Err(_) => Err(unparseable()),
    }
}

/// The text form of a period, for messages.
pub fn display(period: &Period) -> String {
    match PeriodType::try_from(period.r#type) {
        Ok(PeriodType::Month) => format!("{}-{:02}", period.year, period.number),
        Ok(PeriodType::Quarter) => format!("{}-Q{}", period.year, period.number),
        Ok(PeriodType::AcademicYear) => format!("AY{}/{:02}", period.year, (period.year + 1) % 100),
        Ok(PeriodType::FinancialYear) => format!("FY{}/{:02}", period.year, (period.year + 1) % 100),
        Ok(PeriodType::Unspecified) | Err(_) => format!("(unknown period type {})", period.r#type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: PeriodType, year: i32, number: i32) -> Period {
        Period {
            r#type: kind as i32,
            year,
            number,
        }
    }

    #[test]
    fn the_four_text_forms_parse_and_round_trip() {
        assert_eq!(parse("2026-03"), Ok(p(PeriodType::Month, 2026, 3)));
        assert_eq!(parse("2026-Q2"), Ok(p(PeriodType::Quarter, 2026, 2)));
        assert_eq!(parse("AY2025/26"), Ok(p(PeriodType::AcademicYear, 2025, 0)));
        assert_eq!(parse(" FY2025/26 "), Ok(p(PeriodType::FinancialYear, 2025, 0)));
        assert_eq!(parse("FY1999/00"), Ok(p(PeriodType::FinancialYear, 1999, 0)));
        for text in ["2026-03", "2026-Q2", "AY2025/26", "FY2025/26", "FY1999/00"] {
            assert_eq!(display(&parse(text).unwrap()), text);
        }
    }

    #[test]
    fn malformed_periods_are_refused_with_the_reason() {
        assert!(parse("2026-13").unwrap_err().contains("two digits, 01-12"));
        assert!(parse("2026-3").unwrap_err().contains("two digits, 01-12"));
        assert!(parse("2026-Q5").unwrap_err().contains("Q1-Q4"));
        assert!(parse("FY2025/27").unwrap_err().contains("FY2025/26"));
        assert!(parse("1800-01").unwrap_err().contains("outside 1990-2100"));
        assert!(parse("Q2 2026").unwrap_err().contains("is not a period"));
        assert!(parse("").unwrap_err().contains("is not a period"));
    }
}
