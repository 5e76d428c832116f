//! `tether trigger RESOURCE`: queue a rebuild and redeploy in the `up` running in a
//! project folder, as `r` does in its TUI.

use super::{Failure, status::failure};
use crate::{cli::TriggerArgs, control::Client};

pub async fn run(args: TriggerArgs) -> Result<(), Failure> {
    let TriggerArgs { target, resource } = args;
    let client = Client::for_dir(&target.dir).map_err(failure)?;
    client.trigger(&resource).await.map_err(failure)?;
    println!("rebuild of {resource} queued");
    Ok(())
}
