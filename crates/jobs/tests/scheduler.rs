//! Periodic jobs fire once per period, whoever ticks, on SQLite and PostgreSQL.

use chrono::{DateTime, Utc};
use rwa_jobs::scheduler::{Periodic, Scheduler};
use rwa_jobs::{NewJob, Queue};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn entries() -> Vec<Periodic> {
    vec![
        Periodic::new(
            "daily-cap-table",
            "0 0 2 * * *",
            NewJob::new("reporting", "cap-table", json!({})),
        )
        .unwrap(),
        Periodic::new(
            "monthly-volume",
            "0 0 3 1 * *",
            NewJob::new("reporting", "volume", json!({})),
        )
        .unwrap(),
    ]
}

#[tokio::test]
async fn each_period_fires_once_across_schedulers() {
    let db = TestDatabase::create().await;
    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    let queue = Queue::new(store.job_db());
    // Two processes' schedulers over one database.
    let a = Scheduler::new(queue.clone(), entries());
    let b = Scheduler::new(queue.clone(), entries());

    let now = at("2026-11-22T13:00:00Z");
    let (fa, fb) = tokio::join!(a.tick_at(now), b.tick_at(now));
    let mut fired: Vec<_> = fa.unwrap().into_iter().chain(fb.unwrap()).collect();
    fired.sort_by(|x, y| x.kind.cmp(&y.kind));
    assert_eq!(
        fired.len(),
        2,
        "the latest daily and monthly periods, once each"
    );
    assert_eq!(fired[0].kind, "cap-table");
    assert_eq!(fired[0].args["period"], "2026-11-22T02:00:00Z");
    assert_eq!(fired[1].args["period"], "2026-11-01T03:00:00Z");
    assert!(a.tick_at(now).await.unwrap().is_empty());
    assert!(
        b.tick_at(at("2026-11-23T01:59:59Z"))
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );

    let next_day = b.tick_at(at("2026-11-23T02:00:00Z")).await.unwrap();
    assert_eq!(next_day.len(), 1);
    assert_eq!(next_day[0].args["period"], "2026-11-23T02:00:00Z");
    assert!(
        a.tick_at(at("2026-11-23T02:00:30Z"))
            .await
            .unwrap()
            .is_empty()
    );

    let month = a.tick_at(at("2026-12-01T03:00:05Z")).await.unwrap();
    let periods: Vec<&str> = month
        .iter()
        .map(|j| j.args["period"].as_str().unwrap())
        .collect();
    assert_eq!(
        periods,
        vec!["2026-12-01T02:00:00Z", "2026-12-01T03:00:00Z"]
    );
    let all = queue
        .list(None, Some("reporting"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "one job per period, no duplicate");
    // An earlier tick (a process with a late clock) never moves a schedule back.
    assert!(
        b.tick_at(at("2026-11-30T12:00:00Z"))
            .await
            .unwrap()
            .is_empty()
    );

    let clock = queue.db_now().await.unwrap();
    assert!(
        (clock - Utc::now()).num_seconds().abs() < 5,
        "the database clock is read"
    );
    assert!(Periodic::new("bad", "every tuesday", NewJob::new("q", "k", json!({}))).is_err());
    store.close().await;
}
