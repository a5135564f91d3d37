//! `trustctl approve` and `trustctl unlock`: the performance lead approves (locks) a period of an indicator,
//! and reopens it with a reason. Both are kept in indicator-ingest's audit log.

use std::process::ExitCode;

use anyhow::{Result, bail};
use trust_proto::ingest::v1 as pb;

use super::{catalogue, status_error};
use crate::cli::{ApproveArgs, Endpoints, Service, UnlockArgs};
use crate::period;

/// A name or reason for the audit log: not blank.
fn required(flag: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        bail!("{flag} is empty; it is kept in the audit log");
    }
    Ok(value.to_owned())
}

pub async fn approve(endpoints: &Endpoints, args: &ApproveArgs) -> Result<ExitCode> {
    let by = required("--by", &args.by)?;
    let mut client = super::ingest(endpoints).await?;
    let known = catalogue::fetch(&mut client).await?;
    catalogue::check_period_type(catalogue::indicator(&known, &args.indicator)?, &args.period)?;
    let label = period::display(&args.period);
    let answer = client
        .approve_period(pb::ApprovePeriodRequest {
            indicator_code: args.indicator.clone(),
            period: Some(args.period),
            approved_by: by.clone(),
        })
        .await
        .map_err(|status| {
            status_error(
                Service::Ingest,
                &format!("approving {label} of {}", args.indicator),
                &status,
            )
        })?
        .into_inner();
    if answer.locked {
        println!(
            "{label} of {} approved by {by} and locked: new values for it are refused until it is unlocked \
             (trustctl unlock)",
            args.indicator
        );
    } else {
        println!(
            "{label} of {} was already approved; nothing changed",
            args.indicator
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unlock(endpoints: &Endpoints, args: &UnlockArgs) -> Result<ExitCode> {
    let by = required("--by", &args.by)?;
    let reason = required("--reason", &args.reason)?;
    let mut client = super::ingest(endpoints).await?;
    let known = catalogue::fetch(&mut client).await?;
    catalogue::check_period_type(catalogue::indicator(&known, &args.indicator)?, &args.period)?;
    let label = period::display(&args.period);
    let answer = client
        .unlock_period(pb::UnlockPeriodRequest {
            indicator_code: args.indicator.clone(),
            period: Some(args.period),
            unlocked_by: by.clone(),
            reason: reason.clone(),
        })
        .await
        .map_err(|status| {
            status_error(
                Service::Ingest,
                &format!("unlocking {label} of {}", args.indicator),
                &status,
            )
        })?
        .into_inner();
    let approved_by = if answer.was_locked_by.is_empty() {
        String::new()
    } else {
        format!(" (approved by {})", answer.was_locked_by)
    };
    println!(
        "{label} of {}{approved_by} unlocked by {by}: values for it are accepted again (corrections need a \
         reason). Recorded in the audit log with the reason: {reason}",
        args.indicator
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_reasons_for_the_audit_log_are_not_blank() {
        assert_eq!(
            required("--by", "  Performance lead ").unwrap(),
            "Performance lead"
        );
        assert_eq!(
            required("--reason", " ").unwrap_err().to_string(),
            "--reason is empty; it is kept in the audit log"
        );
    }
}
