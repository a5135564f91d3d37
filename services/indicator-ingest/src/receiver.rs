//! Bus adapter: partners' `ObservationBatch`es from `ingest.submit.<partner>`.

use std::sync::Arc;

use prost::Message;
use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::Namespace;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::reference::ReferenceCache;
use crate::submission::{self, Context, Received};

pub struct SubmissionReceiver {
    namespace: Namespace,
    reference: Arc<ReferenceCache>,
}

impl SubmissionReceiver {
    pub fn new(namespace: Namespace, reference: Arc<ReferenceCache>) -> Self {
        Self { namespace, reference }
    }
}

impl MessageHandler for SubmissionReceiver {
    async fn handle(&self, conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        // The subject, not the payload, says who submitted: NATS permissions let each partner publish
        // only to its own subject.
        let partner = delivery
            .subject
            .strip_prefix("ingest.submit.")
            .filter(|p| submission::valid_partner_code(p))
            .ok_or_else(|| {
                HandlerError::Permanent(format!("{} is not a submission subject", delivery.subject))
            })?;
        let received = match pb::ObservationBatch::decode(delivery.payload) {
            Ok(batch) => Received::Batch(batch),
            Err(err) => Received::Undecodable {
                message_id: delivery.message_id.to_owned(),
                error: err.to_string(),
            },
        };
        let ctx = Context {
            namespace: &self.namespace,
            reference: &self.reference,
            trace: delivery.trace,
            now: OffsetDateTime::now_utc(),
        };
        let receipt = submission::process(conn, &ctx, partner, received).await?;
        tracing::info!(
            partner,
            batch_id = %receipt.batch_id,
            outcome = ?pb::SubmissionOutcome::try_from(receipt.outcome).unwrap_or(pb::SubmissionOutcome::Unspecified),
            created = receipt.created,
            updated = receipt.updated,
            rejected = receipt.rejected,
            "submission processed"
        );
        Ok(())
    }
}
