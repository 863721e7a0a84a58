//! The chain port's conformance suite: each check is written once against
//! [`ChainControl`] and run unchanged on the embedded devnet and on a real
//! anvil node through the JSON-RPC adapter.

use std::sync::Arc;
use std::time::Duration;

use rwa_chain::ChainControl;
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::rpc::{BreakerState, RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_domain::chain::{
    Address, B256, BlockTag, Bytes, CallRequest, ChainError, ChainPort, LogFilter, U256,
};
use rwa_domain::tx::{Signer, UnsignedTx};
use rwa_testkit::anvil::{DEV_KEY_0, DEV_KEY_1};
use rwa_testkit::{Anvil, TcpProxy};

/// Runtime code that emits `LOG1(topic 7)` with 32 zero bytes of data.
const LOGGER_RUNTIME: &str = "600760206000a100";
/// Init code returning [`LOGGER_RUNTIME`].
const LOGGER_INIT: &str = "6008600c60003960086000f3";

/// A devnet with anvil's first accounts funded, as anvil funds them.
async fn devnet() -> Arc<Devnet> {
    let ether = U256::from(10u64).pow(U256::from(18u64));
    let genesis_accounts = [DEV_KEY_0, DEV_KEY_1]
        .iter()
        .map(|k| {
            (
                LocalSigner::from_hex(k).unwrap().address(),
                ether * U256::from(10_000u64),
            )
        })
        .collect();
    Devnet::open(DevnetConfig {
        genesis_accounts,
        block_interval: None,
        automine: true,
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet")
}

fn rpc(anvil: &Anvil) -> Arc<RpcChain> {
    Arc::new(RpcChain::new(RpcConfig::new(anvil.url())).expect("client"))
}

async fn sign(
    chain: &dyn ChainControl,
    key: &LocalSigner,
    nonce: u64,
    to: Option<Address>,
    value: u64,
    input: Bytes,
    max_fee: Option<u128>,
) -> (B256, Bytes) {
    let fees = chain.suggested_fees(1_000_000).await.unwrap();
    let max_fee = max_fee.unwrap_or(fees.max_fee_per_gas);
    let tx = UnsignedTx {
        chain_id: chain.chain_id().await.unwrap(),
        nonce,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(max_fee),
        gas_limit: 200_000,
        to,
        value: U256::from(value),
        input,
    };
    let signed = key.sign(&tx).await.unwrap();
    (signed.hash, signed.raw)
}

async fn wait_receipt(chain: &dyn ChainControl, hash: B256) -> rwa_domain::chain::Receipt {
    for _ in 0..200 {
        if let Some(r) = chain.receipt(hash).await.unwrap() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no receipt for {hash}");
}

async fn port_methods_agree_with_each_other(chain: &dyn ChainControl) {
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let to = Address::repeat_byte(0x77);
    assert_eq!(chain.chain_id().await.unwrap(), 31337);
    let before = chain.balance(to).await.unwrap();
    let nonce = chain.nonce(key.address(), BlockTag::Latest).await.unwrap();
    assert_eq!(
        chain
            .estimate_gas(&CallRequest {
                from: Some(key.address()),
                to: Some(to),
                value: U256::from(5u64),
                ..Default::default()
            })
            .await
            .unwrap(),
        21_000,
        "a plain transfer costs the intrinsic gas"
    );
    let (hash, raw) = sign(chain, &key, nonce, Some(to), 5, Bytes::new(), None).await;
    assert_eq!(chain.send_raw_transaction(raw).await.unwrap(), hash);
    let receipt = wait_receipt(chain, hash).await;
    assert!(receipt.success);
    assert_eq!(receipt.gas_used, 21_000);
    assert_eq!(receipt.from, key.address());
    assert_eq!(receipt.to, Some(to));
    assert_eq!(chain.balance(to).await.unwrap(), before + U256::from(5u64));
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        nonce + 1
    );

    let by_number = chain
        .header(BlockTag::Number(receipt.block_number))
        .await
        .unwrap()
        .unwrap();
    let by_hash = chain
        .header(BlockTag::Hash(receipt.block_hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_number, by_hash);
    assert_eq!(by_number.hash, receipt.block_hash);
    let parent = chain
        .header(BlockTag::Hash(by_number.parent_hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.number + 1, by_number.number, "parent hashes chain");
    assert!(by_number.base_fee_per_gas.is_some());
    assert!(
        chain
            .header(BlockTag::Number(by_number.number + 1_000))
            .await
            .unwrap()
            .is_none()
    );

    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    assert!(head >= receipt.block_number);
    assert!(chain.block_number(BlockTag::Safe).await.unwrap() <= head);
    assert!(
        chain.block_number(BlockTag::Finalized).await.unwrap()
            <= chain.block_number(BlockTag::Safe).await.unwrap()
    );

    let history = chain.fee_history(4, &[50.0]).await.unwrap();
    assert_eq!(
        history.base_fee_per_gas.len(),
        history.gas_used_ratio.len() + 1,
        "one more base fee: the next block's"
    );
    assert_eq!(history.reward.len(), history.gas_used_ratio.len());
    let fees = chain.suggested_fees(1).await.unwrap();
    assert!(fees.max_fee_per_gas >= fees.max_priority_fee_per_gas);

    let no_code = chain
        .call(
            &CallRequest {
                to: Some(to),
                ..Default::default()
            },
            BlockTag::Latest,
        )
        .await
        .unwrap();
    assert!(
        no_code.is_empty(),
        "calling an account without code returns nothing"
    );
}

async fn node_errors_are_classified(chain: &dyn ChainControl) {
    let key = LocalSigner::from_hex(DEV_KEY_1).unwrap();
    let to = Some(Address::repeat_byte(0x78));
    chain.set_automine(false).await.unwrap();
    let nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();

    let (_, raw) = sign(chain, &key, nonce, to, 1, Bytes::new(), None).await;
    chain.send_raw_transaction(raw.clone()).await.unwrap();
    assert_eq!(
        chain.send_raw_transaction(raw).await.unwrap_err(),
        ChainError::AlreadyKnown
    );
    let (_, same_fee) = sign(chain, &key, nonce, to, 2, Bytes::new(), None).await;
    assert_eq!(
        chain.send_raw_transaction(same_fee).await.unwrap_err(),
        ChainError::ReplacementUnderpriced
    );

    let base = chain
        .header(BlockTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .base_fee_per_gas
        .unwrap();
    let (_, too_cheap) = sign(chain, &key, nonce + 1, to, 1, Bytes::new(), Some(base / 2)).await;
    let e = chain.send_raw_transaction(too_cheap).await.unwrap_err();
    assert!(matches!(e, ChainError::FeeCapTooLow(_)), "{e:?}");

    let pauper = LocalSigner::random();
    let (_, broke) = sign(chain, &pauper, 0, to, 1, Bytes::new(), None).await;
    let e = chain.send_raw_transaction(broke).await.unwrap_err();
    assert!(matches!(e, ChainError::InsufficientFunds(_)), "{e:?}");

    chain.mine(1).await.unwrap();
    let (_, stale) = sign(chain, &key, nonce, to, 3, Bytes::new(), None).await;
    let e = chain.send_raw_transaction(stale).await.unwrap_err();
    assert!(matches!(e, ChainError::NonceTooLow(_)), "{e:?}");
    chain.set_automine(true).await.unwrap();
}

async fn future_nonces_wait_for_the_gap(chain: &dyn ChainControl) {
    let key = LocalSigner::from_hex(DEV_KEY_1).unwrap();
    let to = Some(Address::repeat_byte(0x79));
    chain.set_automine(false).await.unwrap();
    let nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    let (later, raw_later) = sign(chain, &key, nonce + 1, to, 1, Bytes::new(), None).await;
    chain.send_raw_transaction(raw_later).await.unwrap();
    chain.mine(1).await.unwrap();
    assert!(
        chain.receipt(later).await.unwrap().is_none(),
        "a future nonce waits for the gap"
    );
    let (first, raw_first) = sign(chain, &key, nonce, to, 1, Bytes::new(), None).await;
    chain.send_raw_transaction(raw_first).await.unwrap();
    chain.mine(1).await.unwrap();
    let a = wait_receipt(chain, first).await;
    let b = wait_receipt(chain, later).await;
    assert_eq!(
        a.block_number, b.block_number,
        "both mined once the gap filled"
    );
    assert!(a.transaction_index < b.transaction_index);
    chain.set_automine(true).await.unwrap();
}

async fn logs_are_indexed_per_block_and_vanish_with_a_reorg(chain: &dyn ChainControl) {
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    let init: Bytes = format!("0x{LOGGER_INIT}{LOGGER_RUNTIME}").parse().unwrap();
    let (deploy, raw) = sign(chain, &key, nonce, None, 0, init, None).await;
    chain.send_raw_transaction(raw).await.unwrap();
    let logger = wait_receipt(chain, deploy)
        .await
        .contract_address
        .expect("created");

    chain.set_automine(false).await.unwrap();
    let mut hashes = Vec::new();
    for i in 0..3 {
        let (hash, raw) = sign(
            chain,
            &key,
            nonce + 1 + i,
            Some(logger),
            0,
            Bytes::new(),
            None,
        )
        .await;
        chain.send_raw_transaction(raw).await.unwrap();
        hashes.push(hash);
    }
    chain.mine(1).await.unwrap();
    chain.set_automine(true).await.unwrap();
    let receipt = wait_receipt(chain, hashes[2]).await;
    let block = receipt.block_number;
    let logs = chain
        .logs(
            &LogFilter::blocks(block, block)
                .address([logger])
                .topic(0, [B256::with_last_byte(7)]),
        )
        .await
        .unwrap();
    assert_eq!(
        logs.iter().map(|l| l.log_index).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "log indexes are block-wide"
    );
    assert_eq!(
        logs.iter().map(|l| l.transaction_index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        logs.iter().map(|l| l.transaction_hash).collect::<Vec<_>>(),
        hashes
    );
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(receipt.logs[0].log_index, 2);
    assert!(
        chain
            .logs(&LogFilter::blocks(block, block).address([Address::repeat_byte(1)]))
            .await
            .unwrap()
            .is_empty()
    );

    let old = chain
        .header(BlockTag::Number(block))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        chain
            .logs(&LogFilter::block_hash(old.hash))
            .await
            .unwrap()
            .len(),
        3
    );
    chain.mine(1).await.unwrap();
    chain.reorg(2, Vec::new()).await.unwrap();
    let new = chain
        .header(BlockTag::Number(block))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new.hash, old.hash, "the replaced height has a new hash");
    assert!(
        chain
            .logs(&LogFilter::block_hash(old.hash))
            .await
            .unwrap()
            .is_empty(),
        "logs of a reorged block are gone"
    );
    let head = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    let mut cursor = head.clone();
    while cursor.number > block.saturating_sub(2) {
        let parent = chain
            .header(BlockTag::Hash(cursor.parent_hash))
            .await
            .unwrap()
            .expect("parent exists");
        assert_eq!(parent.number + 1, cursor.number);
        assert_eq!(
            chain
                .header(BlockTag::Number(parent.number))
                .await
                .unwrap()
                .unwrap()
                .hash,
            parent.hash
        );
        cursor = parent;
    }
}

async fn snapshots_rollbacks_and_time_travel(chain: &dyn ChainControl) {
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    let id = chain.snapshot().await.unwrap();
    chain.mine(3).await.unwrap();
    assert_eq!(
        chain.block_number(BlockTag::Latest).await.unwrap(),
        head + 3
    );
    assert!(chain.revert(id).await.unwrap());
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), head);
    chain.mine(2).await.unwrap();
    chain.rollback(1).await.unwrap();
    assert_eq!(
        chain.block_number(BlockTag::Latest).await.unwrap(),
        head + 1
    );
    let now = chain
        .header(BlockTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    chain.set_next_block_timestamp(now + 86_400).await.unwrap();
    chain.mine(1).await.unwrap();
    assert_eq!(
        chain
            .header(BlockTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .timestamp,
        now + 86_400
    );
}

#[tokio::test]
async fn anvil_port_methods_agree_with_each_other() {
    let anvil = Anvil::start(&[]);
    port_methods_agree_with_each_other(&*rpc(&anvil)).await;
}

#[tokio::test]
async fn anvil_node_errors_are_classified() {
    let anvil = Anvil::start(&[]);
    node_errors_are_classified(&*rpc(&anvil)).await;
}

#[tokio::test]
async fn anvil_future_nonces_wait_for_the_gap() {
    let anvil = Anvil::start(&[]);
    future_nonces_wait_for_the_gap(&*rpc(&anvil)).await;
}

#[tokio::test]
async fn anvil_logs_are_indexed_per_block_and_vanish_with_a_reorg() {
    let anvil = Anvil::start(&[]);
    logs_are_indexed_per_block_and_vanish_with_a_reorg(&*rpc(&anvil)).await;
}

#[tokio::test]
async fn anvil_snapshots_rollbacks_and_time_travel() {
    let anvil = Anvil::start(&[]);
    snapshots_rollbacks_and_time_travel(&*rpc(&anvil)).await;
}

#[tokio::test]
async fn devnet_port_methods_agree_with_each_other() {
    port_methods_agree_with_each_other(&*devnet().await).await;
}

#[tokio::test]
async fn devnet_node_errors_are_classified() {
    node_errors_are_classified(&*devnet().await).await;
}

#[tokio::test]
async fn devnet_future_nonces_wait_for_the_gap() {
    future_nonces_wait_for_the_gap(&*devnet().await).await;
}

#[tokio::test]
async fn devnet_logs_are_indexed_per_block_and_vanish_with_a_reorg() {
    logs_are_indexed_per_block_and_vanish_with_a_reorg(&*devnet().await).await;
}

#[tokio::test]
async fn devnet_snapshots_rollbacks_and_time_travel() {
    snapshots_rollbacks_and_time_travel(&*devnet().await).await;
}

#[tokio::test]
async fn the_breaker_opens_on_a_dead_node_and_closes_when_it_returns() {
    let anvil = Anvil::start(&[]);
    let proxy = TcpProxy::start(anvil.addr()).await;
    let mut config = RpcConfig::new(format!("http://{}", proxy.addr()));
    config.max_retries = 0;
    config.breaker_threshold = 2;
    config.breaker_cool_down = Duration::from_millis(300);
    config.call_timeout = Duration::from_secs(2);
    let chain = RpcChain::new(config).unwrap();
    assert_eq!(chain.chain_id().await.unwrap(), 31337);

    proxy.cut();
    for _ in 0..2 {
        let e = chain.chain_id().await.unwrap_err();
        assert!(matches!(e, ChainError::Unavailable(_)), "{e:?}");
    }
    assert_eq!(chain.breaker_state(), BreakerState::Open);
    assert_eq!(
        chain.chain_id().await.unwrap_err(),
        ChainError::CircuitOpen,
        "refused without reaching the node"
    );

    proxy.restore().await;
    let mut closed = false;
    for _ in 0..100 {
        if chain.chain_id().await.is_ok() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed,
        "the breaker lets a probe through after its cool-down"
    );
    assert_eq!(chain.breaker_state(), BreakerState::Closed);
}

async fn ws(url: String) -> Arc<RpcChain> {
    Arc::new(
        RpcChain::connect(RpcConfig::new(url))
            .await
            .expect("WebSocket connected"),
    )
}

#[tokio::test]
async fn anvil_over_websocket_port_methods_agree_with_each_other() {
    let anvil = Anvil::start(&[]);
    let chain = ws(format!("ws://{}", anvil.addr())).await;
    port_methods_agree_with_each_other(&*chain).await;
}

#[tokio::test]
async fn anvil_over_websocket_node_errors_are_classified() {
    let anvil = Anvil::start(&[]);
    node_errors_are_classified(&*ws(format!("ws://{}", anvil.addr())).await).await;
}

#[tokio::test]
async fn anvil_over_websocket_logs_are_indexed_per_block_and_vanish_with_a_reorg() {
    let anvil = Anvil::start(&[]);
    let chain = ws(format!("ws://{}", anvil.addr())).await;
    logs_are_indexed_per_block_and_vanish_with_a_reorg(&*chain).await;
}

#[tokio::test]
async fn a_websocket_reconnects_after_the_connection_drops() {
    let anvil = Anvil::start(&[]);
    let proxy = TcpProxy::start(anvil.addr()).await;
    let mut config = RpcConfig::new(format!("ws://{}", proxy.addr()));
    config.max_retries = 0;
    config.call_timeout = Duration::from_secs(2);
    config.breaker_threshold = 1_000;
    let chain = RpcChain::connect(config).await.unwrap();
    assert_eq!(chain.chain_id().await.unwrap(), 31337);

    proxy.cut();
    let e = chain.block_number(BlockTag::Latest).await.unwrap_err();
    assert!(e.is_transient(), "a dropped socket is transient: {e:?}");

    proxy.restore().await;
    let mut back = false;
    for _ in 0..150 {
        if chain.block_number(BlockTag::Latest).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "the same client is usable again once the node is reachable"
    );
}

#[tokio::test]
async fn unsupported_schemes_and_unreachable_sockets_fail_clearly() {
    let e = RpcChain::new(RpcConfig::new("ws://127.0.0.1:9")).unwrap_err();
    assert!(matches!(e, ChainError::Unsupported(_)), "{e:?}");
    let e = RpcChain::connect(RpcConfig::new("ftp://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ftp"), "{e}");
    let e = RpcChain::connect(RpcConfig::new("ws://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::Unavailable(_)), "{e:?}");
}
