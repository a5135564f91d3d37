//! `trustctl`: the operator's command line for the Children's Trust Platform. See `trustctl --help`.

use std::process::ExitCode;

use clap::Parser;
use trustctl::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match trustctl::commands::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("trustctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
