//! `trust.operations.v1.Operations`, served by every service: its dead letters.

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use trust_proto::operations::v1 as pb;

use crate::dead_letter::{self, ReplayError};
use crate::grpc::timestamp;

pub struct OperationsApi {
    pool: PgPool,
}

impl OperationsApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl pb::operations_server::Operations for OperationsApi {
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let rows = dead_letter::list(&self.pool, request.get_ref().include_replayed)
            .await
            .map_err(|e| Status::unavailable(format!("database: {e}")))?;
        let dead_letters = rows
            .into_iter()
            .map(|row| pb::DeadLetter {
                id: row.id,
                consumer: row.consumer,
                subject: row.subject,
                message_id: row.message_id,
                deliveries: u32::try_from(row.deliveries).unwrap_or(0),
                error: row.error,
                parked_at: Some(timestamp(row.parked_at)),
                replayed_at: row.replayed_at.map(timestamp),
                payload_bytes: u32::try_from(row.payload_bytes).unwrap_or(0),
            })
            .collect();
        Ok(Response::new(pb::ListDeadLettersResponse { dead_letters }))
    }

    async fn replay_dead_letter(
        &self,
        request: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
        match dead_letter::replay(&self.pool, request.get_ref().id).await {
            Ok(replay_message_id) => Ok(Response::new(pb::ReplayDeadLetterResponse { replay_message_id })),
            Err(err @ ReplayError::NotFound(_)) => Err(Status::not_found(err.to_string())),
            Err(err @ ReplayError::AlreadyReplayed { .. }) => {
                Err(Status::failed_precondition(err.to_string()))
            }
            Err(ReplayError::Database(e)) => Err(Status::unavailable(format!("database: {e}"))),
        }
    }
}
