//! Removing what `up` deployed, from the record kept for this cluster: `tether down`, and
//! `tether up` left with "stop and remove" (once its session has stopped, so nothing
//! re-applies what is deleted).

use std::path::Path;

use super::Failure;
use crate::{cluster::Cluster, deploy};

/// Deletes what the project in `root` still owns in `cluster`, printing each step and a
/// summary line. `own_namespace` is a profile's, deleted with the rest.
pub async fn remove(
    cluster: &Cluster,
    root: &Path,
    delete_namespaces: bool,
    own_namespace: Option<&str>,
) -> Result<(), Failure> {
    let report = deploy::down(
        cluster.client.clone(),
        root,
        &cluster.context,
        &cluster.id,
        delete_namespaces,
        own_namespace,
        |line| println!("{line}"),
    )
    .await?;
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
            report.deleted.len(),
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
