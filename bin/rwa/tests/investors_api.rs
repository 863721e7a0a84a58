//! Onboarding investors through the running service, on the backend
//! `RWA_TEST_DATABASE` names: 201 with `kyc_status: pending`, every bad field
//! named, a reused external reference refused, roles and organizations
//! enforced, search by normalised name or exact reference, personal data
//! stored sealed and absent from the logs.

mod common;

use common::Server;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

async fn send(
    s: &Server,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Client::new().request(method, s.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

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
    let (status, problem) = send(&s, &admin, post.clone(), "/v1/investors", Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["name", "email", "country", "external_ref"],
        "{problem}"
    );
    // An auditor reads but does not onboard.
    let (status, _) = send(&s, &auditor, post.clone(), "/v1/investors", Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let path = format!("/v1/investors/{id}");
    let (status, read) = send(&s, &auditor, get.clone(), &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
    let (status, _) = send(&s, &other_admin, get.clone(), &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organization's investor"
    );

    let names = async |query: &str| {
        let (status, list) = send(
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
        &s,
        &admin,
        get.clone(),
        "/v1/investors?kyc_status=maybe&country=de",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

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
