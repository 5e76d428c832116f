//! The agent's image: `FROM scratch` plus one static `tether-agent` binary (the crate
//! `crates/tether-agent`: the traffic agent, the connect agent and live update's
//! supervisor), pushed to the cluster's registry once per binary (the tag is a digest of
//! the binary).
//!
//! Where the binary comes from, first match wins:
//! 1. `TETHER_AGENT_IMAGE`: a published image; nothing is built.
//! 2. `TETHER_AGENT_BINARY`: a static Linux x86-64 tether-agent binary.
//! 3. [`BESIDE`] next to the running executable: the static build `scripts/install` puts
//!    there once, so no intercept or live-update deploy waits for a compiler.
//! 4. A static build from the source tree this binary was built from
//!    (`cargo build --release --target x86_64-unknown-linux-gnu -p tether-agent` with
//!    `+crt-static`): how a development build still gets an agent. It prints how long it
//!    has been building, every few seconds.
//!
//! [`push_binary`] is the image half alone, for any static binary (`tether doctor`'s
//! probe uses it when step 4 would be needed, rather than wait for a compiler).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::InterceptError;
use crate::{
    build::{Engine, Registry, context::DOCKERFILE_IN_TAR},
    live::wire::AGENT_IN_IMAGE,
};

const REPOSITORY: &str = "tether-agent";
/// The static agent `scripts/install` puts next to the tether it installs.
pub const BESIDE: &str = "tether-agent";
/// The package and binary of the agent in this workspace.
const AGENT_PACKAGE: &str = "tether-agent";
/// How often a static build from source says it is still going.
const BUILD_TICK: std::time::Duration = std::time::Duration::from_secs(10);
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Makes sure the registry holds the agent image; returns the reference pods pull.
pub async fn ensure(
    registry: &Registry,
    mut progress: impl FnMut(&str) + Send,
) -> Result<String, InterceptError> {
    if let Ok(image) = std::env::var("TETHER_AGENT_IMAGE") {
        if !image.is_empty() {
            return Ok(image);
        }
    }
    let binary = static_binary(&mut progress).await?;
    let bytes = tokio::fs::read(&binary)
        .await
        .map_err(|source| InterceptError::AgentImageIo {
            what: format!("cannot read {}", binary.display()),
            source,
        })?;
    push_binary(registry, REPOSITORY, &bytes, progress).await
}

/// Makes sure `repository` in the registry holds an image of the static `binary` alone
/// (tagged by its digest, so it is built and pushed once); returns the reference pods
/// pull. Its entrypoint is the binary, as [`AGENT_IN_IMAGE`].
pub async fn push_binary(
    registry: &Registry,
    repository: &str,
    binary: &[u8],
    mut progress: impl FnMut(&str) + Send,
) -> Result<String, InterceptError> {
    let tag = format!("tether-{}", &hex::encode(Sha256::digest(binary))[..20]);
    let reference = format!("{}/{repository}:{tag}", registry.pull);
    if registry
        .has_tag(repository, &tag)
        .await
        .map_err(agent_err)?
    {
        return Ok(reference);
    }
    progress(&format!("building the image {repository}:{tag}"));
    let tar = context(binary).map_err(|source| InterceptError::AgentImageIo {
        what: "cannot make its build context".into(),
        source,
    })?;
    let engine = Engine::connect().await.map_err(agent_err)?;
    let pushed = format!("{}/{repository}", registry.push);
    engine
        .build(tar, &format!("{pushed}:{tag}"), &mut progress)
        .await
        .map_err(agent_err)?;
    let credentials = registry
        .access()
        .push_credentials()
        .await
        .map_err(|e| agent_err(e.into()))?;
    engine
        .push(&pushed, &tag, credentials, &mut progress)
        .await
        .map_err(agent_err)?;
    Ok(reference)
}

fn agent_err(e: crate::build::BuildError) -> InterceptError {
    InterceptError::AgentBuild(e)
}

/// The build context: the Dockerfile and the binary.
fn context(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let dockerfile = format!(
        "FROM scratch\nCOPY {AGENT_PACKAGE} {AGENT_IN_IMAGE}\nENTRYPOINT [\"{AGENT_IN_IMAGE}\"]\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        (DOCKERFILE_IN_TAR, dockerfile.as_bytes(), 0o644),
        (AGENT_PACKAGE, binary, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()
}

/// Whether the agent image is at hand without compiling anything: a published image, or
/// a static binary found by steps 1-4 of the module's list.
pub fn ready_without_build() -> bool {
    std::env::var("TETHER_AGENT_IMAGE").is_ok_and(|i| !i.is_empty())
        || matches!(prebuilt_binary(), Ok(Some(_)))
}

/// Steps 2-3 of the module's list: the static binary that needs no build, if any.
fn prebuilt_binary() -> Result<Option<PathBuf>, InterceptError> {
    if let Ok(path) = std::env::var("TETHER_AGENT_BINARY") {
        let path = PathBuf::from(path);
        return match elf_kind(&path) {
            ElfKind::StaticX86_64 => Ok(Some(path)),
            other => Err(InterceptError::AgentImage(format!(
                "TETHER_AGENT_BINARY={} is {other}, not a static Linux x86-64 tether-agent",
                path.display()
            ))),
        };
    }
    let exe = std::env::current_exe().map_err(|source| InterceptError::AgentImageIo {
        what: "cannot find this executable".into(),
        source,
    })?;
    Ok(static_beside(&exe))
}

async fn static_binary(
    progress: &mut (impl FnMut(&str) + Send),
) -> Result<PathBuf, InterceptError> {
    if let Some(path) = prebuilt_binary()? {
        return Ok(path);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    if source
        .join("crates")
        .join(AGENT_PACKAGE)
        .join("Cargo.toml")
        .is_file()
    {
        return build_from_source(source, progress).await;
    }
    Err(InterceptError::AgentImage(format!(
        "no agent binary: none beside this tether ({BESIDE}) and no source tree to build one \
         from; set TETHER_AGENT_IMAGE to a published tether-agent image, or \
         TETHER_AGENT_BINARY to a static Linux x86-64 tether-agent"
    )))
}

/// The static agent installed next to `exe`, if there is one.
fn static_beside(exe: &Path) -> Option<PathBuf> {
    let beside = exe.with_file_name(BESIDE);
    (elf_kind(&beside) == ElfKind::StaticX86_64).then_some(beside)
}

/// `cargo build` of a static tether-agent in its source tree; cargo makes it a no-op when
/// nothing changed.
async fn build_from_source(
    source: &Path,
    progress: &mut (impl FnMut(&str) + Send),
) -> Result<PathBuf, InterceptError> {
    progress(&format!(
        "building a static tether-agent for the agent image (cargo; a minute or two the \
         first time, never again after `scripts/install`, which puts {BESIDE} beside tether)"
    ));
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !flags.contains("crt-static") {
        flags = format!("{flags} -C target-feature=+crt-static")
            .trim()
            .to_owned();
    }
    let child = tokio::process::Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            AGENT_PACKAGE,
            "--bin",
            AGENT_PACKAGE,
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(source)
        .env("RUSTFLAGS", flags)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| InterceptError::AgentImageIo {
            what: "cannot run cargo".into(),
            source,
        })?;
    let started = std::time::Instant::now();
    let mut done = std::pin::pin!(child.wait_with_output());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + BUILD_TICK, BUILD_TICK);
    let out = loop {
        tokio::select! {
            out = &mut done => break out,
            _ = tick.tick() => progress(&format!(
                "still building the static tether-agent: {}s", started.elapsed().as_secs()
            )),
        }
    }
    .map_err(|source| InterceptError::AgentImageIo {
        what: "cannot run cargo".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(InterceptError::AgentImage(format!(
            "the static agent build failed ({})",
            out.status
        )));
    }
    // Cargo names the binary it made; that follows CARGO_TARGET_DIR and config files.
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == AGENT_PACKAGE)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| {
            InterceptError::AgentImage("cargo built no tether-agent executable".into())
        })?;
    match elf_kind(&path) {
        ElfKind::StaticX86_64 => Ok(path),
        other => Err(InterceptError::AgentImage(format!(
            "{} came out {other}, not static",
            path.display()
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    StaticX86_64,
    DynamicX86_64,
    Other,
    Unreadable,
}

impl std::fmt::Display for ElfKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ElfKind::StaticX86_64 => "a static Linux x86-64 binary",
            ElfKind::DynamicX86_64 => "dynamically linked",
            ElfKind::Other => "not a Linux x86-64 ELF",
            ElfKind::Unreadable => "unreadable",
        })
    }
}

/// Whether `path` is an x86-64 ELF and whether it names a dynamic loader (PT_INTERP).
pub fn elf_kind(path: &Path) -> ElfKind {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return ElfKind::Unreadable;
    };
    let mut h = [0u8; 64];
    if f.read_exact(&mut h).is_err() {
        return ElfKind::Other;
    }
    // 64-bit, little-endian, machine 62 (x86-64).
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 || u16::from_le_bytes([h[18], h[19]]) != 62 {
        return ElfKind::Other;
    }
    let phoff = u64::from_le_bytes(h[32..40].try_into().unwrap_or_default());
    let phentsize = u16::from_le_bytes([h[54], h[55]]) as usize;
    let phnum = u16::from_le_bytes([h[56], h[57]]) as usize;
    if phentsize < 4 || f.seek(SeekFrom::Start(phoff)).is_err() {
        return ElfKind::Other;
    }
    let mut table = vec![0u8; phentsize * phnum];
    if f.read_exact(&mut table).is_err() {
        return ElfKind::Other;
    }
    const PT_INTERP: u32 = 3;
    let interp = table
        .chunks(phentsize)
        .any(|ph| u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP);
    if interp {
        ElfKind::DynamicX86_64
    } else {
        ElfKind::StaticX86_64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_is_a_dynamic_x86_64_elf_and_text_is_not_an_elf() {
        let exe = std::env::current_exe().unwrap();
        let kind = elf_kind(&exe);
        if cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            not(target_feature = "crt-static")
        )) {
            assert_eq!(kind, ElfKind::DynamicX86_64);
        }
        assert_eq!(
            elf_kind(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("Cargo.toml")
                    .as_path()
            ),
            ElfKind::Other
        );
        assert_eq!(
            elf_kind(Path::new("/nonexistent/tether")),
            ElfKind::Unreadable
        );
    }

    #[test]
    fn a_static_agent_beside_the_executable_is_the_agent_and_a_dynamic_one_is_not() {
        // busybox-static (scripts/test installs it) stands in for a static tether-agent.
        if elf_kind(Path::new("/bin/busybox")) != ElfKind::StaticX86_64 {
            eprintln!("no static /bin/busybox here: nothing to stand in for {BESIDE}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tether");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        assert_eq!(static_beside(&exe), None, "nothing beside it yet");
        std::fs::copy(&exe, dir.path().join(BESIDE)).unwrap();
        assert_eq!(static_beside(&exe), None, "a dynamic binary is no agent");
        std::fs::copy("/bin/busybox", dir.path().join(BESIDE)).unwrap();
        assert_eq!(static_beside(&exe), Some(dir.path().join(BESIDE)));
    }

    #[test]
    fn the_context_holds_the_dockerfile_and_an_executable_binary() {
        let tar = context(b"\x7fELF...").unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (DOCKERFILE_IN_TAR.to_owned(), 0o644),
                (AGENT_PACKAGE.to_owned(), 0o755)
            ]
        );
    }
}
