//! The record of what `up` applied, kept in `.tether/` beside `tether.toml`.
//!
//! An object enters the record before it is sent, so an `up` stopped at any point (Ctrl-C,
//! a crash) leaves a record that covers everything it may have made. `down` deletes from
//! the record, not from the current config, so objects since removed from config go too.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::apply::ObjectRef;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Ownership label value of this project in this context.
    pub session: String,
    pub context: String,
    pub objects: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub object: ObjectRef,
    pub resource: String,
    /// Whether tether made the object (it did not exist before). Objects that existed are
    /// adopted for the session but never deleted.
    pub created: bool,
}

impl Record {
    /// Where the record of `context` lives for the project rooted at `root`.
    pub fn path(root: &Path, context: &str) -> PathBuf {
        let safe: String = context
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        root.join(".tether").join(format!("applied-{safe}.json"))
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
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
            // The folder is tether's; keep it out of the user's commits.
            let ignore = dir.join(".gitignore");
            if !ignore.exists() {
                fs::write(ignore, "*\n")?;
            }
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

    /// Adds or updates an entry; a `created` entry stays created.
    pub fn note(&mut self, object: ObjectRef, resource: &str, created: bool) -> bool {
        match self.objects.iter_mut().find(|e| e.object == object) {
            Some(e) => {
                let changed = e.resource != resource || (created && !e.created);
                e.resource = resource.to_owned();
                e.created |= created;
                changed
            }
            None => {
                self.objects.push(Entry {
                    object,
                    resource: resource.to_owned(),
                    created,
                });
                true
            }
        }
    }
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
        let path = Record::path(t.path(), "kind-dev/x");
        assert!(path.ends_with(".tether/applied-kind-dev_x.json"));
        assert_eq!(Record::load(&path).unwrap(), None);
        let mut r = Record {
            session: "s".into(),
            context: "kind-dev/x".into(),
            objects: vec![],
        };
        assert!(r.note(obj("a"), "users", true));
        assert!(!r.note(obj("a"), "users", false), "already noted");
        assert!(r.get(&obj("a")).unwrap().created);
        r.save(&path).unwrap();
        assert_eq!(Record::load(&path).unwrap(), Some(r));
        assert_eq!(
            fs::read_to_string(t.path().join(".tether/.gitignore")).unwrap(),
            "*\n"
        );
    }
}
