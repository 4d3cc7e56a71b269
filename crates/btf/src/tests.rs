//! Tests on blobs built here, on damaged copies of them, and on this machine's own kernel BTF.

use super::*;

/// Writes BTF blobs: a string section and type records, then the header.
#[derive(Default)]
struct Builder {
    strings: Vec<u8>,
    types: Vec<u8>,
    count: u32,
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;

impl Builder {
    fn new() -> Builder {
        Builder { strings: vec![0], ..Builder::default() }
    }

    fn string(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(text.as_bytes());
        self.strings.push(0);
        offset
    }

    fn record(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kind_flag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let name = self.string(name);
        let info = (kind << 24) | vlen | (u32::from(kind_flag) << 31);
        for word in [name, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        self.count += 1;
        self.count
    }

    fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        self.record(name, KIND_INT, 0, false, size, &[(u32::from(signed) << 24) | (size * 8)])
    }

    /// Members as (name, type, bit offset, bit-field size).
    fn compound(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let kind_flag = members.iter().any(|m| m.3 != 0);
        let mut extra = Vec::new();
        for &(member, type_id, offset, bits) in members {
            extra.extend([self.string(member), type_id, (bits << 24) | offset]);
        }
        self.record(name, kind, members.len() as u32, kind_flag, size, &extra)
    }

    fn finish(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        let types = self.types.len() as u32;
        for word in [HEADER_LEN as u32, 0, types, types, self.strings.len() as u32] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&self.types);
        blob.extend_from_slice(&self.strings);
        blob
    }
}

/// `struct node { struct node *next; union { int a; long b; }; unsigned flags:3, mode:5;
/// long slots[4]; }`, `typedef struct node node_t`, `enum colour { RED = -1, BLUE = 7 }`.
fn sample() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    let long = b.int("long", 8, true);
    let unsigned = b.int("unsigned int", 4, false);
    let pointer = b.record("", KIND_PTR, 0, false, 5, &[]);
    let anonymous = b.compound(KIND_UNION, "", 8, &[("a", int, 0, 0), ("b", long, 0, 0)]);
    let array = b.record("", KIND_ARRAY, 0, false, 0, &[long, int, 4]);
    let node = b.compound(
        KIND_STRUCT,
        "node",
        56,
        &[
            ("next", pointer, 0, 0),
            ("", anonymous, 64, 0),
            ("flags", unsigned, 128, 3),
            ("mode", unsigned, 131, 5),
            ("slots", array, 192, 0),
        ],
    );
    assert_eq!(node, 7);
    b.record("node_t", KIND_TYPEDEF, 0, false, node, &[]);
    let red = b.string("RED");
    let blue = b.string("BLUE");
    b.record("colour", KIND_ENUM, 2, true, 4, &[red, (-1i32) as u32, blue, 7]);
    b.finish()
}

#[test]
fn types_are_found_by_name_and_decoded() {
    let btf = Btf::parse(sample()).unwrap();
    assert_eq!(btf.len(), 9);
    let node = btf.find_named("struct node").unwrap();
    assert_eq!(btf.find_named("node_t").map(|id| btf.resolve(id).unwrap().id()), Some(node));
    assert_eq!(btf.find_named("union node"), None);
    assert_eq!(btf.size_of(node).unwrap(), 56);
    let members: Vec<Member> = btf.type_by_id(node).unwrap().members().unwrap().map(Result::unwrap).collect();
    let names: Vec<&str> = members.iter().map(|m| m.name).collect();
    assert_eq!(names, ["next", "", "flags", "mode", "slots"]);
    assert_eq!((members[3].bit_offset, members[3].bitfield_size), (131, 5));
    assert_eq!(btf.size_of(members[4].type_id).unwrap(), 32);
    let next = btf.type_by_id(members[0].type_id).unwrap();
    assert_eq!((next.kind(), next.target().unwrap()), (Kind::Ptr, 5));
    assert_eq!(btf.size_of(members[0].type_id).unwrap(), 8);
    let colour = btf.type_by_id(btf.find_named("enum colour").unwrap()).unwrap();
    let values: Vec<(&str, i64)> = colour.enumerators().unwrap().iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(values, [("RED", -1), ("BLUE", 7)]);
    assert_eq!(btf.anonymous_structs(), &[] as &[TypeId], "the anonymous member is a union");
    let int = btf.type_by_id(btf.find_named("int").unwrap()).unwrap().int().unwrap();
    assert!(int.signed && int.bits == 32);
}

#[test]
fn damaged_blobs_are_errors_not_panics() {
    let good = sample();
    for len in 0..good.len() {
        let _ = Btf::parse(good[..len].to_vec());
    }
    for at in 0..good.len() {
        for byte in [0x00, 0xff, 0x7f, 0x80] {
            let mut bad = good.clone();
            bad[at] = byte;
            if let Ok(btf) = Btf::parse(bad) {
                for id in 0..=btf.len() as u32 + 1 {
                    exercise(&btf, id);
                }
            }
        }
    }
    assert!(Btf::parse(good[..20].to_vec()).unwrap_err().0.contains("too few"));
    let mut swapped = good.clone();
    swapped.swap(0, 1);
    assert!(Btf::parse(swapped).unwrap_err().0.contains("big-endian"));
}

/// Every accessor on `id`; only errors, never a panic, are allowed.
fn exercise(btf: &Btf, id: TypeId) {
    let _ = btf.size_of(id);
    if let Ok(ty) = btf.type_by_id(id) {
        let _ = (ty.name(), ty.size(), ty.target(), ty.array(), ty.int(), ty.enumerators(), ty.params());
        let _ = btf.type_name(id);
        if let Ok(members) = ty.members() {
            members.for_each(drop);
        }
    }
}

#[test]
fn a_typedef_loop_is_an_error() {
    let mut b = Builder::new();
    b.record("a", KIND_TYPEDEF, 0, false, 2, &[]);
    b.record("b", KIND_TYPEDEF, 0, false, 1, &[]);
    let btf = Btf::parse(b.finish()).unwrap();
    assert!(btf.size_of(1).unwrap_err().0.contains("chain"));
}

#[test]
fn this_machines_kernel_btf() {
    let blob = std::fs::read("/sys/kernel/btf/vmlinux").expect("this kind of machine has kernel BTF");
    let btf = Btf::parse(blob).unwrap();
    assert!(btf.len() > 10_000);
    let list_head = btf.find_named("struct list_head").unwrap();
    assert_eq!(btf.size_of(list_head).unwrap(), 16);
    let sock = btf.type_by_id(btf.find_named("struct sock").unwrap()).unwrap();
    let first = sock.members().unwrap().next().unwrap().unwrap();
    assert_eq!((first.name, first.bit_offset), ("__sk_common", 0));
    assert!(btf.find_named("long unsigned int").is_some(), "BTF names base types as gcc does");
}

/// Names as libdrgn writes them for DWARF: pointers, arrays, qualifiers, function pointers.
#[test]
fn types_are_named_as_c_writes_them() {
    const KIND_CONST: u32 = 10;
    const KIND_FUNC_PROTO: u32 = 13;
    const KIND_VAR: u32 = 14;
    let mut b = Builder::new();
    let char_ = b.int("char", 1, true);
    let const_char = b.record("", KIND_CONST, 0, false, char_, &[]);
    let string = b.record("", KIND_PTR, 0, false, const_char, &[]);
    let chars = b.record("", KIND_ARRAY, 0, false, 0, &[char_, char_, 16]);
    let flexible = b.record("", KIND_ARRAY, 0, false, 0, &[char_, char_, 0]);
    let anonymous = b.compound(KIND_STRUCT, "", 1, &[("c", char_, 0, 0)]);
    let pointer = b.record("", KIND_PTR, 0, false, anonymous, &[]);
    let name = b.string("x");
    let proto = b.record("", KIND_FUNC_PROTO, 2, false, 0, &[0, pointer, name, string]);
    let callback = b.record("", KIND_PTR, 0, false, proto, &[]);
    let variadic = b.record("", KIND_FUNC_PROTO, 2, false, char_, &[0, string, 0, 0]);
    let no_params = b.record("", KIND_FUNC_PROTO, 0, false, char_, &[]);
    let to_array = b.record("", KIND_PTR, 0, false, chars, &[]);
    let pointer_const = b.record("", KIND_CONST, 0, false, string, &[]);
    let var = b.record("buffer", KIND_VAR, 0, false, chars, &[1]);
    let gcc_long = b.int("long unsigned int", 8, false);
    let gcc_short = b.int("short int", 2, true);
    let mismatched = b.int("long int", 8, false);
    let signed_char = b.int("signed char", 1, true);
    let btf = Btf::parse(b.finish()).unwrap();
    let name = |id| btf.type_name(id).unwrap();
    assert_eq!(name(string), "const char *");
    assert_eq!(name(chars), "char [16]");
    assert_eq!(name(flexible), "char []");
    assert_eq!(name(pointer), "struct <anonymous> *");
    assert_eq!(name(callback), "void (*)(struct <anonymous> *, const char *x)");
    assert_eq!(name(variadic), "char (const char *, ...)");
    assert_eq!(name(no_params), "char (void)");
    assert_eq!(name(to_array), "char (*)[16]");
    assert_eq!(name(pointer_const), "const char * const");
    assert_eq!(name(0), "void");
    assert_eq!(name(gcc_long), "unsigned long", "spelled as libdrgn spells it");
    assert_eq!(btf.find_named("unsigned long"), Some(gcc_long), "found by either spelling");
    assert_eq!(btf.find_named("long unsigned int"), Some(gcc_long));
    assert_eq!(name(gcc_short), "short");
    assert_eq!(name(mismatched), "long int", "a signedness contradicting the name keeps the name");
    assert_eq!(name(signed_char), "signed char");
    assert_eq!(btf.variable_type("buffer"), Some(chars));
    assert!(btf.find_named("buffer").is_none(), "a variable is not a type");
    assert!(btf.type_name(var).is_err());
}

#[test]
fn a_function_prototype_that_takes_itself_is_an_error() {
    const KIND_FUNC_PROTO: u32 = 13;
    let mut b = Builder::new();
    let params: Vec<u32> = (0..8).flat_map(|_| [0, 2]).collect();
    b.record("", KIND_FUNC_PROTO, 8, false, 2, &params);
    b.record("", KIND_PTR, 0, false, 1, &[]);
    let btf = Btf::parse(b.finish()).unwrap();
    assert!(btf.type_name(2).unwrap_err().0.contains("more than"));
}
