//! gRPC adapter: `trust.safeguarding.v1.SafeguardingQa`.

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use trust_proto::safeguarding::v1 as pb;

use crate::store;

pub struct SafeguardingApi {
    pool: PgPool,
}

impl SafeguardingApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unavailable(err: sqlx::Error) -> Status {
    Status::unavailable(format!("database: {err}"))
}

#[tonic::async_trait]
impl pb::safeguarding_qa_server::SafeguardingQa for SafeguardingApi {
    async fn list_performance(
        &self,
        request: Request<pb::ListPerformanceRequest>,
    ) -> Result<Response<pb::ListPerformanceResponse>, Status> {
        let request = request.into_inner();
        let indicator = (!request.indicator_code.is_empty()).then_some(request.indicator_code.as_str());
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let values = store::list(&mut conn, indicator).await.map_err(unavailable)?;
        Ok(Response::new(pb::ListPerformanceResponse { values }))
    }
}
