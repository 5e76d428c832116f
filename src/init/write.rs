//! The whole of `tether init` for a folder, and the file on disk.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use super::{InitError, plan, render, scan};
use crate::config::FILE_NAME;

/// The `tether.toml` text `tether init` would write for `dir` (scan → plan → render).
pub fn generate(dir: &Path) -> Result<String, InitError> {
    let found = scan(dir)?;
    Ok(render(&plan(&found)))
}

/// Writes `text` as `dir/tether.toml` and returns its path. An existing file is kept
/// unless `force`; the text goes to a temporary file renamed into place, so an
/// interrupted write never leaves half a config.
pub fn write(dir: &Path, text: &str, force: bool) -> Result<PathBuf, InitError> {
    let path = dir.join(FILE_NAME);
    if !force && path.exists() {
        return Err(InitError::Exists { path });
    }
    let failed = |source| InitError::Write {
        path: path.clone(),
        source,
    };
    let tmp = dir.join(format!(".{FILE_NAME}.init-{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(failed(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(FILE_NAME), "# mine\n").unwrap();
        let e = write(t.path(), "# new\n", false).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("--force"), "{e}");
        assert_eq!(
            fs::read_to_string(t.path().join(FILE_NAME)).unwrap(),
            "# mine\n"
        );
        write(t.path(), "# new\n", true).unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join(FILE_NAME)).unwrap(),
            "# new\n"
        );
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    /// The shop's users folder without its tether.toml, copied where no `../base` is.
    fn users_copy() -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/users");
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("users");
        fs::create_dir_all(dst.join("k8s")).unwrap();
        for f in [
            "Dockerfile",
            "Dockerfile.tether",
            "Dockerfile.dockerignore",
            ".dockerignore",
        ] {
            fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        for f in ["k8s/deployment.yaml", "k8s/service.yaml"] {
            fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        t
    }

    #[test]
    fn the_shops_users_folder_gets_a_file_the_config_loader_takes() {
        let t = users_copy();
        let dir = t.path().join("users");
        let text = generate(&dir).unwrap();
        insta::assert_snapshot!(text);
        let path = write(&dir, &text, false).unwrap();
        let project = crate::config::load(&path).unwrap();
        let image = &project.images["users"];
        assert!(
            image.dockerfile.ends_with("users/Dockerfile.tether"),
            "{image:?}"
        );
        let users = &project.resources["users"];
        assert_eq!(users.namespace, "api");
        assert_eq!(users.manifests.len(), 2);
        assert_eq!(
            users.port_forwards,
            [crate::config::PortForward {
                local: 8080,
                remote: 8080
            }]
        );
        assert_eq!(project.resources.len(), 1);
    }

    #[test]
    fn a_folder_of_several_workloads_and_shared_objects_loads_too() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("My.App");
        let put = |rel: &str, text: &str| {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        put("Dockerfile.api", "FROM scratch\n");
        put("Dockerfile.worker", "FROM scratch\n");
        put(
            "manifests/all.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: my-app\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: my-app\n",
        );
        put(
            "manifests/api.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: my-app\n\
             spec:\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n\
             \x20       - {name: api, image: \"api:dev\", ports: [{name: web, containerPort: 3000}]}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: my-app\n\
             spec:\n  selector: {app: api}\n  ports: [{port: 443, targetPort: web}, {port: 53, protocol: UDP}]\n",
        );
        put(
            "deploy/worker.yaml",
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: api\n  namespace: my-app\n\
             spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n\
             \x20           - {name: w, image: \"localhost:5000/team/worker:1\"}\n",
        );
        let text = generate(&dir).unwrap();
        let path = write(&dir, &text, false).unwrap();
        let project = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let names: Vec<_> = project.resources.keys().map(String::as_str).collect();
        assert_eq!(names, ["api", "api-cronjob", "my-app-base"], "{text}");
        assert_eq!(project.resources["api"].depends_on, ["my-app-base"]);
        assert_eq!(
            project.resources["api"].port_forwards,
            [crate::config::PortForward {
                local: 8443,
                remote: 3000
            }]
        );
        assert_eq!(project.images.keys().collect::<Vec<_>>(), ["api", "worker"]);
        assert!(text.contains("write `image: worker` there"), "{text}");
        assert!(text.contains("UDP"), "{text}");
    }
}
