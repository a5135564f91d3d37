//! `trustctl board` (IndicatorIngest.GetStatusBoard) and `trustctl series` (GetSeries).

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::common::v1::Polarity;
use trust_proto::ingest::v1 as pb;

use super::{catalogue, status_error};
use crate::cli::{BoardArgs, Endpoints, SeriesArgs, Service};
use crate::render;

pub async fn board(endpoints: &Endpoints, args: &BoardArgs) -> Result<ExitCode> {
    let mut client = super::ingest(endpoints).await?;
    let rows = client
        .get_status_board(pb::GetStatusBoardRequest {
            indicator_codes: args.indicators.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Ingest, "the status board", &status))?
        .into_inner()
        .rows;
    if rows.is_empty() {
        if args.indicators.is_empty() {
            println!(
                "the status board is empty: no values have been stored yet that this credential may read"
            );
        } else {
            println!(
                "no values on the status board for {} (`trustctl catalogue show` lists the indicators)",
                args.indicators.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render::board(&rows, render::colour_stdout()));
    let missing: Vec<&str> = args
        .indicators
        .iter()
        .filter(|code| !rows.iter().any(|row| &row.indicator_code == *code))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        println!(
            "no values for {} (`trustctl catalogue show` lists the indicators)",
            missing.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn series(endpoints: &Endpoints, args: &SeriesArgs) -> Result<ExitCode> {
    let mut client = super::ingest(endpoints).await?;
    // The catalogue says how to show the values, and catches a mistyped code (the series of an unknown
    // indicator or locality is simply empty).
    let known = catalogue::fetch(&mut client).await?;
    let indicator = catalogue::indicator(&known, &args.indicator)?;
    let locality = catalogue::locality(&known, &args.locality)?;
    let series = client
        .get_series(pb::GetSeriesRequest {
            indicator_code: args.indicator.clone(),
            locality_code: args.locality.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Ingest, "the series", &status))?
        .into_inner();
    let polarity = match Polarity::try_from(indicator.polarity) {
        Ok(Polarity::HigherIsBetter) => "; higher is better",
        Ok(Polarity::LowerIsBetter) => "; lower is better",
        Ok(Polarity::Unspecified) | Err(_) => "",
    };
    println!(
        "{} ({}) in {} ({}){polarity}",
        indicator.code, indicator.name, locality.code, locality.name
    );
    if series.points.is_empty() {
        println!(
            "no values have been reported for {} in {} (values rolled up from the localities below it are on \
             `trustctl board`, not here)",
            indicator.code, locality.code
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render::series(&series, indicator.measure));
    Ok(ExitCode::SUCCESS)
}
