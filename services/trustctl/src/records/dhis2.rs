//! DHIS2 `dataValueSets` JSON, as DHIS2 exports it with codes as identifiers (`idScheme=CODE`), so a partner
//! that already exports DHIS2 can submit the file unchanged:
//!
//! ```json
//! {"dataValues": [
//!   {"dataElement": "NEET_16_18", "orgUnit": "AREA_EAST", "period": "2026Q2", "value": "7.1",
//!    "comment": "includes late returns"}
//! ]}
//! ```
//!
//! `dataElement` is the indicator code, `orgUnit` the locality code and `comment` the note. `value` is a
//! string in DHIS2 (a JSON number is taken too); one that is not a number is a record error. Periods are
//! DHIS2's: `202603` (Monthly), `2026Q2` (Quarterly), `2025April` (FinancialApril: FY2025/26) and `2025Sep`
//! (FinancialSep: the academic year from September, AY2025/26); other DHIS2 period types are record errors.
//! A `period` or `orgUnit` given for the whole set applies to data values without their own, provided it
//! comes before `dataValues` (the file is read as a stream). Values disaggregated by a category option
//! combination other than the default are refused: the platform keeps one value per indicator, locality
//! and period. Other keys (`storedBy`, `created`, `lastUpdated`, `followup`, `dataSet`, ...) are ignored.
//!
//! The file is streamed: serde_json reads the top-level object and its `dataValues` array through visitors,
//! so each data value is handed on as soon as it is read and memory does not grow with the file. Line
//! numbers come from counting the newlines serde_json has consumed (it reads byte by byte).

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use anyhow::{Result, anyhow};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use trust_proto::common::v1::{Period, PeriodType};
use trust_proto::ingest::v1 as pb;

use super::{Item, Origin, ReadEnd, Record, RecordError, parse_number};

/// The identifiers DHIS2 gives its default category option combination.
const DEFAULT_COMBOS: [&str; 2] = ["default", "HllvX50cXC0"];

const PLATFORM_PERIODS: &str = "the platform takes Monthly (202603), Quarterly (2026Q2), FinancialApril \
                                (2025April, the financial year FY2025/26) and FinancialSep (2025Sep, the \
                                academic year AY2025/26) periods";

/// Turn a DHIS2 period identifier into a period.
pub fn period(text: &str) -> Result<Period, String> {
    let not_a_period = || format!("{text:?} is not a DHIS2 period identifier; {PLATFORM_PERIODS}");
    let other_type = |kind: &str| format!("{text:?} is a DHIS2 {kind} period; {PLATFORM_PERIODS}");
    let (year, rest) = match (text.get(..4), text.get(4..)) {
        (Some(year), Some(rest)) if year.bytes().all(|b| b.is_ascii_digit()) => (year, rest),
        _ => return Err(not_a_period()),
    };
    let year: i32 = year.parse().map_err(|_| not_a_period())?;
    if !(1990..=2100).contains(&year) {
        return Err(format!("{text:?}: year {year} is outside 1990-2100"));
    }
    let period = |kind: PeriodType, number: i32| {
        Ok(Period {
            r#type: kind as i32,
            year,
            number,
        })
    };
    let digits = rest.bytes().all(|b| b.is_ascii_digit());
    match rest {
        "April" => period(PeriodType::FinancialYear, 0),
        "Sep" => period(PeriodType::AcademicYear, 0),
        "" => Err(other_type("Yearly")),
        "July" | "Oct" | "Nov" => Err(other_type(&format!("Financial{rest}"))),
        _ if rest.len() == 2 && digits => match rest.parse::<i32>() {
            Ok(month @ 1..=12) => period(PeriodType::Month, month),
            _ => Err(format!("{text:?}: the month must be 01-12")),
        },
        _ if rest.len() == 4 && digits => Err(other_type("Daily")),
        _ if rest.len() == 3 && rest.ends_with('B') => Err(other_type("BiMonthly")),
        _ => {
            if let Some(quarter) = rest.strip_prefix('Q') {
                return match quarter.parse::<i32>() {
                    Ok(q @ 1..=4) if quarter.len() == 1 => period(PeriodType::Quarter, q),
                    _ => Err(format!("{text:?}: the quarter must be Q1-Q4")),
                };
            }
            // The other DHIS2 period types, by the shape of what follows the year.
            let numbered = |prefixes: &[&str], letter: char| {
                prefixes.iter().any(|prefix| {
                    rest.strip_prefix(prefix)
                        .and_then(|r| r.strip_prefix(letter))
                        .is_some_and(|n| {
                            !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit())
                        })
                })
            };
            let kind = if numbered(&["Bi"], 'W') {
                "BiWeekly"
            } else if numbered(&["", "Wed", "Thu", "Sat", "Sun"], 'W') {
                "Weekly"
            } else if numbered(&["", "April", "Nov"], 'S') {
                "SixMonthly"
            } else if numbered(&["Nov"], 'Q') {
                "QuarterlyNov"
            } else {
                return Err(not_a_period());
            };
            Err(other_type(kind))
        }
    }
}

/// Counts the newlines read through it.
struct LineCounter<R> {
    inner: R,
    newlines: Rc<Cell<u64>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let found = buf[..n].iter().filter(|&&b| b == b'\n').count();
        self.newlines
            .set(self.newlines.get() + u64::try_from(found).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// Shared by the visitors of one read.
struct State<'s> {
    sink: &'s mut dyn FnMut(Item) -> ControlFlow<()>,
    newlines: Rc<Cell<u64>>,
    records: u64,
    stopped: bool,
    /// Set-level `period` and `orgUnit`, when they come before `dataValues`.
    default_period: Option<String>,
    default_org_unit: Option<String>,
    data_values_seen: bool,
}

const STOPPED: &str = "trustctl: reading stopped";

/// Read a DHIS2 `dataValueSets` file, handing each data value to `sink`.
pub fn read(input: impl Read, sink: &mut dyn FnMut(Item) -> ControlFlow<()>) -> Result<ReadEnd> {
    let newlines = Rc::new(Cell::new(0));
    let counter = LineCounter {
        inner: BufReader::with_capacity(64 * 1024, input),
        newlines: Rc::clone(&newlines),
    };
    let mut state = State {
        sink,
        newlines,
        records: 0,
        stopped: false,
        default_period: None,
        default_org_unit: None,
        data_values_seen: false,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(counter);
    let result = FileSeed(&mut state)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match result {
        Err(_) if state.stopped => Ok(ReadEnd::Stopped),
        Err(err) => Err(anyhow!("{}", err.to_string().replace(" at line ", ", at line "))
            .context("the file is not a DHIS2 dataValueSets JSON file")),
        Ok(()) if !state.data_values_seen => Err(anyhow!(
            "the file is not a DHIS2 dataValueSets JSON file: it has no \"dataValues\" array"
        )),
        Ok(()) => Ok(ReadEnd::Finished),
    }
}

/// The top-level object.
struct FileSeed<'a, 's>(&'a mut State<'s>);

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dataValueSets object with a \"dataValues\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "dataValues" => {
                    if state.data_values_seen {
                        return Err(de::Error::custom("\"dataValues\" appears twice"));
                    }
                    state.data_values_seen = true;
                    map.next_value_seed(DataValuesSeed(&mut *state))?;
                }
                "period" | "orgUnit" => {
                    let value: Option<String> = map.next_value()?;
                    if state.data_values_seen {
                        return Err(de::Error::custom(format!(
                            "the set-level \"{key}\" comes after \"dataValues\"; put it before them (the file \
                             is read as a stream) or give each data value its own"
                        )));
                    }
                    if key == "period" {
                        state.default_period = value;
                    } else {
                        state.default_org_unit = value;
                    }
                }
                "attributeOptionCombo" => {
                    let value: Option<String> = map.next_value()?;
                    if let Some(combo) = value
                        && !combo.is_empty()
                        && !DEFAULT_COMBOS.contains(&combo.as_str())
                    {
                        return Err(de::Error::custom(format!(
                            "the set's attributeOptionCombo {combo:?} is not the default; the platform takes \
                             one value per indicator, locality and period"
                        )));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `dataValues` array.
struct DataValuesSeed<'a, 's>(&'a mut State<'s>);

impl<'de> DeserializeSeed<'de> for DataValuesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataValuesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of data values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            let seed = DataValueSeed {
                newlines: &state.newlines,
            };
            let Some(raw) = seq.next_element_seed(seed)? else {
                return Ok(());
            };
            state.records += 1;
            let item = raw.into_item(state);
            if (state.sink)(item).is_break() {
                state.stopped = true;
                return Err(de::Error::custom(STOPPED));
            }
        }
    }
}

/// One data value's fields as written, before they are checked.
#[derive(Default)]
struct RawDataValue {
    line: u64,
    data_element: Option<Value>,
    org_unit: Option<Value>,
    period: Option<Value>,
    value: Option<Value>,
    comment: Option<Value>,
    category_option_combo: Option<Value>,
    attribute_option_combo: Option<Value>,
    deleted: Option<Value>,
}

struct DataValueSeed<'a> {
    newlines: &'a Rc<Cell<u64>>,
}

impl<'de> DeserializeSeed<'de> for DataValueSeed<'_> {
    type Value = RawDataValue;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<RawDataValue, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataValueSeed<'_> {
    type Value = RawDataValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a data value object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDataValue, A::Error> {
        // serde_json has read up to and including the opening brace.
        let mut raw = RawDataValue {
            line: self.newlines.get() + 1,
            ..RawDataValue::default()
        };
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "dataElement" => &mut raw.data_element,
                "orgUnit" => &mut raw.org_unit,
                "period" => &mut raw.period,
                "value" => &mut raw.value,
                "comment" => &mut raw.comment,
                "categoryOptionCombo" => &mut raw.category_option_combo,
                "attributeOptionCombo" => &mut raw.attribute_option_combo,
                "deleted" => &mut raw.deleted,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(raw)
    }
}

/// A key's value as text: absent, null and "" are `None`.
fn text(value: Option<&Value>, field: &'static str) -> Result<Option<String>, (&'static str, String)> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(other) => Err((field, format!("must be a string, not {other}"))),
    }
}

impl RawDataValue {
    fn into_item(self, state: &State<'_>) -> Item {
        let origin = Origin {
            line: self.line,
            record: state.records,
        };
        match self.observation(state) {
            Ok(observation) => Item::Record(Record { origin, observation }),
            Err((field, reason)) => Item::Invalid(RecordError {
                origin,
                field,
                reason,
            }),
        }
    }

    fn observation(&self, state: &State<'_>) -> Result<pb::Observation, (&'static str, String)> {
        if matches!(self.deleted, Some(Value::Bool(true))) {
            return Err((
                "deleted",
                "the data value is marked deleted; export without deleted values".to_owned(),
            ));
        }
        for (field, combo) in [
            ("categoryOptionCombo", &self.category_option_combo),
            ("attributeOptionCombo", &self.attribute_option_combo),
        ] {
            if let Some(combo) = text(combo.as_ref(), field)?
                && !DEFAULT_COMBOS.contains(&combo.as_str())
            {
                return Err((
                    field,
                    format!(
                        "{combo:?} is not the default combination; the platform takes one value per \
                         indicator, locality and period (export totals)"
                    ),
                ));
            }
        }
        let required = |value: &Option<Value>, field: &'static str, default: Option<&String>| match text(
            value.as_ref(),
            field,
        )? {
            Some(text) => Ok(text),
            None => default.cloned().ok_or((field, "is missing".to_owned())),
        };
        let indicator_code = required(&self.data_element, "dataElement", None)?;
        let locality_code = required(&self.org_unit, "orgUnit", state.default_org_unit.as_ref())?;
        let period_text = required(&self.period, "period", state.default_period.as_ref())?;
        let period = period(&period_text).map_err(|reason| ("period", reason))?;
        let value = match &self.value {
            None | Some(Value::Null) => return Err(("value", "is missing".to_owned())),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or(("value", format!("{n} is not a finite number")))?,
            Some(Value::String(s)) if s.trim().is_empty() => return Err(("value", "is empty".to_owned())),
            Some(Value::String(s)) => parse_number(s.trim()).map_err(|reason| ("value", reason))?,
            Some(other) => return Err(("value", format!("must be a number in a string, not {other}"))),
        };
        let note = text(self.comment.as_ref(), "comment")?.unwrap_or_default();
        Ok(pb::Observation {
            indicator_code,
            locality_code,
            period: Some(period),
            value,
            note,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Format, read_all};

    fn p(kind: PeriodType, year: i32, number: i32) -> Period {
        Period {
            r#type: kind as i32,
            year,
            number,
        }
    }

    fn split(items: Vec<Item>) -> (Vec<Record>, Vec<RecordError>) {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Invalid(e) => errors.push(e),
            }
        }
        (records, errors)
    }

    #[test]
    fn dhis2_periods_map_to_ours() {
        assert_eq!(period("202603"), Ok(p(PeriodType::Month, 2026, 3)));
        assert_eq!(period("202612"), Ok(p(PeriodType::Month, 2026, 12)));
        assert_eq!(period("2026Q2"), Ok(p(PeriodType::Quarter, 2026, 2)));
        assert_eq!(period("2025April"), Ok(p(PeriodType::FinancialYear, 2025, 0)));
        assert_eq!(period("2025Sep"), Ok(p(PeriodType::AcademicYear, 2025, 0)));
        assert_eq!(crate::period::display(&period("2025April").unwrap()), "FY2025/26");
        assert_eq!(crate::period::display(&period("2025Sep").unwrap()), "AY2025/26");
    }

    #[test]
    fn other_dhis2_periods_are_named_in_the_refusal() {
        let reason = |text: &str| period(text).unwrap_err();
        assert!(reason("2026").starts_with("\"2026\" is a DHIS2 Yearly period; the platform takes"));
        assert!(reason("2026W05").contains("Weekly"));
        assert!(reason("2026WedW5").contains("Weekly"));
        assert!(reason("2026BiW1").contains("BiWeekly"));
        assert!(reason("20260315").contains("Daily"));
        assert!(reason("202601B").contains("BiMonthly"));
        assert!(reason("2026S1").contains("SixMonthly"));
        assert!(reason("2025AprilS2").contains("SixMonthly"));
        assert!(reason("2025July").contains("FinancialJuly"));
        assert!(reason("2025Oct").contains("FinancialOct"));
        assert!(reason("2025NovQ1").contains("QuarterlyNov"));
        assert!(reason("2026W").contains("is not a DHIS2 period identifier"));
        assert_eq!(reason("202613"), "\"202613\": the month must be 01-12");
        assert_eq!(reason("2026Q5"), "\"2026Q5\": the quarter must be Q1-Q4");
        assert_eq!(reason("1850Q1"), "\"1850Q1\": year 1850 is outside 1990-2100");
        assert!(reason("2026-Q2").starts_with("\"2026-Q2\" is not a DHIS2 period identifier"));
        assert!(reason("Q2").contains("is not a DHIS2 period identifier"));
        assert!(reason("").contains("is not a DHIS2 period identifier"));
    }

    const GOOD: &str = r#"{
  "dataSet": "NEET_QUARTERLY",
  "completeDate": "2026-07-15",
  "dataValues": [
    {
      "dataElement": "NEET_16_18",
      "period": "2026Q2",
      "orgUnit": "AREA_EAST",
      "categoryOptionCombo": "HllvX50cXC0",
      "value": "7.1",
      "storedBy": "connexions-export",
      "comment": "includes late returns",
      "followup": false
    },
    {"dataElement": "NEET_16_18", "period": "2026Q1", "orgUnit": "AREA_SOUTH", "value": 5.9}
  ]
}"#;

    #[test]
    fn good_data_values_become_observations_with_their_lines() {
        let (records, errors) = split(read_all(Format::Dhis2, GOOD).unwrap());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].origin, Origin { line: 5, record: 1 });
        assert_eq!(
            records[0].observation,
            pb::Observation {
                indicator_code: "NEET_16_18".into(),
                locality_code: "AREA_EAST".into(),
                period: Some(p(PeriodType::Quarter, 2026, 2)),
                value: 7.1,
                note: "includes late returns".into(),
                ..Default::default()
            }
        );
        assert_eq!(records[1].origin, Origin { line: 15, record: 2 });
        assert_eq!(records[1].observation.value, 5.9);
        assert_eq!(records[1].observation.locality_code, "AREA_SOUTH");
    }

    #[test]
    fn each_kind_of_bad_data_value_is_an_error_naming_its_field() {
        let text = r#"{"dataValues": [
{"dataElement": "NEET_16_18", "period": "2026W05", "orgUnit": "AREA_EAST", "value": "7.1"},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": "seven"},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": ""},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST"},
{"period": "2026Q2", "orgUnit": "AREA_EAST", "value": "1"},
{"dataElement": "NEET_16_18", "period": "2026Q2", "value": "1"},
{"dataElement": 7, "period": "2026Q2", "orgUnit": "AREA_EAST", "value": "1"},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": true},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": "1", "categoryOptionCombo": "FEMALE"},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": "1", "deleted": true},
{"dataElement": "NEET_16_18", "period": "2026Q2", "orgUnit": "AREA_EAST", "value": "1"}
]}"#;
        let (records, errors) = split(read_all(Format::Dhis2, text).unwrap());
        let errors: Vec<(u64, u64, &str, &str)> = errors
            .iter()
            .map(|e| (e.origin.record, e.origin.line, e.field, e.reason.as_str()))
            .collect();
        let weekly = period("2026W05").unwrap_err();
        assert_eq!(
            errors,
            vec![
                (1, 2, "period", weekly.as_str()),
                (2, 3, "value", "\"seven\" is not a number"),
                (3, 4, "value", "is empty"),
                (4, 5, "value", "is missing"),
                (5, 6, "dataElement", "is missing"),
                (6, 7, "orgUnit", "is missing"),
                (7, 8, "dataElement", "must be a string, not 7"),
                (8, 9, "value", "must be a number in a string, not true"),
                (
                    9,
                    10,
                    "categoryOptionCombo",
                    "\"FEMALE\" is not the default combination; the platform takes one value per indicator, \
                     locality and period (export totals)"
                ),
                (
                    10,
                    11,
                    "deleted",
                    "the data value is marked deleted; export without deleted values"
                ),
            ]
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].origin, Origin { line: 12, record: 11 });
    }

    #[test]
    fn set_level_period_and_org_unit_apply_when_they_come_first() {
        let text = r#"{"period": "202603", "orgUnit": "LEEDS", "dataValues": [
            {"dataElement": "LAC_COUNT", "value": "1402"},
            {"dataElement": "LAC_COUNT", "orgUnit": "AREA_SOUTH", "period": "202602", "value": "388"}]}"#;
        let (records, errors) = split(read_all(Format::Dhis2, text).unwrap());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records[0].observation.locality_code, "LEEDS");
        assert_eq!(records[0].observation.period, Some(p(PeriodType::Month, 2026, 3)));
        assert_eq!(records[1].observation.locality_code, "AREA_SOUTH");
        assert_eq!(records[1].observation.period, Some(p(PeriodType::Month, 2026, 2)));

        let late = r#"{"dataValues": [], "period": "202603"}"#;
        let err = format!("{:#}", read_all(Format::Dhis2, late).unwrap_err());
        assert!(
            err.contains("the set-level \"period\" comes after \"dataValues\""),
            "{err}"
        );
    }

    #[test]
    fn a_broken_file_is_refused_with_its_position() {
        let err = |text: &str| format!("{:#}", read_all(Format::Dhis2, text).unwrap_err());
        let truncated = "{\"dataValues\": [\n{\"dataElement\": \"NEET_16_18\", \"value\": \"1\"},\n{\"dataEl";
        let message = err(truncated);
        assert!(
            message.starts_with("the file is not a DHIS2 dataValueSets JSON file: EOF while parsing"),
            "{message}"
        );
        assert!(message.contains("line 3"), "{message}");
        assert!(err("{\"dataSet\": \"X\"}").contains("it has no \"dataValues\" array"));
        assert!(
            err("[1, 2]").contains("expected a dataValueSets object"),
            "{}",
            err("[1, 2]")
        );
        assert!(err("{\"dataValues\": {}}").contains("expected an array of data values"));
        assert!(err("{\"dataValues\": []} trailing").contains("trailing characters"));
        let combo = r#"{"attributeOptionCombo": "PROJECT_X", "dataValues": []}"#;
        assert!(err(combo).contains("attributeOptionCombo \"PROJECT_X\" is not the default"));
    }

    #[test]
    fn a_file_on_one_line_counts_data_values() {
        let text = r#"{"dataValues":[{"dataElement":"A","orgUnit":"B","period":"2026Q1","value":"1"},{"dataElement":"A","orgUnit":"B","period":"2026Q9","value":"1"}]}"#;
        let (_, errors) = split(read_all(Format::Dhis2, text).unwrap());
        assert_eq!(errors[0].origin, Origin { line: 1, record: 2 });
        assert_eq!(Format::Dhis2.locate(errors[0].origin), "dataValue 2 (line 1)");
    }

    #[test]
    fn the_sink_can_stop_the_read() {
        let mut seen = 0;
        let end = read(GOOD.as_bytes(), &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!((end, seen), (ReadEnd::Stopped, 1));
    }
}
