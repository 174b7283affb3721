//! Figures of the benchmarks: percentiles of measured durations, computed one way everywhere.

use std::time::Duration;

/// The nearest-rank `p`-th percentile of `sorted` (ascending, not empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(5));
        assert_eq!(percentile(&sorted, 95.0), Duration::from_millis(10));
        assert_eq!(percentile(&sorted, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&sorted[..1], 99.0), Duration::from_millis(1));
    }
}
