//! The devnet's SQLite file carries the chain across restarts: a clean close
//! and reopen continues the same chain, and a process killed while mining
//! resumes at the last whole block.

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
    let tx = UnsignedTx {
        chain_id: 31337,
        nonce,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        gas_limit: 21_000,
        to: Some(to),
        value: U256::from(value),
        input: Bytes::new(),
    };
    let signed = key.sign(&tx).await.unwrap();
    chain.send_raw_transaction(signed.raw).await.unwrap()
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
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_mines_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DB_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().unwrap();
    let mut mined = 0;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("mined ") {
            mined += 1;
            if mined == 4 {
                break;
            }
        }
    }
    assert_eq!(mined, 4, "the child mined blocks before it was killed");
    // The child is executing or committing its next block now.
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

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
    // And the chain goes on.
    transfer(&chain, &key, included, RECEIVER, 1).await;
    chain.mine(1).await.unwrap();
    assert_eq!(
        chain.block_number(BlockTag::Latest).await.unwrap(),
        head + 1
    );
    assert_eq!(
        chain.balance(RECEIVER).await.unwrap(),
        U256::from(included + 1)
    );
    chain.shutdown().await;
}
