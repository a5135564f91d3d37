//! Turning what indicator-ingest answers into text for a terminal: values in their measure ("9.4%",
//! "12.0 per 1,000", "1,420", "£750,000"), RAG and direction of travel in words, and the tables of
//! `trustctl board` and `trustctl series`. Pure functions, so they are tested without a service.

use std::fmt::Write as _;

use trust_proto::common::v1::{DirectionOfTravel, MeasureType, Rag};
use trust_proto::ingest::v1 as pb;

use crate::commands::timestamp;
use crate::period;

/// `digits` with a comma between each group of three, e.g. "1234567" as "1,234,567".
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A number with `decimals` places and thousands separators: `thousands(1234.5, 1)` is "1,234.5".
pub fn thousands(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text.as_str(), None),
    };
    // "-0.0" is not worth a sign.
    let zero = text.bytes().all(|b| b == b'0' || b == b'.');
    let mut out = String::new();
    if value < 0.0 && !zero {
        out.push('-');
    }
    out.push_str(&group_thousands(whole));
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// Whole numbers without decimals, anything else with one.
fn whole_or_one_place(value: f64) -> String {
    if value.fract() == 0.0 {
        thousands(value, 0)
    } else {
        thousands(value, 1)
    }
}

/// A value in its indicator's measure, as a reader expects to see it.
pub fn value(measure: i32, value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    match MeasureType::try_from(measure) {
        Ok(MeasureType::Percentage) => format!("{}%", thousands(value, 1)),
        Ok(MeasureType::RatePer1000) => format!("{} per 1,000", thousands(value, 1)),
        Ok(MeasureType::RatePer10000) => format!("{} per 10,000", thousands(value, 1)),
        Ok(MeasureType::Count) => whole_or_one_place(value),
        Ok(MeasureType::MoneyPence) => money(value),
        Ok(MeasureType::Days) if value == 1.0 => "1 day".to_owned(),
        Ok(MeasureType::Days) => format!("{} days", whole_or_one_place(value)),
        Ok(MeasureType::Unspecified) | Err(_) => value.to_string(),
    }
}

/// Money held in pence, in pounds: whole pounds when there are no pence ("£750,000"), else "£1,234.56".
fn money(pence: f64) -> String {
    let pence = pence.round();
    let sign = if pence < 0.0 { "-" } else { "" };
    let pounds = pence.abs() / 100.0;
    if pence % 100.0 == 0.0 {
        format!("{sign}£{}", thousands(pounds, 0))
    } else {
        format!("{sign}£{}", thousands(pounds, 2))
    }
}

/// RAG status in words.
pub fn rag(rag: i32) -> &'static str {
    match Rag::try_from(rag) {
        Ok(Rag::Green) => "green",
        Ok(Rag::Amber) => "amber",
        Ok(Rag::Red) => "red",
        Ok(Rag::Unspecified) | Err(_) => "no target",
    }
}

/// The ANSI colour of a RAG status, if it has one.
fn rag_colour(rag: i32) -> Option<&'static str> {
    match Rag::try_from(rag) {
        Ok(Rag::Green) => Some("\x1b[32m"),
        Ok(Rag::Amber) => Some("\x1b[33m"),
        Ok(Rag::Red) => Some("\x1b[1;31m"),
        Ok(Rag::Unspecified) | Err(_) => None,
    }
}

const RESET: &str = "\x1b[0m";

/// Direction of travel, with an arrow and in words: up is better, whatever the indicator's polarity.
pub fn direction(direction: i32) -> &'static str {
    match DirectionOfTravel::try_from(direction) {
        Ok(DirectionOfTravel::Improving) => "↑ improving",
        Ok(DirectionOfTravel::Worsening) => "↓ worsening",
        Ok(DirectionOfTravel::NoChange) => "→ no change",
        Ok(DirectionOfTravel::Unspecified) | Err(_) => "- (no earlier value)",
    }
}

/// Where a board value comes from, in words.
pub fn source(source: i32) -> &'static str {
    match pb::ValueSource::try_from(source) {
        Ok(pb::ValueSource::Reported) => "reported",
        Ok(pb::ValueSource::RolledUp) => "rolled up",
        Ok(pb::ValueSource::Unspecified) | Err(_) => "-",
    }
}

/// Whether to colour what goes to stdout: only a terminal, and not when `NO_COLOR` is set.
pub fn colour_stdout() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How a cell sits in its column.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// One cell: its text, and the colour to show it in (when colour is on).
struct Cell {
    text: String,
    colour: Option<&'static str>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, colour: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell {
            text: text.to_owned(),
            colour: None,
        }
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded. Colour codes go
/// around the text, after padding is worked out, so they do not upset the columns.
fn table(headings: &[(&str, Align)], rows: &[Vec<Cell>], colour: bool) -> String {
    let mut widths: Vec<usize> = headings.iter().map(|(h, _)| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(&cell.text));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<(&str, Option<&'static str>)>| {
        let mut text = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, ((cell, paint), ((_, align), w))) in
            cells.into_iter().zip(headings.iter().zip(&widths)).enumerate()
        {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(w.saturating_sub(width(cell)));
            let painted = match paint {
                Some(code) if colour => format!("{code}{cell}{RESET}"),
                _ => cell.to_owned(),
            };
            match align {
                Align::Right => {
                    text.push_str(&pad);
                    text.push_str(&painted);
                }
                Align::Left if i == last => text.push_str(&painted),
                Align::Left => {
                    text.push_str(&painted);
                    text.push_str(&pad);
                }
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(headings.iter().map(|(h, _)| (*h, None)).collect());
    for row in rows {
        line(row.iter().map(|c| (c.text.as_str(), c.colour)).collect());
    }
    out
}

/// `trustctl board`: one line per indicator and locality, then a count of each status.
pub fn board(rows: &[pb::StatusBoardRow], colour: bool) -> String {
    use Align::{Left, Right};
    let headings = [
        ("INDICATOR", Left),
        ("LOCALITY", Left),
        ("PERIOD", Left),
        ("VALUE", Right),
        ("TARGET", Right),
        ("RAG", Left),
        ("DIRECTION", Left),
        ("SOURCE", Left),
        ("OPEN ESCALATIONS", Left),
    ];
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|row| {
            let mut shown = match row.value {
                _ if row.suppressed => "suppressed".to_owned(),
                Some(v) => value(row.measure, v),
                None => "-".to_owned(),
            };
            if row.outlier {
                shown.push_str(" (outlier)");
            }
            let escalations = if row.open_escalations.is_empty() {
                "-".to_owned()
            } else {
                row.open_escalations.join(", ")
            };
            vec![
                row.indicator_code.as_str().into(),
                row.locality_code.as_str().into(),
                row.period_label.as_str().into(),
                shown.into(),
                row.target
                    .map_or_else(|| "-".to_owned(), |t| value(row.measure, t))
                    .into(),
                Cell {
                    text: rag(row.rag).to_owned(),
                    colour: rag_colour(row.rag),
                },
                direction(row.direction_vs_previous).into(),
                source(row.source).into(),
                escalations.into(),
            ]
        })
        .collect();
    let mut out = table(&headings, &cells, colour);
    let count = |wanted: Rag| rows.iter().filter(|r| r.rag == wanted as i32).count();
    let escalated = rows.iter().filter(|r| !r.open_escalations.is_empty()).count();
    let _ = writeln!(
        out,
        "{} row(s): {} red, {} amber, {} green, {} without a target; {} with open escalations",
        rows.len(),
        count(Rag::Red),
        count(Rag::Amber),
        count(Rag::Green),
        rows.len() - count(Rag::Red) - count(Rag::Amber) - count(Rag::Green),
        escalated
    );
    out
}

/// `trustctl series`: every period of one indicator in one locality, each revision on a line, oldest
/// first (the last of a period is its current value). `measure` formats the values.
pub fn series(series: &pb::Series, measure: i32) -> String {
    use Align::{Left, Right};
    let headings = [
        ("PERIOD", Left),
        ("LOCKED", Left),
        ("REV", Right),
        ("VALUE", Right),
        ("NUMERATOR/DENOMINATOR", Left),
        ("RECORDED (UTC)", Left),
        ("BY", Left),
        ("REASON", Left),
    ];
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    for point in &series.points {
        let label = if point.period_label.is_empty() {
            point
                .period
                .as_ref()
                .map_or_else(|| "?".to_owned(), period::display)
        } else {
            point.period_label.clone()
        };
        for (i, revision) in point.revisions.iter().enumerate() {
            let first = i == 0;
            let counts = match (revision.numerator, revision.denominator) {
                (Some(n), Some(d)) => format!("{} / {}", whole_or_one_place(n), whole_or_one_place(d)),
                (Some(n), None) => format!("{} / -", whole_or_one_place(n)),
                (None, Some(d)) => format!("- / {}", whole_or_one_place(d)),
                (None, None) => "-".to_owned(),
            };
            let by = match (revision.submitted_by.trim(), revision.partner_code.as_str()) {
                ("", "") => "-".to_owned(),
                ("", partner) => partner.to_owned(),
                (who, "") => who.to_owned(),
                (who, partner) => format!("{who} ({partner})"),
            };
            let reason = if revision.correction_reason.trim().is_empty() {
                if first { "first value" } else { "-" }.to_owned()
            } else {
                revision.correction_reason.clone()
            };
            cells.push(vec![
                if first { label.as_str() } else { "" }.into(),
                if !first {
                    ""
                } else if point.locked {
                    "locked"
                } else {
                    "open"
                }
                .into(),
                revision.revision.to_string().into(),
                value(measure, revision.value).into(),
                counts.into(),
                timestamp(revision.recorded_at.as_ref().map(|t| t.seconds)).into(),
                by.into(),
                reason.into(),
            ]);
        }
    }
    let mut out = table(&headings, &cells, false);
    let revisions: usize = series.points.iter().map(|p| p.revisions.len()).sum();
    let corrected = series.points.iter().filter(|p| p.revisions.len() > 1).count();
    let locked = series.points.iter().filter(|p| p.locked).count();
    let _ = writeln!(
        out,
        "{} period(s), {revisions} revision(s); {corrected} period(s) corrected, {locked} locked. Revisions are \
         oldest first: the last of each period is its current value.",
        series.points.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERCENTAGE: i32 = MeasureType::Percentage as i32;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0, 0), "0");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(1000.0, 0), "1,000");
        assert_eq!(thousands(1_234_567.0, 0), "1,234,567");
        assert_eq!(thousands(123_456.78, 2), "123,456.78");
        assert_eq!(thousands(-1234.5, 1), "-1,234.5");
        assert_eq!(thousands(-0.01, 1), "0.0");
        assert_eq!(thousands(999.96, 1), "1,000.0");
        assert_eq!(thousands(f64::NAN, 1), "NaN");
    }

    #[test]
    fn values_are_shown_in_their_measure() {
        assert_eq!(value(PERCENTAGE, 9.4), "9.4%");
        assert_eq!(value(PERCENTAGE, 94.0), "94.0%");
        assert_eq!(value(PERCENTAGE, 9.44), "9.4%");
        assert_eq!(value(MeasureType::RatePer1000 as i32, 12.0), "12.0 per 1,000");
        assert_eq!(
            value(MeasureType::RatePer10000 as i32, 1523.25),
            "1,523.2 per 10,000"
        );
        assert_eq!(value(MeasureType::Count as i32, 1420.0), "1,420");
        assert_eq!(value(MeasureType::Count as i32, 3.0), "3");
        assert_eq!(value(MeasureType::Count as i32, 1420.5), "1,420.5");
        assert_eq!(value(MeasureType::Days as i32, 1.0), "1 day");
        assert_eq!(value(MeasureType::Days as i32, 12.5), "12.5 days");
        assert_eq!(value(MeasureType::Unspecified as i32, 2.5), "2.5");
    }

    #[test]
    fn money_is_shown_in_pounds_from_pence() {
        let money = |pence: f64| value(MeasureType::MoneyPence as i32, pence);
        assert_eq!(money(75_000_000.0), "£750,000");
        assert_eq!(money(123_456.0), "£1,234.56");
        assert_eq!(money(5.0), "£0.05");
        assert_eq!(money(0.0), "£0");
        assert_eq!(money(-1250.0), "-£12.50");
    }

    #[test]
    fn rag_direction_and_source_are_words() {
        assert_eq!(rag(Rag::Red as i32), "red");
        assert_eq!(rag(Rag::Amber as i32), "amber");
        assert_eq!(rag(Rag::Green as i32), "green");
        assert_eq!(rag(Rag::Unspecified as i32), "no target");
        assert_eq!(direction(DirectionOfTravel::Improving as i32), "↑ improving");
        assert_eq!(direction(DirectionOfTravel::Worsening as i32), "↓ worsening");
        assert_eq!(direction(DirectionOfTravel::NoChange as i32), "→ no change");
        assert_eq!(direction(0), "- (no earlier value)");
        assert_eq!(source(pb::ValueSource::Reported as i32), "reported");
        assert_eq!(source(pb::ValueSource::RolledUp as i32), "rolled up");
    }

    fn row(locality: &str, value: Option<f64>, rag: Rag) -> pb::StatusBoardRow {
        pb::StatusBoardRow {
            indicator_code: "NEET_16_18".into(),
            indicator_name: "NEET".into(),
            locality_code: locality.into(),
            locality_name: locality.into(),
            period_label: "2026-Q2".into(),
            value,
            suppressed: value.is_none(),
            target: Some(8.0),
            rag: rag as i32,
            direction_vs_previous: DirectionOfTravel::Worsening as i32,
            source: pb::ValueSource::Reported as i32,
            outlier: false,
            open_escalations: vec![],
            polarity: trust_proto::common::v1::Polarity::LowerIsBetter as i32,
            measure: PERCENTAGE,
        }
    }

    #[test]
    fn the_board_is_a_table_with_words_and_no_colour_unless_asked() {
        let mut red = row("AREA_EAST_NORTH_EAST", Some(9.4), Rag::Red);
        red.open_escalations = vec!["spc-run".into(), "target-breach".into()];
        let mut rolled = row("LEEDS", Some(6.3), Rag::Amber);
        rolled.source = pb::ValueSource::RolledUp as i32;
        rolled.target = Some(6.0);
        rolled.outlier = true;
        rolled.direction_vs_previous = DirectionOfTravel::Improving as i32;
        let mut hidden = row("CLUSTER_MORLEY", None, Rag::Unspecified);
        hidden.target = None;
        let text = board(&[red, rolled, hidden], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "INDICATOR   LOCALITY              PERIOD            VALUE  TARGET  RAG        DIRECTION    SOURCE     \
             OPEN ESCALATIONS"
        );
        assert_eq!(
            lines[1],
            "NEET_16_18  AREA_EAST_NORTH_EAST  2026-Q2            9.4%    8.0%  red        ↓ worsening  reported   \
             spc-run, target-breach"
        );
        assert_eq!(
            lines[2],
            "NEET_16_18  LEEDS                 2026-Q2  6.3% (outlier)    6.0%  amber      ↑ improving  rolled up  -"
        );
        assert_eq!(
            lines[3],
            "NEET_16_18  CLUSTER_MORLEY        2026-Q2      suppressed       -  no target  ↓ worsening  reported   -"
        );
        assert_eq!(
            lines[4],
            "3 row(s): 1 red, 1 amber, 0 green, 1 without a target; 1 with open escalations"
        );
        assert!(!text.contains('\x1b'));

        let coloured = board(&[row("LEEDS", Some(9.4), Rag::Red)], true);
        assert!(coloured.contains("\x1b[1;31mred\x1b[0m"), "{coloured}");
        // The colour codes do not move the columns.
        let plain = board(&[row("LEEDS", Some(9.4), Rag::Red)], false);
        assert_eq!(coloured.replace("\x1b[1;31m", "").replace("\x1b[0m", ""), plain);
    }

    #[test]
    fn the_series_shows_every_revision_with_who_when_and_why() {
        let revision = |number: u32, value: f64, by: &str, reason: &str, seconds: i64| {
            let mut revision = pb::Revision {
                revision: number,
                value,
                numerator: Some((value * 10.0).round()),
                denominator: Some(1000.0),
                note: String::new(),
                partner_code: "connexions".into(),
                batch_id: format!("b{number}"),
                submitted_by: by.into(),
                correction_reason: reason.into(),
                recorded_at: Some(Default::default()),
            };
            if let Some(at) = revision.recorded_at.as_mut() {
                at.seconds = seconds;
            }
            revision
        };
        let series_of = pb::Series {
            indicator_code: "NEET_16_18".into(),
            locality_code: "AREA_SOUTH".into(),
            points: vec![
                pb::SeriesPoint {
                    period: None,
                    period_label: "2026-Q1".into(),
                    revisions: vec![
                        revision(1, 6.4, "Data officer", "", 1_775_000_000),
                        revision(2, 6.8, "", "late September guarantee returns", 1_776_000_000),
                    ],
                    locked: true,
                },
                pb::SeriesPoint {
                    period: None,
                    period_label: "2026-Q2".into(),
                    revisions: vec![revision(1, 5.9, "Data officer", "", 1_780_000_000)],
                    locked: false,
                },
            ],
        };
        let text = series(&series_of, PERCENTAGE);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("PERIOD   LOCKED  REV  VALUE  NUMERATOR/DENOMINATOR"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "2026-Q1  locked    1   6.4%  64 / 1,000             2026-03-31T23:33:20Z  Data officer (connexions)  \
             first value"
        );
        assert_eq!(
            lines[2],
            "                   2   6.8%  68 / 1,000             2026-04-12T13:20:00Z  connexions                 \
             late September guarantee returns"
        );
        assert!(lines[3].starts_with("2026-Q2  open      1   5.9%"), "{text}");
        assert_eq!(
            lines[4],
            "2 period(s), 3 revision(s); 1 period(s) corrected, 1 locked. Revisions are oldest first: the last \
             of each period is its current value."
        );
    }
}
