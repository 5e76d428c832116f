//! Shared instances: a resource a profile declares `shared` runs once for every consumer
//! of the profile. The first `up` that needs it deploys it, the next reuses it (same
//! digest: no redeploy; another: refused with the difference, unless the owner asks), and
//! the last `down` removes it.
//!
//! Layout:
//! - [`record`]: what the cluster keeps of one instance (owner, digest, objects,
//!   consumers), and its encoding as the data of ConfigMap `tether-shared-RESOURCE` in
//!   the instance's namespace, so every laptop sees the same consumers.
//! - [`decide`]: joining and leaving an instance, and the difference of two renderings,
//!   as pure functions of that record.
//! - [`store`]: the ConfigMap read, created (exactly one creator wins a race) and
//!   updated optimistically on its resourceVersion, retried on a conflict.
//! - [`leave`]: `down`'s part: leave each instance, the last one out deletes it.
//! - [`error`]: what refuses a join (bad input) and what fails one.

mod decide;
mod error;
mod leave;
mod record;
mod store;

pub use self::{
    decide::{Joined, Left, difference},
    error::SharedError,
    leave::{LeaveReport, leave_all},
    record::{Consumer, Instance, Part, config_map_name, label, parts_of},
    store::Store,
};
