//! Retrying storage calls that failed for a passing reason (timeouts, throttling, 5xx,
//! connection errors), with exponential backoff and full jitter so that many collectors
//! recovering from the same outage do not retry in lockstep.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{Error, Result};

/// How long to wait between attempts, and when to give up.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub initial: Duration,
    /// The largest ceiling any wait may have.
    pub max: Duration,
    /// Give up once this much time has passed since the first attempt (`None`: never).
    pub max_elapsed: Option<Duration>,
    /// Growth of the ceiling per attempt.
    pub multiplier: f64,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, giving up after 5 minutes.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            max_elapsed: Some(Duration::from_secs(300)),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The ceiling for the wait after failed attempt number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(attempt.min(64) as i32);
        self.initial.mul_f64(factor.min(1e9)).min(self.max)
    }

    /// A random wait in `[0, ceiling(attempt)]` ("full jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

/// Runs `f` until it succeeds, fails with a non-transient error, or the policy gives up
/// (then the last error is returned). Each retry is logged with `op_name`.
pub async fn retry<T, F, Fut>(policy: &Backoff, op_name: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        let error: Error = match f().await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => e,
        };
        let delay = policy.delay(attempt);
        if let Some(limit) = policy.max_elapsed
            && start.elapsed() + delay > limit
        {
            tracing::warn!(operation = op_name, attempts = attempt + 1, error = %error, "giving up");
            return Err(error);
        }
        tracing::warn!(
            operation = op_name,
            attempt = attempt + 1,
            retry_in = %humantime::format_duration(round_ms(delay)),
            error = %error,
            "storage call failed, retrying"
        );
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn transient() -> Error {
        Error::backend("put", "k", "503", true)
    }

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
            max_elapsed: Some(Duration::from_secs(5)),
            multiplier: 2.0,
        }
    }

    #[test]
    fn ceilings_grow_exponentially_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(20), Duration::from_secs(30));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
        for attempt in 0..10 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let b = Backoff::default();
        let delays: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(delays.len() > 1, "{delays:?}");
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicU32::new(0);
        let value = retry(&fast(), "put", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(transient())
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let err = retry(&fast(), "get", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::NotFound { key: "k".into() })
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_elapsed() {
        let policy = Backoff {
            max_elapsed: Some(Duration::from_millis(30)),
            ..fast()
        };
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let err = retry(&policy, "put", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(transient())
        })
        .await
        .unwrap_err();
        assert!(err.is_transient());
        assert!(calls.load(Ordering::SeqCst) > 1);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
