//! Summary statistics over run totals (pure arithmetic, host-tested).

/// Sort `values` in place and return `(min, median, max)`. The median of an
/// even count is the mean of the two middle values (rounded down). An empty
/// slice gives zeros.
pub fn summarize(values: &mut [u64]) -> (u64, u64, u64) {
    if values.is_empty() {
        return (0, 0, 0);
    }
    values.sort_unstable();
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        values[n / 2 - 1] / 2 + values[n / 2] / 2 + (values[n / 2 - 1] % 2 + values[n / 2] % 2) / 2
    };
    (values[0], median, values[n - 1])
}

/// Per-iteration value of a run total.
pub fn per_iteration(total: u64, iterations: u32) -> f64 {
    total as f64 / iterations.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_empty() {
        assert_eq!(summarize(&mut [5, 1, 3]), (1, 3, 5));
        assert_eq!(summarize(&mut [4, 1, 3, 10]), (1, 3, 10));
        assert_eq!(summarize(&mut [u64::MAX, u64::MAX]), (u64::MAX, u64::MAX, u64::MAX));
        assert_eq!(summarize(&mut [3, 4]), (3, 3, 4));
        assert_eq!(summarize(&mut []), (0, 0, 0));
        assert_eq!(per_iteration(3000, 1000), 3.0);
        assert_eq!(per_iteration(5, 0), 5.0);
    }
}
