//! TLS termination for `rwa serve`: rustls over the bound listener, HTTP/1.1
//! and HTTP/2 by ALPN, an optional client-certificate requirement (mutual
//! TLS) against a configured CA, and the certificate and key files read again
//! on SIGHUP. A reload changes what new handshakes present; connections
//! already open keep theirs and are not dropped. A reload that fails (a
//! missing file, a key that does not match) is logged and the previous
//! certificate stays in service.
//!
//! Each request carries its connection's peer address (as axum's
//! `ConnectInfo`) and, under mutual TLS, the verified client certificate's
//! subject (`rwa_api::auth::ClientCertificate`), which authentication maps to
//! the API key bound to it.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// The files TLS is configured from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; set, every
    /// client must present one.
    pub client_ca: Option<PathBuf>,
}

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the files into a server configuration.
pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("RWA_TLS_CERT {}: {e}", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "RWA_TLS_CERT {}: no certificate in the file",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("RWA_TLS_KEY {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("RWA_TLS_CLIENT_CA {}: {e}", path.display()))?;
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| anyhow::anyhow!("RWA_TLS_CLIENT_CA {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow::anyhow!("RWA_TLS_CLIENT_CA {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("RWA_TLS_CERT/RWA_TLS_KEY: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration new handshakes use, replaced on SIGHUP.
#[derive(Clone)]
pub struct Reloadable {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Reloadable {
    /// Loads the files once; an error here stops start-up.
    pub fn new(files: TlsFiles) -> anyhow::Result<Self> {
        let config = load(&files)?;
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again; on failure the previous configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = load(&self.files)?;
        *self.current.write().expect("tls config") = config;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read().expect("tls config")))
    }

    /// Reloads on every SIGHUP until the process ends.
    pub fn reload_on_sighup(&self) -> anyhow::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let this = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match this.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Err(e) => tracing::error!(
                        error = format!("{e:#}"),
                        "SIGHUP: TLS reload failed; the previous certificate stays in service"
                    ),
                }
            }
        });
        Ok(())
    }
}

/// Serves `router` over TLS until `stop` completes, then stops accepting
/// and waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Reloadable,
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let acceptor = tls.acceptor();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| subject_of(der));
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(s) = &subject {
                        req.extensions_mut()
                            .insert(rwa_api::auth::ClientCertificate(s.clone()));
                    }
                    let router = router.clone();
                    async move {
                        Ok::<_, Infallible>(
                            router
                                .oneshot(req.map(axum::body::Body::new))
                                .await
                                .unwrap_or_else(|e: Infallible| match e {}),
                        )
                    }
                },
            );
            let builder = Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A certificate's subject as `CN=…, O=…` (RFC 4514 order as printed by
/// x509-parser), or `None` if it does not parse (it was verified already).
pub fn subject_of(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.subject().to_string())
}
