//! Buckets in this process: governor's keyed GCRA limiters, one per quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use super::{Decision, Quota};

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Buckets idle long enough to be full again are dropped every this many
/// checks, so the map stays as large as the recently active clients.
const PRUNE_EVERY: u64 = 10_000;

/// The in-process buckets of every quota.
#[derive(Default)]
pub struct LocalLimits {
    limiters: RwLock<HashMap<Quota, Arc<Keyed>>>,
    checks: AtomicU64,
}

impl LocalLimits {
    /// Counts one request of `key` under `quota`.
    pub fn check(&self, key: &str, quota: Quota) -> Decision {
        let limiter = self.limiter(quota);
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        let interval = quota.interval();
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: quota.burst,
                    remaining,
                    reset: interval * (quota.burst - remaining),
                    retry_after: std::time::Duration::ZERO,
                }
            }
            Err(refusal) => Decision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                reset: interval * quota.burst,
                retry_after: refusal.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    fn limiter(&self, quota: Quota) -> Arc<Keyed> {
        if let Some(l) = self.limiters.read().expect("limiters").get(&quota) {
            return Arc::clone(l);
        }
        let mut all = self.limiters.write().expect("limiters");
        Arc::clone(all.entry(quota).or_insert_with(|| {
            let burst = NonZeroU32::new(quota.burst.max(1)).expect("at least 1");
            let q = governor::Quota::with_period(quota.interval())
                .expect("a positive interval")
                .allow_burst(burst);
            Arc::new(
                governor::RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_the_wait() {
        let limits = LocalLimits::default();
        let quota = Quota {
            per_minute: 1,
            burst: 3,
        };
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check("ip:a", quota))
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check("ip:a", quota);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after > std::time::Duration::from_secs(50));
        // Another subject has its own bucket.
        assert!(limits.check("ip:b", quota).allowed);
    }
}
