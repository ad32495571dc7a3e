//! The drill's report for people: Markdown and a self-contained HTML page (no scripts, no external
//! resources), from the same [`DrillReport`] the JSON is.

use super::DrillReport;

fn duration(seconds: f64) -> String {
    if seconds < 10.0 {
        return format!("{:.1} s", seconds.max(0.0));
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

impl DrillReport {
    pub fn verdict(&self) -> &'static str {
        if self.passed {
            "PASSED"
        } else {
            "FAILED"
        }
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!("# DR drill: {}\n\n", self.verdict());
        for reason in &self.reasons {
            md.push_str(&format!("- {reason}\n"));
        }
        if !self.reasons.is_empty() {
            md.push('\n');
        }
        md.push_str("| | |\n|---|---|\n");
        for (k, v) in self.facts() {
            md.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
        }
        md.push_str("\n## Objects by kind\n\n| Kind | In point | Restored | Matching | Differing | Missing | Skipped | Failed |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (kind, k) in &self.by_kind {
            md.push_str(&format!(
                "| {kind} | {} | {} | {} | {} | {} | {} | {} |\n",
                k.in_point, k.restored, k.matching, k.differing, k.missing, k.skipped, k.failed
            ));
        }
        if !self.differences.is_empty() {
            md.push_str("\n## Differences (field paths; values are not shown)\n\n");
            for d in &self.differences {
                md.push_str(&format!("- {}: {}\n", d.object, d.fields.join(", ")));
            }
        }
        if !self.ignored.is_empty() {
            md.push_str("\n## Not compared (the target cluster makes these itself)\n\n");
            for i in &self.ignored {
                md.push_str(&format!("- {i}\n"));
            }
        }
        if !self.failures.is_empty() {
            md.push_str("\n## Failures\n\n");
            for f in &self.failures {
                md.push_str(&format!("- {f}\n"));
            }
        }
        md
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Result", self.verdict().to_owned()),
            ("Source cluster", self.source_cluster_id.clone()),
            ("Restore point", format!("{} (written {})", self.restore_point, self.point_created_at)),
            ("Location", self.location.clone()),
            ("Restored into", self.target.clone()),
            ("Drill started", self.started_at.clone()),
            ("Drill finished", self.finished_at.clone()),
            ("RPO (age of the point at the start)", duration(self.rpo_seconds)),
            ("RTO (drill start to the restore verified)", duration(self.rto_seconds)),
            ("Restore alone", duration(self.restore_seconds)),
            ("Objects checked", self.objects.to_string()),
            ("Cleaned up", if self.cleaned_up.is_empty() { "nothing".into() } else { self.cleaned_up.join(", ") }),
            ("Written by", self.written_by.clone()),
        ]
    }

    /// The report as one self-contained HTML page (no scripts, no external resources).
    pub fn html(&self) -> String {
        let e = html_escape;
        let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        h.push_str(&format!("<title>DR drill {} {}</title>\n", e(&self.restore_point), self.verdict()));
        h.push_str("<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}td.n{text-align:right}.verdict{font-size:1.6em;font-weight:bold;padding:.3em .6em;display:inline-block;color:#fff}.PASSED{background:#1a7f37}.FAILED{background:#cf222e}tr.bad td{background:#ffebe9}</style>\n</head><body>\n");
        h.push_str(&format!("<h1>DR drill</h1>\n<p><span class=\"verdict {0}\" id=\"verdict\">{0}</span></p>\n", self.verdict()));
        html_list(&mut h, "reasons", self.reasons.iter().map(String::as_str));
        h.push_str("<table id=\"facts\">\n");
        for (k, v) in self.facts() {
            h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(&v)));
        }
        h.push_str("</table>\n<h2>Objects by kind</h2>\n<table id=\"kinds\"><tr><th>Kind</th><th>In point</th><th>Restored</th><th>Matching</th><th>Differing</th><th>Missing</th><th>Skipped</th><th>Failed</th></tr>\n");
        for (kind, k) in &self.by_kind {
            let bad = k.differing + k.missing + k.failed > 0;
            h.push_str(&format!(
                "<tr{}><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                if bad { " class=\"bad\"" } else { "" },
                e(kind),
                k.in_point,
                k.restored,
                k.matching,
                k.differing,
                k.missing,
                k.skipped,
                k.failed
            ));
        }
        h.push_str("</table>\n");
        if !self.differences.is_empty() {
            h.push_str("<h2>Differences</h2>\n<p>Field paths only; values are not shown.</p>\n");
            let lines: Vec<String> = self.differences.iter().map(|d| format!("{}: {}", d.object, d.fields.join(", "))).collect();
            html_list(&mut h, "differences", lines.iter().map(String::as_str));
        }
        if !self.ignored.is_empty() {
            h.push_str("<h2>Not compared</h2>\n<p>The target cluster makes these itself.</p>\n");
            html_list(&mut h, "ignored", self.ignored.iter().map(String::as_str));
        }
        if !self.failures.is_empty() {
            h.push_str("<h2>Failures</h2>\n");
            html_list(&mut h, "failures", self.failures.iter().map(String::as_str));
        }
        h.push_str("</body></html>\n");
        h
    }
}

/// `<ul id="...">` of `items`, escaped; nothing when there are none.
fn html_list<'a>(h: &mut String, id: &str, items: impl Iterator<Item = &'a str>) {
    let items: String = items.map(|i| format!("<li>{}</li>", html_escape(i))).collect();
    if !items.is_empty() {
        h.push_str(&format!("<ul id=\"{id}\">{items}</ul>\n"));
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
