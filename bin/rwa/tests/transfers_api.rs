//! Transfers through the running service on its embedded default (the
//! devnet mining a block a second), on the backend `RWA_TEST_DATABASE`
//! names: a transfer accepted under an idempotency key, checked by the
//! compliance job against balances read from the index, approved (its
//! amount reserved) and settled on-chain, or rejected with every failing
//! rule named; the dry run agreeing with a real check; cancellation before
//! the check; lists, events, and the index agreeing with the chain.

mod common;

use std::time::Duration;

use common::api::{Api, investor, investor_in, registered, wallet};
use common::{Server, eventually, forget_events_of_block, problem_fields};
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

fn failed(t: &Value) -> Vec<String> {
    t["compliance"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["passed"] == false)
        .map(|v| v["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn transfers_are_checked_reserved_settled_and_explained() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, alice) = s.create_org("Transfer Trust");
    let (status, token) = api
        .post(
            &alice,
            "/v1/tokens",
            json!({ "name": "Trust Fund", "symbol": "TRF", "decimals": 0,
                    "compliance": { "country_block": ["US"] } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let ana = investor(&api, &alice, "Ana Lima", &wallet(1), true).await;
    let ben = investor(&api, &alice, "Ben Ode", &wallet(2), true).await;
    let carl = investor_in(&api, &alice, "Carl Ray", &wallet(3), "US", true).await;
    let dan = investor(&api, &alice, "Dan Moss", &wallet(4), false).await;
    for i in [&ana, &ben, &carl] {
        registered(&api, &alice, i).await;
    }
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let (status, _, op) = api
        .op(
            &alice,
            &format!("/v1/tokens/{token_id}/mints"),
            "mint-ana",
            Some(json!({ "to": ana, "amount": "300" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    api.until(&alice, op["id"].as_str().unwrap(), "settled")
        .await;
    let holders = format!("/v1/tokens/{token_id}/holders");
    let indexed = eventually(Duration::from_secs(60), async || {
        api.get(&alice, &holders).await["items"][0]["balance"] == "300"
    })
    .await;
    assert!(indexed, "the mint was never indexed");

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
    let t1 = until(&api, &alice, &id1, "settled").await;
    assert!(failed(&t1).is_empty(), "{t1}");
    assert!(
        t1["tx_hash"].is_string() && t1["block_number"].is_u64(),
        "{t1}"
    );
    assert_eq!(t1["compliance"]["rule_set_version"], 1);
    assert_eq!(t1["compliance"]["verdicts"].as_array().unwrap().len(), 17);
    assert_eq!(t1["compliance"]["snapshot"]["sender_balance"], "300");
    balances(&api, &alice, &token_id, &[(&ana, "200"), (&ben, "100")]).await;

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
            settled.push(until(&api, &alice, id, "settled").await);
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
    balances(&api, &alice, &token_id, &[(&ana, "50"), (&ben, "250")]).await;

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
}

/// Waits until the transfer reaches `status`.
async fn until(api: &Api<'_>, key: &str, id: &str, status: &str) -> Value {
    let path = format!("/v1/transfers/{id}");
    let mut t = Value::Null;
    let reached = eventually(Duration::from_secs(90), async || {
        t = api.get(key, &path).await;
        t["status"] == status
    })
    .await;
    assert!(
        reached,
        "never {status}: {t}\n{}",
        api.s.log_lines().join("\n")
    );
    t
}

/// Waits until the index shows each investor's balance.
async fn balances(api: &Api<'_>, key: &str, token: &str, want: &[(&str, &str)]) {
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
    let (status, token) = api
        .post(
            &alice,
            "/v1/tokens",
            json!({ "name": "Cancel Fund", "symbol": "CNL", "decimals": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let ana = investor(&api, &alice, "Ana Lima", &wallet(1), false).await;
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
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
}

/// Stops the server cleanly and hands back its data dir for the restart.
fn stop(mut s: Server) -> tempfile::TempDir {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(s.wait_exit(Duration::from_secs(30)).success());
    std::mem::replace(&mut s.data_dir, tempfile::tempdir().unwrap())
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
    let (status, token) = api
        .post(
            &alice,
            "/v1/tokens",
            json!({ "name": "Batch Fund", "symbol": "BTF", "decimals": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let mut people = Vec::new();
    for (n, name) in [
        (1, "Ana Lima"),
        (2, "Ben Ode"),
        (3, "Carl Ray"),
        (4, "Dan Moss"),
    ] {
        people.push(investor(&api, &alice, name, &wallet(n), true).await);
    }
    for p in &people {
        registered(&api, &alice, p).await;
    }
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let (status, _, op) = api
        .op(
            &alice,
            &format!("/v1/tokens/{token_id}/mints"),
            "mint-ana",
            Some(json!({ "to": people[0], "amount": "1000" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    api.until(&alice, op["id"].as_str().unwrap(), "settled")
        .await;
    balances(&api, &alice, &token_id, &[(&people[0], "1000")]).await;
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
            let t = until(&api, &alice, id, "rejected").await;
            // Rejected KYC: the wallet also left the registry.
            assert!(failed(&t).contains(&"receiver_kyc".to_owned()), "{t}");
            assert!(t["tx_hash"].is_null(), "never sent: {t}");
        } else {
            let t = until(&api, &alice, id, "settled").await;
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
