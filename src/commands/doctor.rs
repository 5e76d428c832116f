//! `tether doctor`: runs the checks of [`crate::doctor`] and prints each line as it is
//! known (or, with `-o json`, the whole report at the end). Exit 0 when no check failed,
//! 1 when one did, 2 for a malformed tether.toml, 130 when interrupted.

use tokio_util::sync::CancellationToken;

use super::{
    Failure,
    output::{self, Shape},
};
use crate::{
    cli::{DoctorArgs, Output},
    doctor::{self, DoctorError, Options},
};

pub async fn run(args: DoctorArgs) -> Result<(), Failure> {
    let options = Options {
        dir: args.target.dir,
        context: args.target.context,
    };
    // Ctrl-C or SIGTERM stops the check that runs (the probe pod is still deleted).
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            cancel.cancel();
        }
    });
    let text = args.output == Output::Text;
    let report = doctor::diagnose(&options, &cancel, |line| {
        if text {
            println!("{}", line.text());
        }
    })
    .await
    .map_err(|e| match e {
        DoctorError::Config(e) => Failure::BadInput(e.into()),
        other => Failure::Failed(other.into()),
    })?;
    if let Some(format) = output::machine(args.output) {
        output::print(format, Shape::Document, &report.json())
            .map_err(|e| Failure::Failed(e.into()))?;
    }
    if cancel.is_cancelled() {
        eprintln!("tether doctor: interrupted");
        return Err(Failure::Exit(130));
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Exit(1))
    }
}
