//! `tether policy apply|show`, and the check `up`, `intercept` and `connect` make with
//! it: the edge of [`crate::policy`], where its errors become reports.
//!
//! The check runs after the context guard and before anything changes in the cluster:
//! every action the command would take is decided first, then a `production` profile
//! asks on the terminal (or needs `--yes`), so a refusal or a "no" leaves nothing behind.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::anyhow;

use super::{
    Classified, Failure,
    intercept::connect_guarded,
    output::{self, Shape},
    profile, project,
};
use crate::{
    cli::{PolicyApplyArgs, PolicyCommand, PolicyShowArgs},
    cluster::{Cluster, Identity, whoami},
    config::Profile,
    connect::install::NAMESPACE,
    policy::{self, Action, CONFIG_MAP, Policy, PolicyError},
};

impl Classified for PolicyError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

pub async fn run(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Apply(args) => apply(args).await,
        PolicyCommand::Show(args) => show(args).await,
    }
}

/// Validates the file before connecting, so a file with an error changes nothing.
async fn apply(args: PolicyApplyArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| {
        Failure::classify(PolicyError::Read {
            path: args.file.clone(),
            source,
        })
    })?;
    let parsed = policy::parse(&args.file, &text).map_err(Failure::classify)?;
    let cluster = connect_guarded(args.context.as_deref()).await?;
    let me = whoami(&cluster.client).await?;
    policy::write(&cluster.client, &me.username, &text)
        .await
        .map_err(Failure::classify)?;
    println!(
        "applied: {} to ConfigMap {NAMESPACE}/{CONFIG_MAP} in context {}",
        rules(parsed.rules.len()),
        cluster.context
    );
    Ok(())
}

async fn show(args: PolicyShowArgs) -> Result<(), Failure> {
    // Reading only: no guard.
    let cluster = Cluster::connect(args.context.as_deref())
        .await
        .map_err(Failure::classify)?;
    let me = whoami(&cluster.client).await?;
    let stored = policy::read(&cluster.client, &me.username)
        .await
        .map_err(Failure::classify)?;
    if let Some(m) = output::machine(args.output) {
        let doc = serde_json::json!({
            "config_map": format!("{NAMESPACE}/{CONFIG_MAP}"),
            "context": cluster.context,
            "exists": stored.text.is_some(),
            "rules": stored.policy.rules,
        });
        output::print(m, Shape::Document, &doc)?;
        return Ok(());
    }
    match &stored.text {
        None => println!(
            "no policy in context {} (no ConfigMap {NAMESPACE}/{CONFIG_MAP}): every profile is open to everyone",
            cluster.context
        ),
        Some(text) => {
            eprintln!(
                "policy: ConfigMap {NAMESPACE}/{CONFIG_MAP} in context {}, {}",
                cluster.context,
                rules(stored.policy.rules.len())
            );
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}

fn rules(n: usize) -> String {
    if n == 1 {
        "1 rule".to_owned()
    } else {
        format!("{n} rules")
    }
}

/// The check of `up` and the others: `who` may take every one of `actions` in
/// `profile` by the cluster's policy, and a production profile is confirmed. Returns
/// the policy it decided by.
pub(super) async fn admit(
    cluster: &Cluster,
    who: &Identity,
    profile: &Profile,
    actions: &[Action],
    yes: bool,
) -> Result<Policy, Failure> {
    let stored = policy::read(&cluster.client, &who.username)
        .await
        .map_err(Failure::classify)?;
    for action in actions {
        policy::decide(&stored.policy, &profile.name, who, action)
            .map_err(|r| Failure::classify(PolicyError::from(r)))?;
    }
    confirm(profile, &cluster.context, yes)?;
    Ok(stored.policy)
}

/// `intercept` and `connect` in `namespace`: checked as [`admit`] checks `up`, in the
/// profile `--profile` names, else in the profile of the nearest tether.toml that
/// `namespace` belongs to (its namespace for any user, or its shared namespace), so
/// leaving the flag off does not step around the rules. Outside every profile, nothing.
pub(super) async fn guard(
    cluster: &Cluster,
    profile: Option<&str>,
    namespace: &str,
    action: Action,
    yes: bool,
) -> Result<(), Failure> {
    let here = std::env::current_dir().map_err(|e| Failure::Failed(e.into()))?;
    if let Some(name) = profile {
        let project = project::nearest(&here)?;
        let Some(chosen) = profile::choose(&project, Some(name))? else {
            return Ok(());
        };
        let who = whoami(&cluster.client).await?;
        admit(cluster, &who, &chosen, &[action], yes).await?;
        return Ok(());
    }
    let Some(project) = project::nearest_if_any(&here)? else {
        return Ok(());
    };
    if project.profiles.is_empty() {
        return Ok(());
    }
    let who = whoami(&cluster.client).await?;
    let Some(within) = profile_of(project.profiles.values(), namespace) else {
        return Ok(());
    };
    admit(cluster, &who, within, &[action], yes).await?;
    Ok(())
}

/// The profile `namespace` belongs to: its template rendered for some user (`dev-{user}`
/// holds `dev-alice` and `dev-carol`), its fixed namespace, or its shared namespace.
fn profile_of<'a>(
    mut profiles: impl Iterator<Item = &'a Profile>,
    namespace: &str,
) -> Option<&'a Profile> {
    profiles.find(|p| {
        let rendered = match p.namespace.split_once("{user}") {
            Some((before, after)) => {
                namespace.len() > before.len() + after.len()
                    && namespace.starts_with(before)
                    && namespace.ends_with(after)
            }
            None => p.namespace == namespace,
        };
        rendered || p.shared_namespace.as_deref() == Some(namespace)
    })
}

/// A production profile goes ahead only when confirmed: `--yes`, or "y" on a terminal.
fn confirm(profile: &Profile, context: &str, yes: bool) -> Result<(), Failure> {
    if !profile.production || yes {
        return Ok(());
    }
    let name = &profile.name;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::BadInput(anyhow!(
            "profile `{name}` is a production profile (context {context}) and there is no terminal to confirm on: \
             nothing was changed\n  hint: pass --yes to go ahead without asking"
        )));
    }
    eprint!("profile `{name}` is a production profile (context {context}). Go ahead? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(anyhow!(e).context("cannot read the answer")))?;
    if is_yes(&answer) {
        Ok(())
    } else {
        Err(Failure::BadInput(anyhow!(
            "not confirmed: nothing was changed in profile `{name}`"
        )))
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Location;

    fn profile(name: &str, namespace: &str, shared: Option<&str>) -> Profile {
        Profile {
            name: name.into(),
            namespace: namespace.into(),
            contexts: Vec::new(),
            quota: Default::default(),
            defaults: Default::default(),
            production: false,
            set: Default::default(),
            namespace_at: Location {
                file: "tether.toml".into(),
                line: 1,
                col: 1,
            },
            shared: Default::default(),
            shared_namespace: shared.map(str::to_owned),
        }
    }

    #[test]
    fn a_namespace_names_the_profile_it_belongs_to() {
        let ps = [
            profile("stage", "stage-{user}", Some("stage")),
            profile("production", "shop", None),
        ];
        let of = |ns| profile_of(ps.iter(), ns).map(|p| p.name.as_str());
        assert_eq!(of("stage-carol"), Some("stage"));
        assert_eq!(
            of("stage-alice"),
            Some("stage"),
            "another user's of the same profile"
        );
        assert_eq!(of("stage"), Some("stage"), "the shared namespace");
        assert_eq!(of("shop"), Some("production"));
        assert_eq!(of("stage-"), None);
        assert_eq!(of("default"), None);
    }

    #[test]
    fn only_y_or_yes_confirms() {
        assert!(is_yes("y\n") && is_yes(" Yes ") && is_yes("YES"));
        assert!(!is_yes("") && !is_yes("n") && !is_yes("yep") && !is_yes("\n"));
    }
}
