//! Throw-away databases.

use rand::Rng;
use rand::distr::Alphanumeric;
use sqlx::Connection;

/// Which backend the current test run targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

impl TestBackend {
    /// Reads `RWA_TEST_DATABASE`; panics on an unknown value so a typo never
    /// silently tests the wrong backend.
    pub fn from_env() -> Self {
        match std::env::var("RWA_TEST_DATABASE").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => TestBackend::Sqlite,
            Ok("postgres") => TestBackend::Postgres,
            Ok(other) => panic!("RWA_TEST_DATABASE={other}: expected sqlite or postgres"),
        }
    }
}

/// URL of the PostgreSQL server used for throw-away databases.
pub fn postgres_admin_url() -> String {
    std::env::var("RWA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for the life of this value (SQLite) or of the test
/// run (PostgreSQL).
pub struct TestDatabase {
    /// Connection URL for the application.
    pub url: String,
    /// Backend.
    pub backend: TestBackend,
    /// Database name on the PostgreSQL server, if any.
    pub pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates a database on the backend chosen by the environment.
    pub async fn create() -> Self {
        Self::create_on(TestBackend::from_env()).await
    }

    /// Creates a database on `backend`. Panics with a clear message when
    /// PostgreSQL is unreachable: a missing service fails the test, never skips it.
    pub async fn create_on(backend: TestBackend) -> Self {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("rwa.db").display());
                TestDatabase {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            TestBackend::Postgres => {
                let admin = postgres_admin_url();
                let suffix: String = rand::rng()
                    .sample_iter(&Alphanumeric)
                    .take(12)
                    .map(|c| char::from(c).to_ascii_lowercase())
                    .collect();
                let name = format!("rwa_test_{suffix}");
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL at {admin} is required for RWA_TEST_DATABASE=postgres: {e}"
                        )
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                let url = match admin.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("RWA_TEST_POSTGRES_URL must end with /database"),
                };
                TestDatabase {
                    url,
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// `sqlite` or `postgres`, as the store names its backend.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            TestBackend::Sqlite => "sqlite",
            TestBackend::Postgres => "postgres",
        }
    }

    /// The PostgreSQL server's address (to put a [`crate::TcpProxy`] in front
    /// of it); `None` for SQLite.
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        let rest = self.url.split_once("://")?.1;
        let host_port = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
        let host_port = host_port.split('/').next()?;
        host_port.to_socket_addrs().ok()?.next()
    }

    /// The URL with the host and port replaced (to route it through a [`crate::TcpProxy`]).
    pub fn url_via(&self, host_port: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("url has a scheme");
        let (userinfo, after_at) = match rest.split_once('@') {
            Some((u, a)) => (format!("{u}@"), a),
            None => (String::new(), rest),
        };
        let path = after_at.find('/').map(|i| &after_at[i..]).unwrap_or("");
        format!("{scheme}://{userinfo}{host_port}{path}")
    }
}
