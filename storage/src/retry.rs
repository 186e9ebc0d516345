//! Retrying storage calls that failed for a passing reason (timeouts, throttling, 5xx,
//! connection errors), with exponential backoff and jitter so that many collectors
//! recovering from the same outage do not retry in lockstep. The schedule is `backon`'s; this
//! module adds our policy type, the transient-or-not rule and the logging.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Error, Result};

/// How long to wait between attempts, and when to give up.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first wait (before jitter).
    pub initial: Duration,
    /// The longest wait (before jitter).
    pub max: Duration,
    /// Give up once this much time has passed since the first attempt (`None`: never).
    pub max_elapsed: Option<Duration>,
    /// Growth of the wait per attempt.
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
    /// The schedule: each wait is the exponential one plus a random part of up to as much again.
    fn schedule(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_factor(self.multiplier.max(1.0) as f32)
            .with_jitter()
            .without_max_times()
    }
}

/// Runs `f` until it succeeds, fails with a non-transient error, or the policy gives up
/// (then the last error is returned). Each retry is logged with `op_name`.
pub async fn retry<T, F, Fut>(policy: &Backoff, op_name: &str, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    // The time limit counts the calls too, not only the waits (`backon`'s total delay).
    let in_time = || {
        policy
            .max_elapsed
            .is_none_or(|limit| started.elapsed() < limit)
    };
    let mut attempts = 1u32;
    let result = f
        .retry(policy.schedule())
        .sleep(tokio::time::sleep)
        .when(|e: &Error| e.is_transient() && in_time())
        .notify(|error, delay| {
            tracing::warn!(
                operation = op_name,
                attempt = attempts,
                retry_in = %humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                error = %error,
                "storage call failed, retrying"
            );
            attempts += 1;
        })
        .await;
    if let Err(error) = &result
        && error.is_transient()
    {
        tracing::warn!(operation = op_name, attempts, error = %error, "giving up");
    }
    result
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
