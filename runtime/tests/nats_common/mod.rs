//! What every NATS test shares: the server's URL, throwaway servers to stop and restart,
//! and unique stream names.
//!
//! The tests need a server: `eval "$(scripts/nats.sh start)"` starts a throwaway one and
//! exports `FACTUM_NATS_URL` and `FACTUM_NATS_SERVER`. Without them they fail, never pass.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false");
            panic!(
                "{name} is not set{}: the NATS tests need {what}. Start a throwaway server with \
                 `eval \"$(scripts/nats.sh start)\"` (it installs nats-server from Debian \
                 packages if missing); it exports FACTUM_NATS_URL and FACTUM_NATS_SERVER.",
                if ci { " (CI=true)" } else { "" }
            )
        }
    }
}

/// The shared server's URL; a test without a server fails loudly.
pub fn url() -> String {
    required("FACTUM_NATS_URL", "a running NATS server with JetStream")
}

/// The nats-server binary, for tests that run servers of their own.
pub fn server_binary() -> PathBuf {
    PathBuf::from(required("FACTUM_NATS_SERVER", "the nats-server binary"))
}

/// A stream name and subject prefix no other test (or earlier run) uses.
pub fn unique(test: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!("{test}_{}_{nanos}", std::process::id());
    (format!("T_{tag}"), format!("t_{tag}"))
}

/// A nats-server of the test's own, on a fixed port and store dir, to stop and restart.
pub struct TestServer {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl TestServer {
    /// Starts a server on a free port with its JetStream store under `dir`.
    pub fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            store: dir.join("jetstream"),
            child: None,
        };
        server.restart();
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again (same port, same store) and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new(server_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "nats-server did not listen on port {} within 60 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
