//! A real anvil node (npm `@foundry-rs/anvil`, installed by
//! `scripts/install-node-deps.sh`) on a free loopback port, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The EVM version every part of rwa pins (solc, revm, anvil).
pub const HARDFORK: &str = "prague";

/// The default mnemonic's first private key: anvil funds it at genesis. Public
/// knowledge; for tests only.
pub const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The second funded key.
pub const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// The third funded key.
pub const DEV_KEY_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// A running anvil.
pub struct Anvil {
    child: Child,
    port: u16,
}

fn binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

impl Anvil {
    /// Starts anvil with the pinned hardfork, chain id 31337, automine, plus `extra`
    /// arguments. Panics with what to do when the binary is missing: a test that
    /// needs anvil fails, it never skips.
    pub fn start(extra: &[&str]) -> Anvil {
        let bin = binary();
        assert!(
            bin.exists(),
            "anvil not found at {}: run scripts/install-node-deps.sh",
            bin.display()
        );
        // anvil has no port 0: take a free port, and retry if another process
        // takes it first. Ports handed out in this process are never handed
        // out again: two tests starting anvil at once could otherwise pick the
        // same port, the second one's readiness check would reach the first
        // one's node, and the second test would lose its node when the first
        // test ends.
        for _ in 0..5 {
            let port = crate::ports::fresh_port();
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--hardfork", HARDFORK, "--chain-id", "31337", "--silent"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn anvil");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                match probe(port) {
                    Probe::Anvil => return Anvil { child, port },
                    // Another process bound the port between our choice
                    // and anvil's bind (a server's ephemeral port, say):
                    // a bare TCP connect would have taken it for anvil.
                    Probe::Other => break,
                    Probe::Nothing => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("anvil did not start");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its socket address.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

/// What answers on a port.
enum Probe {
    Anvil,
    Other,
    Nothing,
}

/// Asks whoever listens on `port` for its client version over JSON-RPC.
fn probe(port: u16) -> Probe {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return Probe::Nothing;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"web3_clientVersion","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Probe::Nothing;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if answer.to_ascii_lowercase().contains("anvil") {
        Probe::Anvil
    } else if answer.is_empty() {
        // Accepted and closed without a word: anvil still starting up.
        Probe::Nothing
    } else {
        Probe::Other
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
