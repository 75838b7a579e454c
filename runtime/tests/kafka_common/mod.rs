//! What every Kafka test shares: the broker's address, unique topic prefixes, and a raw
//! consumer that reads back what is on the topics.
//!
//! The tests need a Kafka-protocol broker: `eval "$(scripts/kafka.sh start)"` builds (once)
//! and starts a throwaway one and exports `FACTUM_KAFKA_BROKERS` and
//! `FACTUM_KAFKA_SERVER`. Without them they fail, never pass.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factum::kafka::rdkafka::config::ClientConfig;
use factum::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use factum::kafka::rdkafka::message::{Headers, Message};

fn required(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false");
            panic!(
                "{name} is not set{}: the Kafka tests need {what}. Start a throwaway broker \
                 with `eval \"$(scripts/kafka.sh start)\"` (it builds nisshi with the nightly \
                 toolchain the first time); it exports FACTUM_KAFKA_BROKERS and \
                 FACTUM_KAFKA_SERVER.",
                if ci { " (CI=true)" } else { "" }
            )
        }
    }
}

/// The shared broker's address; a test without a broker fails loudly.
pub fn brokers() -> String {
    required("FACTUM_KAFKA_BROKERS", "a running Kafka-protocol broker")
}

/// The nisshi binary (built with its PostgreSQL storage engine), for tests that run
/// brokers of their own.
pub fn server_binary() -> PathBuf {
    PathBuf::from(required("FACTUM_KAFKA_SERVER", "the nisshi binary"))
}

/// A broker of the test's own on a fixed port, to kill and restart, keeping its log with
/// the storage engine it was given (`postgres://...` survives a restart).
pub struct TestBroker {
    port: u16,
    storage: String,
    log: PathBuf,
    child: Option<Child>,
}

impl TestBroker {
    /// Starts a broker on a free port with `storage`, its output in `dir/broker.log`.
    pub fn start(dir: &Path, storage: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut broker = Self {
            port,
            storage: storage.to_owned(),
            log: dir.join("broker.log"),
            child: None,
        };
        broker.restart();
        broker
    }

    /// Its address.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and storage, and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the broker's log file");
        let child = Command::new(server_binary())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .args(["--group-initial-rebalance-delay", "0s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("start nisshi");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "nisshi did not listen on port {} within 60 s (see {})",
                self.port,
                self.log.display()
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

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A topic prefix no other test (or earlier run) uses.
pub fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("t-{test}-{}-{nanos}", std::process::id())
}

/// One record as read back from the broker.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads every record of `topics` from the start, until `count` were read; fails after a
/// minute without them (a liveness guard, not a timing assertion).
pub fn read_back(topics: &[&str], count: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    consumer.subscribe(topics).expect("subscribes");
    let mut records = Vec::new();
    let started = Instant::now();
    while records.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "read {} of {count} records from {topics:?} within a minute",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a record");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    // Nothing more than expected arrives soon after.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(500) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "an unexpected record: {} [{}] @{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
        }
    }
    records
}
