//! The safe wrapper on a real kernel: a vmcore of a Debian 6.1 guest (the rig's `basic`
//! scenario, dumped once and cached), checked against facts every x86-64 kernel has.

use std::path::PathBuf;
use std::sync::OnceLock;

use kql_drgn::{DebugInfo, ErrorKind, Program, Target};
use kql_rig::kernels::{self, Series};

/// The start of x86-64's kernel half, a guard hole the kernel never maps.
const GUARD_HOLE: u64 = 0xffff_8000_0000_0000;

/// The cached vmcore and its vmlinux.
fn vmcore() -> &'static (PathBuf, PathBuf) {
    static VMCORE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    VMCORE.get_or_init(|| kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the basic vmcore of 6.1"))
}

fn program() -> Program {
    let (vmcore, vmlinux) = vmcore();
    let mut program = Program::attach(Target::CoreDump(vmcore.clone())).expect("open the vmcore");
    program.load_debug_info(DebugInfo::Vmlinux(vmlinux)).expect("load the vmlinux");
    program
}

#[test]
fn objects_follow_members_pointers_and_containers() {
    let program = program();
    let init_task = program.object("init_task").unwrap();
    assert_eq!(init_task.member("comm").unwrap().read_c_string().unwrap(), "swapper/0");
    assert_eq!(init_task.member("pid").unwrap().read_signed().unwrap(), 0);
    assert_eq!(
        init_task.member("comm").unwrap().subscript(0).unwrap().read_signed().unwrap(),
        i64::from(b's')
    );
    let comm = init_task.member("comm").unwrap().read_bytes().unwrap();
    assert!(comm.starts_with(b"swapper/0\0") && comm.len() == 16, "{comm:?}");

    let pointer = init_task.address_of().unwrap();
    assert_eq!(pointer.read_unsigned().unwrap(), init_task.address().unwrap());
    assert_eq!(pointer.arrow("pid").unwrap().read_signed().unwrap(), 0);
    assert_eq!(pointer.deref().unwrap().address(), init_task.address());

    let task_struct = program.find_type("struct task_struct").unwrap();
    let first = init_task.member("tasks").unwrap().member("next").unwrap();
    let init = first.container_of(task_struct, "tasks").unwrap();
    assert_eq!(init.arrow("pid").unwrap().read_signed().unwrap(), 1, "the first process is init");
    let unsigned_long = program.find_type("unsigned long").unwrap();
    assert_eq!(init.cast(unsigned_long).unwrap().read_unsigned().unwrap(), init.read_unsigned().unwrap());
    assert_eq!(program.kernel_release().unwrap(), kernels::fetch(Series::Bookworm61).unwrap().release);
}

#[test]
fn types_answer_which_members_this_kernel_has() {
    let program = program();
    let hashinfo = program.find_type("struct inet_hashinfo").unwrap();
    assert!(hashinfo.has_member("lhash2").unwrap());
    assert!(!hashinfo.has_member("listening_hash").unwrap(), "6.1 retired listening_hash");
    assert!(program.has_type("struct sock").unwrap());
    assert!(!program.has_type("struct no_such_type").unwrap());
    assert!(program.has_object("tcp_hashinfo").unwrap());
    assert!(!program.has_object("no_such_symbol").unwrap());

    let sock = program.find_type("struct sock").unwrap();
    let reuseport = sock.field("__sk_common.skc_reuseport").unwrap();
    assert_eq!(reuseport.bits.map(|(_, width)| width), Some(1), "a one-bit bit-field");
    let family = sock.field("__sk_common.skc_family").unwrap();
    assert_eq!((family.size, family.bits), (2, None));
    assert_eq!(sock.offset_of("__sk_common").unwrap(), 0);
}

#[test]
fn errors_carry_kind_and_fault_address() {
    let program = program();
    let missing = program.object("no_such_symbol").err().unwrap();
    assert_eq!(missing.kind, ErrorKind::Lookup);
    assert!(missing.message.contains("no_such_symbol"), "{missing}");
    let mut byte = [0u8; 1];
    let fault = program.read_memory(GUARD_HOLE, &mut byte).err().unwrap();
    assert_eq!(fault.kind, ErrorKind::Fault, "{fault}");
    assert_eq!(fault.fault_address, Some(GUARD_HOLE));
    let member = program.object("init_task").unwrap().member("no_such_member").err().unwrap();
    assert_eq!(member.kind, ErrorKind::Lookup, "{member}");
}

/// `Program` is `Send` (it can move to a scan thread) but not `Sync` (libdrgn allows one
/// thread at a time). The second half is the usual auto-trait trick: the method call is
/// ambiguous, so it fails to compile, exactly when `Program: Sync`.
#[test]
fn program_is_send_but_not_sync() {
    fn send<T: Send>() {}
    send::<Program>();
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
    <Program as AmbiguousIfSync<_>>::check();
}
