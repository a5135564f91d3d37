//! The routing file: the routing tree and the escalation policies it leads to, turned into a
//! `trust.notifications.v1.RoutingConfig` for `Notifications.PutRouting` (which checks it and replaces the
//! last one as a whole).
//!
//! ```toml
//! default_policy = "performance"       # followed by every alert no route takes
//!
//! [[policy]]
//! name = "east"
//! repeat = "4h"                          # the last level is told again this often while nobody acts
//! acknowledgement_timeout = "1 working day"
//! flap_hold = "15m"                      # optional
//! [[policy.level]]
//! roles = ["locality_enabler"]           # and/or people = ["dcs"], responsible = true
//! wait = "30m"                           # "90s", "15m", "4h", "2 working days"
//! channel = "webhook"                    # "email" (the default), "webhook" or "inbox"
//! webhook = "east_team_chat"             # a webhook the service is configured with
//! fallback = ["email"]                   # tried in turn for a person when the channel fails for good
//!
//! [[route]]                              # tried in order, depth first
//! name = "east"
//! policy = "east"
//! localities = ["AREA_EAST"]             # also kinds, severities, sources, outcomes, priorities,
//!                                        # indicators, partners; `continue = true`; nested [[route.route]]
//! ```

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use trust_proto::notifications::v1 as pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    default_policy: String,
    #[serde(default)]
    policy: Vec<PolicyEntry>,
    #[serde(default)]
    route: Vec<RouteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    name: String,
    repeat: String,
    acknowledgement_timeout: String,
    #[serde(default)]
    flap_hold: String,
    #[serde(default)]
    level: Vec<LevelEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelEntry {
    #[serde(default)]
    responsible: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    people: Vec<String>,
    wait: String,
    #[serde(default)]
    channel: Option<ChannelName>,
    #[serde(default)]
    fallback: Vec<ChannelName>,
    #[serde(default)]
    webhook: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ChannelName {
    Email,
    Webhook,
    Inbox,
}

impl From<ChannelName> for pb::Channel {
    fn from(name: ChannelName) -> Self {
        match name {
            ChannelName::Email => pb::Channel::Email,
            ChannelName::Webhook => pb::Channel::Webhook,
            ChannelName::Inbox => pb::Channel::Inbox,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    name: String,
    #[serde(default)]
    policy: String,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    outcomes: Vec<String>,
    #[serde(default)]
    priorities: Vec<String>,
    #[serde(default)]
    indicators: Vec<String>,
    #[serde(default)]
    localities: Vec<String>,
    #[serde(default)]
    partners: Vec<String>,
    #[serde(default)]
    route: Vec<RouteEntry>,
}

impl RouteEntry {
    fn into_proto(self) -> pb::Route {
        pb::Route {
            name: self.name,
            matchers: Some(pb::RouteMatchers {
                kinds: self.kinds,
                severities: self.severities,
                sources: self.sources,
                outcomes: self.outcomes,
                priorities: self.priorities,
                indicators: self.indicators,
                localities: self.localities,
                partners: self.partners,
            }),
            policy: self.policy,
            r#continue: self.continue_matching,
            routes: self.route.into_iter().map(RouteEntry::into_proto).collect(),
        }
    }
}

/// Read and parse a routing file.
pub fn load(path: &Path) -> Result<pb::RoutingConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a valid routing file", path.display()))
}

/// Parse the text of a routing file (the service checks the policies and routes themselves).
pub fn parse(text: &str) -> Result<pb::RoutingConfig> {
    let file: RoutingFile = toml::from_str(text)?;
    Ok(pb::RoutingConfig {
        default_policy: file.default_policy,
        routes: file.route.into_iter().map(RouteEntry::into_proto).collect(),
        policies: file
            .policy
            .into_iter()
            .map(|p| pb::EscalationPolicy {
                name: p.name,
                levels: p
                    .level
                    .into_iter()
                    .map(|l| pb::EscalationLevel {
                        responsible: l.responsible,
                        roles: l.roles,
                        people: l.people,
                        channel: pb::Channel::from(l.channel.unwrap_or(ChannelName::Email)).into(),
                        wait: l.wait,
                        fallback: l
                            .fallback
                            .into_iter()
                            .map(|c| pb::Channel::from(c).into())
                            .collect(),
                        webhook: l.webhook,
                    })
                    .collect(),
                repeat: p.repeat,
                acknowledgement_timeout: p.acknowledgement_timeout,
                flap_hold: p.flap_hold,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_routing_file_reads() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/demo/routing.toml"
        ))
        .expect("demo routing file");
        let config = parse(&text).expect("parses");
        assert!(!config.policies.is_empty());
        assert!(config.policies.iter().any(|p| p.name == config.default_policy));
    }

    #[test]
    fn nested_routes_and_levels_become_the_config_and_unknown_keys_are_refused() {
        let config = parse(
            "default_policy = \"p\"\n\
             [[policy]]\nname = \"p\"\nrepeat = \"4h\"\nacknowledgement_timeout = \"1 working day\"\n\
             [[policy.level]]\nresponsible = true\nwait = \"30m\"\n\
             [[route]]\nname = \"east\"\npolicy = \"p\"\nlocalities = [\"AREA_EAST\"]\ncontinue = true\n\
             [[route.route]]\nname = \"east-critical\"\nseverities = [\"critical\"]\n",
        )
        .expect("parses");
        assert!(config.policies[0].levels[0].responsible);
        assert!(config.routes[0].r#continue);
        assert_eq!(config.routes[0].routes[0].name, "east-critical");
        let err = format!(
            "{:#}",
            parse("default_policy = \"p\"\nescalate = true\n").unwrap_err()
        );
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_level_names_its_channel_webhook_and_fallbacks() {
        let config = parse(
            "default_policy = \"p\"\n\
             [[policy]]\nname = \"p\"\nrepeat = \"4h\"\nacknowledgement_timeout = \"1 working day\"\n\
             [[policy.level]]\nresponsible = true\nwait = \"30m\"\nchannel = \"webhook\"\n\
             webhook = \"east_team_chat\"\nfallback = [\"email\", \"inbox\"]\n",
        )
        .expect("parses");
        let level = &config.policies[0].levels[0];
        assert_eq!(level.channel(), pb::Channel::Webhook);
        assert_eq!(level.webhook, "east_team_chat");
        assert_eq!(
            level.fallback().collect::<Vec<_>>(),
            vec![pb::Channel::Email, pb::Channel::Inbox]
        );
        let err = format!(
            "{:#}",
            parse(
                "default_policy = \"p\"\n[[policy]]\nname = \"p\"\nrepeat = \"4h\"\n\
                 acknowledgement_timeout = \"1h\"\n[[policy.level]]\nresponsible = true\nwait = \"30m\"\n\
                 channel = \"pager\"\n"
            )
            .unwrap_err()
        );
        assert!(err.contains("unknown variant `pager`"), "{err}");
    }
}
