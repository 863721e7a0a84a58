//! A JSON-RPC proxy in front of a real node that can pretend to lag: while
//! a stale head is set, `eth_blockNumber` answers it, and every other call
//! (blocks by number, logs, receipts) goes to the node unchanged — the way
//! a replica behind a load balancer lags while the blocks it is asked for
//! by number are still found.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone)]
struct Upstream {
    url: String,
    client: reqwest::Client,
    stale_head: Arc<Mutex<Option<u64>>>,
}

/// Proxies JSON-RPC over HTTP to a node, optionally with a stale head.
pub struct RpcProxy {
    addr: SocketAddr,
    stale_head: Arc<Mutex<Option<u64>>>,
    task: JoinHandle<()>,
}

impl RpcProxy {
    /// Starts a proxy to the node at `upstream` (an `http://` URL) on a free
    /// loopback port.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind rpc proxy");
        let addr = listener.local_addr().expect("rpc proxy address");
        let stale_head = Arc::new(Mutex::new(None));
        let state = Upstream {
            url: upstream.to_owned(),
            client: reqwest::Client::new(),
            stale_head: stale_head.clone(),
        };
        let app = axum::Router::new()
            .route("/", post(forward))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RpcProxy {
            addr,
            stale_head,
            task,
        }
    }

    /// The proxy's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `head` to `eth_blockNumber` from now on (`None`: the node's).
    pub fn serve_stale_head(&self, head: Option<u64>) {
        *self.stale_head.lock().unwrap() = head;
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(up): State<Upstream>, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let stale = *up.stale_head.lock().unwrap();
    if let (Some(head), Ok(request)) = (stale, serde_json::from_str::<Value>(&body))
        && request["method"] == "eth_blockNumber"
    {
        let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": format!("{head:#x}")});
        return axum::Json(answer).into_response();
    }
    match up
        .client
        .post(&up.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status = axum::http::StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let bytes = r.bytes().await.unwrap_or_default();
            (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes.to_vec(),
            )
                .into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
