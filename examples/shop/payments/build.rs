//! Build script of the payments service.
//!
//! Without features it does nothing. Under the `solution` feature it applies
//! `workspace-demo/solutions/payments-already-paid.patch` to `src/pay.rs`
//! and writes the result to `$OUT_DIR/pay.rs`, which `src/lib.rs` compiles
//! in place of `src/pay.rs`. If the patch no longer applies the build fails:
//! the patch in the workshop's hands and the `solution` build are always
//! the same change.

#[cfg(feature = "solution")]
#[path = "solution_patch.rs"]
mod solution_patch;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "solution")]
    if let Err(e) = solution::write_patched_handler() {
        eprintln!("error: payments --features solution: {e}");
        std::process::exit(1);
    }
}

#[cfg(feature = "solution")]
mod solution {
    use std::{env, fs, path::PathBuf};

    use crate::solution_patch::{self, Outcome};

    pub fn write_patched_handler() -> Result<(), String> {
        // Cargo always sets these for build scripts.
        let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

        let patch_path = crate_dir.join(solution_patch::PATCH);
        let source_path = crate_dir.join(solution_patch::TARGET);
        println!("cargo::rerun-if-changed=solution_patch.rs");
        println!("cargo::rerun-if-changed={}", patch_path.display());
        println!("cargo::rerun-if-changed={}", source_path.display());

        let read = |path: &PathBuf| {
            fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let patch = read(&patch_path)?;
        let source = read(&source_path)?;
        let handler = match solution_patch::apply(&patch, &source)? {
            Outcome::Patched(patched) => patched,
            Outcome::AlreadyApplied => {
                println!(
                    "cargo::warning=src/pay.rs already contains the solution \
                     (patch applied by hand?): building it as it is"
                );
                source
            }
        };
        let out = out_dir.join("pay.rs");
        fs::write(&out, solution_patch::includable(&handler))
            .map_err(|e| format!("cannot write {}: {e}", out.display()))
    }
}
