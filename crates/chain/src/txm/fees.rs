//! Fee choice for first attempts and replacements.
//!
//! A replacement must raise both `maxFeePerGas` and `maxPriorityFeePerGas` by at
//! least the node's bump (10% on geth and anvil) or it is refused as
//! underpriced; it never switches transaction type (always EIP-1559). Every fee
//! is held under the configured cap; when the cap leaves no room for a valid
//! bump, the lane reports it instead of stalling silently.

use rwa_domain::chain::Eip1559Fees;

/// Fee policy of the transaction manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeePolicy {
    /// Highest `maxFeePerGas` ever offered, wei.
    pub max_fee_cap: u128,
    /// Lowest priority fee offered, wei.
    pub min_priority_fee: u128,
    /// Replacement bump in percent (at least 10).
    pub bump_percent: u32,
}

impl Default for FeePolicy {
    fn default() -> Self {
        Self {
            max_fee_cap: 500_000_000_000, // 500 gwei
            min_priority_fee: 1_000_000,  // 0.001 gwei
            bump_percent: 12,
        }
    }
}

/// What to offer next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeDecision {
    /// Offer these fees.
    Offer(Eip1559Fees),
    /// The cap leaves no valid offer: report, do not send.
    CapReached {
        /// The fee that would have been needed.
        wanted_max_fee: u128,
    },
}

fn bumped(value: u128, percent: u32) -> u128 {
    // Rounded up, and at least one wei more, so the node's integer check passes.
    let raised = value
        .saturating_mul(100 + u128::from(percent))
        .div_ceil(100);
    raised.max(value.saturating_add(1))
}

impl FeePolicy {
    /// Fees for a first attempt, from the chain's suggestion.
    pub fn first(&self, suggested: Eip1559Fees) -> FeeDecision {
        let tip = suggested
            .max_priority_fee_per_gas
            .max(self.min_priority_fee);
        let max_fee = suggested.max_fee_per_gas.max(tip);
        if tip > self.max_fee_cap {
            return FeeDecision::CapReached {
                wanted_max_fee: max_fee,
            };
        }
        FeeDecision::Offer(Eip1559Fees {
            max_fee_per_gas: max_fee.min(self.max_fee_cap),
            max_priority_fee_per_gas: tip,
        })
    }

    /// Fees for a replacement of `previous`: at least the bump over it, and at
    /// least what the chain suggests now.
    pub fn replacement(&self, previous: Eip1559Fees, suggested: Eip1559Fees) -> FeeDecision {
        let percent = self.bump_percent.max(10);
        let tip = bumped(previous.max_priority_fee_per_gas, percent)
            .max(suggested.max_priority_fee_per_gas)
            .max(self.min_priority_fee);
        let max_fee = bumped(previous.max_fee_per_gas, percent)
            .max(suggested.max_fee_per_gas)
            .max(tip);
        if max_fee > self.max_fee_cap {
            // A capped offer is still valid if it clears the minimum bump.
            let minimum = bumped(previous.max_fee_per_gas, percent);
            if self.max_fee_cap >= minimum && self.max_fee_cap >= tip {
                return FeeDecision::Offer(Eip1559Fees {
                    max_fee_per_gas: self.max_fee_cap,
                    max_priority_fee_per_gas: tip,
                });
            }
            return FeeDecision::CapReached {
                wanted_max_fee: max_fee,
            };
        }
        FeeDecision::Offer(Eip1559Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fees(max: u128, tip: u128) -> Eip1559Fees {
        Eip1559Fees {
            max_fee_per_gas: max,
            max_priority_fee_per_gas: tip,
        }
    }

    #[test]
    fn replacements_raise_both_fees_by_at_least_ten_percent() {
        let policy = FeePolicy {
            bump_percent: 10,
            ..FeePolicy::default()
        };
        let previous = fees(1_000, 100);
        let FeeDecision::Offer(next) = policy.replacement(previous, fees(10, 1)) else {
            panic!("under the cap");
        };
        assert!(next.max_fee_per_gas * 10 >= previous.max_fee_per_gas * 11);
        assert!(next.max_priority_fee_per_gas * 10 >= previous.max_priority_fee_per_gas * 11);
        // Tiny fees still move by at least one wei.
        let FeeDecision::Offer(tiny) = policy.replacement(fees(1, 0), fees(0, 0)) else {
            panic!("under the cap");
        };
        assert!(tiny.max_fee_per_gas >= 2);
    }

    #[test]
    fn the_chain_suggestion_wins_when_it_is_higher() {
        let policy = FeePolicy::default();
        let FeeDecision::Offer(next) =
            policy.replacement(fees(1_000, 100), fees(50_000, 2_000_000))
        else {
            panic!("under the cap");
        };
        // The max fee covers at least the tip.
        assert_eq!(next, fees(2_000_000, 2_000_000));
    }

    #[test]
    fn the_cap_is_never_exceeded_and_is_reported_when_no_bump_fits() {
        let policy = FeePolicy {
            max_fee_cap: 1_050,
            min_priority_fee: 0,
            bump_percent: 10,
        };
        assert_eq!(
            policy.replacement(fees(1_000, 10), fees(0, 0)),
            FeeDecision::CapReached {
                wanted_max_fee: 1_100
            }
        );
        let roomy = FeePolicy {
            max_fee_cap: 1_200,
            ..policy
        };
        assert_eq!(
            roomy.replacement(fees(1_000, 10), fees(5_000, 10)),
            FeeDecision::Offer(fees(1_200, 11)),
            "a capped offer that still clears the bump is sent"
        );
        assert_eq!(
            roomy.first(fees(9_000, 10)),
            FeeDecision::Offer(fees(1_200, 10)),
            "first offers are clamped to the cap"
        );
    }
}
