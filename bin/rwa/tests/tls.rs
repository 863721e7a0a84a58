//! `rwa serve` terminating TLS itself, with certificates from a CA the test
//! generates: HTTPS answered; mutual TLS refusing a client without a
//! certificate or with one from another CA, a certificate authenticating as
//! the API key bound to its subject, and a bound key's secret refused over
//! any other certificate; the certificate replaced on SIGHUP while a
//! connection opened before stays open and keeps answering, and a broken
//! replacement leaving the working certificate in service.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

/// A CA of the test's own.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A certificate for `cn` (a server's for localhost and 127.0.0.1, or a
    /// client's), as (certificate PEM, key PEM).
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let names = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Opens an HTTPS connection trusting `ca`, presenting `identity` if given;
/// answers the sender and the certificate the server presented.
async fn connect(
    s: &Server,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<(SendRequest<Full<Bytes>>, CertificateDer<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok((sender, presented))
}

/// A request on an open connection: (status, JSON body), or the error.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

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
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("bound to a client certificate")
    );
    let (status, problem) = call(&mut desk_conn, "GET", "/v1/org", None, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no API key is bound")
    );
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
    let (status, _) = call(&mut open, "GET", "/health/live", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);

    // A new certificate and key, then SIGHUP.
    let (second, second_key) = ca.issue("localhost", true);
    write(dir.path(), "cert.pem", &second);
    write(dir.path(), "key.pem", &second_key);
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    s.wait_for_log("TLS certificate and key reloaded").await;

    // The connection opened before keeps answering; new ones get the new
    // certificate.
    let (status, _) = call(&mut open, "GET", "/health/live", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "the open connection was not dropped");
    let (mut fresh, presented) = connect(&s, &ca_pem, None).await.unwrap();
    assert_eq!(presented, der(&second));
    assert_eq!(
        call(&mut fresh, "GET", "/health/live", None, None)
            .await
            .unwrap()
            .0,
        200
    );

    // A broken key: the reload fails and the working certificate stays.
    write(dir.path(), "key.pem", "not a key");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    s.wait_for_log("TLS reload failed").await;
    let (mut after, presented) = connect(&s, &ca_pem, None).await.unwrap();
    assert_eq!(presented, der(&second));
    assert_eq!(
        call(&mut after, "GET", "/health/live", None, None)
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        call(&mut open, "GET", "/health/live", None, None)
            .await
            .unwrap()
            .0,
        200
    );
}
