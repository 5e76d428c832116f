//! `tether init`: writes a first `tether.toml` for a folder from its Dockerfiles and
//! manifests, and says what it wrote.

use super::{Classified, Failure};
use crate::{
    cli::InitArgs,
    config,
    init::{self, InitError},
};

impl Classified for InitError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

pub async fn run(args: InitArgs) -> Result<(), Failure> {
    let path = args.dir.join(config::FILE_NAME);
    // Refuse before reading anything, so the answer does not depend on the folder's state.
    if !args.force && path.exists() {
        return Err(Failure::classify(InitError::Exists { path }));
    }
    let text = init::generate(&args.dir).map_err(Failure::classify)?;
    let path = init::write(&args.dir, &text, args.force).map_err(Failure::classify)?;
    // The file must load as `up` will load it; say so now rather than at `up`.
    let project = config::load(&path).map_err(|e| {
        Failure::Failed(anyhow::anyhow!(e).context("the written file does not load"))
    })?;
    println!(
        "wrote {} ({} images, {} resources); `tether up` there builds and deploys them",
        path.display(),
        project.images.len(),
        project.resources.len()
    );
    Ok(())
}
