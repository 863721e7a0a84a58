//! Token amounts: decimal strings of base units in the API (uint256-safe, no
//! floating point anywhere), `U256` inside.

use std::fmt;

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
        // One spelling per value: amounts are compared and hashed as text in
        // places (audit data, idempotency), so "007" is refused, not read as 7.
        if raw.len() > 1 && raw.starts_with('0') {
            return Err(ValidationError::new(field, "must not have leading zeros"));
        }
        U256::from_str_radix(raw, 10)
            .map(Amount)
            .map_err(|_| ValidationError::new(field, "must be at most 2^256 - 1"))
    }

    /// A regular expression (JSON Schema / ECMA-262 syntax) matching exactly
    /// the strings [`Amount::parse`] accepts — canonical decimals up to
    /// `2^256 - 1` — or, with `positive`, all of them but `"0"`. The API's
    /// contract declares it, so clients and fuzzers know the precise bound.
    pub fn pattern(positive: bool) -> String {
        let max = U256::MAX.to_string();
        let digits: Vec<u8> = max.bytes().map(|b| b - b'0').collect();
        let n = digits.len();
        let mut alternatives = Vec::new();
        if !positive {
            alternatives.push("0".to_owned());
        }
        // Any value with fewer digits than the maximum.
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
        // As many digits: equal to the maximum up to position i, lower there.
        for i in 0..n {
            let low = u8::from(i == 0);
            if digits[i] == 0 || digits[i] - 1 < low {
                continue;
            }
            let prefix: String = max[..i].to_owned();
            let rest = n - i - 1;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            alternatives.push(format!("{prefix}[{low}-{}]{tail}", digits[i] - 1));
        }
        alternatives.push(max);
        format!("^({})$", alternatives.join("|"))
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

/// Reads what [`Serialize`] wrote (stored records such as compliance
/// snapshots); the API parses with [`Amount::parse`] to name the field.
impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Amount::parse(&raw, "amount").map_err(serde::de::Error::custom)
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

    #[test]
    fn the_pattern_accepts_exactly_what_parse_accepts() {
        let pattern = regex::Regex::new(&Amount::pattern(false)).unwrap();
        let positive = regex::Regex::new(&Amount::pattern(true)).unwrap();
        let max = U256::MAX.to_string();
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        let mut below = max.clone().into_bytes();
        below[40] -= 1;
        let below = String::from_utf8(below).unwrap();
        let cases = [
            "0",
            "1",
            "7",
            "10",
            "1000000",
            "007",
            "01",
            "",
            "-1",
            "1.5",
            "1e9",
            " 1",
            max.as_str(),
            over,
            below.as_str(),
            &"9".repeat(77),
            &"9".repeat(78),
            &"1".repeat(79),
        ];
        for case in cases {
            let parsed = Amount::parse(case, "amount").is_ok();
            assert_eq!(pattern.is_match(case), parsed, "{case:?}");
            assert_eq!(positive.is_match(case), parsed && case != "0", "{case:?}");
        }
    }
}
