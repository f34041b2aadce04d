//! The bench's output: criterion's medians read back from the files it
//! wrote in this run, the markdown tables, and the scaling CSV for
//! `examples/bench_chart.rs`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One line of the results table.
pub struct Row {
    pub scenario: String,
    pub packlock: String,
    pub baseline: String,
    /// packlock / baseline, where the two are comparable numbers.
    pub ratio: Option<f64>,
    pub target: String,
    /// Whether the target holds, where it can be judged.
    pub met: Option<bool>,
}

impl Row {
    /// A row whose target is a maximum ratio.
    pub fn ratio(
        scenario: impl Into<String>,
        packlock: impl Into<String>,
        baseline: impl Into<String>,
        ratio: f64,
        at_most: Option<f64>,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            packlock: packlock.into(),
            baseline: baseline.into(),
            ratio: Some(ratio),
            target: at_most.map_or_else(|| "—".to_string(), |max| format!("<= {max:.1}x")),
            met: at_most.map(|max| ratio <= max),
        }
    }
}

/// Prints `rows` as the markdown table `| scenario | packlock | baseline |
/// ratio | target |`, then the rows whose target is missed; false (and
/// a note) when there are no rows.
pub fn print_table(title: &str, rows: &[Row]) -> bool {
    if rows.is_empty() {
        println!("\n(nothing measured in this run: no table)");
        return false;
    }
    println!("\n{title}\n");
    println!("| scenario | packlock | baseline | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        let ratio = row.ratio.map_or_else(|| "—".to_string(), |r| format!("{r:.2}x"));
        println!(
            "| {} | {} | {} | {ratio} | {} |",
            row.scenario, row.packlock, row.baseline, row.target
        );
    }
    let missed: Vec<_> = rows.iter().filter(|row| row.met == Some(false)).collect();
    let judged = rows.iter().filter(|row| row.met.is_some()).count();
    println!("\ntargets met: {} of {judged}", judged - missed.len());
    for row in missed {
        println!("  missed: {} (target {})", row.scenario, row.target);
    }
    true
}

/// Where criterion writes its results, found the way criterion finds it:
/// `$CRITERION_HOME`, else `<target dir>/criterion`. The target directory is
/// `$CARGO_TARGET_DIR`, else the nearest ancestor of this executable that
/// holds cargo's `CACHEDIR.TAG`.
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf)
    });
    target.unwrap_or_else(|| PathBuf::from("target")).join("criterion")
}

/// Reads back the medians criterion wrote during this run.
pub struct Estimates {
    root: PathBuf,
    since: SystemTime,
}

impl Estimates {
    pub fn new(since: SystemTime) -> Self {
        Self { root: criterion_home(), since }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The median point estimate (ns per iteration) of the benchmark whose
    /// id is `parts` joined by `/` (`group/function[/parameter]`), if
    /// criterion wrote it during this run (older files are ignored).
    pub fn median_ns(&self, parts: &[&str]) -> Option<f64> {
        let mut path = self.root.clone();
        path.extend(parts);
        path.extend(["new", "estimates.json"]);
        let modified = fs::metadata(&path).ok()?.modified().ok()?;
        // Allow for coarse file-system timestamps.
        if modified + Duration::from_secs(2) < self.since {
            return None;
        }
        parse_median(&fs::read_to_string(path).ok()?)
    }
}

/// Finds `"median":{...,"point_estimate":X` in criterion's compact JSON.
fn parse_median(json: &str) -> Option<f64> {
    const KEY: &str = "\"point_estimate\":";
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find(KEY)? + KEY.len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

/// Writes the per-acquire cost per number of contending tasks, as
/// `tasks,packlock_ns,naive_ns`, for `examples/bench_chart.rs`.
pub fn write_scaling_csv(path: &Path, points: &[(usize, f64, f64)]) -> io::Result<()> {
    let mut csv = String::from("tasks,packlock_ns,naive_ns\n");
    for (tasks, packlock, naive) in points {
        csv.push_str(&format!("{tasks},{packlock:.1},{naive:.1}\n"));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, csv)
}
