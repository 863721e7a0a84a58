//! Composition: configuration → adapters → HTTP server. [`App::build`] binds
//! the listener (port 0 allowed) so callers learn the port before serving;
//! [`App::run_until`] serves until a shutdown signal, then drains in-flight
//! requests up to the configured deadline and closes the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use rwa_api::rate_limit::{RateLimiter, SharedLimits};
use rwa_api::{ApiPorts, ApiSettings, ApiState};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::health::ChainHealth;
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::txm::{LanesHealth, TxManager, TxManagerConfig};
use rwa_domain::chain::{Address, ChainPort, U256};
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use rwa_domain::operation::HoldingsView;
use rwa_domain::ports::DatabaseProbe;
use rwa_domain::tx::{Lane, Signer};
use rwa_flows::deployment::TokenDeployer;
use rwa_flows::risk_engine::HttpRiskEngine;
use rwa_jobs::{Queue, QueueHealth};
use rwa_store::{Store, StoreOptions};
use serde_json::json;
use tokio::net::TcpListener;

use crate::background::Background;
use crate::config::{Config, Environment, ServeRole};
use crate::handlers::Platform;
use crate::{secrets, signers};
use rwa_flows::identity::IdentitySync;
use rwa_flows::operations::OperationsFlow;
use rwa_flows::submit::Submitter;
use rwa_indexer::follower::{Follower, FollowerConfig};
use rwa_indexer::reconcile::Reconciler;
use rwa_indexer::service::{IndexerHealth, Pacing};
use rwa_indexer::verify::Verifier;

/// Blocks behind the node's head above which `checks.indexer` is degraded.
const INDEXER_MAX_LAG: u64 = 128;

/// How often settled operations are checked against the indexed events.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a reconciliation without a block waits for the index to reach
/// the confirmation depth of the head.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<Store>,
    queue: Queue,
    devnet: Option<Arc<Devnet>>,
    /// The transaction manager and handlers, for roles that run workers.
    platform: Option<(Arc<TxManager>, Platform)>,
    /// The chain's follower and the settlements' reconciler, for roles
    /// that index.
    indexer: Option<(Arc<Follower>, Arc<Reconciler>)>,
    /// The webhook outboxes, for roles that run workers.
    deliveries: Option<Arc<rwa_notify::delivery::Deliveries>>,
    config: Config,
    /// TLS termination, when configured.
    tls: Option<crate::tls::Reloadable>,
    /// Held until the server stops: no second server on the same SQLite
    /// database or devnet.
    locks: crate::single_process::ProcessLocks,
}

/// Opens the database named by the configuration and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_rotating(config, None).await
}

/// [`open_store`], with personal data sealed under `previous` (the server
/// secret before a rotation) still readable.
pub async fn open_store_rotating(
    config: &Config,
    previous: Option<&[u8]>,
) -> anyhow::Result<Store> {
    let mut opts = StoreOptions::new(config.database.url.expose());
    opts.max_connections = config.database.max_connections;
    opts.min_connections = config.database.min_connections;
    opts.acquire_timeout = config.database.acquire_timeout;
    // Personal data is sealed under keys derived from the server secret
    // (resolved before the store opens in `serve`).
    opts.pii = config.secret_key.as_ref().map(|s| {
        Arc::new(rwa_domain::pii::PiiKeys::new(
            s.expose().as_bytes(),
            previous,
        ))
    });
    let store = Store::connect(&opts)
        .await
        .with_context(|| format!("database {}", config.database.url.redacted()))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

impl App {
    /// Resolves secrets, opens and migrates the database, builds the router and
    /// binds the listener.
    pub async fn build(mut config: Config) -> anyhow::Result<App> {
        if config.secret_key.is_none() {
            config.secret_key = Some(secrets::development_secret(&config.data_dir)?);
        }
        if config.env == Environment::Production && config.is_sqlite() {
            tracing::warn!("database is SQLite: this deployment is limited to one process");
        }
        let locks = crate::single_process::acquire(&config)?;
        let store = Arc::new(open_store(&config).await?);
        let probe: Arc<dyn DatabaseProbe> = store.clone();
        let queue = store.job_queue();
        let mut health: Vec<Arc<dyn HealthCheck>> = vec![
            Arc::new(DatabaseCheck(probe.clone())),
            Arc::new(QueueHealth::new(
                queue.clone(),
                config.jobs.queues.iter().map(|q| q.name.clone()),
            )),
        ];
        let lanes = signers::lane_signers(&config.signer, &config.data_dir)?;
        let (chain, devnet): (Arc<dyn ChainPort>, _) = match &config.chain.rpc_url {
            Some(url) => {
                let rpc = Arc::new(
                    RpcChain::connect(RpcConfig::new(url.expose()))
                        .await
                        .map_err(|e| anyhow::anyhow!("RWA_CHAIN_RPC_URL: {e}"))?,
                );
                health.push(Arc::new(ChainHealth::rpc(rpc.clone())));
                (rpc, None)
            }
            None => {
                let devnet = open_devnet(&config, &lanes).await?;
                health.push(Arc::new(ChainHealth::new(devnet.clone())));
                (devnet.clone(), Some(devnet))
            }
        };
        let holdings: Arc<dyn HoldingsView> = store.clone();
        let chain_id = chain
            .chain_id()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the chain: {e}"))?;
        let indexer = if matches!(config.role, ServeRole::All | ServeRole::Indexer) {
            let reconciler = Arc::new(Reconciler::new(
                store.clone(),
                store.clone(),
                chain_id,
                config.chain.confirmations,
                RECONCILE_EVERY,
            ));
            health.push(Arc::new(
                IndexerHealth::new(store.clone(), chain_id, INDEXER_MAX_LAG)
                    .with_reconciler(reconciler.clone()),
            ));
            let follower = Follower::new(
                chain.clone(),
                store.clone(),
                chain_id,
                FollowerConfig::default(),
            );
            Some((Arc::new(follower), reconciler))
        } else {
            None
        };
        let platform = if matches!(config.role, ServeRole::All | ServeRole::Worker) {
            let txm = TxManager::new(
                chain.clone(),
                store.clone(),
                lanes,
                TxManagerConfig {
                    confirmations: config.chain.confirmations,
                    ..TxManagerConfig::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("transaction manager: cannot reach the chain: {e}"))?;
            let txm = Arc::new(txm);
            health.push(Arc::new(LanesHealth(txm.clone())));
            // The risk engine is asked by the compliance checks, which run
            // where the workers do.
            let engine = match &config.compliance_engine {
                Some(e) => {
                    let engine =
                        HttpRiskEngine::new(&e.url, e.timeout).map_err(|e| anyhow::anyhow!(e))?;
                    let engine = Arc::new(engine);
                    health.push(engine.clone());
                    Some(engine as Arc<dyn rwa_domain::compliance::RiskEngine>)
                }
                None => None,
            };
            let deployer =
                TokenDeployer::new(txm.clone(), store.clone(), chain.clone(), store.clone());
            let submitter = Submitter {
                txm: txm.clone(),
                txs: store.clone(),
                chain: chain.clone(),
            };
            let platform = Platform {
                deployer: Arc::new(deployer),
                txm: txm.clone(),
                tokens: store.clone(),
                identity: Arc::new(IdentitySync::new(
                    submitter.clone(),
                    store.clone(),
                    store.clone(),
                )),
                identities: store.clone(),
                sanctions: store.clone(),
                operations: Arc::new(OperationsFlow::new(
                    submitter.clone(),
                    store.clone(),
                    store.clone(),
                )),
                operation_store: store.clone(),
                idempotency: store.clone(),
                compliance: Arc::new(rwa_flows::compliance::ComplianceFlow::new(
                    store.clone(),
                    engine,
                )),
                settlement: Arc::new(rwa_flows::settlement::SettlementFlow::new(
                    submitter.clone(),
                    chain.clone(),
                    store.clone(),
                    store.clone(),
                )),
                settlement_store: store.clone(),
            };
            Some((txm, platform))
        } else {
            None
        };
        let deliveries = if platform.is_some() {
            let settings = rwa_notify::delivery::DeliverySettings {
                timeout: config.webhooks.timeout,
                allow_private: config.webhooks.allow_private,
                disable_after: config.webhooks.disable_after,
                ..Default::default()
            };
            let deliveries = rwa_notify::delivery::Deliveries::new(
                store.clone(),
                store.clone(),
                settings,
                store.events_numbered(),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let deliveries = match &config.smtp {
                Some(smtp) => {
                    deliveries.with_email(store.clone(), rwa_notify::mail::Mailer::new(smtp))
                }
                None => deliveries,
            };
            // WhatsApp is sent where the deliveries run; its breaker is
            // reported by these processes.
            let deliveries = match &config.whatsapp {
                Some(w) => {
                    let whatsapp = Arc::new(
                        rwa_notify::whatsapp::WhatsApp::new(w.clone())
                            .map_err(|e| anyhow::anyhow!("RWA_WHATSAPP_URL: {e}"))?,
                    );
                    health.push(whatsapp.clone());
                    deliveries.with_whatsapp(store.clone(), whatsapp)
                }
                None => deliveries,
            };
            // The stream's cursor is created before the API takes requests,
            // so every event committed from the first start with the stream
            // on is published.
            let deliveries = match &config.amqp {
                Some(amqp) => {
                    let stream = Arc::new(rwa_notify::stream::EventStream::new(
                        amqp.clone(),
                        store.clone(),
                        store.clone(),
                    ));
                    stream.open().await?;
                    health.push(stream.clone());
                    deliveries.with_stream(stream)
                }
                None => deliveries,
            };
            Some(Arc::new(deliveries))
        } else {
            None
        };
        let limits = rate_limiter(&config, &mut health)?;
        let settings = ApiSettings {
            body_limit_bytes: config.http.body_limit_bytes,
            json_max_depth: config.http.json_max_depth,
            request_timeout: config.http.request_timeout,
            production: config.env == Environment::Production,
            cors_origins: config.cors_origins.clone(),
            trusted_proxies: config.limits.trusted_proxies.clone(),
            webhook_secret_overlap: config.webhooks.secret_overlap,
            email_configured: config.smtp.is_some(),
            whatsapp_configured: config.whatsapp.is_some(),
            ..ApiSettings::default()
        };
        let state = ApiState::new(ApiPorts {
            orgs: store.clone(),
            keys: store.clone(),
            users: store.clone(),
            sessions: store.clone(),
            access: Arc::new(rwa_api::access_token::AccessTokens::new(
                Arc::from(
                    config
                        .secret_key
                        .as_ref()
                        .expect("resolved above")
                        .expose()
                        .as_bytes(),
                ),
                config.auth.clone(),
                store.clone(),
            )),
            audit: store.clone(),
            jobs: Arc::new(queue.clone()),
            tokens: store.clone(),
            investors: store.clone(),
            events: store.clone(),
            operations: store.clone(),
            transfers: store.clone(),
            rule_sets: store.clone(),
            idempotency: store.clone(),
            holdings,
            index: store.clone(),
            watched: store.clone(),
            webhooks: store.clone(),
            notifications: store.clone(),
            verifier: Arc::new(Verifier::new(
                chain.clone(),
                store.clone(),
                chain_id,
                config.chain.confirmations,
                VERIFY_WAIT,
            )),
            chain_id,
            kyc_callback_secret: config
                .kyc_callback_secret
                .as_ref()
                .map(|s| Arc::from(s.expose().as_bytes())),
            limits,
            health: health.into(),
            metrics: crate::metrics::renderer(crate::metrics::recorder(), probe),
            settings: Arc::new(settings),
        });
        let (router, _spec) = rwa_api::router(state);
        let tls = match &config.limits.tls {
            None => None,
            Some(files) => {
                let tls = crate::tls::Reloadable::new(files.clone())?;
                tracing::info!(
                    client_certificates = files.client_ca.is_some(),
                    "TLS on: certificate and key reloaded on SIGHUP"
                );
                Some(tls)
            }
        };
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(App {
            listener,
            router,
            store,
            queue,
            devnet,
            platform,
            indexer,
            deliveries,
            config,
            tls,
            locks,
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish for up to the shutdown deadline, and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            listener,
            router,
            store,
            queue,
            devnet,
            platform,
            indexer,
            deliveries,
            config,
            tls,
            locks,
        } = self;
        let (indexer_stop, indexer_stopped) = tokio::sync::watch::channel(false);
        let indexer = indexer.map(|(follower, reconciler)| {
            tokio::spawn(rwa_indexer::service::run(
                follower,
                store.clone(),
                reconciler,
                Pacing::default(),
                indexer_stopped,
            ))
        });
        // The webhook outboxes stop with the indexer (the same signal).
        let deliveries = deliveries.map(|d| tokio::spawn(d.run(indexer_stop.subscribe())));
        let stop_indexer = || async {
            let _ = indexer_stop.send(true);
            if let Some(task) = indexer {
                let _ = task.await;
            }
            if let Some(task) = deliveries {
                let _ = task.await;
            }
        };
        let background = platform.map(|(txm, platform)| {
            Background::start(
                queue,
                &config.jobs,
                config.http.shutdown_timeout,
                txm,
                &platform,
            )
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Handlers see the peer's address (audit entries, session fingerprints).
        let stopped = async move {
            let _ = stop_rx.await;
        };
        let mut server = match tls {
            Some(tls) => {
                tls.reload_on_sighup()?;
                tokio::spawn(crate::tls::serve(listener, router, tls, stopped))
            }
            None => {
                let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                let server = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .into_future();
                tokio::spawn(server)
            }
        };
        tokio::select! {
            result = &mut server => {
                if let Some(background) = background {
                    background.stop().await;
                }
                stop_indexer().await;
                result.context("server task")?.context("server")?;
                if let Some(devnet) = devnet {
                    devnet.shutdown().await;
                }
                store.close().await;
                drop(locks);
                return Ok(());
            }
            () = shutdown => {}
        }
        let deadline = config.http.shutdown_timeout;
        tracing::info!(
            deadline_ms = deadline.as_millis() as u64,
            "shutting down: draining in-flight requests"
        );
        let _ = stop_tx.send(());
        // Workers stop claiming at once and get the same deadline as requests.
        let draining = async {
            if let Some(background) = background {
                background.stop().await;
            }
            stop_indexer().await;
        };
        let (served, ()) = tokio::join!(tokio::time::timeout(deadline, &mut server), draining);
        match served {
            Ok(result) => result.context("server task")?.context("server")?,
            Err(_) => {
                tracing::warn!("shutdown deadline passed; cutting the remaining requests");
                server.abort();
            }
        }
        if let Some(devnet) = devnet {
            devnet.shutdown().await;
        }
        store.close().await;
        drop(locks);
        tracing::info!("stopped");
        Ok(())
    }
}

/// The embedded devnet (development only; configuration refuses it in
/// production): its own SQLite file in the data dir, a block every second,
/// and every lane's signer (by default the development key, generated into
/// the data dir on first run) funded at genesis.
async fn open_devnet(
    config: &Config,
    lanes: &[(Lane, Arc<dyn Signer>)],
) -> anyhow::Result<Arc<Devnet>> {
    let ether = U256::from(10u64).pow(U256::from(18u64));
    let mut funded: Vec<Address> = lanes.iter().map(|(_, s)| s.address()).collect();
    funded.sort();
    funded.dedup();
    let devnet = Devnet::open(DevnetConfig {
        db_path: Some(config.data_dir.join("devnet.db")),
        genesis_accounts: funded
            .iter()
            .map(|a| (*a, ether * U256::from(1_000_000u64)))
            .collect(),
        ..DevnetConfig::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("embedded devnet: {e}"))?;
    tracing::info!(signers = ?funded, "embedded devnet (development only)");
    Ok(devnet)
}

/// The rate limits: in this process, or shared through Redis when one is
/// configured (then `checks.redis` reports whether they are shared now).
fn rate_limiter(
    config: &Config,
    health: &mut Vec<Arc<dyn HealthCheck>>,
) -> anyhow::Result<Arc<RateLimiter>> {
    let shared = match &config.limits.redis_url {
        None => None,
        Some(url) => {
            let shared = SharedLimits::new(url.expose(), "rwa:rl:", config.limits.redis_timeout)
                .map_err(|e| anyhow::anyhow!("RWA_REDIS_URL: {e}"))?;
            Some(Arc::new(shared))
        }
    };
    if let Some(s) = &shared {
        health.push(s.clone());
    }
    Ok(Arc::new(RateLimiter::new(
        config.limits.rate.clone(),
        shared,
    )))
}

/// The database as a critical health dependency.
struct DatabaseCheck(Arc<dyn DatabaseProbe>);

#[async_trait]
impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn critical(&self) -> bool {
        true
    }

    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let result = self.0.ping().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut details = serde_json::Map::new();
        details.insert("backend".into(), json!(self.0.backend()));
        let status = match result {
            Ok(()) => HealthStatus::Healthy,
            Err(e) => {
                tracing::warn!(error = %e, "database health check failed");
                details.insert("error".into(), json!("unreachable"));
                HealthStatus::Unhealthy
            }
        };
        CheckReport {
            status,
            latency_ms,
            details,
        }
    }
}
