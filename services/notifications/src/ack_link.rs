//! One-use acknowledgement links: a token naming one delivery and when it stops working, signed with
//! HMAC-SHA256 so nobody can make one for another delivery or stretch its life. That it is used only once
//! is kept in the database (`delivery.link_used_at`), not in the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::LinkSettings;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: 32 characters is 256 bits of a random base64 secret at most, and rules out a
/// password-like word.
pub const MIN_SECRET_LEN: usize = 32;

/// Format version, first byte of every token, so a later format can be told apart.
const VERSION: u8 = 1;
/// version (1) + delivery id (16) + expiry in Unix seconds (8, big-endian).
const PAYLOAD_LEN: usize = 1 + 16 + 8;
const MAC_LEN: usize = 32;

/// What a genuine token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClaims {
    pub delivery_id: Uuid,
    pub expires_at: OffsetDateTime,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    /// Not something we made: wrong length, not base64, unknown version, or a signature that does not match
    /// (tampered with, or signed with another secret).
    #[error("this link is not valid: {0}")]
    NotGenuine(&'static str),
    /// Genuine, but too old.
    #[error("this link expired at {0}")]
    Expired(OffsetDateTime),
}

/// Why the link settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkSettingsError {
    #[error(
        "is {len} characters; links need a secret of at least {MIN_SECRET_LEN} (or set links.enabled = false)"
    )]
    ShortSecret { len: usize },
    #[error("{0:?} is not an http(s) URL")]
    BaseUrl(String),
    #[error("must be at least 1")]
    NoLifetime,
    #[error("not usable as an HMAC-SHA256 key: {0}")]
    Key(String),
}

impl LinkSettingsError {
    /// The setting at fault.
    pub fn key(&self) -> &'static str {
        match self {
            LinkSettingsError::ShortSecret { .. } | LinkSettingsError::Key(_) => "links.secret",
            LinkSettingsError::BaseUrl(_) => "links.base_url",
            LinkSettingsError::NoLifetime => "links.valid_hours",
        }
    }
}

/// Makes and checks the links of one deployment.
#[derive(Clone)]
pub struct LinkSigner {
    key: HmacSha256,
    base_url: String,
    valid_for: time::Duration,
}

impl std::fmt::Debug for LinkSigner {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("base_url", &self.base_url)
            .field("valid_for", &self.valid_for)
            .finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// The signer the settings describe; None when links are disabled.
    pub fn from_settings(settings: &LinkSettings) -> Result<Option<Self>, LinkSettingsError> {
        if !settings.enabled {
            return Ok(None);
        }
        let secret = settings.secret.trim();
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(LinkSettingsError::ShortSecret {
                len: secret.chars().count(),
            });
        }
        let base_url = settings.base_url.trim().trim_end_matches('/');
        let after_scheme = base_url
            .strip_prefix("https://")
            .or_else(|| base_url.strip_prefix("http://"));
        if after_scheme.is_none_or(|rest| rest.is_empty() || rest.contains(char::is_whitespace)) {
            return Err(LinkSettingsError::BaseUrl(settings.base_url.clone()));
        }
        if settings.valid_hours == 0 {
            return Err(LinkSettingsError::NoLifetime);
        }
        let valid_for = time::Duration::hours(i64::from(settings.valid_hours));
        Self::new(secret.as_bytes(), base_url, valid_for).map(Some)
    }

    /// A signer with this key, making links under `base_url`.
    pub fn new(secret: &[u8], base_url: &str, valid_for: time::Duration) -> Result<Self, LinkSettingsError> {
        // HMAC takes a key of any length (a long one is hashed first); the error exists for other MACs.
        let key =
            HmacSha256::new_from_slice(secret).map_err(|err| LinkSettingsError::Key(err.to_string()))?;
        Ok(Self {
            key,
            base_url: base_url.trim_end_matches('/').to_owned(),
            valid_for,
        })
    }

    /// When a link made now stops working.
    pub fn expiry_from(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.valid_for
    }

    /// The token for a delivery, usable until `expires_at`.
    pub fn token(&self, delivery_id: Uuid, expires_at: OffsetDateTime) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(delivery_id.as_bytes());
        bytes.extend_from_slice(&expires_at.unix_timestamp().to_be_bytes());
        let mut mac = self.key.clone();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `{base_url}/ack/{token}`.
    pub fn link(&self, delivery_id: Uuid, expires_at: OffsetDateTime) -> String {
        format!("{}/ack/{}", self.base_url, self.token(delivery_id, expires_at))
    }

    /// Check a token's signature, then its expiry.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<LinkClaims, LinkError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| LinkError::NotGenuine("it is not a token this service issued"))?;
        if bytes.len() != PAYLOAD_LEN + MAC_LEN {
            return Err(LinkError::NotGenuine("it is not a token this service issued"));
        }
        let (payload, signature) = bytes.split_at(PAYLOAD_LEN);
        let mut mac = self.key.clone();
        mac.update(payload);
        // Constant-time comparison.
        mac.verify_slice(signature)
            .map_err(|_| LinkError::NotGenuine("its signature does not match"))?;
        if payload[0] != VERSION {
            return Err(LinkError::NotGenuine(
                "it was issued in a format this service does not read",
            ));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[1..17]);
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&payload[17..PAYLOAD_LEN]);
        let expires_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(expiry))
            .map_err(|_| LinkError::NotGenuine("its expiry is out of range"))?;
        if now >= expires_at {
            return Err(LinkError::Expired(expires_at));
        }
        Ok(LinkClaims {
            delivery_id: Uuid::from_bytes(id),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn signer() -> LinkSigner {
        LinkSigner::new(
            b"0123456789abcdef0123456789abcdef",
            "https://trust.example/",
            time::Duration::hours(24),
        )
        .expect("signer")
    }

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    #[test]
    fn a_token_names_its_delivery_until_it_expires() {
        let id = Uuid::now_v7();
        let expires = signer().expiry_from(NOW);
        let link = signer().link(id, expires);
        let token = link
            .strip_prefix("https://trust.example/ack/")
            .expect("link under the base URL");
        assert!(!token.contains(['+', '/', '=']), "url-safe: {token}");
        let claims = signer().verify(token, NOW).expect("genuine");
        assert_eq!(claims.delivery_id, id);
        assert_eq!(claims.expires_at, expires);
        assert_eq!(signer().verify(token, expires), Err(LinkError::Expired(expires)));
    }

    #[test]
    fn a_changed_token_or_another_secret_is_refused() {
        let token = signer().token(Uuid::now_v7(), signer().expiry_from(NOW));
        // Flip one character of the payload (keeping it base64).
        let mut chars: Vec<char> = token.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(matches!(
            signer().verify(&tampered, NOW),
            Err(LinkError::NotGenuine(_))
        ));
        let other = LinkSigner::new(
            b"another secret of thirty-two chars!",
            "https://trust.example",
            time::Duration::hours(24),
        )
        .expect("signer");
        assert!(matches!(other.verify(&token, NOW), Err(LinkError::NotGenuine(_))));
        assert!(matches!(
            signer().verify("nonsense", NOW),
            Err(LinkError::NotGenuine(_))
        ));
        assert!(matches!(signer().verify("", NOW), Err(LinkError::NotGenuine(_))));
    }

    fn settings(secret: &str, base_url: &str) -> LinkSettings {
        LinkSettings {
            enabled: true,
            listen: "127.0.0.1:0".into(),
            base_url: base_url.into(),
            secret: secret.into(),
            valid_hours: 24,
        }
    }

    #[test]
    fn settings_need_a_long_secret_and_a_url_unless_disabled() {
        let long = "s".repeat(MIN_SECRET_LEN);
        assert!(matches!(
            LinkSigner::from_settings(&settings("", "http://x")),
            Err(LinkSettingsError::ShortSecret { len: 0 })
        ));
        assert!(matches!(
            LinkSigner::from_settings(&settings("short", "http://x")),
            Err(LinkSettingsError::ShortSecret { len: 5 })
        ));
        assert!(matches!(
            LinkSigner::from_settings(&settings(&long, "trust.example")),
            Err(LinkSettingsError::BaseUrl(_))
        ));
        let signer = LinkSigner::from_settings(&settings(&long, "http://127.0.0.1:8104/"))
            .expect("valid")
            .expect("enabled");
        assert!(
            signer
                .link(Uuid::nil(), NOW)
                .starts_with("http://127.0.0.1:8104/ack/")
        );
        let mut disabled = settings("", "");
        disabled.enabled = false;
        assert!(matches!(LinkSigner::from_settings(&disabled), Ok(None)));
    }
}
