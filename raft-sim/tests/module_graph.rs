//! The simulator's modules read top-down: no module imports, directly or through others, a
//! module that imports it.
//!
//! The graph is read from the sources: every `crate::name` path in code (a `use` line, a
//! grouped `use crate::{a::X, b}`, or a path written inline) is an edge from the file's module
//! to `name`, or to the crate root (`lib`) when `name` is not a module (`crate::run`).
//! Comments, doc comments and string literals are skipped; `super::` (a file's own test
//! module) is not an edge. The crate root's `mod` declarations are not edges either: they
//! make the modules exist, they do not use them. `main.rs` is a separate crate.
//!
//! Items split across files as `impl World` blocks (`agents.rs`, `nemesis.rs`) import the
//! world and are called by it without an import; such a split is one type in several rooms,
//! and is not a cycle of imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules it uses (`lib` for the crate root).
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source with comments, string literals and char literals blanked out (line structure
/// kept), so that paths in prose never count as imports.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || b.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\''); otherwise a lifetime, kept as it is.
            i += 1;
            if b.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segments named after each `crate::` in `code`: `crate::a::B` gives `a`, and
/// `crate::{a::B, c, d::{E, F}}` gives `a`, `c` and `d`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + "crate::".len()..].trim_start();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the group, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        item_start = false;
                        let name = ident_at(&group[k..]);
                        if !name.is_empty() {
                            found.push(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(after);
            if !name.is_empty() {
                found.push(name.to_string());
            }
        }
    }
    found
}

/// In the crate root, paths need no `crate::`: the first segments of paths `name::...` in
/// `code` that do not follow another segment (`world::ms`, `use checker::Property`).
fn root_relative_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("::") {
        let head = &rest[..at];
        let start = head
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |k| k + 1);
        let name = &head[start..];
        let before = head[..start].trim_end();
        if !name.is_empty() && !before.ends_with("::") {
            found.push(name.to_string());
        }
        rest = &rest[at + 2..];
    }
    found
}

/// The module graph of `files` (module name → source), with `lib` the crate root.
fn graph_of(files: &BTreeMap<String, String>) -> Graph {
    let mut g = Graph::new();
    for (module, src) in files {
        let edges = g.entry(module.clone()).or_default();
        let code = code_only(src);
        let mut names = crate_paths(&code);
        if module == "lib" {
            names.extend(
                root_relative_paths(&code)
                    .into_iter()
                    .filter(|n| files.contains_key(n)),
            );
        }
        for name in names {
            let to = if files.contains_key(&name) && name != "lib" {
                name
            } else {
                "lib".to_string()
            };
            if to != *module {
                edges.insert(to);
            }
        }
    }
    g
}

/// A cycle of `g`, as the modules along it (first = last), if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    // Depth-first search; 0 = unseen, 1 = on the current path, 2 = done.
    fn visit(
        g: &Graph,
        m: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        path.push(m.to_string());
        for to in g.get(m).into_iter().flatten() {
            match state.get(to).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == to).expect("on the path");
                    let mut cycle = path[from..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(g, to, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            let mut path = Vec::new();
            if let Some(c) = visit(g, m, &mut state, &mut path) {
                return Some(c);
            }
        }
    }
    None
}

/// The library's modules: every `src/*.rs` but the binary, by file stem.
fn sources() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("raft-sim/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name")
            .to_string();
        if stem == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        files.insert(stem, text);
    }
    files
}

fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(m, s)| (m.to_string(), s.to_string()))
        .collect()
}

#[test]
fn raft_sim_modules_import_each_other_without_a_cycle() {
    let files = sources();
    let lib = &files["lib"];
    // Every module the root declares is a file here (so none escapes the graph).
    for line in code_only(lib).lines() {
        let line = line.trim();
        if let Some(rest) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
        {
            let name = rest.trim_end_matches(';');
            assert!(
                files.contains_key(name),
                "module {name} has no file in src/"
            );
        }
    }
    let g = graph_of(&files);
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "raft-sim's modules import each other in a circle: {}\ngraph: {g:#?}",
            cycle.join(" -> ")
        );
    }
    // The layers the issue asks for: the world drives nodes and hands their observations to
    // the checker; the checker sees only observations (and raft-core, and the pure
    // configuration chain).
    let uses = |a: &str, b: &str| g[a].contains(b);
    assert!(uses("world", "node") && uses("world", "checker"), "{g:#?}");
    assert!(uses("node", "observation") && uses("checker", "observation"));
    assert!(
        !uses("node", "checker") && !uses("node", "world"),
        "{:?}",
        g["node"]
    );
    let checker: Vec<&String> = g["checker"].iter().collect();
    assert_eq!(
        checker,
        ["conf_chain", "observation"],
        "the checker's imports"
    );
    assert!(
        g["observation"].is_empty(),
        "observation imports only raft-core"
    );
}

#[test]
fn a_cycle_through_a_grouped_use_is_found() {
    let g = graph_of(&files(&[
        ("lib", "pub mod a; pub mod b; pub mod c;"),
        ("a", "use crate::b::X;\n"),
        ("b", "use crate::{\n    c::{self, Y},\n    kv,\n};\n"),
        ("c", "fn f() { let _ = crate::a::Z; }\n"),
    ]));
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // `kv` is no module here: an item of the root.
    assert!(g["b"].contains("lib"));
}

#[test]
fn paths_in_comments_and_strings_are_not_imports() {
    let g = graph_of(&files(&[
        ("lib", ""),
        (
            "a",
            "//! See [`crate::b`].\n/* crate::b */\nfn f() -> &'static str { \"crate::b\" }\n\
             const C: char = '\"'; // crate::b\nuse crate::lib_item;\n",
        ),
        ("b", "use crate::a;\n"),
    ]));
    assert_eq!(find_cycle(&g), None, "{g:#?}");
    assert_eq!(g["a"].iter().collect::<Vec<_>>(), ["lib"]);
}

#[test]
fn the_crate_root_counts_as_a_module() {
    // The root's own code using a module that uses the root is a cycle too.
    let g = graph_of(&files(&[
        ("lib", "pub mod s;\npub fn run() { crate::s::go() }\n"),
        ("s", "use crate::run;\n"),
    ]));
    assert!(find_cycle(&g).is_some(), "{g:#?}");
    // ... also when the root names the module without `crate::`.
    let g = graph_of(&files(&[
        (
            "lib",
            "pub mod s;\nuse std::fmt;\npub fn run() { s::go() }\n",
        ),
        ("s", "use crate::run;\n"),
    ]));
    assert_eq!(g["lib"].iter().collect::<Vec<_>>(), ["s"]);
    assert!(find_cycle(&g).is_some(), "{g:#?}");
}
