//! The staff directory file: who may be told about escalations, and who answers for what. Turned into a
//! `trust.notifications.v1.StaffDirectory` for `Notifications.PutStaffDirectory`, which replaces the
//! responsibilities as a whole (staff are upserted).
//!
//! ```toml
//! [[staff]]
//! code = "enabler-ene"
//! name = "Locality Enabler, East North East"
//! email = "enabler.ene@example.org"
//! partner = "council"
//! roles = ["locality_enabler"]        # optional
//! localities = ["AREA_EAST_NORTH_EAST"] # optional: where the roles apply (default: the whole city)
//! away = true                         # optional: on leave; alerts go to the cover instead
//! cover = "head-targeted"             # required when away
//!
//! # Empty scope matches anything; the most specific match wins: indicator and locality, then indicator,
//! # then locality, then the default with neither.
//! [[responsibility]]
//! staff = "enabler-ene"
//! indicator = "NEET_16_18"            # optional
//! locality = "AREA_EAST_NORTH_EAST"   # optional
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use trust_proto::notifications::v1 as pb;

use crate::catalogue_file::{check_code, check_name, optional_code};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    staff: Vec<StaffEntry>,
    #[serde(default)]
    responsibility: Vec<ResponsibilityEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffEntry {
    code: String,
    name: String,
    email: String,
    partner: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    localities: Vec<String>,
    #[serde(default)]
    away: bool,
    cover: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsibilityEntry {
    staff: String,
    indicator: Option<String>,
    locality: Option<String>,
}

/// Read and parse a staff directory file.
pub fn load(path: &Path) -> Result<pb::StaffDirectory> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a valid staff directory file", path.display()))
}

/// Parse the text of a staff directory file.
pub fn parse(text: &str) -> Result<pb::StaffDirectory> {
    let file: DirectoryFile = toml::from_str(text)?;
    file.into_directory()
}

/// A plausible single address: something@domain.tld, no spaces, no display name.
fn check_email(entry: &str, email: &str) -> Result<()> {
    let plausible = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
    }) && !email
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'));
    if !plausible {
        bail!("{entry}: email {email:?} is not an address like name@example.org");
    }
    Ok(())
}

fn scope(indicator: &str, locality: &str) -> String {
    match (indicator.is_empty(), locality.is_empty()) {
        (true, true) => "default (any indicator, anywhere)".to_owned(),
        (false, true) => format!("{indicator} (anywhere)"),
        (true, false) => format!("any indicator in {locality}"),
        (false, false) => format!("{indicator} in {locality}"),
    }
}

impl DirectoryFile {
    fn into_directory(self) -> Result<pb::StaffDirectory> {
        let mut directory = pb::StaffDirectory::default();
        let mut seen = BTreeSet::new();
        for member in self.staff {
            let entry = format!("staff {}", member.code);
            check_code(&entry, "code", &member.code)?;
            check_name(&entry, &member.name)?;
            check_email(&entry, &member.email)?;
            check_code(&entry, "partner", &member.partner)?;
            if !seen.insert(member.code.clone()) {
                bail!("{entry} is listed more than once");
            }
            for role in &member.roles {
                check_code(&entry, "roles", role)?;
            }
            for locality in &member.localities {
                check_code(&entry, "localities", locality)?;
            }
            let cover = optional_code(&entry, "cover", member.cover, "no cover")?;
            if member.away && cover.is_empty() {
                bail!("{entry}: away = true needs cover = \"<staff code>\", who answers while they are away");
            }
            if cover == member.code {
                bail!("{entry}: cover cannot be the person themselves");
            }
            directory.staff.push(pb::StaffMember {
                code: member.code,
                name: member.name,
                email: member.email,
                partner_code: member.partner,
                roles: member.roles,
                localities: member.localities,
                away: member.away,
                cover_staff_code: cover,
            });
        }
        for member in &directory.staff {
            if !member.cover_staff_code.is_empty() && !seen.contains(&member.cover_staff_code) {
                bail!(
                    "staff {}: cover {:?} is not a staff member in this file",
                    member.code,
                    member.cover_staff_code
                );
            }
        }

        let mut scopes = BTreeSet::new();
        for responsibility in self.responsibility {
            let entry = format!("responsibility of {}", responsibility.staff);
            check_code(&entry, "staff", &responsibility.staff)?;
            let indicator = optional_code(&entry, "indicator", responsibility.indicator, "any indicator")?;
            let locality = optional_code(&entry, "locality", responsibility.locality, "any locality")?;
            if !scopes.insert((responsibility.staff.clone(), indicator.clone(), locality.clone())) {
                bail!(
                    "{entry} for {} is listed more than once",
                    scope(&indicator, &locality)
                );
            }
            directory.responsibilities.push(pb::Responsibility {
                staff_code: responsibility.staff,
                indicator_code: indicator,
                locality_code: locality,
            });
        }
        Ok(directory)
    }
}

/// A readable account of what the file holds.
pub fn summary(directory: &pb::StaffDirectory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "staff ({}):", directory.staff.len());
    for s in &directory.staff {
        let roles = if s.roles.is_empty() {
            String::new()
        } else {
            format!(" roles {}", s.roles.join(", "))
        };
        let places = if s.localities.is_empty() {
            String::new()
        } else {
            format!(" in {}", s.localities.join(", "))
        };
        let away = if s.away {
            format!(" AWAY, covered by {}", s.cover_staff_code)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<16} {} <{}> ({}){roles}{places}{away}",
            s.code, s.name, s.email, s.partner_code
        );
    }
    let _ = writeln!(out, "responsibilities ({}):", directory.responsibilities.len());
    for r in &directory.responsibilities {
        let _ = writeln!(
            out,
            "  {:<48} -> {}",
            scope(&r.indicator_code, &r.locality_code),
            r.staff_code
        );
    }
    let known: BTreeSet<&str> = directory.staff.iter().map(|s| s.code.as_str()).collect();
    let unknown: BTreeSet<&str> = directory
        .responsibilities
        .iter()
        .map(|r| r.staff_code.as_str())
        .filter(|code| !known.contains(code))
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(
            out,
            "staff this file does not define (they must already be in the directory): {}",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if !directory
        .responsibilities
        .iter()
        .any(|r| r.indicator_code.is_empty() && r.locality_code.is_empty())
    {
        let _ = writeln!(
            out,
            "note: no default responsibility; an escalation matching no entry reaches nobody"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[staff]]
        code = "enabler-ene"
        name = "Locality Enabler, East North East"
        email = "enabler.ene@example.org"
        partner = "council"

        [[staff]]
        code = "perf-lead"
        name = "Performance Lead"
        email = "performance.lead@example.org"
        partner = "council"

        [[responsibility]]
        staff = "enabler-ene"
        indicator = "NEET_16_18"
        locality = "AREA_EAST_NORTH_EAST"

        [[responsibility]]
        staff = "perf-lead"
    "#;

    fn error_of(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn a_good_file_becomes_the_directory() {
        let directory = parse(GOOD).unwrap();
        assert_eq!(directory.staff.len(), 2);
        assert_eq!(directory.staff[0].partner_code, "council");
        assert_eq!(
            directory.responsibilities[0],
            pb::Responsibility {
                staff_code: "enabler-ene".into(),
                indicator_code: "NEET_16_18".into(),
                locality_code: "AREA_EAST_NORTH_EAST".into(),
            }
        );
        // No indicator and no locality: the default.
        assert_eq!(directory.responsibilities[1].indicator_code, "");
        assert_eq!(directory.responsibilities[1].locality_code, "");
        let summary = summary(&directory);
        assert!(summary.contains("default (any indicator, anywhere)"), "{summary}");
        assert!(!summary.contains("note:"), "{summary}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = GOOD.replace("partner = \"council\"", "partner = \"council\"\nphone = \"0113\"");
        let err = error_of(&bad);
        assert!(err.contains("unknown field `phone`"), "{err}");
        let bad = GOOD.replace("[[responsibility]]", "[[responsibilities]]");
        assert!(error_of(&bad).contains("unknown field `responsibilities`"));
    }

    #[test]
    fn mistakes_in_entries_are_named() {
        let bad = GOOD.replace("enabler.ene@example.org", "Enabler <enabler.ene@example.org>");
        assert_eq!(
            error_of(&bad),
            "staff enabler-ene: email \"Enabler <enabler.ene@example.org>\" is not an address like name@example.org"
        );
        let bad = GOOD.replace("locality = \"AREA_EAST_NORTH_EAST\"", "locality = \"\"");
        assert_eq!(
            error_of(&bad),
            "responsibility of enabler-ene: locality is empty; leave the key out for any locality"
        );
        let twice = format!("{GOOD}\n[[responsibility]]\nstaff = \"perf-lead\"\n");
        assert_eq!(
            error_of(&twice),
            "responsibility of perf-lead for default (any indicator, anywhere) is listed more than once"
        );
    }

    #[test]
    fn summary_points_out_gaps() {
        let directory = parse(
            r#"
            [[responsibility]]
            staff = "someone"
            indicator = "NEET_16_18"
            "#,
        )
        .unwrap();
        let summary = summary(&directory);
        assert!(
            summary.contains("must already be in the directory): someone"),
            "{summary}"
        );
        assert!(summary.contains("no default responsibility"), "{summary}");
    }

    #[test]
    fn roles_localities_and_cover_are_read_and_an_away_person_needs_a_cover_in_the_file() {
        let staff = |extra: &str| {
            format!(
                "[[staff]]\ncode = \"enabler\"\nname = \"Enabler\"\nemail = \"enabler@example.org\"\n\
                 partner = \"council\"\n{extra}\n\
                 [[staff]]\ncode = \"deputy\"\nname = \"Deputy\"\nemail = \"deputy@example.org\"\n\
                 partner = \"council\"\n"
            )
        };
        let directory = parse(&staff(
            "roles = [\"locality_enabler\"]\nlocalities = [\"AREA_EAST\"]\naway = true\ncover = \"deputy\"",
        ))
        .expect("parses");
        let enabler = &directory.staff[0];
        assert_eq!(enabler.roles, vec!["locality_enabler"]);
        assert_eq!(enabler.localities, vec!["AREA_EAST"]);
        assert!(enabler.away);
        assert_eq!(enabler.cover_staff_code, "deputy");

        let err = format!("{:#}", parse(&staff("away = true")).unwrap_err());
        assert!(err.contains("away = true needs cover"), "{err}");
        let err = format!(
            "{:#}",
            parse(&staff("away = true\ncover = \"nobody\"")).unwrap_err()
        );
        assert!(
            err.contains("cover \"nobody\" is not a staff member in this file"),
            "{err}"
        );
    }
}
