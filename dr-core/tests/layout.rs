//! The library's layout: no import circle between its modules. A module may use its ancestors
//! and its descendants (a parent declares its children, a child uses its parent's types); any
//! other reference (`crate::…`, `super::…`, `self::…`, `use child::…`) is an edge, and the
//! modules must form no cycle over those edges. Read from the source, so a circle fails CI the
//! day it is written (issue #24 found three: `failure` with the engines that classified their
//! errors in it, `location/s3` with `s3_error`, the chart with the controls it checks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module of `src`, by path (`["location", "s3"]`), with its source (tests and comments
/// left out: a unit test's imports do not shape the library).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let code: String = text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
            out.insert(module, code);
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(path: &[String], modules: &BTreeMap<Module, String>) -> Option<Module> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
}

/// Which modules each module refers to, leaving out its ancestors and descendants.
fn edges(modules: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let path_ref = regex::Regex::new(r"\b(crate|super|self)((?:::\w+)+)").unwrap();
    let child_use = regex::Regex::new(r"\buse (\w+)::").unwrap();
    let related = |a: &Module, b: &Module| a.starts_with(b) || b.starts_with(a);
    let mut out = BTreeMap::new();
    for (module, code) in modules {
        let mut to = BTreeSet::new();
        for c in path_ref.captures_iter(code) {
            let rest = c[2].split("::").filter(|s| !s.is_empty()).map(str::to_owned);
            let path: Module = match &c[1] {
                "crate" => rest.collect(),
                "self" => module.iter().cloned().chain(rest).collect(),
                _ => module[..module.len().saturating_sub(1)].iter().cloned().chain(rest).collect(),
            };
            to.extend(resolve(&path, modules));
        }
        for c in child_use.captures_iter(code) {
            let child: Module = module.iter().cloned().chain([c[1].to_owned()]).collect();
            if modules.contains_key(&child) {
                to.insert(child);
            }
        }
        to.retain(|t| !related(module, t));
        out.insert(module.clone(), to);
    }
    out
}

/// The groups of modules that reach each other (Tarjan's strongly connected components of
/// more than one module).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.stack.contains(&w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().position(|m| *m == v).unwrap();
                let group: Vec<String> = self.stack.drain(at..).map(|m| m.join("/")).collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_library_has_no_import_circle() {
    let modules = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(modules.len() > 50, "the library's modules were found: {}", modules.len());
    let found = circles(&edges(&modules));
    assert!(found.is_empty(), "modules that import each other (move what both need into a leaf module): {found:?}");
}

#[test]
fn the_format_crate_has_no_import_circle_and_no_async_or_cluster_dependency() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dr-format");
    let modules = modules(&root.join("src"));
    assert!(modules.len() >= 6, "the format crate's modules were found: {}", modules.len());
    let found = circles(&edges(&modules));
    assert!(found.is_empty(), "modules that import each other: {found:?}");
    // What lets a reader of the format depend on it alone.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).and_then(|rest| rest.split("\n[").next()).expect("a [dependencies] table");
    assert!(dependencies.contains("aws-lc-rs"), "the dependencies were read: {dependencies}");
    for heavy in ["tokio", "kube", "aws-sdk", "aws-config", "reqwest", "dr-core"] {
        assert!(!dependencies.contains(heavy), "dr-format must not depend on {heavy}: {dependencies}");
    }
}

#[test]
fn a_circle_is_found() {
    // The detector itself, on a small library with one circle (a ↔ b through c) and a parent
    // and child that use each other (allowed).
    let module = |p: &str, code: &str| (p.split('/').map(str::to_owned).collect::<Module>(), code.to_owned());
    let modules: BTreeMap<Module, String> = [
        module("a", "use crate::b::B;"),
        module("b", "use super::c::C;"),
        module("c", "pub fn f() { crate::a::g() }"),
        module("d", "use child::X;"),
        module("d/child", "use super::Y;"),
    ]
    .into_iter()
    .collect();
    let found = circles(&edges(&modules));
    assert_eq!(found.len(), 1, "{found:?}");
    let mut circle = found[0].clone();
    circle.sort();
    assert_eq!(circle, ["a", "b", "c"]);
}
