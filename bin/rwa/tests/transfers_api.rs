//! Transfers through the running service on its embedded default (the
//! devnet mining a block a second), on the backend `RWA_TEST_DATABASE`
//! names: a transfer accepted under an idempotency key, checked by the
//! compliance job against balances read from the index, approved (its
//! amount reserved) and settled on-chain, or rejected with every failing
//! rule named; the dry run agreeing with a real check; cancellation before
//! the check; lists, events, and the index agreeing with the chain.

mod common;

use std::time::Duration;

use common::api::{Api, balances, failed, token_with_investors, wallet};
use common::{
    Server, eventually, forget_events_of_block, misrecord_amounts_of_block, problem_fields,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// Waits until the transfer leaves `pending_compliance`.
async fn checked(api: &Api<'_>, key: &str, id: &str) -> Value {
    let path = format!("/v1/transfers/{id}");
    let mut t = Value::Null;
    let done = eventually(Duration::from_secs(60), async || {
        t = api.get(key, &path).await;
        t["status"] != "pending_compliance"
    })
    .await;
    assert!(done, "never checked: {t}");
    t
}

#[tokio::test]
async fn transfers_are_checked_reserved_settled_and_explained() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, alice) = s.create_org("Transfer Trust");
    let (token_id, people) = token_with_investors(
        &api,
        &alice,
        "TRF",
        json!({ "country_block": ["US"] }),
        &[
            (1, "Ana Lima", "FR", true),
            (2, "Ben Ode", "FR", true),
            (3, "Carl Ray", "US", true),
            (4, "Dan Moss", "FR", false),
        ],
        Some("300"),
    )
    .await;
    let [ana, ben, carl, dan] = &people[..] else {
        unreachable!()
    };

    let post = async |idem: &str, body: Value| {
        api.call(
            &alice,
            Method::POST,
            "/v1/transfers",
            Some(idem),
            Some(body),
        )
        .await
    };
    // Accepted, approved with every rule passed, settled on-chain; the
    // replay answers the stored response.
    let first = json!({ "token_id": token_id, "from": ana, "to": ben, "amount": "100" });
    let (status, _, t1) = post("t-1", first.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t1}");
    assert_eq!(t1["status"], "pending_compliance");
    assert_eq!(t1["from_wallet"], wallet(1));
    assert_eq!(t1["to_investor_id"], ben.as_str());
    let (status, headers, replay) = post("t-1", first.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(replay["id"], t1["id"]);
    let mut other = first.clone();
    other["amount"] = json!("101");
    let (status, _, mismatch) = post("t-1", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{mismatch}");
    let id1 = t1["id"].as_str().unwrap().to_owned();
    let t1 = api.transfer_until(&alice, &id1, "settled").await;
    assert!(failed(&t1).is_empty(), "{t1}");
    assert!(
        t1["tx_hash"].is_string() && t1["block_number"].is_u64(),
        "{t1}"
    );
    assert_eq!(t1["compliance"]["rule_set_version"], 1);
    assert_eq!(t1["compliance"]["verdicts"].as_array().unwrap().len(), 17);
    assert_eq!(t1["compliance"]["snapshot"]["sender_balance"], "300");
    balances(&api, &alice, &token_id, &[(ana, "200"), (ben, "100")]).await;

    // Two transfers of 150 against 200: the first approved reserves its
    // amount (or is already indexed), so the other is refused, whichever
    // the checks take first.
    let mut two = Vec::new();
    for key in ["t-2a", "t-2b"] {
        let body = json!({ "token_id": token_id, "from": wallet(1), "to": ben, "amount": "150" });
        let (status, _, t) = post(key, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{t}");
        two.push(t["id"].as_str().unwrap().to_owned());
    }
    let (mut settled, mut refused) = (Vec::new(), Vec::new());
    for id in &two {
        let t = checked(&api, &alice, id).await;
        if t["status"] == "rejected" {
            refused.push(t);
        } else {
            settled.push(api.transfer_until(&alice, id, "settled").await);
        }
    }
    assert_eq!(
        (settled.len(), refused.len()),
        (1, 1),
        "{settled:?} {refused:?}"
    );
    assert_eq!(failed(&refused[0]), ["unfrozen_balance"], "{}", refused[0]);
    let snap = &refused[0]["compliance"]["snapshot"];
    let number = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(
        number(&snap["sender_balance"]) - number(&snap["sender_reserved"]),
        50,
        "available after the other one: {snap}"
    );
    balances(&api, &alice, &token_id, &[(ana, "50"), (ben, "250")]).await;

    // Every failing rule is named together: a blocked country; an investor
    // not approved, whose wallet is therefore not registered.
    let (_, _, t3) = post(
        "t-3",
        json!({ "token_id": token_id, "from": ana, "to": carl, "amount": "10" }),
    )
    .await;
    let t3 = checked(&api, &alice, t3["id"].as_str().unwrap()).await;
    assert_eq!(failed(&t3), ["country_not_blocked"], "{t3}");
    let (_, _, t4) = post(
        "t-4",
        json!({ "token_id": token_id, "from": ana, "to": dan, "amount": "10" }),
    )
    .await;
    let t4 = checked(&api, &alice, t4["id"].as_str().unwrap()).await;
    assert_eq!(
        failed(&t4),
        ["receiver_kyc", "receiver_wallet_registered"],
        "{t4}"
    );
    assert_eq!(t4["status"], "rejected");
    let (status, ended) = api
        .post(
            &alice,
            &format!("/v1/transfers/{}/cancel", t4["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a rejected transfer has ended: {ended}"
    );

    // The dry run gives the same verdicts as the real check, stores nothing.
    let (status, dry) = api
        .post(
            &alice,
            "/v1/transfers/check",
            json!({ "token_id": token_id, "from": ana, "to": carl, "amount": "10" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["passed"], false);
    let rules = |v: &Value| -> Vec<(String, bool)> {
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["rule"].as_str().unwrap().to_owned(), v["passed"] == true))
            .collect()
    };
    assert_eq!(rules(&dry), rules(&t3["compliance"]));

    // Bad input names the field; nothing is stored.
    let (status, _, problem) = post(
        "t-bad",
        json!({ "token_id": token_id, "from": ana, "to": ben, "amount": "0" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), ["amount"]);
    let stranger = uuid::Uuid::now_v7().to_string();
    let (status, _, problem) = post(
        "t-stranger",
        json!({ "token_id": token_id, "from": stranger, "to": ben, "amount": "1" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["from"]);

    // Lists filter by status and investor.
    let rejected = api
        .get(
            &alice,
            &format!("/v1/transfers?status=rejected&token_id={token_id}"),
        )
        .await;
    assert_eq!(rejected["items"].as_array().unwrap().len(), 3);
    let of_carl = api
        .get(&alice, &format!("/v1/transfers?investor_id={carl}"))
        .await;
    assert_eq!(of_carl["items"].as_array().unwrap().len(), 1);
    let page = api.get(&alice, "/v1/transfers?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());

    // Every status change is an event, in commit order.
    let events = api
        .get(&alice, "/v1/events?type=transfer.*&limit=100")
        .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    assert_eq!(count("transfer.pending_compliance"), 5, "{types:?}");
    assert_eq!(count("transfer.approved"), 2, "{types:?}");
    assert_eq!(count("transfer.submitted"), 2, "{types:?}");
    assert_eq!(count("transfer.settled"), 2, "{types:?}");
    assert_eq!(count("transfer.rejected"), 3, "{types:?}");

    // The index agrees with the chain.
    let verify = format!("/v1/tokens/{token_id}/verify");
    let (status, _, report) = api.call(&alice, Method::POST, &verify, None, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["agrees"], true, "{report}");

    // A settled transfer whose Transfer the index lost (an indexer gap) is
    // an alarm: `checks.indexer` degraded and the transfer's event.
    forget_events_of_block(&s.database_url, t1["block_number"].as_u64().unwrap()).await;
    let mut health = Value::Null;
    let alarmed = eventually(Duration::from_secs(60), async || {
        health = s.detailed_health().await["checks"]["indexer"].clone();
        health["unreconciled_operations"] == 1
    })
    .await;
    assert!(alarmed, "no alarm: {health}");
    assert_eq!(health["status"], "degraded");
    let events = api.get(&alice, "/v1/events?type=transfer.unindexed").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["items"][0]["data"]["transfer_id"], id1.as_str());

    // One whose indexed Transfer carries another amount is an alarm too.
    let other = &settled[0];
    misrecord_amounts_of_block(&s.database_url, other["block_number"].as_u64().unwrap()).await;
    let alarmed = eventually(Duration::from_secs(60), async || {
        health = s.detailed_health().await["checks"]["indexer"].clone();
        health["unreconciled_operations"] == 2
    })
    .await;
    assert!(alarmed, "no alarm for the amount: {health}");
    let events = api.get(&alice, "/v1/events?type=transfer.mismatched").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["items"][0]["data"]["transfer_id"], other["id"]);
}

/// With the compliance queue served by no worker, a transfer stays
/// `pending_compliance` and can be cancelled; its check, when it comes,
/// finds it cancelled and does nothing.
#[tokio::test]
async fn a_transfer_is_cancelled_before_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rwa.toml");
    std::fs::write(&config, "[jobs.queues.compliance-check]\nconcurrency = 0\n").unwrap();
    let db = rwa_testkit::TestDatabase::create().await;
    let url = db.url.clone();
    let s = Server::start_with_args(&url, &[], &["--config", config.to_str().unwrap()], Some(db));
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, alice) = s.create_org("Cancel Capital");
    let (token_id, people) = token_with_investors(
        &api,
        &alice,
        "CNL",
        Value::Null,
        &[(1, "Ana Lima", "FR", false)],
        None,
    )
    .await;
    let ana = &people[0];
    let (status, _, t) = api
        .call(
            &alice,
            Method::POST,
            "/v1/transfers",
            Some("c-1"),
            Some(json!({ "token_id": token_id, "from": ana, "to": wallet(9), "amount": "5" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t}");
    assert_eq!(t["to_investor_id"], Value::Null, "a wallet of no investor");
    let id = t["id"].as_str().unwrap();
    let waiting = api
        .get(&alice, "/v1/transfers?status=pending_compliance")
        .await;
    assert_eq!(waiting["items"][0]["id"], id);
    let (status, cancelled) = api
        .post(&alice, &format!("/v1/transfers/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = api
        .post(&alice, &format!("/v1/transfers/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let events = api.get(&alice, "/v1/events?type=transfer.*").await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["transfer.pending_compliance", "transfer.cancelled"]);

    // 50 identical requests at once under one key: one transfer; every
    // answer is that transfer, or "in progress, retry".
    let body = json!({ "token_id": token_id, "from": ana, "to": wallet(8), "amount": "7" });
    let answers = api.race(&alice, "/v1/transfers", "c-50", &body, 50).await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, headers, t) in &answers {
        match *status {
            StatusCode::ACCEPTED => {
                ids.insert(t["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert!(headers.contains_key("retry-after"), "{t}"),
            other => panic!("unexpected {other}: {t}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let all = api.get(&alice, "/v1/transfers").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
}

/// Stops the server cleanly and hands back its data dir for the restart.
fn stop(mut s: Server) -> tempfile::TempDir {
    s.stop()
}

/// Transfers approved while no worker serves the settlement queue wait;
/// one receiver's KYC is rejected meanwhile. Served again, the approved
/// transfers are re-checked before sending: that receiver's are rejected,
/// the others go out together in one `batchAgentTransfer`, and the index
/// agrees with the chain.
#[tokio::test]
async fn approved_transfers_settle_together_and_one_made_invalid_is_rejected() {
    let db = rwa_testkit::TestDatabase::create().await;
    let url = db.url.clone();
    let s = Server::start_with_url(&url, &[], None);
    let (org, alice) = s.create_org("Batch Bank");
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (token_id, people) = token_with_investors(
        &api,
        &alice,
        "BTF",
        Value::Null,
        &[
            (1, "Ana Lima", "FR", true),
            (2, "Ben Ode", "FR", true),
            (3, "Carl Ray", "FR", true),
            (4, "Dan Moss", "FR", true),
        ],
        Some("1000"),
    )
    .await;
    let data_dir = stop(s);

    // No settlement worker: transfers are approved and wait.
    let held = data_dir.path().join("held.toml");
    std::fs::write(&held, "[jobs.queues.settlement]\nconcurrency = 0\n").unwrap();
    let s = Server::start_in(
        &url,
        data_dir,
        &[],
        &["--config", held.to_str().unwrap()],
        None,
    );
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let mut ids = Vec::new();
    for i in 0..30 {
        let to = &people[1 + i % 3];
        let body = json!({ "token_id": token_id, "from": people[0], "to": to, "amount": "10" });
        let (status, _, t) = api
            .call(
                &alice,
                Method::POST,
                "/v1/transfers",
                Some(&format!("b-{i}")),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{t}");
        ids.push((t["id"].as_str().unwrap().to_owned(), to.clone()));
    }
    for (id, _) in &ids {
        let t = checked(&api, &alice, id).await;
        assert_eq!(t["status"], "approved", "{t}");
    }
    let dan = &people[3];
    let (status, body) = api
        .post(
            &alice,
            &format!("/v1/investors/{dan}/kyc"),
            json!({ "decision": "rejected", "reason": "documents no longer valid" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data_dir = stop(s);

    // Served again: re-checked, then sent together.
    let s = Server::start_in(&url, data_dir, &[], &[], None);
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let mut hashes = std::collections::BTreeSet::new();
    for (id, to) in &ids {
        if to == dan {
            let t = api.transfer_until(&alice, id, "rejected").await;
            // Rejected KYC: the wallet also left the registry.
            assert!(failed(&t).contains(&"receiver_kyc".to_owned()), "{t}");
            assert!(t["tx_hash"].is_null(), "never sent: {t}");
        } else {
            let t = api.transfer_until(&alice, id, "settled").await;
            hashes.insert(t["tx_hash"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        hashes.len(),
        1,
        "the 20 valid transfers share one transaction: {hashes:?}"
    );
    balances(
        &api,
        &alice,
        &token_id,
        &[
            (&people[0], "800"),
            (&people[1], "100"),
            (&people[2], "100"),
        ],
    )
    .await;
    let verify = format!("/v1/tokens/{token_id}/verify");
    let (status, _, report) = api.call(&alice, Method::POST, &verify, None, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["agrees"], true, "{report}");
    let _ = (org, db);
}

/// A risk engine a test drives: it answers each transfer with the decision
/// set last, and keeps the requests it received.
#[derive(Clone, Default)]
struct Engine {
    decision: std::sync::Arc<std::sync::Mutex<&'static str>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Engine {
    async fn start(&self) -> std::net::SocketAddr {
        let engine = self.clone();
        let app = axum::Router::new().route(
            "/assess",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let engine = engine.clone();
                async move {
                    engine.seen.lock().unwrap().push(body);
                    let decision = *engine.decision.lock().unwrap();
                    axum::Json(
                        json!({ "decision": decision, "score": 42.5, "reason": "test engine" }),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn decide(&self, d: &'static str) {
        *self.decision.lock().unwrap() = d;
    }
}

/// The external risk engine joins the verdicts once the rules pass: its
/// approval settles, its rejection rejects, its review waits for a
/// compliance officer. Cut off (a TCP proxy the test cuts), it sends
/// transfers to manual review (never an approval), its breaker opens and
/// shows in `checks.compliance_engine`; restored, the flow is normal again.
#[tokio::test]
async fn the_risk_engine_decides_and_its_outage_sends_transfers_to_review() {
    let engine = Engine::default();
    engine.decide("approve");
    let proxy = rwa_testkit::TcpProxy::start(engine.start().await).await;
    let url = format!("http://{}/assess", proxy.addr());
    let s = Server::start(&[
        ("RWA_COMPLIANCE_ENGINE_URL", url.as_str()),
        ("RWA_COMPLIANCE_ENGINE_TIMEOUT_MS", "1000"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (org, alice) = s.create_org("Risk Reviewed");
    let officer = s.create_key(&org, "compliance");
    let (token_id, people) = token_with_investors(
        &api,
        &alice,
        "RSK",
        Value::Null,
        &[(1, "Ana Lima", "FR", true), (2, "Ben Ode", "FR", true)],
        Some("1000"),
    )
    .await;
    let (ana, ben) = (&people[0], &people[1]);
    let mut n = 0;
    let mut send = async || {
        n += 1;
        let body = json!({ "token_id": token_id, "from": ana, "to": ben, "amount": "10" });
        let (status, _, t) = api
            .call(
                &alice,
                Method::POST,
                "/v1/transfers",
                Some(&format!("r-{n}")),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{t}");
        checked(&api, &alice, t["id"].as_str().unwrap()).await
    };
    let engine_verdict = |t: &Value| {
        t["compliance"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["rule"] == "risk_engine")
            .cloned()
            .unwrap_or_else(|| panic!("no risk_engine verdict: {t}"))
    };

    // Approved by the engine: settled. It was asked with the transfer.
    let t = send().await;
    assert_ne!(t["status"], "rejected", "{t}");
    let v = engine_verdict(&t);
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("score 42.5"), "{v}");
    api.transfer_until(&alice, t["id"].as_str().unwrap(), "settled")
        .await;
    let asked = engine.seen.lock().unwrap()[0].clone();
    assert_eq!(asked["transfer_id"], t["id"]);
    assert_eq!(asked["amount"], "10");
    assert_eq!(asked["to_country"], "FR");

    // Refused by the engine: rejected.
    engine.decide("reject");
    let t = send().await;
    assert_eq!(t["status"], "rejected", "{t}");
    assert_eq!(failed(&t), ["risk_engine"]);

    // Referred by the engine: a compliance officer approves; it settles.
    engine.decide("review");
    let t = send().await;
    assert_eq!(t["status"], "manual_review", "{t}");
    let review = format!("/v1/transfers/{}/review", t["id"].as_str().unwrap());
    let (status, problem) = api
        .post(
            &officer,
            &review,
            json!({ "decision": "maybe", "reason": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, reviewed) = api
        .post(
            &officer,
            &review,
            json!({ "decision": "approved", "reason": "source of funds verified" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["review"]["decision"], "approved");
    assert!(
        reviewed["review"]["by"]
            .as_str()
            .unwrap()
            .starts_with("api_key:")
    );
    api.transfer_until(&alice, t["id"].as_str().unwrap(), "settled")
        .await;
    let (status, again) = api
        .post(
            &officer,
            &review,
            json!({ "decision": "rejected", "reason": "too late" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // Cut off: manual review, never approval; the breaker opens.
    engine.decide("approve");
    proxy.cut();
    let mut held = Vec::new();
    for _ in 0..3 {
        let t = send().await;
        assert_eq!(t["status"], "manual_review", "{t}");
        let v = engine_verdict(&t);
        assert!(
            v["detail"].as_str().unwrap().starts_with("unavailable"),
            "{v}"
        );
        held.push(t["id"].as_str().unwrap().to_owned());
    }
    let check = s.detailed_health().await["checks"]["compliance_engine"].clone();
    assert_eq!(check["status"], "degraded", "{check}");
    assert_eq!(check["breaker"], "open", "{check}");
    let (status, rejected) = api
        .post(
            &officer,
            &format!("/v1/transfers/{}/review", held[0]),
            json!({ "decision": "rejected", "reason": "could not be assessed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "rejected");

    // Restored: once the breaker lets a probe through, the flow is normal.
    proxy.restore().await;
    let mut t = Value::Null;
    let normal = eventually(Duration::from_secs(30), async || {
        t = send().await;
        t["status"] != "manual_review"
    })
    .await;
    assert!(normal, "still held after the engine came back: {t}");
    api.transfer_until(&alice, t["id"].as_str().unwrap(), "settled")
        .await;
    let check = s.detailed_health().await["checks"]["compliance_engine"].clone();
    assert_eq!(check["status"], "healthy", "{check}");
    assert_eq!(check["breaker"], "closed", "{check}");
}
