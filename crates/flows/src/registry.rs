//! An organization's identity registry, deployed once per chain by whichever
//! flow needs it first (its first token deployment or its first KYC
//! approval), under keys derived from the organization, so both find the
//! same transactions: the registry's deployment and, when the admin lane has
//! its own key, the registrar role for it.

use rwa_chain::contracts::{self, roles};
use rwa_chain::txm::TxmError;
use rwa_domain::chain::Address;
use rwa_domain::token::TokenRepository;
use rwa_domain::tx::{Lane, TxState};
use rwa_domain::{OrgId, RepoError};

use crate::submit::{Step, Submitter};

/// The idempotency key of an organization's registry deployment on a chain.
pub fn registry_key(org: OrgId, chain_id: u64) -> String {
    format!("org:{org}:chain:{chain_id}:identity-registry")
}

/// Submits (or finds) the registry's transactions; the first step creates it.
pub async fn submit(sub: &Submitter, org: OrgId) -> Result<Vec<Step>, TxmError> {
    let chain_id = sub.txm.chain_id();
    let deployer = sub.txm.address(Lane::Deploy)?;
    let registry = sub
        .deploy(
            "identity registry",
            registry_key(org, chain_id),
            contracts::identity_registry_init_code(deployer),
        )
        .await?;
    let address = registry.creates.expect("deployments create");
    let mut steps = vec![registry];
    // The constructor's admin is a registrar already; another admin lane
    // needs the role to register investors' wallets.
    let registrar = sub.txm.address(Lane::Admin)?;
    if registrar != deployer {
        steps.push(
            sub.grant(
                "registrar role",
                format!(
                    "{}:grant:{}:{registrar:#x}",
                    registry_key(org, chain_id),
                    roles::REGISTRAR
                ),
                address,
                roles::REGISTRAR,
                registrar,
            )
            .await?,
        );
    }
    Ok(steps)
}

/// Where an organization's registry stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Registry {
    /// Deployed, settled and recorded.
    Ready(Address),
    /// Its transactions are on their way.
    Deploying,
    /// A transaction failed: nothing that needs the registry can go on.
    Failed(String),
}

/// The registry of `org`, submitting its deployment if nobody has; records
/// it once every transaction is settled.
pub async fn ensure(
    sub: &Submitter,
    tokens: &dyn TokenRepository,
    org: OrgId,
) -> Result<Registry, TxmError> {
    let chain_id = sub.txm.chain_id();
    if let Some(address) = tokens.system_identity_registry(org, chain_id).await? {
        return Ok(Registry::Ready(address));
    }
    let steps = submit(sub, org).await?;
    if let Some(failed) = steps.iter().find(|s| s.tx.state == TxState::Failed) {
        return Ok(Registry::Failed(format!(
            "{} transaction {} failed: {}",
            failed.name,
            failed.tx.id,
            failed.tx.error.as_deref().unwrap_or("reverted")
        )));
    }
    if steps.iter().any(|s| s.tx.state != TxState::Settled) {
        return Ok(Registry::Deploying);
    }
    let deployed = &steps[0];
    let created = deployed
        .tx
        .inclusion
        .as_ref()
        .and_then(|i| i.contract_address);
    if created != deployed.creates {
        return Ok(Registry::Failed(format!(
            "identity registry transaction {} created {created:?}, expected {:?}",
            deployed.tx.id, deployed.creates
        )));
    }
    let address = deployed.creates.expect("deployments create");
    let block = deployed.tx.inclusion.as_ref().map_or(0, |i| i.block_number);
    let recorded = tokens
        .system_record_identity_registry(org, chain_id, address, block)
        .await
        .map_err(|e: RepoError| TxmError::Store(e))?;
    Ok(Registry::Ready(recorded))
}
