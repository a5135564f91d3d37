//! One module per command; each returns the process's exit status or an error to report.

pub mod catalogue;
pub mod db;
pub mod dead_letters;
pub mod directory;
pub mod health;
pub mod publish;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Endpoints, Service};

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

/// A gRPC error as a sentence: which service, what we asked, what it said.
pub fn status_error(service: Service, doing: &str, status: &tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let message = status.message();
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => {
            anyhow!("{service} refused {doing}: {message}")
        }
        Code::NotFound => anyhow!("{service}: {message}"),
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
