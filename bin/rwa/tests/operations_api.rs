//! Issuer operations through the running service on its embedded default
//! (the devnet mining a block a second), on the backend `RWA_TEST_DATABASE`
//! names: mints refused before anything is sent with the rule named,
//! idempotency keys (replay, mismatch, in flight, 50 concurrent requests),
//! four-eyes approval by another admin with both in the audit trail, the
//! operation following its transaction to `settled`, and its events in
//! commit order.

mod common;

use std::time::Duration;

use common::api::{Api, investor, registered, wallet};
use common::{Server, eventually, forget_events_of_block, problem_fields};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

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
    let answers = api.race(&operator, &mints, "mint-50", &body, 50).await;
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

/// The cap table comes from the indexed chain: settled mints appear as
/// holders with their investor, country and share, at the block asked for;
/// the history shows the mints; an investor's positions sum their wallets;
/// watched contracts are registered, listed and removed.
#[tokio::test]
async fn the_cap_table_is_read_from_the_indexed_chain() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, alice) = s.create_org("Cap Table Capital");
    let (status, token) = api
        .post(
            &alice,
            "/v1/tokens",
            json!({ "name": "Cap Fund", "symbol": "CAP", "decimals": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let holders_path = format!("/v1/tokens/{token_id}/holders");
    let (status, _, problem) = api
        .call(&alice, Method::GET, &holders_path, None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not deployed yet: {problem}");
    let ana = investor(&api, &alice, "Ana Lima", &wallet(1), true).await;
    let ben = investor(&api, &alice, "Ben Ode", &wallet(2), true).await;
    registered(&api, &alice, &ana).await;
    registered(&api, &alice, &ben).await;
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let mints = format!("/v1/tokens/{token_id}/mints");
    let mut settled_at = Vec::new();
    for (to, amount, key) in [(&ana, "300", "cap-1"), (&ben, "100", "cap-2")] {
        let (status, _, op) = api
            .op(
                &alice,
                &mints,
                key,
                Some(json!({ "to": to, "amount": amount })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{op}");
        let op = api
            .until(&alice, op["id"].as_str().unwrap(), "settled")
            .await;
        settled_at.push(op["block_number"].as_u64().unwrap());
    }

    let mut cap = Value::Null;
    let indexed = eventually(Duration::from_secs(90), async || {
        cap = api.get(&alice, &holders_path).await;
        cap["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    assert!(indexed, "holders never indexed: {cap}");
    let items = cap["items"].as_array().unwrap();
    let of = |investor: &str| {
        items
            .iter()
            .find(|h| h["investor_id"] == investor)
            .unwrap_or_else(|| panic!("{investor} missing: {cap}"))
    };
    assert_eq!(of(&ana)["balance"], "300");
    assert_eq!(of(&ana)["percentage"], 75.0);
    assert_eq!(of(&ana)["country"], "FR");
    assert_eq!(of(&ana)["wallet"], wallet(1));
    assert_eq!(of(&ben)["percentage"], 25.0);
    assert!(cap["block_number"].as_u64().unwrap() >= settled_at[1]);
    assert!(["latest", "safe", "finalized"].contains(&cap["finality"].as_str().unwrap()));

    // Pages of one, then the second page.
    let first = api.get(&alice, &format!("{holders_path}?limit=1")).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = api
        .get(&alice, &format!("{holders_path}?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_ne!(first["items"][0]["wallet"], second["items"][0]["wallet"]);
    assert!(second["next_cursor"].is_null());
    // At a past block: before the second mint, only Ana, with all of it.
    let past = api
        .get(
            &alice,
            &format!("{holders_path}?at_block={}", settled_at[1] - 1),
        )
        .await;
    assert_eq!(past["items"].as_array().unwrap().len(), 1, "{past}");
    assert_eq!(past["items"][0]["percentage"], 100.0);
    assert_eq!(past["block_number"], settled_at[1] - 1);
    // A cursor of another list is refused and named; a block the index has
    // not reached is a conflict (ask again later).
    let (status, _, problem) = api
        .call(
            &alice,
            Method::GET,
            &format!("{holders_path}?cursor=zzz"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["cursor"]);
    let (status, _, problem) = api
        .call(
            &alice,
            Method::GET,
            &format!("{holders_path}?at_block=99999999999"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let history = api
        .get(&alice, &format!("/v1/tokens/{token_id}/transfers"))
        .await;
    let moves = history["items"].as_array().unwrap();
    assert_eq!(moves.len(), 2, "{history}");
    assert_eq!(moves[0]["amounts"], json!(["100"]), "newest first");
    assert_eq!(moves[1]["from"], format!("0x{}", "0".repeat(40)));
    let positions = api
        .get(&alice, &format!("/v1/investors/{ana}/positions"))
        .await;
    assert_eq!(
        positions["items"].as_array().unwrap().len(),
        1,
        "{positions}"
    );
    assert_eq!(positions["items"][0]["token"], token_id.as_str());
    assert_eq!(positions["items"][0]["balance"], "300");

    // Reconciled with the chain: through the API (admins and auditors)
    // and the CLI, which on the embedded devnet asks the running server.
    let verify = format!("/v1/tokens/{token_id}/verify");
    let (status, _, report) = api.call(&alice, Method::POST, &verify, None, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["agrees"], true, "{report}");
    assert!(report["checked"].as_u64().unwrap() >= 2, "{report}");
    let operator = s.create_key(&_org, "operator");
    let (status, _, _) = api.call(&operator, Method::POST, &verify, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let out = common::base_command(&s.env)
        .args([
            "indexer",
            "verify",
            "--token",
            &token_id,
            "--server",
            &s.url(""),
        ])
        .arg("--data-dir")
        .arg(s.data_dir.path())
        .env("RWA_API_KEY", &alice)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["differences"], 0);

    // Settled operations are reconciled with the index: none missing now;
    // with the first mint's log taken out of the index (an indexer gap),
    // an alarm: `checks.indexer` degraded and the operation's event.
    let indexer = s.detailed_health().await["checks"]["indexer"].clone();
    assert_eq!(indexer["unreconciled_operations"], 0, "{indexer}");
    forget_events_of_block(&s.database_url, settled_at[0]).await;
    let mut health = Value::Null;
    let alarmed = eventually(Duration::from_secs(60), async || {
        health = s.detailed_health().await["checks"]["indexer"].clone();
        health["unreconciled_operations"] == 1
    })
    .await;
    assert!(alarmed, "no alarm: {health}");
    assert_eq!(health["status"], "degraded");
    let events = api.get(&alice, "/v1/events?type=operation.unindexed").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");

    // Watched contracts: validated, registered once, listed, removed.
    let (status, problem) = api
        .post(
            &alice,
            "/v1/watched-contracts",
            json!({ "address": "0x12", "standard": "erc777", "start_block": -1 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem_fields(&problem),
        ["address", "standard", "start_block"]
    );
    let body =
        json!({ "address": wallet(9), "standard": "erc721", "start_block": 0, "name": "Art" });
    let (status, watched) = api
        .post(&alice, "/v1/watched-contracts", body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{watched}");
    let (status, _) = api.post(&alice, "/v1/watched-contracts", body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let path = format!("/v1/watched-contracts/{}", watched["id"].as_str().unwrap());
    assert_eq!(
        api.get(&alice, "/v1/watched-contracts").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(api.get(&alice, &path).await["name"], "Art");
    assert_eq!(
        api.get(&alice, &format!("{path}/holders")).await["items"],
        json!([])
    );
    assert_eq!(
        api.get(&alice, &format!("{path}/transfers")).await["items"],
        json!([])
    );
    let (status, _, _) = api.call(&alice, Method::DELETE, &path, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = api.call(&alice, Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
