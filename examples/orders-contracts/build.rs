//! Generates the order domain's registry, schemas and contracts into `OUT_DIR`, from
//! the domain crate (a build-dependency). Files are written only when their content
//! changed.

use std::path::PathBuf;

use factum::registry::Registry;
use factum_codegen::asyncapi::AsyncApiInfo;
use factum_codegen::generate::generate;
use factum_example_orders::Order;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .map_err(|conflicts| format!("conflicting schemas: {conflicts:?}"))?;
    let info = AsyncApiInfo {
        title: "Order service".into(),
        version: "1.0.0".into(),
        description: "The order lifecycle of the example shop.".into(),
        ..AsyncApiInfo::default()
    };
    let files = generate(&serde_json::to_value(&registry)?, &info)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("contracts");
    files.write_changed(&out)?;
    Ok(())
}
