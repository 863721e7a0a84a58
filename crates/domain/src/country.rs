//! Countries: ISO 3166-1 alpha-2 in the API, numeric on-chain (the identity
//! registry stores a `uint16`). Only officially assigned codes are accepted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;
use crate::country_codes::COUNTRIES;

/// An officially assigned ISO 3166-1 country.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country {
    alpha2: [u8; 2],
    numeric: u16,
}

impl Country {
    /// Parses an alpha-2 code (`"FR"`). The error names `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Country, ValidationError> {
        // Exactly the upper-case code: the API's contract declares the list of
        // codes, so a lower-case or padded value is refused rather than guessed.
        COUNTRIES
            .binary_search_by(|(code, _)| (*code).cmp(raw))
            .map(Self::at)
            .map_err(|_| {
                ValidationError::new(
                    field,
                    "must be an upper-case ISO 3166-1 alpha-2 country code (e.g. FR)",
                )
            })
    }

    /// Every assigned alpha-2 code, in order (the API's enumeration).
    pub fn codes() -> impl Iterator<Item = &'static str> {
        COUNTRIES.iter().map(|(code, _)| *code)
    }

    /// The country with this ISO 3166-1 numeric code, if one is assigned.
    pub fn from_numeric(numeric: u16) -> Option<Country> {
        COUNTRIES
            .iter()
            .position(|(_, n)| *n == numeric)
            .map(Self::at)
    }

    fn at(i: usize) -> Country {
        let (code, numeric) = COUNTRIES[i];
        let b = code.as_bytes();
        Country {
            alpha2: [b[0], b[1]],
            numeric,
        }
    }

    /// The alpha-2 code (`FR`).
    pub fn alpha2(&self) -> &str {
        std::str::from_utf8(&self.alpha2).expect("codes are ASCII")
    }

    /// The numeric code the contracts store (`250` for France).
    pub const fn numeric(&self) -> u16 {
        self.numeric
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpha2())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.alpha2())
    }
}

/// Reads what [`Serialize`] wrote (stored records); also usable as a map
/// key (`{"US": 99}`).
impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Country::parse(&raw, "country").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha2_and_numeric_agree() {
        let fr = Country::parse("FR", "c").unwrap();
        assert_eq!((fr.alpha2(), fr.numeric()), ("FR", 250));
        for loose in ["fr", " FR", "FR "] {
            assert!(Country::parse(loose, "c").is_err(), "{loose:?}");
        }
        assert_eq!(Country::codes().count(), 249);
        assert_eq!(Country::from_numeric(840).unwrap().alpha2(), "US");
        assert_eq!(Country::parse("DE", "c").unwrap().numeric(), 276);
        assert_eq!(
            Country::parse("XX", "country").unwrap_err().field,
            "country"
        );
        assert!(Country::parse("FRA", "c").is_err());
        assert!(Country::from_numeric(0).is_none());
    }

    #[test]
    fn the_table_is_sorted_and_unique() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        let mut numerics: Vec<u16> = COUNTRIES.iter().map(|c| c.1).collect();
        numerics.sort_unstable();
        numerics.dedup();
        assert_eq!(numerics.len(), COUNTRIES.len());
    }
}
