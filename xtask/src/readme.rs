//! Checks that the README's Navigating table matches the tree, so the map
//! a newcomer reads first cannot drift from the code (host unit tests).

#[cfg(test)]
mod tests {
    use crate::env::root;
    use std::path::Path;

    /// The Navigating table's rows: (path in the first column, the whole row).
    fn rows(readme: &str) -> Vec<(String, String)> {
        let table = readme.split("## Navigating").nth(1).expect("a Navigating section");
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let first = l.split('|').nth(1)?.trim();
                let path = first.strip_prefix('`')?.strip_suffix('`')?;
                Some((path.to_owned(), l.to_owned()))
            })
            .collect()
    }

    /// Directories holding a crate, relative to the root (fixtures and
    /// build output excluded).
    fn crate_dirs(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("readable tree").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !path.is_dir() || name.starts_with('.') || name == "target" || name == "compile-fail" {
                continue;
            }
            let rel = format!("{rel}{name}/");
            if path.join("Cargo.toml").exists() {
                out.push(rel.clone());
            }
            if rel.matches('/').count() < 3 {
                crate_dirs(&path, &rel, out);
            }
        }
    }

    #[test]
    fn navigating_table_matches_the_tree() {
        let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
        let rows = rows(&readme);
        assert!(rows.len() > 10, "the Navigating table was not found");
        for (path, _) in &rows {
            assert!(root().join(path).exists(), "the Navigating table names {path}, which does not exist");
        }
        let mut crates = Vec::new();
        crate_dirs(&root(), "", &mut crates);
        for dir in crates {
            let covered = rows.iter().any(|(p, row)| {
                *p == dir
                    || (dir.starts_with(p.as_str()) && p.ends_with('/') && {
                        // A crate under a folder row (extensions/<name>/) must be named in it.
                        let name = dir.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                        row.contains(&format!("`{name}`")) || row.contains(&format!(" {name}"))
                    })
            });
            assert!(covered, "the crate in {dir} has no row (or mention) in the README's Navigating table");
        }
    }
}
