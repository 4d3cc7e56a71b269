//! The Rust declarations of drgn-sys against the C compiler's view of the real `drgn.h`
//! (`layout.c`, compiled by the build script): sizes, field offsets, enum widths and values.

use std::mem::{offset_of, size_of};

use drgn_sys::*;

unsafe extern "C" {
    static kql_drgn_layout: [usize; 32];
    static kql_drgn_constants: [i64; 45];
}

#[test]
fn structs_and_enums_have_the_c_layout() {
    let rust = [
        size_of::<drgn_object>(),
        offset_of!(drgn_object, type_),
        offset_of!(drgn_object, bit_size),
        offset_of!(drgn_object, qualifiers),
        offset_of!(drgn_object, encoding),
        offset_of!(drgn_object, kind),
        offset_of!(drgn_object, is_bit_field),
        offset_of!(drgn_object, little_endian),
        offset_of!(drgn_object, bit_offset),
        offset_of!(drgn_object, payload),
        size_of::<drgn_value>(),
        size_of::<drgn_qualified_type>(),
        offset_of!(drgn_qualified_type, qualifiers),
        size_of::<drgn_lazy_object>(),
        offset_of!(drgn_lazy_thunk, prog),
        offset_of!(drgn_lazy_thunk, fn_),
        offset_of!(drgn_lazy_thunk, arg),
        size_of::<drgn_type_member>(),
        offset_of!(drgn_type_member, name),
        offset_of!(drgn_type_member, bit_offset),
        size_of::<drgn_type_enumerator>(),
        offset_of!(drgn_type_enumerator, value),
        size_of::<drgn_error_code>(),
        size_of::<drgn_program_flags>(),
        size_of::<drgn_qualifiers>(),
        size_of::<drgn_object_encoding>(),
        size_of::<drgn_object_kind>(),
        size_of::<drgn_type_kind>(),
        size_of::<drgn_find_object_flags>(),
        size_of::<drgn_absence_reason>(),
        size_of::<drgn_log_level>(),
        usize::from(drgn_object_encoding::MIN < 0),
    ];
    // SAFETY: layout.c defines the array with exactly 32 elements and it is never written.
    let c = unsafe { kql_drgn_layout };
    assert_eq!(rust, c, "drgn-sys declarations differ from drgn.h (order as in layout.c)");
    assert_eq!(size_of::<drgn_object>(), 32);
}

#[test]
fn constants_have_the_c_values() {
    let rust: Vec<i64> = [
        DRGN_ERROR_NO_MEMORY,
        DRGN_ERROR_STOP,
        DRGN_ERROR_OTHER,
        DRGN_ERROR_INVALID_ARGUMENT,
        DRGN_ERROR_OVERFLOW,
        DRGN_ERROR_RECURSION,
        DRGN_ERROR_OS,
        DRGN_ERROR_MISSING_DEBUG_INFO,
        DRGN_ERROR_SYNTAX,
        DRGN_ERROR_LOOKUP,
        DRGN_ERROR_FAULT,
        DRGN_ERROR_TYPE,
        DRGN_ERROR_ZERO_DIVISION,
        DRGN_ERROR_OUT_OF_BOUNDS,
        DRGN_ERROR_OBJECT_ABSENT,
        DRGN_ERROR_NOT_IMPLEMENTED,
        DRGN_ERROR_UNSUPPORTED_OPERATION,
        DRGN_ERROR_RUNTIME,
        DRGN_ERROR_BAD_DATA,
    ]
    .into_iter()
    .map(i64::from)
    .chain([DRGN_PROGRAM_IS_LINUX_KERNEL, DRGN_PROGRAM_IS_LIVE, DRGN_PROGRAM_IS_LOCAL].map(i64::from))
    .chain([DRGN_OBJECT_VALUE, DRGN_OBJECT_REFERENCE, DRGN_OBJECT_ABSENT].map(i64::from))
    .chain(
        [
            DRGN_TYPE_VOID,
            DRGN_TYPE_INT,
            DRGN_TYPE_BOOL,
            DRGN_TYPE_FLOAT,
            DRGN_TYPE_STRUCT,
            DRGN_TYPE_UNION,
            DRGN_TYPE_CLASS,
            DRGN_TYPE_ENUM,
            DRGN_TYPE_TYPEDEF,
            DRGN_TYPE_POINTER,
            DRGN_TYPE_ARRAY,
            DRGN_TYPE_FUNCTION,
        ]
        .map(i64::from),
    )
    .chain(
        [
            DRGN_FIND_OBJECT_CONSTANT,
            DRGN_FIND_OBJECT_FUNCTION,
            DRGN_FIND_OBJECT_VARIABLE,
            DRGN_FIND_OBJECT_ANY,
        ]
        .map(i64::from),
    )
    .chain([DRGN_LOG_CRITICAL, DRGN_LOG_NONE].map(i64::from))
    .chain([i64::from(EV_CURRENT), i64::from(ELF_C_READ_MMAP)])
    .collect();
    // SAFETY: layout.c defines the array with exactly 45 elements and it is never written.
    let c = unsafe { kql_drgn_constants };
    assert_eq!(rust, c.to_vec(), "drgn-sys constants differ from drgn.h (order as in layout.c)");
}
