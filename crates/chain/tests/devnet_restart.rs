//! The devnet's SQLite file carries the chain across restarts: a clean close
//! and reopen continues the same chain, a process killed while mining
//! resumes at the last whole block, and every accepted transaction (queued
//! future nonces too) survives a restart or a kill and is mined afterwards.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rwa_chain::ChainControl;
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::signer::LocalSigner;
use rwa_domain::chain::{Address, B256, BlockTag, Bytes, ChainPort, U256};
use rwa_domain::tx::{Signer, UnsignedTx};
use rwa_testkit::anvil::DEV_KEY_0;

const CRASH_DB_ENV: &str = "RWA_DEVNET_CRASH_DB";
const POOL_DB_ENV: &str = "RWA_DEVNET_POOL_DB";
const RECEIVER: Address = Address::repeat_byte(0x42);

async fn open(path: &Path) -> Arc<Devnet> {
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    Devnet::open(DevnetConfig {
        db_path: Some(path.to_path_buf()),
        block_interval: None,
        automine: false,
        genesis_accounts: vec![(key.address(), U256::from(10u64).pow(U256::from(21u64)))],
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet opens")
}

async fn transfer(chain: &Devnet, key: &LocalSigner, nonce: u64, to: Address, value: u64) -> B256 {
    transfer_with_tip(chain, key, nonce, to, value, 1_000_000_000).await
}

async fn transfer_with_tip(
    chain: &Devnet,
    key: &LocalSigner,
    nonce: u64,
    to: Address,
    value: u64,
    tip: u128,
) -> B256 {
    let tx = UnsignedTx {
        chain_id: 31337,
        nonce,
        max_fee_per_gas: 10_000_000_000 + tip,
        max_priority_fee_per_gas: tip,
        gas_limit: 21_000,
        to: Some(to),
        value: U256::from(value),
        input: Bytes::new(),
    };
    let signed = key.sign(&tx).await.unwrap();
    chain.send_raw_transaction(signed.raw).await.unwrap()
}

/// Runs this test binary's ignored test `name` as a child process with `env`
/// naming its database; its stdout is piped.
fn spawn_child(name: &str, env: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(env, path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts")
}

/// Walks parent hashes from the head to genesis.
async fn assert_chained(chain: &Devnet) {
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    let mut expected_parent = None;
    for n in (0..=head).rev() {
        let header = chain.header(BlockTag::Number(n)).await.unwrap().unwrap();
        if let Some(hash) = expected_parent {
            assert_eq!(header.hash, hash, "block {n} is its child's parent");
        }
        expected_parent = Some(header.parent_hash);
    }
    assert_eq!(expected_parent, Some(B256::ZERO));
}

#[tokio::test]
async fn a_reopened_devnet_continues_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.db");
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(&path).await;
    for nonce in 0..3 {
        transfer(&chain, &key, nonce, RECEIVER, 1_000).await;
        chain.mine(1).await.unwrap();
    }
    let head = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    let sender_balance = chain.balance(key.address()).await.unwrap();
    chain.shutdown().await;
    drop(chain);

    let chain = open(&path).await;
    let reopened = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    assert_eq!(reopened, head);
    assert_eq!(chain.balance(key.address()).await.unwrap(), sender_balance);
    assert_eq!(chain.balance(RECEIVER).await.unwrap(), U256::from(3_000u64));
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        3
    );
    // The chain goes on from the same head.
    let hash = transfer(&chain, &key, 3, RECEIVER, 1_000).await;
    chain.mine(1).await.unwrap();
    let next = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    assert_eq!(next.number, head.number + 1);
    assert_eq!(next.parent_hash, head.hash);
    assert_eq!(
        chain.receipt(hash).await.unwrap().unwrap().block_number,
        next.number
    );
    assert_chained(&chain).await;

    // A rollback survives a restart too.
    chain.rollback(2).await.unwrap();
    let rolled = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    chain.shutdown().await;
    drop(chain);
    let chain = open(&path).await;
    assert_eq!(
        chain.header(BlockTag::Latest).await.unwrap().unwrap(),
        rolled
    );
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        2
    );
    assert!(chain.receipt(hash).await.unwrap().is_none());
    chain.shutdown().await;
}

/// The child of [`a_devnet_killed_while_mining_resumes_at_a_whole_block`]:
/// mines blocks of 200 transfers until it is killed.
#[tokio::test]
#[ignore = "run as a child process by a_devnet_killed_while_mining_resumes_at_a_whole_block"]
async fn crash_child_mines_until_killed() {
    let path = std::env::var(CRASH_DB_ENV).expect("the parent test names the database");
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(Path::new(&path)).await;
    let mut nonce = chain.nonce(key.address(), BlockTag::Latest).await.unwrap();
    loop {
        for _ in 0..200 {
            transfer(&chain, &key, nonce, RECEIVER, 1).await;
            println!("accepted {nonce}");
            nonce += 1;
        }
        chain.mine(1).await.unwrap();
        let head = chain.block_number(BlockTag::Latest).await.unwrap();
        println!("mined {head}");
    }
}

#[tokio::test]
async fn a_devnet_killed_while_mining_resumes_at_a_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.db");
    let mut child = spawn_child("crash_child_mines_until_killed", CRASH_DB_ENV, &path);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut mined = 0;
    let mut accepted: Option<u64> = None;
    let mut note = |line: &str, mined: &mut u32| {
        if line.starts_with("mined ") {
            *mined += 1;
        } else if let Some(n) = line.strip_prefix("accepted ") {
            accepted = Some(n.parse().unwrap());
        }
    };
    for line in lines.by_ref() {
        note(&line.unwrap(), &mut mined);
        if mined == 4 {
            break;
        }
    }
    assert_eq!(mined, 4, "the child mined blocks before it was killed");
    // The child is pooling or mining its next block now.
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What it reported before it died.
    for line in lines {
        note(&line.unwrap(), &mut mined);
    }
    let last_accepted = accepted.expect("the child accepted transactions");

    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(&path).await;
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    assert!(
        head >= 4,
        "every block the child reported is kept (head {head})"
    );
    assert_chained(&chain).await;
    // State and blocks agree: each transfer in a kept block moved one wei and
    // bumped the nonce once; nothing of a half-written block remains.
    let mut included = 0u64;
    for n in 1..=head {
        let block = chain.header(BlockTag::Number(n)).await.unwrap().unwrap();
        assert_eq!(
            block.gas_used,
            200 * 21_000,
            "block {n} holds 200 transfers"
        );
        included += 200;
    }
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        included
    );
    assert_eq!(chain.balance(RECEIVER).await.unwrap(), U256::from(included));
    // Every transaction the child saw accepted and not mined is still pending
    // (one accepted in the instant before the kill may be there as well).
    let pending = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    assert!(
        pending > last_accepted,
        "pending nonce {pending}, the child had nonce {last_accepted} accepted"
    );
    // And the chain goes on: the pending ones are mined, then a new one.
    transfer(&chain, &key, pending, RECEIVER, 1).await;
    while chain.nonce(key.address(), BlockTag::Latest).await.unwrap() <= pending {
        let before = chain.block_number(BlockTag::Latest).await.unwrap();
        chain.mine(1).await.unwrap();
        let block = chain
            .header(BlockTag::Number(before + 1))
            .await
            .unwrap()
            .unwrap();
        assert!(
            block.gas_used > 0,
            "block {} mined pending transfers",
            before + 1
        );
    }
    assert_eq!(
        chain.balance(RECEIVER).await.unwrap(),
        U256::from(pending + 1),
        "each of the {} transfers moved its wei once",
        pending + 1
    );
    chain.shutdown().await;
}

/// Checks that every hash has a receipt, in a block of the chain.
async fn assert_mined(chain: &Devnet, hashes: &[B256]) {
    for hash in hashes {
        let receipt = chain.receipt(*hash).await.unwrap();
        let receipt = receipt.unwrap_or_else(|| panic!("{hash} is mined"));
        assert!(receipt.success);
        let block = chain
            .header(BlockTag::Number(receipt.block_number))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(block.hash, receipt.block_hash);
    }
}

#[tokio::test]
async fn pending_and_queued_transactions_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.db");
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(&path).await;
    let first = transfer(&chain, &key, 0, RECEIVER, 1).await;
    let replaced = transfer(&chain, &key, 1, RECEIVER, 2).await;
    // The replacement (fee and tip bumped past 10%) is the one that must come back.
    let second = transfer_with_tip(&chain, &key, 1, RECEIVER, 20, 3_000_000_000).await;
    // Nonce 3 waits for nonce 2.
    let queued = transfer(&chain, &key, 3, RECEIVER, 300).await;
    chain.shutdown().await;
    drop(chain);

    let chain = open(&path).await;
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 0);
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Pending).await.unwrap(),
        2,
        "nonces 0 and 1 are pending again, 3 is queued behind the gap"
    );
    chain.mine(1).await.unwrap();
    assert_mined(&chain, &[first, second]).await;
    assert!(chain.receipt(replaced).await.unwrap().is_none());
    assert!(chain.receipt(queued).await.unwrap().is_none());
    assert_eq!(chain.balance(RECEIVER).await.unwrap(), U256::from(21u64));

    // Still queued after a second restart, and mined once the gap fills.
    chain.shutdown().await;
    drop(chain);
    let chain = open(&path).await;
    let gap = transfer(&chain, &key, 2, RECEIVER, 4_000).await;
    chain.mine(1).await.unwrap();
    assert_mined(&chain, &[gap, queued]).await;
    assert_eq!(chain.balance(RECEIVER).await.unwrap(), U256::from(4_321u64));

    // Mined transactions left the stored pool with their block: nothing
    // comes back to be mined twice.
    chain.shutdown().await;
    drop(chain);
    let chain = open(&path).await;
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Pending).await.unwrap(),
        4
    );
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    chain.mine(1).await.unwrap();
    let empty = chain
        .header(BlockTag::Number(head + 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(empty.gas_used, 0);
    chain.shutdown().await;
}

/// The child of [`transactions_accepted_before_a_kill_are_mined_after_it`]:
/// has transactions accepted, says which, and waits to be killed.
#[tokio::test]
#[ignore = "run as a child process by transactions_accepted_before_a_kill_are_mined_after_it"]
async fn pool_child_accepts_then_waits() {
    let path = std::env::var(POOL_DB_ENV).expect("the parent test names the database");
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(Path::new(&path)).await;
    transfer(&chain, &key, 0, RECEIVER, 1).await;
    chain.mine(1).await.unwrap();
    for nonce in [1, 2, 3, 5, 6] {
        let hash = transfer(&chain, &key, nonce, RECEIVER, 10u64.pow(nonce as u32)).await;
        println!("accepted {nonce} {hash}");
    }
    println!("ready");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn transactions_accepted_before_a_kill_are_mined_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.db");
    let mut child = spawn_child("pool_child_accepts_then_waits", POOL_DB_ENV, &path);
    let mut accepted: Vec<(u64, B256)> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        if let Some(rest) = line.strip_prefix("accepted ") {
            let (nonce, hash) = rest.split_once(' ').unwrap();
            accepted.push((nonce.parse().unwrap(), hash.parse().unwrap()));
        }
    }
    assert_eq!(
        accepted.len(),
        5,
        "the child had five transactions accepted"
    );
    child.kill().unwrap(); // SIGKILL: no shutdown, nothing flushed on the way out
    child.wait().unwrap();

    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let chain = open(&path).await;
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 1);
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Pending).await.unwrap(),
        4,
        "nonces 1 to 3 are pending, 5 and 6 queued behind the gap at 4"
    );
    chain.mine(1).await.unwrap();
    let runnable: Vec<B256> = accepted
        .iter()
        .filter(|(n, _)| *n < 4)
        .map(|(_, h)| *h)
        .collect();
    assert_mined(&chain, &runnable).await;
    let gap = transfer(&chain, &key, 4, RECEIVER, 10_000).await;
    chain.mine(1).await.unwrap();
    let mut all: Vec<B256> = accepted.iter().map(|(_, h)| *h).collect();
    all.push(gap);
    assert_mined(&chain, &all).await;
    assert_eq!(
        chain.balance(RECEIVER).await.unwrap(),
        U256::from(1_111_111u64)
    );
    chain.shutdown().await;
}
