//! Onboarding investors through the running service, on the backend
//! `RWA_TEST_DATABASE` names: 201 with `kyc_status: pending`, every bad field
//! named, a reused external reference refused, roles and organizations
//! enforced, search by normalised name or exact reference, wallets checked
//! against their EIP-55 checksum and owned by one investor per organization,
//! personal data stored sealed and absent from the logs.

mod common;

use common::{Server, problem_fields, send};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const NAME: &str = "Ana Quintessa Müller";
const EMAIL: &str = "ana.quintessa@example.com";

async fn stored_column(url: &str, statement: &'static str) -> Vec<String> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(statement)
            .fetch_all(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(statement)
            .fetch_all(&mut c)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn investors_are_onboarded_found_and_kept_private() {
    let s = Server::start(&[]).await;
    let client = Client::new();
    let (org, admin) = s.create_org("Onboarding Fund");
    let auditor = s.create_key(&org, "auditor");
    let (_other_org, other_admin) = s.create_org("Other Fund");
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let body = json!({
        "name": NAME,
        "email": EMAIL,
        "country": "DE",
        "type": "individual",
        "accredited": true,
        "accreditation_expires_at": "2099-01-01T00:00:00Z",
        "external_ref": "crm:4711"
    });
    let (status, created) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/investors",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], NAME);
    assert_eq!(created["email"], EMAIL);
    assert_eq!(created["type"], "individual");
    assert_eq!(created["kyc_status"], "pending");
    assert_eq!(created["accredited"], true);
    let id = created["id"].as_str().unwrap().to_owned();

    // The same external reference again: 409; every bad field named at once.
    let (status, problem) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/investors",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let bad = json!({
        "name": " ",
        "email": "ana@localhost",
        "country": "de",
        "type": "individual",
        "accredited": false,
        "external_ref": "has space"
    });
    let (status, problem) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/investors",
        Some(bad),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem_fields(&problem),
        ["name", "email", "country", "external_ref"],
        "{problem}"
    );
    // An auditor reads but does not onboard.
    let (status, _) = send(
        &client,
        &s,
        &auditor,
        post.clone(),
        "/v1/investors",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let path = format!("/v1/investors/{id}");
    let (status, read) = send(&client, &s, &auditor, get.clone(), &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
    let (status, _) = send(&client, &s, &other_admin, get.clone(), &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organization's investor"
    );

    let names = async |query: &str| {
        let (status, list) = send(
            &client,
            &s,
            &admin,
            get.clone(),
            &format!("/v1/investors?{query}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("q=muller%20QUINTESSA%2C%20ana").await, [NAME]);
    assert_eq!(names("q=crm%3A4711").await, [NAME]);
    assert!(names("q=Ana").await.is_empty());
    assert_eq!(names("country=DE&kyc_status=pending").await, [NAME]);
    assert!(names("country=FR").await.is_empty());
    let (status, problem) = send(
        &client,
        &s,
        &admin,
        get.clone(),
        "/v1/investors?kyc_status=maybe&country=de",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // Wallets: EIP-55 checked, one investor per wallet in the organization.
    let wallet = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let wallets = format!("/v1/investors/{id}/wallets");
    let typo = json!({ "address": "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed" });
    let (status, problem) = send(&client, &s, &admin, post.clone(), &wallets, Some(typo)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "address", "{problem}");
    let (status, with_wallet) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        &wallets,
        Some(json!({ "address": wallet })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{with_wallet}");
    assert_eq!(with_wallet["wallets"][0]["address"], wallet);
    let second = json!({
        "name": "Bo Chen", "email": "bo@example.org", "country": "SG",
        "type": "entity", "accredited": false
    });
    let (_, bo) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/investors",
        Some(second.clone()),
    )
    .await;
    let bo_wallets = format!("/v1/investors/{}/wallets", bo["id"].as_str().unwrap());
    let lower = json!({ "address": wallet.to_lowercase() });
    let (status, problem) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        &bo_wallets,
        Some(lower.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the same wallet in any case: {problem}"
    );
    // Another organization's investor may hold it: wallets are per organization.
    let (_, theirs) = send(
        &client,
        &s,
        &other_admin,
        post.clone(),
        "/v1/investors",
        Some(second),
    )
    .await;
    let their_wallets = format!("/v1/investors/{}/wallets", theirs["id"].as_str().unwrap());
    let (status, _) = send(
        &client,
        &s,
        &other_admin,
        post.clone(),
        &their_wallets,
        Some(lower),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(
        &client,
        &s,
        &other_admin,
        post.clone(),
        &wallets,
        Some(json!({ "address": wallet })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not their investor");
    let (_, read) = send(&client, &s, &auditor, get.clone(), &path, None).await;
    assert_eq!(read["wallets"].as_array().unwrap().len(), 1);
    let listed = send(
        &client,
        &s,
        &admin,
        get.clone(),
        "/v1/investors?country=DE",
        None,
    )
    .await
    .1;
    assert_eq!(listed["items"][0]["wallets"][0]["address"], wallet);
    let delete = reqwest::Method::DELETE;
    let one = format!("{wallets}/{}", wallet.to_lowercase());
    let (status, _) = send(&client, &s, &auditor, delete.clone(), &one, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&client, &s, &admin, delete.clone(), &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&client, &s, &admin, delete.clone(), &one, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already removed");
    let (_, read) = send(&client, &s, &admin, get.clone(), &path, None).await;
    assert!(read["wallets"].as_array().unwrap().is_empty());

    // KYC decisions: compliance (or admin) decides; a later one replaces it.
    let compliance = s.create_key(&org, "compliance");
    let kyc = format!("/v1/investors/{id}/kyc");
    let approve = json!({
        "decision": "approved", "expires_at": "2099-06-30T00:00:00Z",
        "reason": "passport and proof of address checked"
    });
    let operator = s.create_key(&org, "operator");
    let (status, _) = send(
        &client,
        &s,
        &operator,
        post.clone(),
        &kyc,
        Some(approve.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators do not decide KYC");
    let (status, approved) =
        send(&client, &s, &compliance, post.clone(), &kyc, Some(approve)).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["kyc_status"], "approved");
    assert_eq!(approved["kyc_expires_at"], "2099-06-30T00:00:00Z");
    let no_expiry = json!({ "decision": "approved", "reason": "x" });
    let (status, problem) = send(
        &client,
        &s,
        &compliance,
        post.clone(),
        &kyc,
        Some(no_expiry),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let blank = json!({ "decision": "rejected", "reason": "  " });
    let (status, problem) = send(&client, &s, &compliance, post.clone(), &kyc, Some(blank)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "reason", "{problem}");
    let reject = json!({ "decision": "rejected", "reason": "document forged" });
    let (_, rejected) = send(&client, &s, &admin, post.clone(), &kyc, Some(reject)).await;
    assert_eq!(rejected["kyc_status"], "rejected");
    assert_eq!(rejected["kyc_expires_at"], Value::Null);
    let stale = json!({
        "decision": "approved", "expires_at": "2001-01-01T00:00:00Z", "reason": "old evidence"
    });
    let (_, expired) = send(&client, &s, &admin, post.clone(), &kyc, Some(stale)).await;
    assert_eq!(
        expired["kyc_status"], "expired",
        "an approval already past expires at once"
    );
    let (_, trail) = send(
        &client,
        &s,
        &auditor,
        get.clone(),
        "/v1/audit?limit=200",
        None,
    )
    .await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("investor.kyc"))
        .collect();
    assert_eq!(
        actions,
        [
            "investor.kyc_approved",
            "investor.kyc_rejected",
            "investor.kyc_expired"
        ]
    );

    // Stored sealed; the logs have the request lines and none of the data.
    for value in stored_column(&s.database_url, "SELECT name_sealed FROM investors").await {
        assert!(
            value.starts_with("v1.") && !value.contains("Ana"),
            "{value}"
        );
    }
    let logs = s.log_lines().join("\n");
    assert!(logs.contains("/v1/investors"), "request lines are logged");
    for secret in ["Quintessa", "quintessa", EMAIL, "crm:4711"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}

const CALLBACK_SECRET: &str = "provider-shared-secret-0123456789";

/// The header a KYC provider sends, computed here as a provider would
/// (HMAC-SHA256 over `t.body`), independently of the server's code.
fn provider_signature(secret: &str, t: i64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn callback(
    client: &Client,
    s: &Server,
    org: &str,
    signature: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut req = client
        .post(s.url(&format!("/callbacks/kyc/{org}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("Rwa-Signature", sig);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn investors_change_and_providers_decide_by_signed_callback() {
    let s = Server::start(&[("RWA_KYC_CALLBACK_SECRET", CALLBACK_SECRET)]).await;
    let client = Client::new();
    let (org, admin) = s.create_org("Callback Fund");
    let auditor = s.create_key(&org, "auditor");
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let get = reqwest::Method::GET;
    let (status, created) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        "/v1/investors",
        Some(json!({
            "name": "Bea Nakamura", "email": "bea@example.com", "country": "JP",
            "type": "individual", "accredited": false, "external_ref": "kyc:bea"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/investors/{id}");
    let wallet = "0x00000000000000000000000000000000000000b1";
    let (status, _) = send(
        &client,
        &s,
        &admin,
        post.clone(),
        &format!("{path}/wallets"),
        Some(json!({ "address": wallet })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // PATCH: fields present change; bad ones are named; empty is refused.
    let (status, changed) = send(
        &client,
        &s,
        &admin,
        patch.clone(),
        &path,
        Some(json!({ "email": "bea.n@example.com", "accredited": true,
                     "accreditation_expires_at": "2099-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["email"], "bea.n@example.com");
    assert_eq!(changed["name"], "Bea Nakamura");
    assert_eq!(changed["accredited"], true);
    let (status, cleared) = send(
        &client,
        &s,
        &admin,
        patch.clone(),
        &path,
        Some(json!({ "accreditation_expires_at": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["accreditation_expires_at"], Value::Null);
    let (status, problem) = send(
        &client,
        &s,
        &admin,
        patch.clone(),
        &path,
        Some(json!({ "email": "not-an-email", "country": "XX" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["email", "country"]);
    let (status, problem) = send(&client, &s, &admin, patch.clone(), &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["body"]);
    let (status, _) = send(
        &client,
        &s,
        &auditor,
        patch.clone(),
        &path,
        Some(json!({ "country": "FR" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "auditors read only");

    // The provider approves, naming the investor by its external reference.
    let now = chrono::Utc::now().timestamp();
    let approval = serde_json::to_vec(&json!({
        "external_ref": "kyc:bea", "decision": "approved",
        "expires_at": "2099-06-30T00:00:00Z", "reason": "passport and proof of address",
        "provider_ref": "chk_81723"
    }))
    .unwrap();
    let unchanged = async || {
        let (_, i) = send(&client, &s, &admin, get.clone(), &path, None).await;
        assert_eq!(i["kyc_status"], "pending", "nothing changed: {i}");
    };
    let good = provider_signature(CALLBACK_SECRET, now, &approval);
    // Refusals first; none of them changes anything.
    let forged = provider_signature("not-the-secret-at-all-0123456789", now, &approval);
    let (status, problem) = callback(&client, &s, &org, Some(&forged), &approval).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["type"], "/problems/bad-signature");
    let stale = provider_signature(CALLBACK_SECRET, now - 301, &approval);
    let (status, problem) = callback(&client, &s, &org, Some(&stale), &approval).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("timestamp"),
        "{problem}"
    );
    let (status, _) = callback(&client, &s, &org, None, &approval).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut tampered = approval.clone();
    tampered.extend_from_slice(b" ");
    let (status, _) = callback(&client, &s, &org, Some(&good), &tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the body is signed");
    unchanged().await;

    let (status, approved) = callback(&client, &s, &org, Some(&good), &approval).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["kyc_status"], "approved");
    assert_eq!(approved["kyc_expires_at"], "2099-06-30T00:00:00Z");
    // The same request again is a replay: 409, nothing changes (a rejection
    // in between stays).
    let rejection = serde_json::to_vec(&json!({
        "investor_id": id, "decision": "rejected", "reason": "document expired",
        "provider_ref": "chk_81724"
    }))
    .unwrap();
    let reject_sig = provider_signature(CALLBACK_SECRET, now, &rejection);
    let (status, rejected) = callback(&client, &s, &org, Some(&reject_sig), &rejection).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["kyc_status"], "rejected");
    let (status, problem) = callback(&client, &s, &org, Some(&good), &approval).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (_, now_shown) = send(&client, &s, &admin, get.clone(), &path, None).await;
    assert_eq!(
        now_shown["kyc_status"], "rejected",
        "the replay changed nothing"
    );

    // A valid signature over a bad body: the fields are named.
    let bad = br#"{"decision":"approved","reason":"ok","provider_ref":"x"}"#;
    let sig = provider_signature(CALLBACK_SECRET, now, bad);
    let (status, problem) = callback(&client, &s, &org, Some(&sig), bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["investor_id", "expires_at"]);

    // A fresh approval carries the wallet to the registry on the devnet.
    let again = serde_json::to_vec(&json!({
        "investor_id": id, "decision": "approved", "expires_at": "2099-06-30T00:00:00Z",
        "reason": "re-verified", "provider_ref": "chk_81725"
    }))
    .unwrap();
    let sig = provider_signature(CALLBACK_SECRET, now, &again);
    let (status, approved) = callback(&client, &s, &org, Some(&sig), &again).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["registrations"][0]["status"], "pending");
    let registered = common::eventually(std::time::Duration::from_secs(60), async || {
        let (_, i) = send(&client, &s, &admin, get.clone(), &path, None).await;
        i["registrations"][0]["status"] == "registered"
    })
    .await;
    assert!(registered, "the wallet was registered on-chain");

    // The audit trail names the provider and its reference.
    let (_, audit) = send(
        &client,
        &s,
        &admin,
        get.clone(),
        "/v1/audit?limit=200",
        None,
    )
    .await;
    let provider = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["provider_ref"] == "chk_81725")
        .expect("the provider's decision is audited");
    assert_eq!(provider["actor"], "system:kyc-provider");

    // The events, in commit order, filtered by type and paged by `seq`.
    let (status, page) = send(
        &client,
        &s,
        &auditor,
        get.clone(),
        "/v1/events?type=investor.*",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let kinds: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "investor.created");
    assert!(kinds.contains(&"investor.updated"), "{kinds:?}");
    assert!(
        kinds.iter().all(|k| k.starts_with("investor.")),
        "{kinds:?}"
    );
    let (_, rejected) = send(
        &client,
        &s,
        &auditor,
        get.clone(),
        "/v1/events?type=investor.kyc_rejected",
        None,
    )
    .await;
    let only: Vec<&str> = rejected["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["investor.kyc_rejected"]);
    let last = page["next_cursor"].as_str().unwrap();
    assert_eq!(last, seqs.last().unwrap().to_string());
    let (_, rest) = send(
        &client,
        &s,
        &auditor,
        get.clone(),
        &format!("/v1/events?type=investor.*&after={last}"),
        None,
    )
    .await;
    assert_eq!(rest["items"], json!([]));
    assert_eq!(rest["next_cursor"], last, "an empty page keeps the cursor");
    let (status, problem) = send(
        &client,
        &s,
        &auditor,
        get.clone(),
        "/v1/events?type=Investor",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_fields(&problem), ["type"]);
}
