//! `rwa indexer verify`: the index of a token or watched contract compared
//! with the chain. With `RWA_CHAIN_RPC_URL` the command reads the chain and
//! the database itself; the embedded devnet lives inside `rwa serve`, so
//! there the command asks the running server
//! (`POST /v1/tokens/{id}/verify`, with the key in `RWA_API_KEY`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_domain::TokenId;
use rwa_domain::chain::{Address, ChainPort};
use rwa_domain::onchain::{
    IndexStore, IndexVerifier, SourceRole, Standard, VerifyReport, VerifyTarget,
};
use rwa_domain::token::TokenRepository;
use rwa_indexer::verify::Verifier;
use serde_json::json;

use crate::app::open_store;
use crate::cli::VerifyArgs;
use crate::commands::EXIT_USAGE;
use crate::config::Config;

/// How long to wait for the index to reach the confirmation depth.
const WAIT: Duration = Duration::from_secs(60);

/// Runs the command; exit 0 when the index agrees, 1 on any difference.
pub async fn run(config: Config, args: &VerifyArgs) -> anyhow::Result<i32> {
    let report = match &config.chain.rpc_url {
        Some(url) => {
            let chain: Arc<dyn ChainPort> = Arc::new(
                RpcChain::connect(RpcConfig::new(url.expose()))
                    .await
                    .map_err(|e| anyhow::anyhow!("RWA_CHAIN_RPC_URL: {e}"))?,
            );
            let chain_id = chain.chain_id().await.context("chain id")?;
            let store = Arc::new(open_store(&config).await?);
            let target = match target(&*store, chain_id, args).await? {
                Ok(t) => t,
                Err(message) => {
                    eprintln!("error: {message}");
                    return Ok(EXIT_USAGE);
                }
            };
            let verifier = Verifier::new(
                chain,
                store.clone(),
                chain_id,
                config.chain.confirmations,
                WAIT,
            );
            let report = verifier.verify(&target).await;
            store.close().await;
            report.map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => ask_server(args).await?,
    };
    for difference in &report.differences {
        println!("{difference}");
    }
    println!(
        "{}",
        json!({
            "block_number": report.block_number,
            "checked": report.checked,
            "differences": report.differences.len(),
        })
    );
    Ok(i32::from(!report.differences.is_empty()))
}

/// What `--token` or `--contract` names, or why it names nothing.
async fn target<S: IndexStore + TokenRepository>(
    store: &S,
    chain_id: u64,
    args: &VerifyArgs,
) -> anyhow::Result<Result<VerifyTarget, String>> {
    if let Some(token) = &args.token {
        let Ok(id) = token.parse::<TokenId>() else {
            return Ok(Err(format!("--token {token:?} is not a token id")));
        };
        let token = store.system_get(id).await.context("reading the token")?;
        let Some(d) = token.deployment else {
            return Ok(Err("the token is not deployed yet".into()));
        };
        return Ok(Ok(VerifyTarget {
            contract: d.address,
            standard: Standard::Erc20,
            from_block: d.block_number,
            at_block: args.at_block,
            platform_token: true,
        }));
    }
    let raw = args.contract.as_deref().unwrap_or_default();
    let Ok(address) = raw.parse::<Address>() else {
        return Ok(Err(format!("--contract {raw:?} is not an address")));
    };
    let sources = store
        .system_index_sources(chain_id)
        .await
        .context("reading the indexed contracts")?;
    let Some(source) = sources.iter().find(|s| s.address == address) else {
        return Ok(Err(format!(
            "{address:#x} is not indexed on chain {chain_id}"
        )));
    };
    let (standard, platform_token) = match source.role {
        SourceRole::Token => (Standard::Erc20, true),
        SourceRole::Watched(standard) => (standard, false),
        SourceRole::Compliance | SourceRole::Registry => {
            return Ok(Err(format!(
                "{address:#x} holds no balances (a compliance contract or identity registry)"
            )));
        }
    };
    Ok(Ok(VerifyTarget {
        contract: address,
        standard,
        from_block: source.start_block,
        at_block: args.at_block,
        platform_token,
    }))
}

/// The same report from the running server (the devnet is inside it).
async fn ask_server(args: &VerifyArgs) -> anyhow::Result<VerifyReport> {
    let Some(token) = &args.token else {
        bail!("on the embedded devnet only --token can be verified (through the server)");
    };
    let key = std::env::var("RWA_API_KEY")
        .context("RWA_API_KEY: the running server's API key (admin or auditor) is needed on the embedded devnet")?;
    let mut url = format!(
        "{}/v1/tokens/{token}/verify",
        args.server.trim_end_matches('/')
    );
    if let Some(at) = args.at_block {
        url.push_str(&format!("?at_block={at}"));
    }
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(key)
        .timeout(WAIT + Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("asking {}", args.server))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the server answered {status}: {}",
            body["detail"].as_str().unwrap_or("no detail")
        );
    }
    Ok(VerifyReport {
        block_number: body["block_number"].as_u64().unwrap_or_default(),
        checked: body["checked"].as_u64().unwrap_or_default() as usize,
        differences: body["differences"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}
