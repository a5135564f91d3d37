//! Bus adapter: partners' `ObservationBatch`es from `ingest.submit.<partner>`.

use std::sync::Arc;

use prost::Message;
use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::Namespace;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::reference::ReferenceCache;
use crate::submission::{self, Context, Received, Submission};

pub struct SubmissionReceiver {
    namespace: Namespace,
    reference: Arc<ReferenceCache>,
}

impl SubmissionReceiver {
    pub fn new(namespace: Namespace, reference: Arc<ReferenceCache>) -> Self {
        Self { namespace, reference }
    }
}

impl SubmissionReceiver {
    /// The subject, not the payload, says who submitted: NATS permissions let each partner publish only to
    /// its own subject.
    fn submission<'a>(delivery: &'a Delivery<'a>) -> Result<Submission<'a>, HandlerError> {
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
        Ok(Submission {
            partner,
            received,
            trace: delivery.trace,
        })
    }

    async fn apply(&self, conn: &mut PgConnection, deliveries: &[Delivery<'_>]) -> Result<(), HandlerError> {
        let Some(first) = deliveries.first() else {
            return Ok(());
        };
        let submissions = deliveries
            .iter()
            .map(Self::submission)
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = Context {
            namespace: &self.namespace,
            reference: &self.reference,
            trace: first.trace,
            now: OffsetDateTime::now_utc(),
        };
        let receipts = submission::process_group(conn, &ctx, submissions).await?;
        for receipt in &receipts {
            tracing::info!(
                partner = %receipt.partner_code,
                batch_id = %receipt.batch_id,
                outcome = ?pb::SubmissionOutcome::try_from(receipt.outcome).unwrap_or(pb::SubmissionOutcome::Unspecified),
                created = receipt.created,
                updated = receipt.updated,
                rejected = receipt.rejected,
                "submission processed"
            );
        }
        Ok(())
    }
}

impl MessageHandler for SubmissionReceiver {
    async fn handle(&self, conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        self.apply(conn, std::slice::from_ref(delivery)).await
    }

    async fn handle_group(
        &self,
        conn: &mut PgConnection,
        deliveries: &[Delivery<'_>],
    ) -> Result<(), HandlerError> {
        self.apply(conn, deliveries).await
    }
}
