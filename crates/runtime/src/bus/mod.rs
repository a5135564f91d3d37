//! NATS and JetStream: connecting, the platform's streams and subjects, and message headers.

mod headers;
mod namespace;
mod streams;

pub use headers::{CONTENT_TYPE_PROTOBUF, MESSAGE_TYPE_HEADER, MessageHeaders};
pub use namespace::Namespace;
pub use streams::{
    ESCALATIONS, INGEST, PlatformStream, STREAMS, SUBMISSIONS, declare_streams, stream_config, subjects,
};

use std::time::Duration;

use crate::config::NatsSettings;
use crate::error::{Error, Result};

/// Connect to NATS as this service (user and password from settings when given).
pub async fn connect(settings: &NatsSettings, client_name: &str) -> Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection event");
        });
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    options
        .connect(settings.url.as_str())
        .await
        .map_err(|source| Error::NatsConnect {
            url: settings.url.clone(),
            source,
        })
}
