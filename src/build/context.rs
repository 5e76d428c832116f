//! The build context: the files of a context folder that `.dockerignore` lets through,
//! packed as the tar stream the Docker API's `/build` takes.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::dockerignore::DockerIgnore;

/// Where the Dockerfile is placed inside the tar, so a Dockerfile outside the context
/// (or excluded by `.dockerignore`) is still sent.
pub const DOCKERFILE_IN_TAR: &str = ".tether.Dockerfile";

/// Files of `context` that go into a build of `dockerfile`, relative to it, sorted.
pub fn context_files(context: &Path, dockerfile: &Path) -> io::Result<Vec<PathBuf>> {
    let ignore = DockerIgnore::for_build(context, dockerfile)?;
    let mut out = Vec::new();
    walk(context, Path::new(""), &ignore, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, rel: &Path, ignore: &DockerIgnore, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        let excluded = ignore.is_excluded(&rel);
        if kind.is_dir() {
            if excluded && !ignore.has_exceptions() {
                continue;
            }
            walk(root, &rel, ignore, out)?;
        } else if !excluded && (kind.is_file() || kind.is_symlink()) {
            out.push(rel);
        }
    }
    Ok(())
}

/// Packs the context and the Dockerfile into an uncompressed tar. Modification times are
/// zeroed so the same files always make the same bytes. A symbolic link is packed as the
/// link itself, as `docker build` does, and never read through: a link to `~/.ssh` in a
/// context must not send the key to the engine.
pub fn pack(context: &Path, dockerfile: &Path) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    for rel in context_files(context, dockerfile)? {
        let path = context.join(&rel);
        if fs::symlink_metadata(&path)?.file_type().is_symlink() {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_mode(0o777);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut header, &rel, fs::read_link(&path)?)?;
            continue;
        }
        let data = fs::read(&path)?;
        append(&mut tar, &rel, &data, file_mode(&path))?;
    }
    let df = fs::read(dockerfile)?;
    append(&mut tar, Path::new(DOCKERFILE_IN_TAR), &df, 0o644)?;
    tar.into_inner()
}

fn append(tar: &mut tar::Builder<Vec<u8>>, rel: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, rel, data)
}

#[cfg(unix)]
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0o644
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_what_dockerignore_lets_through_and_the_dockerfile() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join(".build")).unwrap();
        fs::create_dir_all(d.join("src")).unwrap();
        fs::write(d.join(".build/app"), b"binary").unwrap();
        fs::write(d.join("src/main.rs"), b"fn main(){}").unwrap();
        fs::write(d.join(".dockerignore"), "*\n!.build\n").unwrap();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(
            context_files(d, &d.join("Dockerfile")).unwrap(),
            [PathBuf::from(".build/app")]
        );
        // BuildKit's per-Dockerfile ignore file wins over the context's.
        fs::write(d.join("Dockerfile.dockerignore"), ".build\n").unwrap();
        assert_eq!(
            context_files(d, &d.join("Dockerfile")).unwrap(),
            [
                ".dockerignore",
                "Dockerfile",
                "Dockerfile.dockerignore",
                "src/main.rs"
            ]
            .map(PathBuf::from)
        );
        fs::remove_file(d.join("Dockerfile.dockerignore")).unwrap();

        let bytes = pack(d, &d.join("Dockerfile")).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                PathBuf::from(".build/app"),
                PathBuf::from(DOCKERFILE_IN_TAR)
            ]
        );
        assert_eq!(
            bytes,
            pack(d, &d.join("Dockerfile")).unwrap(),
            "packing is deterministic"
        );
    }

    #[test]
    fn a_symlink_out_of_the_context_is_packed_as_a_link_never_read_through() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("id_rsa");
        fs::write(&outside, b"PRIVATE KEY").unwrap();
        let d = t.path().join("ctx");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink(&outside, d.join("key")).unwrap();
        let bytes = pack(&d, &d.join("Dockerfile")).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "the linked file's content is not in the context"
        );
        let mut archive = tar::Archive::new(&bytes[..]);
        let link = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().as_ref() == Path::new("key"))
            .expect("the link is packed");
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(
            link.link_name().unwrap().unwrap().as_ref(),
            outside.as_path()
        );
    }
}
