//! The `trust.notifications.v1.Notifications` API: the staff directory, routing and silences; alerts with
//! their history and deliveries; each person's inbox; acknowledging, resolving and commenting.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use trust_proto::notifications::v1 as pb;
use trust_runtime::grpc::timestamp;

use prost::Message;

use crate::alert_actions::{self, ActionError};
use crate::domain::ladder::Channel;
use crate::domain::quieting::Silence;
use crate::domain::routing_config::{check_webhooks, matchers_from_proto, routing_from_proto};
use crate::domain::templates::BUILT_IN;
use crate::domain::validate_directory;
use crate::email_templates::{self, EmailComposer};
use crate::store::{self, AlertFilter, AlertRecord, DeliveryRecord, HistoryEntry};

const DEFAULT_LIST_LIMIT: u32 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

pub struct NotificationsApi {
    pool: PgPool,
    /// The webhooks the service is configured with: the names policies may post to.
    webhooks: HashSet<String>,
    /// Renders what a hand-made resolution tells people.
    email: Arc<EmailComposer>,
}

impl NotificationsApi {
    pub fn new(pool: PgPool, webhooks: HashSet<String>, email: Arc<EmailComposer>) -> Self {
        Self {
            pool,
            webhooks,
            email,
        }
    }
}

fn action_status(err: ActionError) -> Status {
    match err {
        ActionError::Missing { .. } => Status::invalid_argument(err.to_string()),
        ActionError::UnknownAlert(_) => Status::not_found(err.to_string()),
        ActionError::NotFiring(..) => Status::failed_precondition(err.to_string()),
        ActionError::Database(err) => internal(err),
    }
}

/// A state filter as asked: (stored state, further condition).
fn state_filter(state: i32) -> Result<(Option<&'static str>, Option<&'static str>), Status> {
    match pb::AlertState::try_from(state) {
        Ok(pb::AlertState::Unspecified) => Ok((None, None)),
        Ok(pb::AlertState::Firing) => Ok((Some("firing"), None)),
        Ok(pb::AlertState::Resolved) => Ok((Some("resolved"), None)),
        Ok(pb::AlertState::Acknowledged) => Ok((Some("firing"), Some("acknowledged"))),
        Ok(pb::AlertState::Silenced) => Ok((Some("firing"), Some("silenced"))),
        Err(_) => Err(Status::invalid_argument(format!(
            "state: {state} is not a trust.notifications.v1.AlertState"
        ))),
    }
}

fn internal(err: sqlx::Error) -> Status {
    tracing::error!(error = %err, "database error in the notifications API");
    Status::internal("database error; see the notifications service log")
}

#[tonic::async_trait]
impl pb::notifications_server::Notifications for NotificationsApi {
    /// Validate the whole directory first, then upsert staff and replace the responsibilities in one
    /// transaction: a rejected directory changes nothing.
    async fn put_staff_directory(
        &self,
        request: Request<pb::StaffDirectory>,
    ) -> Result<Response<pb::PutStaffDirectoryResponse>, Status> {
        let directory = request.into_inner();
        let mut tx = self.pool.begin().await.map_err(internal)?;
        store::lock_directory(&mut tx).await.map_err(internal)?;
        let referenced: Vec<String> = directory
            .responsibilities
            .iter()
            .map(|r| r.staff_code.clone())
            .chain(directory.staff.iter().map(|s| s.cover_staff_code.clone()))
            .filter(|code| !code.is_empty())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let existing: HashSet<String> = store::existing_staff(&mut tx, &referenced)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        validate_directory(&directory, |code| existing.contains(code))
            .map_err(|err| Status::invalid_argument(err.reason))?;
        let (staff, responsibilities) = store::replace_directory(&mut tx, &directory)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(staff, responsibilities, "staff directory replaced");
        Ok(Response::new(pb::PutStaffDirectoryResponse {
            staff: u32::try_from(staff).unwrap_or(u32::MAX),
            responsibilities: u32::try_from(responsibilities).unwrap_or(u32::MAX),
        }))
    }

    async fn put_routing(
        &self,
        request: Request<pb::RoutingConfig>,
    ) -> Result<Response<pb::PutRoutingResponse>, Status> {
        let config = request.into_inner();
        let routing = routing_from_proto(&config)
            .and_then(|routing| check_webhooks(&routing, &self.webhooks).map(|()| routing))
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        store::save_routing(&mut conn, &config.encode_to_vec())
            .await
            .map_err(internal)?;
        tracing::info!(
            policies = routing.policies.len(),
            "routing configuration replaced"
        );
        Ok(Response::new(pb::PutRoutingResponse {
            policies: u32::try_from(routing.policies.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn get_routing(
        &self,
        _request: Request<pb::GetRoutingRequest>,
    ) -> Result<Response<pb::RoutingConfig>, Status> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let stored = store::routing(&mut conn).await.map_err(internal)?;
        let config = match stored {
            None => pb::RoutingConfig::default(),
            Some(bytes) => pb::RoutingConfig::decode(bytes.as_slice()).map_err(|e| {
                Status::internal(format!("the stored routing configuration cannot be read: {e}"))
            })?,
        };
        Ok(Response::new(config))
    }

    /// Record the acknowledgement and stop the alert's ladder, in one transaction.
    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::AcknowledgeAlertResponse>, Status> {
        let request = request.into_inner();
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let alert = alert_actions::acknowledge(&mut tx, &request.dedup_key, &request.by, &request.note)
            .await
            .map_err(action_status)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::AcknowledgeAlertResponse {
            alert: Some(alert_to_proto(alert)),
        }))
    }

    async fn resolve_alert(
        &self,
        request: Request<pb::ResolveAlertRequest>,
    ) -> Result<Response<pb::ResolveAlertResponse>, Status> {
        let request = request.into_inner();
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let alert = alert_actions::resolve_by_hand(
            &mut tx,
            &self.email,
            &request.dedup_key,
            &request.by,
            &request.reason,
        )
        .await
        .map_err(action_status)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::ResolveAlertResponse {
            alert: Some(alert_to_proto(alert)),
        }))
    }

    async fn comment_on_alert(
        &self,
        request: Request<pb::CommentOnAlertRequest>,
    ) -> Result<Response<pb::CommentOnAlertResponse>, Status> {
        let request = request.into_inner();
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let entry = alert_actions::comment(&mut conn, &request.dedup_key, &request.by, &request.text)
            .await
            .map_err(action_status)?;
        Ok(Response::new(pb::CommentOnAlertResponse {
            entry: Some(history_to_proto(entry)),
        }))
    }

    async fn get_alert(
        &self,
        request: Request<pb::GetAlertRequest>,
    ) -> Result<Response<pb::GetAlertResponse>, Status> {
        let dedup_key = request.into_inner().dedup_key;
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let alert = store::list_alerts(&mut conn, AlertFilter::key(&dedup_key), 1)
            .await
            .map_err(internal)?
            .into_iter()
            .next()
            .ok_or_else(|| Status::not_found(format!("no alert {dedup_key:?}")))?;
        let history = store::alert_history(&mut conn, &dedup_key)
            .await
            .map_err(internal)?;
        let deliveries = store::deliveries_of(&mut conn, &dedup_key)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::GetAlertResponse {
            alert: Some(alert_to_proto(alert)),
            history: history.into_iter().map(history_to_proto).collect(),
            deliveries: deliveries.into_iter().map(to_proto).collect(),
        }))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let request = request.into_inner();
        let staff_code = request.staff_code.trim();
        if staff_code.is_empty() {
            return Err(Status::invalid_argument("staff_code: whose inbox?"));
        }
        let (state, also) = state_filter(request.state)?;
        let filter = AlertFilter {
            state,
            also,
            dedup_key: None,
        };
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        if store::existing_staff(&mut conn, &[staff_code.to_owned()])
            .await
            .map_err(internal)?
            .is_empty()
        {
            return Err(Status::not_found(format!(
                "staff_code: {staff_code:?} is not in the staff directory"
            )));
        }
        let rows = store::inbox(
            &mut conn,
            staff_code,
            filter,
            i64::from(list_limit(request.limit)),
        )
        .await
        .map_err(internal)?;
        Ok(Response::new(pb::ListInboxResponse {
            items: rows
                .into_iter()
                .map(|row| pb::InboxItem {
                    last_told_at: Some(timestamp(row.last_told_at)),
                    last_step: row.last_step,
                    covering_for: row.covering_for.unwrap_or_default(),
                    alert: Some(alert_to_proto(row.alert)),
                })
                .collect(),
        }))
    }

    async fn put_silence(&self, request: Request<pb::Silence>) -> Result<Response<pb::Silence>, Status> {
        let request = request.into_inner();
        let matchers = request.matchers.clone().unwrap_or_default();
        let checked =
            matchers_from_proto("silence", &matchers).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc();
        let at = |t: Option<&prost_types::Timestamp>, field: &str| {
            t.map(|t| {
                crate::domain::event::to_datetime(t)
                    .ok_or_else(|| Status::invalid_argument(format!("{field}: not a valid time")))
            })
            .transpose()
        };
        let starts_at = at(request.starts_at.as_ref(), "starts_at")?.unwrap_or(now);
        let ends_at = at(request.ends_at.as_ref(), "ends_at")?
            .ok_or_else(|| Status::invalid_argument("ends_at: a silence needs an end"))?;
        let silence = Silence::new(checked, starts_at, ends_at, &request.author, &request.reason)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let record = store::SilenceRecord {
            id: uuid::Uuid::now_v7(),
            matchers: matchers.encode_to_vec(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            author: silence.author,
            reason: silence.reason,
            created_at: now,
        };
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        store::add_silence(&mut conn, &record).await.map_err(internal)?;
        tracing::info!(silence = %record.id, author = %record.author, reason = %record.reason, "silence added");
        Ok(Response::new(silence_to_proto(record)))
    }

    async fn list_silences(
        &self,
        request: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let rows = store::silences(&mut conn, request.into_inner().include_ended)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListSilencesResponse {
            silences: rows.into_iter().map(silence_to_proto).collect(),
        }))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let request = request.into_inner();
        let (state, also) = state_filter(request.state)?;
        let filter = AlertFilter {
            state,
            also,
            dedup_key: None,
        };
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let rows = store::list_alerts(&mut conn, filter, i64::from(list_limit(request.limit)))
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: rows.into_iter().map(alert_to_proto).collect(),
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let request = request.into_inner();
        let limit = list_limit(request.limit);
        let rows = store::list_deliveries(&self.pool, &request.dedup_key, i64::from(limit))
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: rows.into_iter().map(to_proto).collect(),
        }))
    }

    /// Check the set by rendering sample events, then store it in place of the last: a set that fails
    /// changes nothing.
    async fn put_email_templates(
        &self,
        request: Request<pb::EmailTemplates>,
    ) -> Result<Response<pb::PutEmailTemplatesResponse>, Status> {
        let mut replacements = BTreeMap::new();
        for template in request.into_inner().templates {
            let name = template.name.trim().to_owned();
            if replacements.insert(name.clone(), template.source).is_some() {
                return Err(Status::invalid_argument(format!("template {name}: given twice")));
            }
        }
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let revision = email_templates::put_templates(&mut conn, &replacements)
            .await
            .map_err(internal)?
            .map_err(|err| Status::invalid_argument(format!("template {err}")))?;
        tracing::info!(
            revision,
            replaced = ?replacements.keys().collect::<Vec<_>>(),
            "email templates replaced"
        );
        Ok(Response::new(pb::PutEmailTemplatesResponse {
            revision,
            replaced: u32::try_from(replacements.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn get_email_templates(
        &self,
        _request: Request<pb::GetEmailTemplatesRequest>,
    ) -> Result<Response<pb::EmailTemplates>, Status> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        let stored = store::email::email_templates(&mut conn).await.map_err(internal)?;
        let (replaced, revision, updated_at) = match stored {
            Some(stored) => (
                stored.templates,
                stored.revision,
                Some(timestamp(stored.updated_at)),
            ),
            None => (BTreeMap::new(), 0, None),
        };
        let templates = BUILT_IN
            .iter()
            .map(|(name, built_in)| match replaced.get(*name) {
                Some(source) => pb::EmailTemplate {
                    name: (*name).to_owned(),
                    source: source.clone(),
                    built_in: false,
                },
                None => pb::EmailTemplate {
                    name: (*name).to_owned(),
                    source: (*built_in).to_owned(),
                    built_in: true,
                },
            })
            .collect();
        Ok(Response::new(pb::EmailTemplates {
            templates,
            revision,
            updated_at,
        }))
    }
}

fn silence_to_proto(row: store::SilenceRecord) -> pb::Silence {
    pb::Silence {
        id: row.id.to_string(),
        matchers: pb::RouteMatchers::decode(row.matchers.as_slice()).ok(),
        starts_at: Some(timestamp(row.starts_at)),
        ends_at: Some(timestamp(row.ends_at)),
        author: row.author,
        reason: row.reason,
        created_at: Some(timestamp(row.created_at)),
    }
}

fn list_limit(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    }
}

fn alert_to_proto(row: AlertRecord) -> pb::Alert {
    let state = match row.state.as_str() {
        "firing" => pb::AlertState::Firing,
        "resolved" => pb::AlertState::Resolved,
        _ => pb::AlertState::Unspecified,
    };
    pb::Alert {
        dedup_key: row.dedup_key,
        occurrence_id: row.occurrence_id,
        state: state.into(),
        source: row.source,
        rule: row.rule,
        summary: row.summary,
        indicator_code: row.indicator_code,
        locality_code: row.locality_code,
        raised_at: row.raised_at.map(timestamp),
        resolved_at: row.resolved_at.map(timestamp),
        deliveries: u32::try_from(row.deliveries).unwrap_or(u32::MAX),
        failed_deliveries: u32::try_from(row.failed_deliveries).unwrap_or(u32::MAX),
        acknowledged_by: row.acknowledged_by.unwrap_or_default(),
        acknowledged_at: row.acknowledged_at.map(timestamp),
        silenced_by: row.silenced_by.map(|id| id.to_string()).unwrap_or_default(),
        inhibited_by: row.inhibited_by.unwrap_or_default(),
        resolved_by: row.resolved_by.unwrap_or_default(),
        severity: row.severity,
    }
}

fn history_to_proto(entry: HistoryEntry) -> pb::AlertHistoryEntry {
    pb::AlertHistoryEntry {
        at: Some(timestamp(entry.at)),
        occurrence_id: entry.occurrence_id,
        what: entry.what,
        by: entry.by,
        detail: entry.detail,
    }
}

fn channel_to_proto(channel: &str) -> pb::Channel {
    match Channel::parse(channel) {
        Some(Channel::Email) => pb::Channel::Email,
        Some(Channel::Webhook) => pb::Channel::Webhook,
        Some(Channel::Inbox) => pb::Channel::Inbox,
        None => pb::Channel::Unspecified,
    }
}

fn to_proto(row: DeliveryRecord) -> pb::Delivery {
    let state = match row.state.as_str() {
        "pending" => pb::DeliveryState::Pending,
        "sent" => pb::DeliveryState::Sent,
        "failed" => pb::DeliveryState::Failed,
        _ => pb::DeliveryState::Unspecified,
    };
    pb::Delivery {
        id: row.id.to_string(),
        dedup_key: row.dedup_key,
        occurrence_id: row.occurrence_id,
        event: row.event,
        staff_code: row.staff_code,
        email: row.email,
        state: state.into(),
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_error: row.last_error.unwrap_or_default(),
        created_at: Some(timestamp(row.created_at)),
        sent_at: row.sent_at.map(timestamp),
        covering_for: row.covering_for.unwrap_or_default(),
        channel: channel_to_proto(&row.channel).into(),
        webhook: row.webhook.unwrap_or_default(),
        step: row.step,
        next_attempt_at: Some(timestamp(row.next_attempt_at)),
        digest_id: row.digest_of.map(|id| id.to_string()).unwrap_or_default(),
    }
}
