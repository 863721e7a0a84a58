//! `rwa serve` terminating TLS itself, with certificates from a CA the test
//! generates: HTTPS answered; mutual TLS refusing a client without a
//! certificate or with one from another CA, a certificate authenticating as
//! the API key bound to its subject, and a bound key's secret refused over
//! any other certificate; the certificate replaced on SIGHUP while a
//! connection opened before stays open and keeps answering, and a broken
//! replacement leaving the working certificate in service.

mod common;

use bytes::Bytes;
use common::tls::{Ca, call, connect, write};
use common::{Server, assert_detail};
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_maps_a_certificate_subject_to_its_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("rwa test CA");
    let (cert, key) = ca.issue("localhost", true);
    let env = [
        ("RWA_TLS_CERT", write(dir.path(), "cert.pem", &cert)),
        ("RWA_TLS_KEY", write(dir.path(), "key.pem", &key)),
        ("RWA_TLS_CLIENT_CA", write(dir.path(), "ca.pem", &ca.pem())),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
    let s = Server::start(&env).await;
    let (_, admin) = s.create_org("Certified Fund");
    let ca_pem = ca.pem();
    let desk = ca.issue("ops-desk", false);
    let fund_admin = ca.issue("fund-admin", false);
    let rogue = Ca::new("someone else").issue("fund-admin", false);

    // Without a client certificate, or with one from another CA: refused
    // during the handshake (TLS 1.3 reports it at the first request).
    for identity in [None, Some(&rogue)] {
        let refused = match connect(&s, &ca_pem, identity).await {
            Err(_) => true,
            Ok((mut sender, _)) => call(&mut sender, "GET", "/v1/org", Some(&admin), None)
                .await
                .is_err(),
        };
        assert!(refused, "a connection without a trusted client certificate");
    }

    // With a trusted certificate the admin key works, and binds a new key to
    // another certificate's subject.
    let (mut desk_conn, _) = connect(&s, &ca_pem, Some(&desk)).await.unwrap();
    let body = json!({ "role": "auditor", "cert_subject": "CN=fund-admin" });
    let (status, created) = call(
        &mut desk_conn,
        "POST",
        "/v1/api-keys",
        Some(&admin),
        Some(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["cert_subject"], "CN=fund-admin");
    let bound_secret = created["api_key"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &mut desk_conn,
        "POST",
        "/v1/api-keys",
        Some(&admin),
        Some(body),
    )
    .await
    .unwrap();
    assert_eq!(status, 409, "one key per subject");

    // The fund-admin certificate alone authenticates as that key.
    let (mut fund_conn, _) = connect(&s, &ca_pem, Some(&fund_admin)).await.unwrap();
    let (status, org) = call(&mut fund_conn, "GET", "/v1/org", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["name"], "Certified Fund");
    let body = json!({ "role": "auditor" });
    let (status, _) = call(&mut fund_conn, "POST", "/v1/api-keys", None, Some(body))
        .await
        .unwrap();
    assert_eq!(status, 403, "with the bound key's role (auditor)");
    let (status, _) = call(&mut fund_conn, "GET", "/v1/org", Some(&bound_secret), None)
        .await
        .unwrap();
    assert_eq!(status, 200);

    // The bound key's secret over another certificate, and a certificate
    // bound to nothing: 401, saying why.
    let (status, problem) = call(&mut desk_conn, "GET", "/v1/org", Some(&bound_secret), None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_detail(&problem, "bound to a client certificate");
    let (status, problem) = call(&mut desk_conn, "GET", "/v1/org", None, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_detail(&problem, "no API key is bound");
}

/// The status of `GET /health/live` on an open connection.
async fn live(conn: &mut SendRequest<Full<Bytes>>) -> u16 {
    call(conn, "GET", "/health/live", None, None)
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_replaces_the_certificate_without_dropping_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("rwa test CA");
    let ca_pem = ca.pem();
    let (first, first_key) = ca.issue("localhost", true);
    let cert_path = write(dir.path(), "cert.pem", &first);
    let key_path = write(dir.path(), "key.pem", &first_key);
    let s = Server::start(&[
        ("RWA_TLS_CERT", cert_path.to_str().unwrap()),
        ("RWA_TLS_KEY", key_path.to_str().unwrap()),
    ])
    .await;
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();

    let (mut open, presented) = connect(&s, &ca_pem, None).await.unwrap();
    assert_eq!(presented, der(&first));
    assert_eq!(live(&mut open).await, 200);

    // A new certificate and key, then SIGHUP.
    let (second, second_key) = ca.issue("localhost", true);
    write(dir.path(), "cert.pem", &second);
    write(dir.path(), "key.pem", &second_key);
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    s.wait_for_log("TLS certificate and key reloaded").await;

    // The connection opened before keeps answering; new ones get the new
    // certificate.
    assert_eq!(
        live(&mut open).await,
        200,
        "the open connection was not dropped"
    );
    let (mut fresh, presented) = connect(&s, &ca_pem, None).await.unwrap();
    assert_eq!(presented, der(&second));
    assert_eq!(live(&mut fresh).await, 200);

    // A broken key: the reload fails and the working certificate stays.
    write(dir.path(), "key.pem", "not a key");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    s.wait_for_log("TLS reload failed").await;
    let (mut after, presented) = connect(&s, &ca_pem, None).await.unwrap();
    assert_eq!(presented, der(&second));
    assert_eq!(live(&mut after).await, 200);
    assert_eq!(live(&mut open).await, 200);
}
