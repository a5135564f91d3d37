//! Figures as the benchmarks print them: grouped digits, nearest-rank percentiles, rates, aligned rows.

use std::fmt::Write as _;
use std::time::Duration;

/// Nearest-rank percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

pub fn rate(count: f64, elapsed: Duration) -> String {
    if elapsed.is_zero() {
        return "n/a".to_owned();
    }
    thousands((count / elapsed.as_secs_f64()) as u64)
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Print `rows` as "  name  value" lines with the names aligned.
pub fn write_rows(out: &mut String, rows: &[(String, String)]) {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<width$}  {value}");
    }
}

/// "p50 12 ms, p95 40 ms, p99 80 ms, max 120 ms" of sorted durations.
pub fn latency_line(sorted: &[Duration]) -> String {
    let ms = |p: f64| percentile(sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    format!(
        "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(50.0),
        ms(95.0),
        ms(99.0),
        ms(100.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 99.0), None);
    }

    #[test]
    fn rows_align_on_the_longest_name() {
        let mut out = String::new();
        write_rows(
            &mut out,
            &[
                ("a".to_owned(), "1".to_owned()),
                ("long".to_owned(), "2".to_owned()),
            ],
        );
        assert_eq!(out, "  a     1\n  long  2\n");
    }
}
