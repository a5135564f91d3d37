//! The consumer of escalations: "what happens to an escalation" is [`apply`]. It runs inside the consumer's
//! transaction, so the alert, the queued emails and the processed message id commit together; sending is
//! left to the delivery worker, so a slow mail relay never holds up the bus.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::alerting::v1::{EscalationRaised, Severity};
use trust_runtime::dead_letter::ParkedMessage;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::domain::ladder::{Channel, Ladder, Level, Policy, Reach, Stage, Target, Wait};
use crate::domain::routing_config::Routing;
use crate::domain::{AlertState, CurrentAlert, Escalation, EventKind, Transition};
use crate::email_templates::EmailComposer;
use crate::reference::Reference;
use crate::store::{Told, batch};
use crate::telling::{Effects, Telling, city_of, note_city_alert, routing_facts};

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

    /// The group set-wise ([`apply_events`]). An event that cannot be decoded fails the group, which the
    /// consumer then applies one event at a time, so only that event is parked.
    async fn handle_group<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> Result<(), HandlerError> {
        let events = deliveries
            .iter()
            .map(|d| Escalation::decode(d.subject, d.payload))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| HandlerError::Permanent(err.to_string()))?;
        apply_events(conn, &self.email, &events).await?;
        Ok(())
    }
}

/// Record the event on its alert and tell people: on a raise, the first level of the escalation policy
/// the routing tree gives it (or, with no routing configured, whoever is responsible), starting its ladder;
/// on a resolution, everyone who was told, closing the ladder. Returns how many deliveries were newly
/// queued (0 for a repeat of an event already handled).
pub async fn apply(
    conn: &mut PgConnection,
    email: &EmailComposer,
    event: &Escalation,
) -> Result<u64, sqlx::Error> {
    apply_events(conn, email, std::slice::from_ref(event)).await
}

/// [`apply`] for a group of events, in order, set-wise: the directory, routing, silences and templates
/// are read once for the group, and each table is read and written with one statement per run. A run is a
/// stretch of the group in which no alert has two events (a raise and its resolution in one group fall in
/// successive runs), so every event sees exactly what the events before it did, as if applied alone.
pub async fn apply_events(
    conn: &mut PgConnection,
    email: &EmailComposer,
    events: &[Escalation],
) -> Result<u64, sqlx::Error> {
    let all: Vec<&Escalation> = events.iter().collect();
    if all.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&str> = all.iter().map(|e| e.dedup_key()).collect();
    batch::lock_alert_keys(conn, &keys).await?;
    let reference = Reference::load(conn, email, &all).await?;
    let mut queued = 0;
    for run in runs(&all) {
        queued += apply_run(conn, email, &reference, run).await?;
    }
    Ok(queued)
}

/// The group cut, in order, into runs holding at most one event per alert.
fn runs<'g, 'e>(events: &'g [&'e Escalation]) -> Vec<&'g [&'e Escalation]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut keys: HashSet<&str> = HashSet::new();
    for (at, event) in events.iter().enumerate() {
        if !keys.insert(event.dedup_key()) {
            runs.push(&events[start..at]);
            start = at;
            keys.clear();
            keys.insert(event.dedup_key());
        }
    }
    runs.push(&events[start..]);
    runs
}

/// One run: lock the alerts, drop stale events, record the rest on their alerts, then decide and write
/// what each one does.
async fn apply_run(
    conn: &mut PgConnection,
    email: &EmailComposer,
    reference: &Reference,
    run: &[&Escalation],
) -> Result<u64, sqlx::Error> {
    let keys: Vec<&str> = run.iter().map(|e| e.dedup_key()).collect();
    let current = batch::lock_alerts(conn, &keys).await?;
    let live: Vec<&Escalation> = run
        .iter()
        .copied()
        .filter(|event| match event.transition(current.get(event.dedup_key())) {
            Transition::Apply => true,
            Transition::Stale(reason) => {
                tracing::info!(
                    dedup_key = event.dedup_key(),
                    occurrence_id = event.occurrence_id(),
                    event = event.kind().as_str(),
                    reason,
                    "ignoring out-of-date escalation event"
                );
                false
            }
        })
        .collect();
    if live.is_empty() {
        return Ok(0);
    }
    // The city-wide alerts firing before the run; each event then sees those the run's earlier events
    // raised or resolved (`note_city_alert`), as it would applied alone.
    let mut places: Vec<(String, String, String)> = live.iter().filter_map(|e| city_of(e)).collect();
    places.sort();
    places.dedup();
    let mut city_alerts = batch::firing_city_alerts(conn, &places).await?;
    batch::upsert_alerts(conn, &live).await?;
    let live_keys: Vec<&str> = live.iter().map(|e| e.dedup_key()).collect();
    let mut ladders = batch::lock_ladders_of(conn, &live_keys).await?;
    let resolutions: Vec<(String, String)> = live
        .iter()
        .filter(|e| e.kind() == EventKind::Resolved)
        .map(|e| (e.dedup_key().to_owned(), e.occurrence_id().to_owned()))
        .collect();
    let told = batch::raised_recipients_of(conn, &resolutions).await?;
    let now = OffsetDateTime::now_utc();
    let mut effects = Effects::default();
    for event in live {
        let key = event.dedup_key();
        let pair = (key.to_owned(), event.occurrence_id().to_owned());
        let telling = Telling {
            reference,
            city_alerts: &city_alerts,
            email,
            now,
        };
        decide(
            &telling,
            &mut effects,
            event,
            current.get(key),
            ladders.remove(key).unwrap_or_default(),
            told.get(&pair).map(Vec::as_slice).unwrap_or_default(),
        );
        note_city_alert(&mut city_alerts, event);
    }
    batch::write_effects(conn, &effects).await
}

/// What one event does once recorded on its alert, given the alert as it stood before (`current`), its
/// ladders (locked) and, for a resolution, who was told of the raise.
fn decide(
    telling: &Telling<'_>,
    effects: &mut Effects,
    event: &Escalation,
    current: Option<&CurrentAlert>,
    ladders: Vec<(String, Ladder)>,
    told: &[Told],
) {
    let now = telling.now;
    let key = event.dedup_key();
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
            effects.save_ladder(key, &occurrence, ladder);
        }
        if told_nobody {
            effects.record_history(
                event,
                "resolved",
                "resolved while held as flapping: nobody was told it fired, so nobody is told it cleared",
            );
            return;
        }
        effects.record_history(event, "resolved", event.summary());
        telling.tell_of_resolution(effects, event, told, "");
        return;
    }
    // The same occurrence raised again (re-published under another message id): its ladder keeps its
    // place; deliveries already queued are not queued twice.
    let repeat =
        current.is_some_and(|c| c.occurrence_id == event.occurrence_id() && c.state == AlertState::Firing);
    if !repeat {
        effects.record_history(event, "raised", event.summary());
    }
    let Some(routing) = &telling.reference.routing else {
        let answering = telling.reference.answering(event, &[Target::Responsible]);
        telling.tell(effects, event, &answering, &Reach::email(), "", None);
        return;
    };
    // Already climbing for this occurrence: nothing new (a repeat of the raise).
    if repeat
        && ladders
            .iter()
            .any(|(occurrence, ladder)| occurrence == event.occurrence_id() && ladder.stage != Stage::Closed)
    {
        return;
    }
    let policies = route(routing, event);
    let mut existing: Vec<Ladder> = Vec::new();
    for (occurrence, mut ladder) in ladders {
        if policies.iter().any(|p| p.name == ladder.policy.name) {
            existing.push(ladder);
        } else if ladder.stage != Stage::Closed {
            // A ladder of an earlier occurrence under a policy no route now takes the alert to: closed.
            ladder.resolve(now);
            effects.save_ladder(key, &occurrence, ladder);
        }
    }
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
        effects.save_ladder(key, event.occurrence_id(), ladder);
        if let Some(step) = first {
            let answering = telling.reference.answering(event, &step.targets);
            telling.tell(effects, event, &answering, &step.reach, "", None);
        }
    }
}

/// The policy the alert follows: the first route that takes it (the default when none does).
fn route(routing: &Routing, event: &Escalation) -> Vec<Policy> {
    let fallback = [event.locality_code().to_owned()];
    let mut policies: Vec<Policy> = Vec::new();
    for routed in routing.tree.route(&routing_facts(event, &fallback)) {
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
