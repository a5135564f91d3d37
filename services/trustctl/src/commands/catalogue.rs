//! `trustctl catalogue load` and `trustctl catalogue show`.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use trust_proto::common::v1::PeriodType;
use trust_proto::ingest::v1 as pb;

use super::status_error;
use crate::auth::IngestClient;
use crate::catalogue_file;
use crate::cli::{Endpoints, LoadArgs, Service};
use crate::period;

pub async fn load(endpoints: &Endpoints, args: &LoadArgs) -> Result<ExitCode> {
    let catalogue = catalogue_file::load(&args.file)?;
    if args.dry_run {
        println!(
            "{} is a valid catalogue file (dry run: nothing sent)",
            args.file.display()
        );
        print!("{}", catalogue_file::summary(&catalogue));
        if catalogue.loaded_by.is_empty() {
            println!(
                "who loads it is not known: the file has no loaded_by and $USER is not set (the service \
                 records \"unknown\")"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = super::ingest(endpoints).await?;
    let loaded = client
        .put_catalogue(catalogue)
        .await
        .map_err(|status| status_error(Service::Ingest, "the catalogue", &status))?
        .into_inner();
    println!(
        "catalogue {} loaded into indicator-ingest (version {} in force): {} outcomes, {} priorities, {} \
         partners, {} localities, {} indicators, {} targets",
        args.file.display(),
        loaded.version,
        loaded.outcomes,
        loaded.priorities,
        loaded.partners,
        loaded.localities,
        loaded.indicators,
        loaded.targets
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn show(endpoints: &Endpoints) -> Result<ExitCode> {
    let mut client = super::ingest(endpoints).await?;
    let catalogue = fetch(&mut client).await?;
    println!(
        "the catalogue in force in indicator-ingest ({}):",
        endpoints.url(Service::Ingest)
    );
    print!("{}", catalogue_file::summary(&catalogue));
    Ok(ExitCode::SUCCESS)
}

/// The catalogue in force (`IndicatorIngest.GetCatalogue`).
pub(crate) async fn fetch(client: &mut IngestClient) -> Result<pb::Catalogue> {
    Ok(client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .map_err(|status| status_error(Service::Ingest, "the catalogue", &status))?
        .into_inner())
}

/// An indicator of the catalogue in force, or an error an operator can act on.
pub(crate) fn indicator<'a>(catalogue: &'a pb::Catalogue, code: &str) -> Result<&'a pb::Indicator> {
    catalogue
        .indicators
        .iter()
        .find(|i| i.code == code)
        .ok_or_else(|| {
            anyhow!(
                "indicator {code:?} is not in indicator-ingest's catalogue (`trustctl catalogue show` lists \
                 the indicators)"
            )
        })
}

/// A locality of the catalogue in force, or an error an operator can act on.
pub(crate) fn locality<'a>(catalogue: &'a pb::Catalogue, code: &str) -> Result<&'a pb::Locality> {
    catalogue
        .localities
        .iter()
        .find(|l| l.code == code)
        .ok_or_else(|| {
            anyhow!(
                "locality {code:?} is not in indicator-ingest's catalogue (`trustctl catalogue show` lists the \
                 localities)"
            )
        })
}

/// A period given for an indicator must be of the indicator's period type.
pub(crate) fn check_period_type(
    indicator: &pb::Indicator,
    period: &trust_proto::common::v1::Period,
) -> Result<()> {
    if period.r#type == indicator.period_type {
        return Ok(());
    }
    let how = match PeriodType::try_from(indicator.period_type) {
        Ok(PeriodType::Month) => "monthly (e.g. 2026-03)",
        Ok(PeriodType::Quarter) => "quarterly (e.g. 2026-Q1)",
        Ok(PeriodType::AcademicYear) => "by academic year (e.g. AY2025/26)",
        Ok(PeriodType::FinancialYear) => "by financial year (e.g. FY2025/26)",
        Ok(PeriodType::Unspecified) | Err(_) => "for periods of another type",
    };
    let what = match PeriodType::try_from(period.r#type) {
        Ok(PeriodType::Month) => "a month",
        Ok(PeriodType::Quarter) => "a quarter",
        Ok(PeriodType::AcademicYear) => "an academic year",
        Ok(PeriodType::FinancialYear) => "a financial year",
        Ok(PeriodType::Unspecified) | Err(_) => "not a period",
    };
    bail!(
        "{} is reported {how}; --period {} is {what}",
        indicator.code,
        period::display(period)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_of_the_wrong_type_is_named() {
        let neet = pb::Indicator {
            code: "NEET_16_18".into(),
            period_type: PeriodType::Quarter as i32,
            ..Default::default()
        };
        assert!(check_period_type(&neet, &period::parse("2026-Q1").unwrap()).is_ok());
        assert_eq!(
            check_period_type(&neet, &period::parse("2026-03").unwrap())
                .unwrap_err()
                .to_string(),
            "NEET_16_18 is reported quarterly (e.g. 2026-Q1); --period 2026-03 is a month"
        );
        let catalogue = pb::Catalogue {
            indicators: vec![neet],
            ..Default::default()
        };
        assert!(indicator(&catalogue, "NEET_16_18").is_ok());
        assert!(
            indicator(&catalogue, "NEET")
                .unwrap_err()
                .to_string()
                .contains("\"NEET\" is not in indicator-ingest's catalogue")
        );
    }
}
