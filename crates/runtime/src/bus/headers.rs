use async_nats::HeaderMap;
use std::collections::BTreeMap;

use crate::telemetry::{TRACEPARENT_HEADER, TraceContext};

pub const CONTENT_TYPE_PROTOBUF: &str = "application/protobuf";
/// Fully qualified protobuf message name of the payload, e.g. `trust.alerting.v1.EscalationRaised`.
pub const MESSAGE_TYPE_HEADER: &str = "Trust-Message-Type";
const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// On a replayed dead letter: the one durable consumer that should process it; others skip it.
const REPLAY_FOR_HEADER: &str = "Trust-Replay-For";
const CONTENT_TYPE_HEADER: &str = "content-type";

/// The headers of a platform bus message, kept as plain strings so they can be stored in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageHeaders(pub BTreeMap<String, String>);

impl MessageHeaders {
    /// Headers for a protobuf message of type `message_type` with id `message_id`, caused by `trace`.
    pub fn protobuf(message_type: &str, message_id: &str, trace: &TraceContext) -> Self {
        let mut map = BTreeMap::new();
        map.insert(CONTENT_TYPE_HEADER.to_owned(), CONTENT_TYPE_PROTOBUF.to_owned());
        map.insert(MESSAGE_TYPE_HEADER.to_owned(), message_type.to_owned());
        map.insert(MSG_ID_HEADER.to_owned(), message_id.to_owned());
        map.insert(TRACEPARENT_HEADER.to_owned(), trace.child().to_header());
        Self(map)
    }

    pub fn from_nats(headers: Option<&HeaderMap>) -> Self {
        let mut map = BTreeMap::new();
        if let Some(headers) = headers {
            for (name, values) in headers.iter() {
                if let Some(value) = values.first() {
                    map.insert(name.to_string(), value.as_str().to_owned());
                }
            }
        }
        Self(map)
    }

    pub fn to_nats(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.0 {
            headers.insert(name.as_str(), value.as_str());
        }
        headers
    }

    pub fn message_id(&self) -> Option<&str> {
        self.0.get(MSG_ID_HEADER).map(String::as_str)
    }

    pub fn set_message_id(&mut self, message_id: &str) {
        self.0.insert(MSG_ID_HEADER.to_owned(), message_id.to_owned());
    }

    /// Mark a replay as meant for `consumer` only.
    pub fn set_replay_for(&mut self, consumer: &str) {
        self.0.insert(REPLAY_FOR_HEADER.to_owned(), consumer.to_owned());
    }

    /// The consumer a replayed message is meant for, if it is a replay.
    pub fn replay_for(&self) -> Option<&str> {
        self.0.get(REPLAY_FOR_HEADER).map(String::as_str)
    }

    /// The trace this message belongs to, or a new one when the sender gave none.
    pub fn trace(&self) -> TraceContext {
        self.0
            .get(TRACEPARENT_HEADER)
            .and_then(|value| TraceContext::parse(value))
            .unwrap_or_else(TraceContext::new_root)
    }
}
