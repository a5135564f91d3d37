//! Who is told about an escalation: the staff whose responsibility matches it most specifically.

/// One line of the staff directory's responsibilities. An empty code matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responsibility {
    pub staff_code: String,
    pub indicator_code: String,
    pub locality_code: String,
}

/// How closely a responsibility fits an escalation; higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    /// Both codes empty: the default contact for anything.
    Default,
    /// Any indicator in this locality.
    Locality,
    /// This indicator in any locality.
    Indicator,
    /// This indicator in this locality.
    IndicatorAndLocality,
}

impl Responsibility {
    /// How specifically this responsibility covers the indicator and locality; None when it does not.
    /// Codes are compared exactly (a locality does not cover its sub-areas).
    pub fn matches(&self, indicator_code: &str, locality_code: &str) -> Option<Specificity> {
        let indicator = field_match(&self.indicator_code, indicator_code)?;
        let locality = field_match(&self.locality_code, locality_code)?;
        Some(match (indicator, locality) {
            (true, true) => Specificity::IndicatorAndLocality,
            (true, false) => Specificity::Indicator,
            (false, true) => Specificity::Locality,
            (false, false) => Specificity::Default,
        })
    }
}

/// Some(true) for an exact match, Some(false) for a wildcard, None for a different code.
fn field_match(rule: &str, actual: &str) -> Option<bool> {
    if rule.is_empty() {
        Some(false)
    } else if rule == actual {
        Some(true)
    } else {
        None
    }
}

/// The staff codes to tell: everyone at the most specific level that matches, sorted and without repeats.
/// Empty when nothing matches, not even a default.
pub fn select_recipients(
    responsibilities: &[Responsibility],
    indicator_code: &str,
    locality_code: &str,
) -> Vec<String> {
    let matched: Vec<(Specificity, &str)> = responsibilities
        .iter()
        .filter_map(|r| {
            r.matches(indicator_code, locality_code)
                .map(|s| (s, r.staff_code.as_str()))
        })
        .collect();
    let Some(best) = matched.iter().map(|(s, _)| *s).max() else {
        return Vec::new();
    };
    let mut staff: Vec<String> = matched
        .into_iter()
        .filter(|(s, _)| *s == best)
        .map(|(_, code)| code.to_owned())
        .collect();
    staff.sort();
    staff.dedup();
    staff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(staff: &str, indicator: &str, locality: &str) -> Responsibility {
        Responsibility {
            staff_code: staff.into(),
            indicator_code: indicator.into(),
            locality_code: locality.into(),
        }
    }

    fn directory() -> Vec<Responsibility> {
        vec![
            r("dcs", "", ""),
            r("east-lead", "", "EAST"),
            r("neet-lead", "NEET", ""),
            r("neet-east", "NEET", "EAST"),
            r("neet-east-deputy", "NEET", "EAST"),
        ]
    }

    #[test]
    fn indicator_and_locality_beats_everything() {
        assert_eq!(
            select_recipients(&directory(), "NEET", "EAST"),
            ["neet-east", "neet-east-deputy"]
        );
    }

    #[test]
    fn indicator_beats_locality_and_locality_beats_default() {
        assert_eq!(select_recipients(&directory(), "NEET", "WEST"), ["neet-lead"]);
        assert_eq!(
            select_recipients(&directory(), "ATTENDANCE", "EAST"),
            ["east-lead"]
        );
        assert_eq!(select_recipients(&directory(), "ATTENDANCE", "WEST"), ["dcs"]);
    }

    #[test]
    fn nobody_when_nothing_matches() {
        let rules = vec![r("neet-lead", "NEET", ""), r("east-lead", "", "EAST")];
        assert!(select_recipients(&rules, "ATTENDANCE", "WEST").is_empty());
        assert!(select_recipients(&[], "NEET", "EAST").is_empty());
    }

    #[test]
    fn codes_match_exactly_and_repeats_collapse() {
        let rules = vec![
            r("a", "NEET", "EAST"),
            r("a", "NEET", "EAST"),
            r("b", "neet", "EAST"),
        ];
        assert_eq!(select_recipients(&rules, "NEET", "EAST"), ["a"]);
        // An escalation about no indicator is matched only by locality-free, indicator-free defaults.
        assert_eq!(select_recipients(&directory(), "", ""), ["dcs"]);
    }

    #[test]
    fn specificity_order() {
        assert!(Specificity::IndicatorAndLocality > Specificity::Indicator);
        assert!(Specificity::Indicator > Specificity::Locality);
        assert!(Specificity::Locality > Specificity::Default);
    }
}
