//! `cargo xtask paper`: the reproduction report in `paper/`, generated from
//! `target/bench/latest.json` (Markdown text, SVG figures, verdicts on the
//! papers' claims). Every number in it comes from the results file or from
//! `benchmarks::published`; nothing is edited by hand.

mod costs;
mod figures;
mod text;
mod verdicts;

use crate::report::ResultsFile;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The results, checked, with lookups.
pub struct Results {
    pub file: ResultsFile,
    /// The Linux baseline's kernel image, from the header of the Markdown
    /// results written beside the JSON (the JSON schema has no field for it).
    pub linux_guest: Option<String>,
    /// The "also measured" lines of the Markdown results (`- kernel, op:
    /// label: value unit`), by operation: extra ways of doing a row.
    pub extras: Vec<(String, String)>,
}

impl Results {
    /// Read and validate a results file: schema 1, known kernels, known
    /// operations in their right tables, finite non-negative numbers.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a valid results file", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let file: ResultsFile = serde_json::from_str(text)?;
        if file.schema != 1 {
            bail!("schema {} (this generator reads schema 1)", file.schema);
        }
        if !["instructions", "cycles"].contains(&file.unit.as_str()) {
            bail!("unknown unit {:?}", file.unit);
        }
        for r in &file.results {
            let Some(op) = benchmarks::defs::op_named(&r.operation) else {
                bail!("unknown operation {:?}", r.operation);
            };
            if op.table.id() != r.table {
                bail!("operation {:?} listed under table {:?}", r.operation, r.table);
            }
            if !benchmarks::line::KERNELS.contains(&r.kernel.as_str()) {
                bail!("unknown kernel {:?}", r.kernel);
            }
            for v in [r.median, r.min, r.max].into_iter().flatten() {
                if !v.is_finite() || v < 0.0 {
                    bail!("{} on {}: {v} is not a valid measurement", r.operation, r.kernel);
                }
            }
            if r.median.is_none() && r.note.as_deref().is_none_or(str::is_empty) {
                bail!("{} on {}: no value and no note saying why", r.operation, r.kernel);
            }
        }
        Ok(Results { file, linux_guest: None, extras: Vec::new() })
    }

    /// The median of `op` on `kernel`, if measured.
    pub fn median(&self, kernel: &str, op: &str) -> Option<f64> {
        self.row(kernel, op)?.median
    }

    /// Why `op` on `kernel` has no value, if it has none.
    pub fn note(&self, kernel: &str, op: &str) -> Option<&str> {
        self.row(kernel, op)?.note.as_deref()
    }

    pub fn row(&self, kernel: &str, op: &str) -> Option<&crate::report::ResultRow> {
        self.file.results.iter().find(|r| r.kernel == kernel && r.operation == op)
    }

    /// Which kernels have any row, in column order.
    pub fn kernels(&self) -> Vec<&'static str> {
        ["exo", "spin", "linux"]
            .into_iter()
            .filter(|k| self.file.results.iter().any(|r| r.kernel == *k))
            .collect()
    }
}

/// The whole command: make sure results exist, then write paper/.
pub fn run(rerun: bool) -> Result<()> {
    let root = crate::env::root();
    let json = root.join("target/bench/latest.json");
    if rerun || !json.exists() {
        eprintln!("xtask: no benchmark results yet; running `cargo xtask bench` first");
        crate::bench::run(
            None,
            std::time::Duration::from_secs(600),
            &[crate::bench::System::Exo, crate::bench::System::Spin, crate::bench::System::Linux],
            &crate::bench::BenchOptions::default(),
            None,
        )?;
    }
    let mut results = Results::load(&json)?;
    results.linux_guest = std::fs::read_to_string(json.with_extension("md")).ok().and_then(|md| {
        md.lines().find_map(|l| l.strip_prefix(crate::report::LINUX_GUEST_PREFIX).map(str::to_owned))
    });
    results.extras =
        std::fs::read_to_string(json.with_extension("md")).map(|md| extras(&md)).unwrap_or_default();
    let dir = root.join("paper");
    write(&results, &dir)?;
    eprintln!("wrote {}/report.md and {}/figures/", dir.display(), dir.display());
    Ok(())
}

/// The "also measured" lines of Markdown results: `(operation, line)`.
fn extras(md: &str) -> Vec<(String, String)> {
    md.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("- ")?;
            let (kernel, rest) = rest.split_once(", ")?;
            if !["exo", "spin", "linux"].contains(&kernel) {
                return None;
            }
            let (op, _) = rest.split_once(": ")?;
            benchmarks::defs::op_named(op)?;
            Some((op.to_owned(), rest.split_once(": ").map(|(_, v)| format!("{kernel}: {v}"))?))
        })
        .collect()
}

/// Write the report and its figures into `dir`.
pub fn write(results: &Results, dir: &Path) -> Result<()> {
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures)?;
    figures::boundary_diagram(&figures.join("boundaries.svg"))?;
    for table in benchmarks::Table::ALL {
        figures::table_chart(results, table, &figures.join(format!("{}.svg", table.id())))?;
    }
    let claims = verdicts::evaluate(results);
    let mut report = text::report(results, &claims);
    // The cost profile (`bench --profile`): estimated cycles by cause.
    if results.file.results.iter().any(|r| r.profile.is_some()) {
        costs::figure(results, &figures.join("where-the-time-goes.svg"))?;
    }
    report.push_str(&costs::section(results, &claims));
    std::fs::write(dir.join("report.md"), report).context("writing paper/report.md")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_json() -> String {
        let mut rows = Vec::new();
        for op in benchmarks::OPS {
            for (k, scale) in [("exo", 1.0), ("spin", 2.0), ("linux", 50.0)] {
                rows.push(serde_json::json!({
                    "table": op.table.id(), "operation": op.name, "kernel": k,
                    "median": 10.0 * scale, "min": 9.0 * scale, "max": 11.0 * scale,
                    "runs": 5, "iterations": 1000
                }));
            }
        }
        serde_json::json!({
            "schema": 1, "git": "abc", "accel": "tcg-icount", "unit": "instructions",
            "qemu": "QEMU 7.2", "host_cpu": "cpu", "tsc_hz": 1000000000, "results": rows
        })
        .to_string()
    }

    #[test]
    fn course_exercises_name_real_files() {
        let root = crate::env::root();
        let mut checked = 0;
        for word in text::COURSES.split('`') {
            let looks_like_path = word.contains('/') && (word.ends_with(".rs") || word.ends_with(".toml"));
            if looks_like_path && !word.contains('<') {
                assert!(root.join(word).exists(), "the course section names {word}, which does not exist");
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} paths checked");
    }

    #[test]
    fn rejects_hostile_results() {
        assert!(Results::parse("{").is_err());
        let good = sample_json();
        assert!(Results::parse(&good).is_ok());
        let bad_schema = good.replace("\"schema\":1", "\"schema\":2");
        assert!(Results::parse(&bad_schema).is_err());
        let bad_op = good.replace("\"system call\"", "\"rm -rf\"");
        assert!(Results::parse(&bad_op).is_err());
        let bad_kernel = good.replace("\"linux\"", "\"bsd\"");
        assert!(Results::parse(&bad_kernel).is_err());
        let negative = good.replacen("\"median\":10.0", "\"median\":-1.0", 1);
        assert!(Results::parse(&negative).is_err());
    }

    #[test]
    fn writes_report_and_figures() {
        let dir = std::env::temp_dir().join(format!("paper-test-{}", std::process::id()));
        let results = Results::parse(&sample_json()).unwrap();
        write(&results, &dir).unwrap();
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        // Every image the report links exists.
        for link in report.split("](figures/").skip(1) {
            let file = &link[..link.find(')').unwrap()];
            assert!(dir.join("figures").join(file).exists(), "missing figure {file}");
        }
        assert!(report.contains("| system call |"));
        assert!(report.contains("Reproduced"));
        for table in benchmarks::Table::ALL {
            let svg = std::fs::read_to_string(dir.join(format!("figures/{}.svg", table.id()))).unwrap();
            assert!(svg.starts_with("<svg"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
