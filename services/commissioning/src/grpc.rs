//! gRPC adapter: `trust.commissioning.v1.Commissioning`.

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use trust_proto::commissioning::v1 as pb;

use crate::store;

pub struct CommissioningApi {
    pool: PgPool,
}

impl CommissioningApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unavailable(err: sqlx::Error) -> Status {
    Status::unavailable(format!("database: {err}"))
}

#[tonic::async_trait]
impl pb::commissioning_server::Commissioning for CommissioningApi {
    async fn list_indicator_concerns(
        &self,
        request: Request<pb::ListIndicatorConcernsRequest>,
    ) -> Result<Response<pb::ListIndicatorConcernsResponse>, Status> {
        let include_resolved = request.get_ref().include_resolved;
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let concerns = store::list(&mut conn, include_resolved)
            .await
            .map_err(unavailable)?;
        Ok(Response::new(pb::ListIndicatorConcernsResponse { concerns }))
    }
}
