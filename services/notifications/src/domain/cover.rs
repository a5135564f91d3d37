//! Cover for an absent person: what would go to someone who is away goes to the cover they named, and on
//! to that person's cover if they are away too.

use std::collections::HashMap;

/// Whether a person is at work, and who covers for them when not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    pub away: bool,
    pub cover: Option<String>,
}

/// Who receives what was meant for someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answering {
    pub staff_code: String,
    /// The away person this one is covering for, when it is a cover.
    pub covering_for: Option<String>,
}

/// Who answers for `staff_code`: the person, or the first person at work along their chain of covers.
/// A chain that ends with nobody at work (which a checked directory cannot hold) falls back to the
/// person meant, so nothing is dropped.
pub fn who_answers(staff_code: &str, presence: &HashMap<String, Presence>) -> Answering {
    let mut current = staff_code;
    let mut seen = vec![staff_code];
    while let Some(Presence {
        away: true,
        cover: Some(cover),
    }) = presence.get(current)
    {
        if seen.contains(&cover.as_str()) {
            break;
        }
        seen.push(cover.as_str());
        current = cover.as_str();
        if presence.get(current).is_none_or(|p| !p.away) {
            return Answering {
                staff_code: current.to_owned(),
                covering_for: Some(staff_code.to_owned()),
            };
        }
    }
    Answering {
        staff_code: staff_code.to_owned(),
        covering_for: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(entries: &[(&str, bool, Option<&str>)]) -> HashMap<String, Presence> {
        entries
            .iter()
            .map(|(code, away, cover)| {
                (
                    (*code).to_owned(),
                    Presence {
                        away: *away,
                        cover: cover.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_person_at_work_answers_for_themselves() {
        let people = directory(&[("enabler", false, Some("head"))]);
        assert_eq!(
            who_answers("enabler", &people),
            Answering {
                staff_code: "enabler".into(),
                covering_for: None
            }
        );
    }

    #[test]
    fn an_away_persons_cover_answers_following_the_chain() {
        let people = directory(&[
            ("enabler", true, Some("deputy")),
            ("deputy", true, Some("head")),
            ("head", false, None),
        ]);
        assert_eq!(
            who_answers("enabler", &people),
            Answering {
                staff_code: "head".into(),
                covering_for: Some("enabler".into())
            }
        );
    }

    #[test]
    fn a_circle_of_absent_people_falls_back_to_the_person_meant() {
        let people = directory(&[("a", true, Some("b")), ("b", true, Some("a"))]);
        assert_eq!(who_answers("a", &people).staff_code, "a");
    }
}
