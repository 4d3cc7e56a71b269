//! The syntax tree of a kernel-table declaration, as written: names are not yet looked up
//! in any kernel. Every node keeps where it was written ([`Pos`]) so that a binding error
//! can point at it.

use std::fmt;

use kql_engine::ColumnType;

/// Line and column (both from 1) in the declaration's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// `CREATE KERNEL TABLE name 'doc' [PARENT table [AS alias]] FROM walk COLUMNS (…)`.
#[derive(Debug, Clone)]
pub struct Declaration {
    /// The table's name.
    pub name: String,
    /// What one row is.
    pub doc: String,
    /// For a child table: the table whose rows it is walked from.
    pub parent: Option<ParentRef>,
    /// The walk, as alternatives: the first whose names all exist in the kernel is used.
    pub walk: Vec<Chain>,
    /// The columns, in order.
    pub columns: Vec<ColumnDecl>,
    /// `UNION FROM walk COLUMNS (…)`: more rows, from other walks.
    pub union: Vec<UnionPart>,
    /// The statement's text, as written.
    pub text: String,
    /// Where the statement starts.
    pub at: Pos,
}

/// `UNION FROM walk COLUMNS (name = expr, …)`: the rows of another walk, whose objects may
/// be of another type. It restates every column, by name and in order, with only its
/// expression: types, keys, `?` and descriptions are those of the first `COLUMNS`.
#[derive(Debug, Clone)]
pub struct UnionPart {
    /// The walk, as alternatives (like [`Declaration::walk`]).
    pub walk: Vec<Chain>,
    /// Every column, each with this walk's expression.
    pub columns: Vec<ColumnDecl>,
    /// Where `UNION` is written.
    pub at: Pos,
}

/// `PARENT table [AS alias]`.
#[derive(Debug, Clone)]
pub struct ParentRef {
    /// The parent table.
    pub table: String,
    /// How the child's walk and columns name the parent's object (`@parent` always works).
    pub alias: Option<String>,
    /// Where it is written.
    pub at: Pos,
}

/// Steps joined by `THEN`: each walks from the objects of the one before.
pub type Chain = Vec<Step>;

/// One container walked: `LIST head OF struct T VIA member`, …
#[derive(Debug, Clone)]
pub struct Step {
    /// Which container.
    pub kind: StepKind,
    /// Where the container is: a global, the parent's or the previous step's member.
    pub source: Expr,
    /// The type of the objects it holds (`OF`).
    pub of: Option<TypeRef>,
    /// The member of those objects that links them in (`VIA`).
    pub via: Vec<(String, Pos)>,
    /// For `ARRAY`: how many elements (`COUNT`), when the type does not say.
    pub count: Option<Expr>,
    /// For `TREE`: the member of each object that heads its children (`CHILDREN`).
    pub children: Vec<(String, Pos)>,
    /// Where the step starts.
    pub at: Pos,
}

/// The containers a step can walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `struct list_head`, circular.
    List,
    /// `struct hlist_head` or `struct hlist_nulls_head`.
    Hlist,
    /// `struct rb_root` or `struct rb_root_cached`, in order.
    Rbtree,
    /// `struct xarray`; binds `@index`.
    Xarray,
    /// `struct idr`; binds `@index` (the id).
    Idr,
    /// A C array or a pointer with `COUNT`; binds `@index`.
    Array,
    /// A per-cpu variable, one object per possible cpu; binds `@cpu`.
    Percpu,
    /// A tree of `struct list_head` children lists (`VIA sibling CHILDREN children`), in
    /// pre-order from its root object; binds `@depth`.
    Tree,
    /// A singly linked chain of pointers: the place holds a pointer to the first object,
    /// each object's `VIA` member points to the next, NULL ends it.
    Chain,
}

impl StepKind {
    /// The keyword, as written.
    pub fn keyword(self) -> &'static str {
        match self {
            StepKind::List => "LIST",
            StepKind::Hlist => "HLIST",
            StepKind::Rbtree => "RBTREE",
            StepKind::Xarray => "XARRAY",
            StepKind::Idr => "IDR",
            StepKind::Array => "ARRAY",
            StepKind::Percpu => "PERCPU",
            StepKind::Tree => "TREE",
            StepKind::Chain => "CHAIN",
        }
    }
}

/// A C type named in a declaration: `struct module`, `struct socket_alloc *`, `u32`.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// As C writes it, without the `*`.
    pub name: String,
    /// Followed by `*`.
    pub pointer: bool,
    /// Where it is written.
    pub at: Pos,
}

/// `name [TYPE] [KEY] [?] = expr ['doc']`.
#[derive(Debug, Clone)]
pub struct ColumnDecl {
    /// Column name.
    pub name: String,
    /// The SQL type written, if any; else it comes from the kernel's type.
    pub sql_type: Option<ColumnType>,
    /// `KEY`: `=`/`IN` on it filter before the other columns are read.
    pub key: bool,
    /// `?`: NULL on kernels where its members do not exist.
    pub optional: bool,
    /// The value.
    pub expr: Expr,
    /// One-line description.
    pub doc: String,
    /// Where the column starts.
    pub at: Pos,
}

/// An expression, and where it is written.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it starts.
    pub at: Pos,
}

/// Expressions of columns and of steps' sources.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// An integer.
    Number(i128),
    /// A string.
    Text(String),
    /// A member of the current object; for a step's source, a global or the parent alias.
    Name(String),
    /// `@`: the current object itself.
    This,
    /// `@index`, `@cpu`, `@depth`.
    Bound(BoundName),
    /// `@parent`: the parent table's object.
    Parent,
    /// `a.b`
    Member(Box<Expr>, String),
    /// `a->b`
    Arrow(Box<Expr>, String),
    /// `a[N]`, or `a[*]` (every element, in `sum()`) when `None`.
    Subscript(Box<Expr>, Option<u64>),
    /// `a + b`, …
    Binary(Box<Expr>, BinOp, Box<Expr>),
    /// `a | b | …`: the first that exists in this kernel.
    Alternatives(Vec<Expr>),
    /// `CAST(a AS type)`: a global or place seen as `type`, or a pointer as `type *`.
    Cast(Box<Expr>, TypeRef),
    /// `f(args …)`.
    Call(Call),
    /// `NULL`: no value.
    Null,
}

/// What a step binds for the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundName {
    /// Index in an xarray, idr or array.
    Index,
    /// Cpu of a per-cpu object.
    Cpu,
    /// Depth in a tree (its root object is 0).
    Depth,
}

/// Arithmetic and bit operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `&`
    And,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
}

/// A call of one of the declaration language's functions.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which function.
    pub function: Function,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// `OF enum name`, for `enum()` and `flags()` over a plain integer.
    pub of: Option<TypeRef>,
    /// `STRIP 'PREFIX'`, for `enum()` and `flags()`.
    pub strip: Option<String>,
    /// `VIA member`, for `first()`: the member linking the objects of its list.
    pub via: Vec<(String, Pos)>,
}

/// The functions a column can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `enum(x)`: the enumerator's name; `enum(x, 'A', 'B', 7, 'C')` names values as written
    /// (0, 1, then a number sets the next name's value, as in C).
    Enum,
    /// `flags(x)`: the names of the set bits, joined by `|`.
    Flags,
    /// `symbol(p)`: the kernel symbol at an address, `name+0xoff`.
    Symbol,
    /// `str(x)`: a `char` array or `char *` as text.
    Str,
    /// `sum(a[*].b)`: the sum over an array.
    Sum,
    /// `addr(x)`: the address of a place.
    Addr,
    /// `hex(x)`: the bytes of an array as hex digits.
    Hex,
    /// `mac(x)`: six bytes as `aa:bb:cc:dd:ee:ff`.
    Mac,
    /// `d_path(vfsmount, dentry)`: the path, as `d_path()` builds it (written in Rust).
    DPath,
    /// `dentry_path(dentry)`: a dentry's path within its file system (written in Rust).
    DentryPath,
    /// `kernfs_path(kn)`: a kernfs node's path from its root (written in Rust).
    KernfsPath,
    /// `ipv4(x)`: four bytes as a dotted IPv4 address.
    Ipv4,
    /// `ipv6(x)`: sixteen bytes as an IPv6 address, compressed (RFC 5952).
    Ipv6,
    /// `if(cond, a [, b])`: `a` where `cond` is true or non-zero, else `b` (or NULL).
    If,
    /// `first(head OF struct T VIA member)`: the first object of a `struct list_head` list,
    /// NULL when it is empty (the kernel's `list_first_entry_or_null`).
    First,
}

impl Function {
    /// Every function, with its name as written.
    pub const ALL: &[(&str, Function)] = &[
        ("enum", Function::Enum),
        ("flags", Function::Flags),
        ("symbol", Function::Symbol),
        ("str", Function::Str),
        ("sum", Function::Sum),
        ("addr", Function::Addr),
        ("hex", Function::Hex),
        ("mac", Function::Mac),
        ("d_path", Function::DPath),
        ("dentry_path", Function::DentryPath),
        ("kernfs_path", Function::KernfsPath),
        ("ipv4", Function::Ipv4),
        ("ipv6", Function::Ipv6),
        ("if", Function::If),
        ("first", Function::First),
    ];

    /// The function called `name`.
    pub fn named(name: &str) -> Option<Function> {
        Function::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, f)| f)
    }

    /// How many arguments it takes, at least and at most.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Function::Flags | Function::Enum => (1, 64),
            Function::If => (2, 3),
            Function::Str => (1, 2),
            Function::DPath => (2, 2),
            _ => (1, 1),
        }
    }
}
