//! Whether a staff directory can be accepted: every person has a code and an address mail can go to, an
//! away person names a cover who is in the directory (and not a circle of people all away), and every
//! responsibility names a person. Checked before anything is stored, so a bad directory changes
//! nothing.

use std::collections::HashSet;
use std::str::FromStr;

use lettre::Address;
use thiserror::Error;
use trust_proto::notifications::v1::StaffDirectory;

/// What is wrong with a directory, naming the staff code and field so the sender can fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct DirectoryError {
    pub reason: String,
}

fn invalid(reason: String) -> DirectoryError {
    DirectoryError { reason }
}

/// Check a directory on its own. `is_known_staff` says whether a staff code already exists in the stored
/// directory (responsibilities may name people sent before).
pub fn validate_directory(
    directory: &StaffDirectory,
    is_known_staff: impl Fn(&str) -> bool,
) -> Result<(), DirectoryError> {
    let mut codes = HashSet::new();
    for (index, staff) in directory.staff.iter().enumerate() {
        let code = staff.code.trim();
        if code.is_empty() {
            return Err(invalid(format!("staff[{index}]: code is required")));
        }
        if code != staff.code {
            return Err(invalid(format!(
                "staff {:?}: code has leading or trailing spaces",
                staff.code
            )));
        }
        if !codes.insert(code) {
            return Err(invalid(format!("staff {code:?}: code appears more than once")));
        }
        if let Err(reason) = check_email(&staff.email) {
            return Err(invalid(format!(
                "staff {code:?}: email {:?} {reason}",
                staff.email
            )));
        }
    }
    for staff in &directory.staff {
        let code = staff.code.as_str();
        let cover = staff.cover_staff_code.trim();
        if cover == code {
            return Err(invalid(format!(
                "staff {code:?}: cover_staff_code cannot be the person themselves"
            )));
        }
        if !cover.is_empty() && !codes.contains(cover) && !is_known_staff(cover) {
            return Err(invalid(format!(
                "staff {code:?}: cover_staff_code {cover:?} is not in the staff directory"
            )));
        }
        if staff.away && cover.is_empty() {
            return Err(invalid(format!(
                "staff {code:?}: away with no cover_staff_code; name who answers while they are away"
            )));
        }
        if let Some(role) = staff
            .roles
            .iter()
            .find(|r| r.trim().is_empty() || r.trim() != r.as_str())
        {
            return Err(invalid(format!(
                "staff {code:?}: role {role:?} is empty or has spaces around it"
            )));
        }
    }
    // Nobody may be covered only by people who are all away, round in a circle.
    for staff in directory.staff.iter().filter(|s| s.away) {
        let mut seen = vec![staff.code.as_str()];
        let mut next = staff.cover_staff_code.trim();
        while let Some(cover) = directory.staff.iter().find(|s| s.code == next && s.away) {
            if seen.contains(&cover.code.as_str()) {
                return Err(invalid(format!(
                    "staff {:?}: cover goes round in a circle of people who are all away ({} -> {})",
                    staff.code,
                    seen.join(" -> "),
                    cover.code
                )));
            }
            seen.push(cover.code.as_str());
            next = cover.cover_staff_code.trim();
        }
    }
    for (index, responsibility) in directory.responsibilities.iter().enumerate() {
        let code = responsibility.staff_code.as_str();
        if code.is_empty() {
            return Err(invalid(format!(
                "responsibilities[{index}]: staff_code is required"
            )));
        }
        if !codes.contains(code) && !is_known_staff(code) {
            return Err(invalid(format!(
                "responsibilities[{index}]: staff_code {code:?} is not in the staff directory"
            )));
        }
    }
    Ok(())
}

/// A plausible address: one `local@domain` that the mailer will accept, with no display name or spaces.
fn check_email(email: &str) -> Result<(), &'static str> {
    if email.is_empty() {
        return Err("is required");
    }
    if email.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
        return Err("must be a bare address like name@example.org");
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {}
        _ => return Err("must have the form name@domain"),
    }
    Address::from_str(email)
        .map(|_| ())
        .map_err(|_| "is not a valid email address")
}

#[cfg(test)]
mod tests {
    use super::*;
    use trust_proto::notifications::v1::{Responsibility, StaffMember};

    fn staff(code: &str, email: &str) -> StaffMember {
        StaffMember {
            code: code.into(),
            name: format!("{code} person"),
            email: email.into(),
            partner_code: "council".into(),
            ..Default::default()
        }
    }

    fn away(code: &str, cover: &str) -> StaffMember {
        StaffMember {
            away: true,
            cover_staff_code: cover.into(),
            ..staff(code, &format!("{code}@example.org"))
        }
    }

    #[test]
    fn an_away_person_must_name_a_cover_in_the_directory_and_not_a_circle() {
        let check = |members: Vec<StaffMember>| {
            validate_directory(
                &StaffDirectory {
                    staff: members,
                    responsibilities: vec![],
                },
                nobody,
            )
        };
        assert_eq!(check(vec![away("a", "b"), staff("b", "b@example.org")]), Ok(()));
        let no_cover = check(vec![away("a", "")]).unwrap_err();
        assert!(
            no_cover.reason.contains("away with no cover_staff_code"),
            "{no_cover}"
        );
        let unknown = check(vec![away("a", "zz")]).unwrap_err();
        assert!(
            unknown.reason.contains("\"zz\" is not in the staff directory"),
            "{unknown}"
        );
        let circle = check(vec![away("a", "b"), away("b", "a")]).unwrap_err();
        assert!(circle.reason.contains("round in a circle"), "{circle}");
        let selfish = check(vec![away("a", "a")]).unwrap_err();
        assert!(
            selfish.reason.contains("cannot be the person themselves"),
            "{selfish}"
        );
    }

    fn resp(staff_code: &str) -> Responsibility {
        Responsibility {
            staff_code: staff_code.into(),
            indicator_code: "NEET".into(),
            locality_code: String::new(),
        }
    }

    fn nobody(_: &str) -> bool {
        false
    }

    #[test]
    fn a_good_directory_passes() {
        let directory = StaffDirectory {
            staff: vec![
                staff("dcs", "dcs@leeds.gov.uk"),
                staff("pct", "perf@pct.localhost"),
            ],
            responsibilities: vec![resp("dcs"), resp("pct"), resp("existing")],
        };
        assert_eq!(validate_directory(&directory, |code| code == "existing"), Ok(()));
    }

    #[test]
    fn bad_entries_are_named() {
        let cases = [
            (vec![staff("", "a@b.org")], vec![], "staff[0]: code is required"),
            (
                vec![staff("dcs", "")],
                vec![],
                "staff \"dcs\": email \"\" is required",
            ),
            (
                vec![staff("dcs", "not-an-address")],
                vec![],
                "staff \"dcs\": email",
            ),
            (vec![staff("dcs", "a b@c.org")], vec![], "staff \"dcs\": email"),
            (vec![staff("dcs", "@c.org")], vec![], "staff \"dcs\": email"),
            (
                vec![staff("dcs", "Dee <d@c.org>")],
                vec![],
                "staff \"dcs\": email",
            ),
            (
                vec![staff("dcs", "a@b.org"), staff("dcs", "c@d.org")],
                vec![],
                "more than once",
            ),
            (
                vec![staff("dcs", "a@b.org")],
                vec![resp("ghost")],
                "\"ghost\" is not in the staff directory",
            ),
            (
                vec![],
                vec![resp("")],
                "responsibilities[0]: staff_code is required",
            ),
        ];
        for (staff, responsibilities, expected) in cases {
            let directory = StaffDirectory {
                staff,
                responsibilities,
            };
            let err = validate_directory(&directory, nobody).unwrap_err();
            assert!(
                err.reason.contains(expected),
                "{:?} should contain {expected:?}",
                err.reason
            );
        }
    }
}
