//! A real anvil node (npm `@foundry-rs/anvil`, installed by
//! `scripts/install-node-deps.sh`) on a free loopback port, killed on drop.

use std::net::TcpListener;
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
            let port = fresh_port();
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
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Anvil { child, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                std::thread::sleep(Duration::from_millis(20));
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

/// A free port no earlier call in this process returned.
fn fresh_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
