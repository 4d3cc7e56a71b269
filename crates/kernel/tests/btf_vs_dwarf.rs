//! The BTF type layer against DWARF on a real kernel: a vmcore of a Debian 6.1 guest (the rig's
//! `basic` scenario, dumped once and cached), opened once with its debug vmlinux and once with
//! nothing but what its memory holds. Every member of every struct the walks read, one level
//! into named members too, must sit at the same place with the same size and bits; the
//! kallsyms decoded from memory must put globals where the vmlinux's symbols do.

use std::path::PathBuf;
use std::sync::OnceLock;

use kql_btf::{Btf, Kind, TypeId};
use kql_drgn::{DebugInfo, ErrorKind, Program, Target};
use kql_kernel::{Kernel, TypeSource};
use kql_rig::kernels::Series;

/// The structs the walks read.
const STRUCTS: &[&str] = &[
    "struct sock",
    "struct socket_alloc",
    "struct inet_hashinfo",
    "struct inet_listen_hashbucket",
    "struct net",
    "struct net_device",
    "struct task_struct",
    "struct signal_struct",
    "struct cred",
    "struct nsproxy",
    "struct css_set",
    "struct cgroup",
    "struct kernfs_node",
    "struct mm_struct",
    "struct timekeeper",
    "struct files_struct",
    "struct fdtable",
    "struct file",
    "struct inode",
    "struct super_block",
    "struct file_system_type",
    "struct dentry",
    "struct mount",
    "struct vfsmount",
];

fn vmcore() -> &'static (PathBuf, PathBuf) {
    static VMCORE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    VMCORE.get_or_init(|| kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the basic vmcore of 6.1"))
}

fn open(source: TypeSource) -> Kernel {
    let (vmcore, vmlinux) = vmcore();
    let mut kernel = Kernel::new(Program::attach(Target::CoreDump(vmcore.clone())).expect("open the vmcore"));
    match source {
        TypeSource::Dwarf => kernel.load_dwarf(DebugInfo::Vmlinux(vmlinux)).expect("DWARF"),
        TypeSource::Btf => kernel.load_btf(None).expect("BTF and kallsyms from the vmcore's memory"),
    }
    kernel
}

/// Member designators of the struct `id` as C reaches them: anonymous members flattened,
/// named struct or union members followed one level (`__sk_common.skc_family`).
fn designators(btf: &Btf, id: TypeId, depth: usize) -> Vec<String> {
    let mut names = Vec::new();
    let container = btf.resolve(id).unwrap();
    for member in container.members().unwrap().map(Result::unwrap) {
        let inner = btf.resolve(member.type_id).unwrap();
        let compound = matches!(inner.kind(), Kind::Struct | Kind::Union);
        if member.name.is_empty() {
            names.extend(designators(btf, member.type_id, depth));
            continue;
        }
        names.push(member.name.to_string());
        if compound && depth > 0 {
            let nested = designators(btf, member.type_id, depth - 1);
            names.extend(nested.into_iter().map(|n| format!("{}.{n}", member.name)));
        }
    }
    names
}

#[test]
fn btf_and_dwarf_place_every_member_alike() {
    let (dwarf, btf) = (open(TypeSource::Dwarf), open(TypeSource::Btf));
    let (dwarf_types, btf_types) =
        (dwarf.types(TypeSource::Dwarf).unwrap(), btf.types(TypeSource::Btf).unwrap());
    let mut compared = 0;
    for name in STRUCTS {
        let (from_dwarf, from_btf) =
            (dwarf_types.find_type(name).unwrap(), btf_types.find_type(name).unwrap());
        assert_eq!(from_btf.size().unwrap(), from_dwarf.size().unwrap(), "sizeof({name})");
        let raw = btf.btf().unwrap();
        for designator in designators(raw, raw.find_named(name).unwrap(), 1) {
            let (expected, got) = (from_dwarf.field(&designator), from_btf.field(&designator));
            match (&got, &expected) {
                // A flexible array member (`ancestors[]`): libdrgn cannot size it, BTF says 0.
                (Ok(field), Err(e)) if field.size == 0 && e.kind == ErrorKind::Type => {}
                _ => assert_eq!(got.map_err(|e| e.kind), expected.map_err(|e| e.kind), "{name}.{designator}"),
            }
            assert!(from_btf.has_member(designator.split('.').next().unwrap()).unwrap());
            compared += 1;
        }
    }
    assert!(compared > 2000, "compared {compared} members");
    assert!(!btf_types.find_type("struct sock").unwrap().has_member("no_such_member").unwrap());
}

#[test]
fn kallsyms_from_memory_agree_with_the_vmlinux_symbols() {
    let (dwarf, btf) = (open(TypeSource::Dwarf), open(TypeSource::Btf));
    let (dwarf_types, btf_types) =
        (dwarf.types(TypeSource::Dwarf).unwrap(), btf.types(TypeSource::Btf).unwrap());
    for symbol in ["tcp_hashinfo", "init_task", "tk_core", "page_offset_base", "init_uts_ns", "jiffies_64"] {
        assert_eq!(btf_types.symbol(symbol).unwrap(), dwarf_types.symbol(symbol).unwrap(), "{symbol}");
    }
    let error = btf_types.symbol("no_such_symbol").unwrap_err();
    assert!(error.message.contains("no_such_symbol"), "{error}");
}
