//! A real SMTP server (aiosmtpd, installed by `scripts/install-tools.sh`) on a
//! free loopback port, storing what it receives in a maildir, killed on drop.
//! aiosmtpd stores a message before it answers `250` to its data, so once a
//! send returns the message is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running aiosmtpd with a maildir.
pub struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The tools venv's bin directory, installed once per process.
fn tools_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-tools.sh");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8 path").trim());
        assert!(
            bin.join("aiosmtpd").exists(),
            "no aiosmtpd in {}: run scripts/install-tools.sh",
            bin.display()
        );
        bin
    })
}

/// Orders maildir file names by creation: Python's `mailbox` names them
/// `<secs>.M<micros>P<pid>Q<counter>.<host>` with the micros unpadded, so a
/// plain string sort would misorder two messages stored in the same second.
fn creation_key(name: &str) -> (Option<(u64, u64, u64)>, &str) {
    (parse_maildir_name(name), name)
}

/// `(secs, micros, counter)` from a maildir file name.
fn parse_maildir_name(name: &str) -> Option<(u64, u64, u64)> {
    let (secs, rest) = name.split_once('.')?;
    let rest = rest.strip_prefix('M')?;
    let (micros, rest) = rest.split_once('P')?;
    let (_pid, rest) = rest.split_once('Q')?;
    let counter = rest.split('.').next()?;
    Some((
        secs.parse().ok()?,
        micros.parse().ok()?,
        counter.parse().ok()?,
    ))
}

impl SmtpServer {
    /// Starts aiosmtpd on a free loopback port and waits until it accepts
    /// connections, running `scripts/install-tools.sh` first (once per
    /// process). Panics when it cannot start: a test that needs it fails, it
    /// never skips.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with_args(&[]).await
    }

    /// [`SmtpServer::start`] with `extra` aiosmtpd arguments, such as
    /// `["-s", "200"]` for a size limit.
    pub async fn start_with_args(extra: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let aiosmtpd = tools_bin().join("aiosmtpd");
        // Another process can take the port between its choice and the
        // bind: aiosmtpd then exits, and another port is tried.
        for _ in 0..5 {
            let port = crate::ports::fresh_port();
            let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).expect("log file");
            let mut child = Command::new(&aiosmtpd)
                .args(["-n", "-l", &format!("127.0.0.1:{port}")])
                .args(extra)
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("maildir"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn aiosmtpd");
            // Bounded: a loaded machine starts Python slowly, a broken
            // install never.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return SmtpServer { child, port, dir };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("aiosmtpd.log")).unwrap_or_default();
        panic!("aiosmtpd did not start: {log}");
    }

    /// A loopback port nothing listens on: free when chosen, and never handed
    /// to a server started in this process. For testing a refused connection.
    pub fn unused_port() -> u16 {
        crate::ports::fresh_port()
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>?tls=none`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Every message stored so far, raw RFC 5322 bytes (with aiosmtpd's
    /// `X-MailFrom` and `X-RcptTo` envelope headers), oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("maildir/new");
        let mut names: Vec<String> = match std::fs::read_dir(&new) {
            Ok(entries) => entries
                .map(|entry| {
                    let entry = entry.expect("maildir entry");
                    entry.file_name().to_string_lossy().into_owned()
                })
                .collect(),
            // aiosmtpd creates the maildir before it listens; tolerate it anyway.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", new.display()),
        };
        names.sort_by(|a, b| creation_key(a).cmp(&creation_key(b)));
        // Files are written in tmp/ and renamed into new/: never read half-written.
        names
            .iter()
            .map(|name| {
                let path = new.join(name);
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .collect()
    }

    /// Waits until at least `n` messages are stored, polling for at most
    /// `within`, and returns them all ([`SmtpServer::messages`]). Panics with
    /// what was stored and the server's log when they do not arrive in time.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.path().join("aiosmtpd.log"))
                    .unwrap_or_default();
                panic!(
                    "{} message(s) stored within {within:?}, expected {n}; aiosmtpd log: {log}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
