//! `checks.signers` of `/health/detailed`: each sender of the transaction
//! manager with its lanes, gas balance and open transactions, from the status
//! its last step left (no chain call here). A lane that cannot make progress
//! without an operator — low balance, fee cap reached, broadcasts refused, its
//! key used outside rwa — makes the check `degraded` and says why.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::{Map, Value, json};

use super::{SenderStatus, TxManager};

/// The transaction manager's senders as a (non-critical) health dependency.
#[derive(Debug)]
pub struct LanesHealth(pub Arc<TxManager>);

#[async_trait]
impl HealthCheck for LanesHealth {
    fn name(&self) -> &'static str {
        "signers"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> CheckReport {
        let (status, details) = report(&self.0.status());
        CheckReport {
            status,
            latency_ms: 0.0,
            details,
        }
    }
}

/// The verdict and details for a set of sender statuses.
pub fn report(senders: &[SenderStatus]) -> (HealthStatus, Map<String, Value>) {
    let mut warnings = Vec::new();
    let listed: Vec<Value> = senders
        .iter()
        .map(|s| {
            let who = format!("{:#x}", s.address);
            if s.low_balance {
                warnings.push(format!("{who}: gas balance {} wei is low", s.balance));
            }
            if s.fee_cap_reached {
                warnings.push(format!(
                    "{who}: the fee cap stops a replacement; the lane may be stuck"
                ));
            }
            if let Some(refused) = &s.refused {
                warnings.push(format!("{who}: the node refuses its broadcasts: {refused}"));
            }
            if let Some(external) = &s.external_use {
                warnings.push(format!("{who}: key used outside rwa: {external}"));
            }
            json!({
                "address": who,
                "lanes": s.lanes,
                "balance_wei": s.balance.to_string(),
                "open": s.open,
                "low_balance": s.low_balance,
                "fee_cap_reached": s.fee_cap_reached,
                "refused": s.refused,
                "external_use": s.external_use,
                "last_error": s.last_error,
                "gaps_filled": s.gaps_filled,
                "standby": s.standby,
            })
        })
        .collect();
    let status = if warnings.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    let mut details = Map::new();
    details.insert("senders".into(), Value::Array(listed));
    if !warnings.is_empty() {
        details.insert("warnings".into(), json!(warnings));
    }
    (status, details)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};
    use rwa_domain::tx::Lane;

    use super::*;

    fn sender(byte: u8) -> SenderStatus {
        SenderStatus {
            address: Address::repeat_byte(byte),
            lanes: vec![Lane::Deploy, Lane::Admin],
            balance: U256::from(10u64).pow(U256::from(18u64)),
            ..SenderStatus::default()
        }
    }

    #[test]
    fn healthy_senders_are_listed_with_their_balance_in_wei() {
        let (status, details) = report(&[sender(1)]);
        assert_eq!(status, HealthStatus::Healthy);
        let s = &details["senders"][0];
        assert_eq!(s["balance_wei"], "1000000000000000000");
        assert_eq!(s["lanes"], json!(["deploy", "admin"]));
        assert!(details.get("warnings").is_none());
    }

    #[test]
    fn every_stuck_condition_degrades_and_says_why() {
        let mut low = sender(1);
        low.low_balance = true;
        let mut capped = sender(2);
        capped.fee_cap_reached = true;
        let mut refused = sender(3);
        refused.refused = Some("insufficient funds".into());
        let mut external = sender(4);
        external.external_use = Some("nonce 7 mined by another sender".into());
        for (one, says) in [
            (low, "is low"),
            (capped, "fee cap"),
            (refused, "insufficient funds"),
            (external, "outside rwa"),
        ] {
            let (status, details) = report(&[sender(9), one]);
            assert_eq!(status, HealthStatus::Degraded);
            let warnings = details["warnings"].as_array().unwrap();
            assert_eq!(warnings.len(), 1);
            assert!(warnings[0].as_str().unwrap().contains(says), "{warnings:?}");
        }
    }
}
