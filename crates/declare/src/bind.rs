//! A declaration bound to one kernel: every symbol, type and member looked up through the
//! kernel's [`Types`] (DWARF or BTF) once, leaving a [`Plan`] of offsets, sizes and
//! enumerator names that a scan runs without asking the types anything.
//!
//! Paths follow C: `.` into a struct or union (anonymous members looked through), `->`
//! through a pointer, `[N]` into an array or past a pointer. A name this kernel lacks is one
//! error naming the type, the member, where it is written and the nearest member names —
//! unless it sits in an alternative (`a | b`: the first that binds) or an optional column
//! (`?`: NULL here).

use std::collections::HashMap;

use kql_engine::ColumnType;
use kql_kernel::{KernelType, Shape, Types};

use crate::DeclareError;
use crate::ast::*;
use crate::span::ObjectSpan;

/// How many declarations a chain of `PARENT`s may span.
const MAX_PARENTS: usize = 8;
/// The longest string read for a `char *` or `char []` column unless `str(x, N)` says.
pub(crate) const MAX_TEXT: usize = 4096;

/// A declaration bound to one kernel's types: what its scans run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The table.
    pub name: String,
    /// The containers walked, in order.
    pub(crate) steps: Vec<BoundStep>,
    /// The table's own columns.
    pub(crate) columns: Vec<BoundColumn>,
    /// For a child table, its parent's plan.
    pub(crate) parent: Option<Box<Plan>>,
    /// The type of the row objects, e.g. `struct module`.
    pub object_type: String,
    /// The bytes of each row object its columns read directly.
    pub(crate) span: Option<ObjectSpan>,
    /// The plans of the `UNION` parts, whose rows follow this plan's.
    pub(crate) union: Vec<Plan>,
}

impl Plan {
    /// Every column of the table: the parent's key columns, the declared ones, `address`.
    pub fn output(&self) -> Vec<(String, ColumnType)> {
        let mut output = self.inherited();
        output.extend(self.columns.iter().map(|c| (c.name.clone(), c.sql_type)));
        output.push((ADDRESS.to_string(), ColumnType::UInt64));
        output
    }

    /// The parent's key columns (its own inherited ones first), which are keys here too.
    pub fn inherited(&self) -> Vec<(String, ColumnType)> {
        let Some(parent) = &self.parent else { return Vec::new() };
        let mut keys = parent.inherited();
        keys.extend(parent.columns.iter().filter(|c| c.key).map(|c| (c.name.clone(), c.sql_type)));
        keys
    }

    /// Names of the key columns, inherited first, as scans compute them.
    pub(crate) fn key_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inherited().into_iter().map(|(name, _)| name).collect();
        names.extend(self.columns.iter().filter(|c| c.key).map(|c| c.name.clone()));
        names
    }

    /// The types of [`Plan::key_names`]' columns.
    pub(crate) fn key_types(&self) -> Vec<ColumnType> {
        let mut types: Vec<ColumnType> = self.inherited().into_iter().map(|(_, ty)| ty).collect();
        types.extend(self.columns.iter().filter(|c| c.key).map(|c| c.sql_type));
        types
    }

    /// Where each of [`Plan::key_names`] goes in [`Plan::output`].
    pub(crate) fn key_positions(&self) -> Vec<usize> {
        let inherited = self.inherited().len();
        let own = self.columns.iter().enumerate().filter(|(_, c)| c.key).map(|(i, _)| inherited + i);
        (0..inherited).chain(own).collect()
    }

    /// Where each declared non-key column goes in [`Plan::output`].
    pub(crate) fn other_positions(&self) -> Vec<usize> {
        let inherited = self.inherited().len();
        self.columns.iter().enumerate().filter(|(_, c)| !c.key).map(|(i, _)| inherited + i).collect()
    }

    /// The key column that is exactly `@index`, if any: `=`/`IN` on it become lookups.
    pub(crate) fn index_key(&self) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.key && matches!(c.expr, BExpr::Bound(BoundName::Index)))
            .map(|c| c.name.as_str())
    }
}

/// The column every declared table ends with: the kernel address of the row's object.
pub const ADDRESS: &str = "address";

/// A bound column.
#[derive(Debug, Clone)]
pub(crate) struct BoundColumn {
    pub name: String,
    pub sql_type: ColumnType,
    pub key: bool,
    pub expr: BExpr,
}

/// Where a value lives: a base address and the hops from it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Place {
    pub base: Base,
    pub ops: Vec<Op>,
}

/// What a place starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Base {
    /// The current object (a row's, or the previous step's).
    Object,
    /// The parent table's object.
    Parent,
    /// A global, at this address.
    Global(u64),
}

/// One hop of a place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Move by this many bytes.
    Add(i64),
    /// Read the pointer here and go where it points (NULL ends the path with NULL).
    Deref,
    /// Every element of an array (`[*]`, in `sum()`).
    Spread { count: u64, stride: u64 },
    /// From a `struct list_head` to its first object, whose linking member is `link` bytes
    /// in (`first()`; an empty list ends the path with NULL).
    First { link: u64 },
}

impl Place {
    fn at(base: Base) -> Place {
        Place { base, ops: Vec::new() }
    }

    fn add(mut self, bytes: i64) -> Place {
        match self.ops.last_mut() {
            Some(Op::Add(n)) => *n += bytes,
            _ if bytes != 0 => self.ops.push(Op::Add(bytes)),
            _ => {}
        }
        self
    }

    fn then(mut self, op: Op) -> Place {
        self.ops.push(op);
        self
    }
}

/// How a scalar is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    /// An integer (or enum) of `size` bytes; `bits` (shift, width) for a bit-field.
    Int { size: usize, signed: bool, bits: Option<(u32, u32)> },
    /// A `_Bool`.
    Bool { bits: Option<(u32, u32)> },
    /// A pointer, as its address.
    Pointer,
    /// A `char` array of at most this many bytes, as text.
    Chars(usize),
    /// A `char *`, the text it points to, at most this many bytes.
    CharPointer(usize),
}

/// How `hex()`, `mac()`, `ipv4()` and `ipv6()` print bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BytesFormat {
    Hex,
    Mac,
    Ipv4,
    Ipv6,
}

/// The path functions written in Rust.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RustPath {
    /// `d_path()`: through the mount tree.
    Mount,
    /// `dentry_path()`: within one file system.
    Dentry,
    /// `kernfs_path()`: within a kernfs.
    Kernfs,
}

/// A bound expression.
#[derive(Debug, Clone)]
pub(crate) enum BExpr {
    Const(i128),
    Text(String),
    /// An optional column whose members this kernel lacks.
    Null,
    Read(Place, Scalar),
    Addr(Place),
    Bound(BoundName),
    Binary(Box<BExpr>, BinOp, Box<BExpr>),
    Enum(Box<BExpr>, Vec<(i128, String)>),
    Flags(Box<BExpr>, Vec<(u64, String)>),
    Symbol(Box<BExpr>),
    Sum(Place, Scalar),
    Bytes(Place, usize, BytesFormat),
    Rust(RustPath, Vec<BExpr>),
    /// `if(cond, a, b)`.
    If(Box<BExpr>, Box<BExpr>, Box<BExpr>),
}

/// A bound container step.
#[derive(Debug, Clone)]
pub(crate) struct BoundStep {
    pub kind: StepKind,
    /// The container (list head, tree root, xarray, array start, per-cpu variable, tree root object).
    pub source: Place,
    /// Offset of the linking member in each object (container_of).
    pub link: u64,
    /// LIST/HLIST: offset of the head's first pointer; RBTREE: of `rb_node` in the root;
    /// IDR: of `idr_rt`; TREE: of the children list head in each object.
    pub head: u64,
    /// IDR: offset of `idr_base`, if the kernel has it.
    pub idr_base: Option<u64>,
    /// ARRAY: fixed length, or the COUNT expression.
    pub length: Option<u64>,
    pub count: Option<BExpr>,
    /// ARRAY: bytes per element, and whether elements point to the objects.
    pub stride: u64,
    pub pointers: bool,
    /// For messages: `LIST modules`.
    pub what: String,
}

impl BoundStep {
    /// LIST, HLIST: where each object's back pointer is (`prev` of a `list_head`, `pprev`
    /// of an `hlist_node` or `hlist_nulls_node`, both after `next`), relative to the object.
    pub fn back_link_range(&self) -> Option<(i64, i64)> {
        let back = i64::try_from(self.link).ok()?.checked_add(8)?;
        matches!(self.kind, StepKind::List | StepKind::Hlist).then_some((back, back + 8))
    }
}

/// What a place's type is, as the binder tracks it.
#[derive(Clone, Copy)]
enum Ty<'k> {
    Known(KernelType<'k>),
    /// `CAST(x AS T *)`: a pointer type the kernel may not have spelled out.
    PointerTo(KernelType<'k>),
    /// A global whose type BTF does not describe.
    Untyped,
}

impl<'k> Ty<'k> {
    fn shape(&self) -> kql_drgn::Result<Shape<'k>> {
        match self {
            Ty::Known(ty) => ty.shape(),
            Ty::PointerTo(ty) => Ok(Shape::Pointer(*ty)),
            Ty::Untyped => Ok(Shape::Void),
        }
    }

    fn name(&self) -> String {
        match self {
            Ty::Known(ty) => ty.name(),
            Ty::PointerTo(ty) => format!("{} *", ty.name()),
            Ty::Untyped => "a global of unknown type".to_string(),
        }
    }
}

/// A place and its type.
#[derive(Clone)]
struct Typed<'k> {
    place: Place,
    ty: Ty<'k>,
    bits: Option<(u32, u32)>,
    /// How the path was written, for messages.
    text: String,
}

/// What names mean where an expression is bound.
#[derive(Clone, Copy)]
struct Scope<'a, 'k> {
    object: Option<KernelType<'k>>,
    parent: Option<(Option<&'a str>, KernelType<'k>)>,
    globals: bool,
    bound: &'a [BoundName],
    spread: bool,
}

/// Binds declarations against one kernel's types.
pub struct Binder<'a, 'k> {
    types: &'a Types<'k>,
    /// Other declarations, by name, for `PARENT`.
    catalog: &'a dyn Fn(&str) -> Option<Declaration>,
}

impl<'a, 'k> Binder<'a, 'k> {
    /// A binder over `types`; `catalog` finds a parent's declaration by table name.
    pub fn new(types: &'a Types<'k>, catalog: &'a dyn Fn(&str) -> Option<Declaration>) -> Self {
        Binder { types, catalog }
    }

    /// `declaration` bound to this kernel.
    pub fn bind(&self, declaration: &Declaration) -> Result<Plan, DeclareError> {
        self.bind_within(declaration, 0)
    }

    fn bind_within(&self, declaration: &Declaration, parents: usize) -> Result<Plan, DeclareError> {
        let parent = match &declaration.parent {
            None => None,
            Some(_) if parents >= MAX_PARENTS => {
                return Err(DeclareError::new(
                    Some(declaration.at),
                    format!("PARENT tables nest more than {MAX_PARENTS} deep (a cycle?)"),
                ));
            }
            Some(reference) => Some(self.bind_parent(reference, parents)?),
        };
        let parent_scope = match (&declaration.parent, &parent) {
            (Some(reference), Some((_, ty))) => Some((reference.alias.as_deref(), *ty)),
            _ => None,
        };
        let (steps, object, bound) = self.bind_walk(&declaration.walk, parent_scope)?;
        let scope = Scope {
            object: Some(object),
            parent: parent_scope,
            globals: false,
            bound: &bound,
            spread: false,
        };
        let columns: Vec<BoundColumn> =
            declaration.columns.iter().map(|c| self.bind_column(c, scope)).collect::<Result<_, _>>()?;
        let span = ObjectSpan::of(&columns, steps.last().and_then(BoundStep::back_link_range));
        let plan = Plan {
            name: declaration.name.clone(),
            steps,
            span,
            columns,
            parent: parent.map(|(plan, _)| Box::new(plan)),
            object_type: object.name(),
            union: Vec::new(),
        };
        self.with_union(plan, declaration, parents)
    }

    /// `plan` with the `UNION` parts of `declaration` bound: each part's walk, with the first
    /// `COLUMNS`' names, types, keys and `?` and the part's own expressions.
    fn with_union(
        &self,
        mut plan: Plan,
        declaration: &Declaration,
        parents: usize,
    ) -> Result<Plan, DeclareError> {
        let names: Vec<&str> = declaration.columns.iter().map(|c| c.name.as_str()).collect();
        for part in &declaration.union {
            let own: Vec<&str> = part.columns.iter().map(|c| c.name.as_str()).collect();
            if own != names {
                return Err(DeclareError::new(
                    Some(part.at),
                    format!("a UNION part restates every column, in order: {}", names.join(", ")),
                ));
            }
            let columns = declaration.columns.iter().zip(&part.columns);
            let part_declaration = Declaration {
                walk: part.walk.clone(),
                columns: columns
                    .map(|(first, own)| ColumnDecl { expr: own.expr.clone(), ..first.clone() })
                    .collect(),
                union: Vec::new(),
                ..declaration.clone()
            };
            let bound = self.bind_within(&part_declaration, parents)?;
            for ((name, first), (_, here)) in plan.output().into_iter().zip(bound.output()) {
                if first != here {
                    return Err(DeclareError::new(
                        Some(part.at),
                        format!(
                            "column {name} is {here:?} in this UNION part, {first:?} in the first: write its type"
                        ),
                    ));
                }
            }
            plan.union.push(bound);
        }
        Ok(plan)
    }

    fn bind_parent(
        &self,
        reference: &ParentRef,
        parents: usize,
    ) -> Result<(Plan, KernelType<'k>), DeclareError> {
        let declaration = (self.catalog)(&reference.table).ok_or_else(|| {
            DeclareError::new(
                Some(reference.at),
                format!("PARENT {}: no such declared table", reference.table),
            )
        })?;
        let plan = self.bind_within(&declaration, parents + 1)?;
        let object = self.find_type(&plan.object_type, reference.at)?;
        Ok((plan, object))
    }

    /// The first alternative of `walk` that binds: its steps, the row objects' type, and
    /// what the steps bind (`@index`, `@cpu`, `@depth`).
    fn bind_walk(
        &self,
        walk: &[Chain],
        parent: Option<(Option<&str>, KernelType<'k>)>,
    ) -> Result<(Vec<BoundStep>, KernelType<'k>, Vec<BoundName>), DeclareError> {
        let mut failures = Vec::new();
        for chain in walk {
            match self.bind_chain(chain, parent) {
                Ok(bound) => return Ok(bound),
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => {
                let each: Vec<String> = failures.iter().map(ToString::to_string).collect();
                Err(DeclareError::new(
                    walk.first().and_then(|c| c.first()).map(|s| s.at),
                    format!("no alternative of the walk fits this kernel: {}", each.join("; ")),
                ))
            }
        }
    }

    fn bind_chain(
        &self,
        chain: &[Step],
        parent: Option<(Option<&str>, KernelType<'k>)>,
    ) -> Result<(Vec<BoundStep>, KernelType<'k>, Vec<BoundName>), DeclareError> {
        let mut steps = Vec::new();
        let mut object: Option<KernelType<'k>> = None;
        let mut bound = Vec::new();
        for step in chain {
            let scope = Scope {
                object,
                parent: if object.is_none() { parent } else { None },
                globals: object.is_none(),
                bound: &bound,
                spread: false,
            };
            let (bound_step, next) = self.bind_step(step, scope)?;
            bound.extend(binds(step.kind));
            steps.push(bound_step);
            object = Some(next);
        }
        let object = object.ok_or_else(|| DeclareError::new(None, "a walk needs at least one step"))?;
        Ok((steps, object, bound))
    }

    fn bind_step(
        &self,
        step: &Step,
        scope: Scope<'_, 'k>,
    ) -> Result<(BoundStep, KernelType<'k>), DeclareError> {
        let mut source = self.place(&step.source, scope)?;
        if let (Ty::Untyped, Some(head)) = (source.ty, default_head(step.kind)) {
            source.ty = Ty::Known(self.find_type(head, step.source.at)?);
        }
        let what = format!("{} {}", step.kind.keyword(), source.text);
        let mut bound = BoundStep {
            kind: step.kind,
            source: source.place.clone(),
            link: 0,
            head: 0,
            idr_base: None,
            length: None,
            count: None,
            stride: 0,
            pointers: false,
            what,
        };
        let object = match step.kind {
            StepKind::List | StepKind::Hlist | StepKind::Rbtree => {
                self.bind_linked(step, &source, &mut bound)?
            }
            StepKind::Tree => self.bind_tree(step, &source, &mut bound)?,
            StepKind::Xarray | StepKind::Idr => self.bind_xarray(step, &source, &mut bound)?,
            StepKind::Array => self.bind_array(step, &source, scope, &mut bound)?,
            StepKind::Percpu => self.bind_percpu(step, &source)?,
            StepKind::Chain => self.bind_pointer_chain(step, &source, &mut bound)?,
        };
        Ok((bound, object))
    }

    /// LIST, HLIST, RBTREE: the head's type, and the linking member of the objects.
    fn bind_linked(
        &self,
        step: &Step,
        source: &Typed<'k>,
        bound: &mut BoundStep,
    ) -> Result<KernelType<'k>, DeclareError> {
        let (heads, node): (&[&str], &[&str]) = match step.kind {
            StepKind::List => (&["struct list_head"], &["struct list_head"]),
            StepKind::Hlist => (
                &["struct hlist_head", "struct hlist_nulls_head"],
                &["struct hlist_node", "struct hlist_nulls_node"],
            ),
            _ => (&["struct rb_root", "struct rb_root_cached"], &["struct rb_node"]),
        };
        let head_type = self.expect_type(source, heads, step)?;
        bound.head = match head_type.as_str() {
            "struct hlist_head" | "struct hlist_nulls_head" => {
                self.offset_in(source, &["first"], step.source.at)?
            }
            "struct rb_root" => self.offset_in(source, &["rb_node"], step.source.at)?,
            "struct rb_root_cached" => self.offset_in(source, &["rb_root", "rb_node"], step.source.at)?,
            _ => 0,
        };
        let object = self.of_type(step)?;
        let (link, link_type) = self.designator(object, &step.via)?;
        if !node.contains(&link_type.as_str()) {
            return Err(DeclareError::new(
                step.via.first().map(|(_, at)| at).copied(),
                format!("VIA {} is a {link_type}, not a {}", joined(&step.via), node.join(" or ")),
            ));
        }
        bound.link = link;
        Ok(object)
    }

    /// CHAIN: a pointer to the first object, and the member of each object pointing to the
    /// next, both pointers to the `OF` type.
    fn bind_pointer_chain(
        &self,
        step: &Step,
        source: &Typed<'k>,
        bound: &mut BoundStep,
    ) -> Result<KernelType<'k>, DeclareError> {
        let object = self.of_type(step)?;
        let pointer = format!("{} *", object.name());
        let points_to_object = match source.ty.shape().map_err(|e| self.lookup(e, step.source.at))? {
            Shape::Pointer(target) => target.name() == object.name(),
            _ => false,
        };
        if !points_to_object {
            return Err(DeclareError::new(
                Some(step.source.at),
                format!("CHAIN {} is a {}, not a {pointer}", source.text, source.ty.name()),
            ));
        }
        let (link, link_type) = self.designator(object, &step.via)?;
        if link_type != pointer {
            return Err(DeclareError::new(
                step.via.first().map(|(_, at)| *at),
                format!("VIA {} is a {link_type}, not a {pointer}", joined(&step.via)),
            ));
        }
        bound.link = link;
        Ok(object)
    }

    /// TREE: the root object, its children list and its siblings link.
    fn bind_tree(
        &self,
        step: &Step,
        source: &Typed<'k>,
        bound: &mut BoundStep,
    ) -> Result<KernelType<'k>, DeclareError> {
        let object = self.of_type(step)?;
        let written = self.expect_type(source, &[], step)?;
        if written != object.name() {
            return Err(DeclareError::new(
                Some(step.source.at),
                format!("the root of TREE {} is a {written}, not a {}", source.text, object.name()),
            ));
        }
        for (designator, what) in [(&step.via, "VIA"), (&step.children, "CHILDREN")] {
            let (offset, ty) = self.designator(object, designator)?;
            if ty != "struct list_head" {
                return Err(DeclareError::new(
                    designator.first().map(|(_, at)| *at),
                    format!("{what} {} is a {ty}, not a struct list_head", joined(designator)),
                ));
            }
            match what {
                "VIA" => bound.link = offset,
                _ => bound.head = offset,
            }
        }
        Ok(object)
    }

    fn bind_xarray(
        &self,
        step: &Step,
        source: &Typed<'k>,
        bound: &mut BoundStep,
    ) -> Result<KernelType<'k>, DeclareError> {
        match step.kind {
            StepKind::Idr => {
                self.expect_type(source, &["struct idr"], step)?;
                bound.head = self.offset_in(source, &["idr_rt"], step.source.at)?;
                let base = self.member_of(source, "idr_base", step.source.at).ok();
                bound.idr_base = base.map(|base| offset_of(&base.place, &source.place));
            }
            _ => {
                self.expect_type(source, &["struct xarray"], step)?;
            }
        }
        self.of_type(step)
    }

    fn bind_array(
        &self,
        step: &Step,
        source: &Typed<'k>,
        scope: Scope<'_, 'k>,
        bound: &mut BoundStep,
    ) -> Result<KernelType<'k>, DeclareError> {
        let element = match source.ty.shape().map_err(|e| self.lookup(e, step.source.at))? {
            Shape::Array { element, length } => {
                bound.length = length;
                element
            }
            Shape::Pointer(element) => {
                bound.source = bound.source.clone().then(Op::Deref);
                element
            }
            _ => {
                return Err(DeclareError::new(
                    Some(step.source.at),
                    format!("ARRAY {} is a {}, not an array or a pointer", source.text, source.ty.name()),
                ));
            }
        };
        if let Some(count) = &step.count {
            bound.count = Some(self.value(count, scope)?);
        } else if bound.length.is_none() {
            return Err(DeclareError::new(
                Some(step.at),
                format!("ARRAY {}: its type gives no length; add COUNT expr", source.text),
            ));
        }
        bound.stride = element.size().map_err(|e| self.lookup(e, step.source.at))? as u64;
        let target = match element.shape().map_err(|e| self.lookup(e, step.source.at))? {
            Shape::Pointer(target) => {
                bound.pointers = true;
                target
            }
            _ => element,
        };
        let Some(of) = &step.of else { return Ok(target) };
        let named = self.type_ref(of)?;
        if !bound.pointers && named.name() != element.name() {
            return Err(DeclareError::new(
                Some(of.at),
                format!(
                    "ARRAY {}: its elements are {}, not {} (OF retypes only what pointer elements point to)",
                    source.text,
                    element.name(),
                    named.name()
                ),
            ));
        }
        Ok(named)
    }

    fn bind_percpu(&self, step: &Step, source: &Typed<'k>) -> Result<KernelType<'k>, DeclareError> {
        if !matches!(source.place.base, Base::Global(_)) || source.place.ops.contains(&Op::Deref) {
            return Err(DeclareError::new(
                Some(step.source.at),
                format!("PERCPU {} must name a per-cpu global variable", source.text),
            ));
        }
        match (&step.of, source.ty) {
            (Some(of), _) => self.type_ref(of),
            (None, Ty::Known(ty)) => Ok(ty),
            (None, _) => Err(DeclareError::new(
                Some(step.source.at),
                format!("PERCPU {}: its type is unknown here; add OF type", source.text),
            )),
        }
    }

    /// The name of `source`'s type, which must be one of `allowed` (any, if empty).
    fn expect_type(&self, source: &Typed<'k>, allowed: &[&str], step: &Step) -> Result<String, DeclareError> {
        let name = match source.ty {
            Ty::Untyped => {
                return Err(untyped(&source.text, step.source.at));
            }
            ty => ty.name(),
        };
        if allowed.is_empty() || allowed.contains(&name.as_str()) {
            return Ok(name);
        }
        Err(DeclareError::new(
            Some(step.source.at),
            format!("{} {} is a {name}, not a {}", step.kind.keyword(), source.text, allowed.join(" or ")),
        ))
    }

    /// The offset of `path` (members, in order) inside `source`'s type.
    fn offset_in(&self, source: &Typed<'k>, path: &[&str], at: Pos) -> Result<u64, DeclareError> {
        let mut typed = source.clone();
        for name in path {
            typed = self.member_of(&typed, name, at)?;
        }
        Ok(offset_of(&typed.place, &source.place))
    }

    /// The `OF` type of a step (required for the containers that need it).
    fn of_type(&self, step: &Step) -> Result<KernelType<'k>, DeclareError> {
        match &step.of {
            Some(of) => self.type_ref(of),
            None => Err(DeclareError::new(
                Some(step.at),
                format!("{} needs OF type: the type of the objects it holds", step.kind.keyword()),
            )),
        }
    }

    fn type_ref(&self, of: &TypeRef) -> Result<KernelType<'k>, DeclareError> {
        if of.pointer {
            return Err(DeclareError::new(
                Some(of.at),
                format!("OF names the objects' type, not a pointer: {}", of.name),
            ));
        }
        self.find_type(&of.name, of.at)
    }

    fn find_type(&self, name: &str, at: Pos) -> Result<KernelType<'k>, DeclareError> {
        self.types
            .find_type(name)
            .map_err(|e| DeclareError::new(Some(at), format!("unknown type {name}: {}", e.message)))
    }

    /// Byte offset and type name of the member `designator` of `object`.
    fn designator(
        &self,
        object: KernelType<'k>,
        designator: &[(String, Pos)],
    ) -> Result<(u64, String), DeclareError> {
        let mut typed =
            Typed { place: Place::at(Base::Object), ty: Ty::Known(object), bits: None, text: object.name() };
        for (name, at) in designator {
            typed = self.member_of(&typed, name, *at)?;
        }
        Ok((offset_of(&typed.place, &Place::at(Base::Object)), typed.ty.name()))
    }

    fn bind_column(&self, column: &ColumnDecl, scope: Scope<'_, 'k>) -> Result<BoundColumn, DeclareError> {
        let expr = match self.value(&column.expr, scope) {
            Ok(expr) => expr,
            Err(_) if column.optional => BExpr::Null,
            Err(e) => return Err(DeclareError::new(e.at, format!("column {}: {}", column.name, e.message))),
        };
        let sql_type = match (column.sql_type, inferred_type(&expr)) {
            (Some(written), _) => written,
            (None, Some(inferred)) => inferred,
            (None, None) => {
                return Err(DeclareError::new(
                    Some(column.at),
                    format!("column {}: this kernel has none of its members, so write its type", column.name),
                ));
            }
        };
        Ok(BoundColumn { name: column.name.clone(), sql_type, key: column.key, expr })
    }

    /// An expression as a value.
    fn value(&self, expr: &Expr, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        match &expr.kind {
            ExprKind::Number(n) => Ok(BExpr::Const(*n)),
            ExprKind::Text(text) => Ok(BExpr::Text(text.clone())),
            ExprKind::Bound(name) if scope.bound.contains(name) => Ok(BExpr::Bound(*name)),
            ExprKind::Bound(name) => Err(DeclareError::new(Some(expr.at), unbound_message(*name))),
            ExprKind::Binary(left, op, right) => Ok(BExpr::Binary(
                Box::new(self.number(left, scope)?),
                *op,
                Box::new(self.number(right, scope)?),
            )),
            ExprKind::Alternatives(choices) => self.first_binding(choices, scope),
            ExprKind::Call(call) => self.call(call, scope),
            ExprKind::Null => Ok(BExpr::Null),
            _ => {
                let typed = self.place(expr, scope)?;
                Ok(BExpr::Read(typed.place.clone(), self.scalar(&typed, expr.at)?))
            }
        }
    }

    /// A value that must be a number (an operand of `+`, `&`, …).
    fn number(&self, expr: &Expr, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let value = self.value(expr, scope)?;
        match inferred_type(&value) {
            Some(ColumnType::Utf8) | Some(ColumnType::Boolean) => {
                Err(DeclareError::new(Some(expr.at), "arithmetic needs numbers; this is text or a boolean"))
            }
            _ => Ok(value),
        }
    }

    fn first_binding(&self, choices: &[Expr], scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let mut failures = Vec::new();
        for choice in choices {
            match self.value(choice, scope) {
                Ok(value) => return Ok(value),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(DeclareError::new(
            choices.first().map(|c| c.at),
            format!("no alternative fits this kernel: {}", failures.join("; ")),
        ))
    }

    fn call(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let arg = &call.args[0];
        match call.function {
            Function::Enum if call.args.len() > 1 => self.written_enum(call, scope),
            Function::Ipv4 | Function::Ipv6 => self.ip_address(call.function, arg, scope),
            Function::If => self.condition(call, scope),
            Function::First => Err(DeclareError::new(
                Some(arg.at),
                "first(…) is an object: name one of its members, as first(…).member",
            )),
            Function::Enum => {
                Ok(BExpr::Enum(Box::new(self.number(arg, scope)?), self.enumerators(call, scope)?))
            }
            Function::Flags => self.flags(call, scope),
            Function::Symbol => Ok(BExpr::Symbol(Box::new(self.number(arg, scope)?))),
            Function::Str => self.text(call, scope),
            Function::Sum => {
                let typed = self.place(arg, Scope { spread: true, ..scope })?;
                if !typed.place.ops.iter().any(|op| matches!(op, Op::Spread { .. })) {
                    return Err(DeclareError::new(
                        Some(arg.at),
                        "sum() adds up an array: write a[*] or a[*].member",
                    ));
                }
                Ok(BExpr::Sum(typed.place.clone(), self.scalar(&typed, arg.at)?))
            }
            Function::Addr => Ok(BExpr::Addr(self.place(arg, scope)?.place)),
            Function::Hex | Function::Mac => self.bytes(call.function, arg, scope),
            Function::DPath | Function::DentryPath | Function::KernfsPath => {
                let function = match call.function {
                    Function::DPath => RustPath::Mount,
                    Function::DentryPath => RustPath::Dentry,
                    _ => RustPath::Kernfs,
                };
                let args = call.args.iter().map(|a| self.number(a, scope)).collect::<Result<_, _>>()?;
                Ok(BExpr::Rust(function, args))
            }
        }
    }

    /// `enum(x, 'A', 'B', 7, 'C', …)`: names written in the declaration, for values 0, 1, …;
    /// a number sets the next name's value (as in a C enum).
    fn written_enum(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let value = self.number(&call.args[0], scope)?;
        let mut names = Vec::new();
        let mut next = 0i128;
        for arg in &call.args[1..] {
            match &arg.kind {
                ExprKind::Number(n) => next = *n,
                ExprKind::Text(name) => {
                    names.push((next, name.clone()));
                    next += 1;
                }
                _ => {
                    return Err(DeclareError::new(
                        Some(arg.at),
                        "enum(x, …) names values with 'TEXT'; a number sets the next name's value",
                    ));
                }
            }
        }
        Ok(BExpr::Enum(Box::new(value), names))
    }

    /// `ipv4(x)`, `ipv6(x)`: the 4 or 16 bytes at `arg`, whatever their type (`__be32`,
    /// `struct in6_addr`, a byte array).
    fn ip_address(
        &self,
        function: Function,
        arg: &Expr,
        scope: Scope<'_, 'k>,
    ) -> Result<BExpr, DeclareError> {
        let typed = self.place(arg, scope)?;
        let (format, wanted) = match function {
            Function::Ipv4 => (BytesFormat::Ipv4, 4),
            _ => (BytesFormat::Ipv6, 16),
        };
        let size = match typed.ty {
            Ty::Known(ty) => ty.size().map_err(|e| self.lookup(e, arg.at))?,
            _ => 0,
        };
        if size != wanted {
            return Err(DeclareError::new(
                Some(arg.at),
                format!(
                    "{}(): {} is a {} of {size} bytes, not {wanted}",
                    if wanted == 4 { "ipv4" } else { "ipv6" },
                    typed.text,
                    typed.ty.name()
                ),
            ));
        }
        Ok(BExpr::Bytes(typed.place, wanted, format))
    }

    /// `if(cond, a [, b])`: `cond` a number or boolean; `a` and `b` of one kind.
    fn condition(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let cond = self.value(&call.args[0], scope)?;
        if inferred_type(&cond) == Some(ColumnType::Utf8) {
            return Err(DeclareError::new(
                Some(call.args[0].at),
                "if(): the condition is text, not a number",
            ));
        }
        let then = self.value(&call.args[1], scope)?;
        let otherwise = match call.args.get(2) {
            Some(arg) => self.value(arg, scope)?,
            None => BExpr::Null,
        };
        let text = |e: &BExpr| inferred_type(e).map(|ty| ty == ColumnType::Utf8);
        if let (Some(a), Some(b)) = (text(&then), text(&otherwise))
            && a != b
        {
            return Err(DeclareError::new(Some(call.args[1].at), "if(): one choice is text, the other not"));
        }
        Ok(BExpr::If(Box::new(cond), Box::new(then), Box::new(otherwise)))
    }

    /// `first(head OF struct T VIA member)` as a place: the first `T` of the list at `head`.
    fn first_entry(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<Typed<'k>, DeclareError> {
        let head = self.place(&call.args[0], scope)?;
        let at = call.args[0].at;
        if head.ty.name() != "struct list_head" {
            return Err(DeclareError::new(
                Some(at),
                format!("first(): {} is a {}, not a struct list_head", head.text, head.ty.name()),
            ));
        }
        let (Some(of), false) = (&call.of, call.via.is_empty()) else {
            return Err(DeclareError::new(Some(at), "first() needs OF type VIA member"));
        };
        let object = self.type_ref(of)?;
        let (link, link_type) = self.designator(object, &call.via)?;
        if link_type != "struct list_head" {
            return Err(DeclareError::new(
                call.via.first().map(|(_, at)| *at).or(Some(at)),
                format!("first(): VIA {} is a {link_type}, not a struct list_head", joined(&call.via)),
            ));
        }
        Ok(Typed {
            place: head.place.then(Op::First { link }),
            ty: Ty::Known(object),
            bits: None,
            text: format!("first({})", head.text),
        })
    }

    /// The enumerators `enum()` names values with: of `OF enum x`, else of the argument's type.
    fn enumerators(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<Vec<(i128, String)>, DeclareError> {
        let (ty, at) = match &call.of {
            Some(of) => (self.find_type(&of.name, of.at)?, of.at),
            None => {
                let typed = self.place(&call.args[0], scope)?;
                match typed.ty {
                    Ty::Known(ty) => (ty, call.args[0].at),
                    _ => {
                        return Err(DeclareError::new(
                            Some(call.args[0].at),
                            "enum() needs OF enum name here",
                        ));
                    }
                }
            }
        };
        let enumerators = ty.enumerators().map_err(|e| {
            DeclareError::new(
                Some(at),
                format!("{} is not an enum ({}); add OF enum name", ty.name(), e.message),
            )
        })?;
        let strip = call.strip.as_deref().unwrap_or("");
        Ok(enumerators
            .into_iter()
            .map(|(name, value)| (i128::from(value), name.strip_prefix(strip).unwrap_or(&name).to_string()))
            .collect())
    }

    /// `flags(x, 'A', 'B', …)` names bits 0, 1, …; `flags(x OF enum e)` takes the enum's
    /// single-bit values as masks.
    fn flags(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let value = self.number(&call.args[0], scope)?;
        let mut names = Vec::new();
        for (bit, arg) in call.args[1..].iter().enumerate() {
            match &arg.kind {
                ExprKind::Text(name) => names.push((1u64 << bit, name.clone())),
                _ => return Err(DeclareError::new(Some(arg.at), "flags() names bits with 'TEXT'")),
            }
        }
        if call.of.is_some() || names.is_empty() {
            for (value, name) in self.enumerators(call, scope)? {
                if value > 0 && (value as u64).is_power_of_two() {
                    names.push((value as u64, name));
                }
            }
        }
        Ok(BExpr::Flags(Box::new(value), names))
    }

    fn text(&self, call: &Call, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let arg = &call.args[0];
        let typed = self.place(arg, scope)?;
        let limit = match call.args.get(1).map(|a| &a.kind) {
            None => MAX_TEXT,
            Some(ExprKind::Number(n)) if (1..=1 << 20).contains(n) => *n as usize,
            Some(_) => {
                return Err(DeclareError::new(
                    Some(call.args[1].at),
                    "str(x, N): N is a byte count up to 1048576",
                ));
            }
        };
        match self.scalar(&typed, arg.at)? {
            Scalar::Chars(len) => Ok(BExpr::Read(typed.place, Scalar::Chars(len.min(limit)))),
            Scalar::CharPointer(_) | Scalar::Pointer => {
                Ok(BExpr::Read(typed.place, Scalar::CharPointer(limit)))
            }
            _ => Err(DeclareError::new(
                Some(arg.at),
                format!("str(): {} is a {}, not text", typed.text, typed.ty.name()),
            )),
        }
    }

    fn bytes(&self, function: Function, arg: &Expr, scope: Scope<'_, 'k>) -> Result<BExpr, DeclareError> {
        let typed = self.place(arg, scope)?;
        let format = if function == Function::Mac { BytesFormat::Mac } else { BytesFormat::Hex };
        let wanted = if format == BytesFormat::Mac { Some(6) } else { None };
        match typed.ty.shape().map_err(|e| self.lookup(e, arg.at))? {
            Shape::Array { element, length: Some(length) } => {
                let size = element.size().map_err(|e| self.lookup(e, arg.at))? as u64;
                Ok(BExpr::Bytes(typed.place, wanted.unwrap_or((length * size) as usize), format))
            }
            Shape::Pointer(_) if wanted.is_some() => Ok(BExpr::Bytes(typed.place.then(Op::Deref), 6, format)),
            _ => Err(DeclareError::new(
                Some(arg.at),
                format!(
                    "{}(): {} is a {}, not a byte array",
                    if wanted.is_some() { "mac" } else { "hex" },
                    typed.text,
                    typed.ty.name()
                ),
            )),
        }
    }

    /// How the value at `typed` is read.
    fn scalar(&self, typed: &Typed<'k>, at: Pos) -> Result<Scalar, DeclareError> {
        let shape = typed.ty.shape().map_err(|e| self.lookup(e, at))?;
        match shape {
            Shape::Int { size, signed, .. } | Shape::Enum { size, signed } => {
                Ok(Scalar::Int { size, signed, bits: typed.bits })
            }
            Shape::Bool => Ok(Scalar::Bool { bits: typed.bits }),
            Shape::Pointer(target) if is_char(target) => Ok(Scalar::CharPointer(MAX_TEXT)),
            Shape::Pointer(_) => Ok(Scalar::Pointer),
            Shape::Array { element, length } if is_char(element) => {
                Ok(Scalar::Chars(length.unwrap_or(0) as usize))
            }
            Shape::Struct | Shape::Union => {
                let names = match typed.ty {
                    Ty::Known(ty) => ty.member_names().unwrap_or_default(),
                    _ => Vec::new(),
                };
                let some: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
                Err(DeclareError::new(
                    Some(at),
                    format!(
                        "{} is a {}: name one of its members ({}…) or take addr({})",
                        typed.text,
                        typed.ty.name(),
                        some.join(", "),
                        typed.text
                    ),
                ))
            }
            Shape::Void if matches!(typed.ty, Ty::Untyped) => Err(untyped(&typed.text, at)),
            _ => Err(DeclareError::new(
                Some(at),
                format!(
                    "{} is a {}, which is not a column value (index an array, or sum() it)",
                    typed.text,
                    typed.ty.name()
                ),
            )),
        }
    }

    /// An expression as a place: where a value lives, and its type.
    fn place(&self, expr: &Expr, scope: Scope<'_, 'k>) -> Result<Typed<'k>, DeclareError> {
        match &expr.kind {
            ExprKind::Name(name) => self.name(name, expr.at, scope),
            ExprKind::This => match scope.object {
                Some(ty) => Ok(Typed {
                    place: Place::at(Base::Object),
                    ty: Ty::Known(ty),
                    bits: None,
                    text: "@".into(),
                }),
                None => Err(DeclareError::new(
                    Some(expr.at),
                    "@ is the previous step's object; the first step has none",
                )),
            },
            ExprKind::Parent => match scope.parent {
                Some((_, ty)) => Ok(Typed {
                    place: Place::at(Base::Parent),
                    ty: Ty::Known(ty),
                    bits: None,
                    text: "@parent".into(),
                }),
                None => Err(DeclareError::new(
                    Some(expr.at),
                    "@parent: this table has no PARENT (or this is not its first step)",
                )),
            },
            ExprKind::Member(inner, name) => {
                let typed = self.place(inner, scope)?;
                self.member_of(&typed, name, expr.at)
            }
            ExprKind::Arrow(inner, name) => {
                let typed = self.place(inner, scope)?;
                let pointee = self.deref(&typed, expr.at)?;
                self.member_of(&pointee, name, expr.at)
            }
            ExprKind::Subscript(inner, index) => {
                let typed = self.place(inner, scope)?;
                self.subscript(&typed, *index, expr.at, scope.spread)
            }
            ExprKind::Cast(inner, to) => self.cast(inner, to, scope),
            ExprKind::Call(call) if call.function == Function::First => self.first_entry(call, scope),
            _ => Err(DeclareError::new(Some(expr.at), "expected a member, a global or @")),
        }
    }

    fn name(&self, name: &str, at: Pos, scope: Scope<'_, 'k>) -> Result<Typed<'k>, DeclareError> {
        if let Some((alias, ty)) = scope.parent
            && alias == Some(name)
        {
            return Ok(Typed {
                place: Place::at(Base::Parent),
                ty: Ty::Known(ty),
                bits: None,
                text: name.into(),
            });
        }
        if let Some(object) = scope.object {
            let this = Typed {
                place: Place::at(Base::Object),
                ty: Ty::Known(object),
                bits: None,
                text: String::new(),
            };
            return self.member_of(&this, name, at);
        }
        if !scope.globals {
            return Err(DeclareError::new(Some(at), format!("'{name}' names nothing here")));
        }
        let address = self
            .types
            .symbol(name)
            .map_err(|e| DeclareError::new(Some(at), format!("unknown symbol '{name}': {}", e.message)))?;
        let ty = self.types.variable_type(name).map_or(Ty::Untyped, Ty::Known);
        Ok(Typed { place: Place::at(Base::Global(address)), ty, bits: None, text: name.into() })
    }

    /// The member `name` of the struct or union at `typed`.
    fn member_of(&self, typed: &Typed<'k>, name: &str, at: Pos) -> Result<Typed<'k>, DeclareError> {
        let text = match typed.text.as_str() {
            "" => name.to_string(),
            path => format!("{path}.{name}"),
        };
        let ty = match typed.ty {
            Ty::Known(ty) => ty,
            Ty::Untyped => return Err(untyped(&typed.text, at)),
            Ty::PointerTo(_) => {
                return Err(DeclareError::new(
                    Some(at),
                    format!(
                        "{} is a pointer ({}): write {}->{name}",
                        typed.text,
                        typed.ty.name(),
                        typed.text
                    ),
                ));
            }
        };
        match ty.shape().map_err(|e| self.lookup(e, at))? {
            Shape::Struct | Shape::Union => {}
            Shape::Pointer(_) => {
                return Err(DeclareError::new(
                    Some(at),
                    format!("{} is a pointer ({}): write {}->{name}", typed.text, ty.name(), typed.text),
                ));
            }
            _ => {
                return Err(DeclareError::new(
                    Some(at),
                    format!("{} is a {}, which has no members", typed.text, ty.name()),
                ));
            }
        }
        let member = ty.member(name).map_err(|e| self.lookup(e, at))?.ok_or_else(|| {
            let names = ty.member_names().unwrap_or_default();
            DeclareError::new(
                Some(at),
                format!("{} has no member '{name}'{}", ty.name(), nearest(name, &names)),
            )
        })?;
        let bits = member.bit_size.map(|width| ((member.bit_offset % 8) as u32, width));
        Ok(Typed {
            place: typed.place.clone().add((member.bit_offset / 8) as i64),
            ty: Ty::Known(member.ty),
            bits,
            text,
        })
    }

    /// What the pointer at `typed` points to.
    fn deref(&self, typed: &Typed<'k>, at: Pos) -> Result<Typed<'k>, DeclareError> {
        match typed.ty.shape().map_err(|e| self.lookup(e, at))? {
            Shape::Pointer(target) => Ok(Typed {
                place: typed.place.clone().then(Op::Deref),
                ty: Ty::Known(target),
                bits: None,
                text: typed.text.clone(),
            }),
            _ if matches!(typed.ty, Ty::Untyped) => Err(untyped(&typed.text, at)),
            _ => Err(DeclareError::new(
                Some(at),
                format!("'->' through a non-pointer: {} is a {}", typed.text, typed.ty.name()),
            )),
        }
    }

    fn subscript(
        &self,
        typed: &Typed<'k>,
        index: Option<u64>,
        at: Pos,
        spread: bool,
    ) -> Result<Typed<'k>, DeclareError> {
        let (base, element, length) = match typed.ty.shape().map_err(|e| self.lookup(e, at))? {
            Shape::Array { element, length } => (typed.place.clone(), element, length),
            Shape::Pointer(element) => (typed.place.clone().then(Op::Deref), element, None),
            _ => {
                return Err(DeclareError::new(
                    Some(at),
                    format!("{} is a {}, which cannot be indexed", typed.text, typed.ty.name()),
                ));
            }
        };
        let stride = element.size().map_err(|e| self.lookup(e, at))? as u64;
        let place = match (index, length) {
            (Some(i), Some(length)) if i >= length => {
                return Err(DeclareError::new(
                    Some(at),
                    format!("{}[{i}] is past the end of its {length} elements", typed.text),
                ));
            }
            (Some(i), _) => base.add((i * stride) as i64),
            (None, Some(count))
                if spread && !typed.place.ops.iter().any(|op| matches!(op, Op::Spread { .. })) =>
            {
                base.then(Op::Spread { count, stride })
            }
            (None, _) => {
                return Err(DeclareError::new(
                    Some(at),
                    "[*] is for one array of known length, inside sum()",
                ));
            }
        };
        let text = format!("{}[{}]", typed.text, index.map_or("*".into(), |i| i.to_string()));
        Ok(Typed { place, ty: Ty::Known(element), bits: None, text })
    }

    fn cast(&self, inner: &Expr, to: &TypeRef, scope: Scope<'_, 'k>) -> Result<Typed<'k>, DeclareError> {
        let typed = self.place(inner, scope)?;
        let target = self.find_type(&to.name, to.at)?;
        let text = format!("CAST({} AS {}{})", typed.text, to.name, if to.pointer { " *" } else { "" });
        if !to.pointer {
            return Ok(Typed { place: typed.place, ty: Ty::Known(target), bits: None, text });
        }
        match typed.ty.shape().map_err(|e| self.lookup(e, to.at))? {
            Shape::Pointer(_) | Shape::Int { size: 8, .. } => {
                Ok(Typed { place: typed.place, ty: Ty::PointerTo(target), bits: None, text })
            }
            _ => Err(DeclareError::new(
                Some(to.at),
                format!(
                    "{} is a {}; only a pointer or a 64-bit integer can be cast to a pointer",
                    typed.text,
                    typed.ty.name()
                ),
            )),
        }
    }

    fn lookup(&self, error: kql_drgn::Error, at: Pos) -> DeclareError {
        DeclareError::new(Some(at), error.message)
    }
}

/// The type a container's head has when a global names it and the types cannot tell (BTF
/// describes no globals but per-cpu ones): `LIST modules` says `modules` is a list head.
fn default_head(kind: StepKind) -> Option<&'static str> {
    match kind {
        StepKind::List => Some("struct list_head"),
        StepKind::Hlist => Some("struct hlist_head"),
        StepKind::Rbtree => Some("struct rb_root"),
        StepKind::Xarray => Some("struct xarray"),
        StepKind::Idr => Some("struct idr"),
        _ => None,
    }
}

/// What a step binds for later steps and columns.
fn binds(kind: StepKind) -> Option<BoundName> {
    match kind {
        StepKind::Xarray | StepKind::Idr | StepKind::Array => Some(BoundName::Index),
        StepKind::Percpu => Some(BoundName::Cpu),
        StepKind::Tree => Some(BoundName::Depth),
        _ => None,
    }
}

fn unbound_message(name: BoundName) -> String {
    match name {
        BoundName::Index => "@index: no step of this walk binds it (XARRAY, IDR and ARRAY do)".into(),
        BoundName::Cpu => "@cpu: no step of this walk binds it (PERCPU does)".into(),
        BoundName::Depth => "@depth: no step of this walk binds it (TREE does)".into(),
    }
}

fn untyped(global: &str, at: Pos) -> DeclareError {
    DeclareError::new(
        Some(at),
        format!(
            "the type of global '{global}' is not known here (BTF describes only per-cpu variables): write CAST({global} AS struct …)"
        ),
    )
}

fn is_char(ty: KernelType) -> bool {
    matches!(ty.shape(), Ok(Shape::Int { char: true, .. }))
}

/// The byte offset `inner` adds to `outer`, a place it extends by member offsets only.
fn offset_of(inner: &Place, outer: &Place) -> u64 {
    (trailing_offset(inner) - trailing_offset(outer)) as u64
}

/// The bytes added after a place's last pointer hop.
fn trailing_offset(place: &Place) -> i64 {
    match place.ops.last() {
        Some(Op::Add(n)) => *n,
        _ => 0,
    }
}

fn joined(designator: &[(String, Pos)]) -> String {
    designator.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(".")
}

/// " (nearest: a, b, c)" from `names`, by edit distance to `name`.
fn nearest(name: &str, names: &[String]) -> String {
    let mut ranked: Vec<(usize, &String)> = names.iter().map(|n| (edit_distance(name, n), n)).collect();
    ranked.sort();
    let best: Vec<&str> = ranked.iter().take(3).map(|(_, n)| n.as_str()).collect();
    match best.is_empty() {
        true => String::new(),
        false => format!(" (nearest: {})", best.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The SQL type a bound expression has when none is written; `None` for `NULL`.
pub(crate) fn inferred_type(expr: &BExpr) -> Option<ColumnType> {
    Some(match expr {
        BExpr::Null => return None,
        BExpr::Const(_) => ColumnType::Int64,
        BExpr::Text(_)
        | BExpr::Enum(..)
        | BExpr::Flags(..)
        | BExpr::Symbol(_)
        | BExpr::Bytes(..)
        | BExpr::Rust(..) => ColumnType::Utf8,
        BExpr::Read(_, scalar) | BExpr::Sum(_, scalar) => {
            scalar_type(*scalar, matches!(expr, BExpr::Sum(..)))
        }
        BExpr::Addr(_) => ColumnType::UInt64,
        BExpr::If(_, then, otherwise) => return inferred_type(then).or_else(|| inferred_type(otherwise)),
        BExpr::Bound(BoundName::Index) => ColumnType::UInt64,
        BExpr::Bound(_) => ColumnType::UInt32,
        BExpr::Binary(left, _, right) => {
            let signed = |e: &BExpr| matches!(inferred_type(e), Some(ColumnType::Int32 | ColumnType::Int64));
            if signed(left) || signed(right) { ColumnType::Int64 } else { ColumnType::UInt64 }
        }
    })
}

fn scalar_type(scalar: Scalar, summed: bool) -> ColumnType {
    match scalar {
        Scalar::Int { signed: true, size, .. } if size <= 4 && !summed => ColumnType::Int32,
        Scalar::Int { signed: true, .. } => ColumnType::Int64,
        Scalar::Int { size, .. } if size <= 2 && !summed => ColumnType::UInt16,
        Scalar::Int { size, .. } if size <= 4 && !summed => ColumnType::UInt32,
        Scalar::Int { .. } | Scalar::Pointer => ColumnType::UInt64,
        Scalar::Bool { .. } => ColumnType::Boolean,
        Scalar::Chars(_) | Scalar::CharPointer(_) => ColumnType::Utf8,
    }
}

/// Declarations by name, for binding `PARENT`s.
pub fn catalog(declarations: &[Declaration]) -> impl Fn(&str) -> Option<Declaration> + '_ {
    let by_name: HashMap<&str, &Declaration> = declarations.iter().map(|d| (d.name.as_str(), d)).collect();
    move |name| by_name.get(name).map(|d| (*d).clone())
}
