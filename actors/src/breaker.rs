//! A circuit breaker per shard. Requests read it without locks or messages (atomics), the shard's
//! actor drives it with its health probe, and requests report connection failures into it.
//!
//! Closed: requests flow; `failure_threshold` consecutive connection failures open it.
//! Open: requests fail at once with a retry delay; after `open_for` one trial request goes through
//! (half-open). A success (a request's or the probe's) closes it; a failure re-opens it.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive connection failures that open the breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// How long the breaker stays open before letting a trial through.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; consecutive connection failures are counted (0 in `aries_shard_breaker_state`).
    Closed = 0,
    /// One trial request is through; the rest are refused until it, or a probe, reports (1).
    HalfOpen = 1,
    /// Every request is refused at once until `open_for` has passed (2).
    Open = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// The breaker refused the request; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Sent as `Retry-After`: the time left before the breaker lets a trial through, at least one
    /// second (one second while a trial is in flight).
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    /// `BreakerState` as a number.
    state: AtomicU8,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// When it last opened, in milliseconds since `epoch`.
    opened_at_ms: AtomicU64,
    /// Origin for `opened_at_ms` (an `Instant` cannot be stored in an atomic).
    epoch: Instant,
    /// Consecutive failures that open a closed breaker; at least 1 (`new` raises 0 to 1).
    failure_threshold: u32,
    /// How long the breaker stays open before it lets one trial request through.
    open_for: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURE_THRESHOLD, DEFAULT_OPEN_FOR)
    }
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            state: AtomicU8::new(BreakerState::Closed as u8),
            failures: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            failure_threshold: failure_threshold.max(1),
            open_for,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            1 => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// May a request go to the shard now?
    pub fn check(&self) -> Result<(), Rejected> {
        match self.state() {
            BreakerState::Closed => Ok(()),
            BreakerState::HalfOpen => Err(Rejected {
                retry_after: Duration::from_secs(1),
            }),
            BreakerState::Open => {
                let open_ms = self
                    .now_ms()
                    .saturating_sub(self.opened_at_ms.load(Ordering::Acquire));
                let open_for_ms = u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX);
                if open_ms >= open_for_ms
                    && self
                        .state
                        .compare_exchange(
                            BreakerState::Open as u8,
                            BreakerState::HalfOpen as u8,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                {
                    // This caller is the trial.
                    return Ok(());
                }
                let left = Duration::from_millis(open_for_ms.saturating_sub(open_ms));
                Err(Rejected {
                    retry_after: left.max(Duration::from_secs(1)),
                })
            }
        }
    }

    pub fn record_success(&self) {
        self.failures.store(0, Ordering::Release);
        self.state
            .store(BreakerState::Closed as u8, Ordering::Release);
    }

    pub fn record_failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state();
        if state == BreakerState::HalfOpen
            || (state == BreakerState::Closed && failures >= self.failure_threshold)
        {
            self.opened_at_ms.store(self.now_ms(), Ordering::Release);
            self.state
                .store(BreakerState::Open as u8, Ordering::Release);
        }
    }
}

/// Does this error mean the shard is unreachable or refusing work (as opposed to a bad query or a
/// rule the data broke)? Only these count against the breaker.
pub fn is_unavailability(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P0x: shutdown / cannot connect now; 53300: too many connections.
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers() {
        let b = CircuitBreaker::new(3, Duration::from_millis(0));
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        // open_for elapsed: exactly one trial passes, the rest wait.
        assert!(b.check().is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.check().is_err());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.check().is_ok());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.check().is_ok());
    }

    #[test]
    fn open_rejects_with_retry_after() {
        let b = CircuitBreaker::new(1, Duration::from_secs(30));
        b.record_failure();
        let r = b.check();
        assert!(
            matches!(r, Err(Rejected { retry_after }) if retry_after > Duration::from_secs(25))
        );
    }

    #[test]
    fn success_resets_the_count() {
        let b = CircuitBreaker::new(2, Duration::from_secs(30));
        b.record_failure();
        b.record_success();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
