//! Issue 20: the Rust column of `docs/api.md` is checked against the names the crates export,
//! as the JS and Python columns are. The sources of `fhir-async` (core) and `fhir-async-client`
//! are parsed with `syn`; a name counts only if it is public: a `pub` item, a `pub` field, a
//! variant, a `pub fn` of an inherent impl or a method of a trait impl. A chain such as
//! `client.stop_handle().stop()` is followed through the return types, so `stop` must be a
//! method of what `stop_handle` returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// What a type (or module) holds: its public members, each with the type it yields, if known.
#[derive(Default, Debug)]
struct Members(BTreeMap<String, Option<String>>);

#[derive(Default, Debug)]
struct Exports {
    /// Every public item (type, fn, const, module, trait), by name.
    items: BTreeSet<String>,
    /// A type's or a module's public members.
    members: BTreeMap<String, Members>,
}

impl Exports {
    fn member(&mut self, owner: &str, name: String, yields: Option<String>) {
        let m = self.members.entry(owner.to_string()).or_default();
        let slot = m.0.entry(name).or_default();
        if slot.is_none() {
            *slot = yields;
        }
    }
}

/// The last path segment of a type, through references, `Result`, `Option` and `Box`.
fn type_name(ty: &syn::Type, self_ty: &str) -> Option<String> {
    match ty {
        syn::Type::Reference(r) => type_name(&r.elem, self_ty),
        syn::Type::Paren(p) => type_name(&p.elem, self_ty),
        syn::Type::Path(p) => {
            let seg = p.path.segments.last()?;
            let name = seg.ident.to_string();
            if ["Result", "Option", "Box", "Arc"].contains(&name.as_str()) {
                if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
                    if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                        return type_name(inner, self_ty);
                    }
                }
                return None;
            }
            Some(if name == "Self" { self_ty.to_string() } else { name })
        }
        _ => None,
    }
}

fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

struct Collector<'a> {
    out: &'a mut Exports,
    /// The modules this file is in (`download`, `tables`, ...), innermost last.
    modules: Vec<String>,
}

impl Collector<'_> {
    fn item(&mut self, name: String) {
        for m in &self.modules {
            self.out.member(m, name.clone(), Some(name.clone()));
        }
        self.out.items.insert(name);
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if is_pub(&s.vis) {
            let owner = s.ident.to_string();
            self.item(owner.clone());
            for f in &s.fields {
                if let (true, Some(id)) = (is_pub(&f.vis), &f.ident) {
                    self.out.member(&owner, id.to_string(), type_name(&f.ty, &owner));
                }
            }
        }
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        if is_pub(&e.vis) {
            let owner = e.ident.to_string();
            self.item(owner.clone());
            for v in &e.variants {
                self.out.member(&owner, v.ident.to_string(), Some(owner.clone()));
                for f in &v.fields {
                    if let Some(id) = &f.ident {
                        self.out.member(&owner, id.to_string(), type_name(&f.ty, &owner));
                    }
                }
            }
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_pub(&f.vis) {
            self.item(f.sig.ident.to_string());
        }
    }

    fn visit_item_const(&mut self, c: &'ast syn::ItemConst) {
        if is_pub(&c.vis) {
            self.item(c.ident.to_string());
        }
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        if is_pub(&t.vis) {
            let owner = t.ident.to_string();
            self.item(owner.clone());
            for i in &t.items {
                if let syn::TraitItem::Fn(f) = i {
                    let yields = match &f.sig.output {
                        syn::ReturnType::Type(_, ty) => type_name(ty, &owner),
                        syn::ReturnType::Default => None,
                    };
                    self.out.member(&owner, f.sig.ident.to_string(), yields);
                }
            }
        }
    }

    fn visit_item_type(&mut self, t: &'ast syn::ItemType) {
        if is_pub(&t.vis) {
            self.item(t.ident.to_string());
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // `pub use a::B;` makes `B` a member of this module too.
        fn leaves(tree: &syn::UseTree, out: &mut Vec<String>) {
            match tree {
                syn::UseTree::Path(p) => leaves(&p.tree, out),
                syn::UseTree::Name(n) => out.push(n.ident.to_string()),
                syn::UseTree::Rename(r) => out.push(r.rename.to_string()),
                syn::UseTree::Group(g) => g.items.iter().for_each(|t| leaves(t, out)),
                syn::UseTree::Glob(_) => {}
            }
        }
        if is_pub(&u.vis) {
            let mut names = Vec::new();
            leaves(&u.tree, &mut names);
            for n in names {
                for m in &self.modules {
                    self.out.member(m, n.clone(), Some(n.clone()));
                }
            }
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_pub(&m.vis) {
            self.item(m.ident.to_string());
        }
        if m.content.is_some() {
            let test = m.attrs.iter().any(|a| a.path().is_ident("cfg"));
            if !test {
                self.modules.push(m.ident.to_string());
                syn::visit::visit_item_mod(self, m);
                self.modules.pop();
            }
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let Some(owner) = type_name(&i.self_ty, "") else { return };
        let of_trait = i.trait_.is_some();
        for item in &i.items {
            if let syn::ImplItem::Fn(f) = item {
                if of_trait || is_pub(&f.vis) {
                    let yields = match &f.sig.output {
                        syn::ReturnType::Type(_, ty) => type_name(ty, &owner),
                        syn::ReturnType::Default => None,
                    };
                    self.out.member(&owner, f.sig.ident.to_string(), yields);
                }
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn exports(root: &Path) -> Exports {
    let mut out = Exports::default();
    for (krate, src) in [("fhir_async", "core/src"), ("fhir_async_client", "client/src")] {
        out.items.insert(krate.to_string());
        let src = root.join(src);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).expect("under src");
            let mut modules = vec![krate.to_string()];
            for c in rel.with_extension("").components() {
                let c = c.as_os_str().to_string_lossy().to_string();
                if !["lib", "mod", "tests"].contains(&c.as_str()) {
                    modules.push(c);
                }
            }
            if rel.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read source");
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            Collector { out: &mut out, modules }.visit_file(&ast);
        }
    }
    out
}

/// The variables the table uses, and the type each stands for.
const VARIABLES: &[(&str, &str)] = &[
    ("client", "Client"),
    ("builder", "ClientBuilder"),
    ("job", "JobRun"),
    ("outcome", "Outcome"),
    ("report", "FileReport"),
];

/// Names of the standard library a cell may use.
const STD: &[&str] = &["Duration", "Vec", "Option", "String", "str"];

/// The Rust cells of docs/api.md: (concept, cell).
fn rust_cells(doc: &str) -> Vec<(String, String)> {
    doc.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| concept") && !l.starts_with("|---"))
        .filter_map(|row| {
            let cells: Vec<String> =
                row.replace("\\|", "\u{0}").split('|').map(|c| c.trim().replace('\u{0}', "|")).collect();
            Some((cells.get(1)?.clone(), cells.get(2)?.clone()))
        })
        .collect()
}

/// The code spans of a cell that name Rust, leaving out what the cell marks as JSON, error
/// codes or the command line.
fn spans(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cell;
    let mut context = String::new();
    while let Some(start) = rest.find('`') {
        context.push_str(&rest[..start]);
        let Some(len) = rest[start + 1..].find('`') else { break };
        let span = &rest[start + 1..start + 1 + len];
        let last_words = context.rsplit('(').next().unwrap_or("");
        let foreign = ["JSON", "codes", "CLI"].iter().any(|w| last_words.contains(w)) || span.starts_with('_');
        if !foreign {
            out.push(span.to_string());
        }
        context.push_str(span);
        rest = &rest[start + 2 + len..];
    }
    out
}

/// Checks one span; returns what it names that the crates do not export.
fn check(span: &str, ex: &Exports) -> Vec<String> {
    let vars: BTreeMap<&str, &str> = VARIABLES.iter().copied().collect();
    let mut missing = Vec::new();
    // Every chain of names in the span: `A::b(..).c()`, `x.y`, `A::{B, C}`, `A::*`.
    let chars: Vec<char> = span.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i].is_ascii_alphabetic() || chars[i] == '_')
            || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            i += 1;
            continue;
        }
        // One chain: names joined by `::` or `.`, skipping a call's arguments.
        let mut chain: Vec<String> = Vec::new();
        let mut group: Vec<String> = Vec::new();
        loop {
            let s = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            chain.push(chars[s..i].iter().collect());
            if i < chars.len() && chars[i] == '(' {
                // skip the arguments (their own chains are checked on their own)
                let close = chars[i..].iter().position(|&c| c == ')').map_or(chars.len(), |p| i + p);
                let inner: String = chars[i + 1..close.min(chars.len())].iter().collect();
                missing.extend(check(&inner, ex));
                i = close + 1;
            }
            let sep = chars[i.min(chars.len())..].iter().collect::<String>();
            if sep.starts_with("::{") {
                let close = sep.find('}').unwrap_or(sep.len());
                group = sep[3..close].split(',').map(|s| s.trim().to_string()).collect();
                i += close + 1;
                break;
            }
            if sep.starts_with("::*") {
                i += 3;
                break;
            }
            let next = if sep.starts_with("::") {
                2
            } else if sep.starts_with('.') {
                1
            } else {
                0
            };
            if next == 0 || !sep[next..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                break;
            }
            i += next;
        }
        let head = chain[0].as_str();
        if head == "core" || head == "new" || STD.contains(&head) {
            continue;
        }
        let mut owner: Option<String> = if let Some(t) = vars.get(head) {
            Some((*t).to_string())
        } else if ex.items.contains(head) {
            Some(head.to_string())
        } else if chain.len() == 1 && group.is_empty() {
            // a lone lower-case name is a field, method or argument; an argument (`dir`) names nothing
            let known = ex.members.values().any(|m| m.0.contains_key(head));
            if !known && head.chars().next().is_some_and(|c| c.is_uppercase()) {
                missing.push(head.to_string());
            }
            continue;
        } else {
            missing.push(head.to_string());
            continue;
        };
        for name in chain.iter().skip(1).chain(group.iter()) {
            let Some(o) = owner.clone() else { break };
            match ex.members.get(&o).and_then(|m| m.0.get(name)) {
                Some(yields) => owner = if group.contains(name) { Some(o) } else { yields.clone() },
                None => {
                    missing.push(format!("{o}.{name}"));
                    break;
                }
            }
        }
    }
    missing
}

#[test]
fn issue_20_every_rust_name_of_the_api_table_is_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let ex = exports(&root);
    let doc = std::fs::read_to_string(root.join("docs/api.md")).expect("docs/api.md");
    let cells = rust_cells(&doc);
    assert!(cells.len() > 30, "parsed only {} rows", cells.len());
    let mut checked = 0;
    let mut missing = Vec::new();
    for (concept, cell) in &cells {
        for span in spans(cell) {
            checked += 1;
            // a lone name (`server_message`, `code()`) is a field or method of some exported type
            let lone = span.trim_end_matches("()");
            if lone.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !ex.items.contains(lone)
                && !ex.members.values().any(|m| m.0.contains_key(lone))
            {
                missing.push(format!("{concept}: `{span}` is no exported field, method or item"));
            }
            for m in check(&span, &ex) {
                missing.push(format!("{concept}: `{span}` names {m}"));
            }
        }
    }
    assert!(checked > 40, "checked only {checked} spans");
    assert!(missing.is_empty(), "docs/api.md names what the crates do not export:\n{}", missing.join("\n"));
}

#[test]
fn issue_20_the_checker_refuses_a_name_that_is_not_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let ex = exports(&root);
    assert!(check("job.poll_now()", &ex).is_empty());
    assert!(check("client.stop_handle().stop()", &ex).is_empty());
    assert_eq!(check("job.poll_later()", &ex), vec!["JobRun.poll_later"]);
    assert_eq!(check("client.stop_handle().halt()", &ex), vec!["Stop.halt"]);
    assert_eq!(check("CountCheck::{Strict, Loose}", &ex), vec!["CountCheck.Loose"]);
    assert_eq!(check("NoSuchType::new()", &ex), vec!["NoSuchType"]);
    assert_eq!(check("Outcome.warnings", &ex), Vec::<String>::new());
    assert_eq!(check("Outcome.warning", &ex), vec!["Outcome.warning"]);
    // a private field is not exported
    assert_eq!(check("builder.base_url", &ex), vec!["ClientBuilder.base_url"]);
}
