//! Background jobs through the running service: the organization's view over
//! HTTP, the operator's CLI, the workers of `rwa serve`, and `checks.queues`.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use reqwest::{Client, StatusCode};
use rwa_jobs::{NewJob, Queue};
use rwa_store::{Store, StoreOptions};
use serde_json::{Value, json};

async fn enqueue(s: &Server, job: NewJob) -> uuid::Uuid {
    let store = Store::connect(&StoreOptions::new(&s.database_url))
        .await
        .unwrap();
    let id = Queue::new(store.job_db()).enqueue(&job).await.unwrap().id;
    store.close().await;
    id
}

async fn get(client: &Client, s: &Server, key: &str, path: &str) -> (StatusCode, Value) {
    let r = client
        .get(s.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn post(client: &Client, s: &Server, key: &str, path: &str) -> (StatusCode, Value) {
    let r = client
        .post(s.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn operators_list_cancel_and_retry_their_jobs_and_the_service_runs_them() {
    let s = Server::start(&[]).await;
    let client = Client::new();
    let (org, _admin) = s.create_org("Jobs Fund");
    let operator = s.create_key(&org, "operator");
    let (_other_org, other_admin) = s.create_org("Someone Else");

    // Delayed an hour, so the service's workers leave it alone until retried.
    let org_uuid: uuid::Uuid = org.parse().unwrap();
    let id = enqueue(
        &s,
        NewJob::new(
            "reporting",
            "no-such-kind",
            json!({ "report": "cap-table" }),
        )
        .delay(Duration::from_secs(3600))
        .for_org(org_uuid),
    )
    .await;

    let (status, page) = get(&client, &s, &operator, "/v1/jobs?queue=reporting").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], id.to_string());
    assert_eq!(page["items"][0]["state"], "scheduled");
    assert_eq!(page["items"][0]["args"], json!({ "report": "cap-table" }));
    let (status, body) = get(&client, &s, &operator, "/v1/jobs?state=sideways").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "state");
    let (_, theirs) = get(&client, &s, &other_admin, "/v1/jobs").await;
    assert_eq!(
        theirs["items"],
        json!([]),
        "another organization sees none of it"
    );
    let (status, _) = post(&client, &s, &other_admin, &format!("/v1/jobs/{id}/retry")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, cancelled) = post(&client, &s, &operator, &format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, again) = post(&client, &s, &operator, &format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // Retried, it runs in the service at once; no handler knows its kind, so it
    // lands in the dead-letter set with the reason.
    let (status, retried) = post(&client, &s, &operator, &format!("/v1/jobs/{id}/retry")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried["state"], "available");
    let discarded = eventually(Duration::from_secs(10), async || {
        let (_, page) = get(&client, &s, &operator, "/v1/jobs?state=discarded").await;
        page["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    })
    .await;
    assert!(discarded, "the service's workers ran the job");
    let (_, page) = get(&client, &s, &operator, "/v1/jobs?state=discarded").await;
    let errors = page["items"][0]["errors"].as_array().unwrap();
    assert!(
        errors.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("no handler")
    );

    // The operator's CLI sees every organization's jobs.
    let out = s.cli(&["jobs", "list", "--state", "discarded"]);
    assert!(out.status.success());
    let line: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["id"], id.to_string());
    assert_eq!(line["org_id"], org);
    let out = s.cli(&["jobs", "cancel", &id.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a finished job cannot be cancelled"
    );
    let out = s.cli(&["jobs", "retry", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(2));
    let out = s.cli(&["jobs", "list", "--state", "sideways"]);
    assert_eq!(out.status.code(), Some(2));

    let (_, health) = get(&client, &s, &operator, "/health/detailed").await;
    let queues = &health["checks"]["queues"];
    assert_eq!(queues["status"], "healthy", "{health}");
    assert!(
        queues["queues"]["reporting"]["discarded"].as_i64().unwrap() >= 1,
        "{queues}"
    );
    // Every configured queue is listed, the empty ones at zero in every state.
    for queue in [
        "token-deployment",
        "compliance-check",
        "settlement",
        "reporting",
        "notification",
    ] {
        for state in [
            "scheduled",
            "available",
            "running",
            "retryable",
            "completed",
            "discarded",
            "cancelled",
        ] {
            assert!(
                queues["queues"][queue][state].is_i64(),
                "{queue}.{state} in {queues}"
            );
        }
    }
    assert_eq!(queues["queues"]["settlement"]["available"], 0, "{queues}");
}
