//! Free loopback ports for servers a test starts that cannot bind port 0
//! themselves (anvil, aiosmtpd).

use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// A free port no earlier call in this process returned: two servers
/// started at once by parallel tests never share one (the second one's
/// readiness check would otherwise reach the first).
pub(crate) fn fresh_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
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
