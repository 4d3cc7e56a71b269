//! C names of BTF types, written the way libdrgn writes DWARF types
//! (`drgn_format_type_name`) so a type reads the same from either source: `struct list_head *`,
//! `char [16]`, `const char *`, `void (*)(struct timer_list *)`, `struct <anonymous>`.
//!
//! Integer and floating-point types are spelled as libdrgn spells them (gcc's
//! `long unsigned int` is `unsigned long`). An array of no elements is written `[]`: BTF encodes a flexible array member and a
//! zero-length one alike. Type tags (`__rcu`, `__user`) are left out, as DWARF has none.

use crate::{Btf, Kind, MAX_CHAIN, Result, Type, TypeId, error};

/// How many types one name may visit (pointers, arrays, functions and their parameters), and
/// how deeply they may nest, so that a damaged blob whose types refer to each other ends in an
/// error.
const MAX_STEPS: usize = 1024;
const MAX_DEPTH: usize = 32;

/// `const`, `volatile`, `restrict` bits, in the order C writes them.
const QUALIFIERS: [(u8, &str); 3] = [(1, "const"), (2, "volatile"), (4, "restrict")];

impl Btf {
    /// The type `id` as C writes it, typedef names kept: `struct sock *`, `u32`, `char [16]`.
    pub fn type_name(&self, id: TypeId) -> Result<String> {
        let (_, ty) = self.qualified(id)?;
        // A function type alone is declared with an empty name: `void (struct sock *)`.
        let name = matches!(ty.kind(), Kind::FuncProto | Kind::Func).then(String::new);
        Namer { btf: self, steps: MAX_STEPS }.declare(id, name, 0)
    }

    /// `id` with its qualifiers (and type tags) peeled off, and the qualifier bits.
    fn qualified(&self, id: TypeId) -> Result<(u8, Type<'_>)> {
        let mut qualifiers = 0;
        let mut ty = self.type_by_id(id)?;
        for _ in 0..MAX_CHAIN {
            qualifiers |= match ty.kind() {
                Kind::Const => 1,
                Kind::Volatile => 2,
                Kind::Restrict => 4,
                Kind::TypeTag => 0,
                _ => return Ok((qualifiers, ty)),
            };
            ty = self.type_by_id(ty.target()?)?;
        }
        Err(error(format!("type {id}: a qualifier chain longer than {MAX_CHAIN} links")))
    }
}

/// One name being written, with the types it may still visit.
struct Namer<'b> {
    btf: &'b Btf,
    steps: usize,
}

impl Namer<'_> {
    /// The declaration of `name` (the declarator built so far; none for a bare type) as a
    /// `id`, `depth` declarators deep: `*` as a `char` is `char *`.
    fn declare(&mut self, id: TypeId, name: Option<String>, depth: usize) -> Result<String> {
        self.steps = self.steps.checked_sub(1).filter(|_| depth < MAX_DEPTH).ok_or_else(|| {
            error(format!("type {id}: a name of more than {MAX_STEPS} types or {MAX_DEPTH} levels"))
        })?;
        let (qualifiers, ty) = self.btf.qualified(id)?;
        let base = match ty.kind() {
            Kind::Void => "void".to_string(),
            Kind::Int | Kind::Float => base_name(&ty)?,
            Kind::Typedef => ty.name()?.to_string(),
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Fwd => tagged(&ty)?,
            Kind::Ptr => return self.declare_pointer(&ty, qualifiers, name, depth),
            Kind::Array => {
                let array = ty.array()?;
                let length = if array.len == 0 { String::new() } else { array.len.to_string() };
                let name = format!("{}[{length}]", name.unwrap_or_default());
                return self.declare(array.element, Some(name), depth + 1);
            }
            Kind::FuncProto | Kind::Func => return self.declare_function(&ty, name, depth),
            kind => return Err(error(format!("type {id} is a {kind:?}, which has no C name"))),
        };
        let mut text = qualifier_words(qualifiers);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&base);
        if let Some(name) = name {
            text.push(' ');
            text.push_str(&name);
        }
        Ok(text)
    }

    /// `*name` as a pointer `ty`, parenthesised when it points to an array or function.
    fn declare_pointer(
        &mut self,
        ty: &Type,
        qualifiers: u8,
        name: Option<String>,
        depth: usize,
    ) -> Result<String> {
        let target = ty.target()?;
        let pointee = self.btf.qualified(target)?.1.kind();
        let parenthesise = matches!(pointee, Kind::Array | Kind::FuncProto | Kind::Func);
        let mut text = String::from(if parenthesise { "(*" } else { "*" });
        if qualifiers != 0 {
            text.push(' ');
            text.push_str(&qualifier_words(qualifiers));
            if name.is_some() {
                text.push(' ');
            }
        }
        text.push_str(name.as_deref().unwrap_or(""));
        if parenthesise {
            text.push(')');
        }
        self.declare(target, Some(text), depth + 1)
    }

    /// `name(parameters)` as a function `ty` (a prototype, or a function of one).
    fn declare_function(&mut self, ty: &Type, name: Option<String>, depth: usize) -> Result<String> {
        let proto = match ty.kind() {
            Kind::Func => self.btf.type_by_id(ty.target()?)?,
            _ => *ty,
        };
        let mut params = proto.params()?;
        let variadic = params.last().is_some_and(|p| p.type_id == 0 && p.name.is_empty());
        if variadic {
            params.pop();
        }
        let mut list = Vec::with_capacity(params.len() + 1);
        for param in &params {
            let name = (!param.name.is_empty()).then(|| param.name.to_string());
            list.push(self.declare(param.type_id, name, depth + 1)?);
        }
        match (list.is_empty(), variadic) {
            (false, true) => list.push("...".to_string()),
            (true, false) => list.push("void".to_string()),
            _ => {}
        }
        let name = format!("{}({})", name.unwrap_or_default(), list.join(", "));
        self.declare(proto.target()?, Some(name), depth + 1)
    }
}

/// The C words that spell integer and floating-point types.
const BASE_WORDS: [&str; 8] = ["signed", "unsigned", "char", "short", "int", "long", "float", "double"];

/// An integer's or float's name in libdrgn's spelling: gcc's `long unsigned int` is
/// `unsigned long`. A name that spells no C type, or an integer whose signedness
/// contradicts its name, is kept as it is (as libdrgn keeps it).
pub(crate) fn base_name(ty: &Type) -> Result<String> {
    let name = ty.name()?;
    let signed = match ty.kind() {
        Kind::Int => Some(ty.int()?.signed),
        _ => None,
    };
    Ok(match primitive(name) {
        Some((spelling, sign)) if sign.is_none() || sign == signed => spelling.to_string(),
        _ => name.to_string(),
    })
}

/// The preferred spelling of a C base type written with these words in any order, and its
/// signedness if it is an integer (none for `char`, whose signedness varies).
fn primitive(name: &str) -> Option<(&'static str, Option<bool>)> {
    let mut counts = [0u8; BASE_WORDS.len()];
    for word in name.split_whitespace() {
        let index = BASE_WORDS.iter().position(|&w| w == word)?;
        counts[index] += 1;
    }
    let [signed, unsigned, char, short, int, long, float, double] = counts;
    let unsigned = match (signed, unsigned) {
        (0, 0) => None,
        (1, 0) => Some(false),
        (0, 1) => Some(true),
        _ => return None,
    };
    let sized = |signed_name, unsigned_name| match unsigned {
        Some(true) => Some((unsigned_name, Some(false))),
        _ => Some((signed_name, Some(true))),
    };
    match (char, short, int, long, float, double) {
        (1, 0, 0, 0, 0, 0) => match unsigned {
            None => Some(("char", None)),
            Some(false) => Some(("signed char", Some(true))),
            Some(true) => Some(("unsigned char", Some(false))),
        },
        (0, 1, 0 | 1, 0, 0, 0) => sized("short", "unsigned short"),
        (0, 0, 0, 0, 0, 0) if unsigned.is_some() => sized("int", "unsigned int"),
        (0, 0, 1, 0, 0, 0) => sized("int", "unsigned int"),
        (0, 0, 0 | 1, 1, 0, 0) => sized("long", "unsigned long"),
        (0, 0, 0 | 1, 2, 0, 0) => sized("long long", "unsigned long long"),
        (0, 0, 0, 0, 1, 0) if unsigned.is_none() => Some(("float", None)),
        (0, 0, 0, 0 | 1, 0, 1) if unsigned.is_none() => {
            Some((if long == 1 { "long double" } else { "double" }, None))
        }
        _ => None,
    }
}

/// `struct sock`, `union <anonymous>`, `enum module_state`.
fn tagged(ty: &Type) -> Result<String> {
    let keyword = match ty.kind() {
        Kind::Union => "union",
        Kind::Enum | Kind::Enum64 => "enum",
        Kind::Fwd if ty.is_union_fwd() => "union",
        _ => "struct",
    };
    Ok(match ty.name()? {
        "" => format!("{keyword} <anonymous>"),
        tag => format!("{keyword} {tag}"),
    })
}

/// `const volatile` for the qualifier bits.
fn qualifier_words(qualifiers: u8) -> String {
    let words: Vec<&str> =
        QUALIFIERS.iter().filter(|(bit, _)| qualifiers & bit != 0).map(|&(_, word)| word).collect();
    words.join(" ")
}
