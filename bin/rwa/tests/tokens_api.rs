//! Issuing tokens through the running service on its embedded default (the
//! devnet mining a block a second): 202 at once, the worker deploys, the token
//! reads `deployed` with its address; bad bodies name their fields; roles and
//! organizations are enforced.

mod common;

use std::time::Duration;

use common::{Server, eventually, problem_fields, send};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn body(symbol: &str) -> Value {
    json!({
        "name": format!("{symbol} Income Fund"),
        "symbol": symbol,
        "decimals": 6,
        "compliance": {
            "country_allow": ["FR", "DE", "LU"],
            "country_block": ["KP"],
            "max_balance_per_investor": "1000000000000",
            "max_holders": 499,
            "lockup_seconds": 31536000
        }
    })
}

#[tokio::test]
async fn an_issued_token_is_accepted_at_once_and_deployed_by_the_worker() {
    let s = Server::start(&[]).await;
    let (_org, admin) = s.create_org("Acme Capital");
    let client = Client::new();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let (status, created) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/tokens",
        Some(body("ACME")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["status"], "pending_deployment");
    assert_eq!(created["address"], Value::Null);
    assert_eq!(
        created["compliance"]["country_allow"],
        json!(["FR", "DE", "LU"])
    );
    assert_eq!(
        created["compliance"]["max_balance_per_investor"],
        "1000000000000"
    );
    let id = created["id"].as_str().unwrap().to_owned();

    let path = format!("/v1/tokens/{id}");
    let mut token = Value::Null;
    let deployed = eventually(Duration::from_secs(60), async || {
        token = send(&client, &s, &admin, get.clone(), &path, None).await.1;
        token["status"] == "deployed"
    })
    .await;
    assert!(
        deployed,
        "token never deployed: {token}\n{}",
        s.log_lines().join("\n")
    );
    let address = token["address"].as_str().unwrap();
    assert!(address.starts_with("0x") && address.len() == 42, "{token}");
    assert_eq!(token["chain_id"], 31337);
    assert_eq!(token["deploy_tx_hash"].as_str().unwrap().len(), 66);
    assert!(token["contracts"]["identity_registry"].is_string());
    assert!(token["contracts"]["compliance"].is_string());

    let (status, list) = send(&client, &s, &admin, get.clone(), "/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], id.as_str());

    // The job that did it is complete and visible to the organization.
    let (_, jobs) = send(
        &client,
        &s,
        &admin,
        get.clone(),
        "/v1/jobs?queue=token-deployment",
        None,
    )
    .await;
    assert_eq!(jobs["items"][0]["state"], "completed", "{jobs}");

    // What happened is on /metrics: the deployment, the job that did it, the
    // queue depths (refreshed by the health report) and every lane signer's
    // gas balance.
    let _ = s.detailed_health().await;
    let text = s.metrics_text().await;
    let samples = common::parse_prometheus(&text);
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .filter(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| *v)
            .sum::<f64>()
    };
    assert_eq!(value("rwa_tokens_deployed_total", None), 1.0, "{text}");
    assert!(
        value("rwa_jobs_total", Some(("queue", "token-deployment"))) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value("rwa_jobs_queue_depth", Some(("queue", "token-deployment"))),
        1.0,
        "one job, completed: {text}"
    );
    let balances: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == "rwa_chain_signer_balance_ether" && l.contains_key("address"))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(
        !balances.is_empty() && balances.iter().all(|b| *b > 0.0),
        "{text}"
    );

    // The ticker is taken while the token lives.
    let (status, problem) = send(&client, &s, &admin, post, "/v1/tokens", Some(body("ACME"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("ACME"),
        "{problem}"
    );
}

#[tokio::test]
async fn bad_requests_name_every_field_and_roles_and_organizations_hold() {
    let s = Server::start(&[]).await;
    let (org, admin) = s.create_org("Acme Capital");
    let auditor = s.create_key(&org, "auditor");
    let (_other, other_admin) = s.create_org("Other Capital");
    let client = Client::new();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let bad = json!({
        "name": "",
        "symbol": "acme",
        "decimals": 24,
        "compliance": {
            "country_allow": ["FR", "ZZ"],
            "country_block": ["fr"],
            "max_balance_per_investor": "12.5",
            "max_holders": 0,
            "lockup_seconds": -5
        }
    });
    let (status, problem) = send(&client, &s, &admin, post.clone(), "/v1/tokens", Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(
        problem_fields(&problem),
        [
            "name",
            "symbol",
            "decimals",
            "compliance.country_allow[1]",
            "compliance.country_block[0]",
            "compliance.max_balance_per_investor",
            "compliance.max_holders",
            "compliance.lockup_seconds"
        ]
    );

    let (status, problem) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/tokens",
        Some(json!({"name": "X", "symbol": "X", "decimals": 0, "supply": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem.to_string().contains("supply"),
        "unknown fields are named: {problem}"
    );

    let (status, _) = send(
        &client,
        &s,
        &auditor,
        post.clone(),
        "/v1/tokens",
        Some(body("ACME")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "auditors read, they do not issue"
    );

    let (status, created) = send(&client, &s, &admin, post, "/v1/tokens", Some(body("ACME"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let path = format!("/v1/tokens/{}", created["id"].as_str().unwrap());
    let (status, _) = send(&client, &s, &auditor, get.clone(), &path, None).await;
    assert_eq!(status, StatusCode::OK, "auditors read tokens");
    let (status, problem) = send(&client, &s, &other_admin, get.clone(), &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organization's token: {problem}"
    );
    let (_, list) = send(&client, &s, &other_admin, get.clone(), "/v1/tokens", None).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = send(&client, &s, &admin, get, "/v1/tokens/not-a-uuid", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an id that cannot exist is not found"
    );
}
