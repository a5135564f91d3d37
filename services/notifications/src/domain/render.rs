//! What the email says. One rendering per event, the same for every recipient, so what was sent can be
//! stored once per delivery and shown later exactly as sent.

use time::OffsetDateTime;
use time::macros::format_description;
use trust_proto::alerting::v1::{IndicatorBreach, Severity};
use trust_proto::common::v1::{MeasureType, Period, PeriodType, Polarity, Rag};

use super::event::Escalation;

/// A plain-text email, before it has an addressee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub body_text: String,
}

/// Render the email for an escalation event. An indicator breach names the indicator and locality (name and
/// code), the period, the value and target formatted for the measure, which direction is better, and the
/// deduplication key, so a reader can act without opening another system.
pub fn render(event: &Escalation) -> Email {
    let indicator = event.indicator();
    let mut body = String::new();
    let subject = match event {
        Escalation::Raised(raised) => {
            let tag = indicator
                .and_then(|b| rag_label(b.rag()))
                .unwrap_or_else(|| severity_label(raised.severity()));
            body.push_str("An escalation has been raised and needs attention.\n\n");
            push_summary(&mut body, &raised.summary);
            format!("[{tag}] {}", headline(event, indicator))
        }
        Escalation::Resolved(_) => {
            body.push_str("An escalation has cleared: no further action is needed on it.\n\n");
            push_summary(&mut body, event.summary());
            format!("[Cleared] {}", headline(event, indicator))
        }
    };

    if let Some(breach) = indicator {
        push_breach(&mut body, breach, event);
    }
    if let Escalation::Raised(raised) = event {
        line(&mut body, "Severity", severity_label(raised.severity()));
    }
    let when = event
        .occurred_at()
        .map_or_else(|| "not stated".to_owned(), format_time);
    match event {
        Escalation::Raised(_) => line(&mut body, "Raised at", &when),
        Escalation::Resolved(_) => line(&mut body, "Resolved at", &when),
    }
    line(
        &mut body,
        "Raised by",
        &format!(
            "{} (rule: {})",
            or_unknown(event.source()),
            or_unknown(event.rule())
        ),
    );
    line(&mut body, "Reference", event.dedup_key());
    line(&mut body, "Occurrence", event.occurrence_id());
    body.push('\n');
    wrap_into(
        &mut body,
        "",
        "",
        "You receive this because the staff directory names you as responsible for this indicator or \
         locality. Quote the reference above in any reply.",
    );
    Email {
        subject,
        body_text: body,
    }
}

/// One line for the subject: the indicator, locality, period, value and target, or the summary.
pub(crate) fn headline(event: &Escalation, indicator: Option<&IndicatorBreach>) -> String {
    match indicator {
        Some(b) => {
            let measure = b.measure();
            let now = match event {
                Escalation::Raised(_) => "",
                Escalation::Resolved(_) => "now ",
            };
            format!(
                "{} ({}), {} ({}), {}: {now}{} against a target of {}",
                b.indicator_name,
                b.indicator_code,
                b.locality_name,
                b.locality_code,
                period_label(b),
                format_value(b.value, measure),
                format_value(b.target, measure),
            )
        }
        None if !event.summary().trim().is_empty() => event.summary().trim().to_owned(),
        None => event.dedup_key().to_owned(),
    }
}

fn push_summary(body: &mut String, summary: &str) {
    let summary = summary.trim();
    if !summary.is_empty() {
        wrap_into(body, "", "", summary);
        body.push('\n');
    }
}

fn push_breach(body: &mut String, b: &IndicatorBreach, event: &Escalation) {
    let measure = b.measure();
    let indicator_code = format!("({})", b.indicator_code);
    fact(body, "Indicator", &[&b.indicator_name, &indicator_code]);
    let locality_code = format!("({})", b.locality_code);
    fact(body, "Locality", &[&b.locality_name, &locality_code]);
    line(body, "Period", &period_label(b));
    let value_label = match event {
        Escalation::Raised(_) => "Value",
        Escalation::Resolved(_) => "Latest value",
    };
    line(body, value_label, &format_value(b.value, measure));
    let target = format_value(b.target, measure);
    let polarity = format!("({})", polarity_phrase(b.polarity()));
    fact(body, "Target", &[&target, &polarity]);
    if let Some(band) = amber_band(b) {
        line(body, "Amber band", &band);
    }
    line(body, "Status", rag_label(b.rag()).unwrap_or("not rated"));
    if !b.partner_code.is_empty() {
        line(body, "Submitted by", &b.partner_code);
    }
    if !b.owner_partner_code.is_empty() {
        line(body, "Accountable", &b.owner_partner_code);
    }
}

/// "within 0.5 percentage points of the target", when the breach has an amber band.
pub(crate) fn amber_band(b: &IndicatorBreach) -> Option<String> {
    if b.amber_tolerance <= 0.0 {
        return None;
    }
    let tolerance = match b.measure() {
        MeasureType::Percentage => format!("{:.1} percentage points", b.amber_tolerance),
        other => format_value(b.amber_tolerance, other),
    };
    Some(format!("within {tolerance} of the target"))
}

/// Longest line of text we write. Plain-text mail convention, and lines under 76 bytes let the email go
/// as readable 7bit/8bit text instead of quoted-printable.
pub const LINE_WIDTH: usize = 72;

fn line(body: &mut String, label: &str, value: &str) {
    fact(body, label, &[value]);
}

/// A labelled fact whose parts (e.g. a name and its code) are never split across lines unless a part alone
/// is too long for a line. Short facts read as a table with aligned labels; a fact whose parts do not fit
/// beside the label goes under it, indented, so names and codes stay whole and searchable.
fn fact(body: &mut String, label: &str, parts: &[&str]) {
    const LABEL_WIDTH: usize = 14;
    let labelled = format!("{:<width$}", format!("{label}:"), width = LABEL_WIDTH);
    let fits_beside = parts
        .iter()
        .all(|p| LABEL_WIDTH + p.chars().count() <= LINE_WIDTH);
    let (first, rest) = if fits_beside {
        (labelled, " ".repeat(LABEL_WIDTH))
    } else {
        body.push_str(label);
        body.push_str(":\n");
        ("  ".to_owned(), "  ".to_owned())
    };
    let mut current = first;
    let mut empty = true;
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if !empty && current.chars().count() + 1 + part.chars().count() > LINE_WIDTH {
            body.push_str(&current);
            body.push('\n');
            current = rest.clone();
            empty = true;
        }
        if empty && current.chars().count() + part.chars().count() > LINE_WIDTH {
            // Too long even alone: word-wrap this part.
            let mut wrapped = String::new();
            wrap_into(&mut wrapped, &current, &rest, part);
            let (done, last) = wrapped
                .trim_end_matches('\n')
                .rsplit_once('\n')
                .unwrap_or(("", &wrapped));
            if !done.is_empty() {
                body.push_str(done);
                body.push('\n');
            }
            current = last.trim_end_matches('\n').to_owned();
            empty = false;
            continue;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(part);
        empty = false;
    }
    body.push_str(current.trim_end());
    body.push('\n');
}

/// Append `text` word-wrapped at [`LINE_WIDTH`], the first line after `first`, the rest after `rest`. A
/// single word longer than the width (a long reference) is kept whole rather than broken.
fn wrap_into(body: &mut String, first: &str, rest: &str, text: &str) {
    let mut current = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && current.chars().count() + 1 + word.chars().count() > LINE_WIDTH {
            body.push_str(&current);
            body.push('\n');
            current = rest.to_owned();
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    body.push_str(current.trim_end());
    body.push('\n');
}

pub(crate) fn or_unknown(value: &str) -> &str {
    if value.trim().is_empty() { "unknown" } else { value }
}

/// "lower is better" / "higher is better".
pub fn polarity_phrase(polarity: Polarity) -> &'static str {
    match polarity {
        Polarity::LowerIsBetter => "lower is better",
        Polarity::HigherIsBetter => "higher is better",
        Polarity::Unspecified => "direction not set",
    }
}

pub(crate) fn rag_label(rag: Rag) -> Option<&'static str> {
    match rag {
        Rag::Red => Some("Red"),
        Rag::Amber => Some("Amber"),
        Rag::Green => Some("Green"),
        Rag::Unspecified => None,
    }
}

pub(crate) fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Critical",
        Severity::Warning => "Warning",
        Severity::Unspecified => "Escalation",
    }
}

/// The breach's period label, or one made from its period when the sender left the label out.
pub(crate) fn period_label(b: &IndicatorBreach) -> String {
    if !b.period_label.trim().is_empty() {
        return b.period_label.clone();
    }
    b.period
        .as_ref()
        .map_or_else(|| "not stated".to_owned(), format_period)
}

/// Text form of a period: "2026-03", "2026-Q2", "AY2025/26", "FY2025/26".
pub fn format_period(period: &Period) -> String {
    let next = (period.year + 1).rem_euclid(100);
    match period.r#type() {
        PeriodType::Month => format!("{}-{:02}", period.year, period.number),
        PeriodType::Quarter => format!("{}-Q{}", period.year, period.number),
        PeriodType::AcademicYear => format!("AY{}/{next:02}", period.year),
        PeriodType::FinancialYear => format!("FY{}/{next:02}", period.year),
        PeriodType::Unspecified => "not stated".to_owned(),
    }
}

/// A value as people read it for its measure: "9.1%", "12.0 per 1,000", "£1,234.56" (from pence),
/// "1,350" (a count), "12 days".
pub fn format_value(value: f64, measure: MeasureType) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    match measure {
        MeasureType::Percentage => format!("{}%", grouped(value, 1)),
        MeasureType::RatePer1000 => format!("{} per 1,000", grouped(value, 1)),
        MeasureType::RatePer10000 => format!("{} per 10,000", grouped(value, 1)),
        MeasureType::Count => grouped(value, 0),
        MeasureType::MoneyPence => {
            // Whole pence in integers, so no binary fraction shows up in the pounds.
            // Finite here, and `as` saturates at i64's range.
            let pence = value.round() as i64;
            let (pounds, pence_part) = (pence.unsigned_abs() / 100, pence.unsigned_abs() % 100);
            let sign = if pence < 0 { "-" } else { "" };
            format!("{sign}£{}.{pence_part:02}", group_digits(&pounds.to_string()))
        }
        MeasureType::Days => {
            let days = if value.fract() == 0.0 {
                grouped(value, 0)
            } else {
                grouped(value, 1)
            };
            if days == "1" {
                "1 day".to_owned()
            } else {
                format!("{days} days")
            }
        }
        MeasureType::Unspecified => {
            if value.fract() == 0.0 {
                grouped(value, 0)
            } else {
                grouped(value, 2)
            }
        }
    }
}

/// `value` rounded half away from zero to `decimals` places (as people round, unlike `format!`'s
/// half-to-even), with thousands separated by commas; no sign on a rounded zero.
fn grouped(value: f64, decimals: usize) -> String {
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(0));
    let rounded = (value * scale).round() / scale;
    let text = format!("{rounded:.decimals$}");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (rest.chars().any(|c| c.is_ascii_digit() && c != '0'), rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(text.len() + whole.len() / 3 + 1);
    if negative {
        out.push('-');
    }
    out.push_str(&group_digits(whole));
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// "1234567" -> "1,234,567".
fn group_digits(whole: &str) -> String {
    let mut out = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn format_time(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use trust_proto::alerting::v1::{
        EscalationRaised, EscalationResolved, escalation_raised, escalation_resolved,
    };

    fn breach() -> IndicatorBreach {
        IndicatorBreach {
            indicator_code: "NEET_16_18".into(),
            indicator_name: "Young people aged 16-18 not in education, employment or training".into(),
            locality_code: "AREA_EAST".into(),
            locality_name: "East Leeds".into(),
            period: Some(Period {
                r#type: PeriodType::Quarter.into(),
                year: 2026,
                number: 2,
            }),
            period_label: "2026-Q2".into(),
            value: 9.1,
            target: 8.0,
            amber_tolerance: 0.5,
            polarity: Polarity::LowerIsBetter.into(),
            measure: MeasureType::Percentage.into(),
            rag: Rag::Red.into(),
            partner_code: "connexions".into(),
            owner_partner_code: "council".into(),
            ..Default::default()
        }
    }

    fn raised(breach: IndicatorBreach) -> Escalation {
        Escalation::Raised(EscalationRaised {
            dedup_key: "ingest/target-breach/NEET_16_18/AREA_EAST".into(),
            occurrence_id: "0196-occ".into(),
            source: "indicator-ingest".into(),
            rule: "target-breach".into(),
            severity: Severity::Critical.into(),
            summary: "NEET 16-18 in East Leeds is 9.1% against a target of 8.0%".into(),
            raised_at: Some(trust_runtime::grpc::timestamp(datetime!(2026-07-03 09:15 UTC))),
            subject: Some(escalation_raised::Subject::Indicator(breach)),
        })
    }

    #[test]
    fn raised_email_contains_every_fact_needed_to_act() {
        let email = render(&raised(breach()));
        let all = format!("{}\n{}", email.subject, email.body_text);
        for fact in [
            "Young people aged 16-18 not in education, employment or training",
            "NEET_16_18",
            "East Leeds",
            "AREA_EAST",
            "2026-Q2",
            "9.1%",
            "8.0%",
            "lower is better",
            "ingest/target-breach/NEET_16_18/AREA_EAST",
            "0196-occ",
            "Red",
            "Critical",
            "2026-07-03 09:15 UTC",
            "indicator-ingest",
        ] {
            assert!(all.contains(fact), "missing {fact:?} in:\n{all}");
        }
        assert!(email.subject.starts_with("[Red] "), "{}", email.subject);
        assert!(
            email.subject.contains("9.1% against a target of 8.0%"),
            "{}",
            email.subject
        );
        assert!(
            email.body_text.contains("Value:        9.1%"),
            "{}",
            email.body_text
        );
        assert!(
            email.body_text.contains("Target:       8.0% (lower is better)"),
            "{}",
            email.body_text
        );
        assert!(!email.subject.contains('\n'));
        for line in email.body_text.lines() {
            assert!(line.chars().count() <= LINE_WIDTH, "too long: {line:?}");
        }
        // A name too long to sit beside its label goes whole on the line under it.
        assert!(
            email.body_text.contains(
                "Indicator:\n  Young people aged 16-18 not in education, employment or training\n  (NEET_16_18)\n"
            ),
            "{}",
            email.body_text
        );
        assert!(
            email.body_text.contains("Locality:     East Leeds (AREA_EAST)\n"),
            "{}",
            email.body_text
        );
    }

    #[test]
    fn resolved_email_says_it_cleared() {
        let mut b = breach();
        b.value = 7.4;
        b.rag = Rag::Green.into();
        let event = Escalation::Resolved(EscalationResolved {
            dedup_key: "ingest/target-breach/NEET_16_18/AREA_EAST".into(),
            occurrence_id: "0196-occ".into(),
            source: "indicator-ingest".into(),
            rule: "target-breach".into(),
            summary: "back within target".into(),
            resolved_at: None,
            subject: Some(escalation_resolved::Subject::Indicator(b)),
        });
        let email = render(&event);
        assert!(email.subject.starts_with("[Cleared] "), "{}", email.subject);
        assert!(email.subject.contains("now 7.4%"), "{}", email.subject);
        assert!(email.body_text.contains("has cleared"), "{}", email.body_text);
        assert!(
            email
                .body_text
                .contains("ingest/target-breach/NEET_16_18/AREA_EAST")
        );
        assert!(
            email.body_text.contains("Resolved at:  not stated"),
            "{}",
            email.body_text
        );
    }

    #[test]
    fn escalation_without_an_indicator_uses_its_summary() {
        let event = Escalation::Raised(EscalationRaised {
            dedup_key: "qa/audit-overdue/LSCB".into(),
            occurrence_id: "o1".into(),
            severity: Severity::Warning.into(),
            summary: "Case file audit overdue".into(),
            ..Default::default()
        });
        let email = render(&event);
        assert_eq!(email.subject, "[Warning] Case file audit overdue");
        assert!(
            email.body_text.contains("Reference:    qa/audit-overdue/LSCB"),
            "{}",
            email.body_text
        );
        assert!(
            email.body_text.contains("Raised by:    unknown (rule: unknown)"),
            "{}",
            email.body_text
        );
    }

    #[test]
    fn period_label_falls_back_to_the_period() {
        let mut b = breach();
        b.period_label = String::new();
        let email = render(&raised(b));
        assert!(
            email.body_text.contains("Period:       2026-Q2"),
            "{}",
            email.body_text
        );
        let fy = Period {
            r#type: PeriodType::FinancialYear.into(),
            year: 2099,
            number: 0,
        };
        assert_eq!(format_period(&fy), "FY2099/00");
        let month = Period {
            r#type: PeriodType::Month.into(),
            year: 2026,
            number: 3,
        };
        assert_eq!(format_period(&month), "2026-03");
        let ay = Period {
            r#type: PeriodType::AcademicYear.into(),
            year: 2025,
            number: 0,
        };
        assert_eq!(format_period(&ay), "AY2025/26");
    }

    #[test]
    fn values_are_formatted_for_their_measure() {
        assert_eq!(format_value(9.1, MeasureType::Percentage), "9.1%");
        assert_eq!(format_value(35.0, MeasureType::Percentage), "35.0%");
        assert_eq!(format_value(12.0, MeasureType::RatePer1000), "12.0 per 1,000");
        assert_eq!(format_value(41.25, MeasureType::RatePer10000), "41.3 per 10,000");
        assert_eq!(format_value(123_456.0, MeasureType::MoneyPence), "£1,234.56");
        assert_eq!(
            format_value(600_000_000.0, MeasureType::MoneyPence),
            "£6,000,000.00"
        );
        assert_eq!(format_value(-5.0, MeasureType::MoneyPence), "-£0.05");
        assert_eq!(format_value(-123_456.4, MeasureType::MoneyPence), "-£1,234.56");
        assert_eq!(format_value(99.5, MeasureType::MoneyPence), "£1.00");
        assert_eq!(format_value(0.0, MeasureType::MoneyPence), "£0.00");
        assert_eq!(format_value(1350.0, MeasureType::Count), "1,350");
        assert_eq!(format_value(42.0, MeasureType::Count), "42");
        assert_eq!(format_value(12.0, MeasureType::Days), "12 days");
        assert_eq!(format_value(1.0, MeasureType::Days), "1 day");
        assert_eq!(format_value(2.5, MeasureType::Days), "2.5 days");
        assert_eq!(format_value(3.0, MeasureType::Unspecified), "3");
        assert_eq!(format_value(f64::NAN, MeasureType::Count), "NaN");
    }

    #[test]
    fn grouping_handles_signs_and_small_numbers() {
        assert_eq!(grouped(0.0, 0), "0");
        assert_eq!(grouped(-0.01, 1), "0.0");
        assert_eq!(grouped(-1234.5, 1), "-1,234.5");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(grouped(1000.0, 0), "1,000");
        assert_eq!(grouped(123_456_789.0, 0), "123,456,789");
    }

    #[test]
    fn every_line_fits_even_with_very_long_names() {
        let mut b = breach();
        b.indicator_name = "A very long indicator name ".repeat(6);
        b.locality_code = "L".repeat(90);
        let email = render(&raised(b));
        for line in email.body_text.lines() {
            // Only a single unbreakable word may exceed the width.
            assert!(
                line.chars().count() <= LINE_WIDTH || !line.trim().contains(' '),
                "too long: {line:?}\n{}",
                email.body_text
            );
        }
        assert!(email.body_text.contains(&"L".repeat(90)));
        assert!(
            email.body_text.contains("Value:        9.1%"),
            "{}",
            email.body_text
        );
    }

    #[test]
    fn polarity_is_spelled_out() {
        assert_eq!(polarity_phrase(Polarity::HigherIsBetter), "higher is better");
        assert_eq!(polarity_phrase(Polarity::LowerIsBetter), "lower is better");
    }
}
