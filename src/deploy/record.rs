//! The record of what `up` applied, kept in `.tether/` beside `tether.toml`.
//!
//! An object enters the record before it is sent, so an `up` stopped at any point (Ctrl-C,
//! a crash) leaves a record that covers everything it may have made. `down` deletes from
//! the record, not from the current config, so objects since removed from config go too.
//!
//! The record is kept per cluster (its server and CA, see [`crate::cluster::Cluster::id`]),
//! not per context name: two clusters whose contexts share a name (every k3s cluster is
//! `default`) never share a record, and each object's UID is kept, so `down` deletes the
//! object tether made and never a namesake someone made since.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::apply::ObjectRef;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Ownership label value of this project.
    pub session: String,
    /// The context it was last applied through, for people.
    pub context: String,
    /// The cluster's identity; the file name carries it too.
    #[serde(default)]
    pub cluster: String,
    pub objects: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub object: ObjectRef,
    pub resource: String,
    /// Whether tether made the object (it did not exist before). Objects that existed are
    /// adopted for the session but never deleted.
    pub created: bool,
    /// The object's UID once the cluster answered the apply; `None` in the moment between
    /// recording an object and sending it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl Record {
    /// Where the record of the cluster `cluster_id` lives for the project rooted at `root`.
    pub fn path(root: &Path, cluster_id: &str) -> PathBuf {
        root.join(".tether")
            .join(format!("applied-cluster-{}.json", safe(cluster_id)))
    }

    /// Where an older tether kept the record, per context name; `down` still reads it.
    pub fn legacy_path(root: &Path, context: &str) -> PathBuf {
        root.join(".tether")
            .join(format!("applied-{}.json", safe(context)))
    }

    /// Reads a record; a missing file is an empty record.
    pub fn load(path: &Path) -> io::Result<Option<Record>> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes atomically: a crash mid-write leaves the old record, never half of one.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(root) = path.parent().and_then(Path::parent) {
            crate::state_dir::ensure(root)?;
        }
        let tmp = path.with_extension("json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        fs::rename(tmp, path)
    }

    pub fn get(&self, object: &ObjectRef) -> Option<&Entry> {
        self.objects.iter().find(|e| &e.object == object)
    }

    /// Adds or updates an entry; a `created` entry stays created, and a known UID is
    /// kept until a new one is known. Returns whether anything changed.
    pub fn note(
        &mut self,
        object: ObjectRef,
        resource: &str,
        created: bool,
        uid: Option<&str>,
    ) -> bool {
        match self.objects.iter_mut().find(|e| e.object == object) {
            Some(e) => {
                let new_uid = uid.filter(|u| e.uid.as_deref() != Some(*u));
                let changed =
                    e.resource != resource || (created && !e.created) || new_uid.is_some();
                e.resource = resource.to_owned();
                e.created |= created;
                if let Some(u) = new_uid {
                    e.uid = Some(u.to_owned());
                }
                changed
            }
            None => {
                self.objects.push(Entry {
                    object,
                    resource: resource.to_owned(),
                    created,
                    uid: uid.map(str::to_owned),
                });
                true
            }
        }
    }
}

/// A context or cluster name made safe for a file name.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("api".into()),
            name: name.into(),
        }
    }

    #[test]
    fn round_trips_and_keeps_created() {
        let t = tempfile::tempdir().unwrap();
        let path = Record::path(t.path(), "0123abcd");
        assert!(path.ends_with(".tether/applied-cluster-0123abcd.json"));
        assert!(
            Record::legacy_path(t.path(), "kind-dev/x")
                .ends_with(".tether/applied-kind-dev_x.json")
        );
        assert_eq!(Record::load(&path).unwrap(), None);
        let mut r = Record {
            session: "s".into(),
            context: "kind-dev/x".into(),
            cluster: "0123abcd".into(),
            objects: vec![],
        };
        assert!(r.note(obj("a"), "users", true, None));
        assert!(!r.note(obj("a"), "users", false, None), "already noted");
        assert!(
            r.note(obj("a"), "users", false, Some("uid-1")),
            "the UID is news"
        );
        assert!(!r.note(obj("a"), "users", false, None), "a known UID stays");
        let a = r.get(&obj("a")).unwrap();
        assert!(a.created);
        assert_eq!(a.uid.as_deref(), Some("uid-1"));
        r.save(&path).unwrap();
        assert_eq!(Record::load(&path).unwrap(), Some(r));
        assert_eq!(
            fs::read_to_string(t.path().join(".tether/.gitignore")).unwrap(),
            "*\n"
        );
    }
}
