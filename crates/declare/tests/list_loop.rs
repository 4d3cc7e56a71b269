//! vmcores crafted to break a declared table's list: copies of the rig's 6.1 `basic` vmcore
//! in which the `slab_caches` list (`struct kmem_cache`, linked through `list`) loops
//! without passing its head, or leads out of the kernel. A scan of the shipped
//! `slab_caches` declaration over each must end promptly with one clear warning: no panic,
//! no hang. An unpatched copy gives every cache and no warning.
//!
//! The patch writes one `list.next`: `kmem_cache` objects are slab-allocated, so they live
//! in the direct map (virtual = physical + `page_offset_base`), and the ELF vmcore's
//! `PT_LOAD` program headers map physical addresses to offsets in the file.
//!
//! When the kql binary is built (`target/debug/kql`, by `cargo build`), the loop is also
//! checked through it: `select count(*) from slab_caches` exits 0 and says why on stderr.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kql_declare::bind::Binder;
use kql_declare::walk::{Budget, Wanted, scan};
use kql_kernel::list::list_nodes;
use kql_kernel::{Memory, TypeSource};

mod common;
use common::{basic_vmcore, open};

const SLAB_CACHES: &str = include_str!("../../../tables/slab_caches.sql");
/// How long a scan of a crafted vmcore may take, opening it and loading BTF included.
const PROMPTLY: Duration = Duration::from_secs(60);
/// Which node of the list is patched (the loop goes back to node `K - 3`).
const K: usize = 10;
/// A `next` pointer that is no kernel address.
const WILD: u64 = 0x4141_4141_4141_4141;

/// What the patches need of a vmcore: the `list` nodes of `slab_caches` (each a `struct
/// kmem_cache`'s `list`, whose `next` is its first member) and `page_offset_base`.
struct SlabList {
    nodes: Vec<u64>,
    page_offset_base: u64,
}

fn slab_list(vmcore: &Path) -> SlabList {
    let kernel = open(vmcore);
    let types = kernel.types(TypeSource::Btf).unwrap();
    let mem = Memory::new(&types);
    let nodes = list_nodes(&mem, types.symbol("slab_caches").unwrap(), "slab_caches").unwrap();
    let page_offset_base = types.program().read_u64(types.symbol("page_offset_base").unwrap()).unwrap();
    assert!(nodes.len() > K + 10, "{} slab caches", nodes.len());
    SlabList { nodes, page_offset_base }
}

/// The offset in the ELF vmcore `file` of physical address `physical` (8 bytes of it).
fn file_offset(file: &Path, physical: u64) -> u64 {
    const PT_LOAD: u32 = 1;
    let elf = File::open(file).unwrap();
    let mut header = [0u8; 64];
    elf.read_exact_at(&mut header, 0).unwrap();
    assert_eq!(&header[..6], b"\x7fELF\x02\x01", "a 64-bit little-endian ELF file");
    let u16_at =
        |bytes: &[u8], at: usize| u64::from(u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()));
    let u64_at = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(&header, 0x20), u16_at(&header, 0x36), u16_at(&header, 0x38));
    let mut headers = vec![0u8; (phentsize * phnum) as usize];
    elf.read_exact_at(&mut headers, phoff).unwrap();
    for ph in headers.chunks_exact(phentsize as usize) {
        let kind = u32::from_le_bytes(ph[..4].try_into().unwrap());
        let (offset, paddr, filesz) = (u64_at(ph, 8), u64_at(ph, 24), u64_at(ph, 32));
        if kind == PT_LOAD && (paddr..paddr + filesz.saturating_sub(8)).contains(&physical) {
            return offset + (physical - paddr);
        }
    }
    panic!("physical address {physical:#x} is in no PT_LOAD segment of {}", file.display());
}

/// A copy of a vmcore in a directory of its own, removed when dropped.
struct Crafted {
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Crafted {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A copy of `vmcore` (reflinked where the file system can) whose `next` pointer of the list
/// node at `node` is `next`, if given; checked by reading it back through kql's memory view.
fn crafted(vmcore: &Path, name: &str, list: &SlabList, patch: Option<(u64, u64)>) -> Crafted {
    let dir = std::env::temp_dir().join(format!("kql-list-loop-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let crafted = Crafted { file: dir.join("crafted.vmcore"), dir };
    let reflinked = Command::new("cp")
        .arg("--reflink=auto")
        .arg(vmcore)
        .arg(&crafted.file)
        .status()
        .is_ok_and(|status| status.success());
    if !reflinked {
        fs::copy(vmcore, &crafted.file).unwrap();
    }
    fs::set_permissions(&crafted.file, fs::Permissions::from_mode(0o600)).unwrap();
    let Some((node, next)) = patch else { return crafted };
    let physical = node.checked_sub(list.page_offset_base).filter(|&p| p < 64 << 40);
    let physical = physical.unwrap_or_else(|| panic!("{node:#x} is not in the direct map"));
    let offset = file_offset(&crafted.file, physical);
    let file = fs::OpenOptions::new().write(true).open(&crafted.file).unwrap();
    file.write_all_at(&next.to_le_bytes(), offset).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let kernel = open(&crafted.file);
    let types = kernel.types(TypeSource::Btf).unwrap();
    assert_eq!(Memory::new(&types).read_u64(node).unwrap(), next, "the patch reads back");
    crafted
}

/// What a scan of the shipped `slab_caches` over `vmcore` gives: its rows and warnings,
/// or its error; within [`PROMPTLY`] or the test fails.
fn scan_slab_caches(vmcore: &Path) -> Result<(usize, Vec<String>), String> {
    let (send, receive) = mpsc::channel();
    let vmcore = vmcore.to_path_buf();
    let started = Instant::now();
    std::thread::spawn(move || {
        let kernel = open(&vmcore);
        let types = kernel.types(TypeSource::Btf).unwrap();
        let declaration = kql_declare::parser::parse(SLAB_CACHES).expect("slab_caches parses").remove(0);
        let plan = Binder::new(&types, &|_| None).bind(&declaration).expect("slab_caches binds");
        let result = scan(&plan, &types, &Wanted::new(), Budget::default())
            .map(|scanned| (scanned.columns[0].len(), scanned.warnings))
            .map_err(|e| e.to_string());
        let _ = send.send(result);
    });
    match receive.recv_timeout(PROMPTLY) {
        Ok(result) => {
            eprintln!("scanned in {:.2} s: {result:?}", started.elapsed().as_secs_f64());
            result
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the scan did not end in {PROMPTLY:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the scan panicked"),
    }
}

/// The one warning a scan gives, which must be one line.
fn one_warning(result: Result<(usize, Vec<String>), String>) -> String {
    let (_, warnings) = result.expect("the scan ends with rows and warnings, not an error");
    assert_eq!(warnings.len(), 1, "one warning: {warnings:?}");
    let warning = warnings.into_iter().next().unwrap();
    assert!(!warning.contains('\n'), "one line: {warning}");
    warning
}

/// `target/debug/kql`, if it is built.
fn kql_binary() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    Some(target.join("debug/kql")).filter(|kql| kql.is_file())
}

/// `kql --core vmcore --types btf sql`: its exit status, stdout and stderr, within [`PROMPTLY`].
fn run_kql(kql: &Path, vmcore: &Path, sql: &str) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(kql)
        .arg("--core")
        .arg(vmcore)
        .args(["--types", "btf", "--format", "csv", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kql");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PROMPTLY {
            let _ = child.kill();
            panic!("kql did not end in {PROMPTLY:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status, text(output.stdout), text(output.stderr))
}

#[test]
fn an_unpatched_copy_gives_every_cache_and_no_warning() {
    let vmcore = basic_vmcore();
    let list = slab_list(&vmcore);
    let copy = crafted(&vmcore, "unpatched", &list, None);
    let (rows, warnings) = scan_slab_caches(&copy.file).expect("the scan");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(rows, list.nodes.len(), "every cache of the list");
}

#[test]
fn a_list_that_loops_without_its_head_is_one_warning() {
    let vmcore = basic_vmcore();
    let list = slab_list(&vmcore);
    let (node, back) = (list.nodes[K], list.nodes[K - 3]);
    let crafted = crafted(&vmcore, "loop", &list, Some((node, back)));
    let warning = one_warning(scan_slab_caches(&crafted.file));
    assert!(warning.contains("loops"), "the warning names the loop: {warning}");
    assert!(warning.contains("slab_caches"), "the warning names the table: {warning}");

    let Some(kql) = kql_binary() else {
        eprintln!("skipping the kql binary: target/debug/kql is not built (cargo build)");
        return;
    };
    let (status, stdout, stderr) = run_kql(&kql, &crafted.file, "select count(*) from slab_caches");
    eprintln!("kql: {status}\nstdout:\n{stdout}stderr:\n{stderr}");
    assert!(status.success(), "kql exits 0: {status}, stderr: {stderr}");
    assert!(stderr.contains("loops"), "kql says why on stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_next_pointer_out_of_the_kernel_is_one_warning() {
    let vmcore = basic_vmcore();
    let list = slab_list(&vmcore);
    let crafted = crafted(&vmcore, "wild", &list, Some((list.nodes[K], WILD)));
    let warning = one_warning(scan_slab_caches(&crafted.file));
    assert!(warning.contains("slab_caches"), "the warning names the table: {warning}");
    assert!(warning.contains("4141414141414141"), "the warning names the pointer: {warning}");
}
