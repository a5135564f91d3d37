//! `trustctl submit`: send a CSV or DHIS2 file as a partner and print what became of every record. The work
//! is in [`crate::submit`]; atomicity is per chunk, not per file (see there).

use std::process::ExitCode;

use crate::cli::{Endpoints, SubmitArgs};
use crate::records::Format;
use crate::submit::{SubmitOptions, default_prefix, submit};
use anyhow::{Result, bail};

/// The options the command line asks for.
pub fn options(args: &SubmitArgs) -> Result<SubmitOptions> {
    let format = match args.format {
        Some(format) => format,
        None => match Format::from_path(&args.file) {
            Some(format) => format,
            None => bail!(
                "cannot tell the format of {} from its extension (.csv or .json); say --format csv or dhis2",
                args.file.display()
            ),
        },
    };
    let batch_id_prefix = match &args.batch_id {
        Some(prefix) if prefix.trim().is_empty() => bail!("--batch-id is empty"),
        Some(prefix) => prefix.trim().to_owned(),
        None => default_prefix(&args.file),
    };
    Ok(SubmitOptions {
        partner: args.partner.clone(),
        file: args.file.clone(),
        format,
        mode: args.mode,
        dry_run: args.dry_run,
        batch_size: usize::try_from(args.batch_size).unwrap_or(5000),
        batch_id_prefix,
        submitted_by: args.submitted_by.clone(),
        concurrency: usize::try_from(args.concurrency).unwrap_or(2),
        progress: true,
    })
}

pub async fn run(endpoints: &Endpoints, args: &SubmitArgs) -> Result<ExitCode> {
    let options = options(args)?;
    options.check()?;
    let endpoints = Endpoints {
        timeout_secs: args.chunk_timeout_secs,
        ..endpoints.clone()
    };
    let client = super::ingest(&endpoints).await?;
    let report = submit(client, &options).await?;
    print!("{report}");
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(extra: &[&str]) -> SubmitArgs {
        let mut argv = vec!["trustctl", "submit", "--partner", "connexions"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Submit(args) => args,
            _ => panic!("not submit"),
        }
    }

    #[test]
    fn the_format_comes_from_the_extension_unless_given() {
        assert_eq!(options(&args(&["--file", "q2.csv"])).unwrap().format, Format::Csv);
        assert_eq!(
            options(&args(&["--file", "q2.json"])).unwrap().format,
            Format::Dhis2
        );
        let err = options(&args(&["--file", "q2.txt"])).unwrap_err().to_string();
        assert!(err.contains("say --format csv or dhis2"), "{err}");
        let given = options(&args(&["--file", "q2.txt", "--format", "csv"])).unwrap();
        assert_eq!(given.format, Format::Csv);
    }

    #[test]
    fn the_batch_id_prefix_is_given_or_new() {
        let given = options(&args(&["--file", "q2.csv", "--batch-id", " neet-q2 "])).unwrap();
        assert_eq!(given.batch_id_prefix, "neet-q2");
        let new = options(&args(&["--file", "data/q2.csv"])).unwrap();
        assert!(new.batch_id_prefix.starts_with("q2-"), "{}", new.batch_id_prefix);
        assert!(options(&args(&["--file", "q2.csv", "--batch-id", " "])).is_err());
    }
}
