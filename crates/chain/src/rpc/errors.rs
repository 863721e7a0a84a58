//! Classification of node errors into the domain's [`ChainError`], whatever
//! node produced them (geth, reth, anvil and hosted providers word them alike),
//! and decoding of revert payloads.

use alloy::primitives::{Bytes, U256};
use alloy::rpc::json_rpc::{ErrorPayload, RpcError};
use alloy::transports::TransportErrorKind;
use rwa_domain::chain::ChainError;

/// `Error(string)` selector.
const ERROR_STRING: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
/// `Panic(uint256)` selector.
const PANIC_UINT: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

/// Decodes a revert payload for people: the `Error(string)` message, the
/// `Panic(uint256)` code, or a custom error's selector and argument bytes.
pub fn decode_revert(data: &[u8]) -> String {
    if data.is_empty() {
        return "no reason given".to_owned();
    }
    if data.len() >= 4
        && data[..4] == ERROR_STRING
        && let Some(text) = abi_string(&data[4..])
    {
        return text;
    }
    if data.len() == 36 && data[..4] == PANIC_UINT {
        let code = U256::from_be_slice(&data[4..36]);
        return format!("Panic({code:#x})");
    }
    if data.len() >= 4 {
        return format!(
            "custom error 0x{}{}",
            alloy::hex::encode(&data[..4]),
            if data.len() > 4 {
                format!(" with data 0x{}", alloy::hex::encode(&data[4..]))
            } else {
                String::new()
            }
        );
    }
    format!("revert data 0x{}", alloy::hex::encode(data))
}

/// An ABI-encoded single `string` argument.
fn abi_string(args: &[u8]) -> Option<String> {
    let word = |i: usize| args.get(i * 32..(i + 1) * 32).map(U256::from_be_slice);
    let offset = usize::try_from(word(0)?).ok()?;
    let len_at = offset.checked_add(32)?;
    let len = usize::try_from(U256::from_be_slice(args.get(offset..len_at)?)).ok()?;
    let bytes = args.get(len_at..len_at.checked_add(len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// Revert data carried by an error response, if any (`data` as a hex string,
/// or an object with a `data` field, depending on the node).
fn revert_data(payload: &ErrorPayload) -> Bytes {
    let Some(raw) = &payload.data else {
        return Bytes::new();
    };
    let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
    let text = match &value {
        serde_json::Value::String(s) => Some(s.as_str()),
        serde_json::Value::Object(o) => o.get("data").and_then(|d| d.as_str()),
        _ => None,
    };
    text.and_then(|t| t.parse::<Bytes>().ok())
        .unwrap_or_default()
}

/// Classifies an error answer by its message (codes differ between nodes).
pub fn classify_payload(payload: &ErrorPayload) -> ChainError {
    let message = payload.message.to_string();
    let m = message.to_ascii_lowercase();
    let has = |needle: &str| m.contains(needle);
    if has("execution reverted") || (has("revert") && payload.code == 3) {
        let data = revert_data(payload);
        let reason = if data.is_empty() {
            message
                .split_once("reverted")
                .map(|(_, rest)| rest.trim_start_matches([':', ' ']).to_owned())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "no reason given".to_owned())
        } else {
            decode_revert(&data)
        };
        return ChainError::Reverted { reason, data };
    }
    if has("already known") || has("already imported") || has("known transaction") {
        return ChainError::AlreadyKnown;
    }
    if has("nonce too low") || has("nonce has already been used") || has("old nonce") {
        return ChainError::NonceTooLow(message);
    }
    if has("nonce too high") || has("nonce gap") {
        return ChainError::NonceTooHigh(message);
    }
    if has("replacement transaction underpriced") || has("replacement underpriced") {
        return ChainError::ReplacementUnderpriced;
    }
    if has("insufficient funds") || has("insufficient balance") {
        return ChainError::InsufficientFunds(message);
    }
    if has("max fee per gas less than block base fee")
        || has("fee cap less than block base fee")
        || (has("maxfeepergas") && has("base fee"))
    {
        return ChainError::FeeCapTooLow(message);
    }
    if has("intrinsic gas too low")
        || has("gas limit reached")
        || has("exceeds block gas limit")
        || has("intrinsic gas")
    {
        return ChainError::GasLimit(message);
    }
    if has("query returned more than")
        || has("block range")
        || has("range too large")
        || has("limit exceeded")
        || has("too many blocks")
        || has("response size")
        || has("max results")
    {
        return ChainError::RangeTooLarge(message);
    }
    if has("invalid signature")
        || has("invalid sender")
        || has("invalid chain id")
        || has("chain id")
        || has("rlp")
        || has("transaction type not supported")
    {
        return ChainError::InvalidTransaction(message);
    }
    if has("method not found") || payload.code == -32601 {
        return ChainError::Unsupported(message);
    }
    if has("rate limit") || has("too many requests") || payload.code == 429 {
        return ChainError::Unavailable(message);
    }
    ChainError::Other(message)
}

/// Classifies any transport-level outcome.
pub fn classify(error: RpcError<TransportErrorKind>) -> ChainError {
    match error {
        RpcError::ErrorResp(payload) => classify_payload(&payload),
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(http) if http.status == 429 || http.status >= 500 => {
                ChainError::Unavailable(format!("HTTP {}", http.status))
            }
            TransportErrorKind::HttpError(http) => {
                ChainError::Other(format!("HTTP {}: {}", http.status, truncate(&http.body)))
            }
            other => ChainError::Unavailable(other.to_string()),
        },
        RpcError::NullResp => ChainError::Other("the node answered null".into()),
        RpcError::UnsupportedFeature(f) => ChainError::Unsupported(f.to_owned()),
        other => ChainError::Other(other.to_string()),
    }
}

fn truncate(body: &str) -> &str {
    let end = body.char_indices().nth(200).map_or(body.len(), |(i, _)| i);
    &body[..end]
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn payload(code: i64, message: &str, data: Option<&str>) -> ErrorPayload {
        ErrorPayload {
            code,
            message: Cow::Owned(message.to_owned()),
            data: data.map(|d| serde_json::value::RawValue::from_string(d.to_owned()).unwrap()),
        }
    }

    #[test]
    fn node_messages_map_to_meanings() {
        type Check = fn(&ChainError) -> bool;
        let cases: [(&str, Check); 8] = [
            ("already known", |e| matches!(e, ChainError::AlreadyKnown)),
            ("nonce too low: next nonce 5, tx nonce 3", |e| {
                matches!(e, ChainError::NonceTooLow(_))
            }),
            ("nonce too high", |e| {
                matches!(e, ChainError::NonceTooHigh(_))
            }),
            ("replacement transaction underpriced", |e| {
                matches!(e, ChainError::ReplacementUnderpriced)
            }),
            ("insufficient funds for gas * price + value", |e| {
                matches!(e, ChainError::InsufficientFunds(_))
            }),
            ("max fee per gas less than block base fee", |e| {
                matches!(e, ChainError::FeeCapTooLow(_))
            }),
            ("intrinsic gas too low", |e| {
                matches!(e, ChainError::GasLimit(_))
            }),
            ("query returned more than 10000 results", |e| {
                matches!(e, ChainError::RangeTooLarge(_))
            }),
        ];
        for (message, check) in cases {
            let e = classify_payload(&payload(-32000, message, None));
            assert!(check(&e), "{message:?} classified as {e:?}");
        }
    }

    #[test]
    fn reverts_decode_error_strings_panics_and_custom_errors() {
        // Error("not allowed")
        let data = "0x08c379a0\
            0000000000000000000000000000000000000000000000000000000000000020\
            000000000000000000000000000000000000000000000000000000000000000b\
            6e6f7420616c6c6f776564000000000000000000000000000000000000000000";
        let e = classify_payload(&payload(
            3,
            "execution reverted",
            Some(&format!("\"{data}\"")),
        ));
        assert!(
            matches!(&e, ChainError::Reverted { reason, .. } if reason == "not allowed"),
            "{e:?}"
        );
        let panic = "0x4e487b710000000000000000000000000000000000000000000000000000000000000011";
        assert_eq!(
            decode_revert(&panic.parse::<Bytes>().unwrap()),
            "Panic(0x11)"
        );
        let custom = "0x12345678000000000000000000000000000000000000000000000000000000000000000009";
        assert!(
            decode_revert(&custom.parse::<Bytes>().unwrap())
                .starts_with("custom error 0x12345678 with data")
        );
        let e = classify_payload(&payload(-32000, "execution reverted: paused", None));
        assert!(
            matches!(&e, ChainError::Reverted { reason, .. } if reason == "paused"),
            "{e:?}"
        );
    }
}
