//! How long to wait before trying a dependency that failed again (the object store).
//!
//! Contract: [`backoff`] doubles from 1 s with each consecutive failure, up to a minute; the
//! caller counts its failures and resets the count after a success. Used by the lake sink
//! (a partition whose flush failed) and the processor (a checkpoint that could not be written
//! or read), so both wait the same way.

use std::time::Duration;

/// The wait after the `failures`-th consecutive failure (1 s, 2 s, 4 s … 60 s).
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(6);
    Duration::from_secs(secs.min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_a_minute() {
        let s: Vec<u64> = (1..=9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
