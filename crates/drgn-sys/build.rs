//! Builds libdrgn 0.3.0 as a static library from the pinned PyPI source distribution.
//!
//! The sdist (`pip download --no-deps --no-binary :all: drgn==0.3.0`) is cached in
//! `$KQL_CACHE`, `$XDG_CACHE_HOME/kql` or `~/.cache/kql` under `drgn/`, checked against its
//! sha256, unpacked into `OUT_DIR`, configured without Python and built with `make`. Debian
//! packages needed: `libelf-dev libdw-dev liblzma-dev zlib1g-dev libjson-c-dev libpcre2-dev`,
//! optionally `libkdumpfile-dev` (kdump-compressed vmcores), plus `python3`, `pkg-config`, `make`.
//! `layout.c` is compiled against the real `drgn.h` so a test can pin the Rust declarations.

use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "0.3.0";
const SDIST_SHA256: &str = "9794cb2a8ac8a3dc25c4756ad5a6272e078ca06731ff3f6ac32308b9f770a015";
/// Libraries libdrgn's objects call into, in link order, always present.
const REQUIRED_LIBS: &[&str] = &["json-c", "pcre2-8", "dw", "elf", "lzma", "z", "gomp", "m", "pthread"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=layout.c");
    println!("cargo:rerun-if-env-changed=KQL_CACHE");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let sdist = cached_sdist();
    let libdrgn = out.join(format!("drgn-{VERSION}/libdrgn"));
    let kdumpfile = pkg_config_has("libkdumpfile");
    if !libdrgn.join(".libs/libdrgn.a").exists() {
        unpack(&sdist, &out);
        configure(&libdrgn, kdumpfile);
        run(Command::new("make").arg(format!("-j{}", jobs())).current_dir(&libdrgn), &libdrgn, "make");
    }
    println!("cargo:rustc-link-search=native={}", libdrgn.join(".libs").display());
    println!("cargo:rustc-link-lib=static=drgn");
    if kdumpfile {
        println!("cargo:rustc-link-lib=dylib=kdumpfile");
    }
    for lib in REQUIRED_LIBS {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:include={}", libdrgn.display());
    cc::Build::new().file("layout.c").include(&libdrgn).warnings(true).compile("drgn_layout");
}

/// The verified sdist in the cache, downloaded with pip when missing.
fn cached_sdist() -> PathBuf {
    let dir = cache_dir().join("drgn");
    let sdist = dir.join(format!("drgn-{VERSION}.tar.gz"));
    if !sdist.exists() {
        download(&dir);
    }
    let digest = sha256(&sdist);
    if digest != SDIST_SHA256 {
        let _ = std::fs::remove_file(&sdist);
        panic!("{} has sha256 {digest}, expected {SDIST_SHA256}; deleted it, build again", sdist.display());
    }
    sdist
}

/// `$KQL_CACHE`, else `$XDG_CACHE_HOME/kql`, else `~/.cache/kql` (the rig's cache too).
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KQL_CACHE") {
        return dir.into();
    }
    let home = || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache");
    std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(home).join("kql")
}

/// Downloads the sdist with pip into a private directory, then moves it into `dir`.
fn download(dir: &Path) {
    let staging = dir.join(format!("download.{}", std::process::id()));
    std::fs::create_dir_all(&staging).expect("create the drgn cache directory");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"])
        .arg(format!("drgn=={VERSION}"))
        .arg("-d")
        .arg(&staging)
        .status()
        .expect("run python3 -m pip (Debian: apt-get install python3-pip)");
    assert!(status.success(), "pip download drgn=={VERSION} failed");
    let name = format!("drgn-{VERSION}.tar.gz");
    std::fs::rename(staging.join(&name), dir.join(&name)).expect("move the sdist into the cache");
    let _ = std::fs::remove_dir_all(&staging);
}

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    assert!(output.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn unpack(sdist: &Path, out: &Path) {
    let _ = std::fs::remove_dir_all(out.join(format!("drgn-{VERSION}")));
    run(Command::new("tar").arg("-xzf").arg(sdist).arg("-C").arg(out), out, "tar");
}

fn configure(libdrgn: &Path, kdumpfile: bool) {
    let mut command = Command::new("./configure");
    command.args([
        "--disable-python",
        "--disable-shared",
        "--enable-static",
        "--with-pic",
        "--with-json-c",
        "--with-lzma",
        "--with-pcre2",
        "--without-debuginfod",
    ]);
    command.arg(if kdumpfile { "--with-libkdumpfile" } else { "--without-libkdumpfile" });
    run(command.current_dir(libdrgn), libdrgn, "configure");
}

fn pkg_config_has(library: &str) -> bool {
    Command::new("pkg-config").args(["--exists", library]).status().is_ok_and(|s| s.success())
}

fn jobs() -> String {
    std::env::var("NUM_JOBS").unwrap_or_else(|_| "2".into())
}

/// Runs a build step with its output in `dir/<what>.log`; fails with the log's tail.
fn run(command: &mut Command, dir: &Path, what: &str) {
    let log = dir.join(format!("{what}.kql.log"));
    let file = std::fs::File::create(&log).expect("create build log");
    let status = command
        .stdout(file.try_clone().expect("dup build log"))
        .stderr(file)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{what} of libdrgn failed ({}):\n{}", log.display(), tail.join("\n"));
    }
}
