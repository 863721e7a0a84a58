//! Users and sessions through the running service, on the backend
//! `RWA_TEST_DATABASE` names: users created under the password policy,
//! login, refresh rotation, a replayed refresh token revoking its whole
//! session, logout, a disabled user and a changed role taking effect at the
//! next request (access tokens and the user's own API keys included),
//! four-eyes counting a user's key as the user, an expired access token,
//! signing-key rotation with the old key verifying until its tokens expire,
//! the fingerprint modes, and the audit trail of it all with request ids and
//! addresses. Every test ends by scanning the server's captured log for every
//! password, token, key and e-mail address it used.

mod common;

use std::time::Duration;

use common::api::Api;
use common::{Server, eventually, problem_fields};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// What a test must never find in a log line.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, v: impl Into<String>) -> String {
        let v = v.into();
        self.0.push(v.clone());
        v
    }

    /// Every log line of the server so far is searched for every secret;
    /// the log must hold the request lines, or the scan proves nothing.
    fn assert_absent_from(&self, s: &Server) {
        let lines = s.log_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("request") && l.contains("/v1/auth/login")),
            "the log holds the request lines"
        );
        for secret in &self.0 {
            for line in &lines {
                assert!(
                    !line.contains(secret.as_str()),
                    "a secret reached the log: {line}"
                );
            }
        }
    }
}

async fn auth(client: &Client, s: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let r = client.post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST /v1/auth/{action}` (refresh, logout) with a refresh token.
async fn with_refresh(
    client: &Client,
    s: &Server,
    action: &str,
    token: &str,
) -> (StatusCode, Value) {
    let body = json!({ "refresh_token": token });
    auth(client, s, &format!("/v1/auth/{action}"), body).await
}

async fn login(client: &Client, s: &Server, email: &str, password: &str) -> (StatusCode, Value) {
    auth(
        client,
        s,
        "/v1/auth/login",
        json!({ "email": email, "password": password }),
    )
    .await
}

/// Logs in and answers (access token, refresh token), all kept as secrets.
async fn session(
    client: &Client,
    s: &Server,
    secrets: &mut Secrets,
    email: &str,
    password: &str,
) -> (String, String) {
    let (status, tokens) = login(client, s, email, password).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    (
        secrets.add(tokens["access_token"].as_str().unwrap()),
        secrets.add(tokens["refresh_token"].as_str().unwrap()),
    )
}

async fn create_user(
    api: &Api<'_>,
    admin: &str,
    email: &str,
    password: &str,
    role: &str,
) -> String {
    let (status, user) = api
        .post(
            admin,
            "/v1/users",
            json!({ "email": email, "password": password, "role": role }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert!(user.get("password").is_none() && !user.to_string().contains(password));
    user["id"].as_str().unwrap().to_owned()
}

/// A new organization and one user of `role` in it; answers the admin key,
/// the user's e-mail address and password (all three kept as secrets) and
/// its id.
async fn org_with_user(
    api: &Api<'_>,
    secrets: &mut Secrets,
    org: &str,
    email: &str,
    password: &str,
    role: &str,
) -> (String, String, String, String) {
    let (_, admin_key) = api.s.create_org(org);
    secrets.add(&admin_key);
    let (email, password) = (secrets.add(email), secrets.add(password));
    let id = create_user(api, &admin_key, &email, &password, role).await;
    (admin_key, email, password, id)
}

fn kid(jwt: &str) -> String {
    use base64::Engine as _;
    let header = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

async fn code(api: &Api<'_>, bearer: &str, path: &str) -> StatusCode {
    status_of(api, bearer, Method::GET, path).await.0
}

async fn patch(api: &Api<'_>, bearer: &str, path: &str, body: Value) -> StatusCode {
    api.call(bearer, Method::PATCH, path, None, Some(body))
        .await
        .0
}

async fn status_of(api: &Api<'_>, bearer: &str, method: Method, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = api.call(bearer, method, path, None, None).await;
    (status, body)
}

#[tokio::test]
async fn users_log_in_rotate_refresh_tokens_and_lose_access_at_once() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let client = Client::new();
    let mut secrets = Secrets::default();
    let (org, admin_key) = s.create_org("Meridian Transfer Agency");
    secrets.add(&admin_key);

    // The policy names each field to fix; nothing is echoed.
    let (status, problem) = api
        .post(
            &admin_key,
            "/v1/users",
            json!({ "email": "not-an-address", "password": "password1234", "role": "root" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["email", "role", "password"]);
    assert!(problem.to_string().contains("too weak"), "{problem}");
    let (status, problem) = api
        .post(
            &admin_key,
            "/v1/users",
            json!({ "email": "a@b.example", "password": "Sh0rt!pw", "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem.to_string().contains("at least 12"), "{problem}");

    let alice_email = secrets.add("alice.moreau@meridian.example");
    let alice_pw = secrets.add("violet tram past harbor 42 at dawn");
    let alice = create_user(&api, &admin_key, &alice_email, &alice_pw, "admin").await;
    let bob_email = secrets.add("bob.keller@meridian.example");
    let bob_pw = secrets.add("granite owl sketches nine kites");
    let bob = create_user(&api, &admin_key, &bob_email, &bob_pw, "operator").await;
    let erin_email = secrets.add("erin.sato@meridian.example");
    let erin_pw = secrets.add("copper lagoon hums under 7 moons");
    create_user(&api, &admin_key, &erin_email, &erin_pw, "admin").await;
    let carol_email = secrets.add("carol.diaz@meridian.example");
    let carol_pw = secrets.add("seventeen paper cranes drift east");
    create_user(&api, &admin_key, &carol_email, &carol_pw, "auditor").await;
    let (status, problem) = api
        .post(&admin_key, "/v1/users", json!({ "email": "Alice.Moreau@Meridian.example", "password": "another fine long phrase 9", "role": "auditor" }))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the address is the login name: {problem}"
    );

    // Wrong password, unknown address: the same answer.
    let (status, wrong) = login(
        &client,
        &s,
        &alice_email,
        "violet tram past harbor 43 at dawn",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, unknown) = login(&client, &s, "nobody@meridian.example", &alice_pw).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["type"], "/problems/unauthorized");

    // Login, then rotation: each refresh token works once.
    let (access1, refresh1) = session(&client, &s, &mut secrets, &alice_email, &alice_pw).await;
    let me = api.get(&access1, "/v1/org").await;
    assert_eq!(me["id"], org.as_str());
    let (status, next) = with_refresh(&client, &s, "refresh", &refresh1).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let access2 = secrets.add(next["access_token"].as_str().unwrap());
    let refresh2 = secrets.add(next["refresh_token"].as_str().unwrap());
    assert_ne!(refresh1, refresh2);
    api.get(&access2, "/v1/org").await;
    api.get(&access1, "/v1/org").await; // the same session, still open

    // The first refresh token again: a replay, the whole session ends.
    let (status, replay) = with_refresh(&client, &s, "refresh", &refresh1).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        replay["detail"].as_str().unwrap().contains("already used"),
        "{replay}"
    );
    let (status, _) = with_refresh(&client, &s, "refresh", &refresh2).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family is revoked");
    for access in [&access1, &access2] {
        let (status, problem) = status_of(&api, access, Method::GET, "/v1/org").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("session has ended"),
            "{problem}"
        );
    }

    // Logout ends a session; twice is fine; an unknown token is not.
    let (access3, refresh3) = session(&client, &s, &mut secrets, &alice_email, &alice_pw).await;
    let (status, _) = with_refresh(&client, &s, "logout", &refresh3).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = with_refresh(&client, &s, "logout", &refresh3).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        code(&api, &access3, "/v1/org").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = with_refresh(&client, &s, "refresh", &refresh3).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = with_refresh(&client, &s, "logout", "rwr_unknown").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A key Alice creates acts as Alice: four-eyes sees one person.
    let (alice_access, _) = session(&client, &s, &mut secrets, &alice_email, &alice_pw).await;
    let (status, key) = api
        .post(
            &alice_access,
            "/v1/api-keys",
            json!({ "role": "admin", "label": "alice laptop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["user_id"], alice.as_str());
    let alice_key = secrets.add(key["api_key"].as_str().unwrap());
    let (status, token) = api
        .post(
            &alice_key,
            "/v1/tokens",
            json!({ "name": "Meridian Fund", "symbol": "MRD", "decimals": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let deployed = eventually(Duration::from_secs(90), async || {
        api.get(&alice_key, &format!("/v1/tokens/{token_id}")).await["status"] == "deployed"
    })
    .await;
    assert!(deployed, "token never deployed");
    let (status, _, pause) = api
        .op(
            &alice_access,
            &format!("/v1/tokens/{token_id}/pause"),
            "pause-by-alice",
            None,
        )
        .await;
    assert_eq!(
        (status, &pause["status"]),
        (StatusCode::ACCEPTED, &json!("awaiting_approval")),
        "{pause}"
    );
    assert_eq!(pause["requested_by"], format!("user:{alice}"));
    let approve = format!("/v1/operations/{}/approve", pause["id"].as_str().unwrap());
    let (status, problem) = api.post(&alice_key, &approve, json!({})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "Alice's key is Alice: {problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("four-eyes"),
        "{problem}"
    );
    let (erin_access, _) = session(&client, &s, &mut secrets, &erin_email, &erin_pw).await;
    let (status, approved) = api.post(&erin_access, &approve, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{approved}");

    // A changed role ends Bob's sessions at once; his next login acts with it.
    let (bob_access, bob_refresh) = session(&client, &s, &mut secrets, &bob_email, &bob_pw).await;
    assert_eq!(code(&api, &bob_access, "/v1/jobs").await, StatusCode::OK);
    let (status, _, changed) = api
        .call(
            &alice_access,
            Method::PATCH,
            &format!("/v1/users/{bob}"),
            None,
            Some(json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!(
        (status, &changed["role"]),
        (StatusCode::OK, &json!("auditor")),
        "{changed}"
    );
    assert_eq!(
        code(&api, &bob_access, "/v1/jobs").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = with_refresh(&client, &s, "refresh", &bob_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (bob_access, _) = session(&client, &s, &mut secrets, &bob_email, &bob_pw).await;
    assert_eq!(
        code(&api, &bob_access, "/v1/jobs").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(code(&api, &bob_access, "/v1/audit").await, StatusCode::OK);

    // Nobody changes their own user.
    let (status, _, _) = api
        .call(
            &alice_access,
            Method::PATCH,
            &format!("/v1/users/{alice}"),
            None,
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Disabling Alice stops her access token, her key and her logins at
    // once; enabling her again brings back her key (not her sessions).
    let (erin_user, alice_path) = (erin_access.clone(), format!("/v1/users/{alice}"));
    assert_eq!(
        patch(&api, &erin_user, &alice_path, json!({ "disabled": true })).await,
        StatusCode::OK
    );
    assert_eq!(
        code(&api, &alice_access, "/v1/org").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, problem) = status_of(&api, &alice_key, Method::GET, "/v1/org").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("disabled or deleted"),
        "{problem}"
    );
    assert_eq!(
        login(&client, &s, &alice_email, &alice_pw).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        patch(&api, &erin_user, &alice_path, json!({ "disabled": false })).await,
        StatusCode::OK
    );
    assert_eq!(code(&api, &alice_key, "/v1/org").await, StatusCode::OK);
    assert_eq!(
        code(&api, &alice_access, "/v1/org").await,
        StatusCode::UNAUTHORIZED
    );
    // Demoted to auditor, her admin key may do only what an auditor may.
    assert_eq!(
        patch(&api, &erin_user, &alice_path, json!({ "role": "auditor" })).await,
        StatusCode::OK
    );
    assert_eq!(
        code(&api, &alice_key, "/v1/jobs").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(code(&api, &alice_key, "/v1/audit").await, StatusCode::OK);
    // Deleted, she is gone from the list and nothing of hers works.
    let (status, _, _) = api
        .call(&erin_user, Method::DELETE, &alice_path, None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        code(&api, &alice_key, "/v1/org").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        code(&api, &erin_user, &alice_path).await,
        StatusCode::NOT_FOUND
    );
    let users = api.get(&erin_user, "/v1/users").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 3);

    // The audit trail: security events with their request id and address.
    let (carol_access, _) = session(&client, &s, &mut secrets, &carol_email, &carol_pw).await;
    let r = client
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&carol_access)
        .header("x-request-id", "audit-probe-1")
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let denied = api
        .get(&carol_access, "/v1/audit?request_id=audit-probe-1")
        .await;
    let denied = &denied["items"][0];
    assert_eq!(denied["action"], "auth.role_denied");
    assert_eq!(denied["target"], "route:POST /v1/api-keys");
    assert_eq!(denied["ip"], "127.0.0.1");
    assert!(denied["actor"].as_str().unwrap().starts_with("user:"));
    let mut actions = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(
                &admin_key,
                &format!("/v1/audit?action=auth.*&limit=200&cursor={cursor}"),
            )
            .await;
        for e in page["items"].as_array().unwrap() {
            assert!(
                e["request_id"].as_str().is_some_and(|r| !r.is_empty()),
                "{e}"
            );
            assert_eq!(e["ip"], "127.0.0.1", "{e}");
            actions.push(e["action"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    for wanted in [
        "auth.login_succeeded",
        "auth.login_failed",
        "auth.refresh_replayed",
        "auth.logout",
        "auth.role_denied",
    ] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} in {actions:?}"
        );
    }
    let users_audit = api.get(&admin_key, "/v1/audit?action=user.*").await;
    let user_actions: Vec<&str> = users_audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        user_actions.contains(&"user.created")
            && user_actions.contains(&"user.updated")
            && user_actions.contains(&"user.deleted")
    );
    let (status, problem) =
        status_of(&api, &admin_key, Method::GET, "/v1/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), ["since"]);

    let verify = s.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    secrets.assert_absent_from(&s);
}

#[tokio::test]
async fn access_tokens_expire_and_survive_a_key_rotation_until_they_do() {
    let s = Server::start(&[("RWA_AUTH_ACCESS_TTL_SECS", "2")]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let client = Client::new();
    let mut secrets = Secrets::default();
    let (_, email, password, _) = org_with_user(
        &api,
        &mut secrets,
        "Northwind Fund Services",
        "dana.holt@northwind.example",
        "marble heron counts ninety tides",
        "operator",
    )
    .await;

    let (before, refresh) = session(&client, &s, &mut secrets, &email, &password).await;
    let rotated = s.cli(&["auth", "rotate-key"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_kid: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let (status, next) = with_refresh(&client, &s, "refresh", &refresh).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let after = secrets.add(next["access_token"].as_str().unwrap());
    assert_ne!(kid(&before), kid(&after));
    assert_eq!(
        kid(&after),
        new_kid["kid"].as_str().unwrap(),
        "new tokens are signed by the new key"
    );

    // The token signed by the retired key answers "expired" once its two
    // seconds are over (a state reached, however slow the machine), never
    // "invalid" before.
    let mut last = Value::Null;
    let expired = eventually(Duration::from_secs(30), async || {
        let (status, body) = status_of(&api, &before, Method::GET, "/v1/org").await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
        last = body;
        status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(expired);
    assert_eq!(last["type"], "/problems/unauthorized");
    assert!(
        last["detail"].as_str().unwrap().contains("expired"),
        "{last}\n{}",
        s.log_lines().join("\n")
    );
    let forged = format!("{}x", &after[..after.len() - 1]);
    let (status, problem) = status_of(&api, &forged, Method::GET, "/v1/org").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!problem["detail"].as_str().unwrap().contains("expired"));
    secrets.assert_absent_from(&s);
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A client with this user-agent, connecting from this loopback address
/// (127.0.0.1 and 127.0.1.1 are different /24 networks).
fn client_at(agent: &str, from: &str) -> Client {
    Client::builder()
        .user_agent(agent)
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn fingerprint_modes_judge_another_client() {
    let s = Server::start(&[]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let mut secrets = Secrets::default();
    let (admin_key, email, password, _) = org_with_user(
        &api,
        &mut secrets,
        "Harbor Registrars",
        "eli.novak@harbor.example",
        "lucid walrus paints thirty barns",
        "compliance",
    )
    .await;
    let home = client_at(FIREFOX, "127.0.0.1");
    let moved = client_at(FIREFOX, "127.0.1.1");
    let other_browser = client_at(CHROME, "127.0.0.1");
    let set_mode = async |mode: &str| {
        let (status, _, org) = api
            .call(
                &admin_key,
                Method::PATCH,
                "/v1/org",
                None,
                Some(json!({ "session_fingerprint": mode })),
            )
            .await;
        assert_eq!(
            (status, &org["session_fingerprint"]),
            (StatusCode::OK, &json!(mode)),
            "{org}"
        );
    };
    let refresh_from =
        async |client: &Client, token: &str| with_refresh(client, &s, "refresh", token).await;
    let get_from = async |client: &Client, access: &str| {
        client
            .get(s.url("/v1/org"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    };

    // The default is lenient.
    assert_eq!(
        api.get(&admin_key, "/v1/org").await["session_fingerprint"],
        "lenient"
    );
    let (status, problem) = api
        .call(
            &admin_key,
            Method::PATCH,
            "/v1/org",
            None,
            Some(json!({ "session_fingerprint": "loose" })),
        )
        .await
        .into_parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), ["session_fingerprint"]);

    // Lenient: the same browser from another network goes on (recorded);
    // another browser ends the session.
    let (_, refresh) = session(&home, &s, &mut secrets, &email, &password).await;
    let (status, next) = refresh_from(&moved, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let refresh = secrets.add(next["refresh_token"].as_str().unwrap());
    let (status, _) = refresh_from(&other_browser, &refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let moves = api
        .get(&admin_key, "/v1/audit?action=auth.session_moved")
        .await;
    assert_eq!(moves["items"][0]["data"]["to"], "127.0.1.0/24");

    // Strict: another network ends it, on refresh and on an access token.
    set_mode("strict").await;
    let (_, refresh) = session(&home, &s, &mut secrets, &email, &password).await;
    let (status, problem) = refresh_from(&moved, &refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{problem}"
    );
    let (access, refresh) = session(&home, &s, &mut secrets, &email, &password).await;
    assert_eq!(get_from(&home, &access).await, StatusCode::OK);
    assert_eq!(get_from(&moved, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get_from(&home, &access).await,
        StatusCode::UNAUTHORIZED,
        "revoked for everyone"
    );
    assert_eq!(
        refresh_from(&home, &refresh).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mismatches = api
        .get(
            &admin_key,
            "/v1/audit?action=auth.session_fingerprint_mismatch",
        )
        .await;
    assert!(
        mismatches["items"].as_array().unwrap().len() >= 2,
        "{mismatches}"
    );

    // Off: anything goes.
    set_mode("off").await;
    let (access, refresh) = session(&home, &s, &mut secrets, &email, &password).await;
    assert_eq!(get_from(&other_browser, &access).await, StatusCode::OK);
    let (status, next) = refresh_from(&moved, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    secrets.add(next["refresh_token"].as_str().unwrap());
    secrets.add(next["access_token"].as_str().unwrap());
    secrets.assert_absent_from(&s);
}

trait IntoParts {
    fn into_parts(self) -> (StatusCode, Value);
}

impl IntoParts for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn into_parts(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn failed_logins_lock_the_account_longer_each_time() {
    // Locks of 3 s then 6 s after 3 failures, so the test waits for the
    // lock to end as a state rather than for a minute.
    let s = Server::start(&[
        ("RWA_AUTH_LOCKOUT_AFTER", "3"),
        ("RWA_AUTH_LOCKOUT_BASE_SECS", "3"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let client = Client::new();
    let mut secrets = Secrets::default();
    let (admin_key, email, password, id) = org_with_user(
        &api,
        &mut secrets,
        "Lockbox Trustees",
        "ivy.lind@lockbox.example",
        "amber fox climbs twelve ladders",
        "auditor",
    )
    .await;
    let wrong = "amber fox climbs twelve ladder";
    for _ in 0..2 {
        assert_eq!(
            login(&client, &s, &email, wrong).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&client, &s, &email, &password).await.0,
        StatusCode::OK,
        "2 < 3: not locked"
    );
    // The success started the count afresh: three more failures lock it.
    for _ in 0..3 {
        assert_eq!(
            login(&client, &s, &email, wrong).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = client
        .post(s.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry = |r: &reqwest::Response| -> u64 {
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!((1..=3).contains(&retry(&r)), "{:?}", r.headers());
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/rate-limited");
    // Once the lock ends, one more failure locks it twice as long.
    let unlocked = eventually(Duration::from_secs(30), async || {
        login(&client, &s, &email, wrong).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(unlocked);
    let r = client
        .post(s.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        (4..=6).contains(&retry(&r)),
        "twice as long: {:?}",
        r.headers()
    );
    let ok = eventually(Duration::from_secs(30), async || {
        login(&client, &s, &email, &password).await.0 == StatusCode::OK
    })
    .await;
    assert!(ok, "the right password works once the lock ends");

    let locks = api
        .get(
            &admin_key,
            &format!("/v1/audit?action=auth.account_locked&target=user:{id}"),
        )
        .await;
    let locks = locks["items"].as_array().unwrap();
    assert_eq!(locks.len(), 2, "{locks:?}");
    assert_eq!(locks[0]["data"]["locked_for_secs"], 3);
    assert_eq!(locks[1]["data"]["locked_for_secs"], 6);
    assert_eq!(locks[1]["data"]["consecutive_failures"], 4);
    secrets.assert_absent_from(&s);
}
