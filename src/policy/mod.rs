//! Rules: which users and groups may deploy which resources into which profiles. An
//! admin keeps them in the cluster (ConfigMap `tether/tether-policy`, readable by every
//! user, writable only by admins), so no developer's laptop decides for itself; `up`,
//! `intercept` and `connect` read them before they change anything.
//!
//! Layout:
//! - [`rule`]: the validated policy, the type the rest of tether sees.
//! - [`file`]: a policy file's text → a [`Policy`], every error at `file:line:col`.
//! - [`decide`]: the pure decision (identity, profile, what is asked) → allowed or a
//!   [`Refusal`] that names the rules and whom they allow.
//! - [`store`]: the ConfigMap: reading it (missing: no rules; forbidden: refuse) and
//!   writing it.
//! - [`error`]: what can go wrong, and which of it is bad input.

mod decide;
mod error;
mod file;
mod rule;
mod store;

pub use self::{
    decide::{Action, Admission, Refusal, decide},
    error::PolicyError,
    file::parse,
    rule::{ANY_RESOURCE, Policy, Rule},
    store::{CONFIG_MAP, HOLDS_POLICY, KEY, Stored, read, write},
};
