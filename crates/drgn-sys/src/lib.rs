//! Raw declarations of the parts of libdrgn 0.3.0 (`libdrgn/drgn.h`) kql uses, plus the two
//! elfutils calls it needs to name a file's build id. Hand-written, not generated: each item
//! mirrors `drgn.h`, and `tests/layout.rs` checks sizes, offsets and enum widths against the
//! C compiler's view of the real header (see `layout.c`).
//!
//! libdrgn's enums are mostly `__attribute__((packed))`, i.e. one byte; they are declared here
//! as integer aliases with constants, because a C enum value outside a Rust enum's variants
//! would be undefined behaviour. `static inline` helpers of `drgn.h` are not exported by the
//! library; the ones kql needs are re-implemented at the bottom of this file.
//!
//! Everything here is `unsafe` to call; `kql-drgn` is the safe wrapper.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};

macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
            _not_send_sync: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
        }
    )*};
}

opaque!(
    /// An error; `NULL` means success. Free with [`drgn_error_destroy`].
    drgn_error,
    /// A program being debugged: here, a kernel (live, core dump or QEMU guest).
    drgn_program,
    /// A type from the program's debug info.
    drgn_type,
    /// A binary (kernel or module) of the program.
    drgn_module,
    /// Architecture description; kql passes `NULL` (detect from the target).
    drgn_platform,
    /// libelf's handle of an ELF file.
    Elf,
);

/// `enum drgn_error_code` (packed, 1 byte).
pub type drgn_error_code = u8;
pub const DRGN_ERROR_NO_MEMORY: drgn_error_code = 0;
pub const DRGN_ERROR_STOP: drgn_error_code = 1;
pub const DRGN_ERROR_OTHER: drgn_error_code = 2;
pub const DRGN_ERROR_INVALID_ARGUMENT: drgn_error_code = 3;
pub const DRGN_ERROR_OVERFLOW: drgn_error_code = 4;
pub const DRGN_ERROR_RECURSION: drgn_error_code = 5;
pub const DRGN_ERROR_OS: drgn_error_code = 6;
pub const DRGN_ERROR_MISSING_DEBUG_INFO: drgn_error_code = 7;
pub const DRGN_ERROR_SYNTAX: drgn_error_code = 8;
pub const DRGN_ERROR_LOOKUP: drgn_error_code = 9;
pub const DRGN_ERROR_FAULT: drgn_error_code = 10;
pub const DRGN_ERROR_TYPE: drgn_error_code = 11;
pub const DRGN_ERROR_ZERO_DIVISION: drgn_error_code = 12;
pub const DRGN_ERROR_OUT_OF_BOUNDS: drgn_error_code = 13;
pub const DRGN_ERROR_OBJECT_ABSENT: drgn_error_code = 14;
pub const DRGN_ERROR_NOT_IMPLEMENTED: drgn_error_code = 15;
pub const DRGN_ERROR_UNSUPPORTED_OPERATION: drgn_error_code = 16;
pub const DRGN_ERROR_RUNTIME: drgn_error_code = 17;
pub const DRGN_ERROR_BAD_DATA: drgn_error_code = 18;

/// `enum drgn_program_flags` (4 bytes, bit flags).
pub type drgn_program_flags = c_uint;
pub const DRGN_PROGRAM_IS_LINUX_KERNEL: drgn_program_flags = 1 << 0;
pub const DRGN_PROGRAM_IS_LIVE: drgn_program_flags = 1 << 1;
pub const DRGN_PROGRAM_IS_LOCAL: drgn_program_flags = 1 << 2;

/// `enum drgn_qualifiers` (packed, 1 byte, bit flags).
pub type drgn_qualifiers = u8;

/// `enum drgn_object_encoding` (packed, 1 byte, signed).
pub type drgn_object_encoding = i8;

/// `enum drgn_object_kind` (packed, 1 byte).
pub type drgn_object_kind = u8;
pub const DRGN_OBJECT_VALUE: drgn_object_kind = 0;
pub const DRGN_OBJECT_REFERENCE: drgn_object_kind = 1;
pub const DRGN_OBJECT_ABSENT: drgn_object_kind = 2;

/// `enum drgn_type_kind` (packed, 1 byte).
pub type drgn_type_kind = u8;
pub const DRGN_TYPE_VOID: drgn_type_kind = 1;
pub const DRGN_TYPE_INT: drgn_type_kind = 2;
pub const DRGN_TYPE_BOOL: drgn_type_kind = 3;
pub const DRGN_TYPE_FLOAT: drgn_type_kind = 4;
pub const DRGN_TYPE_STRUCT: drgn_type_kind = 5;
pub const DRGN_TYPE_UNION: drgn_type_kind = 6;
pub const DRGN_TYPE_CLASS: drgn_type_kind = 7;
pub const DRGN_TYPE_ENUM: drgn_type_kind = 8;
pub const DRGN_TYPE_TYPEDEF: drgn_type_kind = 9;
pub const DRGN_TYPE_POINTER: drgn_type_kind = 10;
pub const DRGN_TYPE_ARRAY: drgn_type_kind = 11;
pub const DRGN_TYPE_FUNCTION: drgn_type_kind = 12;

/// `enum drgn_find_object_flags` (not packed: 4 bytes).
pub type drgn_find_object_flags = c_uint;
pub const DRGN_FIND_OBJECT_CONSTANT: drgn_find_object_flags = 1 << 0;
pub const DRGN_FIND_OBJECT_FUNCTION: drgn_find_object_flags = 1 << 1;
pub const DRGN_FIND_OBJECT_VARIABLE: drgn_find_object_flags = 1 << 2;
pub const DRGN_FIND_OBJECT_ANY: drgn_find_object_flags = (1 << 3) - 1;

/// `enum drgn_absence_reason` (4 bytes).
pub type drgn_absence_reason = c_uint;

/// `enum drgn_log_level` (4 bytes); `DRGN_LOG_NONE` is a macro one above the highest level.
pub type drgn_log_level = c_int;
pub const DRGN_LOG_CRITICAL: drgn_log_level = 4;
pub const DRGN_LOG_NONE: drgn_log_level = DRGN_LOG_CRITICAL + 1;

/// `union drgn_value`: an object's value when it is not a reference.
#[repr(C)]
#[derive(Clone, Copy)]
pub union drgn_value {
    pub bufp: *mut c_char,
    pub ibuf: [c_char; 8],
    pub svalue: i64,
    pub uvalue: u64,
    pub fvalue: f64,
}

/// The anonymous union at the end of `struct drgn_object`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union drgn_object_payload {
    pub value: drgn_value,
    pub address: u64,
    pub absence_reason: drgn_absence_reason,
}

/// `struct drgn_object`: caller-allocated, always set up with [`drgn_object_init`] and torn
/// down with [`drgn_object_deinit`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct drgn_object {
    pub type_: *mut drgn_type,
    pub bit_size: u64,
    pub qualifiers: drgn_qualifiers,
    pub encoding: drgn_object_encoding,
    pub kind: drgn_object_kind,
    pub is_bit_field: bool,
    pub little_endian: bool,
    pub bit_offset: u8,
    pub payload: drgn_object_payload,
}

/// `struct drgn_qualified_type`, passed by value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct drgn_qualified_type {
    pub type_: *mut drgn_type,
    pub qualifiers: drgn_qualifiers,
}

/// The thunk arm of `union drgn_lazy_object`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct drgn_lazy_thunk {
    pub dummy_type: *mut drgn_type,
    pub prog: *mut drgn_program,
    pub fn_: Option<unsafe extern "C" fn(*mut drgn_object, *mut c_void) -> *mut drgn_error>,
    pub arg: *mut c_void,
}

/// `union drgn_lazy_object`: a member's value, evaluated on first use.
#[repr(C)]
#[derive(Clone, Copy)]
pub union drgn_lazy_object {
    pub obj: drgn_object,
    pub thunk: drgn_lazy_thunk,
}

/// `struct drgn_type_member`.
#[repr(C)]
pub struct drgn_type_member {
    pub object: drgn_lazy_object,
    pub name: *const c_char,
    pub bit_offset: u64,
}

unsafe extern "C" {
    // Errors.
    pub fn drgn_error_code(err: *mut drgn_error) -> drgn_error_code;
    pub fn drgn_error_message(err: *mut drgn_error) -> *const c_char;
    pub fn drgn_error_os_errno(err: *mut drgn_error) -> c_int;
    pub fn drgn_error_os_path(err: *mut drgn_error) -> *const c_char;
    pub fn drgn_error_fault_address(err: *mut drgn_error) -> u64;
    pub fn drgn_error_string(err: *mut drgn_error) -> *mut c_char;
    pub fn drgn_error_destroy(err: *mut drgn_error);

    // Programs and their targets.
    pub fn drgn_program_create(
        platform: *const drgn_platform,
        ret: *mut *mut drgn_program,
    ) -> *mut drgn_error;
    pub fn drgn_program_destroy(prog: *mut drgn_program);
    pub fn drgn_program_set_kernel(prog: *mut drgn_program) -> *mut drgn_error;
    pub fn drgn_program_set_core_dump(prog: *mut drgn_program, path: *const c_char) -> *mut drgn_error;
    pub fn drgn_program_set_qemu_qmp(prog: *mut drgn_program, path: *const c_char) -> *mut drgn_error;
    pub fn drgn_program_flags(prog: *mut drgn_program) -> drgn_program_flags;
    pub fn drgn_program_set_log_level(prog: *mut drgn_program, level: drgn_log_level);
    pub fn drgn_program_load_debug_info(
        prog: *mut drgn_program,
        paths: *mut *const c_char,
        n: usize,
        load_default: bool,
        load_main: bool,
    ) -> *mut drgn_error;
    pub fn drgn_program_read_memory(
        prog: *mut drgn_program,
        buf: *mut c_void,
        address: u64,
        count: usize,
        physical: bool,
    ) -> *mut drgn_error;
    pub fn drgn_program_find_type(
        prog: *mut drgn_program,
        name: *const c_char,
        filename: *const c_char,
        ret: *mut drgn_qualified_type,
    ) -> *mut drgn_error;
    pub fn drgn_program_find_object(
        prog: *mut drgn_program,
        name: *const c_char,
        filename: *const c_char,
        flags: drgn_find_object_flags,
        ret: *mut drgn_object,
    ) -> *mut drgn_error;

    // Modules: which debug file the kernel got.
    pub fn drgn_module_find_main(prog: *mut drgn_program, name: *const c_char) -> *mut drgn_module;
    pub fn drgn_module_build_id(
        module: *const drgn_module,
        raw_ret: *mut *const c_void,
        raw_len_ret: *mut usize,
    ) -> *const c_char;
    pub fn drgn_module_wants_debug_file(module: *const drgn_module) -> bool;
    pub fn drgn_module_debug_file_path(module: *const drgn_module) -> *const c_char;

    // Objects.
    pub fn drgn_object_init(obj: *mut drgn_object, prog: *mut drgn_program);
    pub fn drgn_object_deinit(obj: *mut drgn_object);
    pub fn drgn_object_copy(res: *mut drgn_object, obj: *const drgn_object) -> *mut drgn_error;
    pub fn drgn_object_set_reference(
        res: *mut drgn_object,
        qualified_type: drgn_qualified_type,
        address: u64,
        bit_offset: u64,
        bit_field_size: u64,
    ) -> *mut drgn_error;
    pub fn drgn_object_member(
        res: *mut drgn_object,
        obj: *const drgn_object,
        member_name: *const c_char,
    ) -> *mut drgn_error;
    pub fn drgn_object_member_dereference(
        res: *mut drgn_object,
        obj: *const drgn_object,
        member_name: *const c_char,
    ) -> *mut drgn_error;
    pub fn drgn_object_subscript(
        res: *mut drgn_object,
        obj: *const drgn_object,
        index: i64,
    ) -> *mut drgn_error;
    pub fn drgn_object_address_of(res: *mut drgn_object, obj: *const drgn_object) -> *mut drgn_error;
    pub fn drgn_object_container_of(
        res: *mut drgn_object,
        obj: *const drgn_object,
        qualified_type: drgn_qualified_type,
        member_designator: *const c_char,
    ) -> *mut drgn_error;
    pub fn drgn_object_cast(
        res: *mut drgn_object,
        qualified_type: drgn_qualified_type,
        obj: *const drgn_object,
    ) -> *mut drgn_error;
    pub fn drgn_object_read(res: *mut drgn_object, obj: *const drgn_object) -> *mut drgn_error;
    pub fn drgn_object_read_signed(obj: *const drgn_object, ret: *mut i64) -> *mut drgn_error;
    pub fn drgn_object_read_unsigned(obj: *const drgn_object, ret: *mut u64) -> *mut drgn_error;
    pub fn drgn_object_read_bytes(obj: *const drgn_object, buf: *mut c_void) -> *mut drgn_error;
    pub fn drgn_object_read_c_string(obj: *const drgn_object, ret: *mut *mut c_char) -> *mut drgn_error;
    pub fn drgn_object_sizeof(obj: *const drgn_object, ret: *mut u64) -> *mut drgn_error;

    // Types.
    pub fn drgn_type_kind(type_: *mut drgn_type) -> drgn_type_kind;
    pub fn drgn_type_type(type_: *mut drgn_type) -> drgn_qualified_type;
    pub fn drgn_type_sizeof(type_: *mut drgn_type, ret: *mut u64) -> *mut drgn_error;
    pub fn drgn_type_offsetof(
        type_: *mut drgn_type,
        member_designator: *const c_char,
        ret: *mut u64,
    ) -> *mut drgn_error;
    pub fn drgn_type_find_member_len(
        type_: *mut drgn_type,
        member_name: *const c_char,
        member_name_len: usize,
        member_ret: *mut *mut drgn_type_member,
        bit_offset_ret: *mut u64,
    ) -> *mut drgn_error;
    pub fn drgn_type_has_member_len(
        type_: *mut drgn_type,
        member_name: *const c_char,
        member_name_len: usize,
        ret: *mut bool,
    ) -> *mut drgn_error;
    pub fn drgn_member_type(
        member: *mut drgn_type_member,
        type_ret: *mut drgn_qualified_type,
        bit_field_size_ret: *mut u64,
    ) -> *mut drgn_error;
    pub fn drgn_qualified_type_unaliased(qualified_type: drgn_qualified_type) -> drgn_qualified_type;

    // Not in drgn.h: an internal helper of `libdrgn/helpers.h` (hidden visibility, but
    // resolvable when linking the static library) behind drgn's `access_remote_vm()`: reads
    // `count` bytes at `virt_addr` translated through the page table at `pgtable` (`mm->pgd`).
    pub fn linux_helper_read_vm(
        prog: *mut drgn_program,
        pgtable: u64,
        virt_addr: u64,
        buf: *mut c_void,
        count: usize,
    ) -> *mut drgn_error;

    // elfutils (linked for libdrgn anyway): the build id of a file kql was given.
    pub fn elf_version(version: c_uint) -> c_uint;
    pub fn elf_begin(fd: c_int, cmd: c_int, reference: *mut Elf) -> *mut Elf;
    pub fn elf_end(elf: *mut Elf) -> c_int;
    pub fn dwelf_elf_gnu_build_id(elf: *mut Elf, build_idp: *mut *const c_void) -> isize;
}

/// `EV_CURRENT` of `<elf.h>`, for [`elf_version`].
pub const EV_CURRENT: c_uint = 1;
/// `ELF_C_READ_MMAP` of `<libelf.h>`, for [`elf_begin`].
pub const ELF_C_READ_MMAP: c_int = 8;

/// `drgn_object_dereference()` (static inline in `drgn.h`): `*obj` is `obj[0]`.
///
/// # Safety
/// As for [`drgn_object_subscript`].
pub unsafe fn drgn_object_dereference(res: *mut drgn_object, obj: *const drgn_object) -> *mut drgn_error {
    // SAFETY: the caller upholds drgn_object_subscript's contract, which is this one's.
    unsafe { drgn_object_subscript(res, obj, 0) }
}

/// `drgn_object_qualified_type()` (static inline in `drgn.h`): an object's type with qualifiers.
pub fn drgn_object_qualified_type(obj: &drgn_object) -> drgn_qualified_type {
    drgn_qualified_type { type_: obj.type_, qualifiers: obj.qualifiers }
}

opaque!(
    /// A symbol table entry; free with [`drgn_symbol_destroy`].
    drgn_symbol,
);

/// `struct drgn_type_enumerator`: a name and a value, signed or not as the enum's compatible
/// integer type is (`drgn_type_is_signed(drgn_type_type(enum))`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct drgn_type_enumerator {
    pub name: *const c_char,
    pub value: drgn_enumerator_value,
}

/// The anonymous `union { int64_t svalue; uint64_t uvalue; }` of [`drgn_type_enumerator`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union drgn_enumerator_value {
    pub svalue: i64,
    pub uvalue: u64,
}

// Exported accessors (`DRGN_ACCESSOR_LINKAGE`, defined in `accessors.c`), symbols, formatting.
unsafe extern "C" {
    pub fn drgn_type_name(type_: *mut drgn_type) -> *const c_char;
    pub fn drgn_type_tag(type_: *mut drgn_type) -> *const c_char;
    pub fn drgn_type_size(type_: *mut drgn_type) -> u64;
    pub fn drgn_type_is_signed(type_: *mut drgn_type) -> bool;
    pub fn drgn_type_is_complete(type_: *mut drgn_type) -> bool;
    pub fn drgn_type_length(type_: *mut drgn_type) -> u64;
    pub fn drgn_type_members(type_: *mut drgn_type) -> *mut drgn_type_member;
    pub fn drgn_type_num_members(type_: *mut drgn_type) -> usize;
    pub fn drgn_type_enumerators(type_: *mut drgn_type) -> *mut drgn_type_enumerator;
    pub fn drgn_type_num_enumerators(type_: *mut drgn_type) -> usize;
    /// On success `*ret` is a malloc'd string the caller frees.
    pub fn drgn_format_type_name(
        qualified_type: drgn_qualified_type,
        ret: *mut *mut c_char,
    ) -> *mut drgn_error;

    pub fn drgn_program_find_symbol_by_address(
        prog: *mut drgn_program,
        address: u64,
        ret: *mut *mut drgn_symbol,
    ) -> *mut drgn_error;
    pub fn drgn_symbol_name(sym: *mut drgn_symbol) -> *const c_char;
    pub fn drgn_symbol_address(sym: *mut drgn_symbol) -> u64;
    pub fn drgn_symbol_destroy(sym: *mut drgn_symbol);
}
