//! Retry delays: exponential (`delay * 2^(attempt-1)`, capped) or fixed, with jitter.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    Exponential,
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Backoff {
    #[serde(rename = "type")]
    pub kind: BackoffKind,
    pub delay: u64,
    #[serde(default)]
    pub max_delay: Option<u64>,
    /// Fraction (0..=1) of the computed delay that may be randomly taken away.
    #[serde(default)]
    pub jitter: f64,
}

impl Backoff {
    /// The delay before the retry that follows failed attempt number `attempt` (1-based),
    /// before jitter.
    pub fn base_delay(&self, attempt: u32) -> u64 {
        match self.kind {
            BackoffKind::Fixed => self.delay,
            BackoffKind::Exponential => {
                let exponent = attempt.saturating_sub(1).min(62);
                let grown = self.delay.saturating_mul(1u64 << exponent);
                self.max_delay.map_or(grown, |cap| grown.min(cap))
            }
        }
    }

    /// The delay with jitter applied; `unit` is a random number in [0, 1).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> u64 {
        let base = self.base_delay(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        let cut = (base as f64 * jitter * unit.clamp(0.0, 1.0)).floor() as u64;
        base - cut.min(base)
    }

    pub fn delay(&self, attempt: u32) -> u64 {
        self.delay_with(attempt, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(delay: u64, max: Option<u64>) -> Backoff {
        Backoff {
            kind: BackoffKind::Exponential,
            delay,
            max_delay: max,
            jitter: 0.0,
        }
    }

    #[test]
    fn exponential_doubles_per_attempt_and_caps() {
        let b = exp(1000, Some(30_000));
        let delays: Vec<u64> = (1..=7).map(|a| b.base_delay(a)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    }

    #[test]
    fn exponential_without_cap_saturates_instead_of_overflowing() {
        assert_eq!(exp(1000, None).base_delay(200), u64::MAX);
    }

    #[test]
    fn fixed_is_constant() {
        let b = Backoff {
            kind: BackoffKind::Fixed,
            delay: 5000,
            max_delay: None,
            jitter: 0.0,
        };
        assert_eq!((1..=3).map(|a| b.delay(a)).collect::<Vec<_>>(), [5000; 3]);
    }

    #[test]
    fn jitter_takes_away_at_most_its_fraction() {
        let mut b = exp(1000, None);
        b.jitter = 0.25;
        assert_eq!(b.delay_with(1, 0.0), 1000);
        assert_eq!(b.delay_with(1, 0.999_999), 751);
        assert_eq!(b.delay_with(3, 0.5), 3500);
        for _ in 0..1000 {
            let d = b.delay(2);
            assert!((1500..=2000).contains(&d), "{d}");
        }
    }

    #[test]
    fn parses_the_options_json_written_by_python() {
        let b: Backoff = serde_json::from_str(
            r#"{"type": "exponential", "delay": 1000, "max_delay": 30000, "jitter": 0.0}"#,
        )
        .unwrap();
        assert_eq!(b, exp(1000, Some(30_000)));
    }
}
