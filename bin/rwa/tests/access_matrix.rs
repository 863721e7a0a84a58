//! The role matrix and the cross-tenant matrix, both built from the served
//! OpenAPI description, so a route added later joins them without anyone
//! remembering to:
//!
//! - every `/v1` operation, called by each role with an API key and with a
//!   user's access token, answers 403 exactly when the role is not among
//!   the operation's security scopes (and never 401 for a valid credential);
//! - every `/v1` operation with an id in its path, called by organization A
//!   with organization B's ids (and a valid body, so validation cannot
//!   answer first), answers 404; a body naming B's token is refused exactly
//!   as one naming no token at all, and lists filtered by B's ids come back
//!   empty.
//!
//! One server serves both, on the backend `RWA_TEST_DATABASE` names.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::api::{Api, investor, wallet};
use common::{Server, eventually};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const ROLES: [&str; 4] = ["admin", "operator", "compliance", "auditor"];

/// Every `/v1` operation of the spec: (method, path template, its scopes
/// (`None`: no bearer credential), whether it takes a body).
async fn operations(s: &Server) -> Vec<(Method, String, Option<Vec<String>>, bool)> {
    common::spec_operations(s)
        .await
        .into_iter()
        .filter(|op| op.path.starts_with("/v1/"))
        .map(|op| (op.method, op.path, op.roles, op.has_body))
        .collect()
}

/// `template` with each `{…}` replaced by what `fill` answers for it.
fn fill(template: &str, mut value: impl FnMut(&str, &str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[..start], &rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn call(
    client: &Client,
    s: &Server,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = client
        .request(method, s.url(path))
        .bearer_auth(bearer)
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string());
    if let Some(body) = body {
        req = req.json(body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Organization B, with one of everything a path can name.
struct OrgB {
    ids: BTreeMap<&'static str, String>,
    wallet: String,
    investors: (String, String),
}

async fn organization_b(api: &Api<'_>) -> OrgB {
    let s = api.s;
    let (_, key) = s.create_org("Other Fund Admin");
    let (status, token) = api
        .post(
            &key,
            "/v1/tokens",
            json!({ "name": "Other Fund", "symbol": "OTH", "decimals": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token = token["id"].as_str().unwrap().to_owned();
    let ana = investor(api, &key, "Ana Other", &wallet(41), true).await;
    let ben = investor(api, &key, "Ben Other", &wallet(42), true).await;
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&key, &format!("/v1/tokens/{token}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let (status, _, pause) = api
        .op(&key, &format!("/v1/tokens/{token}/pause"), "b-pause", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pause}");
    let (status, _, transfer) = api
        .op(
            &key,
            "/v1/transfers",
            "b-transfer",
            Some(json!({ "token_id": token, "from": ana, "to": ben, "amount": "1" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{transfer}");
    let jobs = api.get(&key, "/v1/jobs").await;
    let (status, watched) = api
        .post(
            &key,
            "/v1/watched-contracts",
            json!({ "address": wallet(43), "standard": "erc20", "start_block": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{watched}");
    let (status, user) = api
        .post(&key, "/v1/users", json!({ "email": "zoe@other.example", "password": "quiet meadow folds eleven maps", "role": "operator" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, other_key) = api
        .post(&key, "/v1/api-keys", json!({ "role": "auditor" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other_key}");
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    // A webhook to an address deliveries refuse: its own `webhook.created`
    // gives it a failed delivery at once.
    let (status, webhook) = api
        .post(
            &key,
            "/v1/webhooks",
            json!({ "url": "http://127.0.0.1:9/hooks", "events": ["*"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let webhook = id(&webhook);
    let mut delivery = Value::Null;
    let delivered = eventually(Duration::from_secs(30), async || {
        delivery = api
            .get(&key, &format!("/v1/webhooks/{webhook}/deliveries"))
            .await["items"][0]
            .clone();
        !delivery.is_null()
    })
    .await;
    assert!(delivered, "organization B's webhook has a delivery");
    let ids = BTreeMap::from([
        ("/v1/webhooks/", webhook.clone()),
        // What follows the webhook's id: one of B's deliveries.
        ("/deliveries/", id(&delivery)),
        ("/v1/api-keys/", id(&other_key)),
        ("/v1/investors/", ana.clone()),
        ("/v1/jobs/", id(&jobs["items"][0])),
        ("/v1/operations/", id(&pause)),
        ("/v1/tokens/", token),
        ("/v1/transfers/", id(&transfer)),
        ("/v1/users/", id(&user)),
        ("/v1/watched-contracts/", id(&watched)),
    ]);
    OrgB {
        ids,
        wallet: wallet(41),
        investors: (ana, ben),
    }
}

/// A body that passes validation for each operation with a path id and a
/// body, naming B's investors where it names any.
fn valid_body(method: &Method, template: &str, b: &OrgB) -> Value {
    let (ana, ben) = (&b.investors.0, &b.investors.1);
    match (method.as_str(), template) {
        ("PATCH", "/v1/investors/{id}") => json!({ "country": "DE" }),
        ("POST", "/v1/investors/{id}/kyc") => {
            json!({ "decision": "approved", "expires_at": "2030-01-01T00:00:00Z", "reason": "documents checked" })
        }
        ("POST", "/v1/investors/{id}/screening/clear") => json!({ "reason": "false positive" }),
        ("POST", "/v1/investors/{id}/wallets") => json!({ "address": wallet(44) }),
        ("POST", "/v1/investors/{id}/wallets/{address}/recover") => {
            json!({ "new_address": wallet(45) })
        }
        ("POST", "/v1/operations/{id}/reject") => json!({ "reason": "not today" }),
        ("PATCH", "/v1/tokens/{id}") => json!({ "four_eyes_mint_threshold": "1000" }),
        ("POST", "/v1/tokens/{id}/mints") => json!({ "to": ana, "amount": "5" }),
        ("POST", "/v1/tokens/{id}/burns") => json!({ "from": ana, "amount": "5" }),
        ("POST", "/v1/tokens/{id}/freezes" | "/v1/tokens/{id}/unfreezes") => {
            json!({ "wallet": b.wallet })
        }
        ("POST", "/v1/tokens/{id}/forced-transfers") => {
            json!({ "from": ana, "to": ben, "amount": "1", "reason": "court order" })
        }
        ("PUT", "/v1/tokens/{id}/compliance") => json!({ "max_holders": 10 }),
        ("POST", "/v1/transfers/{id}/review") => {
            json!({ "decision": "approved", "reason": "reviewed" })
        }
        ("PATCH", "/v1/users/{id}") => json!({ "role": "auditor" }),
        ("PATCH", "/v1/webhooks/{id}") => json!({ "enabled": false }),
        (
            "POST",
            "/v1/operations/{id}/approve" | "/v1/tokens/{id}/pause" | "/v1/tokens/{id}/unpause",
        ) => json!({}),
        _ => panic!(
            "{method} {template} is new: give the cross-tenant matrix a valid body for it (ids of organization B)"
        ),
    }
}

#[tokio::test]
async fn every_route_checks_roles_and_hides_other_organizations() {
    let s = Server::start(&[]).await;
    let client = Client::new();
    let api = Api {
        s: &s,
        client: client.clone(),
    };
    let ops = operations(&s).await;
    assert!(ops.len() > 60, "the spec lists the routes");

    // Organization A: a key and a user of each role.
    let (org, admin) = s.create_org("Matrix Capital");
    let mut credentials: Vec<(&str, &str, String)> = Vec::new();
    for (n, role) in ROLES.into_iter().enumerate() {
        credentials.push((role, "api key", s.create_key(&org, role)));
        let email = format!("{role}.{n}@matrix.example");
        let password = format!("{role} walks a crimson ferry {n} times nightly");
        let (status, user) = api
            .post(
                &admin,
                "/v1/users",
                json!({ "email": email, "password": password, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let r = client
            .post(s.url("/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let tokens: Value = r.json().await.unwrap();
        credentials.push((
            role,
            "access token",
            tokens["access_token"].as_str().unwrap().to_owned(),
        ));
    }

    // The role matrix: random ids, empty bodies; 403 exactly outside the scopes.
    let mut checked = 0;
    for (method, template, scopes, has_body) in &ops {
        let Some(scopes) = scopes else {
            assert!(
                template.starts_with("/v1/auth/"),
                "{method} {template} takes no credential"
            );
            continue;
        };
        assert!(
            !scopes.is_empty() && scopes.iter().all(|r| ROLES.contains(&r.as_str())),
            "{template}: {scopes:?}"
        );
        assert!(
            scopes.contains(&"admin".to_owned()),
            "admins may do everything: {method} {template}"
        );
        let path = fill(template, |_, name| match name {
            "address" => wallet(99),
            _ => uuid::Uuid::now_v7().to_string(),
        });
        for (role, kind, bearer) in &credentials {
            let body = has_body.then(|| json!({}));
            let (status, answer) =
                call(&client, &s, bearer, method.clone(), &path, body.as_ref()).await;
            let allowed = scopes.iter().any(|r| r == role);
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} ({kind}) may {method} {template}, got {status}: {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} ({kind}) may not {method} {template}: {answer}"
                );
                assert_eq!(answer["type"], "/problems/forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 8 * 55, "{checked} calls");

    // The cross-tenant matrix: A's admin with B's ids.
    let b = organization_b(&api).await;
    let mut crossed = 0;
    for (method, template, scopes, has_body) in &ops {
        if scopes.is_none() || !template.contains('{') {
            continue;
        }
        let path = fill(template, |before, name| {
            match name {
            "address" => b.wallet.clone(),
            _ => b
                .ids
                .iter()
                .find(|(prefix, _)| before.starts_with(**prefix) && before[prefix.len()..].is_empty())
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| panic!("{template} is new: give the cross-tenant matrix an id of organization B for it")),
        }
        });
        let body = has_body.then(|| valid_body(method, template, &b));
        let (status, answer) =
            call(&client, &s, &admin, method.clone(), &path, body.as_ref()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} from organization A: {answer}"
        );
        assert_eq!(answer["type"], "/problems/not-found");
        crossed += 1;
    }
    assert!(crossed >= 35, "{crossed} routes with ids");

    // B's ids in bodies and filters.
    let (ana, ben) = &b.investors;
    let token = &b.ids["/v1/tokens/"];
    // An id in a body is a field: B's token is refused exactly as a token
    // that does not exist (422 naming it), so nothing tells it exists.
    for path in ["/v1/transfers", "/v1/transfers/check"] {
        let body = json!({ "token_id": token, "from": ana, "to": ben, "amount": "1" });
        let (status, answer) = call(&client, &s, &admin, Method::POST, path, Some(&body)).await;
        let random = uuid::Uuid::now_v7().to_string();
        let body = json!({ "token_id": random, "from": ana, "to": ben, "amount": "1" });
        let (random_status, random_answer) =
            call(&client, &s, &admin, Method::POST, path, Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(
            (status, &answer["errors"]),
            (random_status, &random_answer["errors"]),
            "{path}"
        );
        assert_eq!(common::problem_fields(&answer), ["token_id"]);
    }
    for path in [
        format!("/v1/transfers?token_id={token}"),
        format!("/v1/transfers?investor_id={ana}"),
    ] {
        let (status, list) = call(&client, &s, &admin, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["items"], json!([]), "{path}");
    }
    let audit = api
        .get(
            &admin,
            &format!("/v1/audit?target=user:{}", b.ids["/v1/users/"]),
        )
        .await;
    assert_eq!(audit["items"], json!([]));
}
