//! Escalation ladders: who is told about a firing alert, and when someone more senior is told because
//! nobody acted. An alert climbs the levels of the policy it was routed to, as that policy stood when the
//! alert fired (a snapshot travels with the ladder, so editing a policy never changes a ladder already
//! running); the last level repeats until someone acts. Acknowledging stops the climb; an acknowledged
//! alert still unresolved when its acknowledgement times out fires again. Resolving closes the ladder; a
//! re-fire soon after a resolve (flapping) is held for a while instead of sending noise.
//!
//! The ladder is plain data with a `next_due` time: the store keeps it as a row and the scheduler asks
//! [`Ladder::due`] when that time comes, so no timer lives in memory.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use super::calendar;

/// How long a level waits for an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wait {
    Seconds(u32),
    /// Working days (Monday to Friday, not bank holidays), at the same time of day.
    WorkingDays(u32),
}

/// A wait that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text:?} is not a wait: write e.g. \"90s\", \"15m\", \"4h\" or \"2 working days\"")]
pub struct WaitError {
    pub text: String,
}

impl Wait {
    pub fn after(self, from: OffsetDateTime) -> OffsetDateTime {
        match self {
            Wait::Seconds(s) => from + Duration::seconds(i64::from(s)),
            Wait::WorkingDays(d) => {
                let day = calendar::add_working_days(from.date(), d);
                from.replace_date(day)
            }
        }
    }

    /// "90s", "15m", "4h", "1 working day", "2 working days".
    pub fn parse(text: &str) -> Result<Self, WaitError> {
        let error = || WaitError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        if let Some(days) = trimmed
            .strip_suffix("working days")
            .or_else(|| trimmed.strip_suffix("working day"))
        {
            let days: u32 = days.trim().parse().map_err(|_| error())?;
            return if days == 0 {
                Err(error())
            } else {
                Ok(Wait::WorkingDays(days))
            };
        }
        let split = trimmed.len().saturating_sub(1);
        let (number, unit) = (trimmed.get(..split).ok_or_else(error)?, trimmed.get(split..));
        let number: u32 = number.trim().parse().map_err(|_| error())?;
        let seconds = match unit {
            Some("s") => Some(number),
            Some("m") => number.checked_mul(60),
            Some("h") => number.checked_mul(3_600),
            _ => None,
        };
        match seconds {
            Some(s) if s > 0 => Ok(Wait::Seconds(s)),
            _ => Err(error()),
        }
    }
}

/// How a level's people are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    Email,
    Webhook,
    Inbox,
}

/// Who a level tells: the person responsible for the alert's indicator and place (the directory's most
/// specific responsibility), a role (everyone holding it where the alert is), or a named person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    Responsible,
    Role(String),
    Person(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub targets: Vec<Target>,
    pub channel: Channel,
    pub wait: Wait,
    /// Channels tried in turn for a person when the one before fails for good.
    #[serde(default)]
    pub fallback: Vec<Channel>,
    /// The configured webhook a webhook channel posts to.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// How a step reaches each person: a channel, the channels tried in turn when it fails for good, and the
/// webhook a webhook channel posts to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reach {
    pub channel: Channel,
    pub fallback: Vec<Channel>,
    pub webhook: Option<String>,
}

impl Reach {
    /// By email only: how a directory without routing tells people.
    pub fn email() -> Self {
        Self {
            channel: Channel::Email,
            fallback: Vec::new(),
            webhook: None,
        }
    }
}

impl Level {
    pub fn reach(&self) -> Reach {
        Reach {
            channel: self.channel,
            fallback: self.fallback.clone(),
            webhook: self.webhook.clone(),
        }
    }
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Inbox => "inbox",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            "inbox" => Some(Channel::Inbox),
            _ => None,
        }
    }
}

/// A channel name that is not one of ours (only from a stored row written by a newer version).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a channel (email, webhook, inbox)")]
pub struct UnknownChannel(pub String);

impl TryFrom<String> for Channel {
    type Error = UnknownChannel;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Channel::parse(&text).ok_or(UnknownChannel(text))
    }
}

/// An escalation policy as it stood when an alert fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub levels: Vec<Level>,
    /// How often the last level is told again while nobody acts.
    pub repeat: Wait,
    /// An acknowledged alert still unresolved this long after the acknowledgement fires again.
    pub acknowledgement_timeout: Wait,
    /// A re-fire this soon after a resolve is held until this long after the resolve before anyone is
    /// told; None: never held.
    pub flap_hold: Option<Wait>,
}

/// Where a ladder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Climbing: `level` has been told and waits for an acknowledgement until `next_due`.
    Climbing { level: usize },
    /// Someone acknowledged; `next_due` is when the acknowledgement times out.
    Acknowledged { level: usize },
    /// Re-fired soon after a resolve: told no one yet; at `next_due` the climb starts if still firing.
    Held,
    /// Resolved: nothing more is due.
    Closed,
}

/// Why people are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Fired,
    /// The level below did not acknowledge in time.
    Escalated,
    /// The last level, again, because nobody acted.
    Repeated,
    /// An acknowledged alert was not resolved in time.
    AcknowledgementExpired,
    Resolved,
}

/// Tell a level's people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub level: usize,
    pub targets: Vec<Target>,
    pub reach: Reach,
    pub reason: Reason,
}

/// One alert's ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    pub policy: Policy,
    pub stage: Stage,
    /// When the scheduler must next look at this ladder; None when nothing is due.
    pub next_due: Option<OffsetDateTime>,
    /// The highest level told so far (those told are told of the resolution).
    pub highest_told: Option<usize>,
    pub resolved_at: Option<OffsetDateTime>,
}

impl Ladder {
    /// An alert fires under `policy` (a snapshot): its first level is told now.
    pub fn fire(policy: Policy, now: OffsetDateTime) -> (Self, Option<Notify>) {
        let mut ladder = Self {
            policy,
            stage: Stage::Closed,
            next_due: None,
            highest_told: None,
            resolved_at: None,
        };
        let notify = ladder.climb_to(0, now, Reason::Fired);
        (ladder, notify)
    }

    fn climb_to(&mut self, level: usize, now: OffsetDateTime, reason: Reason) -> Option<Notify> {
        let step = self.policy.levels.get(level)?.clone();
        let last = level + 1 == self.policy.levels.len();
        let wait = if last && reason == Reason::Repeated {
            self.policy.repeat
        } else {
            step.wait
        };
        self.stage = Stage::Climbing { level };
        self.next_due = Some(wait.after(now));
        self.highest_told = Some(self.highest_told.map_or(level, |h| h.max(level)));
        Some(Notify {
            level,
            reach: step.reach(),
            targets: step.targets,
            reason,
        })
    }

    /// The scheduler's turn at `now`: what to send, if anything is due.
    pub fn due(&mut self, now: OffsetDateTime) -> Option<Notify> {
        if self.next_due.is_none_or(|due| due > now) {
            return None;
        }
        match self.stage {
            Stage::Climbing { level } => {
                let last = level + 1 >= self.policy.levels.len();
                if last {
                    self.climb_to(level, now, Reason::Repeated)
                } else {
                    self.climb_to(level + 1, now, Reason::Escalated)
                }
            }
            Stage::Acknowledged { level } => self.climb_to(level, now, Reason::AcknowledgementExpired),
            Stage::Held => self.climb_to(0, now, Reason::Fired),
            Stage::Closed => {
                self.next_due = None;
                None
            }
        }
    }

    /// Someone acted: the climb stops; if the alert is still unresolved when the acknowledgement times
    /// out, the level that was told is told again.
    pub fn acknowledge(&mut self, now: OffsetDateTime) {
        if let Stage::Climbing { level } = self.stage {
            self.stage = Stage::Acknowledged { level };
            self.next_due = Some(self.policy.acknowledgement_timeout.after(now));
        }
    }

    /// Nobody at the level climbing could be reached (every channel failed for good): the next level is
    /// due now rather than after the wait. Changes nothing once acknowledged, held or closed.
    pub fn hurry(&mut self, now: OffsetDateTime) {
        if let Stage::Climbing { .. } = self.stage
            && self.next_due.is_some_and(|due| due > now)
        {
            self.next_due = Some(now);
        }
    }

    /// The alert resolved: those told hear so (up to the highest level told), and nothing more is due.
    pub fn resolve(&mut self, now: OffsetDateTime) -> Vec<Notify> {
        let told = match self.stage {
            Stage::Closed | Stage::Held => None,
            _ => self.highest_told,
        };
        self.stage = Stage::Closed;
        self.next_due = None;
        self.resolved_at = Some(now);
        told.map(|highest| {
            self.policy.levels[..=highest.min(self.policy.levels.len().saturating_sub(1))]
                .iter()
                .enumerate()
                .map(|(level, step)| Notify {
                    level,
                    targets: step.targets.clone(),
                    reach: step.reach(),
                    reason: Reason::Resolved,
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The alert fires again after a resolve, under `policy` as it stands now. Within the flap hold of the
    /// resolve it is held (no one told until the hold ends, and only if still firing then); otherwise the
    /// climb starts again from the first level.
    pub fn refire(&mut self, policy: Policy, now: OffsetDateTime) -> Option<Notify> {
        self.policy = policy;
        self.highest_told = None;
        let hold_ends = self
            .resolved_at
            .zip(self.policy.flap_hold)
            .map(|(resolved, hold)| hold.after(resolved));
        match hold_ends {
            Some(ends) if now < ends => {
                self.stage = Stage::Held;
                self.next_due = Some(ends);
                None
            }
            _ => self.climb_to(0, now, Reason::Fired),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn policy() -> Policy {
        Policy {
            name: "performance".to_owned(),
            levels: vec![
                Level {
                    targets: vec![Target::Role("locality_enabler".to_owned())],
                    channel: Channel::Email,
                    wait: Wait::Seconds(3_600),
                    fallback: vec![],
                    webhook: None,
                },
                Level {
                    targets: vec![Target::Role("head_of_service".to_owned())],
                    channel: Channel::Email,
                    wait: Wait::WorkingDays(1),
                    fallback: vec![],
                    webhook: None,
                },
                Level {
                    targets: vec![Target::Person("dcs".to_owned())],
                    channel: Channel::Inbox,
                    wait: Wait::Seconds(1_800),
                    fallback: vec![],
                    webhook: None,
                },
            ],
            repeat: Wait::Seconds(14_400),
            acknowledgement_timeout: Wait::WorkingDays(2),
            flap_hold: Some(Wait::Seconds(900)),
        }
    }

    #[test]
    fn each_level_is_told_when_the_one_below_does_not_acknowledge_and_the_last_repeats() {
        // Friday 18 December 2026, 16:00.
        let fired = datetime!(2026-12-18 16:00 UTC);
        let (mut ladder, first) = Ladder::fire(policy(), fired);
        let first = first.expect("first level told at once");
        assert_eq!((first.level, first.reason), (0, Reason::Fired));
        assert_eq!(ladder.due(fired + Duration::minutes(59)), None, "not yet due");
        let second = ladder.due(fired + Duration::minutes(60)).expect("escalated");
        assert_eq!((second.level, second.reason), (1, Reason::Escalated));
        // One working day after Friday 17:00 is Monday 21 December 17:00.
        assert_eq!(ladder.next_due, Some(datetime!(2026-12-21 17:00 UTC)));
        let third = ladder
            .due(datetime!(2026-12-21 17:00 UTC))
            .expect("escalated again");
        assert_eq!((third.level, third.reach.channel), (2, Channel::Inbox));
        assert_eq!(ladder.next_due, Some(datetime!(2026-12-21 17:30 UTC)));
        let again = ladder.due(datetime!(2026-12-21 17:30 UTC)).expect("repeated");
        assert_eq!((again.level, again.reason), (2, Reason::Repeated));
        assert_eq!(
            ladder.next_due,
            Some(datetime!(2026-12-21 21:30 UTC)),
            "the repeat interval"
        );
    }

    #[test]
    fn acknowledging_stops_the_climb_until_the_acknowledgement_times_out() {
        let fired = datetime!(2026-11-23 09:00 UTC);
        let (mut ladder, _) = Ladder::fire(policy(), fired);
        ladder.acknowledge(fired + Duration::minutes(10));
        assert_eq!(ladder.stage, Stage::Acknowledged { level: 0 });
        assert_eq!(
            ladder.due(fired + Duration::minutes(60)),
            None,
            "no escalation after an acknowledgement"
        );
        // Two working days after Monday 09:10: Wednesday 09:10.
        let expired = datetime!(2026-11-25 09:10 UTC);
        assert_eq!(ladder.next_due, Some(expired));
        let again = ladder.due(expired).expect("fires again");
        assert_eq!((again.level, again.reason), (0, Reason::AcknowledgementExpired));
    }

    #[test]
    fn a_level_nobody_could_be_reached_at_is_escalated_at_once() {
        let fired = datetime!(2026-11-23 09:00 UTC);
        let (mut ladder, _) = Ladder::fire(policy(), fired);
        let failed = fired + Duration::minutes(5);
        ladder.hurry(failed);
        assert_eq!(
            ladder.next_due,
            Some(failed),
            "due now, not after the hour's wait"
        );
        let next = ladder.due(failed).expect("the next level is told");
        assert_eq!((next.level, next.reason), (1, Reason::Escalated));

        // An acknowledged ladder is not hurried: someone is acting.
        ladder.acknowledge(failed);
        let timeout = ladder.next_due;
        ladder.hurry(failed + Duration::minutes(1));
        assert_eq!(ladder.next_due, timeout);
    }

    #[test]
    fn resolving_tells_everyone_told_and_closes_the_ladder() {
        let fired = datetime!(2026-11-23 09:00 UTC);
        let (mut ladder, _) = Ladder::fire(policy(), fired);
        ladder.due(fired + Duration::minutes(60));
        let told = ladder.resolve(fired + Duration::minutes(90));
        assert_eq!(told.iter().map(|n| n.level).collect::<Vec<_>>(), vec![0, 1]);
        assert!(told.iter().all(|n| n.reason == Reason::Resolved));
        assert_eq!((ladder.stage, ladder.next_due), (Stage::Closed, None));
        assert_eq!(ladder.due(fired + Duration::days(10)), None);
    }

    #[test]
    fn a_refire_soon_after_a_resolve_is_held_then_starts_the_climb() {
        let fired = datetime!(2026-11-23 09:00 UTC);
        let (mut ladder, _) = Ladder::fire(policy(), fired);
        let resolved = fired + Duration::minutes(20);
        ladder.resolve(resolved);
        assert_eq!(
            ladder.refire(policy(), resolved + Duration::minutes(5)),
            None,
            "held"
        );
        assert_eq!(ladder.stage, Stage::Held);
        assert_eq!(ladder.next_due, Some(resolved + Duration::minutes(15)));
        let after_hold = ladder
            .due(resolved + Duration::minutes(15))
            .expect("climb starts");
        assert_eq!((after_hold.level, after_hold.reason), (0, Reason::Fired));
        // Resolved again within the hold: nobody was told, so nobody hears of the resolve.
        let (mut quiet, _) = Ladder::fire(policy(), fired);
        quiet.resolve(resolved);
        quiet.refire(policy(), resolved + Duration::minutes(1));
        assert!(quiet.resolve(resolved + Duration::minutes(2)).is_empty());
    }

    #[test]
    fn waits_are_read_from_seconds_minutes_hours_and_working_days() {
        assert_eq!(Wait::parse("90s"), Ok(Wait::Seconds(90)));
        assert_eq!(Wait::parse("15m"), Ok(Wait::Seconds(900)));
        assert_eq!(Wait::parse("4h"), Ok(Wait::Seconds(14_400)));
        assert_eq!(Wait::parse("1 working day"), Ok(Wait::WorkingDays(1)));
        assert_eq!(Wait::parse(" 3 working days "), Ok(Wait::WorkingDays(3)));
        for bad in ["", "0s", "10", "5 days", "1.5h", "m", "0 working days"] {
            assert!(Wait::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_ladder_follows_the_policy_it_fired_under() {
        let fired = datetime!(2026-11-23 09:00 UTC);
        let (mut ladder, _) = Ladder::fire(policy(), fired);
        // Editing the policy in the store changes nothing here: the ladder holds its snapshot.
        let mut edited = policy();
        edited.levels.truncate(1);
        let next = ladder.due(fired + Duration::minutes(60)).expect("escalated");
        assert_eq!(next.level, 1);
        assert_eq!(ladder.policy, policy());
        assert_ne!(ladder.policy, edited);
    }
}
