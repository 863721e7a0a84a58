//! Our own extractors, so that every rejection is a problem document naming
//! what to fix, never axum's plain-text default.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::state::ApiState;

/// A JSON body, limited in size (by the body limit layer) and in nesting depth
/// (by [`crate::ApiSettings::json_max_depth`]), deserialized with the failing
/// field's path in the error.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence == "application/json" || essence.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("could not read the body: {rejection}"))
            }
        })?;
        parse_json(&bytes, state.settings.json_max_depth).map(Json)
    }
}

/// Parses a JSON document: 400 for malformed or too deep JSON, 422 with the
/// field path for well-formed JSON of the wrong shape.
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, ApiError> {
    if let Some(depth) = exceeds_depth(bytes, max_depth) {
        return Err(ApiError::BadRequest(format!(
            "JSON nesting is deeper than {max_depth} levels (reached {depth})"
        )));
    }
    // Every body is an object: serde would also read a struct from an
    // array of its fields in order (`[null, 5]`), which no schema allows.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::Validation(vec![FieldError {
            field: "body".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Validation(vec![FieldError {
                field,
                message: clean_serde_message(&inner.to_string()),
            }])
        } else {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        }
    })
}

/// serde's messages end with " at line 1 column 9"; the field path already says where.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Scans the raw bytes (before any allocation by the parser) and returns the
/// depth reached once it passes `max`.
fn exceeds_depth(bytes: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Query parameters, with failures reported as validation errors.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_deserializer(query);
        de.map(Query)
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::BadRequest("bad query".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        // axum's message names the offending parameter, e.g. "limit: invalid digit".
        let text = e.body_text();
        let text = text.trim_start_matches("Failed to deserialize query string: ");
        match text.split_once(": ") {
            Some((field, message)) => ApiError::field(field, message),
            None => ApiError::field("query", text),
        }
    })
}

/// A UUID path parameter; anything else is a resource that cannot exist (404).
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        role: String,
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert_eq!(exceeds_depth(b"[[[1]]]", 3), None);
        assert_eq!(exceeds_depth(b"[[[[1]]]]", 3), Some(4));
        assert_eq!(exceeds_depth(br#"{"a":"[[[[[[\"["}"#, 2), None);
    }

    #[test]
    fn malformed_json_is_400_and_wrong_shape_names_the_field() {
        assert!(matches!(
            parse_json::<Body>(b"{", 8),
            Err(ApiError::BadRequest(_))
        ));
        match parse_json::<Body>(br#"{"role": 5}"#, 8) {
            Err(ApiError::Validation(e)) => assert_eq!(e[0].field, "role"),
            other => panic!("expected validation, got {other:?}"),
        }
        match parse_json::<Body>(b"{}", 8) {
            Err(ApiError::Validation(e)) => assert!(e[0].message.contains("role")),
            other => panic!("expected validation, got {other:?}"),
        }
    }
}
