//! Telling people about an alert, decided in plain Rust: who answers a step (with cover), whether a
//! city-wide alert or a silence keeps it quiet, the emails and webhook bodies, and the deliveries to queue.
//! What is decided is collected as [`Effects`] and written set-wise by `store::batch::write_effects`, once
//! for a whole group of events or claim of ladders.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::cover::Answering;
use crate::domain::ladder::{Channel, Ladder, Reach, Target};
use crate::domain::quieting::{Firing, inhibited};
use crate::domain::webhook_body::{Addressee, webhook_body};
use crate::domain::{Escalation, EventKind, routing};
use crate::email_templates::{ComposedEmail, EmailComposer};
use crate::reference::Reference;
use crate::store::{StaffContact, Told, batch};

/// One delivery to queue (unique per occurrence, event, step, person and channel; a repeat is skipped).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub event: &'static str,
    pub step: String,
    pub recipient: StaffContact,
    pub covering_for: Option<String>,
    pub email: ComposedEmail,
    pub channel: Channel,
    pub fallback: Vec<Channel>,
    pub webhook: Option<String>,
    pub payload: serde_json::Value,
}

/// A line of an alert's history.
#[derive(Debug, Clone)]
pub struct NewHistory {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub what: &'static str,
    pub by: String,
    pub detail: String,
}

/// Everything a group of events (or a claim of ladders) writes besides the alerts themselves.
#[derive(Debug, Default)]
pub struct Effects {
    /// (dedup key, occurrence, ladder); a later save of the same alert and policy replaces an earlier one.
    pub ladders: Vec<(String, String, Ladder)>,
    pub history: Vec<NewHistory>,
    pub deliveries: Vec<NewDelivery>,
    /// (alert, the city-wide alert that kept it quiet)
    pub inhibited: Vec<(String, String)>,
    /// (alert, the silence that muted it)
    pub silenced: Vec<(String, Uuid)>,
}

impl Effects {
    pub fn save_ladder(&mut self, dedup_key: &str, occurrence_id: &str, ladder: Ladder) {
        self.ladders
            .retain(|(key, _, saved)| !(key == dedup_key && saved.policy.name == ladder.policy.name));
        self.ladders
            .push((dedup_key.to_owned(), occurrence_id.to_owned(), ladder));
    }

    pub fn record_history(&mut self, event: &Escalation, what: &'static str, detail: &str) {
        self.history.push(NewHistory {
            dedup_key: event.dedup_key().to_owned(),
            occurrence_id: event.occurrence_id().to_owned(),
            what,
            by: event.source().to_owned(),
            detail: detail.to_owned(),
        });
    }
}

/// The firing city-wide alerts that could inhibit the events being told: (indicator, rule, city) to the
/// keys of the alerts firing there (the first inhibits). Read before a run's own alerts are written; each
/// event then sees what the run's earlier events did ([`note_city_alert`]), as it would applied alone.
pub type CityAlerts = HashMap<(String, String, String), BTreeSet<String>>;

/// The (indicator, rule, city) an event's locality alert would be inhibited by, if it is a local one.
pub fn city_of(event: &Escalation) -> Option<(String, String, String)> {
    let lineage = event.indicator().map(|b| b.locality_lineage.as_slice())?;
    let city = lineage.last().filter(|_| lineage.len() > 1)?;
    Some((
        event.indicator_code().to_owned(),
        event.rule().to_owned(),
        city.clone(),
    ))
}

/// After `event` was applied, for the events after it: its alert fires where the raise says (indicator,
/// rule, locality), or no longer fires anywhere (a resolution, which need not say where), as the stored
/// alert now does.
pub fn note_city_alert(city_alerts: &mut CityAlerts, event: &Escalation) {
    let key = event.dedup_key();
    for firing in city_alerts.values_mut() {
        firing.remove(key);
    }
    if event.kind() == EventKind::Raised && !event.indicator_code().is_empty() {
        let place = (
            event.indicator_code().to_owned(),
            event.rule().to_owned(),
            event.locality_code().to_owned(),
        );
        city_alerts.entry(place).or_default().insert(key.to_owned());
    }
}

/// What telling reads: the snapshot, the city-wide alerts, the email composer and the moment.
pub struct Telling<'a> {
    pub reference: &'a Reference,
    pub city_alerts: &'a CityAlerts,
    pub email: &'a EmailComposer,
    pub now: OffsetDateTime,
}

impl Telling<'_> {
    /// The firing city-wide alert of the same indicator and rule that suppresses this local one, if any.
    fn inhibiting(&self, event: &Escalation) -> Option<String> {
        let place = city_of(event)?;
        let city_alert = self.city_alerts.get(&place)?.first()?;
        let lineage = event
            .indicator()
            .map(|b| b.locality_lineage.as_slice())
            .unwrap_or_default();
        let city_lineage = [place.2.clone()];
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
        inhibited(&this, &[city_wide]).then(|| city_alert.clone())
    }

    /// Queue the event for each person answering by the step's channel, once per `step` of the occurrence;
    /// `why` opens the message of a later step (escalated, repeated) and marks its subject. A delivery
    /// already queued for the same person and step is skipped when written.
    pub fn tell(
        &self,
        effects: &mut Effects,
        event: &Escalation,
        answering: &[Answering],
        reach: &Reach,
        step: &str,
        why: Option<&str>,
    ) {
        if let Some(city_wide) = self.inhibiting(event) {
            tracing::info!(
                dedup_key = event.dedup_key(),
                event = event.kind().as_str(),
                step,
                inhibited_by = %city_wide,
                "inhibited by the city-wide alert: kept, nobody told"
            );
            effects.inhibited.push((event.dedup_key().to_owned(), city_wide));
            return;
        }
        let fallback_lineage = [event.locality_code().to_owned()];
        if let Some(silence) = self
            .reference
            .silencing(&routing_facts(event, &fallback_lineage), self.now)
        {
            tracing::info!(
                dedup_key = event.dedup_key(),
                event = event.kind().as_str(),
                step,
                %silence,
                "silenced: the alert is kept, nobody is told"
            );
            effects.silenced.push((event.dedup_key().to_owned(), silence));
            return;
        }
        let staff_codes: Vec<String> = answering.iter().map(|a| a.staff_code.clone()).collect();
        let covering_for: HashMap<String, String> = answering
            .iter()
            .filter_map(|a| a.covering_for.clone().map(|away| (a.staff_code.clone(), away)))
            .collect();
        let recipients = self.reference.contacts(&staff_codes);
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
            return;
        }
        let emails = self
            .email
            .compose(&self.reference.templates, event, why, &recipients, &covering_for);
        let decided = recipients.len();
        for (recipient, email) in recipients.into_iter().zip(emails) {
            let covering = covering_for.get(&recipient.code).cloned();
            let to = Addressee {
                staff_code: &recipient.code,
                name: &recipient.name,
                email: &recipient.email,
                covering_for: covering.as_deref(),
            };
            let payload = webhook_body(event, &to, step, why);
            effects.deliveries.push(NewDelivery {
                dedup_key: event.dedup_key().to_owned(),
                occurrence_id: event.occurrence_id().to_owned(),
                event: event.kind().as_str(),
                step: step.to_owned(),
                recipient,
                covering_for: covering,
                email,
                channel: reach.channel,
                fallback: reach.fallback.clone(),
                webhook: reach.webhook.clone(),
                payload,
            });
        }
        tracing::info!(
            dedup_key = event.dedup_key(),
            occurrence_id = event.occurrence_id(),
            event = event.kind().as_str(),
            step,
            recipients = decided,
            channel = reach.channel.as_str(),
            "escalation recorded; deliveries queued"
        );
    }

    /// Tell the people who were told of the raise (`told`: covers and escalations included) that it
    /// cleared, each the way they were reached; `step` tells one resolution of an occurrence from another
    /// ("" for the source's). A resolution whose raise reached nobody here goes to whoever is responsible
    /// now.
    pub fn tell_of_resolution(&self, effects: &mut Effects, event: &Escalation, told: &[Told], step: &str) {
        if told.is_empty() {
            let answering = self.reference.answering(event, &[Target::Responsible]);
            self.tell(effects, event, &answering, &Reach::email(), step, None);
            return;
        }
        let mut by_reach: Vec<(Reach, Vec<Answering>)> = Vec::new();
        for person in told {
            let reach = Reach {
                channel: Channel::parse(&person.channel).unwrap_or(Channel::Email),
                fallback: Vec::new(),
                webhook: person.webhook.clone(),
            };
            let answering = Answering {
                staff_code: person.staff_code.clone(),
                covering_for: None,
            };
            match by_reach.iter_mut().find(|(r, _)| *r == reach) {
                Some((_, people)) => people.push(answering),
                None => by_reach.push((reach, vec![answering])),
            }
        }
        for (reach, people) in by_reach {
            self.tell(effects, event, &people, &reach, step, None);
        }
    }
}

/// Tell of one resolution outside the consumer (an alert resolved by hand): reads what telling needs for
/// this one event, decides, and writes the deliveries. Returns how many were newly queued.
pub async fn tell_of_resolution_now(
    conn: &mut PgConnection,
    email: &EmailComposer,
    event: &Escalation,
    step: &str,
) -> Result<u64, sqlx::Error> {
    let reference = Reference::load(conn, email, &[event]).await?;
    let city_alerts = batch::firing_city_alerts(conn, city_of(event).as_slice()).await?;
    let pair = (event.dedup_key().to_owned(), event.occurrence_id().to_owned());
    let told = batch::raised_recipients_of(conn, std::slice::from_ref(&pair)).await?;
    let telling = Telling {
        reference: &reference,
        city_alerts: &city_alerts,
        email,
        now: OffsetDateTime::now_utc(),
    };
    let mut effects = Effects::default();
    let told = told.get(&pair).map(Vec::as_slice).unwrap_or_default();
    telling.tell_of_resolution(&mut effects, event, told, step);
    batch::write_effects(conn, &effects).await
}

/// What routing and silences match on. `fallback_lineage` holds the event's own locality, for events that
/// carry no lineage.
pub fn routing_facts<'a>(
    event: &'a Escalation,
    fallback_lineage: &'a [String; 1],
) -> routing::AlertFacts<'a> {
    use trust_proto::alerting::v1::Severity;
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
    routing::AlertFacts {
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
