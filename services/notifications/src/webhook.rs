//! The webhook side: posts a delivery's JSON body to a configured webhook, signed so the receiver can
//! tell it came from the platform and was not altered, and classifies the answer (done, try later — after
//! `Retry-After` when the receiver says —, or refused for good).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use uuid::Uuid;

use crate::config::WebhookSettings;
use crate::delivery::{SendError, describe};

/// Shortest secret accepted: an HMAC key much shorter than the hash is guessable.
const MIN_SECRET_BYTES: usize = 16;

/// The headers a receiver checks.
pub const ID_HEADER: &str = "trust-webhook-id";
pub const TIMESTAMP_HEADER: &str = "trust-webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "trust-webhook-signature";

#[derive(Debug, Clone)]
struct Hook {
    url: reqwest::Url,
    secret: Vec<u8>,
}

/// Every configured webhook, and one HTTP client for them all (connections are reused).
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    hooks: HashMap<String, Hook>,
}

impl WebhookSender {
    /// Check the configured webhooks (absolute http(s) URL, a long enough secret) and build the client.
    pub fn new(
        settings: &HashMap<String, WebhookSettings>,
        timeout: Duration,
    ) -> trust_runtime::Result<Self> {
        let invalid =
            |key: &'static str, reason: String| trust_runtime::Error::InvalidSetting { key, reason };
        let mut hooks = HashMap::new();
        for (name, hook) in settings {
            let url = reqwest::Url::parse(&hook.url).map_err(|err| {
                invalid(
                    "webhooks.<name>.url",
                    format!("webhook {name:?}: {:?}: {err}", hook.url),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    "webhooks.<name>.url",
                    format!("webhook {name:?}: {:?} is not an http(s) URL", hook.url),
                ));
            }
            if hook.secret.len() < MIN_SECRET_BYTES {
                return Err(invalid(
                    "webhooks.<name>.secret",
                    format!("webhook {name:?}: the signing secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            hooks.insert(
                name.clone(),
                Hook {
                    url,
                    secret: hook.secret.as_bytes().to_vec(),
                },
            );
        }
        // reqwest is built without a default TLS provider; ring is the one the rest of the platform uses.
        // Installing twice (another part of the process got there first) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("trust-notifications/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| invalid("webhooks", format!("cannot build the HTTP client: {err}")))?;
        Ok(Self { client, hooks })
    }

    /// The names policies may post to.
    pub fn names(&self) -> HashSet<String> {
        self.hooks.keys().cloned().collect()
    }

    /// Post `body` to the webhook `name` as delivery `id` (the same id on every retry, so a receiver can
    /// drop a repeat).
    pub async fn post(&self, id: Uuid, name: &str, body: &[u8]) -> Result<(), SendError> {
        let hook = self.hooks.get(name).ok_or_else(|| {
            SendError::Permanent(format!(
                "webhook {name:?} is not configured (webhooks.{name}.url)"
            ))
        })?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = signature(&hook.secret, id, timestamp, body);
        let sent = self
            .client
            .post(hook.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, id.to_string())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => answer(response.status(), response.headers(), OffsetDateTime::now_utc()),
            Err(err) if err.is_builder() => Err(SendError::Permanent(format!("webhook {name:?}: {err}"))),
            Err(err) => Err(SendError::Transient {
                reason: format!("webhook {name:?}: {}", describe(&err)),
                retry_after: None,
            }),
        }
    }
}

/// `v1=<hex HMAC-SHA256 of "<id>.<timestamp>.<body>">`: the id and time are signed too, so a captured post
/// cannot be replayed under another id or much later without the receiver noticing.
pub fn signature(secret: &[u8], id: Uuid, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an HTTP answer means for the delivery.
fn answer(status: StatusCode, headers: &HeaderMap, now: OffsetDateTime) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let reason = format!("webhook answered {status}");
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    if transient {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, now));
        Err(SendError::Transient { reason, retry_after })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_signature_covers_id_time_and_body() {
        let id = Uuid::nil();
        let one = signature(b"0123456789abcdef", id, 1_795_430_400, b"{}");
        assert!(one.starts_with("v1=") && one.len() == 3 + 64, "{one}");
        assert_ne!(one, signature(b"0123456789abcdef", id, 1_795_430_401, b"{}"));
        assert_ne!(one, signature(b"0123456789abcdef", id, 1_795_430_400, b"{ }"));
        assert_ne!(one, signature(b"0123456789abcdeF", id, 1_795_430_400, b"{}"));
        // Known answer: HMAC-SHA256("0123456789abcdef", "00000000-0000-0000-0000-000000000000.1795430400.{}").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(b"00000000-0000-0000-0000-000000000000.1795430400.{}");
        assert_eq!(one, format!("v1={}", hex::encode(mac.finalize().into_bytes())));
    }

    #[test]
    fn answers_are_done_later_or_refused() {
        let now = datetime!(2026-11-23 12:00 UTC);
        let mut headers = HeaderMap::new();
        assert!(answer(StatusCode::NO_CONTENT, &headers, now).is_ok());
        assert!(matches!(
            answer(StatusCode::GONE, &headers, now),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            answer(StatusCode::BAD_GATEWAY, &headers, now),
            Err(SendError::Transient {
                retry_after: None,
                ..
            })
        ));
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            answer(StatusCode::TOO_MANY_REQUESTS, &headers, now),
            Err(SendError::Transient {
                reason: "webhook answered 429 Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(7)),
            })
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = datetime!(2026-11-23 12:00 UTC);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Mon, 23 Nov 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn webhooks_need_an_http_url_and_a_real_secret() {
        let hook = |url: &str, secret: &str| {
            HashMap::from([(
                "chat".to_owned(),
                WebhookSettings {
                    url: url.into(),
                    secret: secret.into(),
                },
            )])
        };
        let timeout = Duration::from_secs(1);
        assert!(WebhookSender::new(&hook("https://chat.example/hook", "0123456789abcdef"), timeout).is_ok());
        let err = WebhookSender::new(&hook("ftp://chat.example", "0123456789abcdef"), timeout).unwrap_err();
        assert!(err.to_string().contains("not an http(s) URL"), "{err}");
        let err = WebhookSender::new(&hook("https://chat.example", "short"), timeout).unwrap_err();
        assert!(err.to_string().contains("at least 16 bytes"), "{err}");
    }
}
