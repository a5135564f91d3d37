//! The bearer token sent with every call to indicator-ingest's API (`authorization: Bearer <token>`), and
//! the client that sends it.

use anyhow::{Result, bail};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trust_proto::ingest::v1::indicator_ingest_client::IndicatorIngestClient;

/// A client of `trust.ingest.v1.IndicatorIngest` that sends a bearer token with every call.
pub type IngestClient = IndicatorIngestClient<InterceptedService<Channel, BearerToken>>;

/// The `authorization` metadata of every call, or none (the service then answers UNAUTHENTICATED).
#[derive(Debug, Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// The token as given (surrounding whitespace, e.g. a file's final newline, is dropped).
    pub fn new(token: &str) -> Result<BearerToken> {
        let token = token.trim();
        if token.is_empty() {
            bail!("the token is empty (`trustctl credential issue` prints one)");
        }
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            bail!("the token has characters a token never has (spaces or non-ASCII); is it the whole token?");
        }
        match MetadataValue::try_from(format!("Bearer {token}")) {
            Ok(value) => Ok(BearerToken(Some(value))),
            Err(_) => bail!("the token cannot be sent as gRPC metadata"),
        }
    }

    /// From `--token` / `TRUST_TOKEN`, if given.
    pub fn optional(token: Option<&str>) -> Result<BearerToken> {
        token.map_or_else(|| Ok(BearerToken::default()), BearerToken::new)
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client of indicator-ingest on `channel` sending `token`.
pub fn ingest_client(channel: Channel, token: BearerToken) -> IngestClient {
    IndicatorIngestClient::with_interceptor(channel, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_in_the_authorization_metadata() {
        let mut token = BearerToken::new(" trust_abc\n").unwrap();
        let request = token.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer trust_abc")
        );
        let mut none = BearerToken::optional(None).unwrap();
        assert!(!none.is_set());
        let request = none.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(BearerToken::new("  ").is_err());
        assert!(BearerToken::new("trust abc").is_err());
    }
}
