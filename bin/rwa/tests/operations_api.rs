//! Issuer operations through the running service on its embedded default
//! (the devnet mining a block a second), on the backend `RWA_TEST_DATABASE`
//! names: mints refused before anything is sent with the rule named,
//! idempotency keys (replay, mismatch, in flight, 50 concurrent requests),
//! four-eyes approval by another admin with both in the audit trail, the
//! operation following its transaction to `settled`, and its events in
//! commit order.

mod common;

use std::time::Duration;

use common::{Server, eventually, problem_fields};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

struct Api<'a> {
    s: &'a Server,
    client: Client,
}

impl Api<'_> {
    async fn call(
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

    async fn get(&self, key: &str, path: &str) -> Value {
        let (status, _, body) = self.call(key, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.call(key, Method::POST, path, None, Some(body)).await;
        (status, body)
    }

    async fn op(
        &self,
        key: &str,
        path: &str,
        idem: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call(key, Method::POST, path, Some(idem), body).await
    }

    /// Waits until the operation reaches `status`.
    async fn until(&self, key: &str, id: &str, status: &str) -> Value {
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

async fn investor(api: &Api<'_>, key: &str, name: &str, wallet: &str, approve: bool) -> String {
    let (status, created) = api
        .post(
            key,
            "/v1/investors",
            json!({
                "name": name,
                "email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
                "country": "FR",
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

async fn registered(api: &Api<'_>, key: &str, id: &str) {
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

fn wallet(n: u8) -> String {
    format!("0x{}", format!("{n:02x}").repeat(20))
}

#[tokio::test]
async fn operations_are_checked_idempotent_approved_and_settled() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (org, alice) = s.create_org("Acme Capital");
    let bob = s.create_key(&org, "admin");
    let operator = s.create_key(&org, "operator");

    let (status, token) = api
        .post(
            &alice,
            "/v1/tokens",
            json!({
                "name": "Acme Fund", "symbol": "ACME", "decimals": 0,
                "compliance": { "max_balance_per_investor": "1000000", "max_holders": 3 }
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let ana = investor(&api, &alice, "Ana Lima", &wallet(1), true).await;
    let cleo = investor(&api, &alice, "Cleo Park", &wallet(3), false).await;
    registered(&api, &alice, &ana).await;
    let path = format!("/v1/tokens/{token_id}");
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice, &path).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let mints = format!("/v1/tokens/{token_id}/mints");

    // The key is required, and named when missing.
    let (status, _, problem) = api
        .call(
            &alice,
            Method::POST,
            &mints,
            None,
            Some(json!({ "to": ana, "amount": "5" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["Idempotency-Key"]);

    // Refused before anything is stored or sent, naming the rule.
    for (to, amount, rule) in [
        (cleo.as_str(), "5", "kyc_approved"),
        (ana.as_str(), "1000001", "max_balance_per_investor"),
    ] {
        let (status, _, problem) = api
            .op(
                &alice,
                &mints,
                &format!("refused-{rule}"),
                Some(json!({ "to": to, "amount": amount })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["type"], "/problems/rule-violation");
        assert_eq!(problem["rule"], rule, "{problem}");
        assert_eq!(problem_fields(&problem), ["to"]);
    }
    let (status, body) = api
        .post(
            &alice,
            &format!("/v1/investors/{ana}/wallets"),
            json!({ "address": wallet(2) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, problem) = api
        .op(
            &alice,
            &mints,
            "refused-unregistered",
            Some(json!({ "to": ana, "wallet": wallet(2), "amount": "5" })),
        )
        .await;
    assert_eq!(
        (status, &problem["rule"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("wallet_registered")
        ),
        "{problem}"
    );
    let none = api.get(&alice, "/v1/operations").await;
    assert_eq!(none["items"], json!([]), "nothing stored");

    // A mint; its retry gets the stored answer; the key with another body
    // is refused.
    let body = json!({ "to": ana, "wallet": wallet(1), "amount": "100" });
    let (status, _, first) = api
        .op(&operator, &mints, "mint-1", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["status"], "pending");
    let (status, headers, again) = api.op(&operator, &mints, "mint-1", Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, first, "the stored answer, as first given");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, problem) = api
        .op(
            &operator,
            &mints,
            "mint-1",
            Some(json!({ "to": ana, "wallet": wallet(1), "amount": "101" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "/problems/idempotency-mismatch");
    let settled = api
        .until(&alice, first["id"].as_str().unwrap(), "settled")
        .await;
    assert_eq!(settled["tx_hash"].as_str().unwrap().len(), 66, "{settled}");
    assert!(settled["block_number"].is_u64());

    // 50 identical requests at once: one operation; the others replay it
    // or are told to come back.
    let body = json!({ "to": ana, "wallet": wallet(1), "amount": "7" });
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url, key, body) = (
            api.client.clone(),
            s.url(&mints),
            operator.clone(),
            body.clone(),
        );
        racing.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "mint-50")
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, headers) = (r.status(), r.headers().clone());
            (status, headers, r.json::<Value>().await.unwrap())
        });
    }
    let answers = racing.join_all().await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, headers, answer) in &answers {
        match *status {
            StatusCode::ACCEPTED => {
                ids.insert(answer["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                assert_eq!(answer["type"], "/problems/idempotency-in-progress");
                assert!(
                    headers["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        >= 1
                );
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let listed = api
        .get(
            &alice,
            &format!("/v1/operations?token_id={token_id}&kind=mint"),
        )
        .await;
    let sevens = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["amount"] == "7")
        .count();
    assert_eq!(sevens, 1, "{listed}");

    // Four-eyes: above the threshold a mint waits; its requester cannot
    // approve it, an operator cannot either, another admin can.
    let (status, _, t) = api
        .call(
            &operator,
            Method::PATCH,
            &path,
            None,
            Some(json!({ "four_eyes_mint_threshold": "500" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{t}");
    let (status, _, t) = api
        .call(
            &alice,
            Method::PATCH,
            &path,
            None,
            Some(json!({ "four_eyes_mint_threshold": "500" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["four_eyes_mint_threshold"], "500");
    let (status, _, big) = api
        .op(
            &alice,
            &mints,
            "mint-big",
            Some(json!({ "to": wallet(1), "amount": "600" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{big}");
    assert_eq!(big["status"], "awaiting_approval");
    let big_id = big["id"].as_str().unwrap();
    let approve = format!("/v1/operations/{big_id}/approve");
    let (status, _, _) = api.call(&alice, Method::POST, &approve, None, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the requester may not approve"
    );
    let (status, _, _) = api
        .call(&operator, Method::POST, &approve, None, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins approve");
    let (status, _, approved) = api.call(&bob, Method::POST, &approve, None, None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "pending");
    let (status, _, twice) = api.call(&bob, Method::POST, &approve, None, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");
    api.until(&alice, big_id, "settled").await;

    // Rejected, it ends; a pause with no body works the same way.
    let (status, _, burn) = api
        .op(
            &alice,
            &format!("/v1/tokens/{token_id}/burns"),
            "burn-1",
            Some(json!({ "from": ana, "wallet": wallet(1), "amount": "1" })),
        )
        .await;
    assert_eq!(
        (status, &burn["status"]),
        (StatusCode::ACCEPTED, &json!("awaiting_approval")),
        "{burn}"
    );
    let reject = format!("/v1/operations/{}/reject", burn["id"].as_str().unwrap());
    let (status, _, rejected) = api
        .call(
            &bob,
            Method::POST,
            &reject,
            None,
            Some(json!({ "reason": "not agreed" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection_reason"], "not agreed");
    assert_ne!(rejected["rejected_by"], rejected["requested_by"]);
    let (status, _, pause) = api
        .op(
            &operator,
            &format!("/v1/tokens/{token_id}/pause"),
            "pause-1",
            None,
        )
        .await;
    assert_eq!(
        (status, &pause["status"]),
        (StatusCode::ACCEPTED, &json!("awaiting_approval")),
        "{pause}"
    );

    // Both actors are in the audit trail.
    let audit = api.get(&alice, "/v1/audit?limit=200").await;
    let entries = audit["items"].as_array().unwrap();
    let of = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["target"] == big_id)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (requested, approved) = (of("operation.requested"), of("operation.approved"));
    assert_eq!(requested.len(), 1);
    assert_eq!(approved.len(), 1);
    assert_ne!(requested, approved, "two different actors");

    // Its events, in commit order.
    let events = api
        .get(&alice, "/v1/events?type=operation.*&limit=200")
        .await;
    let events = events["items"].as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let big_events: Vec<&str> = events
        .iter()
        .filter(|e| e["data"]["id"] == big_id)
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        big_events.first(),
        Some(&"operation.requested"),
        "{big_events:?}"
    );
    assert_eq!(
        big_events.last(),
        Some(&"operation.settled"),
        "{big_events:?}"
    );
    assert!(big_events.contains(&"operation.approved"));
    assert!(
        big_events.contains(&"operation.submitted"),
        "{big_events:?}"
    );

    // Recovery: the new wallet joins Ana, is registered, then the balance
    // moves; the lost wallet must be hers (404 otherwise).
    let lost = wallet(1);
    let recover = format!("/v1/investors/{ana}/wallets/{lost}/recover");
    let (status, _, _) = api
        .op(
            &alice,
            &format!("/v1/investors/{ana}/wallets/{}/recover", wallet(7)),
            "recover-0",
            Some(json!({ "new_address": wallet(9) })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, recovery) = api
        .op(
            &alice,
            &recover,
            "recover-1",
            Some(json!({ "new_address": wallet(9) })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovery}");
    assert_eq!(recovery["status"], "awaiting_approval");
    assert_eq!(
        recovery["token_id"],
        Value::Null,
        "every token of the organization"
    );
    let id = recovery["id"].as_str().unwrap();
    let (status, _, _) = api
        .call(
            &bob,
            Method::POST,
            &format!("/v1/operations/{id}/approve"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = api.until(&alice, id, "settled").await;
    assert_eq!(done["transactions"].as_array().unwrap().len(), 1, "{done}");
    let ana_now = api.get(&alice, &format!("/v1/investors/{ana}")).await;
    let registered: Vec<&str> = ana_now["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "registered")
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert!(
        registered
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&wallet(9))),
        "{ana_now}"
    );
}
