//! Reporting periods as explicit values: a month, a quarter, an academic year (from 1 September) or a
//! financial year (from 1 April).

use std::fmt;

use thiserror::Error;
use time::{Date, Month};
use trust_proto::common::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodType {
    Month,
    Quarter,
    AcademicYear,
    FinancialYear,
}

impl PeriodType {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::PeriodType::try_from(value).ok()? {
            pb::PeriodType::Month => Some(Self::Month),
            pb::PeriodType::Quarter => Some(Self::Quarter),
            pb::PeriodType::AcademicYear => Some(Self::AcademicYear),
            pb::PeriodType::FinancialYear => Some(Self::FinancialYear),
            pb::PeriodType::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::PeriodType {
        match self {
            Self::Month => pb::PeriodType::Month,
            Self::Quarter => pb::PeriodType::Quarter,
            Self::AcademicYear => pb::PeriodType::AcademicYear,
            Self::FinancialYear => pb::PeriodType::FinancialYear,
        }
    }

    /// Stable name stored in the database and used in the catalogue file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::AcademicYear => "academic_year",
            Self::FinancialYear => "financial_year",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "month" => Some(Self::Month),
            "quarter" => Some(Self::Quarter),
            "academic_year" => Some(Self::AcademicYear),
            "financial_year" => Some(Self::FinancialYear),
            _ => None,
        }
    }
}

impl fmt::Display for PeriodType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::AcademicYear => "academic year",
            Self::FinancialYear => "financial year",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeriodError {
    #[error("period is missing")]
    Missing,
    #[error("period type is missing or unknown")]
    UnknownType,
    #[error("year {0} is outside 1990-2100")]
    YearOutOfRange(i32),
    #[error("month {0} is not 1-12")]
    MonthOutOfRange(i32),
    #[error("quarter {0} is not 1-4")]
    QuarterOutOfRange(i32),
    #[error("a {0} period takes no number (got {1})")]
    UnexpectedNumber(PeriodType, i32),
    #[error("{0:?} is not a period (expected e.g. 2026-03, 2026-Q2, AY2025/26, FY2025/26)")]
    Unparseable(String),
}

/// A valid reporting period: cannot be built with a month 13 or a quarter 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    kind: PeriodType,
    year: i32,
    number: u8,
}

impl Period {
    pub fn new(kind: PeriodType, year: i32, number: i32) -> Result<Self, PeriodError> {
        if !(1990..=2100).contains(&year) {
            return Err(PeriodError::YearOutOfRange(year));
        }
        let number = match kind {
            PeriodType::Month if !(1..=12).contains(&number) => {
                return Err(PeriodError::MonthOutOfRange(number));
            }
            PeriodType::Quarter if !(1..=4).contains(&number) => {
                return Err(PeriodError::QuarterOutOfRange(number));
            }
            PeriodType::AcademicYear | PeriodType::FinancialYear if number != 0 => {
                return Err(PeriodError::UnexpectedNumber(kind, number));
            }
            _ => u8::try_from(number).map_err(|_| PeriodError::MonthOutOfRange(number))?,
        };
        Ok(Self { kind, year, number })
    }

    pub fn from_proto(period: Option<&pb::Period>) -> Result<Self, PeriodError> {
        let period = period.ok_or(PeriodError::Missing)?;
        let kind = PeriodType::from_proto(period.r#type).ok_or(PeriodError::UnknownType)?;
        Self::new(kind, period.year, period.number)
    }

    pub fn to_proto(self) -> pb::Period {
        pb::Period {
            r#type: self.kind.to_proto() as i32,
            year: self.year,
            number: i32::from(self.number),
        }
    }

    /// Parse the text form: `2026-03`, `2026-Q2`, `AY2025/26`, `FY2025/26`.
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let unparseable = || PeriodError::Unparseable(text.to_owned());
        let text = text.trim();
        let year_pair = |rest: &str| -> Result<i32, PeriodError> {
            let (start, end) = rest.split_once('/').ok_or_else(unparseable)?;
            let start: i32 = start.parse().map_err(|_| unparseable())?;
            let end: i32 = end.parse().map_err(|_| unparseable())?;
            if end != (start + 1) % 100 {
                return Err(unparseable());
            }
            Ok(start)
        };
        if let Some(rest) = text.strip_prefix("AY") {
            return Self::new(PeriodType::AcademicYear, year_pair(rest)?, 0);
        }
        if let Some(rest) = text.strip_prefix("FY") {
            return Self::new(PeriodType::FinancialYear, year_pair(rest)?, 0);
        }
        let (year, rest) = text.split_once('-').ok_or_else(unparseable)?;
        let year: i32 = year.parse().map_err(|_| unparseable())?;
        if let Some(quarter) = rest.strip_prefix('Q') {
            return Self::new(
                PeriodType::Quarter,
                year,
                quarter.parse().map_err(|_| unparseable())?,
            );
        }
        Self::new(PeriodType::Month, year, rest.parse().map_err(|_| unparseable())?)
    }

    pub fn kind(&self) -> PeriodType {
        self.kind
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn number(&self) -> i32 {
        i32::from(self.number)
    }

    /// First day of the period.
    pub fn starts_on(&self) -> Date {
        let (month, day) = match self.kind {
            PeriodType::Month => (self.number, 1),
            PeriodType::Quarter => ((self.number - 1) * 3 + 1, 1),
            PeriodType::AcademicYear => (9, 1),
            PeriodType::FinancialYear => (4, 1),
        };
        let month = Month::try_from(month).unwrap_or(Month::January);
        Date::from_calendar_date(self.year, month, day).unwrap_or(Date::MIN)
    }

    /// A period that has not begun by `today` cannot have a value yet.
    pub fn is_future(&self, today: Date) -> bool {
        self.starts_on() > today
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PeriodType::Month => write!(f, "{}-{:02}", self.year, self.number),
            PeriodType::Quarter => write!(f, "{}-Q{}", self.year, self.number),
            PeriodType::AcademicYear => write!(f, "AY{}/{:02}", self.year, (self.year + 1) % 100),
            PeriodType::FinancialYear => write!(f, "FY{}/{:02}", self.year, (self.year + 1) % 100),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn text_forms_round_trip() {
        for text in ["2026-03", "2026-Q2", "AY2025/26", "FY2025/26", "FY1999/00"] {
            assert_eq!(Period::parse(text).expect(text).to_string(), text);
        }
    }

    #[test]
    fn invalid_periods_cannot_be_built() {
        assert_eq!(Period::parse("2026-13"), Err(PeriodError::MonthOutOfRange(13)));
        assert_eq!(Period::parse("2026-Q5"), Err(PeriodError::QuarterOutOfRange(5)));
        assert!(matches!(
            Period::parse("FY2025/27"),
            Err(PeriodError::Unparseable(_))
        ));
        assert_eq!(
            Period::new(PeriodType::Month, 1800, 1),
            Err(PeriodError::YearOutOfRange(1800))
        );
        assert_eq!(
            Period::new(PeriodType::FinancialYear, 2025, 2),
            Err(PeriodError::UnexpectedNumber(PeriodType::FinancialYear, 2))
        );
    }

    #[test]
    fn periods_start_where_the_sector_starts_them() {
        assert_eq!(
            Period::parse("2026-Q3").expect("q").starts_on(),
            date!(2026 - 07 - 01)
        );
        assert_eq!(
            Period::parse("AY2025/26").expect("ay").starts_on(),
            date!(2025 - 09 - 01)
        );
        assert_eq!(
            Period::parse("FY2025/26").expect("fy").starts_on(),
            date!(2025 - 04 - 01)
        );
    }

    #[test]
    fn a_period_not_yet_begun_is_future() {
        let today = date!(2026 - 11 - 23);
        assert!(Period::parse("2026-12").expect("m").is_future(today));
        assert!(!Period::parse("2026-11").expect("m").is_future(today));
        assert!(!Period::parse("2026-Q4").expect("q").is_future(today));
    }
}
