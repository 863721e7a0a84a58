//! Reconciliation: every indexed holding of a contract compared with the
//! chain's own answer at the same block (`balanceOf`, `ownerOf`,
//! `balanceOf(id)`; for the platform's tokens also `frozenTokens` and
//! `isFrozen`), over every wallet the index holds and every address the
//! chain's logs name, and the indexed sum with `totalSupply` for ERC-20.
//! Every difference is reported, none is fixed: the index is rebuilt from
//! the chain, never patched.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::sol_types::SolCall;
use async_trait::async_trait;
use rwa_domain::chain::{Address, BlockTag, Bytes, CallRequest, ChainPort, U256};
use rwa_domain::holding::effects;
use rwa_domain::onchain::{
    IndexStore, IndexVerifier, Standard, VerifyError, VerifyReport, VerifyTarget,
};

use crate::decode::decode;
use crate::fetch::{RangeConfig, RangeFetcher};
use crate::follower::StepError;

alloy::sol! {
    interface Erc20View {
        function balanceOf(address owner) external view returns (uint256);
        function totalSupply() external view returns (uint256);
    }
    interface Erc721View {
        function ownerOf(uint256 id) external view returns (address);
    }
    interface Erc1155View {
        function balanceOf(address owner, uint256 id) external view returns (uint256);
    }
    interface FreezeView {
        function frozenTokens(address wallet) external view returns (uint256);
        function isFrozen(address wallet) external view returns (bool);
    }
}

async fn call(
    chain: &dyn ChainPort,
    to: Address,
    input: Vec<u8>,
    at: u64,
) -> Result<Bytes, StepError> {
    Ok(chain
        .call(
            &CallRequest {
                to: Some(to),
                input: input.into(),
                ..CallRequest::default()
            },
            BlockTag::Number(at),
        )
        .await?)
}

/// Compares the index of `target` on `chain_id` with the chain at block `at`.
pub async fn verify(
    chain: Arc<dyn ChainPort>,
    store: &dyn IndexStore,
    chain_id: u64,
    target: &VerifyTarget,
    at: u64,
) -> Result<VerifyReport, StepError> {
    let c = target.contract;
    let mut indexed = Vec::new();
    let mut after = None;
    loop {
        let page = store.holders_at(chain_id, c, at, after, 1000).await?;
        let full = page.len() == 1000;
        after = page.last().map(|h| (h.token_id, h.wallet));
        indexed.extend(page);
        if !full {
            break;
        }
    }
    // Every (id, wallet) the chain's logs name, so a holder the index
    // missed is found too.
    let mut keys: BTreeSet<(Option<U256>, Address)> =
        indexed.iter().map(|h| (h.token_id, h.wallet)).collect();
    let mut fetcher = RangeFetcher::new(
        chain.clone(),
        vec![c],
        target.from_block,
        at,
        RangeConfig::default().initial,
        RangeConfig::default(),
    );
    while let Some(fetched) = fetcher.next().await {
        for log in fetched?.logs {
            for (key, _) in effects(c, &decode(chain_id, &log).kind) {
                keys.insert((key.token_id, key.wallet));
            }
        }
    }
    let mut report = VerifyReport {
        block_number: at,
        ..VerifyReport::default()
    };
    let mut indexed_supply = U256::ZERO;
    for (token_id, wallet) in keys {
        let held = indexed
            .iter()
            .find(|h| h.token_id == token_id && h.wallet == wallet);
        let mine = held.map_or(U256::ZERO, |h| h.balance);
        if token_id.is_none() {
            indexed_supply += mine;
        }
        let theirs = match (target.standard, token_id) {
            (Standard::Erc20, _) => {
                let out = call(
                    &*chain,
                    c,
                    Erc20View::balanceOfCall { owner: wallet }.abi_encode(),
                    at,
                )
                .await?;
                Erc20View::balanceOfCall::abi_decode_returns(&out).unwrap_or_default()
            }
            (Standard::Erc721, Some(id)) => {
                // A burned or never-minted id reverts: owned by nobody.
                let owner =
                    match call(&*chain, c, Erc721View::ownerOfCall { id }.abi_encode(), at).await {
                        Ok(out) => Erc721View::ownerOfCall::abi_decode_returns(&out).ok(),
                        Err(_) => None,
                    };
                U256::from(u8::from(owner == Some(wallet)))
            }
            (Standard::Erc1155, Some(id)) => {
                let out = call(
                    &*chain,
                    c,
                    Erc1155View::balanceOfCall { owner: wallet, id }.abi_encode(),
                    at,
                )
                .await?;
                Erc1155View::balanceOfCall::abi_decode_returns(&out).unwrap_or_default()
            }
            (_, None) => continue,
        };
        report.checked += 1;
        let id = token_id.map(|i| format!(" id {i}")).unwrap_or_default();
        if mine != theirs {
            report.differences.push(format!(
                "{wallet:#x}{id}: indexed balance {mine}, chain {theirs} at block {at}"
            ));
        }
        if target.platform_token && token_id.is_none() {
            let frozen = call(
                &*chain,
                c,
                FreezeView::frozenTokensCall { wallet }.abi_encode(),
                at,
            )
            .await?;
            let frozen =
                FreezeView::frozenTokensCall::abi_decode_returns(&frozen).unwrap_or_default();
            let flag = call(
                &*chain,
                c,
                FreezeView::isFrozenCall { wallet }.abi_encode(),
                at,
            )
            .await?;
            let flag = FreezeView::isFrozenCall::abi_decode_returns(&flag).unwrap_or_default();
            let (my_frozen, my_flag) =
                held.map_or((U256::ZERO, false), |h| (h.frozen, h.wallet_frozen));
            if my_frozen != frozen || my_flag != flag {
                report.differences.push(format!(
                    "{wallet:#x}: indexed frozen {my_frozen} (wallet frozen {my_flag}), chain {frozen} ({flag}) at block {at}"
                ));
            }
        }
    }
    if target.standard == Standard::Erc20 {
        let out = call(&*chain, c, Erc20View::totalSupplyCall {}.abi_encode(), at).await?;
        let supply = Erc20View::totalSupplyCall::abi_decode_returns(&out).unwrap_or_default();
        if supply != indexed_supply {
            report.differences.push(format!(
                "total supply: indexed {indexed_supply}, chain {supply} at block {at}"
            ));
        }
    }
    Ok(report)
}

/// [`IndexVerifier`] over a chain port and the index.
pub struct Verifier {
    chain: Arc<dyn ChainPort>,
    store: Arc<dyn IndexStore>,
    chain_id: u64,
    /// How close to the head the index must be (blocks) when no block is named.
    depth: u64,
    /// How long to wait for it.
    wait: Duration,
}

impl Verifier {
    /// A verifier of the index of `chain_id`: without a block, it waits up
    /// to `wait` for the index to be within `depth` blocks of the head.
    pub fn new(
        chain: Arc<dyn ChainPort>,
        store: Arc<dyn IndexStore>,
        chain_id: u64,
        depth: u64,
        wait: Duration,
    ) -> Self {
        Self {
            chain,
            store,
            chain_id,
            depth,
            wait,
        }
    }

    async fn block(&self, asked: Option<u64>) -> Result<u64, VerifyError> {
        let failed = |e: &dyn std::fmt::Display| VerifyError::Failed(e.to_string());
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let state = self
                .store
                .system_index_state(self.chain_id)
                .await
                .map_err(|e| failed(&e))?
                .ok_or(VerifyError::NotStarted)?;
            if let Some(asked) = asked {
                return if asked <= state.cursor {
                    Ok(asked)
                } else {
                    Err(VerifyError::BeyondIndex {
                        asked,
                        cursor: state.cursor,
                    })
                };
            }
            let head = self
                .chain
                .block_number(rwa_domain::chain::BlockTag::Latest)
                .await
                .map_err(|e| failed(&e))?;
            let lag = head.saturating_sub(state.cursor);
            if lag <= self.depth {
                return Ok(state.cursor);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VerifyError::Behind {
                    cursor: state.cursor,
                    lag,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[async_trait]
impl IndexVerifier for Verifier {
    async fn verify(&self, target: &VerifyTarget) -> Result<VerifyReport, VerifyError> {
        let at = self.block(target.at_block).await?;
        verify(
            self.chain.clone(),
            self.store.as_ref(),
            self.chain_id,
            target,
            at,
        )
        .await
        .map_err(|e| VerifyError::Failed(e.to_string()))
    }
}
