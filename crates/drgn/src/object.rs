//! [`Object`]: a value or a reference into the kernel's memory, with a type — drgn's `Object`.

use std::ffi::CStr;

use drgn_sys as sys;

use crate::program::c_string;
use crate::{Error, Program, Result, Type};

/// A kernel object: `init_task`, `tcp_hashinfo.lhash2[3]`, `sk->sk_socket`, …
pub struct Object<'p> {
    raw: sys::drgn_object,
    program: &'p Program,
}

impl<'p> Object<'p> {
    /// An absent object of `program`, ready to be filled by a libdrgn call.
    pub(crate) fn new(program: &'p Program) -> Self {
        let mut raw = std::mem::MaybeUninit::<sys::drgn_object>::uninit();
        // SAFETY: drgn_object_init fully initialises the object for the live program.
        let raw = unsafe {
            sys::drgn_object_init(raw.as_mut_ptr(), program.raw());
            raw.assume_init()
        };
        Object { raw, program }
    }

    pub(crate) fn raw_mut(&mut self) -> *mut sys::drgn_object {
        &mut self.raw
    }

    /// A new object computed from this one by a libdrgn operation writing into `res`.
    fn derive(
        &self,
        operation: impl FnOnce(*mut sys::drgn_object, *const sys::drgn_object) -> *mut sys::drgn_error,
    ) -> Result<Object<'p>> {
        let mut result = Object::new(self.program);
        Error::check(operation(result.raw_mut(), &self.raw))?;
        Ok(result)
    }

    /// `obj.name` (a member of a struct or union; `a.b.c` designators work too).
    pub fn member(&self, name: &str) -> Result<Object<'p>> {
        let name = c_string(name)?;
        // SAFETY: both objects belong to the same live program; `name` outlives the call.
        self.derive(|res, obj| unsafe { sys::drgn_object_member(res, obj, name.as_ptr()) })
    }

    /// `ptr->name`.
    pub fn arrow(&self, name: &str) -> Result<Object<'p>> {
        let name = c_string(name)?;
        // SAFETY: as for `member`.
        self.derive(|res, obj| unsafe { sys::drgn_object_member_dereference(res, obj, name.as_ptr()) })
    }

    /// `obj[index]` of an array or pointer.
    pub fn subscript(&self, index: i64) -> Result<Object<'p>> {
        // SAFETY: both objects belong to the same live program.
        self.derive(|res, obj| unsafe { sys::drgn_object_subscript(res, obj, index) })
    }

    /// `*ptr`.
    pub fn deref(&self) -> Result<Object<'p>> {
        // SAFETY: both objects belong to the same live program.
        self.derive(|res, obj| unsafe { sys::drgn_object_dereference(res, obj) })
    }

    /// `&obj` of a reference object.
    pub fn address_of(&self) -> Result<Object<'p>> {
        // SAFETY: both objects belong to the same live program.
        self.derive(|res, obj| unsafe { sys::drgn_object_address_of(res, obj) })
    }

    /// `container_of(ptr, type, member)`: the enclosing `type` of the member `ptr` points at.
    pub fn container_of(&self, container: Type<'p>, member: &str) -> Result<Object<'p>> {
        let member = c_string(member)?;
        // SAFETY: the type and both objects belong to the same live program.
        self.derive(|res, obj| unsafe {
            sys::drgn_object_container_of(res, obj, container.raw(), member.as_ptr())
        })
    }

    /// `(type)obj`.
    pub fn cast(&self, to: Type<'p>) -> Result<Object<'p>> {
        // SAFETY: the type and both objects belong to the same live program.
        self.derive(|res, obj| unsafe { sys::drgn_object_cast(res, to.raw(), obj) })
    }

    /// The value of an integer, enum, bool or pointer object, zero-extended.
    pub fn read_unsigned(&self) -> Result<u64> {
        let mut value = 0;
        // SAFETY: `self.raw` is an initialised object; `value` receives the result.
        Error::check(unsafe { sys::drgn_object_read_unsigned(&self.raw, &mut value) })?;
        Ok(value)
    }

    /// The value of a signed integer object.
    pub fn read_signed(&self) -> Result<i64> {
        let mut value = 0;
        // SAFETY: as for `read_unsigned`.
        Error::check(unsafe { sys::drgn_object_read_signed(&self.raw, &mut value) })?;
        Ok(value)
    }

    /// The object's bytes, read in one go (a whole struct, an array, …).
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        let mut size = 0;
        // SAFETY: `self.raw` is initialised; `size` receives its size in bytes.
        Error::check(unsafe { sys::drgn_object_sizeof(&self.raw, &mut size) })?;
        let mut bytes = vec![0; size as usize];
        // SAFETY: `bytes` has exactly the object's size, which is what libdrgn writes.
        Error::check(unsafe { sys::drgn_object_read_bytes(&self.raw, bytes.as_mut_ptr().cast()) })?;
        Ok(bytes)
    }

    /// A `char *` or `char[]` object as a string (invalid UTF-8 replaced).
    pub fn read_c_string(&self) -> Result<String> {
        let mut text = std::ptr::null_mut();
        // SAFETY: on success libdrgn returns a malloc'd NUL-terminated string we own and free.
        unsafe {
            Error::check(sys::drgn_object_read_c_string(&self.raw, &mut text))?;
            let owned = CStr::from_ptr(text).to_string_lossy().into_owned();
            libc::free(text.cast());
            Ok(owned)
        }
    }

    /// Where a reference object lives in kernel memory; `None` for values.
    pub fn address(&self) -> Option<u64> {
        // `payload.address` is the active union member exactly when kind is REFERENCE.
        if self.raw.kind != sys::DRGN_OBJECT_REFERENCE {
            return None;
        }
        // SAFETY: see above.
        Some(unsafe { self.raw.payload.address })
    }

    /// The object's type.
    pub fn type_(&self) -> Type<'p> {
        Type::from_raw(self.program, sys::drgn_object_qualified_type(&self.raw))
    }
}

impl Clone for Object<'_> {
    fn clone(&self) -> Self {
        let mut copy = Object::new(self.program);
        // SAFETY: both objects belong to the same live program; copying can only fail on
        // memory exhaustion, which aborts like any Rust allocation failure.
        let error = unsafe { sys::drgn_object_copy(copy.raw_mut(), &self.raw) };
        Error::check(error).expect("drgn_object_copy: out of memory");
        copy
    }
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        // SAFETY: the object was initialised by drgn_object_init and is released once.
        unsafe { sys::drgn_object_deinit(&mut self.raw) }
    }
}
