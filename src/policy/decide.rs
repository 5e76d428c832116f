//! The decision, pure: whether an identity may do what it asks in a profile, and if not,
//! a refusal that names every rule that could have allowed it and whom each allows, so
//! the developer knows whom to ask.
//!
//! Allow-rules: a profile no rule governs is open to everyone (projects without a policy
//! keep working); in a governed profile, a resource is allowed only by a rule that
//! governs the profile, covers the resource (or `*`) and lists the user or a group.

use std::fmt;

use super::rule::{Policy, Rule};
use crate::cluster::Identity;

/// What a command asks to do in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `up`: deploy this tether.toml resource.
    Instantiate(String),
    /// `intercept`: route this Service's traffic to the laptop.
    Intercept(String),
    /// `connect`: reach the profile's cluster from the laptop; any rule of the profile
    /// that lists the identity allows it.
    Connect,
}

impl Action {
    /// The resource the action is about, if it is about one.
    fn resource(&self) -> Option<&str> {
        match self {
            Action::Instantiate(r) | Action::Intercept(r) => Some(r),
            Action::Connect => None,
        }
    }
}

/// Why an identity may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub user: String,
    pub action: Action,
    pub profile: String,
    pub because: Because,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because {
    /// The rules that cover what was asked, each with whom it allows.
    NotListed(Vec<(String, String)>),
    /// The profile's rules, none of which covers the resource.
    NotCovered(Vec<String>),
}

/// A run's identity and the policy as it was when the run started: what decides the
/// resources of a `tether.toml` loaded again while `up` runs, without asking the cluster
/// on every save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub policy: Policy,
    pub who: Identity,
}

impl Admission {
    /// No rules: everything is allowed (a run without a policy, tests).
    pub fn open(who: Identity) -> Admission {
        Admission {
            policy: Policy::default(),
            who,
        }
    }

    /// Whether the run may deploy `resource` in `profile`.
    pub fn instantiate(&self, profile: &str, resource: &str) -> Result<(), Refusal> {
        decide(
            &self.policy,
            profile,
            &self.who,
            &Action::Instantiate(resource.to_owned()),
        )
    }
}

/// Allowed, or the refusal that says by which rules it is not.
pub fn decide(
    policy: &Policy,
    profile: &str,
    who: &Identity,
    action: &Action,
) -> Result<(), Refusal> {
    let governing: Vec<&Rule> = policy.rules.iter().filter(|r| r.governs(profile)).collect();
    if governing.is_empty() {
        return Ok(());
    }
    let covering: Vec<&Rule> = governing
        .iter()
        .copied()
        .filter(|r| action.resource().is_none_or(|res| r.covers(res)))
        .collect();
    if covering
        .iter()
        .any(|r| r.admits(&who.username, &who.groups))
    {
        return Ok(());
    }
    let because = if covering.is_empty() {
        Because::NotCovered(governing.iter().map(|r| r.name.clone()).collect())
    } else {
        Because::NotListed(
            covering
                .iter()
                .map(|r| (r.name.clone(), r.whom()))
                .collect(),
        )
    };
    Err(Refusal {
        user: who.username.clone(),
        action: action.clone(),
        profile: profile.to_owned(),
        because,
    })
}

impl std::error::Error for Refusal {}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (user, profile) = (&self.user, &self.profile);
        match &self.action {
            Action::Instantiate(r) => write!(f, "{user} may not instantiate {r} in {profile}: ")?,
            Action::Intercept(s) => write!(f, "{user} may not intercept {s} in {profile}: ")?,
            Action::Connect => write!(f, "{user} may not connect to {profile}: ")?,
        }
        match &self.because {
            Because::NotListed(rules) => {
                let each: Vec<String> = rules
                    .iter()
                    .map(|(name, whom)| format!("rule {name} allows {whom}"))
                    .collect();
                write!(f, "{}", each.join("; "))
            }
            Because::NotCovered(names) => {
                let what = self.action.resource().unwrap_or_default();
                match names.as_slice() {
                    [one] => write!(f, "rule {one} governs {profile} and does not name {what}"),
                    many => write!(
                        f,
                        "rules {} govern {profile} and none names {what}",
                        many.join(", ")
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        name: &str,
        profiles: &[&str],
        resources: &[&str],
        users: &[&str],
        groups: &[&str],
    ) -> Rule {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        Rule {
            name: name.into(),
            profiles: v(profiles),
            resources: v(resources),
            users: v(users),
            groups: v(groups),
        }
    }

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            username: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn stage() -> Policy {
        Policy {
            rules: vec![rule(
                "stage-consumers",
                &["stage"],
                &["twitter-stats"],
                &["alice", "bob"],
                &[],
            )],
        }
    }

    fn up(r: &str) -> Action {
        Action::Instantiate(r.into())
    }

    #[test]
    fn a_listed_user_is_allowed() {
        let p = stage();
        assert_eq!(
            decide(
                &p,
                "stage",
                &who("alice", &["tether:developers"]),
                &up("twitter-stats")
            ),
            Ok(())
        );
    }

    #[test]
    fn a_listed_group_allows_its_members() {
        let p = Policy {
            rules: vec![rule("admins", &["prod"], &["*"], &[], &["tether:admins"])],
        };
        assert_eq!(
            decide(
                &p,
                "prod",
                &who("dora", &["tether:admins", "system:authenticated"]),
                &up("web")
            ),
            Ok(())
        );
        assert!(decide(&p, "prod", &who("dora", &["tether:developers"]), &up("web")).is_err());
    }

    #[test]
    fn a_refusal_names_the_rule_and_whom_it_allows() {
        let e = decide(
            &stage(),
            "stage",
            &who("carol", &["tether:developers"]),
            &up("twitter-stats"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "carol may not instantiate twitter-stats in stage: rule stage-consumers allows alice, bob"
        );
    }

    #[test]
    fn several_rules_are_each_named_with_whom_they_allow() {
        let mut p = stage();
        p.rules.push(rule(
            "stage-all",
            &["stage", "qa"],
            &["*"],
            &[],
            &["tether:admins"],
        ));
        p.rules
            .push(rule("qa-only", &["qa"], &["*"], &["carol"], &[]));
        let e = decide(&p, "stage", &who("carol", &[]), &up("twitter-stats")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "carol may not instantiate twitter-stats in stage: rule stage-consumers allows alice, bob; \
             rule stage-all allows group tether:admins"
        );
        assert_eq!(
            decide(&p, "qa", &who("carol", &[]), &up("anything")),
            Ok(())
        );
    }

    #[test]
    fn a_profile_no_rule_governs_is_open() {
        assert_eq!(
            decide(&stage(), "dev", &who("carol", &[]), &up("twitter-stats")),
            Ok(())
        );
        assert_eq!(
            decide(&Policy::default(), "stage", &who("carol", &[]), &up("x")),
            Ok(())
        );
    }

    #[test]
    fn a_resource_no_rule_of_a_governed_profile_names_is_refused() {
        let e = decide(&stage(), "stage", &who("alice", &[]), &up("orders")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alice may not instantiate orders in stage: rule stage-consumers governs stage and does not name orders"
        );
    }

    #[test]
    fn intercept_and_connect_read_the_same_rules() {
        let p = stage();
        let e = decide(
            &p,
            "stage",
            &who("carol", &[]),
            &Action::Intercept("twitter-stats".into()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "carol may not intercept twitter-stats in stage: rule stage-consumers allows alice, bob"
        );
        assert_eq!(
            decide(&p, "stage", &who("bob", &[]), &Action::Connect),
            Ok(())
        );
        let e = decide(&p, "stage", &who("carol", &[]), &Action::Connect).unwrap_err();
        assert_eq!(
            e.to_string(),
            "carol may not connect to stage: rule stage-consumers allows alice, bob"
        );
    }

    #[test]
    fn a_rule_that_lists_no_one_says_so() {
        let p = Policy {
            rules: vec![rule("frozen", &["stage"], &["*"], &[], &[])],
        };
        let e = decide(&p, "stage", &who("alice", &[]), &up("web")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alice may not instantiate web in stage: rule frozen allows no one"
        );
    }
}
