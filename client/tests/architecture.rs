//! Issue 20: `docs/architecture.md` matches the tree. Every path it names exists, and every
//! module of the core and the client (a file or folder under `src/`) is named in it, so the
//! diagram of the data's way and the module list cannot drift from the code unnoticed.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace")
}

/// The path-like words of the document: `core/...`, `client/...`, `cli/...`, `wasm/...`,
/// `npm/...`, `python/...` (trailing punctuation cut; `/` at the end means a folder).
fn named_paths(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in doc.split(|c: char| c.is_whitespace() || "`()[],;*".contains(c)) {
        let w = word.trim_end_matches(['.', ':', '|']);
        let head = w.split('/').next().unwrap_or("");
        if ["core", "client", "cli", "wasm", "npm", "python"].contains(&head)
            && w.contains('/')
            && w.len() > head.len() + 1
        {
            out.push(w.to_string());
        }
    }
    out
}

/// Where a named path points: `core/job/respond` → `core/src/job/respond`.
fn resolve(p: &str) -> Option<std::path::PathBuf> {
    let r = root();
    let direct = r.join(p.trim_end_matches('/'));
    if direct.exists() {
        return Some(direct);
    }
    let (head, rest) = p.split_once('/')?;
    let under_src = r.join(head).join("src").join(rest.trim_end_matches('/'));
    if under_src.exists() {
        return Some(under_src);
    }
    let as_file = r.join(head).join("src").join(format!("{}.rs", rest.trim_end_matches('/')));
    as_file.exists().then_some(as_file)
}

#[test]
fn issue_20_every_path_the_architecture_names_exists() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let paths = named_paths(&doc);
    assert!(paths.len() > 20, "found only {} paths", paths.len());
    let missing: Vec<&String> = paths.iter().filter(|p| resolve(p).is_none()).collect();
    assert!(missing.is_empty(), "docs/architecture.md names paths that do not exist: {missing:?}");
}

#[test]
fn issue_20_every_module_of_core_and_client_is_in_the_architecture() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let named: Vec<std::path::PathBuf> = named_paths(&doc).iter().filter_map(|p| resolve(p)).collect();
    let mut missing = Vec::new();
    for krate in ["core", "client"] {
        let src = root().join(krate).join("src");
        for entry in std::fs::read_dir(&src).expect("src") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if name == "lib.rs" || name == "main.rs" {
                continue;
            }
            // a module is named by its file, its folder, or anything inside its folder
            let stem = path.with_extension("");
            // a folder of tests beside `name.rs` (`publish/tests.rs`) is covered by `name.rs`
            let file_of_dir = path.with_extension("rs");
            let covered = named.iter().any(|n| *n == path || *n == stem || n.starts_with(&stem) || *n == file_of_dir);
            if !covered {
                missing.push(format!("{krate}/src/{name}"));
            }
        }
    }
    assert!(missing.is_empty(), "modules docs/architecture.md does not name: {missing:?}");
}
