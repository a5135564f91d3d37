//! The routing tree: which escalation policy an alert follows. Routes are tried in order, depth first, as
//! in Prometheus Alertmanager: the first child that matches takes the alert (and its own children are
//! tried in turn), unless it says `continue`, in which case later siblings may take it too. The root matches
//! everything, so an alert that no rule names still reaches the root's policy: nothing goes unrouted.

use std::collections::HashSet;

use thiserror::Error;

/// How serious an alert is; a route can ask for a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What routing knows about an alert.
#[derive(Debug, Clone, Default)]
pub struct AlertFacts<'a> {
    /// What kind of concern, e.g. "indicator", "contract", "risk", "audit".
    pub kind: &'a str,
    pub severity: Option<Severity>,
    /// The service that raised it.
    pub source: &'a str,
    pub outcome: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub indicator: Option<&'a str>,
    /// The alert's locality and the localities above it, nearest first (empty when it has none).
    pub locality_lineage: &'a [String],
    pub partner: Option<&'a str>,
}

/// What a route requires; an empty set matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers {
    pub kinds: HashSet<String>,
    pub severities: HashSet<Severity>,
    pub sources: HashSet<String>,
    pub outcomes: HashSet<String>,
    pub priorities: HashSet<String>,
    pub indicators: HashSet<String>,
    /// A locality here covers the localities under it.
    pub localities: HashSet<String>,
    pub partners: HashSet<String>,
}

fn one_of(wanted: &HashSet<String>, actual: Option<&str>) -> bool {
    wanted.is_empty() || actual.is_some_and(|a| wanted.contains(a))
}

impl Matchers {
    pub fn matches(&self, alert: &AlertFacts<'_>) -> bool {
        one_of(&self.kinds, Some(alert.kind))
            && (self.severities.is_empty() || alert.severity.is_some_and(|s| self.severities.contains(&s)))
            && one_of(&self.sources, Some(alert.source))
            && one_of(&self.outcomes, alert.outcome)
            && one_of(&self.priorities, alert.priority)
            && one_of(&self.indicators, alert.indicator)
            && (self.localities.is_empty()
                || alert.locality_lineage.iter().any(|l| self.localities.contains(l)))
            && one_of(&self.partners, alert.partner)
    }
}

/// One route: its matchers, the policy it leads to (None: its parent's), and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub matchers: Matchers,
    pub policy: Option<String>,
    /// Let later siblings also take an alert this route took.
    pub continue_matching: bool,
    pub routes: Vec<Route>,
}

/// The whole tree: the root's policy is the default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTree {
    pub default_policy: String,
    pub routes: Vec<Route>,
}

/// Where an alert went: the route names from the root down, and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub path: Vec<String>,
    pub policy: String,
}

/// A tree that cannot be used, with the route at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    #[error("the default route needs a policy")]
    NoDefaultPolicy,
    #[error("route {route:?} leads to policy {policy:?}, which does not exist")]
    UnknownPolicy { route: String, policy: String },
    #[error("two routes are named {0:?}; route names must be unique")]
    DuplicateRoute(String),
    #[error("a route has no name")]
    UnnamedRoute,
}

impl RoutingTree {
    /// Check that every route is named once and leads to a known policy.
    pub fn validate(&self, policies: &HashSet<String>) -> Result<(), RoutingError> {
        if self.default_policy.is_empty() {
            return Err(RoutingError::NoDefaultPolicy);
        }
        if !policies.contains(&self.default_policy) {
            return Err(RoutingError::UnknownPolicy {
                route: "default".to_owned(),
                policy: self.default_policy.clone(),
            });
        }
        let mut names = HashSet::new();
        let mut stack: Vec<&Route> = self.routes.iter().collect();
        while let Some(route) = stack.pop() {
            if route.name.is_empty() {
                return Err(RoutingError::UnnamedRoute);
            }
            if !names.insert(route.name.as_str()) {
                return Err(RoutingError::DuplicateRoute(route.name.clone()));
            }
            if let Some(policy) = &route.policy
                && !policies.contains(policy)
            {
                return Err(RoutingError::UnknownPolicy {
                    route: route.name.clone(),
                    policy: policy.clone(),
                });
            }
            stack.extend(route.routes.iter());
        }
        Ok(())
    }

    /// Every policy the alert follows (at least the default route's).
    pub fn route(&self, alert: &AlertFacts<'_>) -> Vec<Routed> {
        let mut routed = Vec::new();
        walk(
            &self.routes,
            alert,
            &mut Vec::new(),
            &self.default_policy,
            &mut routed,
        );
        if routed.is_empty() {
            routed.push(Routed {
                path: vec!["default".to_owned()],
                policy: self.default_policy.clone(),
            });
        }
        routed
    }
}

/// Try `routes` in order; returns whether any took the alert.
fn walk(
    routes: &[Route],
    alert: &AlertFacts<'_>,
    path: &mut Vec<String>,
    inherited: &str,
    routed: &mut Vec<Routed>,
) -> bool {
    let mut taken = false;
    for route in routes {
        if !route.matchers.matches(alert) {
            continue;
        }
        taken = true;
        path.push(route.name.clone());
        let policy = route.policy.as_deref().unwrap_or(inherited);
        if !walk(&route.routes, alert, path, policy, routed) {
            routed.push(Routed {
                path: path.clone(),
                policy: policy.to_owned(),
            });
        }
        path.pop();
        if !route.continue_matching {
            break;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn route(name: &str, matchers: Matchers, policy: Option<&str>, routes: Vec<Route>) -> Route {
        Route {
            name: name.to_owned(),
            matchers,
            policy: policy.map(str::to_owned),
            continue_matching: false,
            routes,
        }
    }

    fn tree() -> RoutingTree {
        RoutingTree {
            default_policy: "performance-team".to_owned(),
            routes: vec![
                route(
                    "safeguarding",
                    Matchers {
                        outcomes: set(&["STAY_SAFE"]),
                        ..Default::default()
                    },
                    Some("lscb"),
                    vec![route(
                        "safeguarding-critical",
                        Matchers {
                            severities: [Severity::Critical].into_iter().collect(),
                            ..Default::default()
                        },
                        Some("dcs"),
                        vec![],
                    )],
                ),
                route(
                    "east",
                    Matchers {
                        localities: set(&["AREA_EAST"]),
                        ..Default::default()
                    },
                    Some("east-enabler"),
                    vec![],
                ),
            ],
        }
    }

    fn lineage(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_alert_no_rule_names_takes_the_default_route() {
        let places = lineage(&["CLUSTER_W1", "AREA_WEST", "CITY"]);
        let alert = AlertFacts {
            kind: "indicator",
            outcome: Some("ENJOY_ACHIEVE"),
            locality_lineage: &places,
            ..Default::default()
        };
        let routed = tree().route(&alert);
        assert_eq!(
            routed,
            vec![Routed {
                path: vec!["default".to_owned()],
                policy: "performance-team".to_owned()
            }]
        );
    }

    #[test]
    fn a_route_for_an_area_covers_its_clusters() {
        let places = lineage(&["CLUSTER_E2", "AREA_EAST", "CITY"]);
        let alert = AlertFacts {
            kind: "indicator",
            locality_lineage: &places,
            ..Default::default()
        };
        assert_eq!(tree().route(&alert)[0].policy, "east-enabler");
    }

    #[test]
    fn the_deepest_matching_child_wins_and_inherits_nothing_it_overrides() {
        let places = lineage(&["AREA_EAST", "CITY"]);
        let critical = AlertFacts {
            kind: "indicator",
            severity: Some(Severity::Critical),
            outcome: Some("STAY_SAFE"),
            locality_lineage: &places,
            ..Default::default()
        };
        let routed = tree().route(&critical);
        assert_eq!(routed.len(), 1, "first match stops: east is not also taken");
        assert_eq!(routed[0].path, vec!["safeguarding", "safeguarding-critical"]);
        assert_eq!(routed[0].policy, "dcs");
        let warning = AlertFacts {
            severity: Some(Severity::Warning),
            ..critical
        };
        assert_eq!(tree().route(&warning)[0].policy, "lscb");
    }

    #[test]
    fn continue_lets_later_siblings_take_the_alert_too() {
        let mut tree = tree();
        tree.routes[0].continue_matching = true;
        let places = lineage(&["AREA_EAST", "CITY"]);
        let alert = AlertFacts {
            kind: "indicator",
            severity: Some(Severity::Warning),
            outcome: Some("STAY_SAFE"),
            locality_lineage: &places,
            ..Default::default()
        };
        let policies: Vec<String> = tree.route(&alert).into_iter().map(|r| r.policy).collect();
        assert_eq!(policies, vec!["lscb", "east-enabler"]);
    }

    #[test]
    fn a_tree_naming_an_unknown_policy_is_refused_with_the_route() {
        let policies = set(&["performance-team", "lscb", "east-enabler"]);
        assert_eq!(
            tree().validate(&policies),
            Err(RoutingError::UnknownPolicy {
                route: "safeguarding-critical".to_owned(),
                policy: "dcs".to_owned()
            })
        );
        let all = set(&["performance-team", "lscb", "east-enabler", "dcs"]);
        assert_eq!(tree().validate(&all), Ok(()));
    }
}
