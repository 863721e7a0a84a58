//! Transfers through the running service on its embedded default (the
//! devnet mining a block a second), on the backend `RWA_TEST_DATABASE`
//! names: a transfer accepted under an idempotency key, checked by the
//! compliance job against balances read from the index, approved (its
//! amount reserved) or rejected with every failing rule named; the dry run
//! agreeing with a real check; cancellation releasing a reservation; lists
//! and events.

mod common;

use std::time::Duration;

use common::api::{Api, investor, investor_in, registered, wallet};
use common::{Server, eventually, problem_fields};
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
async fn transfers_are_checked_reserved_explained_and_cancelled() {
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
    // Accepted, then approved with every rule passed; the replay answers
    // the stored response.
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
    let t1 = checked(&api, &alice, &id1).await;
    assert_eq!(t1["status"], "approved", "{t1}");
    assert!(failed(&t1).is_empty(), "{t1}");
    assert_eq!(t1["compliance"]["rule_set_version"], 1);
    assert_eq!(t1["compliance"]["verdicts"].as_array().unwrap().len(), 17);
    let snapshot = &t1["compliance"]["snapshot"];
    assert_eq!(snapshot["sender_balance"], "300", "{snapshot}");
    assert_eq!(snapshot["sender_reserved"], "0");

    // The approved 100 is reserved: 250 more does not fit in 300.
    let (status, _, t2) = post(
        "t-2",
        json!({ "token_id": token_id, "from": wallet(1), "to": ben, "amount": "250" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t2}");
    let t2 = checked(&api, &alice, t2["id"].as_str().unwrap()).await;
    assert_eq!(t2["status"], "rejected");
    assert_eq!(failed(&t2), ["unfrozen_balance"], "{t2}");
    assert_eq!(t2["compliance"]["snapshot"]["sender_reserved"], "100");

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

    // Cancelling the approved transfer releases its reservation.
    let (status, cancelled) = api
        .post(&alice, &format!("/v1/transfers/{id1}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = api
        .post(&alice, &format!("/v1/transfers/{id1}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (_, _, t5) = post(
        "t-5",
        json!({ "token_id": token_id, "from": ana, "to": ben, "amount": "250" }),
    )
    .await;
    let t5 = checked(&api, &alice, t5["id"].as_str().unwrap()).await;
    assert_eq!(t5["status"], "approved", "{t5}");

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

    // Every decision is an event, in commit order.
    let events = api
        .get(&alice, "/v1/events?type=transfer.*&limit=100")
        .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "transfer.pending_compliance")
            .count(),
        5
    );
    assert_eq!(
        types.iter().filter(|t| **t == "transfer.approved").count(),
        2
    );
    assert_eq!(
        types.iter().filter(|t| **t == "transfer.rejected").count(),
        3
    );
    assert_eq!(
        types.iter().filter(|t| **t == "transfer.cancelled").count(),
        1
    );
}
