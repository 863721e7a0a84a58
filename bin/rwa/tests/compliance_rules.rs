//! A token's versioned rule sets through the running service on a real
//! JSON-RPC node (anvil, a block a second), on the backend
//! `RWA_TEST_DATABASE` names: off-chain rules in force at once, on-chain
//! rules only once their four-eyes operation settles (read back from the
//! compliance contract), one on-chain change on its way at a time, the
//! organization's defaults filling what a version leaves unset, and every
//! transfer recording the versions and rules it was checked under; every
//! change an event.

mod common;

use common::api::{Api, failed, token_with_investors};
use common::{Server, problem_fields};
use reqwest::{Client, Method, StatusCode};
use rwa_chain::contracts::{self, Compliance};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_domain::chain::{Address, BlockTag, U256};
use rwa_testkit::Anvil;
use rwa_testkit::anvil::DEV_KEY_0;
use serde_json::{Value, json};

const DE: u16 = 276;
const US: u16 = 840;

async fn blocked(chain: &RpcChain, compliance: Address, country: u16) -> bool {
    let call = Compliance::countryBlockedCall(country);
    contracts::view(chain, compliance, &call, BlockTag::Latest)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_sets_apply_off_chain_at_once_and_on_chain_once_their_operation_settles() {
    let anvil = Anvil::start(&["--block-time", "1"]);
    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let url = anvil.url();
    let s = Server::start(&[
        ("RWA_CHAIN_RPC_URL", url.as_str()),
        ("RWA_SIGNER_KEY", DEV_KEY_0),
        ("RWA_CHAIN_CONFIRMATIONS", "2"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (org, alice) = s.create_org("Rule Capital");
    let bob = s.create_key(&org, "admin");
    let officer = s.create_key(&org, "compliance");
    let operator = s.create_key(&org, "operator");
    let (token_id, people) = token_with_investors(
        &api,
        &alice,
        "RUL",
        json!({ "max_holders": 10 }),
        &[
            (1, "Ana Lima", "FR", true),
            (2, "Ben Roth", "DE", true),
            (3, "Cleo Park", "US", true),
        ],
        Some("1000"),
    )
    .await;
    let [ana, ben, carl] = &people[..] else {
        unreachable!()
    };
    let rules = format!("/v1/tokens/{token_id}/compliance");
    let versions = format!("{rules}/versions");
    let token = api.get(&alice, &format!("/v1/tokens/{token_id}")).await;
    let compliance: Address = token["contracts"]["compliance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let put = async |key: &str, body: Value| {
        let (status, _, v) = api.call(key, Method::PUT, &rules, None, Some(body)).await;
        (status, v)
    };
    let check = async |to: &str| {
        let body = json!({ "token_id": token_id, "from": ana, "to": to, "amount": "10" });
        let (status, c) = api.post(&alice, "/v1/transfers/check", body).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        // Shaped as a transfer's, for `failed`.
        json!({ "compliance": c })
    };

    // Version 1 is the deployed rules, shown before any change.
    let now = api.get(&alice, &rules).await;
    assert_eq!(now["latest"]["version"], 1, "{now}");
    assert_eq!(now["latest"]["onchain_status"], "unchanged");
    assert_eq!(now["latest"]["created_by"], "deployment");
    assert_eq!(now["in_force"]["max_holders"], 10);
    assert_eq!(
        api.get(&alice, &versions).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad rules are refused naming every field; operators may not change
    // rules; the same rules as the latest store nothing.
    let (status, problem) = put(
        &alice,
        json!({
            "country_block": ["XX"],
            "max_investors_per_country": { "US": -1 },
            "velocity": { "daily_count": 0 },
            "structuring": { "threshold": "1000", "lower_percent": 0, "window_seconds": 60, "count": 3 }
        }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem_fields(&problem),
        [
            "country_block[0]",
            "max_investors_per_country.US",
            "velocity.daily_count",
            "structuring.lower_percent"
        ]
    );
    let (status, _) = put(&operator, json!({ "max_holders": 10 })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, same) = put(&alice, json!({ "max_holders": 10 })).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["version"], 1);

    // Off-chain only: in force at once, no operation.
    let v2 = json!({ "max_holders": 10, "max_investors_per_country": { "US": 0 } });
    let (status, two) = put(&officer, v2).await;
    assert_eq!(status, StatusCode::CREATED, "{two}");
    assert_eq!(two["version"], 2);
    assert_eq!(two["onchain_status"], "unchanged");
    assert!(two["operation_id"].is_null());
    let c = check(carl).await;
    assert_eq!(failed(&c), ["max_investors_per_country"], "{c}");
    assert_eq!(c["compliance"]["rule_set_version"], 2);
    assert_eq!(c["compliance"]["onchain_rule_set_version"], 1);

    // On-chain: Germany blocked. Version 3 is stored at once, its on-chain
    // rule waits for its operation, which waits for a second admin.
    let v3 = json!({
        "max_holders": 10, "country_block": ["DE"], "max_investors_per_country": { "US": 0 }
    });
    let (status, three) = put(&alice, v3).await;
    assert_eq!(status, StatusCode::CREATED, "{three}");
    assert_eq!(three["version"], 3);
    assert_eq!(three["onchain_status"], "awaiting_approval");
    let op_id = three["operation_id"].as_str().unwrap().to_owned();
    let op = api.get(&alice, &format!("/v1/operations/{op_id}")).await;
    assert_eq!(op["kind"], "rule_set_change");
    assert_eq!(op["rule_set_version"], 3);
    let c = check(ben).await;
    assert!(failed(&c).is_empty(), "Germany is not blocked yet: {c}");
    assert_eq!(c["compliance"]["rule_set_version"], 3);
    assert_eq!(c["compliance"]["onchain_rule_set_version"], 1);
    assert!(!blocked(&chain, compliance, DE).await);

    // Another on-chain change meanwhile is a conflict; an off-chain one on
    // top of the same on-chain rules rides the same operation.
    let (status, problem) = put(
        &alice,
        json!({ "max_holders": 10, "country_block": ["US"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let v4 =
        json!({ "max_holders": 10, "country_block": ["DE"], "velocity": { "daily_count": 5 } });
    let (status, four) = put(&alice, v4).await;
    assert_eq!(status, StatusCode::CREATED, "{four}");
    assert_eq!(four["operation_id"], op_id.as_str());
    let c = check(carl).await;
    assert!(failed(&c).is_empty(), "version 4 lifted the US cap: {c}");

    // The requester cannot approve; another admin does; once it settles the
    // contract blocks Germany and so do the off-chain rules.
    let approve = format!("/v1/operations/{op_id}/approve");
    let (status, _) = api.post(&alice, &approve, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.post(&bob, &approve, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let settled = api.until(&alice, &op_id, "settled").await;
    assert!(settled["tx_hash"].is_string(), "{settled}");
    assert!(blocked(&chain, compliance, DE).await);
    assert!(!blocked(&chain, compliance, US).await);
    let now = api.get(&alice, &rules).await;
    assert_eq!(now["latest"]["version"], 4, "{now}");
    assert_eq!(now["onchain_rule_set_version"], 3);
    assert_eq!(now["in_force"]["country_block"], json!(["DE"]));
    let c = check(ben).await;
    assert_eq!(failed(&c), ["country_not_blocked"], "{c}");
    assert_eq!(c["compliance"]["rules"]["country_block"], json!(["DE"]));
    let can = contracts::view(
        &chain,
        token["address"].as_str().unwrap().parse().unwrap(),
        &rwa_chain::contracts::SecurityToken::canTransferCall {
            from: common::api::wallet(1).parse().unwrap(),
            to: common::api::wallet(2).parse().unwrap(),
            amount: U256::from(10u64),
        },
        BlockTag::Latest,
    )
    .await
    .unwrap();
    assert!(!can.ok, "the contract refuses the transfer too");
    let token_now = api.get(&alice, &format!("/v1/tokens/{token_id}")).await;
    assert_eq!(token_now["compliance"]["country_block"], json!(["DE"]));

    // A rejected change leaves the contract as it was and frees the way.
    let (status, five) = put(&alice, json!({ "max_holders": 2, "country_block": ["DE"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{five}");
    let five_op = five["operation_id"].as_str().unwrap().to_owned();
    let reject = format!("/v1/operations/{five_op}/reject");
    let (status, body) = api
        .post(&bob, &reject, json!({ "reason": "too tight" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = api.get(&alice, &versions).await;
    let statuses: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["onchain_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["unchanged", "unchanged", "applied", "applied", "rejected"],
        "{all}"
    );
    assert_eq!(api.get(&alice, &rules).await["onchain_rule_set_version"], 3);
    let (status, six) = put(&alice, json!({ "max_holders": 10 })).await;
    assert_eq!(status, StatusCode::CREATED, "{six}");
    assert_eq!(six["onchain_status"], "awaiting_approval");

    // The organization's defaults fill what a version leaves unset: version
    // 6 sets no velocity, so the default's daily count of one applies.
    let (status, _, o) = api
        .call(
            &bob,
            Method::PATCH,
            "/v1/org",
            None,
            Some(json!({ "compliance_defaults": { "velocity": { "daily_count": 0 } } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{o}");
    assert_eq!(
        problem_fields(&o),
        ["compliance_defaults.velocity.daily_count"]
    );
    let (status, _, o) = api
        .call(
            &bob,
            Method::PATCH,
            "/v1/org",
            None,
            Some(json!({ "compliance_defaults": {
                "velocity": { "daily_count": 1 },
                "max_investors_per_country": { "US": 5 }
            } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(
        api.get(&operator, "/v1/org").await["compliance_defaults"],
        o["compliance_defaults"]
    );
    let now = api.get(&alice, &rules).await;
    assert_eq!(now["in_force"]["velocity"]["daily_count"], 1, "{now}");
    assert_eq!(now["in_force"]["max_investors_per_country"]["US"], 5);
    let body = json!({ "token_id": token_id, "from": ana, "to": carl, "amount": "10" });
    let (status, _, t) = api
        .call(
            &alice,
            Method::POST,
            "/v1/transfers",
            Some("rs-1"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t}");
    let t = api
        .transfer_until(&alice, t["id"].as_str().unwrap(), "settled")
        .await;
    assert_eq!(t["compliance"]["rule_set_version"], 6);
    assert_eq!(t["compliance"]["rules"]["velocity"]["daily_count"], 1);
    let c = check(carl).await;
    assert_eq!(failed(&c), ["velocity"], "one a day: {c}");

    // Every change is an event.
    let events = api
        .get(&alice, "/v1/events?type=token.rule_set_changed&limit=50")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 5, "{events}");
    let applied = api
        .get(&alice, "/v1/events?type=token.rule_set_applied")
        .await;
    assert_eq!(applied["items"][0]["data"]["version"], 3, "{applied}");
}
