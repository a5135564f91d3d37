//! Rolling values up the locality hierarchy: rates and percentages from summed numerators and
//! denominators, counts and money by summing; never by averaging rates, which would weight a small cluster
//! like a large one.

use trust_proto::common::v1::MeasureType;

/// One child's contribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
}

/// A parent's rolled-up value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolledUp {
    pub value: f64,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
}

/// Roll children up to their parent. None when it cannot be done honestly: a rate whose children lack a
/// numerator or denominator, a zero denominator, days (an average would be needed), or no children.
pub fn roll_up(measure: MeasureType, children: &[Contribution]) -> Option<RolledUp> {
    if children.is_empty() {
        return None;
    }
    let scale = match measure {
        MeasureType::Percentage => 100.0,
        MeasureType::RatePer1000 => 1_000.0,
        MeasureType::RatePer10000 => 10_000.0,
        MeasureType::Count | MeasureType::MoneyPence => {
            return Some(RolledUp {
                value: children.iter().map(|c| c.value).sum(),
                numerator: None,
                denominator: None,
            });
        }
        MeasureType::Days | MeasureType::Unspecified => return None,
    };
    let mut numerator = 0.0;
    let mut denominator = 0.0;
    for child in children {
        numerator += child.numerator?;
        denominator += child.denominator?;
    }
    if denominator <= 0.0 {
        return None;
    }
    Some(RolledUp {
        value: numerator / denominator * scale,
        numerator: Some(numerator),
        denominator: Some(denominator),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(numerator: f64, denominator: f64) -> Contribution {
        Contribution {
            value: numerator / denominator * 100.0,
            numerator: Some(numerator),
            denominator: Some(denominator),
        }
    }

    #[test]
    fn percentages_roll_up_from_sums_not_averages() {
        // 10% of 100 and 50% of 900: the average of rates would say 30%; the area's real rate is 46%.
        let rolled =
            roll_up(MeasureType::Percentage, &[rate(10.0, 100.0), rate(450.0, 900.0)]).expect("roll");
        assert!((rolled.value - 46.0).abs() < 1e-9, "{}", rolled.value);
        assert_eq!(
            (rolled.numerator, rolled.denominator),
            (Some(460.0), Some(1000.0))
        );
    }

    #[test]
    fn counts_and_money_are_summed() {
        let count = |value| Contribution {
            value,
            numerator: None,
            denominator: None,
        };
        assert_eq!(
            roll_up(MeasureType::Count, &[count(3.0), count(4.0)]).map(|r| r.value),
            Some(7.0)
        );
        assert_eq!(
            roll_up(MeasureType::MoneyPence, &[count(150.0), count(50.0)]).map(|r| r.value),
            Some(200.0)
        );
    }

    #[test]
    fn rates_without_numerators_or_days_do_not_roll_up() {
        let bare = Contribution {
            value: 12.0,
            numerator: None,
            denominator: None,
        };
        assert_eq!(roll_up(MeasureType::Percentage, &[rate(1.0, 10.0), bare]), None);
        assert_eq!(roll_up(MeasureType::Days, &[bare]), None);
        assert_eq!(roll_up(MeasureType::Percentage, &[]), None);
        let empty = Contribution {
            value: 0.0,
            numerator: Some(0.0),
            denominator: Some(0.0),
        };
        assert_eq!(roll_up(MeasureType::Percentage, &[empty]), None);
    }
}
