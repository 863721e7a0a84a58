//! Token amounts: decimal strings of base units in the API (uint256-safe, no
//! floating point anywhere), `U256` inside.

use std::fmt;

use alloy_primitives::U256;
use serde::{Serialize, Serializer};

use crate::ValidationError;

/// A non-negative amount of base units, at most `2^256 - 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(U256);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(U256::ZERO);

    /// Parses a decimal string of digits only (no sign, exponent, separators or
    /// fraction: amounts are base units). The error names `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Amount, ValidationError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new(
                field,
                "must be a decimal string of base units (digits only, e.g. \"1000000\")",
            ));
        }
        U256::from_str_radix(raw, 10)
            .map(Amount)
            .map_err(|_| ValidationError::new(field, "must be at most 2^256 - 1"))
    }

    /// Wraps a value.
    pub const fn new(v: U256) -> Amount {
        Amount(v)
    }

    /// The value.
    pub const fn get(self) -> U256 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_only() {
        assert_eq!(Amount::parse("0", "a").unwrap(), Amount::ZERO);
        assert_eq!(Amount::parse("1000", "a").unwrap().get(), U256::from(1000));
        let max = U256::MAX.to_string();
        assert_eq!(Amount::parse(&max, "a").unwrap().get(), U256::MAX);
        assert_eq!(
            Amount::parse(&format!("{max}0"), "amount")
                .unwrap_err()
                .field,
            "amount"
        );
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "0x10", "1_000"] {
            assert!(Amount::parse(bad, "a").is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&Amount::new(U256::from(7))).unwrap(),
            "\"7\""
        );
    }
}
