//! The validated policy: allow-rules, each naming the profiles it governs, the resources
//! it covers and the users and groups it lets deploy them.

use serde::Serialize;

/// The resource name that stands for every resource of a profile.
pub const ANY_RESOURCE: &str = "*";

/// Every rule of the cluster's policy, in file order (refusals name them in that order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Named in refusals, so a developer knows which rule to ask about.
    pub name: String,
    /// The profiles this rule governs: a profile no rule names is open to everyone.
    pub profiles: Vec<String>,
    /// tether.toml resource names (or Service names, for intercepts); `*` for all.
    pub resources: Vec<String>,
    /// Users as the API server names them (a certificate's CN, a token's user).
    pub users: Vec<String>,
    /// Groups as the API server names them (`tether:admins`).
    pub groups: Vec<String>,
}

impl Rule {
    pub fn governs(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p == profile)
    }

    pub fn covers(&self, resource: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r == ANY_RESOURCE || r == resource)
    }

    pub fn admits(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.groups.iter().any(|g| groups.contains(g))
    }

    /// "alice, bob, group tether:admins", or "no one", for refusals.
    pub fn whom(&self) -> String {
        let all: Vec<String> = self
            .users
            .iter()
            .cloned()
            .chain(self.groups.iter().map(|g| format!("group {g}")))
            .collect();
        if all.is_empty() {
            "no one".to_owned()
        } else {
            all.join(", ")
        }
    }
}
