//! The transactional outbox: a service writes the events a state change announces into `outbox_message`
//! in the same transaction as the change; the relay publishes them to JetStream with `Nats-Msg-Id` set and
//! marks them published only after JetStream's ack. A crash between publish and mark re-publishes with the
//! same id, which JetStream drops within the stream's duplicate window and idempotent consumers ignore.

mod relay;
mod store;

pub use relay::{ClaimedBatch, OutboxRelay, RelayError};
pub use store::{enqueue, enqueue_many};

use prost::{Message, Name};

use crate::bus::{MessageHeaders, Namespace};
use crate::telemetry::TraceContext;

/// An event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: String,
    /// Full subject, namespace included.
    pub subject: String,
    pub payload: Vec<u8>,
    pub headers: MessageHeaders,
}

impl OutboxMessage {
    /// A protobuf event for `subject` (documented form). `message_id` must be stable for the state change
    /// it announces, so that writing it twice is writing it once.
    pub fn protobuf<M: Message + Name>(
        namespace: &Namespace,
        subject: &str,
        message_id: impl Into<String>,
        message: &M,
        trace: &TraceContext,
    ) -> Self {
        let message_id = message_id.into();
        Self {
            headers: MessageHeaders::protobuf(&M::full_name(), &message_id, trace),
            subject: namespace.subject(subject),
            payload: message.encode_to_vec(),
            message_id,
        }
    }
}
