//! Calling the running service's API as a test does: one request helper,
//! investors onboarded with a wallet (and approved), waiting for their
//! registration on-chain.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::{Server, eventually};

pub struct Api<'a> {
    pub s: &'a Server,
    pub client: Client,
}

impl Api<'_> {
    pub async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        idem: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, self.s.url(path))
            .bearer_auth(key);
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, key: &str, path: &str) -> Value {
        let (status, _, body) = self.call(key, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.call(key, Method::POST, path, None, Some(body)).await;
        (status, body)
    }

    pub async fn op(
        &self,
        key: &str,
        path: &str,
        idem: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call(key, Method::POST, path, Some(idem), body).await
    }

    /// Sends the same POST `n` times at once under one idempotency key;
    /// answers every response.
    pub async fn race(
        &self,
        key: &str,
        path: &str,
        idem: &str,
        body: &Value,
        n: usize,
    ) -> Vec<(StatusCode, reqwest::header::HeaderMap, Value)> {
        let mut racing = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (client, url, key, idem, body) = (
                self.client.clone(),
                self.s.url(path),
                key.to_owned(),
                idem.to_owned(),
                body.clone(),
            );
            racing.spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .header("Idempotency-Key", idem)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let (status, headers) = (r.status(), r.headers().clone());
                (status, headers, r.json::<Value>().await.unwrap())
            });
        }
        racing.join_all().await
    }

    /// Waits until the operation reaches `status`.
    pub async fn until(&self, key: &str, id: &str, status: &str) -> Value {
        let path = format!("/v1/operations/{id}");
        let mut op = Value::Null;
        let reached = eventually(Duration::from_secs(90), async || {
            op = self.get(key, &path).await;
            op["status"] == status
        })
        .await;
        assert!(
            reached,
            "operation never {status}: {op}\n{}",
            self.s.log_lines().join("\n")
        );
        op
    }
}

impl Api<'_> {
    /// Waits until the transfer reaches `status`.
    pub async fn transfer_until(&self, key: &str, id: &str, status: &str) -> Value {
        let path = format!("/v1/transfers/{id}");
        let mut t = Value::Null;
        let reached = eventually(Duration::from_secs(90), async || {
            t = self.get(key, &path).await;
            t["status"] == status
        })
        .await;
        assert!(
            reached,
            "never {status}: {t}\n{}",
            self.s.log_lines().join("\n")
        );
        t
    }
}

pub async fn investor(api: &Api<'_>, key: &str, name: &str, wallet: &str, approve: bool) -> String {
    investor_in(api, key, name, wallet, "FR", approve).await
}

/// An investor of `country` with one wallet, KYC approved if `approve`.
pub async fn investor_in(
    api: &Api<'_>,
    key: &str,
    name: &str,
    wallet: &str,
    country: &str,
    approve: bool,
) -> String {
    let (status, created) = api
        .post(
            key,
            "/v1/investors",
            json!({
                "name": name,
                "email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
                "country": country,
                "type": "individual",
                "accredited": true
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            key,
            &format!("/v1/investors/{id}/wallets"),
            json!({ "address": wallet }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    if approve {
        let (status, body) = api
            .post(key, &format!("/v1/investors/{id}/kyc"), json!({
                "decision": "approved", "expires_at": "2099-06-30T00:00:00Z", "reason": "documents verified"
            }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    id
}

pub async fn registered(api: &Api<'_>, key: &str, id: &str) {
    let path = format!("/v1/investors/{id}");
    let ok = eventually(Duration::from_secs(90), async || {
        let i = api.get(key, &path).await;
        i["registrations"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["status"] == "registered"))
    })
    .await;
    assert!(
        ok,
        "wallets never registered: {}",
        api.get(key, &path).await
    );
}

pub fn wallet(n: u8) -> String {
    format!("0x{}", format!("{n:02x}").repeat(20))
}

/// The rules a checked transfer failed.
pub fn failed(t: &Value) -> Vec<String> {
    t["compliance"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["passed"] == false)
        .map(|v| v["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the index shows each investor's balance.
pub async fn balances(api: &Api<'_>, key: &str, token: &str, want: &[(&str, &str)]) {
    let path = format!("/v1/tokens/{token}/holders");
    let mut cap = Value::Null;
    let ok = eventually(Duration::from_secs(60), async || {
        cap = api.get(key, &path).await;
        want.iter().all(|(investor, balance)| {
            cap["items"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|h| h["investor_id"] == *investor && h["balance"] == *balance)
            })
        })
    })
    .await;
    assert!(ok, "the index never showed {want:?}: {cap}");
}

/// A deployed token of the caller's organization (`compliance` its rules,
/// or null), one investor per `(wallet n, name, country, approved)` with
/// the approved ones registered on-chain, and `mint` (if any) minted to the
/// first, settled and indexed. Answers the token and the investors.
pub async fn token_with_investors(
    api: &Api<'_>,
    key: &str,
    symbol: &str,
    compliance: Value,
    people: &[(u8, &str, &str, bool)],
    mint: Option<&str>,
) -> (String, Vec<String>) {
    let mut body = json!({ "name": format!("{symbol} Fund"), "symbol": symbol, "decimals": 0 });
    if !compliance.is_null() {
        body["compliance"] = compliance;
    }
    let (status, token) = api.post(key, "/v1/tokens", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for (n, name, country, approved) in people {
        ids.push(investor_in(api, key, name, &wallet(*n), country, *approved).await);
    }
    for (id, person) in ids.iter().zip(people) {
        if person.3 {
            registered(api, key, id).await;
        }
    }
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(key, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    if let Some(amount) = mint {
        let (status, _, op) = api
            .op(
                key,
                &format!("/v1/tokens/{token_id}/mints"),
                &format!("mint-{symbol}"),
                Some(json!({ "to": ids[0], "amount": amount })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{op}");
        api.until(key, op["id"].as_str().unwrap(), "settled").await;
        balances(api, key, &token_id, &[(&ids[0], amount)]).await;
    }
    (token_id, ids)
}
