//! Checks on the crate as the compiler expanded it (`-Zunpretty=expanded`:
//! macros expanded, `cfg` stripped), parsed with `syn`: what the
//! `unsafe_code` lint does not cover, and the implied-bounds shapes of
//! rust-lang/rust#25860.
//!
//! # Unsafe attributes and assembly
//! `#[unsafe(naked)]` functions pass `-F unsafe_code` (rustc 1.95) yet hold
//! arbitrary assembly callable from safe code. Any attribute written
//! `#[unsafe(..)]`, and `naked`, `no_mangle`, `export_name`, `link_section`,
//! `link_name`, `link`, `used` in any form, is rejected, as is any assembly
//! macro left after expansion (`asm!`, `global_asm!`, `naked_asm!`). So is
//! `target_feature` (also safe to write): a kernel with SSE off must not run
//! code compiled for features it did not enable.
//!
//! # Implied bounds (#25860 and its kin)
//! A function may rely on the bounds its signature's types imply: from
//! `&'a &'b T` it knows `'b: 'a`. rustc does not check them again when the
//! function is coerced to a more general function pointer (or trait object,
//! or passed to a higher-ranked bound), so safe code can turn any lifetime
//! into `'static`. Every such exploit needs a written type in which one
//! lifetime *encloses* another lifetime or a type parameter: a reference
//! `&'a U`, a path with a lifetime argument `P<'a, U>`, or a trait object or
//! `impl Trait` with a lifetime bound `dyn Tr<U> + 'a`, where `U` mentions a
//! lifetime other than `'a` and `'static` (an elided one counts as distinct),
//! a generic type parameter, or `Self` when it stands for a type that has
//! them. This check rejects that shape in **every** type the expanded crate
//! writes: signatures, function-pointer and `Fn(..)` types, closures' typed
//! parameters, impl headers, type aliases, struct fields, `let` annotations.
//! It is conservative (it also rejects sound code such as `&[&str]`), and
//! the forced `-F elided_lifetimes_in_paths` makes every lifetime of a path
//! visible to it (`Formatter<'_>`, never a hidden `Formatter`).

use std::collections::BTreeSet;
use syn::visit::{self, Visit};
use syn::{Attribute, GenericArgument, Meta, PathArguments, ReturnType, Type, TypeParamBound};

/// A lifetime-carrying part of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    /// A named lifetime other than `'static`.
    Named(String),
    /// An elided or `'_` lifetime: distinct from every other.
    Fresh,
    /// A generic type parameter (or a generic `Self`).
    Param(String),
}

impl Atom {
    fn of_lifetime(l: Option<&syn::Lifetime>) -> Option<Atom> {
        match l.map(|l| l.ident.to_string()) {
            None => Some(Atom::Fresh),
            Some(n) if n == "_" => Some(Atom::Fresh),
            Some(n) if n == "static" => None,
            Some(n) => Some(Atom::Named(n)),
        }
    }

    fn same(&self, other: &Atom) -> bool {
        self != &Atom::Fresh && self == other
    }
}

/// Scope facts: which identifiers are type parameters, whether `Self` is generic.
#[derive(Clone, Default)]
struct Scope {
    params: BTreeSet<String>,
    generic_self: bool,
}

/// Collect the atoms of `ty`; push a description of every enclosing shape to `found`.
fn atoms(ty: &Type, scope: &Scope, found: &mut Vec<String>) -> Vec<Atom> {
    let encloses = |own: &Atom, inner: &[Atom], found: &mut Vec<String>, what: &str| {
        if inner.iter().any(|a| !own.same(a)) {
            found.push(what.to_owned());
        }
    };
    match ty {
        Type::Reference(r) => {
            let inner = atoms(&r.elem, scope, found);
            let own = Atom::of_lifetime(r.lifetime.as_ref());
            let what = format!("a reference to a type with lifetimes or type parameters (`{}`)", show(ty));
            match own {
                Some(own) => {
                    encloses(&own, &inner, found, &what);
                    [vec![own], inner].concat()
                }
                // `&'static U`: implies every lifetime in U outlives 'static.
                None if !inner.is_empty() => {
                    found.push(what);
                    inner
                }
                None => inner,
            }
        }
        Type::Path(p) => {
            let mut out = Vec::new();
            if let Some(q) = &p.qself {
                out.extend(atoms(&q.ty, scope, found));
            }
            let path = &p.path;
            // `T`, `Self`, and projections from them (`T::Output`).
            if path.leading_colon.is_none() && p.qself.is_none() {
                let id = path.segments[0].ident.to_string();
                if (id == "Self" && scope.generic_self) || scope.params.contains(&id) {
                    out.push(Atom::Param(id));
                }
            }
            for seg in &path.segments {
                out.extend(path_args(&seg.arguments, scope, found, ty));
            }
            out
        }
        Type::TraitObject(t) => bounds_atoms(t.bounds.iter(), scope, found, ty),
        // In argument position `impl Trait` is an anonymous type parameter.
        Type::ImplTrait(t) => {
            let mut out = bounds_atoms(t.bounds.iter(), scope, found, ty);
            out.push(Atom::Param("impl Trait".to_owned()));
            out
        }
        Type::Tuple(t) => t.elems.iter().flat_map(|e| atoms(e, scope, found)).collect(),
        Type::Slice(t) => atoms(&t.elem, scope, found),
        Type::Array(t) => atoms(&t.elem, scope, found),
        Type::Ptr(t) => atoms(&t.elem, scope, found),
        Type::Paren(t) => atoms(&t.elem, scope, found),
        Type::Group(t) => atoms(&t.elem, scope, found),
        Type::BareFn(f) => {
            // Its own parameters are checked as types of their own; what it
            // carries outward are the free lifetimes and type parameters.
            let bound: BTreeSet<String> = f
                .lifetimes
                .iter()
                .flat_map(|l| l.lifetimes.iter())
                .filter_map(|p| match p {
                    syn::GenericParam::Lifetime(l) => Some(l.lifetime.ident.to_string()),
                    _ => None,
                })
                .collect();
            let mut inner: Vec<Atom> =
                f.inputs.iter().flat_map(|a| atoms(&a.ty, scope, &mut Vec::new())).collect();
            if let ReturnType::Type(_, t) = &f.output {
                inner.extend(atoms(t, scope, &mut Vec::new()));
            }
            inner.retain(|a| !matches!(a, Atom::Fresh) && !matches!(a, Atom::Named(n) if bound.contains(n)));
            inner
        }
        Type::Never(_) | Type::Infer(_) => Vec::new(),
        _ => {
            found.push(format!("a type the check cannot read (`{}`)", show(ty)));
            Vec::new()
        }
    }
}

/// Atoms of generic arguments; a path with a lifetime argument encloses the rest.
fn path_args(args: &PathArguments, scope: &Scope, found: &mut Vec<String>, ty: &Type) -> Vec<Atom> {
    match args {
        PathArguments::None => Vec::new(),
        PathArguments::AngleBracketed(a) => {
            let mut lifetimes = Vec::new();
            let mut rest = Vec::new();
            let mut has_static = false;
            for arg in &a.args {
                match arg {
                    GenericArgument::Lifetime(l) => {
                        has_static |= l.ident == "static";
                        lifetimes.extend(Atom::of_lifetime(Some(l)))
                    }
                    GenericArgument::Type(t) => rest.extend(atoms(t, scope, found)),
                    GenericArgument::AssocType(b) => rest.extend(atoms(&b.ty, scope, found)),
                    _ => {}
                }
            }
            let all = [lifetimes.clone(), rest].concat();
            // A `'static` argument encloses every other atom ('x: 'static).
            if (has_static && !all.is_empty()) || meets_another(&lifetimes, &all) {
                found.push(format!(
                    "a path whose lifetime argument meets other lifetimes or type parameters (`{}`)",
                    show(ty)
                ));
            }
            all
        }
        // `Fn(A) -> R` sugar: like a function pointer (elided lifetimes are bound).
        PathArguments::Parenthesized(p) => {
            let mut inner: Vec<Atom> =
                p.inputs.iter().flat_map(|t| atoms(t, scope, &mut Vec::new())).collect();
            if let ReturnType::Type(_, t) = &p.output {
                inner.extend(atoms(t, scope, &mut Vec::new()));
            }
            inner.retain(|a| !matches!(a, Atom::Fresh));
            inner
        }
    }
}

fn bounds_atoms<'a>(
    bounds: impl Iterator<Item = &'a TypeParamBound>,
    scope: &Scope,
    found: &mut Vec<String>,
    ty: &Type,
) -> Vec<Atom> {
    let mut lifetimes = Vec::new();
    let mut rest = Vec::new();
    let mut has_static = false;
    for b in bounds {
        match b {
            TypeParamBound::Lifetime(l) => {
                has_static |= l.ident == "static";
                lifetimes.extend(Atom::of_lifetime(Some(l)))
            }
            TypeParamBound::Trait(t) => {
                for seg in &t.path.segments {
                    rest.extend(path_args(&seg.arguments, scope, found, ty));
                }
            }
            _ => {}
        }
    }
    let all = [lifetimes.clone(), rest].concat();
    if (has_static && !all.is_empty()) || meets_another(&lifetimes, &all) {
        found.push(format!(
            "a trait object or impl Trait whose lifetime bound meets other lifetimes (`{}`)",
            show(ty)
        ));
    }
    all
}

/// Whether one of `lifetimes` (the first atoms of `all`) meets another atom.
fn meets_another(lifetimes: &[Atom], all: &[Atom]) -> bool {
    lifetimes.iter().enumerate().any(|(i, own)| all.iter().enumerate().any(|(j, a)| i != j && !own.same(a)))
}

fn show(ty: &Type) -> String {
    quote::ToTokens::to_token_stream(ty).to_string()
}

/// Names that are never allowed as attributes of an extension.
const FORBIDDEN_ATTRIBUTES: &[&str] = &[
    "naked",
    "no_mangle",
    "export_name",
    "link_section",
    "link_name",
    "link",
    "used",
    "linkage",
    "target_feature",
];
/// Assembly macros (the pretty printer writes `naked_asm!` as `asm!`).
const ASSEMBLY_MACROS: &[&str] = &["asm", "global_asm", "naked_asm", "llvm_asm"];

/// The visitor: every type in its generic scope, every attribute, every macro.
#[derive(Default)]
struct Checker {
    scopes: Vec<Scope>,
    found: Vec<String>,
}

impl Checker {
    fn scope(&self) -> Scope {
        self.scopes.last().cloned().unwrap_or_default()
    }

    fn with_generics(&mut self, g: &syn::Generics, generic_self: Option<bool>, f: impl FnOnce(&mut Self)) {
        let mut s = self.scope();
        s.params.extend(g.type_params().map(|p| p.ident.to_string()));
        if let Some(gs) = generic_self {
            s.generic_self = gs;
        }
        self.scopes.push(s);
        f(self);
        self.scopes.pop();
    }
}

fn is_assembly(mac: &syn::Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| ASSEMBLY_MACROS.contains(&s.ident.to_string().as_str()))
}

impl<'ast> Visit<'ast> for Checker {
    fn visit_type(&mut self, ty: &'ast Type) {
        let before = self.found.len();
        let _ = atoms(ty, &self.scope(), &mut self.found);
        if self.found.len() > before {
            self.found.truncate(before + 1);
            return; // one report per outermost type
        }
        visit::visit_type(self, ty);
    }

    fn visit_attribute(&mut self, a: &'ast Attribute) {
        let name = |m: &Meta| m.path().segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        let mut names = vec![name(&a.meta)];
        if a.path().is_ident("unsafe") {
            if let Meta::List(l) = &a.meta
                && let Ok(inner) = l.parse_args::<Meta>()
            {
                names.push(name(&inner));
            }
            self.found.push(format!("uses the unsafe attribute `{}`", quote::ToTokens::to_token_stream(a)));
        }
        if let Some(n) = names.iter().find(|n| FORBIDDEN_ATTRIBUTES.contains(&n.as_str())) {
            self.found.push(format!("uses the attribute `{n}`"));
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if is_assembly(m) {
            self.found.push(format!("uses assembly (`{}!`)", quote::ToTokens::to_token_stream(&m.path)));
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.with_generics(&f.sig.generics, None, |c| visit::visit_item_fn(c, f));
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.with_generics(&f.sig.generics, None, |c| visit::visit_impl_item_fn(c, f));
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        self.with_generics(&f.sig.generics, None, |c| visit::visit_trait_item_fn(c, f));
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let mut probe = Vec::new();
        let mut s = self.scope();
        s.params.extend(i.generics.type_params().map(|p| p.ident.to_string()));
        let generic_self = !atoms(&i.self_ty, &s, &mut probe).is_empty();
        self.with_generics(&i.generics, Some(generic_self), |c| visit::visit_item_impl(c, i));
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.with_generics(&t.generics, Some(true), |c| visit::visit_item_trait(c, t));
    }

    fn visit_item_struct(&mut self, i: &'ast syn::ItemStruct) {
        self.with_generics(&i.generics, None, |c| visit::visit_item_struct(c, i));
    }

    fn visit_item_enum(&mut self, i: &'ast syn::ItemEnum) {
        self.with_generics(&i.generics, None, |c| visit::visit_item_enum(c, i));
    }

    fn visit_item_union(&mut self, i: &'ast syn::ItemUnion) {
        self.with_generics(&i.generics, None, |c| visit::visit_item_union(c, i));
    }

    fn visit_item_type(&mut self, i: &'ast syn::ItemType) {
        self.with_generics(&i.generics, None, |c| visit::visit_item_type(c, i));
    }

    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        // `macro_rules!` definitions stay in the output; their uses are expanded.
        if m.mac.path.is_ident("macro_rules") {
            return;
        }
        visit::visit_item_macro(self, m);
    }
}

/// Everything wrong with an expanded crate (empty: it passes).
pub fn violations(expanded: &str) -> Vec<String> {
    let file = match syn::parse_file(expanded) {
        Ok(f) => f,
        Err(e) => return vec![format!("the expanded crate does not parse ({e}); it cannot be checked")],
    };
    let mut c = Checker::default();
    c.visit_file(&file);
    let mut found = c.found;
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::violations;

    fn rejects(src: &str, want: &str) {
        let v = violations(src);
        assert!(v.iter().any(|w| w.contains(want)), "expected {want:?} for {src}\ngot {v:?}");
    }

    fn accepts(src: &str) {
        let v = violations(src);
        assert!(v.is_empty(), "expected no violation for {src}\ngot {v:?}");
    }

    #[test]
    fn nested_references_are_rejected_everywhere() {
        rejects("fn t<'a, 'b, T>(_: &'a &'b (), v: &'b T) -> &'a T { v }", "reference");
        rejects("fn t<'a, 'b, T>(_: &'a mut &'b (), v: &'b T) -> &'a T { v }", "reference");
        rejects("fn t(_: &&u8) {}", "reference");
        rejects("fn t<'b>(_: &'static &'b u8) {}", "reference");
        rejects("fn f() { let g: fn(&&(), &u8) = h; }", "reference");
        accepts("fn f() { let g: fn(&'static &'static (), &u8) = h; }");
        rejects("fn f() { let g = |x: &&u8| 0; }", "reference");
        rejects("fn f(_: &dyn Fn(&'a &'b ())) {}", "reference");
        rejects("type R<'a, 'b> = &'a &'b ();", "reference");
        rejects("struct W<'b>(&'b ()); fn t<'a, 'b>(_: &'a W<'b>) {}", "reference");
        rejects("struct W<'a, 'b>(&'a (), &'b ()); fn t<'a, 'b>(_: W<'a, 'b>) {}", "path whose lifetime");
        rejects("fn t<'a, T>(_: &'a T) {}", "reference");
        rejects("fn t<'a>(_: Box<dyn Tr<&'a u8> + 'static>) {}", "trait object");
        rejects("impl<'a, 'b> Tr for &'a &'b () {}", "reference");
        rejects("impl<'b> Tr for &'b () { fn f(&self) {} }", "reference");
        rejects("trait Tr { fn f(&self); }", "reference");
        rejects("fn f(x: &mut core::fmt::Formatter<'_>) {}", "reference");
        rejects("fn t<'a>(_: &'a impl Sized) {}", "reference");
        rejects("fn t<'a, T: Tr>(_: &'a T::Out) {}", "reference");
        rejects("fn t<'a, T: Tr>(_: &'a <T as Tr>::Out) {}", "reference");
    }

    #[test]
    fn ordinary_extension_code_is_accepted() {
        accepts(
            "fn init(ctx: &InitContext) -> Result<ExportTable, InitError> { ctx.resolve(\"x\", &[&A, &B]) }",
        );
        accepts("fn f(x: &'static [&'static str], y: Option<&u8>, z: (&u8, &u16)) -> &'static str { \"\" }");
        accepts(
            "static E: Event<u64, u64> = Event::new(\"e\", d, Combine::Last); fn f(p: &mut [u8; 4096]) {}",
        );
        accepts(
            "struct S { x: u64 } impl S { fn get(&self) -> &u64 { &self.x } } impl core::fmt::Debug for S { fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result { Ok(()) } }",
        );
        accepts("fn f<'a>(x: &'a &'a u8) -> &'a u8 { x } fn g(h: fn(&u8) -> u64, k: &dyn Fn(&u8)) {}");
        // What the pretty printer emits for builtin macros parses too.
        accepts(
            "fn o() -> usize { (const { builtin # offset_of((u8, u16), 1) }) } fn p() { { ::core::panicking::panic_fmt(format_args!(\"x {0}\", 1)); }; }",
        );
    }

    #[test]
    fn unsafe_attributes_and_assembly_are_rejected() {
        rejects("#[unsafe(naked)] extern \"C\" fn f() { asm!(\"ret\") }", "unsafe attribute");
        rejects("#[unsafe(naked)] extern \"C\" fn f() { asm!(\"ret\") }", "assembly");
        rejects("#[no_mangle] fn memcpy() {}", "no_mangle");
        rejects("#[target_feature(enable = \"avx2\")] fn f() {}", "target_feature");
        rejects("core::arch::global_asm!(\".globl memcpy\");", "assembly");
        accepts("#[inline(always)] #[doc = \"x\"] fn f() {} macro_rules! m { () => { asm!() } }");
    }
}
