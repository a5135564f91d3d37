//! The routing configuration as sent (`trust.notifications.v1.RoutingConfig`) made into the routing tree
//! and escalation policies, or refused naming the policy or route and field at fault.

use std::collections::{HashMap, HashSet};

use thiserror::Error;
use trust_proto::notifications::v1 as pb;

use super::ladder::{Channel, Level, Policy, Target, Wait};
use super::routing::{Matchers, Route, RoutingError, RoutingTree, Severity};

/// The tree and the policies it leads to, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub tree: RoutingTree,
    pub policies: HashMap<String, Policy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingConfigError {
    #[error("policy {policy:?}: {field}: {reason}")]
    Policy {
        policy: String,
        field: String,
        reason: String,
    },
    #[error("route {route:?}: severities: {value:?} is not \"warning\" or \"critical\"")]
    Severity { route: String, value: String },
    #[error(transparent)]
    Tree(#[from] RoutingError),
}

fn policy_error(policy: &str, field: impl Into<String>, reason: impl Into<String>) -> RoutingConfigError {
    RoutingConfigError::Policy {
        policy: policy.to_owned(),
        field: field.into(),
        reason: reason.into(),
    }
}

fn wait(policy: &str, field: &str, text: &str) -> Result<Wait, RoutingConfigError> {
    Wait::parse(text).map_err(|e| policy_error(policy, field, e.to_string()))
}

fn policy(config: &pb::EscalationPolicy) -> Result<Policy, RoutingConfigError> {
    let name = config.name.trim();
    if name.is_empty() || name != config.name {
        return Err(policy_error(
            &config.name,
            "name",
            "required, without spaces around it",
        ));
    }
    if config.levels.is_empty() {
        return Err(policy_error(name, "levels", "a policy needs at least one level"));
    }
    let mut levels = Vec::with_capacity(config.levels.len());
    for (index, level) in config.levels.iter().enumerate() {
        let field = |f: &str| format!("levels[{index}].{f}");
        let mut targets = Vec::new();
        if level.responsible {
            targets.push(Target::Responsible);
        }
        targets.extend(level.roles.iter().map(|r| Target::Role(r.clone())));
        targets.extend(level.people.iter().map(|p| Target::Person(p.clone())));
        if targets.is_empty() {
            return Err(policy_error(
                name,
                field("people"),
                "a level must tell someone: responsible, roles or people",
            ));
        }
        let primary = channel(level.channel, true)
            .ok_or_else(|| policy_error(name, field("channel"), "unknown channel"))?;
        let mut fallback = Vec::with_capacity(level.fallback.len());
        for (at, value) in level.fallback.iter().enumerate() {
            let next = channel(*value, false).ok_or_else(|| {
                policy_error(
                    name,
                    field(&format!("fallback[{at}]")),
                    "unknown or unspecified channel",
                )
            })?;
            if next == primary || fallback.contains(&next) {
                return Err(policy_error(
                    name,
                    field(&format!("fallback[{at}]")),
                    format!("{} is already tried before it", next.as_str()),
                ));
            }
            fallback.push(next);
        }
        let webhook = Some(level.webhook.trim().to_owned()).filter(|w| !w.is_empty());
        let uses_webhook = primary == Channel::Webhook || fallback.contains(&Channel::Webhook);
        if uses_webhook && webhook.is_none() {
            return Err(policy_error(
                name,
                field("webhook"),
                "a level that posts to a webhook must name it",
            ));
        }
        if !uses_webhook && webhook.is_some() {
            return Err(policy_error(
                name,
                field("webhook"),
                "named, but no channel of the level is WEBHOOK",
            ));
        }
        levels.push(Level {
            targets,
            channel: primary,
            wait: wait(name, &field("wait"), &level.wait)?,
            fallback,
            webhook,
        });
    }
    Ok(Policy {
        name: name.to_owned(),
        levels,
        repeat: wait(name, "repeat", &config.repeat)?,
        acknowledgement_timeout: wait(name, "acknowledgement_timeout", &config.acknowledgement_timeout)?,
        flap_hold: if config.flap_hold.trim().is_empty() {
            None
        } else {
            Some(wait(name, "flap_hold", &config.flap_hold)?)
        },
    })
}

/// A channel as sent; unspecified reads as email where a channel may be left out.
fn channel(value: i32, unspecified_is_email: bool) -> Option<Channel> {
    match pb::Channel::try_from(value).ok()? {
        pb::Channel::Unspecified if unspecified_is_email => Some(Channel::Email),
        pb::Channel::Unspecified => None,
        pb::Channel::Email => Some(Channel::Email),
        pb::Channel::Webhook => Some(Channel::Webhook),
        pb::Channel::Inbox => Some(Channel::Inbox),
    }
}

/// Every webhook the policies post to must be one the service is configured with (`webhooks.<name>`).
pub fn check_webhooks(routing: &Routing, configured: &HashSet<String>) -> Result<(), RoutingConfigError> {
    let mut names: Vec<&String> = routing.policies.keys().collect();
    names.sort();
    for name in names {
        let Some(policy) = routing.policies.get(name) else {
            continue;
        };
        for (index, level) in policy.levels.iter().enumerate() {
            if let Some(webhook) = &level.webhook
                && !configured.contains(webhook)
            {
                let mut known: Vec<&str> = configured.iter().map(String::as_str).collect();
                known.sort_unstable();
                return Err(policy_error(
                    name,
                    format!("levels[{index}].webhook"),
                    format!(
                        "{webhook:?} is not a configured webhook (configured: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn set(values: &[String]) -> HashSet<String> {
    values
        .iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Matchers as sent; `owner` names the route or silence they belong to, for errors.
pub fn matchers_from_proto(
    owner: &str,
    matchers: &pb::RouteMatchers,
) -> Result<Matchers, RoutingConfigError> {
    let severities = matchers
        .severities
        .iter()
        .map(|value| match value.trim().to_ascii_lowercase().as_str() {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(RoutingConfigError::Severity {
                route: owner.to_owned(),
                value: value.clone(),
            }),
        })
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(Matchers {
        kinds: set(&matchers.kinds),
        severities,
        sources: set(&matchers.sources),
        outcomes: set(&matchers.outcomes),
        priorities: set(&matchers.priorities),
        indicators: set(&matchers.indicators),
        localities: set(&matchers.localities),
        partners: set(&matchers.partners),
    })
}

fn route(config: &pb::Route) -> Result<Route, RoutingConfigError> {
    Ok(Route {
        name: config.name.clone(),
        matchers: matchers_from_proto(&config.name, &config.matchers.clone().unwrap_or_default())?,
        policy: Some(config.policy.trim().to_owned()).filter(|p| !p.is_empty()),
        continue_matching: config.r#continue,
        routes: config.routes.iter().map(route).collect::<Result<_, _>>()?,
    })
}

/// Check and convert a configuration.
pub fn routing_from_proto(config: &pb::RoutingConfig) -> Result<Routing, RoutingConfigError> {
    let mut policies = HashMap::new();
    for config in &config.policies {
        let policy = policy(config)?;
        if policies.contains_key(&policy.name) {
            return Err(policy_error(&policy.name, "name", "two policies have this name"));
        }
        policies.insert(policy.name.clone(), policy);
    }
    let tree = RoutingTree {
        default_policy: config.default_policy.trim().to_owned(),
        routes: config.routes.iter().map(route).collect::<Result<_, _>>()?,
    };
    tree.validate(&policies.keys().cloned().collect())?;
    Ok(Routing { tree, policies })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> pb::RoutingConfig {
        pb::RoutingConfig {
            default_policy: "performance".into(),
            routes: vec![pb::Route {
                name: "east".into(),
                matchers: Some(pb::RouteMatchers {
                    localities: vec!["AREA_EAST".into()],
                    severities: vec!["critical".into()],
                    ..Default::default()
                }),
                policy: "east".into(),
                ..Default::default()
            }],
            policies: vec![
                pb::EscalationPolicy {
                    name: "performance".into(),
                    levels: vec![pb::EscalationLevel {
                        responsible: true,
                        wait: "1 working day".into(),
                        ..Default::default()
                    }],
                    repeat: "1 working day".into(),
                    acknowledgement_timeout: "2 working days".into(),
                    flap_hold: String::new(),
                },
                pb::EscalationPolicy {
                    name: "east".into(),
                    levels: vec![
                        pb::EscalationLevel {
                            roles: vec!["locality_enabler".into()],
                            wait: "30m".into(),
                            ..Default::default()
                        },
                        pb::EscalationLevel {
                            people: vec!["dcs".into()],
                            wait: "2h".into(),
                            ..Default::default()
                        },
                    ],
                    repeat: "4h".into(),
                    acknowledgement_timeout: "1 working day".into(),
                    flap_hold: "15m".into(),
                },
            ],
        }
    }

    #[test]
    fn a_good_configuration_becomes_the_tree_and_its_policies() {
        let routing = routing_from_proto(&config()).expect("valid");
        let east = &routing.policies["east"];
        assert_eq!(
            east.levels[0].targets,
            vec![Target::Role("locality_enabler".into())]
        );
        assert_eq!(east.levels[1].wait, Wait::Seconds(7_200));
        assert_eq!(east.flap_hold, Some(Wait::Seconds(900)));
        assert_eq!(
            routing.policies["performance"].levels[0].targets,
            vec![Target::Responsible]
        );
        assert_eq!(routing.tree.routes[0].policy.as_deref(), Some("east"));
    }

    #[test]
    fn mistakes_are_refused_naming_the_policy_or_route_and_field() {
        let mut bad_wait = config();
        bad_wait.policies[1].levels[1].wait = "2 hours".into();
        let err = routing_from_proto(&bad_wait).unwrap_err().to_string();
        assert!(err.starts_with("policy \"east\": levels[1].wait:"), "{err}");

        let mut nobody = config();
        nobody.policies[0].levels[0].responsible = false;
        let err = routing_from_proto(&nobody).unwrap_err().to_string();
        assert!(err.contains("a level must tell someone"), "{err}");

        let mut unknown = config();
        unknown.routes[0].policy = "nope".into();
        let err = routing_from_proto(&unknown).unwrap_err().to_string();
        assert!(err.contains("route \"east\" leads to policy \"nope\""), "{err}");

        let mut severity = config();
        severity.routes[0].matchers = Some(pb::RouteMatchers {
            severities: vec!["urgent".into()],
            ..Default::default()
        });
        let err = routing_from_proto(&severity).unwrap_err().to_string();
        assert!(err.contains("\"urgent\" is not"), "{err}");
    }

    #[test]
    fn webhook_levels_name_a_configured_webhook_and_fallbacks_do_not_repeat() {
        let mut chat = config();
        chat.policies[1].levels[0].channel = pb::Channel::Webhook.into();
        chat.policies[1].levels[0].fallback = vec![pb::Channel::Email.into()];
        let err = routing_from_proto(&chat).unwrap_err().to_string();
        assert_eq!(
            err,
            "policy \"east\": levels[0].webhook: a level that posts to a webhook must name it"
        );

        chat.policies[1].levels[0].webhook = "east-team-chat".into();
        let routing = routing_from_proto(&chat).expect("valid");
        let level = &routing.policies["east"].levels[0];
        assert_eq!(level.channel, Channel::Webhook);
        assert_eq!(level.fallback, vec![Channel::Email]);
        let configured: HashSet<String> = ["east-team-chat".to_owned()].into();
        assert!(check_webhooks(&routing, &configured).is_ok());
        let err = check_webhooks(&routing, &HashSet::new()).unwrap_err().to_string();
        assert!(
            err.contains(
                "levels[0].webhook: \"east-team-chat\" is not a configured webhook (configured: none)"
            ),
            "{err}"
        );

        let mut twice = chat.clone();
        twice.policies[1].levels[0].fallback = vec![pb::Channel::Webhook.into()];
        let err = routing_from_proto(&twice).unwrap_err().to_string();
        assert!(
            err.contains("levels[0].fallback[0]: webhook is already tried"),
            "{err}"
        );

        let mut stray = config();
        stray.policies[0].levels[0].webhook = "east-team-chat".into();
        let err = routing_from_proto(&stray).unwrap_err().to_string();
        assert!(err.contains("no channel of the level is WEBHOOK"), "{err}");
    }
}
