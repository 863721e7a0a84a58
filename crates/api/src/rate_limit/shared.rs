//! Buckets shared by every instance through Redis: one Lua script does the
//! GCRA step atomically on Redis's own clock (instances' clocks may differ),
//! storing each bucket's theoretical arrival time under a key that expires
//! once the bucket would be full again.
//!
//! Written here rather than taken from a crate: the crates that do GCRA on
//! Redis either need a server module (redis-cell) or bring their own
//! connection handling; the step is twenty lines of Lua.
//!
//! Redis being down never refuses or delays a request: the caller falls back
//! to its in-process buckets, and the connection is tried again at most once
//! a second by one request while the others keep going.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::json;

use super::{Decision, Quota};

/// One GCRA step. KEYS[1]: the bucket; ARGV[1]: the refill interval and
/// ARGV[2] the burst, in microseconds and requests. Returns
/// `{allowed, remaining, reset_us, retry_us}`.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((now + interval * burst - new_tat) / interval), new_tat - now, 0}
";

/// Pause between attempts to reach Redis while it is down.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Limits kept in Redis.
pub struct SharedLimits {
    client: redis::Client,
    script: redis::Script,
    prefix: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Down since, and when the next attempt may be made.
    down: Mutex<Option<(Instant, Instant)>>,
    connecting: AtomicBool,
    /// How long one attempt (connecting, or a script call) may take before
    /// the request falls back to its own process.
    timeout: Duration,
}

impl SharedLimits {
    /// Limits in the Redis at `url` (`redis://…` or `rediss://…`); nothing
    /// is connected yet. Keys start with `prefix`; each attempt may take
    /// `timeout`.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
            conn: Mutex::new(None),
            down: Mutex::new(None),
            connecting: AtomicBool::new(false),
            timeout,
        })
    }

    /// Counts one request of `key` in Redis; `None` when Redis cannot
    /// answer now (the caller counts it in-process).
    pub async fn check(&self, key: &str, quota: Quota) -> Option<Decision> {
        let mut conn = self.connection().await?;
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(quota.interval().as_micros() as u64)
            .arg(quota.burst);
        let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) if v.len() == 4 => Some(Decision {
                allowed: v[0] == 1,
                limit: quota.burst,
                remaining: u32::try_from(v[1].max(0)).unwrap_or(u32::MAX),
                reset: micros(v[2]),
                retry_after: micros(v[3]),
            }),
            Ok(Ok(v)) => {
                self.failed(&format!("unexpected answer {v:?}"));
                None
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer in time");
                None
            }
        }
    }

    /// Whether limits are shared right now.
    pub fn is_up(&self) -> bool {
        self.down.lock().expect("down").is_none()
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(c) = self.conn.lock().expect("conn").as_ref() {
            return Some(c.clone());
        }
        if let Some((_, next)) = *self.down.lock().expect("down")
            && Instant::now() < next
        {
            return None;
        }
        // One request reconnects; the others go on in-process meanwhile.
        if self.connecting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let result = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        self.connecting.store(false, Ordering::Release);
        match result {
            Ok(c) => {
                *self.conn.lock().expect("conn") = Some(c.clone());
                if let Some((since, _)) = self.down.lock().expect("down").take() {
                    tracing::info!(
                        down_ms = since.elapsed().as_millis() as u64,
                        "Redis is back: rate limits are shared again"
                    );
                }
                Some(c)
            }
            Err(e) => {
                self.failed(&e.to_string());
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        *self.conn.lock().expect("conn") = None;
        let now = Instant::now();
        let mut down = self.down.lock().expect("down");
        if down.is_none() {
            tracing::warn!(
                error,
                "Redis cannot answer: rate limits are kept in each process until it returns"
            );
        }
        let since = down.map_or(now, |(since, _)| since);
        *down = Some((since, now + RETRY_EVERY));
    }
}

fn micros(v: i64) -> Duration {
    Duration::from_micros(u64::try_from(v.max(0)).unwrap_or(0))
}

#[async_trait]
impl HealthCheck for SharedLimits {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Not critical: without Redis the limits hold per process.
    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let ping = async {
            let mut conn = self.connection().await?;
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            match pong {
                Ok(_) => Some(()),
                Err(e) => {
                    self.failed(&e.to_string());
                    None
                }
            }
        };
        let up = tokio::time::timeout(self.timeout, ping)
            .await
            .ok()
            .flatten()
            .is_some();
        let mut details = serde_json::Map::new();
        details.insert(
            "limits".into(),
            json!(if up { "shared" } else { "in-process" }),
        );
        CheckReport {
            status: if up {
                HealthStatus::Healthy
            } else {
                HealthStatus::Degraded
            },
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details,
        }
    }
}
