//! Converts the API descriptions in `schema/` (YAML, for people) to the JSON the Worker
//! serves at `/openapi.json` and `/asyncapi.json`, so the served document is the reviewed
//! file and cannot drift from it. A spec that is not valid YAML fails the build.

use std::{env, fs, path::Path};

const SPECS: [&str; 2] = ["openapi", "asyncapi"];

fn main() {
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in SPECS {
        let source = format!("schema/{name}.yaml");
        println!("cargo:rerun-if-changed={source}");
        let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{source}: {e}"));
        let json = serde_json::to_string(&value).expect("a YAML value is JSON");
        fs::write(Path::new(&out_dir).join(format!("{name}.json")), json).expect("OUT_DIR is writable");
    }
}
