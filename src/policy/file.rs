//! A policy file: TOML like `tether.toml`, one `[[rule]]` per rule. Parsed and validated
//! whole before anything is written, and every error names `file:line:col`, so a policy
//! with a mistake is never half applied.
//!
//! ```toml
//! [[rule]]
//! name = "stage-consumers"
//! profiles = ["stage"]
//! resources = ["twitter-stats"]   # "*" for every resource
//! users = ["alice", "bob"]
//! groups = ["tether:admins"]
//! ```

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use toml::Spanned;

use super::{
    error::PolicyError,
    rule::{ANY_RESOURCE, Policy, Rule},
};
use crate::config::{Location, is_dns_label, unknown_key};

/// The file as serde reads it; unknown keys are errors, so a typo never widens a rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<Spanned<RuleDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDecl {
    name: Spanned<String>,
    profiles: Spanned<Vec<Spanned<String>>>,
    resources: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

/// The policy `text` (read from `path`, which errors name) says.
pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let at = |span: std::ops::Range<usize>| Location::of_span(path.to_path_buf(), text, span);
    let invalid = |span, message: String| PolicyError::Invalid {
        at: at(span),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let message = unknown_key(e.message()).unwrap_or_else(|| e.message().to_owned());
        invalid(e.span().unwrap_or(0..0), message)
    })?;
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    let mut rules = Vec::new();
    for decl in &file.rule {
        let d = decl.get_ref();
        let name = d.name.get_ref();
        if !is_dns_label(name) {
            return Err(invalid(
                d.name.span(),
                format!(
                    "rule name `{name}` must be lower-case letters, digits and '-' (at most 63)"
                ),
            ));
        }
        if let Some(prev) = seen.get(name) {
            return Err(invalid(
                d.name.span(),
                format!("rule `{name}` is already declared at {prev}"),
            ));
        }
        seen.insert(name.clone(), at(d.name.span()));
        if d.profiles.get_ref().is_empty() {
            return Err(invalid(
                d.profiles.span(),
                format!("rule `{name}` governs no profile: expected `profiles = [\"stage\"]`"),
            ));
        }
        if d.resources.get_ref().is_empty() {
            return Err(invalid(
                d.resources.span(),
                format!(
                    "rule `{name}` covers no resource: expected `resources = [\"NAME\"]`, or \
                     [\"{ANY_RESOURCE}\"] for every resource"
                ),
            ));
        }
        for p in d.profiles.get_ref() {
            if !is_dns_label(p.get_ref()) {
                return Err(invalid(
                    p.span(),
                    format!(
                        "rule `{name}`: profile name `{}` must be lower-case letters, digits and '-'",
                        p.get_ref()
                    ),
                ));
            }
        }
        for r in d.resources.get_ref() {
            if r.get_ref() != ANY_RESOURCE && !is_dns_label(r.get_ref()) {
                return Err(invalid(
                    r.span(),
                    format!(
                        "rule `{name}`: resource `{}` must be a resource name (lower-case letters, \
                         digits and '-') or \"{ANY_RESOURCE}\"",
                        r.get_ref()
                    ),
                ));
            }
        }
        for (what, list) in [("user", &d.users), ("group", &d.groups)] {
            if let Some(empty) = list.iter().find(|v| v.get_ref().trim().is_empty()) {
                return Err(invalid(
                    empty.span(),
                    format!("rule `{name}`: a {what} name is empty"),
                ));
            }
        }
        let values = |list: &[Spanned<String>]| list.iter().map(|v| v.get_ref().clone()).collect();
        rules.push(Rule {
            name: name.clone(),
            profiles: values(d.profiles.get_ref()),
            resources: values(d.resources.get_ref()),
            users: values(&d.users),
            groups: values(&d.groups),
        });
    }
    Ok(Policy { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("policy.toml"), text)
            .unwrap_err()
            .to_string()
    }

    const EXAMPLE: &str = r#"# who may deploy what where
[[rule]]
name = "stage-consumers"
profiles = ["stage"]
resources = ["twitter-stats"]
users = ["alice", "bob"]

[[rule]]
name = "prod-admins"
profiles = ["prod", "stage"]
resources = ["*"]
groups = ["tether:admins"]
"#;

    #[test]
    fn the_documented_example_parses() {
        let p = parse(Path::new("policy.toml"), EXAMPLE).unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].name, "stage-consumers");
        assert_eq!(p.rules[0].users, ["alice", "bob"]);
        assert!(p.rules[0].groups.is_empty());
        assert_eq!(p.rules[1].profiles, ["prod", "stage"]);
        assert_eq!(p.rules[1].resources, ["*"]);
        assert_eq!(p.rules[1].groups, ["tether:admins"]);
    }

    #[test]
    fn an_empty_file_has_no_rules() {
        assert_eq!(parse(Path::new("p.toml"), "").unwrap(), Policy::default());
    }

    #[test]
    fn an_unknown_key_names_file_line_and_column_and_the_key_meant() {
        let e = err(
            "[[rule]]\nname = \"a\"\nprofiles = [\"stage\"]\nresources = [\"*\"]\nuser = [\"alice\"]\n",
        );
        assert_eq!(
            e,
            "policy.toml:5:1: unknown key `user`; did you mean `users`?"
        );
        let e = err("[[rules]]\nname = \"a\"\n");
        assert!(
            e.starts_with("policy.toml:1:3: unknown key `rules`; did you mean `rule`?"),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let e = err("[[rule]]\nname = \"a\nprofiles = []\n");
        assert!(e.starts_with("policy.toml:2:"), "{e}");
    }

    #[test]
    fn a_missing_key_or_a_wrong_type_is_located() {
        let e = err("[[rule]]\nname = \"a\"\nresources = [\"*\"]\n");
        assert!(
            e.starts_with("policy.toml:1:1:") && e.contains("missing field `profiles`"),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"a\"\nprofiles = \"stage\"\nresources = [\"*\"]\n");
        assert!(e.starts_with("policy.toml:3:12:"), "{e}");
    }

    #[test]
    fn bad_values_point_at_themselves() {
        let base = "[[rule]]\nname = \"a\"\nprofiles = [\"stage\"]\nresources = [\"*\"]\n";
        let e = err(&format!(
            "{base}[[rule]]\nname = \"a\"\nprofiles = [\"qa\"]\nresources = [\"*\"]\n"
        ));
        assert_eq!(
            e,
            "policy.toml:6:8: rule `a` is already declared at policy.toml:2:8"
        );
        let e = err("[[rule]]\nname = \"a\"\nprofiles = []\nresources = [\"*\"]\n");
        assert_eq!(
            e,
            "policy.toml:3:12: rule `a` governs no profile: expected `profiles = [\"stage\"]`"
        );
        let e = err("[[rule]]\nname = \"a\"\nprofiles = [\"stage\"]\nresources = [\"Web\"]\n");
        assert!(
            e.starts_with("policy.toml:4:14: rule `a`: resource `Web` must be"),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"A b\"\nprofiles = [\"stage\"]\nresources = [\"*\"]\n");
        assert!(e.starts_with("policy.toml:2:8: rule name `A b`"), "{e}");
        let e = err(&format!("{base}users = [\"\"]\n"));
        assert_eq!(e, "policy.toml:5:10: rule `a`: a user name is empty");
    }
}
