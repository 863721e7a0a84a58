//! A circuit breaker in front of a dependency (the node; the external risk
//! engine): after `failure_threshold` consecutive transient failures it
//! opens and refuses calls at once (no timeouts piling up behind a dead
//! dependency); after `cool_down` one probe call is let through (half-open),
//! and its success closes the breaker again. Each transition is logged and
//! counted under the breaker's own metric.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker state, as reported in `/health/detailed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One probe is allowed through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    /// The dependency, for logs.
    name: &'static str,
    /// The transitions counter, labelled `to`.
    metric: &'static str,
    failure_threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker in front of the node
    /// (`rwa_chain_breaker_transitions_total`).
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self::named(
            "chain",
            "rwa_chain_breaker_transitions_total",
            failure_threshold,
            cool_down,
        )
    }

    /// A closed breaker in front of `name`, counting transitions in `metric`.
    pub fn named(
        name: &'static str,
        metric: &'static str,
        failure_threshold: u32,
        cool_down: Duration,
    ) -> Self {
        Self {
            name,
            metric,
            failure_threshold: failure_threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state now (an open breaker past its cool-down reads half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at)) if at.elapsed() >= self.cool_down => {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        }
    }

    /// Whether a call may go out now. Moves an open breaker past its cool-down
    /// to half-open and lets exactly that caller probe.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open => {
                if inner
                    .opened_at
                    .is_some_and(|at| at.elapsed() >= self.cool_down)
                {
                    self.transition(&mut inner, BreakerState::HalfOpen);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Records a call that reached the node and got an answer (even an error answer).
    pub fn success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if inner.state != BreakerState::Closed {
            self.transition(&mut inner, BreakerState::Closed);
            inner.opened_at = None;
        }
    }

    /// Records a transient failure (unreachable, timeout, 429, 5xx).
    pub fn failure(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let trips = inner.state == BreakerState::HalfOpen
            || (inner.state == BreakerState::Closed
                && inner.consecutive_failures >= self.failure_threshold);
        if trips {
            self.transition(&mut inner, BreakerState::Open);
            inner.opened_at = Some(Instant::now());
        }
    }
}

impl Breaker {
    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        tracing::warn!(
            breaker = self.name,
            from = inner.state.as_str(),
            to = to.as_str(),
            "circuit breaker"
        );
        metrics::counter!(self.metric, "to" => to.as_str()).increment(1);
        inner.state = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_after_the_cool_down_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::ZERO);
        breaker.failure();
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failure();
        // Zero cool-down: open reads as half-open at once, and one probe goes out.
        assert!(breaker.allow());
        assert!(!breaker.allow(), "only one probe while half-open");
        breaker.failure();
        assert!(
            breaker.allow(),
            "a failed probe re-opens; the next cool-down allows another"
        );
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow());
    }

    #[test]
    fn an_open_breaker_refuses_until_its_cool_down_ends() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());
    }
}
