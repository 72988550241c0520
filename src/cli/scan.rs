//! `mcp-warden scan`: start the servers and report what the registration-time scan
//! finds in their definitions and instructions, and package specs that can change
//! under a pin.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::inventory;
use crate::ExitStatus;
use crate::output;
use crate::paths::Paths;
use crate::pinning::judge::HOLD_SEVERITY;
use crate::scan::Finding;

/// Start the servers (under the same trust gate as `serve`) and scan every tool,
/// prompt and resource template definition and each server's instructions for signs
/// of tool poisoning. Exit 1 on findings that would hold a tool (medium or high) or
/// an unversioned package; low findings are shown as notes.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `scan`.
pub fn run(
    paths: &Paths,
    workspace: Option<PathBuf>,
    args: &ScanArgs,
) -> anyhow::Result<ExitStatus> {
    let inv = match inventory::take(paths, workspace)? {
        Ok(inv) => inv,
        Err(status) => return Ok(status),
    };
    let mut report = Vec::new();
    let mut serious = false;
    for review in &inv.reviews {
        let unversioned = crate::config::findings::unversioned_spec(
            &review.config.raw_command,
            &review.config.raw_args,
        );
        let findings: Vec<(String, &Finding)> = review
            .instruction_findings
            .iter()
            .map(|f| (f.item.clone(), f))
            .chain(review.items.iter().flat_map(|i| {
                let label = format!("{} `{}`", i.key.kind, i.exposed);
                i.findings.iter().map(move |f| (label.clone(), f))
            }))
            .collect();
        serious |=
            unversioned.is_some() || findings.iter().any(|(_, f)| f.severity >= HOLD_SEVERITY);
        report.push((review, unversioned, findings));
    }
    if args.json {
        let servers: Vec<_> = report
            .iter()
            .map(|(review, unversioned, findings)| {
                let findings: Vec<_> = findings
                    .iter()
                    .map(|(item, f)| json!({"item": item, "finding": f}))
                    .collect();
                json!({
                    "server": review.config.name.as_str(),
                    "error": review.error,
                    "unversioned_package": unversioned,
                    "findings": findings,
                })
            })
            .collect();
        output::json(&serde_json::to_string_pretty(
            &json!({ "servers": servers }),
        )?);
    } else {
        let mut total = 0;
        for (review, unversioned, findings) in &report {
            let server = review.config.name.as_str();
            if let Some(spec) = unversioned {
                total += 1;
                output::line(&format!(
                    "{server}: warning: unversioned package `{spec}`: it can change under a pin; pin a version (`pkg@1.2.3`, `pkg==1.2.3`)"
                ));
            }
            for (item, f) in findings {
                total += 1;
                let level = if f.severity >= HOLD_SEVERITY {
                    "finding"
                } else {
                    "note"
                };
                output::line(&format!(
                    "{server}: {level}: {} [{}] in {} at {}: {}",
                    f.id,
                    f.severity,
                    item,
                    if f.location.is_empty() {
                        "/"
                    } else {
                        &f.location
                    },
                    f.message,
                ));
                output::line(&format!("    \"{}\"", f.excerpt));
            }
            if let Some(why) = &review.error {
                output::line(&format!("{server}: error: not scanned: {why}"));
            }
        }
        let scanned: usize = inv.reviews.iter().map(|r| r.items.len()).sum();
        output::line(&format!(
            "scanned {scanned} definition(s) of {} server(s): {total} finding(s)",
            inv.reviews.len()
        ));
    }
    Ok(if serious {
        ExitStatus::Findings
    } else if inv.failed() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
