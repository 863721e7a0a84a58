//! Schemas the derive macros cannot state: value sets and bounds that come
//! from the domain's own rules (the assigned country codes, the uint256 bound
//! of amounts), so the OpenAPI description declares exactly what validation
//! enforces and the two cannot drift apart.

use rwa_domain::amount::Amount;
use rwa_domain::country::Country;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// An upper-case ISO 3166-1 alpha-2 country code, one of the assigned ones.
pub(crate) struct CountryCode;

impl PartialSchema for CountryCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An assigned ISO 3166-1 alpha-2 code, upper case (`FR`).",
            ))
            .enum_values(Some(Country::codes()))
            .into()
    }
}

impl ToSchema for CountryCode {}

/// Base units as a canonical decimal string, 1 to 2^256 − 1.
pub(crate) struct PositiveUint256;

impl PartialSchema for PositiveUint256 {
    fn schema() -> RefOr<Schema> {
        amount(
            true,
            "Base units as a decimal string without leading zeros, 1 to 2^256 − 1.",
        )
    }
}

impl ToSchema for PositiveUint256 {}

/// Base units as a canonical decimal string, 0 to 2^256 − 1.
pub(crate) struct Uint256;

impl PartialSchema for Uint256 {
    fn schema() -> RefOr<Schema> {
        amount(
            false,
            "Base units as a decimal string without leading zeros, 0 to 2^256 − 1.",
        )
    }
}

impl ToSchema for Uint256 {}

fn amount(positive: bool, what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(what))
        .pattern(Some(Amount::pattern(positive)))
        .into()
}

/// JSON Schema's `integer` is a number with no fraction, so `15.0` is one as
/// much as `15`; these read either (and refuse `15.5` or out-of-range values
/// with a message naming the field, like any other type error).
pub(crate) mod integer {
    use serde::Deserialize;
    use serde::de::{Deserializer, Error};

    fn exact(n: serde_json::Number) -> Option<i64> {
        n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
                .map(|f| f as i64)
        })
    }

    /// A required integer.
    pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        exact(n.clone()).ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}")))
    }

    /// An optional integer (`null` or absent: none).
    pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(n) => exact(n.clone())
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
        }
    }

    /// An object of integers by key (absent: empty, with `#[serde(default)]`).
    pub(crate) fn map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::collections::BTreeMap<String, i64>, D::Error> {
        let raw = std::collections::BTreeMap::<String, serde_json::Number>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, n)| match exact(n.clone()) {
                Some(v) => Ok((k, v)),
                None => Err(D::Error::custom(format!(
                    "{k}: expected an integer, got {n}"
                ))),
            })
            .collect()
    }
}

/// A nested object read only from a JSON object: serde would also read a
/// struct from an array of its fields in order, which no schema allows.
pub(crate) mod object {
    use serde::Deserialize;
    use serde::de::{DeserializeOwned, Deserializer, Error};

    /// An optional object (`null` or absent: none).
    pub(crate) fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
            None => Ok(None),
            Some(map) => inner(map).map(Some),
        }
    }

    /// The object's fields, an error naming the inner field that failed.
    fn inner<T: DeserializeOwned, E: Error>(
        map: serde_json::Map<String, serde_json::Value>,
    ) -> Result<T, E> {
        serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
            let path = e.path().to_string();
            E::custom(format!("{path}: {}", e.into_inner()))
        })
    }
}

/// Most investors per country: an object keyed by assigned country codes,
/// each value an integer of at least 0.
pub(crate) struct CountryCaps;

impl PartialSchema for CountryCaps {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Most investors of each country (an assigned ISO 3166-1 alpha-2 code, upper \
                 case) that may hold the token at once.",
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(Country::codes())),
            ))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(rwa_domain::rule_set::MAX_COUNT)),
            ))
            .into()
    }
}

impl ToSchema for CountryCaps {}
