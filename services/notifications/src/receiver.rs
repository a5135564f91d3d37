//! The consumer of escalations: "what happens to an escalation" is [`apply`]. It runs inside the consumer's
//! transaction, so the alert, the queued emails and the processed message id commit together; sending is
//! left to the delivery worker, so a slow mail relay never holds up the bus.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgConnection;
use trust_proto::alerting::v1::{EscalationRaised, Severity};
use trust_runtime::dead_letter::ParkedMessage;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use prost::Message;
use time::OffsetDateTime;
use trust_proto::notifications::v1::{RouteMatchers, RoutingConfig};

use crate::domain::cover::{self, Answering};
use crate::domain::ladder::{Channel, Ladder, Level, Policy, Reach, Stage, Target, Wait};
use crate::domain::quieting::{Firing, Silence, inhibited};
use crate::domain::routing::{self, AlertFacts};
use crate::domain::routing_config::{Routing, matchers_from_proto, routing_from_proto};
use crate::domain::webhook_body::{Addressee, webhook_body};
use crate::domain::{self, AlertState, Escalation, EventKind, Transition};
use crate::email_templates::EmailComposer;
use crate::store;

/// Applies escalation events from the ESCALATIONS stream.
#[derive(Debug, Clone)]
pub struct EscalationReceiver {
    email: Arc<EmailComposer>,
}

impl EscalationReceiver {
    pub fn new(email: Arc<EmailComposer>) -> Self {
        Self { email }
    }
}

/// The rule of the alert notifications raises about an escalation event it had to park.
pub const UNPROCESSABLE_EVENT_RULE: &str = "unprocessable-event";

/// An alert about a parked event, for the default route's owners: the event itself reached nobody.
fn alert_about_parked(parked: &ParkedMessage<'_>) -> Escalation {
    Escalation::Raised(EscalationRaised {
        dedup_key: format!("notifications/{UNPROCESSABLE_EVENT_RULE}/{}", parked.message_id),
        occurrence_id: format!("parked/{}", parked.message_id),
        source: crate::SERVICE.to_owned(),
        rule: UNPROCESSABLE_EVENT_RULE.to_owned(),
        severity: Severity::Warning as i32,
        summary: format!(
            "An escalation event on {} (message {}) could not be processed and was parked in the dead-letter \
             table, so whoever it was meant for has not been told: {}. Fix the sender, then replay it with \
             `trustctl dead-letters`.",
            parked.subject, parked.message_id, parked.error
        ),
        raised_at: None,
        subject: None,
    })
}

impl MessageHandler for EscalationReceiver {
    async fn on_parked<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        parked: &'a ParkedMessage<'a>,
    ) -> Result<(), HandlerError> {
        let queued = apply(conn, &self.email, &alert_about_parked(parked)).await?;
        tracing::warn!(
            message_id = parked.message_id,
            queued,
            "escalation event parked; the default route's owners are told"
        );
        Ok(())
    }

    async fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let event = Escalation::decode(delivery.subject, delivery.payload)
            .map_err(|err| HandlerError::Permanent(err.to_string()))?;
        apply(conn, &self.email, &event).await?;
        Ok(())
    }
}

/// Record the event on its alert and tell people: on a raise, the first level of the escalation policy
/// the routing tree gives it (or, with no routing configured, whoever is responsible), starting its ladder;
/// on a resolution, everyone who was told, closing the ladder. Returns how many emails were newly queued
/// (0 for a repeat of an event already handled).
pub async fn apply(
    conn: &mut PgConnection,
    email: &EmailComposer,
    event: &Escalation,
) -> Result<u64, sqlx::Error> {
    let current = store::lock_alert(conn, event.dedup_key()).await?;
    if let Transition::Stale(reason) = event.transition(current.as_ref()) {
        tracing::info!(
            dedup_key = event.dedup_key(),
            occurrence_id = event.occurrence_id(),
            event = event.kind().as_str(),
            reason,
            "ignoring out-of-date escalation event"
        );
        return Ok(0);
    }
    store::upsert_alert(conn, event).await?;
    let now = OffsetDateTime::now_utc();
    let ladders = store::lock_ladders(conn, event.dedup_key()).await?;

    if event.kind() == EventKind::Resolved {
        // Resolved while a flap hold kept it back: nobody heard it fired, so nobody hears it cleared.
        let held: Vec<bool> = ladders
            .iter()
            .filter(|(occurrence, _)| occurrence == event.occurrence_id())
            .map(|(_, ladder)| ladder.stage == Stage::Held)
            .collect();
        let told_nobody = !held.is_empty() && held.iter().all(|h| *h);
        for (occurrence, mut ladder) in ladders {
            ladder.resolve(now);
            store::save_ladder(conn, event.dedup_key(), &occurrence, &ladder).await?;
        }
        if told_nobody {
            store::record_history(
                conn,
                event.dedup_key(),
                event.occurrence_id(),
                "resolved",
                event.source(),
                "resolved while held as flapping: nobody was told it fired, so nobody is told it cleared",
            )
            .await?;
            return Ok(0);
        }
        store::record_history(
            conn,
            event.dedup_key(),
            event.occurrence_id(),
            "resolved",
            event.source(),
            event.summary(),
        )
        .await?;
        return tell_of_resolution(conn, email, event, "").await;
    }
    // The same occurrence raised again (re-published under another message id): its ladder keeps its
    // place; deliveries already queued are not queued twice.
    let repeat = current
        .as_ref()
        .is_some_and(|c| c.occurrence_id == event.occurrence_id() && c.state == AlertState::Firing);
    if !repeat {
        store::record_history(
            conn,
            event.dedup_key(),
            event.occurrence_id(),
            "raised",
            event.source(),
            event.summary(),
        )
        .await?;
    }

    let Some(routing) = routing(conn).await? else {
        let answering = answering_for(conn, event, &[Target::Responsible]).await?;
        return queue_for(conn, email, event, &answering, &Reach::email(), "", None).await;
    };
    // Already climbing for this occurrence: nothing new (a repeat of the raise).
    if repeat
        && ladders
            .iter()
            .any(|(occurrence, ladder)| occurrence == event.occurrence_id() && ladder.stage != Stage::Closed)
    {
        return Ok(0);
    }
    let policies = route(&routing, event);
    let mut existing: Vec<Ladder> = Vec::new();
    for (occurrence, mut ladder) in ladders {
        if policies.iter().any(|p| p.name == ladder.policy.name) {
            existing.push(ladder);
        } else if ladder.stage != Stage::Closed {
            // A ladder of an earlier occurrence under a policy no route now takes the alert to: closed.
            ladder.resolve(now);
            store::save_ladder(conn, event.dedup_key(), &occurrence, &ladder).await?;
        }
    }
    let mut queued = 0;
    for policy in policies {
        let before = existing
            .iter()
            .position(|l| l.policy.name == policy.name)
            .map(|at| existing.swap_remove(at));
        let (ladder, first) = match before {
            // Fired again after a resolve: held if it flaps, else climbing from the first level.
            Some(mut ladder) if ladder.stage == Stage::Closed => {
                let first = ladder.refire(policy, now);
                (ladder, first)
            }
            _ => Ladder::fire(policy, now),
        };
        store::save_ladder(conn, event.dedup_key(), event.occurrence_id(), &ladder).await?;
        if let Some(step) = first {
            let answering = answering_for(conn, event, &step.targets).await?;
            queued += queue_for(conn, email, event, &answering, &step.reach, "", None).await?;
        }
    }
    Ok(queued)
}

/// Tell the people who were told of the raise (covers and escalations included) that it cleared, each the
/// way they were reached; `step` tells one resolution of an occurrence from another ("" for the source's).
/// A resolution whose raise reached nobody here goes to whoever is responsible now.
pub(crate) async fn tell_of_resolution(
    conn: &mut PgConnection,
    email: &EmailComposer,
    event: &Escalation,
    step: &str,
) -> Result<u64, sqlx::Error> {
    let told = store::raised_recipients(conn, event.dedup_key(), event.occurrence_id()).await?;
    if told.is_empty() {
        let answering = answering_for(conn, event, &[Target::Responsible]).await?;
        return queue_for(conn, email, event, &answering, &Reach::email(), step, None).await;
    }
    let mut by_reach: Vec<(Reach, Vec<Answering>)> = Vec::new();
    for person in told {
        let reach = Reach {
            channel: Channel::parse(&person.channel).unwrap_or(Channel::Email),
            fallback: Vec::new(),
            webhook: person.webhook,
        };
        let answering = Answering {
            staff_code: person.staff_code,
            covering_for: None,
        };
        match by_reach.iter_mut().find(|(r, _)| *r == reach) {
            Some((_, people)) => people.push(answering),
            None => by_reach.push((reach, vec![answering])),
        }
    }
    let mut queued = 0;
    for (reach, people) in by_reach {
        queued += queue_for(conn, email, event, &people, &reach, step, None).await?;
    }
    Ok(queued)
}

/// The routing configuration as stored; a stored one that no longer reads is logged and ignored (it was
/// checked when stored, so this means a newer service stored something this one cannot read).
async fn routing(conn: &mut PgConnection) -> Result<Option<Routing>, sqlx::Error> {
    let Some(bytes) = store::routing(conn).await? else {
        return Ok(None);
    };
    let read = RoutingConfig::decode(bytes.as_slice())
        .map_err(|e| e.to_string())
        .and_then(|config| routing_from_proto(&config).map_err(|e| e.to_string()));
    match read {
        Ok(routing) => Ok(Some(routing)),
        Err(reason) => {
            tracing::error!(%reason, "the stored routing configuration cannot be read; telling whoever is responsible");
            Ok(None)
        }
    }
}

/// What routing and silences match on. `fallback_lineage` holds the event's own locality, for events that
/// carry no lineage.
fn facts<'a>(event: &'a Escalation, fallback_lineage: &'a [String; 1]) -> AlertFacts<'a> {
    let breach = event.indicator();
    let lineage: &[String] = match breach {
        Some(b) if !b.locality_lineage.is_empty() => &b.locality_lineage,
        _ if !event.locality_code().is_empty() => fallback_lineage,
        _ => &[],
    };
    let severity = match event {
        Escalation::Raised(raised) => match Severity::try_from(raised.severity) {
            Ok(Severity::Critical) => Some(routing::Severity::Critical),
            Ok(Severity::Warning) => Some(routing::Severity::Warning),
            _ => None,
        },
        Escalation::Resolved(_) => None,
    };
    AlertFacts {
        kind: if breach.is_some() {
            "indicator"
        } else {
            event.rule()
        },
        severity,
        source: event.source(),
        outcome: breach.map(|b| b.outcome_code.as_str()).filter(|c| !c.is_empty()),
        priority: breach.map(|b| b.priority_code.as_str()).filter(|c| !c.is_empty()),
        indicator: Some(event.indicator_code()).filter(|c| !c.is_empty()),
        locality_lineage: lineage,
        partner: breach.map(|b| b.partner_code.as_str()).filter(|c| !c.is_empty()),
    }
}

/// The policy the alert follows: the first route that takes it (the default when none does).
fn route(routing: &Routing, event: &Escalation) -> Vec<Policy> {
    let fallback = [event.locality_code().to_owned()];
    let mut policies: Vec<Policy> = Vec::new();
    for routed in routing.tree.route(&facts(event, &fallback)) {
        let policy = routing
            .policies
            .get(&routed.policy)
            .or_else(|| routing.policies.get(&routing.tree.default_policy));
        if let Some(policy) = policy
            && !policies.iter().any(|p| p.name == policy.name)
        {
            policies.push(policy.clone());
        }
    }
    if policies.is_empty() {
        policies.push(responsible_only());
    }
    policies
}

/// What a stored routing that names no usable policy falls back to: whoever is responsible, by email.
fn responsible_only() -> Policy {
    Policy {
        name: "responsible".to_owned(),
        levels: vec![Level {
            targets: vec![Target::Responsible],
            channel: Channel::Email,
            wait: Wait::WorkingDays(1),
            fallback: Vec::new(),
            webhook: None,
        }],
        repeat: Wait::WorkingDays(1),
        acknowledgement_timeout: Wait::WorkingDays(2),
        flap_hold: None,
    }
}

/// The people a step's targets name for this alert, each replaced by their cover when away.
pub(crate) async fn answering_for(
    conn: &mut PgConnection,
    event: &Escalation,
    targets: &[Target],
) -> Result<Vec<Answering>, sqlx::Error> {
    let mut meant: Vec<String> = Vec::new();
    for target in targets {
        match target {
            Target::Responsible => {
                let candidates =
                    store::candidate_responsibilities(conn, event.indicator_code(), event.locality_code())
                        .await?;
                meant.extend(domain::select_recipients(
                    &candidates,
                    event.indicator_code(),
                    event.locality_code(),
                ));
            }
            Target::Person(code) => meant.push(code.clone()),
            Target::Role(_) => {}
        }
    }
    let roles: Vec<String> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Role(role) => Some(role.clone()),
            _ => None,
        })
        .collect();
    if !roles.is_empty() {
        let place: Vec<String> = match event.indicator() {
            Some(b) if !b.locality_lineage.is_empty() => b.locality_lineage.clone(),
            _ => vec![event.locality_code().to_owned()],
        };
        for (code, localities) in store::staff_with_roles(conn, &roles).await? {
            // A role holder answers where their localities cover the alert's place (or everywhere).
            if localities.is_empty() || localities.iter().any(|l| place.contains(l)) {
                meant.push(code);
            }
        }
    }
    let presence = store::presence(conn).await?;
    let mut answering: Vec<Answering> = Vec::new();
    for staff_code in meant {
        let who = cover::who_answers(&staff_code, &presence);
        if !answering.iter().any(|a| a.staff_code == who.staff_code) {
            answering.push(who);
        }
    }
    Ok(answering)
}

/// Queue the event for each person answering by the step's channel, once per `step` of the occurrence;
/// `why` opens the message of a later step (escalated, repeated) and marks its subject.
pub(crate) async fn queue_for(
    conn: &mut PgConnection,
    email: &EmailComposer,
    event: &Escalation,
    answering: &[Answering],
    reach: &Reach,
    step: &str,
    why: Option<&str>,
) -> Result<u64, sqlx::Error> {
    if let Some(city_wide) = inhibiting(conn, event).await? {
        store::mark_inhibited(conn, event.dedup_key(), &city_wide).await?;
        tracing::info!(
            dedup_key = event.dedup_key(),
            event = event.kind().as_str(),
            step,
            inhibited_by = %city_wide,
            "inhibited by the city-wide alert: kept, nobody told"
        );
        return Ok(0);
    }
    if let Some(silence) = silencing(conn, event).await? {
        store::mark_silenced(conn, event.dedup_key(), silence).await?;
        tracing::info!(
            dedup_key = event.dedup_key(),
            event = event.kind().as_str(),
            step,
            %silence,
            "silenced: the alert is kept, nobody is told"
        );
        return Ok(0);
    }
    let staff_codes: Vec<String> = answering.iter().map(|a| a.staff_code.clone()).collect();
    let covering_for: HashMap<String, String> = answering
        .iter()
        .filter_map(|a| a.covering_for.clone().map(|away| (a.staff_code.clone(), away)))
        .collect();
    let recipients = store::staff_contacts(conn, &staff_codes).await?;
    if recipients.is_empty() {
        // The alert is recorded all the same (and listed by `trustctl alerts`); a directory with a default
        // responsibility (no indicator, no locality) makes sure someone always hears.
        tracing::error!(
            dedup_key = event.dedup_key(),
            occurrence_id = event.occurrence_id(),
            indicator_code = event.indicator_code(),
            locality_code = event.locality_code(),
            event = event.kind().as_str(),
            step,
            "nobody in the directory answers for this escalation; nobody will be emailed"
        );
        return Ok(0);
    }
    let emails = email
        .compose(conn, event, why, &recipients, &covering_for)
        .await?;
    let payloads: HashMap<String, serde_json::Value> = recipients
        .iter()
        .map(|r| {
            let to = Addressee {
                staff_code: &r.code,
                name: &r.name,
                email: &r.email,
                covering_for: covering_for.get(&r.code).map(String::as_str),
            };
            (r.code.clone(), webhook_body(event, &to, step, why))
        })
        .collect();
    let queued = store::queue_deliveries(
        conn,
        event,
        &recipients,
        &covering_for,
        &store::Queued {
            reach,
            emails: &emails,
            step,
            payloads: &payloads,
        },
    )
    .await?;
    tracing::info!(
        dedup_key = event.dedup_key(),
        occurrence_id = event.occurrence_id(),
        event = event.kind().as_str(),
        step,
        recipients = recipients.len(),
        channel = reach.channel.as_str(),
        queued,
        "escalation recorded; deliveries queued"
    );
    Ok(queued)
}

/// The silence in force now that mutes this alert, if any.
async fn silencing(conn: &mut PgConnection, event: &Escalation) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let fallback = [event.locality_code().to_owned()];
    let alert = facts(event, &fallback);
    for stored in store::silences(conn, false).await? {
        let matchers = RouteMatchers::decode(stored.matchers.as_slice())
            .ok()
            .and_then(|m| matchers_from_proto("silence", &m).ok());
        let Some(matchers) = matchers else {
            tracing::error!(silence = %stored.id, "a stored silence cannot be read; ignoring it");
            continue;
        };
        let silence = Silence {
            matchers,
            starts_at: stored.starts_at,
            ends_at: stored.ends_at,
            author: stored.author,
            reason: stored.reason,
        };
        if silence.mutes(&alert, now) {
            return Ok(Some(stored.id));
        }
    }
    Ok(None)
}

/// The firing city-wide alert of the same indicator and rule that suppresses this local one, if any.
async fn inhibiting(conn: &mut PgConnection, event: &Escalation) -> Result<Option<String>, sqlx::Error> {
    let Some(lineage) = event.indicator().map(|b| b.locality_lineage.as_slice()) else {
        return Ok(None);
    };
    let Some(city) = lineage.last().filter(|_| lineage.len() > 1) else {
        return Ok(None);
    };
    let Some(city_alert) = store::firing_alert_for(conn, event.indicator_code(), event.rule(), city).await?
    else {
        return Ok(None);
    };
    let city_lineage = [city.clone()];
    let this = Firing {
        indicator: event.indicator_code(),
        rule: event.rule(),
        locality_lineage: lineage,
    };
    let city_wide = Firing {
        indicator: event.indicator_code(),
        rule: event.rule(),
        locality_lineage: &city_lineage,
    };
    Ok(inhibited(&this, &[city_wide]).then_some(city_alert))
}
