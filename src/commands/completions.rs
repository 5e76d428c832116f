//! `tether completions SHELL`: the shell's completion script on stdout, generated from
//! the same clap definition that parses the command line, so it never lags behind it.

use clap::CommandFactory as _;
use clap_complete::Shell;

use super::{Failure, output};
use crate::cli::Cli;

pub fn run(shell: Shell) -> Result<(), Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tether", &mut script);
    output::write_stdout(&script)?;
    Ok(())
}
