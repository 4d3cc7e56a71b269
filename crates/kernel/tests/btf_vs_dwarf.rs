//! The BTF type layer against DWARF on a real kernel: a vmcore of a Debian 6.1 guest (the rig's
//! `basic` scenario, dumped once and cached), opened once with its debug vmlinux and once with
//! nothing but what its memory holds. Every member of every struct the walks read, one level
//! into named members too, must sit at the same place with the same size and bits; the
//! kallsyms decoded from memory must put globals where the vmlinux's symbols do.

use std::path::PathBuf;
use std::sync::OnceLock;

use kql_btf::{Btf, Kind, TypeId};
use kql_drgn::{DebugInfo, ErrorKind, Program, Target};
use kql_kernel::{Kernel, KernelType, Shape, TypeSource};
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

/// Structs whose full description (shape, name, every member reachable by name, enumerators
/// of enum members) must read the same from BTF and DWARF, besides those of [`STRUCTS`].
const DESCRIBED: &[&str] = &[
    "struct module",
    "struct mount",
    "struct net_device",
    "struct kmem_cache",
    "struct sock",
    "struct timer_list",
    "struct xarray",
    "struct idr",
    "struct bpf_prog",
    "struct cgroup",
];

/// A type's shape in words, naming the types it refers to: what must agree between sources.
fn shape_text(ty: KernelType) -> String {
    match ty.shape().unwrap_or_else(|e| panic!("shape of {}: {e}", ty.name())) {
        Shape::Pointer(target) => format!("pointer to {}", target.name()),
        Shape::Array { element, length } => format!("array of {length:?} {}", element.name()),
        shape => format!("{shape:?}"),
    }
}

/// One member in words: type name and shape, offset and width, enumerators of an enum.
fn member_text(ty: KernelType, name: &str) -> String {
    let member = ty.member(name).unwrap().unwrap_or_else(|| panic!("{} has no member {name}", ty.name()));
    let enumerators = member.ty.enumerators().unwrap_or_default();
    let (type_name, shape) = (member.ty.name(), shape_text(member.ty));
    format!(
        "{name}: {type_name} ({shape}) at bit {} {:?} {enumerators:?}",
        member.bit_offset, member.bit_size
    )
}

#[test]
fn btf_and_dwarf_describe_types_alike() {
    let (dwarf, btf) = (open(TypeSource::Dwarf), open(TypeSource::Btf));
    let (dwarf_types, btf_types) =
        (dwarf.types(TypeSource::Dwarf).unwrap(), btf.types(TypeSource::Btf).unwrap());
    let mut compared = 0;
    for name in DESCRIBED.iter().chain(STRUCTS) {
        let (from_dwarf, from_btf) =
            (dwarf_types.find_type(name).unwrap(), btf_types.find_type(name).unwrap());
        assert_eq!((from_btf.name(), shape_text(from_btf)), (from_dwarf.name(), shape_text(from_dwarf)));
        let names = from_dwarf.member_names().unwrap();
        assert_eq!(from_btf.member_names().unwrap(), names, "members of {name}");
        for member in &names {
            assert_eq!(member_text(from_btf, member), member_text(from_dwarf, member), "{name}");
            compared += 1;
        }
        assert!(from_btf.member("no_such_member").unwrap().is_none());
        assert!(from_btf.enumerators().is_err() && from_dwarf.enumerators().is_err());
    }
    assert!(compared > 1000, "compared {compared} members");
    for name in ["enum module_state", "enum sock_type", "enum bpf_prog_type"] {
        let (from_dwarf, from_btf) =
            (dwarf_types.find_type(name).unwrap(), btf_types.find_type(name).unwrap());
        assert_eq!(from_btf.enumerators().unwrap(), from_dwarf.enumerators().unwrap(), "{name}");
        assert_eq!(shape_text(from_btf), shape_text(from_dwarf), "{name}");
    }
}

#[test]
fn btf_and_dwarf_find_the_same_symbols_and_variable_types() {
    let (dwarf, btf) = (open(TypeSource::Dwarf), open(TypeSource::Btf));
    let (dwarf_types, btf_types) =
        (dwarf.types(TypeSource::Dwarf).unwrap(), btf.types(TypeSource::Btf).unwrap());
    let timer = btf_types.symbol("tcp_keepalive_timer").unwrap();
    let expected = Some(("tcp_keepalive_timer".to_string(), 4));
    assert_eq!(dwarf_types.symbol_at(timer + 4), expected);
    assert_eq!(btf_types.symbol_at(timer + 4), expected);
    for name in ["runqueues", "timer_bases"] {
        let (from_dwarf, from_btf) = (dwarf_types.variable_type(name), btf_types.variable_type(name));
        assert_eq!(from_btf.map(|ty| ty.name()), from_dwarf.map(|ty| ty.name()), "{name}");
    }
    assert_eq!(btf_types.variable_type("runqueues").unwrap().name(), "struct rq");
    assert!(btf_types.variable_type("init_task").is_none(), "BTF describes per-cpu variables only");
    assert_eq!(dwarf_types.variable_type("init_task").unwrap().name(), "struct task_struct");
}
