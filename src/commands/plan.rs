//! `tether plan`: what `up` would change in the cluster, changing nothing. The project is
//! rendered as `up` renders it (profile, its `set`, counts scaled by hand, the image
//! references `up` would pin), then each object is compared with what is live through a
//! dry-run apply; the record adds what this checkout applied that is no longer rendered.
//!
//! An image's reference is known without a build: `up` tags it with its input digest.
//! One the registry lacks would be built first; the plan says so and compares with the
//! reference that build would push.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    Failure,
    output::{self, Shape},
    profile,
    project::{self, load},
};
use crate::{
    build::{Builder, Registry},
    cli::PlanArgs,
    deploy::{ObjectRef, diff::Change, preview::Delta, replicas},
    engine::facts,
};

/// The plan as `-o json|yaml` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub images: Vec<ImagePlan>,
    pub created: Vec<Object>,
    pub changed: Vec<Changed>,
    /// Objects `up` would skip, their rendered form being the live one.
    pub unchanged: usize,
    /// Objects in this checkout's record for the cluster that are no longer rendered.
    pub deleted: Vec<Object>,
}

#[derive(Debug, Serialize)]
pub struct ImagePlan {
    pub image: String,
    /// The reference `up` would pin in the manifests.
    pub reference: String,
    /// The registry lacks it: `up` would build and push it first.
    pub build: bool,
}

#[derive(Debug, Serialize)]
pub struct Object {
    pub resource: String,
    pub object: ObjectRef,
}

#[derive(Debug, Serialize)]
pub struct Changed {
    pub resource: String,
    pub object: ObjectRef,
    pub fields: Vec<Change>,
}

pub async fn run(args: PlanArgs) -> Result<(), Failure> {
    let PlanArgs {
        target,
        profile,
        output,
    } = args;
    let project = load(&target)?;
    let profile = profile::choose(&project, profile.as_deref())?;
    let cluster =
        project::cluster(&target, &profile::allow_list(&project, profile.as_ref())).await?;
    let chosen = match &profile {
        Some(p) => Some(profile::resolve(&cluster, p).await?.0),
        None => None,
    };
    let project = profile::apply(project, profile.as_ref().zip(chosen.as_ref()))?;
    let registry = Registry::resolve(project.registry.as_deref(), &cluster.client).await?;
    let deployer = profile::deployer(&cluster, &project, profile.as_ref())?;
    let facts = facts::gather(&project, &mut BTreeMap::new(), &BTreeSet::new());

    let mut plan = Plan::default();
    let used: BTreeSet<&String> = facts.uses.values().flatten().collect();
    let mut pinned = BTreeMap::new();
    for image in used {
        let digest = match facts.digests.get(image) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                return Err(Failure::Failed(anyhow::anyhow!(
                    "image `{image}`: cannot read its inputs: {e}"
                )));
            }
            None => continue,
        };
        let tag = Builder::tag_for(digest);
        let reference = format!("{}/{image}:{tag}", registry.pull);
        let build = !registry.has_tag(image, &tag).await?;
        pinned.insert(image.clone(), reference.clone());
        plan.images.push(ImagePlan {
            image: image.clone(),
            reference,
            build,
        });
    }

    let counts = replicas::Overrides::load(&project);
    let mut rendered_refs = BTreeSet::new();
    for name in project.deploy_order() {
        let (Some(resource), Some(read)) = (project.resources.get(name), facts.objects.get(name))
        else {
            continue;
        };
        let mut rendered = deployer.render(resource, read, &pinned, None).await?;
        counts.apply(name, deployer.session(), &mut rendered.objects);
        for (object, delta) in deployer.preview(&rendered).await? {
            rendered_refs.insert(identity(&object));
            let resource = name.to_owned();
            match delta {
                Delta::Created => plan.created.push(Object { resource, object }),
                Delta::Changed(fields) => plan.changed.push(Changed {
                    resource,
                    object,
                    fields,
                }),
                Delta::Unchanged => plan.unchanged += 1,
            }
        }
    }
    plan.deleted = deployer
        .recorded()
        .into_iter()
        .filter(|e| !rendered_refs.contains(&identity(&e.object)))
        .map(|e| Object {
            resource: e.resource,
            object: e.object,
        })
        .collect();

    match output::machine(output) {
        Some(m) => output::print(m, Shape::Document, &plan)?,
        None => output::write_stdout(text(&plan).as_bytes())?,
    }
    Ok(())
}

/// Kind, namespace and name: an object whose API version moved is the same object.
fn identity(r: &ObjectRef) -> (String, Option<String>, String) {
    (r.kind.clone(), r.namespace.clone(), r.name.clone())
}

/// The plan for a person: one line per image built and object touched, the changed
/// fields under their object, and the counts last.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for i in plan.images.iter().filter(|i| i.build) {
        out.push_str(&format!(
            "image {} would be built: {}\n",
            i.image, i.reference
        ));
    }
    for o in &plan.created {
        out.push_str(&format!("+ {} ({})\n", o.object, o.resource));
    }
    for c in &plan.changed {
        out.push_str(&format!("~ {} ({})\n", c.object, c.resource));
        if c.fields.is_empty() {
            out.push_str("    only tether's bookkeeping\n");
        }
        for f in &c.fields {
            out.push_str(&format!(
                "    {}: {} → {}\n",
                f.path,
                shown(f.old.as_ref()),
                shown(f.new.as_ref())
            ));
        }
    }
    for o in &plan.deleted {
        out.push_str(&format!("- {} ({})\n", o.object, o.resource));
    }
    out.push_str(&format!(
        "{} to create, {} to change, {} unchanged, {} to delete\n",
        plan.created.len(),
        plan.changed.len(),
        plan.unchanged,
        plan.deleted.len()
    ));
    out
}

fn shown(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "(none)".to_owned(), serde_json::Value::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn web() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("dev-alice".into()),
            name: "web".into(),
        }
    }

    #[test]
    fn the_text_names_each_object_and_field_and_counts_last() {
        let plan = Plan {
            images: vec![ImagePlan {
                image: "web".into(),
                reference: "r/web:tether-1".into(),
                build: true,
            }],
            created: vec![],
            changed: vec![Changed {
                resource: "web".into(),
                object: web(),
                fields: vec![Change {
                    path: "spec.replicas".into(),
                    old: Some(json!(1)),
                    new: Some(json!(2)),
                }],
            }],
            unchanged: 3,
            deleted: vec![Object {
                resource: "old".into(),
                object: web(),
            }],
        };
        assert_eq!(
            text(&plan),
            "image web would be built: r/web:tether-1\n\
             ~ Deployment/web in dev-alice (web)\n    spec.replicas: 1 → 2\n\
             - Deployment/web in dev-alice (old)\n\
             0 to create, 1 to change, 3 unchanged, 1 to delete\n"
        );
    }
}
