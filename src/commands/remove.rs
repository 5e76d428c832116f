//! Removing what `up` deployed, from the record kept for this cluster: `tether down`, and
//! `tether up` left with "stop and remove" (once its session has stopped, so nothing
//! re-applies what is deleted).

use std::path::Path;

use super::Failure;
use crate::{cluster::Cluster, config::Profile, deploy};

/// Deletes what the project in `root` still owns in `cluster`, printing each step and a
/// summary line. `own_namespace` is a profile's, deleted with the rest unless a shared
/// instance there stays for other consumers. `shared` is the profile and the user of the
/// run: its shared instances are left, and removed by the last one out.
pub async fn remove(
    cluster: &Cluster,
    root: &Path,
    delete_namespaces: bool,
    own_namespace: Option<&str>,
    shared: Option<(&Profile, &str)>,
) -> Result<(), Failure> {
    let left = match shared {
        Some((profile, user)) if !profile.shared.is_empty() => {
            let me = crate::shared::Consumer {
                user: user.to_owned(),
                checkout: deploy::session_id(root),
            };
            crate::shared::leave_all(&cluster.client, profile, &me, |line| println!("{line}")).await
        }
        _ => crate::shared::LeaveReport::default(),
    };
    let own_namespace = own_namespace.filter(|ns| !left.still_used.contains(*ns));
    let skip = shared
        .map(|(p, _)| p.shared.keys().cloned().collect())
        .unwrap_or_default();
    let mut report = deploy::down(
        cluster.client.clone(),
        root,
        &cluster.context,
        &cluster.id,
        delete_namespaces,
        own_namespace,
        &skip,
        |line| println!("{line}"),
    )
    .await?;
    report.failures.extend(left.failures);
    // Counts scaled by hand belong to what was deployed.
    if let Err(e) = deploy::replicas::Overrides::clear(root) {
        println!("down: could not forget the replica counts set by hand: {e}");
    }
    if report.failures.is_empty() {
        let foreign = match report.foreign.len() {
            0 => String::new(),
            n => format!(", {n} left alone (no longer tether's)"),
        };
        println!(
            "down: {} deleted, {} kept{foreign}",
            report.deleted.len() + left.deleted,
            report.kept.len()
        );
        Ok(())
    } else {
        Err(Failure::Failed(anyhow::anyhow!(
            "down could not remove everything (run it again):\n  {}",
            report.failures.join("\n  ")
        )))
    }
}
