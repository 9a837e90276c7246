//! Summary statistics for the harness binaries: the one `percentile` that `abuse`,
//! `loadgen` and `bench_consensus` report latencies with.
//!
//! Nearest-rank definition: the p-th percentile of n sorted samples is the sample at
//! rank `ceil(p * n)` (1-based, at least 1), so it is always an observed value and p99
//! of fewer than 100 samples is the maximum.

/// The `p`-th percentile (`p` in 0.0..=1.0) of `sorted` (ascending), by nearest rank;
/// `None` when there are no samples. Callers render `None` at the edge (0 or NaN).
pub fn percentile<T: Copy + PartialOrd>(sorted: &[T], p: f64) -> Option<T> {
    debug_assert!(
        sorted.windows(2).all(|w| w[0] <= w[1]),
        "percentile of unsorted samples"
    );
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn no_samples_have_no_percentile() {
        assert_eq!(percentile::<u64>(&[], 0.5), None);
        assert_eq!(percentile::<f64>(&[], 0.99), None);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        for p in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(percentile(&[7u64], p), Some(7));
        }
    }

    #[test]
    fn nearest_rank_on_one_to_a_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
    }

    #[test]
    fn p99_of_a_small_sample_is_its_maximum() {
        let v = [1.0, 2.0, 3.0, 10.0];
        assert_eq!(percentile(&v, 0.99), Some(10.0));
        assert_eq!(percentile(&v, 0.5), Some(2.0));
    }

    #[test]
    fn out_of_range_p_is_clamped() {
        let v = [1u64, 2, 3];
        assert_eq!(percentile(&v, -1.0), Some(1));
        assert_eq!(percentile(&v, 2.0), Some(3));
    }

    #[test]
    fn percentiles_never_decrease_with_p() {
        let v: Vec<u64> = (0..37).map(|x| x * x).collect();
        let mut last = 0;
        for i in 0..=100 {
            let q = percentile(&v, f64::from(i) / 100.0).unwrap();
            assert!(q >= last);
            last = q;
        }
    }
}
