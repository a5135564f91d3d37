//! `trustctl directory load`.

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;

use super::{channel, status_error};
use crate::cli::{Endpoints, LoadArgs, Service};
use crate::directory_file;

pub async fn load(endpoints: &Endpoints, args: &LoadArgs) -> Result<ExitCode> {
    let directory = directory_file::load(&args.file)?;
    if args.dry_run {
        println!(
            "{} is a valid staff directory file (dry run: nothing sent)",
            args.file.display()
        );
        print!("{}", directory_file::summary(&directory));
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let loaded = client
        .put_staff_directory(directory)
        .await
        .map_err(|status| status_error(Service::Notifications, "the staff directory", &status))?
        .into_inner();
    println!(
        "staff directory {} loaded into notifications: {} staff, {} responsibilities",
        args.file.display(),
        loaded.staff,
        loaded.responsibilities
    );
    Ok(ExitCode::SUCCESS)
}
