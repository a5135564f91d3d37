//! What telling people about alerts reads but never changes in the same transaction: the staff directory
//! (contacts, roles, who is away and their cover), the responsibilities, the routing configuration, the
//! silences in force and the email templates. It is read once for a whole group of escalation events (or a
//! claim of due ladders), not once per event; everything after that is decided in plain Rust.

use std::collections::HashMap;

use prost::Message;
use sqlx::PgConnection;
use time::OffsetDateTime;
use trust_proto::notifications::v1::{RouteMatchers, RoutingConfig};
use uuid::Uuid;

use crate::domain::cover::{self, Answering, Presence};
use crate::domain::ladder::Target;
use crate::domain::quieting::Silence;
use crate::domain::routing::AlertFacts;
use crate::domain::routing_config::{Routing, matchers_from_proto, routing_from_proto};
use crate::domain::{self, Escalation, Responsibility};
use crate::email_templates::{EmailComposer, TemplatesInForce};
use crate::store::{self, StaffContact, batch};

/// A member of staff as telling needs them.
#[derive(Debug, Clone)]
struct Member {
    contact: StaffContact,
    roles: Vec<String>,
    localities: Vec<String>,
}

/// The snapshot; see the module documentation.
pub struct Reference {
    /// None: no routing stored (or one this service cannot read), so whoever is responsible is told.
    pub routing: Option<Routing>,
    staff: HashMap<String, Member>,
    presence: HashMap<String, Presence>,
    /// Every responsibility that could match one of the events the snapshot was read for.
    responsibilities: Vec<Responsibility>,
    silences: Vec<(Uuid, Silence)>,
    pub templates: TemplatesInForce,
}

impl Reference {
    /// Read the snapshot for `events` (their indicators and localities bound the responsibilities read).
    pub async fn load(
        conn: &mut PgConnection,
        email: &EmailComposer,
        events: &[&Escalation],
    ) -> Result<Self, sqlx::Error> {
        let routing = read_routing(store::routing(conn).await?);
        let mut staff = HashMap::new();
        let mut presence = HashMap::new();
        for row in batch::staff_directory(conn).await? {
            presence.insert(
                row.code.clone(),
                Presence {
                    away: row.away,
                    cover: row.cover_staff_code,
                },
            );
            staff.insert(
                row.code.clone(),
                Member {
                    contact: StaffContact {
                        code: row.code,
                        name: row.name,
                        email: row.email,
                    },
                    roles: row.roles,
                    localities: row.localities,
                },
            );
        }
        let mut indicators: Vec<&str> = events.iter().map(|e| e.indicator_code()).collect();
        let mut localities: Vec<&str> = events.iter().map(|e| e.locality_code()).collect();
        indicators.sort_unstable();
        indicators.dedup();
        localities.sort_unstable();
        localities.dedup();
        let responsibilities = batch::responsibilities_for(conn, &indicators, &localities).await?;
        let mut silences = Vec::new();
        for stored in store::silences(conn, false).await? {
            let matchers = RouteMatchers::decode(stored.matchers.as_slice())
                .ok()
                .and_then(|m| matchers_from_proto("silence", &m).ok());
            let Some(matchers) = matchers else {
                tracing::error!(silence = %stored.id, "a stored silence cannot be read; ignoring it");
                continue;
            };
            silences.push((
                stored.id,
                Silence {
                    matchers,
                    starts_at: stored.starts_at,
                    ends_at: stored.ends_at,
                    author: stored.author,
                    reason: stored.reason,
                },
            ));
        }
        let templates = email.templates(conn).await?;
        Ok(Self {
            routing,
            staff,
            presence,
            responsibilities,
            silences,
            templates,
        })
    }

    /// The people a step's targets name for this alert, each replaced by their cover when away.
    pub fn answering(&self, event: &Escalation, targets: &[Target]) -> Vec<Answering> {
        let mut meant: Vec<String> = Vec::new();
        for target in targets {
            match target {
                Target::Responsible => meant.extend(self.responsible(event)),
                Target::Person(code) => meant.push(code.clone()),
                Target::Role(_) => {}
            }
        }
        let roles: Vec<&String> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Role(role) => Some(role),
                _ => None,
            })
            .collect();
        if !roles.is_empty() {
            let place: Vec<&str> = match event.indicator() {
                Some(b) if !b.locality_lineage.is_empty() => {
                    b.locality_lineage.iter().map(String::as_str).collect()
                }
                _ => vec![event.locality_code()],
            };
            let mut holders: Vec<&Member> = self
                .staff
                .values()
                .filter(|m| m.roles.iter().any(|r| roles.contains(&r)))
                .collect();
            holders.sort_by(|a, b| a.contact.code.cmp(&b.contact.code));
            for member in holders {
                // A role holder answers where their localities cover the alert's place (or everywhere).
                if member.localities.is_empty()
                    || member.localities.iter().any(|l| place.contains(&l.as_str()))
                {
                    meant.push(member.contact.code.clone());
                }
            }
        }
        let mut answering: Vec<Answering> = Vec::new();
        for staff_code in meant {
            let who = cover::who_answers(&staff_code, &self.presence);
            if !answering.iter().any(|a| a.staff_code == who.staff_code) {
                answering.push(who);
            }
        }
        answering
    }

    /// The most specific responsibility holders for the event's indicator and locality.
    fn responsible(&self, event: &Escalation) -> Vec<String> {
        let (indicator, locality) = (event.indicator_code(), event.locality_code());
        let candidates: Vec<Responsibility> = self
            .responsibilities
            .iter()
            .filter(|r| {
                (r.indicator_code.is_empty() || r.indicator_code == indicator)
                    && (r.locality_code.is_empty() || r.locality_code == locality)
            })
            .cloned()
            .collect();
        domain::select_recipients(&candidates, indicator, locality)
    }

    /// The contacts of those of `codes` in the directory, by code.
    pub fn contacts(&self, codes: &[String]) -> Vec<StaffContact> {
        let mut found: Vec<StaffContact> = codes
            .iter()
            .filter_map(|code| self.staff.get(code).map(|m| m.contact.clone()))
            .collect();
        found.sort_by(|a, b| a.code.cmp(&b.code));
        found.dedup_by(|a, b| a.code == b.code);
        found
    }

    /// The silence in force at `now` that mutes an alert with these facts, if any.
    pub fn silencing(&self, alert: &AlertFacts<'_>, now: OffsetDateTime) -> Option<Uuid> {
        self.silences
            .iter()
            .find(|(_, silence)| silence.mutes(alert, now))
            .map(|(id, _)| *id)
    }
}

/// The routing configuration as stored; a stored one that no longer reads is logged and ignored (it was
/// checked when stored, so this means a newer service stored something this one cannot read).
fn read_routing(stored: Option<Vec<u8>>) -> Option<Routing> {
    let bytes = stored?;
    let read = RoutingConfig::decode(bytes.as_slice())
        .map_err(|e| e.to_string())
        .and_then(|config| routing_from_proto(&config).map_err(|e| e.to_string()));
    match read {
        Ok(routing) => Some(routing),
        Err(reason) => {
            tracing::error!(%reason, "the stored routing configuration cannot be read; telling whoever is responsible");
            None
        }
    }
}
