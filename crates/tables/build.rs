//! Embeds every `queries/*.sql` file of the repository as a saved query, and every
//! `tables/*.sql` file as a shipped kernel-table declaration.

use std::{env, fs, path::Path};

fn main() {
    embed("queries", "saved_queries.rs", "SAVED", "(file stem, text) of every saved query.");
    embed("tables", "declared_tables.rs", "DECLARED", "(file stem, text) of every shipped declaration.");
}

/// Writes `OUT_DIR/out` with a constant `name` listing the `.sql` files of the repository's `dir`.
fn embed(dir: &str, out: &str, name: &str, doc: &str) {
    println!("cargo:rerun-if-changed=../../{dir}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry is readable").path())
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
    let code = format!("/// {doc}\npub const {name}: &[(&str, &str)] = &[\n{entries}];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join(out);
    fs::write(out, code).expect("OUT_DIR is writable");
}
