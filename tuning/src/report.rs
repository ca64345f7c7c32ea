//! The human report on stdout, and the JSON report (`--json`).

use serde::Serialize;

use crate::checks::{Applied, Finding, Status};
use crate::profile::Measured;
use crate::rules::Choice;
use crate::TuneArgs;

/// Everything one run found, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started, RFC 3339 UTC.
    pub date_utc: String,
    /// The data directory.
    pub data_dir: String,
    /// Root of /proc and /sys.
    pub sysroot: String,
    /// Shards the checks assumed.
    pub shards: usize,
    /// Whether `--apply` was given.
    pub apply: bool,
    /// The system checks.
    pub findings: Vec<Finding>,
    /// The writes `--apply` made.
    pub applied: Vec<Applied>,
    /// The checks again after `--apply`.
    pub findings_after_apply: Option<Vec<Finding>>,
    /// The device measurement, when it ran.
    pub measured: Option<Measured>,
    /// The chosen profile and reasons, when the measurement ran.
    pub choice: Option<Choice>,
    /// Where the profile was written.
    pub profile_path: Option<String>,
    /// Why the measurement failed, if it did.
    pub disk_error: Option<String>,
}

impl Report {
    /// An empty report for a run with `args`.
    pub fn new(args: &TuneArgs, data_dir: &std::path::Path, shards: usize) -> Report {
        Report {
            date_utc: crate::date::utc_now(),
            data_dir: data_dir.display().to_string(),
            sysroot: args.sysroot.display().to_string(),
            shards,
            apply: args.apply,
            findings: Vec::new(),
            applied: Vec::new(),
            findings_after_apply: None,
            measured: None,
            choice: None,
            profile_path: None,
            disk_error: None,
        }
    }
}

const WIDTH: usize = 100;
const LABEL_COLS: usize = 6;
const CHECK_COLS: usize = 14;

/// Wraps `text` into lines of at most `width` columns, the first starting at column
/// `first_col` and the rest indented by `indent` spaces.
pub fn wrap(text: &str, first_col: usize, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut col = first_col;
    let mut line_empty = true;
    for word in text.split_whitespace() {
        if !line_empty && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
        line_empty = false;
    }
    out
}

/// Prints the findings: one line for each OK, and why/fix lines for the others.
pub fn print_findings(title: &str, findings: &[Finding], apply: bool) {
    println!("\n{title}");
    let indent = 2 + LABEL_COLS + CHECK_COLS;
    let pad = " ".repeat(indent);
    let mut to_apply = 0;
    let mut to_fix = 0;
    for f in findings {
        println!(
            "  {:<LABEL_COLS$}{:<CHECK_COLS$}{}",
            f.status.label(),
            f.check,
            wrap(&f.found, indent, indent, WIDTH)
        );
        if f.status == Status::Ok {
            continue;
        }
        println!(
            "{pad}{}",
            wrap(&format!("why: {}", f.why), indent, indent + 5, WIDTH)
        );
        let Some(fix) = &f.fix else {
            continue;
        };
        to_fix += 1;
        println!(
            "{pad}{}",
            wrap(&format!("fix: {}", fix.command), indent, indent + 5, WIDTH)
        );
        if let Some(p) = &fix.persist {
            println!(
                "{pad}{}",
                wrap(&format!("persist: {p}"), indent, indent + 9, WIDTH)
            );
        }
        if let Some(m) = &fix.manual_because {
            println!(
                "{pad}{}",
                wrap(
                    &format!("not changed by --apply: {m}"),
                    indent,
                    indent + 4,
                    WIDTH
                )
            );
        }
        if !f.status.applies() && !fix.writes.is_empty() {
            println!(
                "{pad}{}",
                wrap(
                    "not changed by --apply: nothing is wrong now (INFO); run the fix by hand \
                     if you want it",
                    indent,
                    indent + 4,
                    WIDTH
                )
            );
            continue;
        }
        for w in &fix.writes {
            to_apply += 1;
            if !apply {
                println!(
                    "{pad}--apply would write {:?} to {}",
                    w.value,
                    w.path.display()
                );
            }
        }
    }
    if !apply && to_apply > 0 {
        println!(
            "\n  Dry run: {to_fix} finding{} with a fix; --apply makes the {to_apply} write{} \
             listed above (until reboot).",
            if to_fix == 1 { "" } else { "s" },
            if to_apply == 1 { "" } else { "s" }
        );
    }
}

/// Prints what `--apply` wrote.
pub fn print_applied(applied: &[Applied]) {
    println!("\nApplied");
    if applied.is_empty() {
        println!("  nothing to change");
    }
    for a in applied {
        match &a.error {
            None => println!("  wrote {:?} to {}", a.value, a.path.display()),
            Some(e) => println!("  FAILED {:?} to {}: {e}", a.value, a.path.display()),
        }
    }
}

/// Prints the checks whose status changed after `--apply`.
pub fn print_changes(before: &[Finding], after: &[Finding]) {
    for (b, a) in before.iter().zip(after) {
        if b.status != a.status || b.found != a.found {
            println!(
                "  now {:<LABEL_COLS$}{:<CHECK_COLS$}{}",
                a.status.label(),
                a.check,
                a.found
            );
        }
    }
}

/// Prints the chosen settings with their reasons.
pub fn print_choice(choice: &Choice) {
    let p = &choice.profile;
    let r = &choice.reasons;
    println!("\nProfile");
    const KV_COLS: usize = 28;
    let indent = 2 + KV_COLS;
    for (key, value, why) in [
        (
            "write_chunk_bytes",
            p.write_chunk_bytes.to_string(),
            &r.write_chunk_bytes,
        ),
        ("write_depth", p.write_depth.to_string(), &r.write_depth),
        (
            "flush_interval_ms",
            p.flush_interval_ms.to_string(),
            &r.flush_interval_ms,
        ),
        ("ring_depth", p.ring_depth.to_string(), &r.ring_depth),
    ] {
        let kv = format!("{key} = {value}");
        println!("  {kv:<KV_COLS$}{}", wrap(why, indent, indent, WIDTH));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_width() {
        let w = wrap("aaa bbb ccc ddd", 0, 2, 8);
        assert_eq!(w, "aaa bbb\n  ccc\n  ddd");
        assert_eq!(wrap("", 0, 0, 10), "");
        // A word longer than the width gets a line of its own.
        assert_eq!(wrap("a verylongword b", 0, 0, 5), "a\nverylongword\nb");
    }
}
