//! CSV submission files.
//!
//! ```text
//! indicator_code,locality_code,period,value,numerator,denominator,note,correction_reason
//! NEET_16_18,AREA_EAST,2026-Q2,7.1,142,2000,,
//! NEET_16_18,AREA_SOUTH,2026-Q2,5.9,,,"includes late returns",
//! ```
//!
//! The header row names the columns, in any order. `indicator_code`, `locality_code`, `period` (`2026-03`,
//! `2026-Q2`, `AY2025/26`, `FY2025/26`) and `value` are required; `numerator`, `denominator`, `note` and
//! `correction_reason` may be left out or left empty. Spaces around a field are ignored. A column the
//! platform does not know refuses the file, so a misspelt optional column cannot be dropped unseen.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use anyhow::{Context as _, Result, anyhow, bail};
use trust_proto::ingest::v1 as pb;

use super::{Item, Origin, ReadEnd, Record, RecordError, parse_number};
use crate::period;

/// The columns, required first.
pub const COLUMNS: [&str; 8] = [
    "indicator_code",
    "locality_code",
    "period",
    "value",
    "numerator",
    "denominator",
    "note",
    "correction_reason",
];
const REQUIRED: usize = 4;

/// Where each known column is in the file.
struct Columns {
    /// Index in the file of each of `COLUMNS`, if present.
    at: [Option<usize>; COLUMNS.len()],
    /// The header's fields, by index in the file.
    names: Vec<&'static str>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Columns> {
        if header.iter().all(str::is_empty) {
            bail!(
                "the file has no header row; the first line must name the columns: {}",
                COLUMNS.join(",")
            );
        }
        let mut at = [None; COLUMNS.len()];
        let mut names = Vec::with_capacity(header.len());
        for (index, name) in header.iter().enumerate() {
            let Some(known) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) else {
                bail!(
                    "the header names a column {name:?} the platform does not take; the columns are {} \
                     (the last four optional)",
                    COLUMNS.join(", ")
                );
            };
            if at[known].replace(index).is_some() {
                bail!("the header names the column {} twice", COLUMNS[known]);
            }
            names.push(COLUMNS[known]);
        }
        let missing: Vec<&str> = COLUMNS[..REQUIRED]
            .iter()
            .zip(&at)
            .filter(|(_, index)| index.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            bail!(
                "the header has no {} column{}; the required columns are {}",
                missing.join(", "),
                if missing.len() == 1 { "" } else { "s" },
                COLUMNS[..REQUIRED].join(", ")
            );
        }
        Ok(Columns { at, names })
    }

    /// A column's text in a row: `Ok(None)` when the column is optional and absent from the header or
    /// empty in the row.
    fn get<'r>(&self, row: &'r csv::StringRecord, column: usize) -> Result<Option<&'r str>, RowError> {
        let name = COLUMNS[column];
        let Some(index) = self.at[column] else {
            return Ok(None);
        };
        match row.get(index) {
            Some("") if column < REQUIRED => Err((name, "is empty".to_owned())),
            Some("") => Ok(None),
            Some(text) => Ok(Some(text)),
            None => Err((
                name,
                format!(
                    "is missing: the row has {} field{}, the header names {}",
                    row.len(),
                    if row.len() == 1 { "" } else { "s" },
                    self.names.len()
                ),
            )),
        }
    }

    fn required<'r>(&self, row: &'r csv::StringRecord, column: usize) -> Result<&'r str, RowError> {
        self.get(row, column)?
            .ok_or_else(|| (COLUMNS[column], "is missing".to_owned()))
    }

    fn number(&self, row: &csv::StringRecord, column: usize) -> Result<Option<f64>, RowError> {
        self.get(row, column)?
            .map(|text| parse_number(text).map_err(|reason| (COLUMNS[column], reason)))
            .transpose()
    }

    fn observation(&self, row: &csv::StringRecord) -> Result<pb::Observation, RowError> {
        if row.len() > self.names.len() {
            return Err((
                "record",
                format!(
                    "has {} fields but the header names {} columns (a comma in a field needs the field in \
                     double quotes)",
                    row.len(),
                    self.names.len()
                ),
            ));
        }
        let indicator_code = self.required(row, 0)?;
        let locality_code = self.required(row, 1)?;
        let period = period::parse(self.required(row, 2)?).map_err(|reason| ("period", reason))?;
        let value = self.number(row, 3)?.ok_or(("value", "is missing".to_owned()))?;
        Ok(pb::Observation {
            indicator_code: indicator_code.to_owned(),
            locality_code: locality_code.to_owned(),
            period: Some(period),
            value,
            numerator: self.number(row, 4)?,
            denominator: self.number(row, 5)?,
            note: self.get(row, 6)?.unwrap_or_default().to_owned(),
            correction_reason: self.get(row, 7)?.unwrap_or_default().to_owned(),
        })
    }
}

/// A field at fault and why.
type RowError = (&'static str, String);

/// Finds the line a record starts on. The csv crate's own line numbers skip blank lines and miscount CRLF
/// files, but its byte offsets are right: a record's offset is where parsing of it began, which is the
/// record's first byte or, with CRLF endings or blank lines before it, the line endings in front of it. So
/// the bytes read are kept from the current record's offset on (the record and the reader's read-ahead
/// buffer, a few kilobytes), and the newlines before it counted.
#[derive(Default)]
struct Lines {
    /// Bytes read from `start` on.
    window: VecDeque<u8>,
    start: u64,
    /// Newlines before `start`.
    newlines: u64,
}

impl Lines {
    /// The 1-based line of the first byte at or after `offset` that is not a line ending.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.start < offset {
            match self.window.pop_front() {
                Some(byte) => {
                    self.newlines += u64::from(byte == b'\n');
                    self.start += 1;
                }
                None => break,
            }
        }
        let mut line = self.newlines + 1;
        for &byte in &self.window {
            match byte {
                b'\n' => line += 1,
                b'\r' => {}
                _ => break,
            }
        }
        line
    }
}

/// Passes the file through, keeping what `Lines` needs.
struct Tracking<R> {
    inner: R,
    lines: Rc<RefCell<Lines>>,
}

impl<R: Read> Read for Tracking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.lines.borrow_mut().window.extend(&buf[..n]);
        Ok(n)
    }
}

/// Read a CSV submission file, handing each data row to `sink`.
pub fn read(input: impl Read, sink: &mut dyn FnMut(Item) -> ControlFlow<()>) -> Result<ReadEnd> {
    let lines = Rc::new(RefCell::new(Lines::default()));
    let input = Tracking {
        inner: input,
        lines: Rc::clone(&lines),
    };
    let line_of =
        |position: Option<&csv::Position>| position.map_or(0, |p| lines.borrow_mut().line_at(p.byte()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers().context("reading the header row")?.clone();
    let columns = Columns::from_header(&header)?;
    let mut row = csv::StringRecord::new();
    let mut number = 0_u64;
    loop {
        let item = match reader.read_record(&mut row) {
            Ok(false) => return Ok(ReadEnd::Finished),
            Ok(true) => {
                number += 1;
                let origin = Origin {
                    line: line_of(row.position()),
                    record: number,
                };
                match columns.observation(&row) {
                    Ok(observation) => Item::Record(Record { origin, observation }),
                    Err((field, reason)) => Item::Invalid(RecordError {
                        origin,
                        field,
                        reason,
                    }),
                }
            }
            Err(err) => match err.kind() {
                csv::ErrorKind::Utf8 { pos, err } => {
                    number += 1;
                    let origin = Origin {
                        line: line_of(pos.as_ref()),
                        record: number,
                    };
                    Item::Invalid(RecordError {
                        origin,
                        field: columns.names.get(err.field()).copied().unwrap_or("record"),
                        reason: "is not UTF-8 text (save the file as UTF-8)".to_owned(),
                    })
                }
                _ => {
                    let at = err
                        .position()
                        .map(|p| format!(" at line {}", p.line()))
                        .unwrap_or_default();
                    return Err(anyhow!(err).context(format!("reading the file{at}")));
                }
            },
        };
        if sink(item).is_break() {
            return Ok(ReadEnd::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Format, read_all};
    use trust_proto::common::v1::{Period, PeriodType};

    fn quarter(year: i32, number: i32) -> Option<Period> {
        Some(Period {
            r#type: PeriodType::Quarter as i32,
            year,
            number,
        })
    }

    fn errors(items: &[Item]) -> Vec<(u64, &'static str, String)> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Invalid(e) => Some((e.origin.line, e.field, e.reason.clone())),
                Item::Record(_) => None,
            })
            .collect()
    }

    fn records(items: &[Item]) -> Vec<&Record> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Record(r) => Some(r),
                Item::Invalid(_) => None,
            })
            .collect()
    }

    #[test]
    fn good_rows_become_observations() {
        let text = "indicator_code,locality_code,period,value,numerator,denominator,note,correction_reason\n\
                    NEET_16_18,AREA_EAST,2026-Q2,7.1,142,2000,,\n\
                    NEET_16_18 , AREA_SOUTH ,2026-Q1,5.9,,,\"late returns, included\",\"recount\"\n";
        let items = read_all(Format::Csv, text).unwrap();
        let records = records(&items);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].origin, Origin { line: 2, record: 1 });
        assert_eq!(
            records[0].observation,
            pb::Observation {
                indicator_code: "NEET_16_18".into(),
                locality_code: "AREA_EAST".into(),
                period: quarter(2026, 2),
                value: 7.1,
                numerator: Some(142.0),
                denominator: Some(2000.0),
                note: String::new(),
                correction_reason: String::new(),
            }
        );
        let second = &records[1].observation;
        assert_eq!(records[1].origin, Origin { line: 3, record: 2 });
        assert_eq!(
            (second.locality_code.as_str(), second.period),
            ("AREA_SOUTH", quarter(2026, 1))
        );
        assert_eq!((second.numerator, second.denominator), (None, None));
        assert_eq!(second.note, "late returns, included");
        assert_eq!(second.correction_reason, "recount");
    }

    #[test]
    fn optional_columns_may_be_left_out_and_columns_come_in_any_order() {
        let text = "\u{feff}period,value,Locality_Code,indicator_code\r\n\
                    2026-03,12,CLUSTER_A,LAC_COUNT\r\n\
                    \r\n\
                    FY2025/26,4.5,LEEDS,INFANT_MORTALITY\r\n";
        let items = read_all(Format::Csv, text).unwrap();
        assert!(errors(&items).is_empty(), "{items:?}");
        let records = records(&items);
        assert_eq!(records[0].observation.indicator_code, "LAC_COUNT");
        assert_eq!(records[0].observation.locality_code, "CLUSTER_A");
        assert_eq!(records[0].observation.value, 12.0);
        // A blank line is skipped but still counted in line numbers.
        assert_eq!(records[1].origin, Origin { line: 4, record: 2 });
        assert_eq!(records[1].observation.period.map(|p| p.year), Some(2025));
    }

    #[test]
    fn each_kind_of_bad_row_is_an_error_naming_its_line_and_field() {
        let text = "indicator_code,locality_code,period,value,numerator,note\n\
                    NEET_16_18,AREA_EAST,2026-Q1,7.1,,\n\
                    NEET_16_18,AREA_EAST,2026-Q7,7.1,,\n\
                    NEET_16_18,AREA_EAST,2026-Q2,seven,,\n\
                    NEET_16_18,AREA_EAST,2026-Q2,NaN,,\n\
                    NEET_16_18,AREA_EAST,2026-Q2,7.1,many,\n\
                    NEET_16_18,AREA_EAST,2026-Q2\n\
                    ,AREA_EAST,2026-Q2,7.1,,\n\
                    NEET_16_18,AREA_EAST,2026-Q2,7.1,,note,extra\n\
                    NEET_16_18,AREA_EAST,2026-Q2,,,\n\
                    NEET_16_18,AREA_SOUTH,2026-Q2,6.0,,\n";
        let items = read_all(Format::Csv, text).unwrap();
        assert_eq!(items.len(), 10, "no row is dropped");
        let errors = errors(&items);
        assert_eq!(
            errors,
            vec![
                (3, "period", "\"2026-Q7\": the quarter must be Q1-Q4".to_owned()),
                (4, "value", "\"seven\" is not a number".to_owned()),
                (5, "value", "\"NaN\" is not a finite number".to_owned()),
                (6, "numerator", "\"many\" is not a number".to_owned()),
                (
                    7,
                    "value",
                    "is missing: the row has 3 fields, the header names 6".to_owned()
                ),
                (8, "indicator_code", "is empty".to_owned()),
                (
                    9,
                    "record",
                    "has 7 fields but the header names 6 columns (a comma in a field needs the field in \
                     double quotes)"
                        .to_owned()
                ),
                (10, "value", "is empty".to_owned()),
            ]
        );
        let lines: Vec<u64> = records(&items).iter().map(|r| r.origin.line).collect();
        assert_eq!(lines, vec![2, 11]);
    }

    #[test]
    fn a_quoted_field_over_two_lines_keeps_later_line_numbers_right() {
        let text = "indicator_code,locality_code,period,value,note\n\
                    NEET_16_18,AREA_EAST,2026-Q1,7.1,\"first line\nsecond line\"\n\
                    NEET_16_18,AREA_EAST,2026-Q9,7.1,\n";
        let items = read_all(Format::Csv, text).unwrap();
        assert_eq!(errors(&items)[0].0, 4);
        assert_eq!(records(&items)[0].observation.note, "first line\nsecond line");
    }

    #[test]
    fn line_numbers_count_blank_lines_and_crlf_endings() {
        for ending in ["\n", "\r\n"] {
            let text = [
                "indicator_code,locality_code,period,value",
                "A,B,2026-Q1,1",
                "",
                "",
                "A,B,2026-Q9,1",
            ]
            .join(ending)
                + ending;
            let items = read_all(Format::Csv, &text).unwrap();
            assert_eq!(records(&items)[0].origin.line, 2, "{ending:?}");
            assert_eq!(errors(&items)[0].0, 5, "{ending:?}");
        }
    }

    #[test]
    fn line_numbers_hold_past_the_read_ahead_buffer() {
        let mut text = "indicator_code,locality_code,period,value,note\n".to_owned();
        for line in 2..=20_000 {
            let note = if line % 7 == 0 { "\"two\nlines\"" } else { "" };
            let period = if line == 19_999 { "2026-Q9" } else { "2026-Q1" };
            text.push_str(&format!("A,B,{period},1,{note}\n"));
            if line % 1000 == 0 {
                text.push('\n');
            }
        }
        let items = read_all(Format::Csv, &text).unwrap();
        let bad = errors(&items);
        // Every 7th record takes two lines and every 1000th is followed by a blank line.
        let physical = |record: u64| {
            let row = record + 1;
            row + (row - 1) / 7 + (row - 1) / 1000
        };
        let record = 19_998;
        assert_eq!(
            bad,
            vec![(
                physical(record),
                "period",
                "\"2026-Q9\": the quarter must be Q1-Q4".to_owned()
            )]
        );
        let last = records(&items).last().map(|r| r.origin).unwrap();
        assert_eq!(
            last,
            Origin {
                line: physical(19_999),
                record: 19_999
            }
        );
    }

    #[test]
    fn a_row_that_is_not_utf8_is_an_error_and_reading_goes_on() {
        let mut bytes = b"indicator_code,locality_code,period,value,note\n".to_vec();
        bytes.extend_from_slice(b"NEET_16_18,AREA_EAST,2026-Q1,7.1,caf\xe9\n");
        bytes.extend_from_slice(b"NEET_16_18,AREA_EAST,2026-Q2,7.2,\n");
        let mut items = Vec::new();
        read(bytes.as_slice(), &mut |item| {
            items.push(item);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            errors(&items),
            vec![(2, "note", "is not UTF-8 text (save the file as UTF-8)".to_owned())]
        );
        assert_eq!(records(&items)[0].origin, Origin { line: 3, record: 2 });
    }

    #[test]
    fn a_bad_header_refuses_the_file() {
        let err = |text: &str| format!("{:#}", read_all(Format::Csv, text).unwrap_err());
        assert!(err("").contains("no header row"), "{}", err(""));
        assert_eq!(
            err("indicator_code,locality_code,value\n"),
            "the header has no period column; the required columns are indicator_code, locality_code, \
             period, value"
        );
        assert!(
            err("indicator_code,locality_code,period,value,corection_reason\n")
                .starts_with("the header names a column \"corection_reason\" the platform does not take"),
        );
        assert_eq!(
            err("indicator_code,locality_code,period,value,value\n"),
            "the header names the column value twice"
        );
    }

    #[test]
    fn the_sink_can_stop_the_read() {
        let text = "indicator_code,locality_code,period,value\nA,B,2026-Q1,1\nA,B,2026-Q2,2\n";
        let mut seen = 0;
        let end = read(text.as_bytes(), &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!((end, seen), (ReadEnd::Stopped, 1));
    }
}
