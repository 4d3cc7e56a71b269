/* The C compiler's view of the drgn.h declarations drgn-sys mirrors, exported as numbers so
 * tests/layout.rs can compare them with Rust's. */
#include <stddef.h>
#include <libelf.h>
#include "drgn.h"

#define SIZE(t) sizeof(t)
#define OFFSET(t, m) offsetof(t, m)

const size_t kql_drgn_layout[] = {
	SIZE(struct drgn_object),
	OFFSET(struct drgn_object, type),
	OFFSET(struct drgn_object, bit_size),
	OFFSET(struct drgn_object, qualifiers),
	OFFSET(struct drgn_object, encoding),
	OFFSET(struct drgn_object, kind),
	OFFSET(struct drgn_object, is_bit_field),
	OFFSET(struct drgn_object, little_endian),
	OFFSET(struct drgn_object, bit_offset),
	OFFSET(struct drgn_object, address),
	SIZE(union drgn_value),
	SIZE(struct drgn_qualified_type),
	OFFSET(struct drgn_qualified_type, qualifiers),
	SIZE(union drgn_lazy_object),
	OFFSET(union drgn_lazy_object, thunk.prog),
	OFFSET(union drgn_lazy_object, thunk.fn),
	OFFSET(union drgn_lazy_object, thunk.arg),
	SIZE(struct drgn_type_member),
	OFFSET(struct drgn_type_member, name),
	OFFSET(struct drgn_type_member, bit_offset),
	SIZE(struct drgn_type_enumerator),
	OFFSET(struct drgn_type_enumerator, svalue),
	SIZE(enum drgn_error_code),
	SIZE(enum drgn_program_flags),
	SIZE(enum drgn_qualifiers),
	SIZE(enum drgn_object_encoding),
	SIZE(enum drgn_object_kind),
	SIZE(enum drgn_type_kind),
	SIZE(enum drgn_find_object_flags),
	SIZE(enum drgn_absence_reason),
	SIZE(enum drgn_log_level),
	(size_t)((enum drgn_object_encoding)-1 < 0),
};

const long long kql_drgn_constants[] = {
	DRGN_ERROR_NO_MEMORY, DRGN_ERROR_STOP, DRGN_ERROR_OTHER, DRGN_ERROR_INVALID_ARGUMENT,
	DRGN_ERROR_OVERFLOW, DRGN_ERROR_RECURSION, DRGN_ERROR_OS, DRGN_ERROR_MISSING_DEBUG_INFO,
	DRGN_ERROR_SYNTAX, DRGN_ERROR_LOOKUP, DRGN_ERROR_FAULT, DRGN_ERROR_TYPE,
	DRGN_ERROR_ZERO_DIVISION, DRGN_ERROR_OUT_OF_BOUNDS, DRGN_ERROR_OBJECT_ABSENT,
	DRGN_ERROR_NOT_IMPLEMENTED, DRGN_ERROR_UNSUPPORTED_OPERATION, DRGN_ERROR_RUNTIME,
	DRGN_ERROR_BAD_DATA,
	DRGN_PROGRAM_IS_LINUX_KERNEL, DRGN_PROGRAM_IS_LIVE, DRGN_PROGRAM_IS_LOCAL,
	DRGN_OBJECT_VALUE, DRGN_OBJECT_REFERENCE, DRGN_OBJECT_ABSENT,
	DRGN_TYPE_VOID, DRGN_TYPE_INT, DRGN_TYPE_BOOL, DRGN_TYPE_FLOAT, DRGN_TYPE_STRUCT,
	DRGN_TYPE_UNION, DRGN_TYPE_CLASS, DRGN_TYPE_ENUM, DRGN_TYPE_TYPEDEF, DRGN_TYPE_POINTER,
	DRGN_TYPE_ARRAY, DRGN_TYPE_FUNCTION,
	DRGN_FIND_OBJECT_CONSTANT, DRGN_FIND_OBJECT_FUNCTION, DRGN_FIND_OBJECT_VARIABLE,
	DRGN_FIND_OBJECT_ANY,
	DRGN_LOG_CRITICAL, DRGN_LOG_NONE,
	EV_CURRENT, ELF_C_READ_MMAP,
};
