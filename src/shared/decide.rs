//! Joining and leaving a shared instance, decided from its record alone, so every rule
//! is tested without a cluster: the store reads the record, asks here, and writes back
//! what is decided (retrying the whole on a conflict).

use super::record::{Consumer, Instance, Part};

/// What a join did to the instance, for the run to act on and say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// There was none: this run made the record and deploys the objects.
    Created,
    /// It runs this very rendering: nothing is applied.
    Reused,
    /// Its owner deploys another rendering over it.
    Redeployed,
}

/// What joining decides, given the record as read (`None`: there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Join {
    /// Write this record (create it, or replace the one read) and go on as `Joined`.
    Write(Instance, Joined),
    /// The same rendering, already a consumer: nothing to write.
    Reuse,
    /// Another rendering, and `me` is not the owner: the difference in words.
    Refuse(Vec<String>),
}

pub(super) fn join(existing: Option<&Instance>, me: &Consumer, parts: &[Part]) -> Join {
    let digest = Instance::digest_of(parts);
    let Some(inst) = existing else {
        return Join::Write(
            Instance {
                owner: me.user.clone(),
                digest,
                parts: parts.to_vec(),
                consumers: vec![me.clone()],
            },
            Joined::Created,
        );
    };
    let mut next = inst.clone();
    let joins = !next.consumers.contains(me);
    if joins {
        next.consumers.push(me.clone());
    }
    if inst.digest == digest {
        return if joins {
            Join::Write(next, Joined::Reused)
        } else {
            Join::Reuse
        };
    }
    if inst.owner != me.user {
        return Join::Refuse(difference(&inst.parts, parts));
    }
    next.digest = digest;
    next.parts = parts.to_vec();
    Join::Write(next, Joined::Redeployed)
}

/// What leaving decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Others still use it: write the record without `me` (who may not have been one).
    Remain(Instance),
    /// `me` was the last: delete the record, then its objects.
    Last(Instance),
}

pub(super) fn leave(inst: &Instance, me: &Consumer) -> Left {
    let mut next = inst.clone();
    next.consumers.retain(|c| c != me);
    if next.consumers.is_empty() {
        Left::Last(next)
    } else {
        Left::Remain(next)
    }
}

/// How rendering `new` differs from the running `old`, one line per object: added,
/// removed, or changed (with the images that changed).
pub fn difference(old: &[Part], new: &[Part]) -> Vec<String> {
    let mut out = Vec::new();
    for n in new {
        match old.iter().find(|o| o.object == n.object) {
            None => out.push(format!("{}: not in the running instance", n.object)),
            Some(o) if o.hash == n.hash => {}
            Some(o) if o.images != n.images => out.push(format!(
                "{}: images {} running, {} here",
                n.object,
                words(&o.images),
                words(&n.images)
            )),
            Some(_) => out.push(format!("{}: its spec differs (same images)", n.object)),
        }
    }
    for o in old
        .iter()
        .filter(|o| !new.iter().any(|n| n.object == o.object))
    {
        out.push(format!("{}: running, not in this rendering", o.object));
    }
    out
}

fn words(images: &[String]) -> String {
    if images.is_empty() {
        "none".to_owned()
    } else {
        images.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::ObjectRef;

    fn part(kind: &str, name: &str, hash: &str, image: &str) -> Part {
        Part {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: kind.into(),
                namespace: Some("stage".into()),
                name: name.into(),
            },
            hash: hash.into(),
            images: if image.is_empty() {
                vec![]
            } else {
                vec![image.into()]
            },
            uid: None,
        }
    }

    fn who(user: &str, checkout: &str) -> Consumer {
        Consumer {
            user: user.into(),
            checkout: checkout.into(),
        }
    }

    fn created(parts: &[Part]) -> Instance {
        match join(None, &who("alice", "a1"), parts) {
            Join::Write(i, Joined::Created) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_creates_the_next_reuses_and_a_second_checkout_counts_twice() {
        let parts = [part("Deployment", "pipeline", "h1", "busybox:1.36")];
        let inst = created(&parts);
        assert_eq!(inst.owner, "alice");
        assert_eq!(inst.consumers, [who("alice", "a1")]);
        assert_eq!(join(Some(&inst), &who("alice", "a1"), &parts), Join::Reuse);
        let Join::Write(with_bob, Joined::Reused) = join(Some(&inst), &who("bob", "b1"), &parts)
        else {
            panic!("bob reuses")
        };
        assert_eq!(with_bob.consumers, [who("alice", "a1"), who("bob", "b1")]);
        assert_eq!(with_bob.digest, inst.digest);
        let Join::Write(twice, Joined::Reused) = join(Some(&with_bob), &who("alice", "a2"), &parts)
        else {
            panic!("alice's second checkout joins")
        };
        assert_eq!(twice.consumers.len(), 3);
        assert_eq!(twice.consumers_in_words(), "alice, bob, alice");
    }

    #[test]
    fn another_rendering_is_refused_unless_the_owner_redeploys() {
        let running = [
            part("Deployment", "pipeline", "h1", "busybox:1.36"),
            part("ConfigMap", "settings", "c1", ""),
        ];
        let inst = created(&running);
        let changed = [
            part("Deployment", "pipeline", "h2", "busybox:1.37"),
            part("Service", "pipeline", "s1", ""),
        ];
        let Join::Refuse(diff) = join(Some(&inst), &who("bob", "b1"), &changed) else {
            panic!("bob may not change alice's instance")
        };
        assert_eq!(
            diff,
            [
                "Deployment/pipeline in stage: images busybox:1.36 running, busybox:1.37 here",
                "Service/pipeline in stage: not in the running instance",
                "ConfigMap/settings in stage: running, not in this rendering",
            ]
        );
        let Join::Write(next, Joined::Redeployed) =
            join(Some(&inst), &who("alice", "a2"), &changed)
        else {
            panic!("the owner redeploys, from any checkout")
        };
        assert_eq!(next.owner, "alice");
        assert_eq!(next.parts, changed);
        assert_ne!(next.digest, inst.digest);
        assert_eq!(next.consumers.len(), 2);
        let spec_only = [part("Deployment", "pipeline", "h3", "busybox:1.36")];
        let Join::Refuse(diff) = join(Some(&created(&running[..1])), &who("bob", "b1"), &spec_only)
        else {
            panic!("refused")
        };
        assert_eq!(
            diff,
            ["Deployment/pipeline in stage: its spec differs (same images)"]
        );
    }

    #[test]
    fn leaving_keeps_the_instance_for_the_others_and_the_last_removes_it() {
        let parts = [part("Deployment", "pipeline", "h1", "busybox:1.36")];
        let Join::Write(both, _) = join(Some(&created(&parts)), &who("bob", "b1"), &parts) else {
            panic!("bob joins")
        };
        let Left::Remain(for_bob) = leave(&both, &who("alice", "a1")) else {
            panic!("bob still uses it")
        };
        assert_eq!(for_bob.consumers, [who("bob", "b1")]);
        assert_eq!(
            leave(&for_bob, &who("alice", "a1")),
            Left::Remain(for_bob.clone()),
            "one who is no consumer changes nothing"
        );
        assert!(matches!(leave(&for_bob, &who("bob", "b1")), Left::Last(_)));
    }
}
