//! gRPC adapter: `trust.ingest.v1.IndicatorIngest`. Every call is authenticated first (see [`crate::access`]):
//! submissions come from a partner's credential, the catalogue and approval need an operator's, and reads
//! hold what the caller may read under the information sharing protocol.

use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::Namespace;
use trust_runtime::telemetry::TraceContext;

use crate::access::{self, Caller, ReadScope};
use crate::catalogue::{self, CatalogueError};
use crate::domain::Period;
use crate::reference::ReferenceCache;
use crate::store::{self, AuditEntry};
use crate::submission::{self, Context, Received};

pub struct IngestApi {
    pool: PgPool,
    namespace: Namespace,
    reference: Arc<ReferenceCache>,
}

impl IngestApi {
    pub fn new(pool: PgPool, namespace: Namespace, reference: Arc<ReferenceCache>) -> Self {
        Self {
            pool,
            namespace,
            reference,
        }
    }
}

fn period_argument(
    indicator: &str,
    period: Option<&trust_proto::common::v1::Period>,
) -> Result<Period, Status> {
    if indicator.is_empty() {
        return Err(Status::invalid_argument("indicator_code: required"));
    }
    Period::from_proto(period).map_err(|e| Status::invalid_argument(format!("period: {e}")))
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!(
            "{field}: required (kept in the audit log)"
        )))
    } else {
        Ok(())
    }
}

fn unavailable(err: sqlx::Error) -> Status {
    Status::unavailable(format!("database: {err}"))
}

/// The caller named by the request's bearer token.
async fn authenticate<T>(conn: &mut PgConnection, request: &Request<T>) -> Result<Caller, Status> {
    Ok(access::authenticate(conn, request.metadata()).await?)
}

/// The periods of stored values and series points, where they parse.
fn period_of(period: Option<&trust_proto::common::v1::Period>) -> Option<Period> {
    Period::from_proto(period).ok()
}

/// A stored value and its period.
fn observed(stored: &pb::StoredObservation) -> Option<(&pb::Observation, Period)> {
    let observation = stored.observation.as_ref()?;
    Some((observation, period_of(observation.period.as_ref())?))
}

#[tonic::async_trait]
impl pb::indicator_ingest_server::IndicatorIngest for IngestApi {
    async fn submit_observations(
        &self,
        request: Request<pb::ObservationBatch>,
    ) -> Result<Response<pb::SubmissionReceipt>, Status> {
        let trace = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::new_root);
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let caller = authenticate(&mut tx, &request).await?;
        let batch = request.into_inner();
        // The partner is the caller's, whatever the batch says.
        let partner = access::submitting_partner(&caller, &batch.partner_code)?.to_owned();
        if !submission::valid_partner_code(&partner) {
            return Err(Status::invalid_argument(
                "partner_code: letters, digits, '-' or '_' (the submitting partner)",
            ));
        }
        let ctx = Context {
            namespace: &self.namespace,
            reference: &self.reference,
            trace,
            now: OffsetDateTime::now_utc(),
        };
        let receipt = submission::process(&mut tx, &ctx, &partner, Received::Batch(batch))
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Response::new(receipt))
    }

    async fn get_receipt(
        &self,
        request: Request<pb::GetReceiptRequest>,
    ) -> Result<Response<pb::SubmissionReceipt>, Status> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let caller = authenticate(&mut conn, &request).await?;
        let request = request.into_inner();
        let partner = access::receipt_partner(&caller, &request.partner_code)?;
        store::find_receipt(&mut conn, &partner, &request.batch_id)
            .await
            .map_err(unavailable)?
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no submission {:?} from partner {partner:?}",
                    request.batch_id
                ))
            })
    }

    async fn put_catalogue(
        &self,
        request: Request<pb::Catalogue>,
    ) -> Result<Response<pb::PutCatalogueResponse>, Status> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let caller = authenticate(&mut tx, &request).await?;
        access::require_operator(&caller, "loading the catalogue")?;
        let loaded = catalogue::put(&mut tx, request.get_ref())
            .await
            .map_err(|err| match err {
                CatalogueError::Invalid { .. } => Status::invalid_argument(err.to_string()),
                CatalogueError::Database(db) => unavailable(db),
            })?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Response::new(loaded))
    }

    async fn list_observations(
        &self,
        request: Request<pb::ListObservationsRequest>,
    ) -> Result<Response<pb::ListObservationsResponse>, Status> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let caller = authenticate(&mut conn, &request).await?;
        let scope = ReadScope::of(&mut conn, &caller, &self.reference)
            .await
            .map_err(unavailable)?;
        let request = request.into_inner();
        if !request.indicator_code.is_empty() {
            scope.require_indicator(&request.indicator_code)?;
        }
        let locality = (!request.locality_code.is_empty()).then_some(request.locality_code.as_str());
        let mut observations = store::list_observations(&mut conn, &request.indicator_code, locality)
            .await
            .map_err(unavailable)?;
        if let Some(locality) = locality {
            let periods = observations.iter().filter_map(|s| observed(s).map(|(_, p)| p));
            let today = OffsetDateTime::now_utc().date();
            scope.require_series(&request.indicator_code, locality, periods, today)?;
        }
        observations.retain(|stored| {
            observed(stored)
                .is_some_and(|(o, period)| scope.value(&o.indicator_code, &o.locality_code, period))
        });
        Ok(Response::new(pb::ListObservationsResponse { observations }))
    }

    async fn get_series(
        &self,
        request: Request<pb::GetSeriesRequest>,
    ) -> Result<Response<pb::Series>, Status> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let caller = authenticate(&mut conn, &request).await?;
        let scope = ReadScope::of(&mut conn, &caller, &self.reference)
            .await
            .map_err(unavailable)?;
        let request = request.into_inner();
        let (indicator, locality) = (&request.indicator_code, &request.locality_code);
        scope.require_indicator(indicator)?;
        let mut points = store::series(&mut conn, indicator, locality)
            .await
            .map_err(unavailable)?;
        let periods = points.iter().filter_map(|p| period_of(p.period.as_ref()));
        scope.require_series(indicator, locality, periods, OffsetDateTime::now_utc().date())?;
        points.retain(|point| {
            period_of(point.period.as_ref()).is_some_and(|period| scope.value(indicator, locality, period))
        });
        Ok(Response::new(pb::Series {
            indicator_code: request.indicator_code,
            locality_code: request.locality_code,
            points,
        }))
    }

    async fn approve_period(
        &self,
        request: Request<pb::ApprovePeriodRequest>,
    ) -> Result<Response<pb::ApprovePeriodResponse>, Status> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let caller = authenticate(&mut tx, &request).await?;
        access::require_operator(&caller, "approving a period")?;
        let request = request.into_inner();
        let period = period_argument(&request.indicator_code, request.period.as_ref())?;
        required("approved_by", &request.approved_by)?;
        let indicators = store::indicators(&mut tx, std::slice::from_ref(&request.indicator_code))
            .await
            .map_err(unavailable)?;
        let indicator = indicators.get(&request.indicator_code).ok_or_else(|| {
            Status::not_found(format!(
                "indicator {:?} is not in the catalogue",
                request.indicator_code
            ))
        })?;
        if indicator.period_type != period.kind() {
            return Err(Status::invalid_argument(format!(
                "period: {} is reported by {}, not by {} (got {period})",
                indicator.code,
                indicator.period_type,
                period.kind()
            )));
        }
        let locked = store::lock_period(&mut tx, &request.indicator_code, period, &request.approved_by)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => Status::not_found(
                    format!("indicator {:?} is not in the catalogue", request.indicator_code),
                ),
                _ => unavailable(e),
            })?;
        if locked {
            store::audit(
                &mut tx,
                AuditEntry {
                    actor: &request.approved_by,
                    action: "period.approved",
                    entity: format!("period {}/{period}", request.indicator_code),
                    before: None,
                    after: Some(serde_json::json!({ "locked": true })),
                    reason: "",
                },
            )
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Response::new(pb::ApprovePeriodResponse { locked }))
    }

    async fn unlock_period(
        &self,
        request: Request<pb::UnlockPeriodRequest>,
    ) -> Result<Response<pb::UnlockPeriodResponse>, Status> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let caller = authenticate(&mut tx, &request).await?;
        access::require_operator(&caller, "unlocking a period")?;
        let request = request.into_inner();
        let period = period_argument(&request.indicator_code, request.period.as_ref())?;
        required("unlocked_by", &request.unlocked_by)?;
        required("reason", &request.reason)?;
        let removed = store::unlock_period(&mut tx, &request.indicator_code, period)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "period {period} of {} is not locked",
                    request.indicator_code
                ))
            })?;
        store::audit(
            &mut tx,
            AuditEntry {
                actor: &request.unlocked_by,
                action: "period.unlocked",
                entity: format!("period {}/{period}", request.indicator_code),
                before: Some(serde_json::json!({ "locked": true, "locked_by": removed.locked_by })),
                after: Some(serde_json::json!({ "locked": false })),
                reason: &request.reason,
            },
        )
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Response::new(pb::UnlockPeriodResponse {
            was_locked_by: removed.locked_by,
        }))
    }

    async fn get_status_board(
        &self,
        request: Request<pb::GetStatusBoardRequest>,
    ) -> Result<Response<pb::StatusBoard>, Status> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let caller = authenticate(&mut conn, &request).await?;
        let scope = ReadScope::of(&mut conn, &caller, &self.reference)
            .await
            .map_err(unavailable)?;
        let requested = request.into_inner().indicator_codes;
        for indicator in &requested {
            scope.require_indicator(indicator)?;
        }
        // A partner's whole board is what it may read; an operator's is every indicator.
        let indicators = match (requested.is_empty(), scope.readable_indicators()) {
            (true, Some(readable)) if readable.is_empty() => {
                return Ok(Response::new(pb::StatusBoard::default()));
            }
            (true, Some(readable)) => readable,
            _ => requested,
        };
        let readable =
            |indicator: &str, locality: &str, period: Period| scope.value(indicator, locality, period);
        let reference = self.reference.current(&mut conn).await.map_err(unavailable)?;
        let board = crate::board::status_board(&mut conn, &reference, &indicators, &readable)
            .await
            .map_err(unavailable)?;
        Ok(Response::new(board))
    }

    async fn get_catalogue(
        &self,
        request: Request<pb::GetCatalogueRequest>,
    ) -> Result<Response<pb::Catalogue>, Status> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        // Any caller with a credential: the catalogue says what every code means.
        authenticate(&mut conn, &request).await?;
        let catalogue = catalogue::get(&mut conn).await.map_err(unavailable)?;
        Ok(Response::new(catalogue))
    }
}
