//! A small catalogue and staff directory for tests, built in code so each test states what it relies on.

use trust_proto::common::v1::{MeasureType, Period, PeriodType, Polarity};
use trust_proto::ingest::v1 as ingest;
use trust_proto::notifications::v1 as notifications;

pub const NEET: &str = "NEET_16_18";
pub const LAC_DENTAL: &str = "LAC_DENTAL_CHECKS";
pub const EAST: &str = "AREA_EAST";
pub const CITY: &str = "LEEDS";

pub fn catalogue() -> ingest::Catalogue {
    ingest::Catalogue {
        partners: vec![
            partner("connexions", "Connexions West Yorkshire", &[NEET]),
            partner("pct", "NHS Leeds primary care trust", &[LAC_DENTAL]),
            partner("police", "West Yorkshire Police", &[]),
        ],
        localities: vec![
            locality(CITY, "Leeds", ""),
            locality(EAST, "East Leeds", CITY),
            locality("AREA_SOUTH", "South Leeds", CITY),
        ],
        indicators: vec![
            ingest::Indicator {
                code: NEET.into(),
                name: "16-18 year olds not in education, employment or training".into(),
                definition: "Percentage of the 16-18 cohort known to be NEET".into(),
                measure: MeasureType::Percentage as i32,
                polarity: Polarity::LowerIsBetter as i32,
                period_type: PeriodType::Quarter as i32,
                owner_partner_code: "connexions".into(),
                outcome_code: "DO_WELL_IN_LEARNING".into(),
                numerator_meaning: "young people aged 16-18 known to be NEET".into(),
                denominator_meaning: "young people aged 16-18 known to Connexions".into(),
                valid_min: Some(0.0),
                valid_max: Some(40.0),
                small_number_threshold: 5,
                ..Default::default()
            },
            ingest::Indicator {
                code: LAC_DENTAL.into(),
                name: "Looked-after children with a dental check".into(),
                definition: "Percentage of children looked after for 12 months with a dental check".into(),
                measure: MeasureType::Percentage as i32,
                polarity: Polarity::HigherIsBetter as i32,
                period_type: PeriodType::Quarter as i32,
                owner_partner_code: "pct".into(),
                outcome_code: "HEALTHY_LIFESTYLES".into(),
                ..Default::default()
            },
        ],
        targets: vec![
            target(NEET, "", 6.0, 0.5),
            target(NEET, EAST, 8.0, 0.5),
            target(LAC_DENTAL, "", 90.0, 5.0),
        ],
        ..Default::default()
    }
}

fn partner(code: &str, name: &str, may_submit: &[&str]) -> ingest::Partner {
    ingest::Partner {
        code: code.into(),
        name: name.into(),
        may_submit: may_submit.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn locality(code: &str, name: &str, parent: &str) -> ingest::Locality {
    ingest::Locality {
        code: code.into(),
        name: name.into(),
        parent_code: parent.into(),
        ..Default::default()
    }
}

pub fn target(indicator: &str, locality: &str, value: f64, amber_tolerance: f64) -> ingest::Target {
    ingest::Target {
        indicator_code: indicator.into(),
        locality_code: locality.into(),
        value,
        amber_tolerance,
        ..Default::default()
    }
}

pub fn quarter(year: i32, number: i32) -> Period {
    Period {
        r#type: PeriodType::Quarter as i32,
        year,
        number,
    }
}

pub fn observation(indicator: &str, locality: &str, period: Period, value: f64) -> ingest::Observation {
    ingest::Observation {
        indicator_code: indicator.into(),
        locality_code: locality.into(),
        period: Some(period),
        value,
        ..Default::default()
    }
}

pub fn batch(batch_id: &str, observations: Vec<ingest::Observation>) -> ingest::ObservationBatch {
    ingest::ObservationBatch {
        batch_id: batch_id.into(),
        observations,
        ..Default::default()
    }
}

pub fn directory() -> notifications::StaffDirectory {
    notifications::StaffDirectory {
        staff: vec![
            staff("east-enabler", "Aisha Khan", "aisha.khan@example.org", "council"),
            staff("perf-lead", "Tom Price", "tom.price@example.org", "council"),
        ],
        responsibilities: vec![
            notifications::Responsibility {
                staff_code: "east-enabler".into(),
                indicator_code: NEET.into(),
                locality_code: EAST.into(),
            },
            notifications::Responsibility {
                staff_code: "perf-lead".into(),
                indicator_code: String::new(),
                locality_code: String::new(),
            },
        ],
    }
}

fn staff(code: &str, name: &str, email: &str, partner: &str) -> notifications::StaffMember {
    notifications::StaffMember {
        code: code.into(),
        name: name.into(),
        email: email.into(),
        partner_code: partner.into(),
        ..Default::default()
    }
}
