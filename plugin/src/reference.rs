//! `docs/cli.md`, the command-line reference, generated from the clap types in `cli.rs` so it
//! cannot drift from `--help`. A test fails when the checked-in file is stale; regenerate it
//! with `DR_WRITE_REFERENCE=1 cargo nextest run --release --workspace cli_reference`.

use clap::CommandFactory;

use crate::cli::Cli;

/// Where the reference lives, from the workspace root.
pub const PATH: &str = "docs/cli.md";

/// The reference: every command's long help, as `kubectl dr <command> --help` prints it at
/// 100 columns, in the order `kubectl dr --help` lists them.
pub fn markdown() -> String {
    // Values of the variables set where this runs stay out: the reference must not depend on
    // the machine that generates it.
    let mut root = hide_env_values(Cli::command().term_width(100).max_term_width(100));
    root.build();
    let mut out = String::from(
        "# kubectl dr: command-line reference\n\n\
         Generated from the plugin's clap definitions (`plugin/src/reference.rs`); do not edit by\n\
         hand. Each section is what `--help` prints.\n",
    );
    section(&mut out, &mut root, "kubectl dr");
    out
}

fn hide_env_values(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| a.hide_env_values(true));
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    names.into_iter().fold(cmd, |cmd, name| cmd.mut_subcommand(name, hide_env_values))
}

fn section(out: &mut String, cmd: &mut clap::Command, path: &str) {
    out.push_str(&format!("\n## `{path}`\n\n```text\n"));
    let help = cmd.render_long_help().to_string();
    for line in help.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("```\n");
    let names: Vec<String> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).map(|c| c.get_name().to_owned()).collect();
    for name in names {
        if name == "help" {
            continue;
        }
        let sub = cmd.find_subcommand_mut(&name).expect("listed above");
        section(out, sub, &format!("{path} {name}"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn cli_reference_is_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(super::PATH);
        let generated = super::markdown();
        if std::env::var_os("DR_WRITE_REFERENCE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: regenerate it with DR_WRITE_REFERENCE=1 cargo nextest run --release --workspace cli_reference",
            super::PATH
        );
    }
}
