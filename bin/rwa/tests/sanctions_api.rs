//! Sanctions screening through the running service and its CLI, on the
//! backend `RWA_TEST_DATABASE` names: lists loaded from files in the SDN
//! format and the generic CSV that the test writes, investors screened on
//! onboarding, on a new wallet and on approval, a hit refusing approval, a
//! possible match waiting for a compliance officer's clearance, a newly
//! loaded list flagging an approved investor, and a malformed file changing
//! nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, eventually, send};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const SDN: &str = "\
306,\"BANCO NACIONAL DE CUBA\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"Havana.\"
9001,\"PETROV, Ivan Sergeyevich\",\"individual\",\"CYBER2\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 01 Jan 1980; Digital Currency Address - ETH 0x7F367cC41522cE07553e823bf3be79A889DEbe1B;\"
";
const ALT: &str = "9001,5000,\"aka\",\"PETROV, Vanya\",-0-\n";
const LISTED_WALLET: &str = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn load(s: &Server, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["sanctions", "load"];
    all.extend_from_slice(args);
    let out = s.cli(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Api<'a> {
    client: Client,
    s: &'a Server,
    admin: String,
    compliance: String,
}

impl Api<'_> {
    async fn onboard(&self, name: &str) -> String {
        let (status, body) = send(
            &self.client,
            self.s,
            &self.admin,
            Method::POST,
            "/v1/investors",
            Some(
                json!({ "name": name, "email": "someone@example.com", "country": "FR",
                         "type": "individual", "accredited": false }),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, id: &str) -> Value {
        let (status, body) = send(
            &self.client,
            self.s,
            &self.admin,
            Method::GET,
            &format!("/v1/investors/{id}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        body
    }

    async fn approve(&self, id: &str) -> (StatusCode, Value) {
        send(
            &self.client,
            self.s,
            &self.compliance,
            Method::POST,
            &format!("/v1/investors/{id}/kyc"),
            Some(
                json!({ "decision": "approved", "expires_at": "2099-01-01T00:00:00Z",
                         "reason": "documents verified" }),
            ),
        )
        .await
    }

    async fn clear(&self, id: &str) -> (StatusCode, Value) {
        send(
            &self.client,
            self.s,
            &self.compliance,
            Method::POST,
            &format!("/v1/investors/{id}/screening/clear"),
            Some(json!({ "reason": "different date of birth and nationality" })),
        )
        .await
    }
}

#[tokio::test]
async fn investors_are_screened_against_loaded_lists() {
    let s = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (_org, admin) = s.create_org("Screening Fund");
    let org_id = _org.clone();
    let compliance = s.create_key(&org_id, "compliance");
    let api = Api {
        client: Client::new(),
        s: &s,
        admin,
        compliance,
    };

    // A malformed file is refused whole, naming the line; nothing loads.
    let bad = write(dir.path(), "bad.csv", &format!("{SDN}77,\"TOO SHORT\"\n"));
    let (code, _, stderr) = load(
        &s,
        &["--list", "ofac", "--format", "ofac-sdn", "--file", &bad],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sdn.csv line 3"), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    let listed = s.cli(&["sanctions", "list"]);
    assert!(listed.status.success());
    assert!(listed.stdout.is_empty(), "no list exists");

    let sdn = write(dir.path(), "sdn.csv", SDN);
    let alt = write(dir.path(), "alt.csv", ALT);
    let args = [
        "--list", "ofac", "--format", "ofac-sdn", "--file", &sdn, "--alt", &alt,
    ];
    let (code, version, stderr) = load(&s, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(version["entries"], 2);
    assert_eq!(version["new"], true);
    let (_, again, _) = load(&s, &args);
    assert_eq!(again["new"], false, "the same content is the same version");
    assert_eq!(again["version"], version["version"]);

    // A hit by alias: shown on onboarding, and approval is refused.
    let vanya = api.onboard("Vanya Petrov").await;
    let shown = api.get(&vanya).await;
    assert_eq!(shown["screening"]["status"], "hit", "{shown}");
    assert_eq!(shown["screening"]["matches"][0]["kind"], "alias");
    assert_eq!(shown["screening"]["matches"][0]["reference"], "9001");
    assert_eq!(
        shown["screening"]["lists"]["ofac"], version["version"],
        "the version screened against"
    );
    let (status, problem) = api.approve(&vanya).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("ofac/9001"),
        "{problem}"
    );
    assert_eq!(api.get(&vanya).await["kyc_status"], "pending");

    // A hit by wallet.
    let maria = api.onboard("Maria Fernanda Alves").await;
    assert_eq!(api.get(&maria).await["screening"]["status"], "clear");
    let (status, body) = send(
        &api.client,
        &s,
        &api.admin,
        Method::POST,
        &format!("/v1/investors/{maria}/wallets"),
        Some(json!({ "address": LISTED_WALLET })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["screening"]["status"], "hit");
    assert_eq!(body["screening"]["matches"][0]["kind"], "wallet");
    assert_eq!(api.approve(&maria).await.0, StatusCode::CONFLICT);

    // A possible match waits for a clearance, then the approval goes through.
    let ivan = api.onboard("Ivan Sergeevich Petrov").await;
    let shown = api.get(&ivan).await;
    assert_eq!(shown["screening"]["status"], "possible_match", "{shown}");
    let (status, problem) = api.approve(&ivan).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("screening/clear"),
        "{problem}"
    );
    let (status, cleared) = api.clear(&ivan).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["screening"]["status"], "clear");
    assert_eq!(cleared["screening"]["matches"][0]["cleared"], true);
    let (status, approved) = api.approve(&ivan).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["kyc_status"], "approved");
    assert_eq!(
        api.clear(&ivan).await.0,
        StatusCode::CONFLICT,
        "nothing left"
    );
    assert_eq!(
        api.clear(&vanya).await.0,
        StatusCode::CONFLICT,
        "a hit is not cleared"
    );

    // A newly loaded list flags an approved investor.
    let olga = api.onboard("Olga Kuznetsova").await;
    assert_eq!(api.approve(&olga).await.0, StatusCode::OK);
    let eu = write(
        dir.path(),
        "eu.csv",
        "name,aliases,addresses,list,reference\nKuznetsova Olga,,,EU,EU.1\n",
    );
    let (code, _, stderr) = load(&s, &["--list", "eu", "--format", "csv", "--file", &eu]);
    assert_eq!(code, 0, "{stderr}");
    let flagged = eventually(Duration::from_secs(60), async || {
        api.get(&olga).await["screening"]["status"] == "hit"
    })
    .await;
    assert!(flagged, "the rescreen flagged the approved investor");
    let (_, trail) = send(
        &api.client,
        &s,
        &api.admin,
        Method::GET,
        "/v1/audit?limit=200",
        None,
    )
    .await;
    let hits: Vec<&Value> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "investor.sanctions_hit")
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one new hit, on the approved investor: {hits:?}"
    );
    assert_eq!(hits[0]["actor"], "system:sanctions-rescreen");
    assert_eq!(hits[0]["target"], format!("investor:{olga}"));
}
