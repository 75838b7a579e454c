//! What `build.rs` generates is exactly what is committed under `schemas/orders/`.

use std::path::{Path, PathBuf};

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(
                    path.strip_prefix(root)
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_build_output_is_the_committed_output() {
    let generated = Path::new(factum_example_orders_contracts::GENERATED_DIR);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/orders");
    let files = files_under(generated);
    assert_eq!(files, files_under(&committed), "the same files");
    assert_eq!(files.len(), 21);
    for file in files {
        assert!(
            std::fs::read(generated.join(&file)).unwrap()
                == std::fs::read(committed.join(&file)).unwrap(),
            "{} differs from the committed one",
            file.display()
        );
    }
    assert!(factum_example_orders_contracts::TYPESCRIPT.contains("export type EventEnvelope"));
    assert!(factum_example_orders_contracts::PYTHON.contains("class OrderPlacedV2"));
    assert!(factum_example_orders_contracts::ASYNCAPI_JSON.contains("\"asyncapi\": \"3.0.0\""));
    assert!(factum_example_orders_contracts::REGISTRY_JSON.contains("\"OrderPlaced\""));
}
