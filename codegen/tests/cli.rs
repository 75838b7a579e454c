//! The `factum` command: generation, `--check`, and the published-registry check.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use factum::registry::Registry;
use factum_example_orders::Order;

fn factum(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(arguments)
        .output()
        .expect("run the factum command")
}

fn write_registry(dir: &Path) -> PathBuf {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicts");
    let path = dir.join("registry-input.json");
    std::fs::write(&path, serde_json::to_string(&registry).unwrap()).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn generate_writes_only_changes_and_check_detects_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let registry = write_registry(dir.path());
    let registry = registry.to_str().unwrap();
    let out = dir.path().join("schemas");
    let out = out.to_str().unwrap();

    let first = factum(&["schema", "generate", "--registry", registry, "--out", out]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), "21 files written, 0 unchanged\n");
    let again = factum(&["schema", "generate", "--registry", registry, "--out", out]);
    assert_eq!(text(&again.stdout), "0 files written, 21 unchanged\n");

    let check = factum(&[
        "schema",
        "generate",
        "--registry",
        registry,
        "--out",
        out,
        "--check",
    ]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    std::fs::write(
        Path::new(out).join("events/OrderPlaced.v2.schema.json"),
        "{}\n",
    )
    .unwrap();
    std::fs::write(Path::new(out).join("events/Gone.v1.schema.json"), "{}\n").unwrap();
    let stale = factum(&[
        "schema",
        "generate",
        "--registry",
        registry,
        "--out",
        out,
        "--check",
    ]);
    assert_eq!(stale.status.code(), Some(1));
    let stderr = text(&stale.stderr);
    assert!(
        stderr.contains("out of date: events/OrderPlaced.v2.schema.json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not generated any more: events/Gone.v1.schema.json"),
        "{stderr}"
    );
}

#[test]
fn check_compares_with_the_published_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = write_registry(dir.path());
    let published = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/orders/registry.json");
    let (registry, published) = (registry.to_str().unwrap(), published.to_str().unwrap());
    let ok = factum(&[
        "schema",
        "check",
        "--registry",
        registry,
        "--published",
        published,
        "--event",
        "OrderShipped=full",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    let mut changed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(registry).unwrap()).unwrap();
    for entry in changed["entries"].as_array_mut().unwrap() {
        if entry["name"] == "OrderConfirmed" {
            entry["schema"]["properties"]["total"] = serde_json::json!({ "type": "string" });
        }
    }
    let changed_path = dir.path().join("changed.json");
    std::fs::write(&changed_path, changed.to_string()).unwrap();
    let broken = factum(&[
        "schema",
        "check",
        "--registry",
        changed_path.to_str().unwrap(),
        "--published",
        published,
    ]);
    assert_eq!(broken.status.code(), Some(1));
    let stderr = text(&broken.stderr);
    assert!(
        stderr.contains(
            "event `OrderConfirmed` v1: the published schema changed at `/properties/total/type`"
        ),
        "{stderr}"
    );

    let bad_mode = factum(&[
        "schema",
        "check",
        "--registry",
        registry,
        "--published",
        published,
        "--event",
        "OrderShipped",
    ]);
    assert_eq!(
        bad_mode.status.code(),
        Some(2),
        "clap refuses a malformed --event"
    );
}

#[test]
fn lint_warns_allows_and_can_deny() {
    let dir = tempfile::tempdir().unwrap();
    let registry = write_registry(dir.path());
    let clean = factum(&[
        "schema",
        "lint",
        "--registry",
        registry.to_str().unwrap(),
        "--deny-warnings",
    ]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert!(clean.stderr.is_empty());

    let mut renamed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&registry).unwrap()).unwrap();
    for entry in renamed["entries"].as_array_mut().unwrap() {
        if entry["name"] == "OrderShipped" {
            entry["name"] = serde_json::json!("OrderShip");
        }
    }
    let renamed_path = dir.path().join("renamed.json");
    std::fs::write(&renamed_path, renamed.to_string()).unwrap();
    let renamed_path = renamed_path.to_str().unwrap();
    let warned = factum(&["schema", "lint", "--registry", renamed_path]);
    assert!(warned.status.success(), "warnings alone do not fail");
    assert!(
        text(&warned.stderr).contains("warning[event-past-tense]: event `OrderShip`"),
        "{}",
        text(&warned.stderr)
    );
    let denied = factum(&[
        "schema",
        "lint",
        "--registry",
        renamed_path,
        "--deny-warnings",
    ]);
    assert_eq!(denied.status.code(), Some(1));
    let allowed = factum(&[
        "schema",
        "lint",
        "--registry",
        renamed_path,
        "--deny-warnings",
        "--allow",
        "event-past-tense:OrderShip",
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
}

/// Runs `git` in `repo`; panics with its output when it fails.
fn git(repo: &Path, arguments: &[&str]) {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(arguments)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {arguments:?}: {}",
        text(&output.stderr)
    );
}

/// The bypass the published check once allowed: a released schema changed, the files
/// regenerated as the stale-files message asks, and both committed. Checked against the
/// release record, which generation never writes, the change is still refused, naming
/// the event, the version and the JSON path; releasing it is refused too.
#[test]
fn a_changed_released_schema_regenerated_and_committed_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    git(repo, &["config", "user.email", "dev@example.invalid"]);
    git(repo, &["config", "user.name", "A developer"]);
    let registry = write_registry(repo);
    let registry = registry.to_str().unwrap();
    let out = repo.join("schemas");
    let record = out.join("released.json");
    let (out, record) = (out.to_str().unwrap(), record.to_str().unwrap());
    let generate = || factum(&["schema", "generate", "--registry", registry, "--out", out]);
    let release = || {
        factum(&[
            "schema",
            "release",
            "--registry",
            registry,
            "--record",
            record,
            "--event",
            "OrderShipped=full",
        ])
    };

    assert!(generate().status.success());
    let first = release();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("released event `OrderConfirmed` v1"),
        "{}",
        text(&first.stdout)
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "release the order events"]);
    let released = std::fs::read_to_string(record).unwrap();

    // A breaking edit of a released event, regenerated and committed.
    let mut changed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(registry).unwrap()).unwrap();
    for entry in changed["entries"].as_array_mut().unwrap() {
        if entry["name"] == "OrderConfirmed" {
            entry["schema"]["properties"]["total"] = serde_json::json!({ "type": "string" });
        }
    }
    std::fs::write(registry, changed.to_string()).unwrap();
    let regenerated = generate();
    assert!(regenerated.status.success());
    assert_ne!(text(&regenerated.stdout), "0 files written, 21 unchanged\n");
    git(repo, &["add", "-A"]);
    git(
        repo,
        &[
            "commit",
            "-q",
            "-m",
            "regenerate as the stale-files message says",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(record).unwrap(),
        released,
        "generation leaves the release record alone"
    );

    // The test command's check, against the record.
    let check = factum(&[
        "schema",
        "check",
        "--registry",
        registry,
        "--published",
        record,
        "--event",
        "OrderShipped=full",
    ]);
    assert_eq!(check.status.code(), Some(1));
    let refusal =
        "event `OrderConfirmed` v1: the published schema changed at `/properties/total/type`";
    assert!(
        text(&check.stderr).contains(refusal),
        "{}",
        text(&check.stderr)
    );

    // Releasing the change is refused, and the record stays as released.
    let again = release();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains(refusal),
        "{}",
        text(&again.stderr)
    );
    assert!(
        text(&again.stderr).contains("nothing was released"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(record).unwrap(), released);
}
