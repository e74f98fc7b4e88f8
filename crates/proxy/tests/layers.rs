//! The proxy crate's layers, and a check that keeps them (issue #16).
//!
//! Why: a module that imports one above it ties the two into one piece that can only be
//! understood, tested and changed together; 57 files of this crate once formed one import
//! cycle that way. The order below is the map of `ARCHITECTURE.md`: the vocabulary at the
//! bottom, the config, the state built from it, routing, each mechanism of the request path,
//! the config in force that assembles them, the pipeline that orders them, the listener, the
//! observers and the admin API, and the root on top. A module may import its own layer's
//! modules (without a cycle) and any layer below; never one above.
//!
//! How: every `crate::…` path in the code of `src/` (comments, doc comments, test files
//! and a file's `#[cfg(test)]` module left out, as tests may reach anywhere) is read as an import of the
//! top-level module it names; `use crate::{a, b::c}` names `a` and `b`. It is text, not
//! name resolution: a path built by a macro is not seen.
//!
//! The check fails on an upward import (naming its file and line), on modules of one layer
//! that import each other round in a cycle, on a module that stands on no layer, and on a
//! layer's module that `ARCHITECTURE.md` does not name: the table below and the map change
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first; each is the top-level modules of `src/` that stand on it.
/// `lib` is the crate root.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "vocabulary",
        // `eventually` is the unit tests' poll-until, built for tests only.
        &[
            "headers",
            "codec",
            "body",
            "error",
            "outcome",
            "record",
            "events",
            "counters",
            "rng",
            "eventually",
        ],
    ),
    ("config", &["config"]),
    (
        "state",
        // Built from the config and shared by the requests; `telemetry` is here because the
        // snapshot holds its sinks and each attempt carries its trace context.
        &[
            "health",
            "endpoint",
            "balance",
            "upstream",
            "cluster",
            "descriptors",
            "telemetry",
        ],
    ),
    ("routing", &["router"]),
    // Each mechanism of the request path with the state it keeps per route; none sees the
    // snapshot or the order of the stages.
    ("mechanisms", &["fallback", "forward", "admission", "fault"]),
    // The config in force: each route's mechanisms, clusters, router and telemetry, swapped
    // whole on reload.
    ("in force", &["live", "reload"]),
    ("pipeline", &["pipeline"]),
    ("listener", &["listener"]),
    ("observers", &["metrics"]),
    ("admin", &["admin"]),
    ("root", &["lib", "listeners"]),
];

/// One import of a module by another, where it stands.
#[derive(Debug, Clone)]
struct Import {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`lib` for the crate root).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(source_dir()).expect("a file of src/");
    let first = relative
        .components()
        .next()
        .expect("a path under src/")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Whether a file holds only tests (`tests.rs`, `*_tests.rs`, or inside a `tests/` folder).
fn is_test_file(file: &Path) -> bool {
    let name = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned());
    let in_tests_dir = file
        .components()
        .any(|part| part.as_os_str() == "tests" || part.as_os_str() == "test");
    name.is_some_and(|name| name == "tests" || name.ends_with("_tests")) || in_tests_dir
}

/// The lines of `text` that are code: comments removed, and a `#[cfg(test)] mod … {` with
/// everything after it (the house keeps its test module at the end of a file; a test-only
/// item elsewhere is read as code).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let all: Vec<&str> = text.lines().collect();
    let mut lines = Vec::new();
    for (index, line) in all.iter().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            let next = all[index + 1..].iter().find(|line| !line.trim().is_empty());
            if next.is_some_and(|next| {
                let next = next.trim();
                (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
                    && next.ends_with('{')
            }) {
                break;
            }
        }
        let code = match line.find("//") {
            // A `//` inside a string literal is rare in this crate's imports; imports are
            // what is read, and they hold no strings.
            Some(at) => &line[..at],
            None => line,
        };
        lines.push((index + 1, code.to_owned()));
    }
    lines
}

/// The modules `crate::` paths name in `text`, each with the line it is on.
fn imports_in(text: &str) -> Vec<(usize, String)> {
    let lines = code_lines(text);
    // One string with line starts remembered, so grouped imports may span lines.
    let mut joined = String::new();
    let mut starts = Vec::new();
    for (number, line) in &lines {
        starts.push((joined.len(), *number));
        joined.push_str(line);
        joined.push('\n');
    }
    let line_at = |offset: usize| {
        starts
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .map_or(1, |(_, number)| *number)
    };
    let mut found = Vec::new();
    let bytes = joined.as_bytes();
    let mut from = 0;
    while let Some(at) = joined[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `blastwall_proxy::crate::` does not exist; `$crate::` is a macro's own.
        if start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'$')
        {
            continue;
        }
        let rest = &joined[from..];
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                found.push((line_at(start), name));
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((line_at(start), name));
            }
        }
    }
    found
}

/// The first segment of each path in a `{…}` group (the text after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                at_item_start = false;
            }
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                }
                at_item_start = true;
            }
            c if at_item_start && depth == 0 && (c.is_ascii_alphanumeric() || c == '_') => {
                current.push(c);
            }
            c if c.is_whitespace() && current.is_empty() => {}
            _ => {
                if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                }
                at_item_start = false;
            }
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads
}

/// Every import between two different top-level modules of `src/`.
fn imports() -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().map(|file| module_of(file)).collect();
    let mut all = Vec::new();
    for file in files.iter().filter(|file| !is_test_file(file)) {
        let from = module_of(file);
        let text = fs::read_to_string(file).expect("a readable source file");
        for (line, to) in imports_in(&text) {
            // `crate::Proxy` and other items of the root are the root's.
            let to = if modules.contains(&to) {
                to
            } else {
                "lib".to_owned()
            };
            if to != from {
                all.push(Import {
                    from: from.clone(),
                    to,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    all
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_of_the_crate_stands_on_a_layer() {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let unplaced: BTreeSet<String> = files
        .iter()
        .map(|file| module_of(file))
        .filter(|module| layer_of(module).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules on no layer (add them to LAYERS here and to ARCHITECTURE.md): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_one_above_it() {
    let mut offending = Vec::new();
    for import in imports() {
        let (Some(from), Some(to)) = (layer_of(&import.from), layer_of(&import.to)) else {
            continue; // reported by the test above
        };
        if to <= from {
            continue;
        }
        offending.push(format!(
            "src/{}:{}: `{}` ({}) imports `{}` ({}), a layer above it",
            import
                .file
                .strip_prefix(source_dir())
                .unwrap_or(&import.file)
                .display(),
            import.line,
            import.from,
            LAYERS[from].0,
            import.to,
            LAYERS[to].0,
        ));
    }
    offending.sort();
    offending.dedup();
    assert!(
        offending.is_empty(),
        "upward imports:\n{}",
        offending.join("\n")
    );
}

#[test]
fn modules_of_one_layer_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in imports() {
        if layer_of(&import.from) == layer_of(&import.to) {
            edges.entry(import.from).or_default().insert(import.to);
        }
    }
    for (from, tos) in &edges {
        for to in tos {
            // A path back from `to` to `from` closes a cycle.
            let mut stack = vec![to.clone()];
            let mut visited = BTreeSet::new();
            while let Some(next) = stack.pop() {
                if next == *from {
                    panic!("`{from}` and `{to}` import each other (through {visited:?})");
                }
                if visited.insert(next.clone()) {
                    stack.extend(edges.get(&next).into_iter().flatten().cloned());
                }
            }
        }
    }
}

#[test]
fn grouped_imports_name_each_module_they_take_from() {
    let text = "use crate::{a::B, c, d::{e, f}};\nfn g() { crate::h::i(); }\n// crate::j\n";
    let names: Vec<String> = imports_in(text).into_iter().map(|(_, name)| name).collect();
    assert_eq!(names, ["a", "c", "d", "h"]);
}

#[test]
fn every_module_of_a_layer_exists_and_the_map_names_it() {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|file| module_of(file)).collect();
    let map_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md");
    let map = fs::read_to_string(&map_path).expect("ARCHITECTURE.md at the repository root");
    for (layer, names) in LAYERS {
        for name in *names {
            assert!(
                modules.contains(*name),
                "layer `{layer}` lists `{name}`, which is no module of src/"
            );
            // The test-only poll-until is no part of the map.
            if *name != "eventually" {
                let row = if *name == "lib" {
                    "`lib.rs`".to_owned()
                } else {
                    format!("| `{name}` |")
                };
                assert!(
                    map.contains(&row),
                    "ARCHITECTURE.md has no row for `{name}` (layer `{layer}`)"
                );
            }
        }
    }
}
