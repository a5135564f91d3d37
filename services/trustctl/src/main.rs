//! `trustctl`: the operator's command line for the Children's Trust Platform. See `trustctl --help`.

mod catalogue_file;
mod cli;
mod commands;
mod directory_file;
mod period;

use std::process::ExitCode;

use clap::Parser;

use cli::{CatalogueCommand, Cli, Command, DbCommand, DeadLettersCommand, DirectoryCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("trustctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let endpoints = &cli.endpoints;
    match &cli.command {
        Command::Db(DbCommand::Provision { admin_url, database }) => {
            commands::db::run(admin_url, database).await
        }
        Command::Catalogue(CatalogueCommand::Load(args)) => commands::catalogue::load(endpoints, args).await,
        Command::Directory(DirectoryCommand::Load(args)) => commands::directory::load(endpoints, args).await,
        Command::Publish(args) => commands::publish::run(endpoints, args).await,
        Command::Receipt(args) => commands::publish::show_receipt(endpoints, args).await,
        Command::DeadLetters(DeadLettersCommand::List { service, all }) => {
            commands::dead_letters::list(endpoints, *service, *all).await
        }
        Command::DeadLetters(DeadLettersCommand::Replay { service, id }) => {
            commands::dead_letters::replay(endpoints, *service, *id).await
        }
        Command::Health(args) => commands::health::run(endpoints, args.wait_secs).await,
    }
}
