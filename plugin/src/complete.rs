//! `kubectl dr <TAB>`: kubectl completes a plugin by running `kubectl_complete-dr` from the
//! PATH with the plugin's words so far and the word being completed (possibly empty), and
//! reads cobra's answer: one candidate per line (`value<TAB>description`), then `:<directive>`
//! (cobra's ShellCompDirective bits). This binary answers when it runs under that name (a
//! link to it) or as `kubectl-dr __complete WORDS...` (cobra's own request command, which the
//! `kubectl_complete-dr` script in the release archive calls).
//!
//! Subcommands, flags and fixed values come from the clap command tree, so they cannot drift
//! from `--help`. Values that live elsewhere are completed where that is cheap, keyed on the
//! value's name in `--help`: PROFILE (the Profiles in the DR namespace, from the cluster),
//! NAMESPACE (the cluster's namespaces), CONTEXT (the kubeconfig's contexts), CLUSTER_ID and
//! POINT (the directories of a file location given by --path or DR_LOCATION_PATH). A cluster
//! that does not answer within [`CLUSTER_TIMEOUT`] gives no candidates; nothing is ever
//! written to stderr, which kubectl passes through to the terminal.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};

/// The executable kubectl looks for on the PATH to complete `kubectl dr`.
pub const KUBECTL_COMPLETER: &str = "kubectl_complete-dr";
/// Cobra's hidden request command.
pub const REQUEST: &str = "__complete";
/// How long a completion may wait for the cluster: a TAB that hangs is worse than none.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Cobra's ShellCompDirective bits (spf13/cobra completions.go).
pub mod directive {
    /// Let the shell complete file names when there is no candidate.
    pub const DEFAULT: u32 = 0;
    /// No file names: the candidates are all there is.
    pub const NO_FILE_COMP: u32 = 4;
    /// Complete directory names only.
    pub const FILTER_DIRS: u32 = 16;
    /// Keep the candidates in the order given (newest point first).
    pub const KEEP_ORDER: u32 = 32;
}

/// The words to complete when this process was started to complete: under the name
/// `kubectl_complete-dr`, or as `kubectl-dr __complete WORDS...`.
pub fn request(args: &[OsString]) -> Option<Vec<String>> {
    let program = args.first().and_then(|a| Path::new(a).file_name()).and_then(|n| n.to_str());
    let words = if program == Some(KUBECTL_COMPLETER) {
        &args[1..]
    } else if args.get(1).is_some_and(|a| a == REQUEST) {
        &args[2..]
    } else {
        return None;
    };
    Some(words.iter().map(|w| w.to_string_lossy().into_owned()).collect())
}

/// Answers a completion request on stdout, in cobra's format.
pub async fn run(words: &[String]) {
    use std::io::Write;
    let plan = plan(words);
    let (candidates, directive) = resolve(&plan).await;
    let mut out = String::new();
    for c in candidates {
        out.push_str(&c.value);
        if !c.help.is_empty() {
            out.push('\t');
            out.push_str(&c.help);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    // A reader that has gone away (the shell gave up) is no failure.
    let _ = std::io::stdout().write_all(out.as_bytes());
}

/// One completion: the word, and what it is (shown beside it by zsh and fish).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: String,
}

impl Candidate {
    fn new(value: impl Into<String>, help: impl Into<String>) -> Self {
        // One line: the protocol is line-based, and a tab separates the description.
        let help: String = help.into();
        let help = help.lines().next().unwrap_or_default().replace('\t', " ").trim().trim_end_matches('.').to_owned();
        Self { value: value.into(), help }
    }
}

/// What the word being completed can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    /// Known here: subcommands, flags, an enum's values.
    Fixed(Vec<Candidate>),
    /// Location profiles in the DR namespace (the cluster).
    Profiles,
    /// The cluster's namespaces.
    Namespaces,
    /// The kubeconfig's contexts.
    Contexts,
    /// The cluster IDs at a file location.
    ClusterIds,
    /// The complete points of a cluster ID at a file location.
    Points,
    /// A file name: the shell's own completion.
    Files,
    /// A directory name: the shell's own completion, directories only.
    Dirs,
    /// Something only the user knows (a bucket, a time): no candidates, no file names.
    Nothing,
}

/// What the line so far says about where to look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub kubeconfig: Option<PathBuf>,
    pub kube_context: Option<String>,
    pub namespace: Option<String>,
    /// A file location (`--path`, `--from-path`).
    pub location: Option<PathBuf>,
    pub cluster_id: Option<String>,
}

/// A completion request worked out from the command tree: what the word can be, the text
/// typed of it so far, and what to put before each candidate (`--flag=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub values: Values,
    pub typed: String,
    pub prefix: String,
    pub context: Context,
}

/// Works out what the last word can be, walking the words before it through the clap tree as
/// clap would parse them.
pub fn plan(words: &[String]) -> Plan {
    let mut root = crate::cli::Cli::command();
    root.build();
    let (current, before) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };
    let mut cmd = &root;
    let mut context = Context::default();
    let mut used: Vec<String> = Vec::new();
    let mut positionals = 0usize;
    let mut only_positionals = false;
    let mut pending: Option<&Arg> = None;
    for word in before {
        if let Some(arg) = pending.take() {
            note(&mut context, arg, word);
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
        } else if !only_positionals && word.starts_with("--") {
            let (name, value) = match word[2..].split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (&word[2..], None),
            };
            if let Some(arg) = long(cmd, name) {
                used.push(arg.get_id().to_string());
                match value {
                    Some(v) if takes_value(arg) => note(&mut context, arg, v),
                    None if takes_value(arg) => pending = Some(arg),
                    _ => {}
                }
            }
        } else if !only_positionals && word.starts_with('-') && word.len() > 1 {
            // -n NS, -nNS, -n=NS, or a cluster of switches (-yq).
            for (i, c) in word[1..].char_indices() {
                let Some(arg) = cmd.get_arguments().find(|a| a.get_short() == Some(c)) else { break };
                used.push(arg.get_id().to_string());
                if takes_value(arg) {
                    let rest = &word[1 + i + c.len_utf8()..];
                    let rest = rest.strip_prefix('=').unwrap_or(rest);
                    if rest.is_empty() {
                        pending = Some(arg);
                    } else {
                        note(&mut context, arg, rest);
                    }
                    break;
                }
            }
        } else if let Some(sub) = (positionals == 0).then(|| cmd.find_subcommand(word)).flatten() {
            cmd = sub;
            used.clear();
        } else {
            positionals += 1;
            if let Some(arg) = positional(cmd, positionals) {
                note(&mut context, arg, word);
            }
        }
    }
    fill_from_environment(&mut context);
    let plan = |values, typed: &str, prefix: String| Plan { values, typed: typed.to_owned(), prefix, context: context.clone() };

    if let Some(arg) = pending {
        return plan(values_of(arg), current, String::new());
    }
    if !only_positionals && current.starts_with("--") {
        if let Some((name, typed)) = current[2..].split_once('=') {
            let values = long(cmd, name).filter(|a| takes_value(a)).map_or(Values::Nothing, values_of);
            return plan(values, typed, format!("--{name}="));
        }
    }
    if !only_positionals && current.starts_with('-') {
        return plan(Values::Fixed(flags(cmd, &used, current == "-")), current, String::new());
    }
    if positionals == 0 && cmd.has_subcommands() {
        let subcommands = cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| Candidate::new(s.get_name(), about(s))).collect();
        return plan(Values::Fixed(subcommands), current, String::new());
    }
    let values = positional(cmd, positionals + 1).map_or(Values::Nothing, values_of);
    plan(values, current, String::new())
}

fn long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|aliases| aliases.contains(&name)))
}

/// The positional argument at `index` (from 1), or the last one when it takes many values.
fn positional(cmd: &Command, index: usize) -> Option<&Arg> {
    cmd.get_positionals()
        .find(|a| a.get_index() == Some(index))
        .or_else(|| cmd.get_positionals().last().filter(|a| a.get_index().is_some_and(|i| i < index) && matches!(a.get_action(), ArgAction::Append)))
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// Remembers the values that say where to look (the kubeconfig, the DR namespace, the location).
fn note(context: &mut Context, arg: &Arg, value: &str) {
    match arg.get_id().as_str() {
        "kubeconfig" => context.kubeconfig = Some(value.into()),
        "context" => context.kube_context = Some(value.into()),
        "namespace" => context.namespace = Some(value.into()),
        "path" | "from_path" => context.location = Some(value.into()),
        "cluster_id" => context.cluster_id = Some(value.into()),
        _ => {}
    }
}

/// The same settings from the environment, as the command itself would read them.
fn fill_from_environment(context: &mut Context) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    context.namespace = context.namespace.take().or_else(|| var("DR_NAMESPACE"));
    context.location = context.location.take().or_else(|| var("DR_LOCATION_PATH").map(PathBuf::from));
    context.cluster_id = context.cluster_id.take().or_else(|| var("DR_CLUSTER_ID"));
}

/// The flags of `cmd` not given yet (or that may be given again), `--long` each, and `-s`
/// too when only `-` is typed.
fn flags(cmd: &Command, used: &[String], with_short: bool) -> Vec<Candidate> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
        let repeatable = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
        if !repeatable && used.iter().any(|u| u == arg.get_id().as_str()) {
            continue;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if let Some(long) = arg.get_long() {
            out.push(Candidate::new(format!("--{long}"), &help));
        }
        if with_short {
            if let Some(short) = arg.get_short() {
                out.push(Candidate::new(format!("-{short}"), &help));
            }
        }
    }
    out
}

fn about(cmd: &Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

/// What a value of `arg` can be: its fixed values, else by the name `--help` gives the value,
/// else by its kind (a path).
fn values_of(arg: &Arg) -> Values {
    let fixed: Vec<Candidate> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| Candidate::new(v.get_name(), v.get_help().map(|h| h.to_string()).unwrap_or_default()))
        .collect();
    if !fixed.is_empty() {
        return Values::Fixed(fixed);
    }
    let name = arg.get_value_names().and_then(|n| n.first()).map(|n| n.as_str().to_owned()).unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    match name.as_str() {
        "PROFILE" => Values::Profiles,
        "NAMESPACE" => Values::Namespaces,
        "CONTEXT" => Values::Contexts,
        "CLUSTER_ID" => Values::ClusterIds,
        "POINT" => Values::Points,
        _ => match arg.get_value_hint() {
            ValueHint::DirPath => Values::Dirs,
            ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => Values::Files,
            _ => Values::Nothing,
        },
    }
}

/// The candidates and cobra's directive for a plan: fixed ones filtered by what is typed,
/// the others looked up (quietly: no candidates when the lookup fails or is slow).
pub async fn resolve(plan: &Plan) -> (Vec<Candidate>, u32) {
    let (candidates, directive) = match &plan.values {
        Values::Fixed(c) => (c.clone(), directive::NO_FILE_COMP),
        Values::Profiles => (from_cluster(&plan.context, profiles).await, directive::NO_FILE_COMP),
        Values::Namespaces => (from_cluster(&plan.context, namespaces).await, directive::NO_FILE_COMP),
        Values::Contexts => (contexts(&plan.context), directive::NO_FILE_COMP),
        Values::ClusterIds => (cluster_ids(&plan.context), directive::NO_FILE_COMP),
        Values::Points => (points(&plan.context), directive::NO_FILE_COMP | directive::KEEP_ORDER),
        Values::Files => (vec![], directive::DEFAULT),
        Values::Dirs => (vec![], directive::FILTER_DIRS),
        Values::Nothing => (vec![], directive::NO_FILE_COMP),
    };
    let candidates = candidates
        .into_iter()
        .filter(|c| c.value.starts_with(&plan.typed))
        .map(|c| Candidate { value: format!("{}{}", plan.prefix, c.value), help: c.help })
        .collect();
    (candidates, directive)
}

/// Runs a lookup against the cluster the line names, within [`CLUSTER_TIMEOUT`].
async fn from_cluster<F>(context: &Context, lookup: impl FnOnce(kube::Client, String) -> F) -> Vec<Candidate>
where
    F: std::future::Future<Output = Option<Vec<Candidate>>>,
{
    let namespace = context.namespace.clone().unwrap_or_else(|| dr_core::catalog::DEFAULT_DR_NAMESPACE.to_owned());
    let global = crate::cli::GlobalArgs { kubeconfig: context.kubeconfig.clone(), context: context.kube_context.clone(), namespace: namespace.clone() };
    let work = async {
        let client = crate::input::kube_client(&global).await.ok()?;
        lookup(client, namespace).await
    };
    let mut found = tokio::time::timeout(CLUSTER_TIMEOUT, work).await.ok().flatten().unwrap_or_default();
    found.sort_by(|a, b| a.value.cmp(&b.value));
    found
}

/// The location profiles in the DR namespace, each with where it points.
async fn profiles(client: kube::Client, namespace: String) -> Option<Vec<Candidate>> {
    let api: kube::Api<dr_core::resources::Profile> = kube::Api::namespaced(client, &namespace);
    let list = api.list(&Default::default()).await.ok()?;
    let describe = |p: &dr_core::resources::Profile| p.spec.location_url().map(|(_, url)| url).unwrap_or_default();
    Some(list.items.iter().filter_map(|p| Some(Candidate::new(p.metadata.name.clone()?, describe(p)))).collect())
}

/// The cluster's namespaces (the DR namespace argument is there for `from_cluster`'s shape).
async fn namespaces(client: kube::Client, _dr_namespace: String) -> Option<Vec<Candidate>> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let list = api.list(&Default::default()).await.ok()?;
    Some(list.items.iter().filter_map(|n| Some(Candidate::new(n.metadata.name.clone()?, ""))).collect())
}

/// The contexts of the kubeconfig the line names (or KUBECONFIG's files, or ~/.kube/config).
fn contexts(context: &Context) -> Vec<Candidate> {
    let kubeconfig = match &context.kubeconfig {
        Some(path) => {
            if dr_core::local_file::check(path, "the kubeconfig", dr_core::local_file::MAX_FILE_BYTES).is_err() {
                return vec![];
            }
            kube::config::Kubeconfig::read_from(path)
        }
        None => kube::config::Kubeconfig::read(),
    };
    let Ok(kubeconfig) = kubeconfig else { return vec![] };
    kubeconfig.contexts.iter().map(|c| Candidate::new(&c.name, c.context.as_ref().map(|x| format!("cluster {}", x.cluster)).unwrap_or_default())).collect()
}

/// Names of the subdirectories of `dir` (unreadable ones and other files left out).
fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries.filter_map(Result::ok).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).filter_map(|e| e.file_name().into_string().ok()).collect()
}

/// The cluster IDs with restore points at the file location.
fn cluster_ids(context: &Context) -> Vec<Candidate> {
    let Some(location) = &context.location else { return vec![] };
    let mut out: Vec<Candidate> = subdirectories(location)
        .into_iter()
        .filter(|id| dr_core::point::validate_cluster_id(id).is_ok())
        .filter_map(|id| {
            let points = complete_points(&location.join(&id));
            (!points.is_empty()).then(|| Candidate::new(&id, format!("{} restore point(s)", points.len())))
        })
        .collect();
    out.sort_by(|a, b| a.value.cmp(&b.value));
    out
}

/// The complete points (those with a manifest) of one cluster ID's directory, newest first.
fn complete_points(cluster_dir: &Path) -> Vec<(String, time::OffsetDateTime)> {
    let dir = cluster_dir.join("restore-points");
    let mut points: Vec<(String, time::OffsetDateTime)> = subdirectories(&dir)
        .into_iter()
        .filter(|id| dir.join(id).join(dr_core::point::MANIFEST_OBJECT).is_file())
        .filter_map(|id| dr_core::point::point_time(&id).ok().map(|t| (id, t)))
        .collect();
    points.sort_by(|a, b| b.cmp(a));
    points
}

/// The complete points of the line's cluster ID at the file location, newest first. Names
/// only: a point is authenticated when a command opens it, not here.
fn points(context: &Context) -> Vec<Candidate> {
    let (Some(location), Some(cluster_id)) = (&context.location, &context.cluster_id) else { return vec![] };
    if dr_core::point::validate_cluster_id(cluster_id).is_err() {
        return vec![];
    }
    complete_points(&location.join(cluster_id)).into_iter().map(|(id, t)| Candidate::new(id, dr_core::point::rfc3339(t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[&str]) -> Vec<String> {
        line.iter().map(|w| w.to_string()).collect()
    }

    fn fixed(line: &[&str]) -> Vec<String> {
        match plan(&words(line)).values {
            Values::Fixed(c) => c.into_iter().map(|c| c.value).collect(),
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn the_first_word_is_a_subcommand_with_its_description() {
        let Values::Fixed(c) = plan(&words(&[""])).values else { panic!() };
        let names: Vec<&str> = c.iter().map(|c| c.value.as_str()).collect();
        assert!(names.starts_with(&["profile", "enable", "status"]) && names.contains(&"restore-points") && names.contains(&"completion"), "{names:?}");
        let restore = c.iter().find(|c| c.value == "restore").unwrap();
        assert!(restore.help.starts_with("Restore a cluster's restore point"), "{restore:?}");
        assert!(!restore.help.contains('\n'));
        assert_eq!(fixed(&["images", ""]), ["mirror", "package-chart", "help"]);
    }

    #[test]
    fn flags_come_from_the_subcommand_and_the_global_ones() {
        let f = fixed(&["restore", "--"]);
        assert!(f.contains(&"--profile".into()) && f.contains(&"--cluster-id".into()) && f.contains(&"--namespace".into()), "{f:?}");
        assert!(!f.contains(&"--s3-bucket".into()), "restore takes no location flags: {f:?}");
        // Given once, a flag is not offered again; a repeatable one is.
        let f = fixed(&["restore", "--profile", "p", "--image-pull-secret", "a", "--"]);
        assert!(!f.contains(&"--profile".into()) && f.contains(&"--image-pull-secret".into()), "{f:?}");
        // A lone dash offers the short forms too.
        assert!(fixed(&["status", "-"]).contains(&"-n".into()));
    }

    #[test]
    fn the_azure_location_flags_are_offered_where_the_s3_ones_are() {
        for line in [&["verify", "--"][..], &["restore-points", "--"], &["prune", "--"], &["profile", "create", "p", "--"]] {
            let f = fixed(line);
            for flag in ["--s3-bucket", "--azure-account", "--azure-container", "--azure-prefix", "--azure-endpoint", "--azure-replica", "--immutable-days"] {
                assert!(f.contains(&flag.into()), "{line:?} lacks {flag}: {f:?}");
            }
        }
        let create = fixed(&["profile", "create", "p", "--azure"]);
        assert!(create.contains(&"--azure-credentials-secret".into()) && create.contains(&"--azure-credentials-from-env".into()), "{create:?}");
        assert!(!fixed(&["restore", "--"]).contains(&"--azure-account".into()), "restore takes no location flags");
        // Names only the user knows: no candidates, no file names.
        assert_eq!(plan(&words(&["verify", "--azure-account", ""])).values, Values::Nothing);
    }

    #[test]
    fn the_gcs_location_flags_are_offered_where_the_s3_ones_are() {
        for line in [&["verify", "--"][..], &["restore-points", "--"], &["prune", "--"], &["profile", "create", "p", "--"]] {
            let f = fixed(line);
            for flag in ["--gcs-bucket", "--gcs-prefix", "--gcs-endpoint", "--gcs-replica"] {
                assert!(f.contains(&flag.into()), "{line:?} lacks {flag}: {f:?}");
            }
        }
        let create = fixed(&["profile", "create", "p", "--gcs"]);
        assert!(create.contains(&"--gcs-credentials-secret".into()) && create.contains(&"--gcs-credentials-from-env".into()), "{create:?}");
        assert!(!fixed(&["restore", "--"]).contains(&"--gcs-bucket".into()), "restore takes no location flags");
        assert_eq!(plan(&words(&["verify", "--gcs-bucket", ""])).values, Values::Nothing);
    }

    #[test]
    fn values_by_kind_and_by_name() {
        assert_eq!(fixed(&["restore-points", "--passphrase-source", ""]), ["raw", "vault", "aws"]);
        assert_eq!(fixed(&["completion", ""]), ["bash", "elvish", "fish", "powershell", "zsh"]);
        assert_eq!(fixed(&["restore", "--existing", ""]), ["skip", "update"]);
        for line in [&["restore", "--profile", ""][..], &["profile", "delete", ""], &["replicate", "--to", ""], &["enable", "--replicate-to", "x"]] {
            assert_eq!(plan(&words(line)).values, Values::Profiles, "{line:?}");
        }
        // The same flag name on another command is another thing: an image registry.
        assert_eq!(plan(&words(&["images", "mirror", "--to", ""])).values, Values::Nothing);
        assert_eq!(plan(&words(&["verify", "--passphrase-file", ""])).values, Values::Files);
        assert_eq!(plan(&words(&["images", "package-chart", "--destination", ""])).values, Values::Dirs);
        assert_eq!(plan(&words(&["-n", ""])).values, Values::Namespaces);
        assert_eq!(plan(&words(&["drill", "--target-context", ""])).values, Values::Contexts);
        assert_eq!(plan(&words(&["--context", ""])).values, Values::Contexts);
    }

    #[tokio::test]
    async fn flag_equals_value_completes_with_the_flag_in_front() {
        let p = plan(&words(&["restore", "--existing=u"]));
        assert_eq!((p.prefix.as_str(), p.typed.as_str()), ("--existing=", "u"));
        let (c, directive) = resolve(&p).await;
        assert_eq!(c.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(), ["--existing=update"]);
        assert_eq!(directive, directive::NO_FILE_COMP);
    }

    #[test]
    fn the_line_says_where_to_look() {
        let p = plan(&words(&["--kubeconfig=/k", "--context", "ctx", "-nkdr", "diff", "--path", "/loc", "--cluster-id", "c1", "P1", ""]));
        assert_eq!(p.values, Values::Points, "diff's second positional is a point too");
        assert_eq!(
            p.context,
            Context {
                kubeconfig: Some("/k".into()),
                kube_context: Some("ctx".into()),
                namespace: Some("kdr".into()),
                location: Some("/loc".into()),
                cluster_id: Some("c1".into())
            }
        );
        assert_eq!(plan(&words(&["diff", ""])).values, Values::Points);
        assert_eq!(plan(&words(&["replicate", "--from-path", "/f", "--point", ""])).context.location, Some("/f".into()));
    }
}
