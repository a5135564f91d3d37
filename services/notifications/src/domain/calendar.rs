//! Working days in England: Monday to Friday, less the bank holidays of England and Wales. Safeguarding
//! timescales (a strategy discussion within so many working days, a review within so many) are counted so,
//! and so are escalation deadlines that a policy states in working days.
//!
//! The regular holidays are computed (New Year's Day, Good Friday, Easter Monday, the early May and spring
//! bank holidays, the summer bank holiday, Christmas Day and Boxing Day, each moved to the next weekday when
//! it falls at a weekend), and the one-off changes proclaimed since 1999 are listed, so the calendar is right
//! for any year the platform records without a yearly data file.

use time::{Date, Duration, Month, Weekday};

/// One-off changes by proclamation: a moved regular holiday (`moved_from`) or an extra one.
struct Proclaimed {
    date: (i32, Month, u8),
    /// The regular holiday this one replaces, if it was moved rather than added.
    moved_from: Option<(i32, Month, u8)>,
}

const PROCLAIMED: &[Proclaimed] = &[
    // The millennium.
    Proclaimed {
        date: (1999, Month::December, 31),
        moved_from: None,
    },
    // Golden Jubilee: spring bank holiday moved to 4 June, and 3 June added.
    Proclaimed {
        date: (2002, Month::June, 4),
        moved_from: Some((2002, Month::May, 27)),
    },
    Proclaimed {
        date: (2002, Month::June, 3),
        moved_from: None,
    },
    // Royal wedding.
    Proclaimed {
        date: (2011, Month::April, 29),
        moved_from: None,
    },
    // Diamond Jubilee: spring bank holiday moved to 4 June, and 5 June added.
    Proclaimed {
        date: (2012, Month::June, 4),
        moved_from: Some((2012, Month::May, 28)),
    },
    Proclaimed {
        date: (2012, Month::June, 5),
        moved_from: None,
    },
    // VE Day 75: early May bank holiday moved to Friday 8 May.
    Proclaimed {
        date: (2020, Month::May, 8),
        moved_from: Some((2020, Month::May, 4)),
    },
    // Platinum Jubilee: spring bank holiday moved to 2 June, and 3 June added.
    Proclaimed {
        date: (2022, Month::June, 2),
        moved_from: Some((2022, Month::May, 30)),
    },
    Proclaimed {
        date: (2022, Month::June, 3),
        moved_from: None,
    },
    // State funeral of Queen Elizabeth II.
    Proclaimed {
        date: (2022, Month::September, 19),
        moved_from: None,
    },
    // Coronation of King Charles III.
    Proclaimed {
        date: (2023, Month::May, 8),
        moved_from: None,
    },
];

fn date(year: i32, month: Month, day: u8) -> Option<Date> {
    Date::from_calendar_date(year, month, day).ok()
}

/// Easter Sunday (Gregorian), by the anonymous algorithm (Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<Date> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    date(year, month, u8::try_from(day).ok()?)
}

fn first_weekday_on_or_after(day: Date, weekday: Weekday) -> Date {
    let mut day = day;
    while day.weekday() != weekday {
        day = day.next_day().unwrap_or(day);
    }
    day
}

fn last_weekday_of(year: i32, month: Month, weekday: Weekday) -> Option<Date> {
    let mut day = date(year, month, time::util::days_in_month(month, year))?;
    while day.weekday() != weekday {
        day = day.previous_day()?;
    }
    Some(day)
}

fn is_weekend(day: Date) -> bool {
    matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The regular bank holidays of England and Wales in `year`, before proclamations, in date order.
fn regular_holidays(year: i32) -> Vec<Date> {
    let mut holidays = Vec::with_capacity(8);
    // New Year's Day, or the Monday after when it is at a weekend.
    if let Some(new_year) = date(year, Month::January, 1) {
        holidays.push(if is_weekend(new_year) {
            first_weekday_on_or_after(new_year, Weekday::Monday)
        } else {
            new_year
        });
    }
    if let Some(easter) = easter_sunday(year) {
        holidays.push(easter - Duration::days(2));
        holidays.push(easter + Duration::days(1));
    }
    if let Some(may) = date(year, Month::May, 1) {
        holidays.push(first_weekday_on_or_after(may, Weekday::Monday));
    }
    holidays.extend(last_weekday_of(year, Month::May, Weekday::Monday));
    holidays.extend(last_weekday_of(year, Month::August, Weekday::Monday));
    // Christmas Day and Boxing Day: one at a weekend is replaced by the next weekday after Boxing Day not
    // already a holiday (so a Sunday Christmas gives Tuesday 27 when Boxing Day is a Monday).
    let christmas_days: Vec<Date> = [25, 26]
        .into_iter()
        .filter_map(|day| date(year, Month::December, day))
        .collect();
    let mut christmas_holidays: Vec<Date> = christmas_days
        .iter()
        .copied()
        .filter(|d| !is_weekend(*d))
        .collect();
    if let Some(&boxing_day) = christmas_days.last() {
        let mut next = boxing_day;
        for _ in christmas_days.iter().filter(|d| is_weekend(**d)) {
            loop {
                next += Duration::days(1);
                if !is_weekend(next) && !christmas_holidays.contains(&next) {
                    break;
                }
            }
            christmas_holidays.push(next);
        }
    }
    holidays.extend(christmas_holidays);
    holidays
}

/// The bank holidays of England and Wales in `year`, in date order.
pub fn bank_holidays(year: i32) -> Vec<Date> {
    let mut holidays = regular_holidays(year);
    for proclaimed in PROCLAIMED.iter().filter(|p| p.date.0 == year) {
        if let Some((y, m, d)) = proclaimed.moved_from
            && let Some(moved) = date(y, m, d)
        {
            holidays.retain(|h| *h != moved);
        }
        let (y, m, d) = proclaimed.date;
        holidays.extend(date(y, m, d));
    }
    holidays.sort();
    holidays.dedup();
    holidays
}

/// Whether `day` is a working day: a weekday that is not a bank holiday.
pub fn is_working_day(day: Date) -> bool {
    !is_weekend(day) && !bank_holidays(day.year()).contains(&day)
}

/// The date `n` working days after `from` (not counting `from` itself); `from` itself when `n` is 0.
pub fn add_working_days(from: Date, n: u32) -> Date {
    let mut day = from;
    let mut left = n;
    while left > 0 {
        match day.next_day() {
            Some(next) => day = next,
            None => return day,
        }
        if is_working_day(day) {
            left -= 1;
        }
    }
    day
}

/// Working days after `from` up to and including `to` (0 when `to` is not after `from`).
pub fn working_days_between(from: Date, to: Date) -> u32 {
    let mut count = 0;
    let mut day = from;
    while day < to {
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
        if is_working_day(day) {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn easter_matches_the_published_dates() {
        assert_eq!(easter_sunday(2024), Some(date!(2024 - 03 - 31)));
        assert_eq!(easter_sunday(2025), Some(date!(2025 - 04 - 20)));
        assert_eq!(easter_sunday(2026), Some(date!(2026 - 04 - 05)));
        assert_eq!(easter_sunday(2011), Some(date!(2011 - 04 - 24)));
    }

    #[test]
    fn bank_holidays_of_2026_are_the_published_list() {
        // gov.uk/bank-holidays, England and Wales, 2026.
        assert_eq!(
            bank_holidays(2026),
            vec![
                date!(2026 - 01 - 01),
                date!(2026 - 04 - 03),
                date!(2026 - 04 - 06),
                date!(2026 - 05 - 04),
                date!(2026 - 05 - 25),
                date!(2026 - 08 - 31),
                date!(2026 - 12 - 25),
                date!(2026 - 12 - 28),
            ]
        );
    }

    #[test]
    fn weekend_christmas_and_new_year_are_moved_to_the_next_weekdays() {
        // 2021: Christmas Saturday, Boxing Day Sunday -> Monday 27 and Tuesday 28; 2022 New Year Saturday
        // -> Monday 3 January.
        let h2021 = bank_holidays(2021);
        assert!(h2021.contains(&date!(2021 - 12 - 27)) && h2021.contains(&date!(2021 - 12 - 28)));
        assert!(bank_holidays(2022).contains(&date!(2022 - 01 - 03)));
        // 2022: Christmas Sunday -> Tuesday 27; Boxing Day Monday stays.
        let h2022 = bank_holidays(2022);
        assert!(h2022.contains(&date!(2022 - 12 - 26)) && h2022.contains(&date!(2022 - 12 - 27)));
    }

    #[test]
    fn proclaimed_holidays_move_and_add_days() {
        let h2022 = bank_holidays(2022);
        assert!(!h2022.contains(&date!(2022 - 05 - 30)), "spring holiday moved");
        assert!(h2022.contains(&date!(2022 - 06 - 02)) && h2022.contains(&date!(2022 - 06 - 03)));
        assert!(h2022.contains(&date!(2022 - 09 - 19)));
        let h2020 = bank_holidays(2020);
        assert!(h2020.contains(&date!(2020 - 05 - 08)) && !h2020.contains(&date!(2020 - 05 - 04)));
        assert!(bank_holidays(2023).contains(&date!(2023 - 05 - 08)));
        assert!(bank_holidays(2011).contains(&date!(2011 - 04 - 29)));
    }

    #[test]
    fn working_days_skip_weekends_and_bank_holidays() {
        // Thursday 2 April 2026 + 1 working day: Good Friday and Easter Monday are holidays -> Tuesday 7.
        assert_eq!(add_working_days(date!(2026 - 04 - 02), 1), date!(2026 - 04 - 07));
        // Friday 18 December 2026 + 4 -> Thursday 24, + 5 -> Tuesday 29 (Christmas Friday 25th, Boxing Day
        // Saturday replaced by Monday 28th).
        assert_eq!(add_working_days(date!(2026 - 12 - 18), 4), date!(2026 - 12 - 24));
        assert_eq!(add_working_days(date!(2026 - 12 - 18), 5), date!(2026 - 12 - 29));
        assert_eq!(add_working_days(date!(2026 - 11 - 23), 0), date!(2026 - 11 - 23));
        assert_eq!(
            working_days_between(date!(2026 - 12 - 18), date!(2026 - 12 - 29)),
            5
        );
        assert!(!is_working_day(date!(2026 - 11 - 22)), "a Sunday");
        assert!(is_working_day(date!(2026 - 11 - 23)));
    }
}
