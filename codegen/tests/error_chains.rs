//! Every public error of factum-codegen, produced by the function that returns it, prints
//! each of its causes once (factum's own errors: `runtime/tests/error_chains.rs`, which
//! also scans the `#[error]` messages of this crate).

use factum::testing::assert_each_cause_once;
use factum_codegen::asyncapi::{AsyncApiInfo, asyncapi};
use factum_codegen::compat::Compatibility;
use factum_codegen::files::entries;
use factum_codegen::generate::generate;
use factum_codegen::lint::{Allowances, LintRule};
use factum_codegen::python::python;
use factum_codegen::release::release;
use factum_codegen::typescript::typescript;
use serde_json::json;

#[test]
fn each_error_prints_its_causes_once() {
    let malformed = json!({ "entries": "none" });
    assert_each_cause_once(&entries(&malformed).unwrap_err());
    assert_each_cause_once(&typescript(&malformed).unwrap_err());
    assert_each_cause_once(&python(&malformed).unwrap_err());
    assert_each_cause_once(&asyncapi(&malformed, &AsyncApiInfo::default()).unwrap_err());
    assert_each_cause_once(&generate(&malformed, &AsyncApiInfo::default()).unwrap_err());
    assert_each_cause_once(&release(None, &malformed, |_| Compatibility::Backward).unwrap_err());

    // A bad subject prefix fails AsyncAPI alone, so generating names the generator.
    let registry = json!({ "envelope": factum::envelope::envelope_schema(), "entries": [] });
    let info = AsyncApiInfo {
        subject_prefix: "no spaces allowed".to_owned(),
        ..AsyncApiInfo::default()
    };
    let generated = generate(&registry, &info).unwrap_err();
    let shown = assert_each_cause_once(&generated);
    assert!(shown.starts_with("AsyncAPI: "), "{shown}");

    assert_each_cause_once(&"SIDEWAYS".parse::<Compatibility>().unwrap_err());
    assert_each_cause_once(&"tense".parse::<LintRule>().unwrap_err());
    let allowance = Allowances::parse_one("tense:OrderStatus").unwrap_err();
    let shown = assert_each_cause_once(&allowance);
    assert!(shown.contains("unknown lint rule `tense`"), "{shown}");
    assert_each_cause_once(&Allowances::parse_one("no-colon").unwrap_err());
}
