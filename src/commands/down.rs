//! `tether down`: delete what `up` created, from the record, in the same context.

use super::{Failure, up::load};
use crate::{cli::Target, cluster::Cluster, deploy};

pub async fn run(target: Target, delete_namespaces: bool) -> Result<(), Failure> {
    let project = load(&target)?;
    let cluster = Cluster::connect(target.context.as_deref()).await?;
    let report = deploy::down(
        cluster.client.clone(),
        &project.root,
        &cluster.context,
        delete_namespaces,
        |line| println!("{line}"),
    )
    .await?;
    if report.failures.is_empty() {
        println!(
            "down: {} deleted, {} kept",
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
