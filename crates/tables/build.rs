//! Embeds every `queries/*.sql` file of the repository as a saved query.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=../../queries");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("queries/ is readable")
        .map(|entry| entry.expect("queries/ entry is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let entries: String = files
        .iter()
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy();
            format!("    ({stem:?}, include_str!({:?})),\n", path.display().to_string())
        })
        .collect();
    let code = format!(
        "/// (file stem, text) of every saved query.\npub const SAVED: &[(&str, &str)] = &[\n{entries}];\n"
    );
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("saved_queries.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
