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
