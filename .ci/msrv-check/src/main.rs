//! `cargo run -p msrv-check --locked`: fails if a workspace crate uses syntax or depends on a
//! crate that needs a newer Rust than its `rust-version` (see the library docs for what is
//! covered). Library APIs are clippy's `incompatible_msrv` lint's job.
//!
//! 1. Reads `cargo metadata` (the locked dependency graph, every platform).
//! 2. For each workspace package with a `rust-version`: scans every `.rs` file under its
//!    directory (sources, tests, examples, benches, build script), skipping `target/` and
//!    nested packages, and fails on any feature newer than the declared version.
//! 3. Fails if a package it depends on, directly or through normal and build dependencies,
//!    declares a newer `rust-version` (dev-dependencies count for the workspace crates
//!    themselves, since their tests must build on the MSRV too).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use msrv_check::{Feature, RustVersion, scan_source};
use serde_json::Value;

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("msrv-check: {message}");
            ExitCode::from(2)
        }
    }
}

struct Package {
    name: String,
    version: String,
    rust_version: Option<RustVersion>,
    manifest_dir: PathBuf,
}

fn run() -> Result<usize, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata output: {e}"))?;

    let mut packages = BTreeMap::new();
    for p in array(&metadata, "packages")? {
        let id = text(p, "id")?.to_owned();
        let manifest = PathBuf::from(text(p, "manifest_path")?);
        let rust_version = match p.get("rust_version").and_then(Value::as_str) {
            Some(v) => Some(RustVersion::parse(v)?),
            None => None,
        };
        let package = Package {
            name: text(p, "name")?.to_owned(),
            version: text(p, "version")?.to_owned(),
            rust_version,
            manifest_dir: manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
        };
        packages.insert(id, package);
    }
    let members: Vec<String> = array(&metadata, "workspace_members")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let member_dirs: Vec<PathBuf> = members
        .iter()
        .filter_map(|id| packages.get(id).map(|p| p.manifest_dir.clone()))
        .collect();
    let graph = dependency_graph(&metadata)?;

    let mut failures = 0;
    for id in &members {
        let Some(package) = packages.get(id) else {
            continue;
        };
        let Some(declared) = package.rust_version else {
            println!("{}: no rust-version declared, not checked", package.name);
            continue;
        };
        let (files, counts, newest, syntax_failures) =
            scan_package(package, declared, &member_dirs)?;
        failures += syntax_failures;
        let used: Vec<String> = counts
            .iter()
            .map(|(f, n)| format!("{} ({}) x{n}", f.name(), f.since()))
            .collect();
        println!(
            "{}: rust-version {declared}; {files} files; newer-than-1.85 syntax used: {}",
            package.name,
            if used.is_empty() {
                "none".to_owned()
            } else {
                used.join(", ")
            }
        );
        if let Some(newest) = newest {
            println!("{}:   newest syntax needs {newest}", package.name);
        }
        failures += check_dependencies(id, package, declared, &packages, &graph, &members);
    }
    if failures > 0 {
        println!("msrv-check: {failures} problem(s)");
    } else {
        println!("msrv-check: ok");
    }
    Ok(failures)
}

type Scan = (usize, BTreeMap<Feature, usize>, Option<RustVersion>, usize);

fn scan_package(
    package: &Package,
    declared: RustVersion,
    member_dirs: &[PathBuf],
) -> Result<Scan, String> {
    let mut files = Vec::new();
    collect_rs_files(
        &package.manifest_dir,
        &package.manifest_dir,
        member_dirs,
        &mut files,
    )?;
    let mut counts = BTreeMap::new();
    let mut newest = None;
    let mut failures = 0;
    for file in &files {
        let source =
            std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let findings = match scan_source(&source) {
            Ok(findings) => findings,
            Err(e) => {
                println!("error: {}:{e}", file.display());
                failures += 1;
                continue;
            }
        };
        for finding in findings {
            let since = finding.feature.since();
            *counts.entry(finding.feature).or_insert(0) += 1;
            newest = newest.max(Some(since));
            if since > declared {
                failures += 1;
                println!(
                    "error: {}:{}:{}: {}{} needs Rust {since}, but {} declares rust-version {declared}",
                    file.display(),
                    finding.line,
                    finding.column,
                    finding.feature.name(),
                    if finding.in_doctest {
                        " (in a doctest)"
                    } else {
                        ""
                    },
                    package.name,
                );
            }
        }
    }
    Ok((files.len(), counts, newest, failures))
}

fn collect_rs_files(
    dir: &Path,
    root: &Path,
    member_dirs: &[PathBuf],
    out: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            let nested_package =
                path != root && (member_dirs.contains(&path) || path.join("Cargo.toml").exists());
            if name == "target" || name.starts_with('.') || nested_package {
                continue;
            }
            collect_rs_files(&path, root, member_dirs, out)?;
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Package id -> (dependency id, dependency kinds: "normal", "build", "dev").
type Graph = BTreeMap<String, Vec<(String, BTreeSet<String>)>>;

fn dependency_graph(metadata: &Value) -> Result<Graph, String> {
    let resolve = metadata
        .get("resolve")
        .ok_or("cargo metadata has no resolve graph")?;
    let mut graph = Graph::new();
    for node in array(resolve, "nodes")? {
        let mut deps = Vec::new();
        for dep in array(node, "deps")? {
            let kinds = array(dep, "dep_kinds")?
                .iter()
                .map(|k| {
                    k.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("normal")
                        .to_owned()
                })
                .collect();
            deps.push((text(dep, "pkg")?.to_owned(), kinds));
        }
        graph.insert(text(node, "id")?.to_owned(), deps);
    }
    Ok(graph)
}

fn check_dependencies(
    root: &str,
    package: &Package,
    declared: RustVersion,
    packages: &BTreeMap<String, Package>,
    graph: &Graph,
    members: &[String],
) -> usize {
    // Breadth-first from the workspace crate, remembering how each crate was reached.
    let mut via: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = vec![root];
    let mut failures = 0;
    let mut newest: Option<(RustVersion, &str)> = None;
    while let Some(id) = queue.pop() {
        for (dep, kinds) in graph.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            let dev_only = kinds.iter().all(|k| k == "dev");
            if (dev_only && id != root) || dep == root || via.contains_key(dep.as_str()) {
                continue;
            }
            via.insert(dep, id);
            queue.push(dep);
            let Some(p) = packages.get(dep) else { continue };
            let Some(needs) = p.rust_version else {
                continue;
            };
            // The newest outside the workspace (members are checked on their own).
            if !members.contains(dep) && newest.is_none_or(|(v, _)| needs > v) {
                newest = Some((needs, dep));
            }
            if needs > declared {
                failures += 1;
                let mut chain = vec![format!("{} {}", p.name, p.version)];
                let mut at = id;
                while at != root {
                    if let Some(pk) = packages.get(at) {
                        chain.push(pk.name.clone());
                    }
                    at = via.get(at).copied().unwrap_or(root);
                }
                chain.push(package.name.clone());
                chain.reverse();
                println!(
                    "error: {} needs Rust {needs} (rust-version), but {} declares {declared}: {}",
                    p.name,
                    package.name,
                    chain.join(" -> ")
                );
            }
        }
    }
    if let Some((v, id)) = newest
        && let Some(p) = packages.get(id)
    {
        println!(
            "{}:   {} dependencies; the newest rust-version among them: {} {} needs {v}",
            package.name,
            via.len(),
            p.name,
            p.version
        );
    }
    failures
}

fn array<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("cargo metadata: no array {key:?}"))
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str, String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("cargo metadata: no string {key:?}"))
}
