//! Every comment and doc in the repository stands on its own: none cites a file that is not in
//! the repository (the design notes the first sessions worked from were never committed, so a
//! reader sent to them finds nothing). Walks the source, test, board, image and config trees and
//! the top-level docs; reads files only, writes nothing.

use std::fs;
use std::path::{Path, PathBuf};

/// Names of files outside the repository that comments once cited. Built from parts so this
/// test's own text does not match.
fn absent_files() -> Vec<String> {
    vec![
        ["PRODUCT", ".md"].concat(),
        ["embedded", ".md"].concat(),
        ["ami-protocol", ".md"].concat(),
        ["research", "/"].concat(),
        ["../", "shared/"].concat(),
        ["/work/", "shared"].concat(),
    ]
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Build output and npm packages are not ours to word.
            let name = entry.file_name();
            if name != "node_modules" && name != "target" {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_comment_or_doc_cites_a_file_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "board", "image", "config"] {
        walk(&root.join(dir), &mut files);
    }
    for top in ["README.md", "BENCHMARKS.md", "cross.toml", "Cargo.toml"] {
        files.push(root.join(top));
    }
    assert!(
        files.iter().any(|f| f.ends_with("src/lib.rs")),
        "the walk found no src/lib.rs: it is not looking at the repository ({})",
        root.display()
    );

    let needles = absent_files();
    let mut hits = Vec::new();
    for file in &files {
        // Binary fixtures are captures, not prose.
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if let Some(needle) = needles.iter().find(|needle| line.contains(needle.as_str())) {
                let shown = file.strip_prefix(root).unwrap_or(file).display();
                hits.push(format!("{shown}:{}: cites {needle}: {line}", n + 1));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "say the fact itself or cite a file in the repository:\n{}",
        hits.join("\n")
    );
}
