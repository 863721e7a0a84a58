//! The JSON-RPC adapter against a real node (anvil) behind a small JSON-RPC
//! proxy written here, which behaves like hosted providers do: it refuses
//! `eth_getLogs` over more than a few blocks, and it can answer 503 or 429 on
//! demand. It counts what reaches it, so the tests see the adapter's halving
//! and retry decisions, and a local metrics recorder sees what it reports.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_domain::chain::{
    Address, BlockTag, Bytes, CallRequest, ChainError, ChainPort, LogFilter, U256,
};
use rwa_domain::tx::{Signer, UnsignedTx};
use rwa_testkit::Anvil;
use rwa_testkit::anvil::DEV_KEY_0;
use serde_json::{Value, json};

/// Runtime code that emits `LOG1(topic 7)` with 32 zero bytes of data.
const LOGGER_RUNTIME: &str = "600760206000a100";
/// Init code returning [`LOGGER_RUNTIME`].
const LOGGER_INIT: &str = "6008600c60003960086000f3";
/// Runtime code that always reverts with empty data.
const REVERTER: &str = "60006000fd";
/// Init code returning [`REVERTER`].
const REVERTER_INIT: &str = "6005600c60003960056000f3";

#[derive(Default)]
struct Seen {
    /// Every method that reached the proxy, in order.
    methods: Vec<String>,
    /// `eth_getLogs` ranges, with whether they were refused.
    log_ranges: Vec<(u64, u64, bool)>,
    /// Statuses to answer, in order, before forwarding again.
    fail_next: VecDeque<StatusCode>,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    max_log_blocks: u64,
    seen: Arc<Mutex<Seen>>,
    http: reqwest::Client,
}

fn hex_number(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

async fn relay(State(p): State<Proxy>, Json(body): Json<Value>) -> Response {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    {
        let mut seen = p.seen.lock().unwrap();
        seen.methods.push(method.clone());
        if let Some(status) = seen.fail_next.pop_front() {
            return (status, "provider unavailable").into_response();
        }
        if method == "eth_getLogs" {
            let filter = &body["params"][0];
            let (from, to) = (
                hex_number(&filter["fromBlock"]),
                hex_number(&filter["toBlock"]),
            );
            let refused = to - from + 1 > p.max_log_blocks;
            seen.log_ranges.push((from, to, refused));
            if refused {
                return Json(json!({
                    "jsonrpc": "2.0",
                    "id": body["id"],
                    "error": {"code": -32005, "message": "query returned more than 10000 results"}
                }))
                .into_response();
            }
        }
    }
    let answer: Value = p
        .http
        .post(&p.upstream)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Json(answer).into_response()
}

async fn proxy(anvil: &Anvil, max_log_blocks: u64) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Proxy {
        upstream: anvil.url(),
        max_log_blocks,
        seen: seen.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(relay))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn config(addr: SocketAddr) -> RpcConfig {
    let mut c = RpcConfig::new(format!("http://{addr}"));
    c.retry_backoff = Duration::from_millis(10);
    c
}

/// Sends a transaction from the first dev key and waits for its receipt.
async fn send(chain: &RpcChain, to: Option<Address>, input: Bytes) -> rwa_domain::chain::Receipt {
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    let fees = chain.suggested_fees(1_000_000).await.unwrap();
    let signed = key
        .sign(&UnsignedTx {
            chain_id: 31337,
            nonce,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit: 200_000,
            to,
            value: U256::ZERO,
            input,
        })
        .await
        .unwrap();
    let hash = chain.send_raw_transaction(signed.raw).await.unwrap();
    for _ in 0..200 {
        if let Some(r) = chain.receipt(hash).await.unwrap() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no receipt for {hash}");
}

#[tokio::test]
async fn refused_log_ranges_are_halved_until_the_provider_answers_and_no_log_is_lost() {
    let anvil = Anvil::start(&[]);
    let (addr, seen) = proxy(&anvil, 8).await;
    let chain = RpcChain::new(config(addr)).unwrap();
    let init: Bytes = format!("0x{LOGGER_INIT}{LOGGER_RUNTIME}").parse().unwrap();
    let logger = send(&chain, None, init).await.contract_address.unwrap();
    // Anvil mines each transaction in its own block: 37 blocks with one log.
    let mut blocks = Vec::new();
    for _ in 0..37 {
        blocks.push(send(&chain, Some(logger), Bytes::new()).await.block_number);
    }
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    seen.lock().unwrap().log_ranges.clear();

    let logs = chain.logs(&LogFilter::blocks(0, head)).await.unwrap();
    let got: Vec<u64> = logs.iter().map(|l| l.block_number).collect();
    assert_eq!(got, blocks, "every log once, in block order");
    assert!(logs.iter().all(|l| l.address == logger));

    let ranges = seen.lock().unwrap().log_ranges.clone();
    assert_eq!(
        ranges[0],
        (0, head, true),
        "the whole range was asked first"
    );
    let answered: Vec<(u64, u64)> = ranges.iter().filter(|r| !r.2).map(|r| (r.0, r.1)).collect();
    assert!(answered.iter().all(|(f, t)| t - f < 8), "{answered:?}");
    // The answered ranges tile [0, head] exactly, in order.
    let mut next = 0;
    for (from, to) in &answered {
        assert_eq!(*from, next, "{answered:?}");
        next = to + 1;
    }
    assert_eq!(next, head + 1);
}

#[tokio::test]
async fn transient_answers_are_retried_and_deterministic_ones_never_are() {
    let anvil = Anvil::start(&[]);
    let (addr, seen) = proxy(&anvil, 1_000).await;
    let chain = RpcChain::new(config(addr)).unwrap();
    let count = |method: &str| {
        seen.lock()
            .unwrap()
            .methods
            .iter()
            .filter(|m| *m == method)
            .count()
    };

    seen.lock().unwrap().fail_next.extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ]);
    assert_eq!(chain.chain_id().await.unwrap(), 31337);
    assert_eq!(count("eth_chainId"), 3, "503, then 429, then the answer");

    let init: Bytes = format!("0x{REVERTER_INIT}{REVERTER}").parse().unwrap();
    let reverter = send(&chain, None, init).await.contract_address.unwrap();
    let before = count("eth_call");
    let e = chain
        .call(
            &CallRequest {
                from: None,
                to: Some(reverter),
                input: Bytes::new(),
                value: U256::ZERO,
                gas: None,
            },
            BlockTag::Latest,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::Reverted { .. }), "{e:?}");
    assert_eq!(
        count("eth_call") - before,
        1,
        "a revert is an answer: sent once"
    );

    let e = chain
        .send_raw_transaction(Bytes::from(vec![0x02, 0xc0]))
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    assert_eq!(
        count("eth_sendRawTransaction"),
        2,
        "the deploy above, then this one once"
    );

    // Out of retries: the last transient error is returned.
    seen.lock()
        .unwrap()
        .fail_next
        .extend([StatusCode::BAD_GATEWAY; 4]);
    let e = chain.block_number(BlockTag::Latest).await.unwrap_err();
    assert!(matches!(e, ChainError::Unavailable(_)), "{e:?}");
    assert_eq!(count("eth_blockNumber"), 4, "1 + 3 retries");
}

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// Counter value, or number of histogram samples, summed over matching series.
/// Histograms are drained by each snapshot, so read several figures from one.
fn value(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(n) => *n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => 0,
        })
        .sum()
}

fn snapshot(snapshotter: &Snapshotter) -> Snapshot {
    snapshotter.snapshot().into_vec()
}

#[tokio::test(flavor = "current_thread")]
async fn calls_outcomes_latency_and_breaker_transitions_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime polls everything on this thread, where the
    // recorder is installed, without touching the process-wide one.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let anvil = Anvil::start(&[]);
    let (addr, seen) = proxy(&anvil, 1_000).await;
    let mut c = config(addr);
    c.max_retries = 0;
    c.breaker_threshold = 2;
    c.breaker_cool_down = Duration::from_millis(50);
    let chain = RpcChain::new(c).unwrap();

    for _ in 0..3 {
        chain.chain_id().await.unwrap();
    }
    let ok = [("method", "eth_chainId"), ("outcome", "ok")];
    let snap = snapshot(&snapshotter);
    assert_eq!(value(&snap, "rwa_chain_rpc_calls_total", &ok), 3);
    assert_eq!(
        value(
            &snap,
            "rwa_chain_rpc_duration_seconds",
            &[("method", "eth_chainId")]
        ),
        3,
        "one latency sample per answered call"
    );

    seen.lock()
        .unwrap()
        .fail_next
        .extend([StatusCode::SERVICE_UNAVAILABLE; 2]);
    for _ in 0..2 {
        chain.chain_id().await.unwrap_err();
    }
    let down = [("method", "eth_chainId"), ("outcome", "unavailable")];
    let snap = snapshot(&snapshotter);
    assert_eq!(value(&snap, "rwa_chain_rpc_calls_total", &down), 2);
    assert_eq!(
        value(
            &snap,
            "rwa_chain_breaker_transitions_total",
            &[("to", "open")]
        ),
        1
    );
    assert_eq!(chain.chain_id().await.unwrap_err(), ChainError::CircuitOpen);
    let refused = [("method", "eth_chainId"), ("outcome", "circuit_open")];
    assert_eq!(
        value(
            &snapshot(&snapshotter),
            "rwa_chain_rpc_calls_total",
            &refused
        ),
        1
    );

    tokio::time::sleep(Duration::from_millis(60)).await;
    chain.chain_id().await.unwrap();
    assert_eq!(
        value(
            &snapshot(&snapshotter),
            "rwa_chain_breaker_transitions_total",
            &[("to", "closed")]
        ),
        1,
        "a successful probe closes it"
    );
}
