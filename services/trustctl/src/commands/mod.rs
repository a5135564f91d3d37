//! One module per command; each returns the process's exit status or an error to report.

pub mod alerts;
pub mod approval;
pub mod board;
pub mod catalogue;
pub mod credential;
pub mod db;
pub mod dead_letters;
pub mod directory;
pub mod health;
pub mod inbox;
pub mod publish;
pub mod silences;
pub mod submit;
pub mod templates;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tonic::transport::{Channel, Endpoint};

use crate::auth::{BearerToken, IngestClient, ingest_client};
use crate::cli::{
    AlertsCommand, CatalogueCommand, Cli, Command, CredentialCommand, DbCommand, DeadLettersCommand,
    DirectoryCommand, Endpoints, RoutingCommand, Service, SilenceCommand, TemplatesCommand,
};

/// Carry out the command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let endpoints = &cli.endpoints;
    match &cli.command {
        Command::Db(DbCommand::Provision { admin_url, database }) => db::run(admin_url, database).await,
        Command::Catalogue(CatalogueCommand::Load(args)) => catalogue::load(endpoints, args).await,
        Command::Catalogue(CatalogueCommand::Show) => catalogue::show(endpoints).await,
        Command::Directory(DirectoryCommand::Load(args)) => directory::load(endpoints, args).await,
        Command::Publish(args) => publish::run(endpoints, args).await,
        Command::Submit(args) => submit::run(endpoints, args).await,
        Command::Receipt(args) => publish::show_receipt(endpoints, args).await,
        Command::Board(args) => board::board(endpoints, args).await,
        Command::Series(args) => board::series(endpoints, args).await,
        Command::Approve(args) => approval::approve(endpoints, args).await,
        Command::Unlock(args) => approval::unlock(endpoints, args).await,
        Command::Alerts { action: None, list } => alerts::list(endpoints, list).await,
        Command::Alerts {
            action: Some(action), ..
        } => match action {
            AlertsCommand::List(args) => alerts::list(endpoints, args).await,
            AlertsCommand::Show(args) => inbox::show(endpoints, args).await,
            AlertsCommand::Acknowledge(args) => alerts::acknowledge(endpoints, args).await,
            AlertsCommand::Resolve(args) => inbox::resolve(endpoints, args).await,
            AlertsCommand::Comment(args) => inbox::comment(endpoints, args).await,
            AlertsCommand::Inbox(args) => inbox::list(endpoints, args).await,
            AlertsCommand::Silence(SilenceCommand::Add(args)) => silences::add(endpoints, args).await,
            AlertsCommand::Silence(SilenceCommand::List { all }) => silences::list(endpoints, *all).await,
        },
        Command::Routing(RoutingCommand::Load(args)) => alerts::load_routing(endpoints, args).await,
        Command::Routing(RoutingCommand::Show) => alerts::show_routing(endpoints).await,
        Command::Templates(TemplatesCommand::Load(args)) => templates::load(endpoints, args).await,
        Command::Templates(TemplatesCommand::Show(args)) => templates::show(endpoints, args).await,
        Command::DeadLetters(DeadLettersCommand::List { service, all }) => {
            dead_letters::list(endpoints, *service, *all).await
        }
        Command::DeadLetters(DeadLettersCommand::Replay { service, id }) => {
            dead_letters::replay(endpoints, *service, *id).await
        }
        Command::Health(args) => health::run(endpoints, args.wait_secs).await,
        Command::Credential(CredentialCommand::Issue(args)) => credential::issue(args).await,
        Command::Credential(CredentialCommand::List(database)) => credential::list(database).await,
        Command::Credential(CredentialCommand::Revoke(args)) => credential::revoke(args).await,
    }
}

/// Exit status when a command was carried out and the answer is "no" (see `trustctl --help`).
pub fn negative() -> ExitCode {
    ExitCode::from(2)
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A gRPC channel to one service.
pub async fn channel(endpoints: &Endpoints, service: Service) -> Result<Channel> {
    let url = endpoints.url(service);
    Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{service} address {url:?} is not a URL"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(endpoints.timeout_secs))
        .connect()
        .await
        .with_context(|| format!("cannot reach {service} at {url} (is it running?)"))
}

/// A client of indicator-ingest's API sending the bearer token of `--token` (or `TRUST_TOKEN`).
pub async fn ingest(endpoints: &Endpoints) -> Result<IngestClient> {
    let token = BearerToken::optional(endpoints.token.as_deref()).context("--token (or TRUST_TOKEN)")?;
    Ok(ingest_client(channel(endpoints, Service::Ingest).await?, token))
}

/// A gRPC error as a sentence: which service, what we asked, what it said.
pub fn status_error(service: Service, doing: &str, status: &tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let message = status.message();
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => {
            anyhow!("{service} refused {doing}: {message}")
        }
        Code::NotFound => anyhow!("{service}: {message}"),
        Code::Unauthenticated => anyhow!(
            "{service} did not accept the credential ({doing}): {message}; pass a token with --token or \
             TRUST_TOKEN (`trustctl credential issue` issues one)"
        ),
        Code::PermissionDenied => anyhow!("{service} refused {doing}: {message}"),
        Code::Unavailable => anyhow!("{service} is unavailable ({doing}): {message}"),
        Code::DeadlineExceeded => anyhow!("{service} did not answer in time ({doing})"),
        Code::Unimplemented => {
            anyhow!("{service} does not offer {doing} (is it an older version?): {message}")
        }
        code => anyhow!("{service} failed {doing}: {message} ({code:?})"),
    }
}

/// The seconds of a protobuf timestamp as RFC 3339 UTC; "-" when absent.
pub fn timestamp(seconds: Option<i64>) -> String {
    let Some(seconds) = seconds else {
        return "-".to_owned();
    };
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{seconds}s since 1970"))
}
