//! `trustctl catalogue load`.

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::ingest::v1::indicator_ingest_client::IndicatorIngestClient;

use super::{channel, status_error};
use crate::catalogue_file;
use crate::cli::{Endpoints, LoadArgs, Service};

pub async fn load(endpoints: &Endpoints, args: &LoadArgs) -> Result<ExitCode> {
    let catalogue = catalogue_file::load(&args.file)?;
    if args.dry_run {
        println!(
            "{} is a valid catalogue file (dry run: nothing sent)",
            args.file.display()
        );
        print!("{}", catalogue_file::summary(&catalogue));
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = IndicatorIngestClient::new(channel(endpoints, Service::Ingest).await?);
    let loaded = client
        .put_catalogue(catalogue)
        .await
        .map_err(|status| status_error(Service::Ingest, "the catalogue", &status))?
        .into_inner();
    println!(
        "catalogue {} loaded into indicator-ingest: {} partners, {} localities, {} indicators, {} targets",
        args.file.display(),
        loaded.partners,
        loaded.localities,
        loaded.indicators,
        loaded.targets
    );
    Ok(ExitCode::SUCCESS)
}
