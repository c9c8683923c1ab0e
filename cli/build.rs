//! Stamps the binary with its git commit and build date (`km3mon
//! --version`, the `km3mon_build_info` metric). Outside a git checkout (a
//! container build from a source archive) `KM3MON_GIT_COMMIT` may say it;
//! else the commit is `unknown`. `SOURCE_DATE_EPOCH` fixes the date for
//! reproducible builds.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KM3MON_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = std::env::var("KM3MON_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a worktree's git dir is not ./.git; a
    // branch's ref may live in the common dir). Only files that exist: a
    // missing one would rerun this script, and relink, on every build.
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch.push(format!("{dir}/HEAD"));
        if let (Some(r), Some(common)) = (
            git(&["symbolic-ref", "-q", "HEAD"]),
            git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
        ) {
            watch.push(format!("{common}/{r}"));
            watch.push(format!("{common}/packed-refs"));
        }
    }
    for f in watch {
        if std::path::Path::new(&f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    println!("cargo:rustc-env=KM3MON_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KM3MON_BUILD_DATE={}", utc_date(secs));
}

/// `YYYY-MM-DD` of a Unix time (Hinnant's civil-from-days).
fn utc_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
