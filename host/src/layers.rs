//! The crate's layering, checked on its own source: every top-level module uses only the
//! modules of its own layer or those below (the order `lib.rs` gives), and nowhere do
//! sibling modules import each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules by layer, the bottom first.
const LAYERS: &[&[&str]] = &[
    &["model"],
    &["schema"],
    &["state"],
    &["sandbox"],
    &["dispatch"],
    &["registry", "metrics", "logbook"],
    &["runner"],
    &["log"],
    &["replica"],
    &["api"],
];

type Module = Vec<String>;

/// Every module of the crate with its source, by path (`log::kafka::source`).
fn modules() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let mut module: Module = relative
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let source = std::fs::read_to_string(&path).expect("a source file");
            modules.insert(module, source);
        }
    }
    modules
}

/// The source without comments.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of the use tree at the start of `text`: `a::b::{c, d::e}` gives `a::b::c`
/// and `a::b::d::e`. Returns them and how much of `text` they took.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut paths = Vec::new();
            let mut taken = 1;
            let mut inner = inner;
            loop {
                let trimmed = inner.trim_start_matches([' ', '\n', '\t', ',']);
                taken += inner.len() - trimmed.len();
                if trimmed.is_empty() || trimmed.starts_with('}') {
                    taken += 1;
                    break;
                }
                let (subs, used) = use_tree(trimmed);
                if used == 0 {
                    break;
                }
                for sub in subs {
                    paths.push([prefix.clone(), sub].concat());
                }
                inner = &trimmed[used..];
                taken += used;
            }
            return (paths, at + taken);
        }
        let ident: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if ident.is_empty() {
            return (vec![prefix], at);
        }
        at += ident.len();
        prefix.push(ident);
        match text[at..].strip_prefix("::") {
            Some(_) => at += 2,
            None => return (vec![prefix], at),
        }
    }
}

/// The modules `module` refers to through `crate::`, `super::` and `self::` paths.
fn uses(module: &Module, source: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let code = code(source);
    let mut found = BTreeSet::new();
    for (base, keyword) in [
        (Vec::new(), "crate::"),
        (module[..module.len().saturating_sub(1)].to_vec(), "super::"),
        (module.clone(), "self::"),
    ] {
        let mut from = 0;
        while let Some(at) = code[from..].find(keyword) {
            let start = from + at;
            from = start + keyword.len();
            if code[..start].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let (paths, _) = use_tree(&code[from..]);
            for path in paths {
                let full = [base.clone(), path].concat();
                let target = (0..=full.len())
                    .rev()
                    .map(|n| full[..n].to_vec())
                    .find(|m| known.contains(m));
                if let Some(target) = target {
                    found.insert(target);
                }
            }
        }
    }
    found
}

fn layer(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module {top} is in no layer of layers.rs"))
}

/// A cycle among `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn each_layer_uses_only_those_below_and_no_modules_import_each_other_in_a_cycle() {
    let modules = modules();
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    let mut upward = Vec::new();
    // Edges between siblings, by their parent.
    let mut siblings: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, source) in &modules {
        for target in uses(module, source, &known) {
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue;
            }
            let (from, to) = (&module[common], &target[common]);
            if common == 0 && layer(to) > layer(from) {
                upward.push(format!("{} uses {}", module.join("::"), target.join("::")));
            }
            siblings
                .entry(module[..common].to_vec())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    assert!(
        upward.is_empty(),
        "modules that use a layer above their own: {upward:#?}"
    );
    for (parent, edges) in &siblings {
        if let Some(cycle) = cycle(edges) {
            panic!(
                "modules of {} import each other in a cycle: {}",
                if parent.is_empty() {
                    "the crate".to_owned()
                } else {
                    parent.join("::")
                },
                cycle.join(" -> ")
            );
        }
    }
    assert!(
        siblings
            .get(&Vec::new())
            .is_some_and(|top| top.len() >= LAYERS.len()),
        "the check sees the crate's modules"
    );
}

#[test]
fn use_trees_are_read_whole() {
    let (paths, _) = use_tree("model::{effects::Commit, event::{InputEvent, Positions}};");
    let paths: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        vec![
            "model::effects::Commit",
            "model::event::InputEvent",
            "model::event::Positions"
        ]
    );
    let known: BTreeSet<Module> = [vec!["log".to_owned()], vec!["log".into(), "kafka".into()]]
        .into_iter()
        .collect();
    let found = uses(
        &vec!["log".into(), "embedded".into()],
        "use super::kafka::X; // crate::api is only mentioned\nlet x = crate::log::open();",
        &known,
    );
    assert_eq!(
        found,
        [vec!["log".to_owned()], vec!["log".into(), "kafka".into()]]
            .into_iter()
            .collect()
    );
}
