//! `checks.chain` of `/health/detailed`: chain id, head, finalized block, call
//! latency and, for a JSON-RPC node, the circuit breaker's state.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rwa_domain::chain::{BlockTag, ChainPort};
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::json;

use crate::rpc::{BreakerState, RpcChain};

/// The chain as a (non-critical) health dependency: reads keep working while
/// the node is away; writes wait in the queue.
#[derive(Debug)]
pub struct ChainHealth {
    chain: Arc<dyn ChainPort>,
    rpc: Option<Arc<RpcChain>>,
}

impl ChainHealth {
    /// Health of a JSON-RPC node, breaker included.
    pub fn rpc(chain: Arc<RpcChain>) -> Self {
        Self {
            chain: chain.clone(),
            rpc: Some(chain),
        }
    }

    /// Health of any other chain.
    pub fn new(chain: Arc<dyn ChainPort>) -> Self {
        Self { chain, rpc: None }
    }
}

#[async_trait]
impl HealthCheck for ChainHealth {
    fn name(&self) -> &'static str {
        "chain"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let probe = async {
            let chain_id = self.chain.chain_id().await?;
            let head = self.chain.block_number(BlockTag::Latest).await?;
            let finalized = self.chain.block_number(BlockTag::Finalized).await?;
            Ok::<_, rwa_domain::chain::ChainError>((chain_id, head, finalized))
        }
        .await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut details = serde_json::Map::new();
        let breaker = self.rpc.as_ref().map(|r| r.breaker_state());
        if let Some(state) = breaker {
            details.insert("breaker".into(), json!(state.as_str()));
        }
        let status = match probe {
            Ok((chain_id, head, finalized)) => {
                details.insert("chain_id".into(), json!(chain_id));
                details.insert("head".into(), json!(head));
                details.insert("finalized".into(), json!(finalized));
                if breaker == Some(BreakerState::HalfOpen) {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Healthy
                }
            }
            Err(e) => {
                details.insert("error".into(), json!(e.to_string()));
                HealthStatus::Unhealthy
            }
        };
        CheckReport {
            status,
            latency_ms,
            details,
        }
    }
}
