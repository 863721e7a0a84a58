//! The JSON-RPC adapter: the [`ChainPort`] over any EVM node, over HTTP(S) or,
//! when the URL says `ws://` / `wss://`, a WebSocket that alloy's pub-sub
//! service keeps connected (it reconnects on its own after a drop; calls made
//! while it is down fail as transient and are retried like HTTP ones).
//!
//! Every call goes through one path ([`RpcChain::request`]) that applies the
//! per-call timeout, retries transient failures (unreachable node, timeout,
//! HTTP 429 and 5xx) with jittered exponential backoff, never retries a
//! deterministic answer (a revert, a nonce error), feeds the circuit breaker and
//! records metrics (`rwa_chain_rpc_calls_total{method,outcome}`,
//! `rwa_chain_rpc_duration_seconds{method}`). Node error messages are classified
//! into [`ChainError`] ([`errors`]).

pub mod breaker;
pub mod errors;
mod wire;

use std::time::{Duration, Instant};

use alloy::primitives::{U64, U256};
use alloy::rpc::client::RpcClient;
use async_trait::async_trait;
use rwa_domain::chain::{
    Address, B256, BlockHeader, BlockTag, Bytes, CallRequest, ChainError, ChainPort, ChainResult,
    FeeHistory, Log, LogFilter, LogRange, Receipt,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use breaker::{Breaker, BreakerState};

use crate::ChainControl;
use wire::{WireBlock, WireCall, WireFeeHistory, WireFilter, WireLog, WireReceipt};

/// How to reach and treat the node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// `http://…`, `https://…`, `ws://…` or `wss://…`.
    pub url: String,
    /// Deadline of one call.
    pub call_timeout: Duration,
    /// Retries of a transient failure (so `1 + max_retries` tries at most).
    pub max_retries: u32,
    /// First backoff; doubled per retry, with up to 50% jitter.
    pub retry_backoff: Duration,
    /// Consecutive transient failures that open the breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one probe.
    pub breaker_cool_down: Duration,
}

impl RpcConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            call_timeout: Duration::from_secs(10),
            max_retries: 3,
            retry_backoff: Duration::from_millis(200),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(10),
        }
    }
}

/// A chain behind a JSON-RPC node.
pub struct RpcChain {
    client: RpcClient,
    config: RpcConfig,
    breaker: Breaker,
}

impl std::fmt::Debug for RpcChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a provider key: show its host only.
        let host = self
            .config
            .url
            .parse::<alloy::transports::http::reqwest::Url>()
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        f.debug_struct("RpcChain")
            .field("host", &host)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

fn tag_param(tag: BlockTag) -> Value {
    match tag {
        BlockTag::Latest => json!("latest"),
        BlockTag::Safe => json!("safe"),
        BlockTag::Finalized => json!("finalized"),
        BlockTag::Pending => json!("pending"),
        BlockTag::Number(n) => json!(format!("{n:#x}")),
        BlockTag::Hash(h) => json!({ "blockHash": h }),
    }
}

fn call_param(request: &CallRequest) -> Value {
    serde_json::to_value(WireCall {
        from: request.from,
        to: request.to,
        input: request.input.clone(),
        value: request.value,
        gas: request.gas,
    })
    .expect("call objects serialize")
}

impl RpcChain {
    /// An HTTP(S) client for `config.url`. Nothing is sent until the first
    /// call. WebSocket URLs need a connection first: use [`RpcChain::connect`].
    pub fn new(config: RpcConfig) -> ChainResult<Self> {
        let url = parse_url(&config.url)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ChainError::Unsupported(format!(
                "RWA_CHAIN_RPC_URL: scheme {:?} needs RpcChain::connect (http:// and https:// do not)",
                url.scheme()
            )));
        }
        Ok(Self::with_client(RpcClient::new_http(url), config))
    }

    /// A client for any supported URL: HTTP(S) as [`RpcChain::new`], or a
    /// WebSocket connected now (so a wrong URL fails at start-up).
    pub async fn connect(config: RpcConfig) -> ChainResult<Self> {
        let url = parse_url(&config.url)?;
        match url.scheme() {
            "http" | "https" => Self::new(config),
            "ws" | "wss" => {
                let connect = alloy::transports::ws::WsConnect::new(config.url.clone());
                let client = tokio::time::timeout(
                    config.call_timeout,
                    alloy::rpc::client::ClientBuilder::default().ws(connect),
                )
                .await
                .map_err(|_| ChainError::Unavailable("WebSocket connection timed out".into()))?
                .map_err(|e| ChainError::Unavailable(format!("WebSocket connection: {e}")))?;
                Ok(Self::with_client(client, config))
            }
            other => Err(ChainError::Unsupported(format!(
                "RWA_CHAIN_RPC_URL: scheme {other:?} (use http://, https://, ws:// or wss://)"
            ))),
        }
    }

    fn with_client(client: RpcClient, config: RpcConfig) -> Self {
        let breaker = Breaker::new(config.breaker_threshold, config.breaker_cool_down);
        Self {
            client,
            config,
            breaker,
        }
    }

    /// The breaker's state, for health.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// One JSON-RPC call with timeout, retries, breaker and metrics.
    pub async fn request<R: DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static>(
        &self,
        method: &'static str,
        params: Value,
    ) -> ChainResult<R> {
        let mut backoff = self.config.retry_backoff;
        for attempt in 0..=self.config.max_retries {
            if !self.breaker.allow() {
                record(method, "circuit_open", None);
                return Err(ChainError::CircuitOpen);
            }
            let started = Instant::now();
            let outcome = tokio::time::timeout(
                self.config.call_timeout,
                self.client.request::<Value, R>(method, params.clone()),
            )
            .await;
            let elapsed = started.elapsed();
            let error = match outcome {
                Ok(Ok(value)) => {
                    self.breaker.success();
                    record(method, "ok", Some(elapsed));
                    return Ok(value);
                }
                Ok(Err(e)) => errors::classify(e),
                Err(_) => ChainError::Unavailable(format!(
                    "{method} timed out after {:?}",
                    self.config.call_timeout
                )),
            };
            if !error.is_transient() {
                // The node answered: it is up, whatever it said.
                self.breaker.success();
                record(method, "error", Some(elapsed));
                return Err(error);
            }
            self.breaker.failure();
            record(method, "unavailable", Some(elapsed));
            if attempt == self.config.max_retries {
                return Err(error);
            }
            tokio::time::sleep(jitter(backoff)).await;
            backoff = backoff.saturating_mul(2);
        }
        unreachable!("the loop returns on its last attempt")
    }

    async fn logs_in_range(&self, filter: &LogFilter, from: u64, to: u64) -> ChainResult<Vec<Log>> {
        // Ranges still to fetch, in order; a range the node refuses as too
        // large is split in halves and both halves fetched in its place.
        let mut pending = vec![(from, to)];
        let mut out = Vec::new();
        while let Some((lo, hi)) = pending.pop() {
            let wire = WireFilter {
                from_block: Some(format!("{lo:#x}")),
                to_block: Some(format!("{hi:#x}")),
                block_hash: None,
                address: filter.addresses.clone(),
                topics: filter.topics.clone(),
            };
            let params = json!([serde_json::to_value(wire).expect("filters serialize")]);
            match self.request::<Vec<WireLog>>("eth_getLogs", params).await {
                Ok(logs) => out.extend(logs.into_iter().map(Log::from)),
                Err(ChainError::RangeTooLarge(_)) if hi > lo => {
                    let mid = lo + (hi - lo) / 2;
                    pending.push((mid + 1, hi));
                    pending.push((lo, mid));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn parse_url(raw: &str) -> ChainResult<alloy::transports::http::reqwest::Url> {
    raw.parse::<alloy::transports::http::reqwest::Url>()
        .map_err(|e| ChainError::Other(format!("RWA_CHAIN_RPC_URL: {e}")))
}

fn record(method: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
    metrics::counter!("rwa_chain_rpc_calls_total", "method" => method, "outcome" => outcome)
        .increment(1);
    if let Some(elapsed) = elapsed {
        metrics::histogram!("rwa_chain_rpc_duration_seconds", "method" => method)
            .record(elapsed.as_secs_f64());
    }
}

fn jitter(base: Duration) -> Duration {
    // Up to +50%, from the clock's sub-second noise: enough to spread retries.
    let noise = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    );
    let extra = base.as_millis() as u64 * (noise % 500) / 1000;
    base + Duration::from_millis(extra)
}

#[async_trait]
impl ChainPort for RpcChain {
    async fn chain_id(&self) -> ChainResult<u64> {
        let id: U64 = self.request("eth_chainId", json!([])).await?;
        Ok(id.to())
    }

    async fn block_number(&self, tag: BlockTag) -> ChainResult<u64> {
        match tag {
            BlockTag::Latest => {
                let n: U64 = self.request("eth_blockNumber", json!([])).await?;
                Ok(n.to())
            }
            BlockTag::Number(n) => Ok(n),
            // A young chain has no safe or finalized block yet: genesis is both.
            other => Ok(self.header(other).await?.map_or(0, |h| h.number)),
        }
    }

    async fn header(&self, block: BlockTag) -> ChainResult<Option<BlockHeader>> {
        let found: Option<WireBlock> = match block {
            BlockTag::Hash(hash) => {
                self.request("eth_getBlockByHash", json!([hash, false]))
                    .await?
            }
            tag => {
                self.request("eth_getBlockByNumber", json!([tag_param(tag), false]))
                    .await?
            }
        };
        Ok(found.map(BlockHeader::from))
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> ChainResult<B256> {
        self.request("eth_sendRawTransaction", json!([raw])).await
    }

    async fn receipt(&self, tx_hash: B256) -> ChainResult<Option<Receipt>> {
        // A node may return a receipt-shaped object without a block while the
        // transaction is pending; only a mined receipt decodes.
        let value: Option<Value> = self
            .request("eth_getTransactionReceipt", json!([tx_hash]))
            .await?;
        match value {
            Some(v) if v.get("blockHash").is_some_and(|b| !b.is_null()) => {
                let wire: WireReceipt = serde_json::from_value(v)
                    .map_err(|e| ChainError::Other(format!("undecodable receipt: {e}")))?;
                Ok(Some(wire.into()))
            }
            _ => Ok(None),
        }
    }

    async fn logs(&self, filter: &LogFilter) -> ChainResult<Vec<Log>> {
        match filter.range {
            LogRange::Blocks { from, to } if from > to => Ok(Vec::new()),
            LogRange::Blocks { from, to } => self.logs_in_range(filter, from, to).await,
            LogRange::Hash(hash) => {
                let wire = WireFilter {
                    from_block: None,
                    to_block: None,
                    block_hash: Some(hash),
                    address: filter.addresses.clone(),
                    topics: filter.topics.clone(),
                };
                let params = json!([serde_json::to_value(wire).expect("filters serialize")]);
                match self.request::<Vec<WireLog>>("eth_getLogs", params).await {
                    Ok(logs) => Ok(logs.into_iter().map(Log::from).collect()),
                    // A block that is no longer known (reorged out) has no logs.
                    Err(ChainError::Other(m)) if is_unknown_block(&m) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn call(&self, request: &CallRequest, block: BlockTag) -> ChainResult<Bytes> {
        self.request("eth_call", json!([call_param(request), tag_param(block)]))
            .await
    }

    async fn estimate_gas(&self, request: &CallRequest) -> ChainResult<u64> {
        let gas: U64 = self
            .request("eth_estimateGas", json!([call_param(request)]))
            .await?;
        Ok(gas.to())
    }

    async fn fee_history(&self, blocks: u64, percentiles: &[f64]) -> ChainResult<FeeHistory> {
        let history: WireFeeHistory = self
            .request(
                "eth_feeHistory",
                json!([format!("{blocks:#x}"), "latest", percentiles]),
            )
            .await?;
        Ok(history.into())
    }

    async fn nonce(&self, address: Address, block: BlockTag) -> ChainResult<u64> {
        let n: U64 = self
            .request(
                "eth_getTransactionCount",
                json!([address, tag_param(block)]),
            )
            .await?;
        Ok(n.to())
    }

    async fn balance(&self, address: Address) -> ChainResult<U256> {
        self.request("eth_getBalance", json!([address, "latest"]))
            .await
    }
}

fn is_unknown_block(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unknown block") || m.contains("block not found") || m.contains("not found")
}

/// anvil's development methods.
#[async_trait]
impl ChainControl for RpcChain {
    async fn snapshot(&self) -> ChainResult<u64> {
        let id: U256 = self.request("evm_snapshot", json!([])).await?;
        u64::try_from(id).map_err(|_| ChainError::Other("snapshot id out of range".into()))
    }

    async fn revert(&self, snapshot: u64) -> ChainResult<bool> {
        self.request("evm_revert", json!([format!("{snapshot:#x}")]))
            .await
    }

    async fn reorg(&self, depth: u64, replacement: Vec<Bytes>) -> ChainResult<()> {
        let pairs: Vec<Value> = replacement.into_iter().map(|raw| json!([raw, 0])).collect();
        self.request::<Value>("anvil_reorg", json!([depth, pairs]))
            .await
            .map(|_| ())
    }

    async fn rollback(&self, depth: u64) -> ChainResult<()> {
        self.request::<Value>("anvil_rollback", json!([depth]))
            .await
            .map(|_| ())
    }

    async fn set_next_block_timestamp(&self, timestamp: u64) -> ChainResult<()> {
        self.request::<Value>("evm_setNextBlockTimestamp", json!([timestamp]))
            .await
            .map(|_| ())
    }

    async fn mine(&self, blocks: u64) -> ChainResult<()> {
        self.request::<Value>("anvil_mine", json!([format!("{blocks:#x}")]))
            .await
            .map(|_| ())
    }

    async fn set_automine(&self, enabled: bool) -> ChainResult<()> {
        self.request::<Value>("evm_setAutomine", json!([enabled]))
            .await
            .map(|_| ())
    }
}
