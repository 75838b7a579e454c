//! Headless Chromium (the Debian package) driven over the Chrome DevTools Protocol: open
//! a page, wait until its scripts have shown something, read its DOM, take a screenshot.
//! One WebSocket to the browser, one flattened session per page.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How long anything in the browser may take before the test gives up: a liveness bound,
/// not a measurement.
const LIVENESS: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The browser binary; a machine without one fails the test, saying how to get it.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("FACTUM_CHROMIUM").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no chromium on the PATH (nor FACTUM_CHROMIUM): the console is tested in a real \
                 browser. Install it with `apt-get install chromium` (scripts/provision.sh does)."
            )
        })
}

/// A running headless browser.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    /// The browser's profile, deleted after it.
    _profile: tempfile::TempDir,
}

/// A page of the browser (a flattened DevTools session).
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts Chromium headless, its DevTools endpoint on a free loopback port.
    pub async fn start() -> Self {
        let profile = tempfile::tempdir().expect("a browser profile");
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // It prints where its DevTools endpoint listens on stderr.
        let stderr = child.stderr.take().expect("its stderr");
        let url = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let url = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.strip_prefix("DevTools listening on ")
                        .map(str::to_owned)
                })
                .expect("chromium names its DevTools endpoint");
            // Keep draining, so the browser never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            url
        })
        .await
        .expect("reading chromium's stderr");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connects to DevTools");
        Self {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command (to `session`, or the browser) and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("sends to DevTools");
        let deadline = Instant::now() + LIVENESS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within {LIVENESS:?}"))
                .expect("DevTools stays connected")
                .expect("a frame");
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(&text).expect("JSON from DevTools");
            if answer["id"] == id {
                if let Some(error) = answer.get("error") {
                    panic!("{method} failed: {error}");
                }
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let page = Page {
            session: attached["sessionId"]
                .as_str()
                .expect("a session")
                .to_owned(),
        };
        self.call(Some(&page.session), "Page.enable", json!({}))
            .await;
        self.call(Some(&page.session), "Page.navigate", json!({ "url": url }))
            .await;
        page
    }

    /// Evaluates `expression` in `page`, returning its value.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let result = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (a JavaScript expression) is true in `page`, then returns
    /// the page's DOM; fails with the DOM if it never is.
    pub async fn wait_for(&mut self, page: &Page, condition: &str) -> String {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let met = self
                // Not yet loaded is not yet true.
                .eval(
                    page,
                    &format!("(() => {{ try {{ return Boolean({condition}); }} catch {{ return false; }} }})()"),
                )
                .await
                .as_bool()
                .unwrap_or(false);
            let dom = self.dom(page).await;
            if met {
                return dom;
            }
            assert!(
                Instant::now() < deadline,
                "`{condition}` never held within {LIVENESS:?}; the page:\n{dom}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's DOM as it is now, scripts' changes included.
    pub async fn dom(&mut self, page: &Page) -> String {
        self.eval(page, "document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The texts of the elements `selector` finds, whitespace collapsed.
    pub async fn texts(&mut self, page: &Page, selector: &str) -> Vec<String> {
        let expression = format!(
            "Array.from(document.querySelectorAll({})).map(e => e.textContent.replace(/\\s+/g, ' ').trim())",
            json!(selector)
        );
        serde_json::from_value(self.eval(page, &expression).await).expect("a list of texts")
    }

    /// Saves a PNG of `page` at `path`.
    pub async fn screenshot(&mut self, page: &Page, path: &Path) {
        let shot = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::write(path, png).expect("writes the screenshot");
    }

    /// Attributes of the first element `selector` finds (to check what is enabled).
    pub async fn attributes(&mut self, page: &Page, selector: &str) -> HashMap<String, String> {
        let expression = format!(
            "(() => {{ const e = document.querySelector({}); return e ? Object.fromEntries(Array.from(e.attributes).map(a => [a.name, a.value])) : null; }})()",
            json!(selector)
        );
        serde_json::from_value(self.eval(page, &expression).await)
            .unwrap_or_else(|_| panic!("no element {selector}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: the workspace's target directory, kept as the test's
/// artifacts.
pub fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot directory");
    dir
}
