//! Reference data as ingest consults it for every record: indicators, localities and their effective-dated
//! hierarchy, partners and what the information sharing protocol lets them submit, targets and locked
//! periods. Held in memory so that validating and evaluating a record costs no database round trip; reloaded
//! (inside the submission's own transaction) whenever `reference_generation` has moved, which every change
//! to those tables does in the changing transaction, so every replica sees a change on its next batch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sqlx::PgConnection;
use time::Date;

use crate::domain::{IndicatorSpec, Period, TargetSpec};
use crate::store::{self, PeriodLock, TargetInForce};

/// One target row: a locality's own (or the city-wide default when `locality` is None) for a period range.
#[derive(Debug, Clone)]
struct TargetRow {
    locality: Option<String>,
    from: Option<(i32, i32)>,
    to: Option<(i32, i32)>,
    target: TargetInForce,
}

/// A snapshot of the reference data at one generation.
#[derive(Debug, Default)]
pub struct Reference {
    generation: i64,
    pub indicators: HashMap<String, IndicatorSpec>,
    locality_names: HashMap<String, String>,
    partners: HashSet<String>,
    may_submit: HashMap<String, HashSet<String>>,
    /// Empty or absent: the partner may submit for the whole city.
    may_submit_for: HashMap<String, HashSet<String>>,
    /// Per locality, its parents with the date each took effect, earliest first.
    parents: HashMap<String, Vec<(Date, String)>>,
    /// Per parent, every locality that has had it as parent at some time.
    ever_children: HashMap<String, Vec<String>>,
    targets: HashMap<String, Vec<TargetRow>>,
    /// Keyed by (indicator, year, number).
    locks: HashMap<(String, i32, i32), PeriodLock>,
    /// Per indicator, its outcome and priority codes ("" when none).
    framework: HashMap<String, (String, String)>,
}

impl Reference {
    pub fn partner_exists(&self, partner: &str) -> bool {
        self.partners.contains(partner)
    }

    pub fn locality_known(&self, code: &str) -> bool {
        self.locality_names.contains_key(code)
    }

    pub fn locality_name(&self, code: &str) -> String {
        self.locality_names
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_owned())
    }

    pub fn may_submit(&self, partner: &str, indicator: &str) -> bool {
        self.may_submit
            .get(partner)
            .is_some_and(|codes| codes.contains(indicator))
    }

    /// Whether the partner may submit for this locality in this period: it, or a locality above it in the
    /// hierarchy in force when the period began, is among the partner's places (or it has no limit).
    pub fn may_submit_for(&self, partner: &str, locality: &str, period: Period) -> bool {
        match self.may_submit_for.get(partner) {
            None => true,
            Some(places) if places.is_empty() => true,
            Some(places) => self
                .lineage(locality, period.starts_on())
                .iter()
                .any(|l| places.contains(*l)),
        }
    }

    /// The indicator's outcome and priority codes ("" when it has none).
    pub fn outcome_and_priority(&self, indicator: &str) -> (&str, &str) {
        self.framework
            .get(indicator)
            .map_or(("", ""), |(o, p)| (o.as_str(), p.as_str()))
    }

    pub fn lock(&self, indicator: &str, period: Period) -> Option<&PeriodLock> {
        self.locks
            .get(&(indicator.to_owned(), period.year(), period.number()))
    }

    /// The parent in force on `on`.
    pub fn parent_on(&self, locality: &str, on: Date) -> Option<&str> {
        self.parents
            .get(locality)?
            .iter()
            .rev()
            .find(|(from, _)| *from <= on)
            .map(|(_, parent)| parent.as_str())
    }

    /// The locality and its ancestors in the hierarchy in force on `on`, nearest first.
    pub fn lineage<'a>(&'a self, locality: &'a str, on: Date) -> Vec<&'a str> {
        let mut lineage = vec![locality];
        // Bounded: a hierarchy is shallow, and the bound guards against a cycle in bad data.
        while lineage.len() < 16 {
            match lineage.last().and_then(|l| self.parent_on(l, on)) {
                Some(parent) if !lineage.contains(&parent) => lineage.push(parent),
                _ => break,
            }
        }
        lineage
    }

    /// The children a parent has on `on`.
    pub fn children_on(&self, parent: &str, on: Date) -> Vec<&str> {
        self.ever_children
            .get(parent)
            .map(|candidates| {
                candidates
                    .iter()
                    .filter(|c| self.parent_on(c, on) == Some(parent))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The target in force for a locality and period: the locality's own, else the city-wide default; of
    /// those covering the period, the one that started latest.
    pub fn target_for(&self, indicator: &str, locality: &str, period: Period) -> Option<TargetInForce> {
        let at = (period.year(), period.number());
        let covering =
            |row: &&TargetRow| row.from.is_none_or(|from| from <= at) && row.to.is_none_or(|to| to >= at);
        let rows = self.targets.get(indicator)?;
        let latest_start = |own: bool| {
            rows.iter()
                .filter(covering)
                .filter(|row| {
                    if own {
                        row.locality.as_deref() == Some(locality)
                    } else {
                        row.locality.is_none()
                    }
                })
                // A range with no start is the earliest: any dated start overrides it.
                .max_by_key(|row| row.from.map_or((i32::MIN, i32::MIN), |f| f))
                .map(|row| row.target)
        };
        latest_start(true).or_else(|| latest_start(false))
    }
}

/// The snapshot in force, shared by the bus receiver and the gRPC API of one replica.
#[derive(Debug, Default)]
pub struct ReferenceCache {
    current: Mutex<Option<Arc<Reference>>>,
}

impl ReferenceCache {
    /// The snapshot at the generation visible to `conn`'s transaction, reloading it if it has moved.
    pub async fn current(&self, conn: &mut PgConnection) -> Result<Arc<Reference>, sqlx::Error> {
        let generation: i64 = sqlx::query_scalar("SELECT generation FROM reference_generation")
            .fetch_one(&mut *conn)
            .await?;
        if let Some(held) = self.held()
            && held.generation == generation
        {
            return Ok(held);
        }
        let loaded = Arc::new(load(conn, generation).await?);
        if let Ok(mut current) = self.current.lock() {
            *current = Some(Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    fn held(&self) -> Option<Arc<Reference>> {
        self.current.lock().ok().and_then(|held| held.clone())
    }
}

type TargetRecord = (
    String,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    f64,
    f64,
    Option<f64>,
);

async fn load(conn: &mut PgConnection, generation: i64) -> Result<Reference, sqlx::Error> {
    let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM indicator")
        .fetch_all(&mut *conn)
        .await?;
    let indicators = store::indicators(conn, &codes).await?;
    let locality_names: HashMap<String, String> = sqlx::query_as("SELECT code, name FROM locality")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let partners: HashSet<String> = sqlx::query_scalar("SELECT code FROM partner")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let mut may_submit: HashMap<String, HashSet<String>> = HashMap::new();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_code, indicator_code FROM submission_permission")
            .fetch_all(&mut *conn)
            .await?;
    for (partner, indicator) in rows {
        may_submit.entry(partner).or_default().insert(indicator);
    }
    let mut may_submit_for: HashMap<String, HashSet<String>> = HashMap::new();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_code, locality_code FROM submission_locality_permission")
            .fetch_all(&mut *conn)
            .await?;
    for (partner, locality) in rows {
        may_submit_for.entry(partner).or_default().insert(locality);
    }
    let mut parents: HashMap<String, Vec<(Date, String)>> = HashMap::new();
    let mut ever_children: HashMap<String, Vec<String>> = HashMap::new();
    let rows: Vec<(String, String, Date)> = sqlx::query_as(
        "SELECT locality_code, parent_code, effective_from FROM locality_parent ORDER BY effective_from",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (locality, parent, from) in rows {
        let children = ever_children.entry(parent.clone()).or_default();
        if !children.contains(&locality) {
            children.push(locality.clone());
        }
        parents.entry(locality).or_default().push((from, parent));
    }
    let mut targets: HashMap<String, Vec<TargetRow>> = HashMap::new();
    let rows: Vec<TargetRecord> = sqlx::query_as(
        "SELECT indicator_code, locality_code, from_year, from_number, to_year, to_number, value, \
         amber_tolerance, baseline FROM target",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (indicator, locality, from_year, from_number, to_year, to_number, value, amber, baseline) in rows {
        targets.entry(indicator).or_default().push(TargetRow {
            locality,
            from: from_year.map(|y| (y, from_number.unwrap_or(0))),
            to: to_year.map(|y| (y, to_number.unwrap_or(i32::MAX))),
            target: TargetInForce {
                spec: TargetSpec {
                    value,
                    amber_tolerance: amber,
                },
                baseline,
            },
        });
    }
    let locks = store::period_locks(conn, &codes).await?;
    let framework: HashMap<String, (String, String)> = sqlx::query_as::<_, (String, String, String)>(
        "SELECT code, outcome_code, priority_code FROM indicator",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(code, outcome, priority)| (code, (outcome, priority)))
    .collect();
    Ok(Reference {
        generation,
        indicators,
        locality_names,
        partners,
        may_submit,
        may_submit_for,
        parents,
        ever_children,
        targets,
        locks,
        framework,
    })
}
