//! Reading partners' submission files, one record at a time: CSV ([`csv_file`]) and DHIS2 `dataValueSets`
//! JSON ([`dhis2`]). Neither reader holds more than the record in hand, so a file of millions of rows is read
//! in constant memory.
//!
//! A reader hands each record to a sink as an [`Item`]: an observation ready to send, or a [`RecordError`]
//! saying where the record is, which field is at fault and why (a period that is not a period, a value that
//! is not a number, a missing column). Records that cannot be parsed are never dropped silently. A problem
//! with the file as a whole (it cannot be read, its header or JSON structure is broken) ends the read with an
//! error instead.

pub mod csv_file;
pub mod dhis2;

use std::fmt;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Result;
use trust_proto::ingest::v1 as pb;

/// The kind of a submission file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CSV with a header row: indicator_code, locality_code, period, value and optionally numerator,
    /// denominator, note, correction_reason.
    Csv,
    /// DHIS2 `dataValueSets` JSON, mapped by codes (dataElement, orgUnit, period, value, comment).
    Dhis2,
}

impl Format {
    /// The format a file's extension implies: `.csv` or `.json`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Dhis2),
            _ => None,
        }
    }

    /// How a person finds a record in a file of this format: `line 3` in a CSV file, `dataValue 2 (line 9)`
    /// in a DHIS2 file (the line of its opening brace; a file on one line has every value on line 1).
    pub fn locate(self, origin: Origin) -> String {
        match self {
            Format::Csv => format!("line {}", origin.line),
            Format::Dhis2 => format!("dataValue {} (line {})", origin.record, origin.line),
        }
    }

    /// What a run of records is called, for a chunk's extent.
    pub fn locate_range(self, first: Origin, last: Origin) -> String {
        match self {
            Format::Csv => format!("lines {}-{}", first.line, last.line),
            Format::Dhis2 => format!("dataValues {}-{}", first.record, last.record),
        }
    }

    /// The name this format gives a field of `trust.ingest.v1.Observation`, so a receipt's rejection points
    /// at the column or key the partner wrote.
    pub fn field_name(self, observation_field: &str) -> &str {
        match (self, observation_field) {
            (Format::Dhis2, "indicator_code") => "dataElement",
            (Format::Dhis2, "locality_code") => "orgUnit",
            (Format::Dhis2, "note") => "comment",
            (_, field) => field,
        }
    }

    /// Read a file of this format, handing every record to `sink`.
    pub fn read(self, input: impl Read, sink: &mut dyn FnMut(Item) -> ControlFlow<()>) -> Result<ReadEnd> {
        match self {
            Format::Csv => csv_file::read(input, sink),
            Format::Dhis2 => dhis2::read(input, sink),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::Dhis2 => "DHIS2 dataValueSets JSON",
        })
    }
}

/// Where a record is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Origin {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// The record's 1-based number among the file's records (CSV data rows, DHIS2 dataValues).
    pub record: u64,
}

/// One record of a file, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub origin: Origin,
    pub observation: pb::Observation,
}

/// A record that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub origin: Origin,
    /// The column or key at fault, as the file names it.
    pub field: &'static str,
    pub reason: String,
}

/// What a reader hands its sink.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Record),
    Invalid(RecordError),
}

/// How a read ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// Every record was read.
    Finished,
    /// The sink asked to stop.
    Stopped,
}

/// A number as a partner writes it: finite, in plain decimal or exponent notation.
pub(crate) fn parse_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(number) if number.is_finite() => Ok(number),
        Ok(_) => Err(format!("{text:?} is not a finite number")),
        Err(_) if text.contains(',') => Err(format!(
            "{text:?} is not a number (write decimals with a point and no thousands separators)"
        )),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
pub(crate) fn read_all(format: Format, text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let end = format.read(text.as_bytes(), &mut |item| {
        items.push(item);
        ControlFlow::Continue(())
    })?;
    assert_eq!(end, ReadEnd::Finished);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(Format::from_path(Path::new("q2.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("dir/Q2.JSON")), Some(Format::Dhis2));
        assert_eq!(Format::from_path(Path::new("q2.txt")), None);
        assert_eq!(Format::from_path(Path::new("q2")), None);
    }

    #[test]
    fn numbers_must_be_finite_decimals() {
        assert_eq!(parse_number("7.1"), Ok(7.1));
        assert_eq!(parse_number("-2"), Ok(-2.0));
        assert_eq!(parse_number("1e3"), Ok(1000.0));
        assert_eq!(
            parse_number("NaN"),
            Err("\"NaN\" is not a finite number".to_owned())
        );
        assert_eq!(
            parse_number("inf"),
            Err("\"inf\" is not a finite number".to_owned())
        );
        assert_eq!(parse_number("seven"), Err("\"seven\" is not a number".to_owned()));
        assert!(parse_number("7,1").unwrap_err().contains("with a point"));
    }

    #[test]
    fn records_are_located_as_the_format_numbers_them() {
        let origin = Origin { line: 9, record: 2 };
        assert_eq!(Format::Csv.locate(origin), "line 9");
        assert_eq!(Format::Dhis2.locate(origin), "dataValue 2 (line 9)");
        assert_eq!(Format::Dhis2.field_name("indicator_code"), "dataElement");
        assert_eq!(Format::Csv.field_name("indicator_code"), "indicator_code");
        assert_eq!(Format::Dhis2.field_name("value"), "value");
    }
}
