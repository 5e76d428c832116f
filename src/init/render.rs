//! A [`Plan`] as a commented `tether.toml`: each key with a line saying what it does, the
//! choices init made with their reasons, and pointers to the README for the rest.

use std::fmt::Write as _;

use super::plan::{Namespace, Plan};

/// The file's text. Only strings that pass through [`quote`] reach a value, so names and
/// paths with any characters still make valid TOML.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tether.toml for `{}`, written by `tether init` from this folder's Dockerfiles and",
        plan.folder_name
    );
    out.push_str(
        "# manifests. `tether up` here builds the images below, pushes them, applies the\n\
         # manifests, forwards the ports and follows the logs; edit this file freely.\n\
         # Every key is explained in the README's \"tether.toml\" section (README.md in\n\
         # tether's repository). Paths are relative to this file; unknown keys are errors.\n\n",
    );

    match &plan.namespace {
        Namespace::Agreed(ns) => {
            out.push_str("# The namespace of objects that name none; every manifest here that names one\n# names this.\n");
            let _ = writeln!(out, "namespace = {}", quote(ns));
        }
        Namespace::Unset => out.push_str(
            "# No manifest names a namespace, so objects go to \"default\"; set one here:\n# namespace = \"dev\"\n",
        ),
        Namespace::Disagree(all) => {
            let _ = writeln!(
                out,
                "# The manifests name several namespaces ({}), so each object keeps its own and\n# this file sets none. Objects that name none go to \"default\", or:\n# namespace = \"dev\"",
                all.join(", ")
            );
        }
    }
    if plan.includes.is_empty() {
        out.push_str(
            "\n# Folders whose tether.toml joins this project, such as one that creates a shared\n\
             # Namespace or Secret first:\n# include = [\"../base\"]\n",
        );
    } else {
        out.push_str("\n# Folders whose tether.toml joins this project: what they create, the manifests\n# here need, and the resources below wait for it.\n");
        for i in &plan.includes {
            out.push_str(&comment(&format!(
                "  {}: {}",
                i.path,
                i.provides.join(", ")
            )));
        }
        let _ = writeln!(
            out,
            "include = [{}]",
            plan.includes
                .iter()
                .map(|i| quote(&i.path))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out.push_str(
        "\n# Where images are pushed: without this key, TETHER_REGISTRY, then the cluster's\n\
         # kube-public/local-registry-hosting ConfigMap.\n# registry = \"127.0.0.1:5000\"\n",
    );

    for note in &plan.notes {
        let _ = write!(out, "\n{}", comment(&format!("Note: {note}.")));
    }

    for image in &plan.images {
        out.push('\n');
        let _ = writeln!(
            out,
            "# The image the manifests name `image: {}`: tether builds it, pushes it and puts\n# what it pushed in those fields.",
            image.name
        );
        if !image.written_as.is_empty() {
            out.push_str(&comment(&format!(
                "The manifests write it as {}: tether replaces only `image:` fields that name `{}` exactly (any tag), so write `image: {}` there for this build to be deployed.",
                image
                    .written_as
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                image.name,
                image.name
            )));
        }
        let _ = writeln!(out, "[images.{}]", image.name);
        let _ = writeln!(
            out,
            "context = {}  # the build context sent to the Docker API engine",
            quote(&image.context)
        );
        let _ = write!(out, "dockerfile = {}", quote(&image.dockerfile));
        if image.other_dockerfiles.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  # also here: {}", image.other_dockerfiles.join(", "));
        }
        out.push_str(
            "# inputs = [\"src\"]  # what decides a rebuild (default: the whole context)\n\
             # host_build = [\"make\", \"bin\"]  # run on this machine before the image build\n\
             # Live update (files synced into running containers, no image build): see the\n\
             # README's \"Live update\" section for [images.NAME.live_update].\n",
        );
    }
    if !plan.unbuilt.is_empty() {
        out.push_str("\n# Images the manifests use that no Dockerfile here builds; they are pulled as written:\n");
        for u in &plan.unbuilt {
            out.push_str(&comment(&format!("  {} ({})", u.image, u.why)));
        }
    }

    for r in &plan.resources {
        out.push('\n');
        out.push_str(&comment(&format!(
            "A unit tether deploys, waits for and reports: {}.",
            r.objects.join(", ")
        )));
        let _ = writeln!(out, "[resources.{}]", r.name);
        let _ = writeln!(
            out,
            "manifests = [{}]  # YAML files, applied in this order",
            r.manifests
                .iter()
                .map(|m| quote(m))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if r.depends_on.is_empty() {
            out.push_str("# depends_on = [\"other\"]  # resources that must be ready before this one deploys\n");
        } else {
            let _ = writeln!(
                out,
                "depends_on = [{}]  # ready before this one deploys",
                r.depends_on
                    .iter()
                    .map(|d| quote(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if r.port_forwards.is_empty() {
            out.push_str("# port_forwards = [\"8080:8080\"]  # LOCAL:REMOTE, from this machine to a ready pod\n");
        } else {
            out.push_str("# LOCAL:REMOTE, from this machine to a ready pod of the workload:\n");
            for f in &r.port_forwards {
                out.push_str(&comment(&format!("  {}:{}: {}", f.local, f.remote, f.why)));
            }
            let _ = writeln!(
                out,
                "port_forwards = [{}]",
                r.port_forwards
                    .iter()
                    .map(|f| quote(&format!("{}:{}", f.local, f.remote)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    if !plan.skipped.is_empty() {
        out.push_str("\n# YAML files read but left out (not Kubernetes objects tether applies):\n");
        for (file, why) in &plan.skipped {
            out.push_str(&comment(&format!("  {file}: {}", first_line(why))));
        }
    }
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `text` as `# ` lines of at most about 88 columns; a leading indent is kept.
fn comment(text: &str) -> String {
    let indent = text.len() - text.trim_start().len();
    let mut out = String::new();
    let mut line = format!("# {}", " ".repeat(indent));
    let start = line.len();
    for word in text.split_whitespace() {
        if line.len() > start && line.len() + 1 + word.len() > 88 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = format!("# {}", " ".repeat(if indent > 0 { indent + 2 } else { 0 }));
        }
        if line.len() > start && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::plan::{Forward, ImagePlan, Include, ResourcePlan};

    #[test]
    fn values_are_quoted_and_comments_wrapped() {
        let back: toml::Value = toml::from_str(&format!("k = {}", quote("a \"b\"\\c"))).unwrap();
        assert_eq!(back["k"].as_str(), Some("a \"b\"\\c"));
        let c = comment(&"word ".repeat(30));
        assert!(
            c.lines().all(|l| l.starts_with("# ") && l.len() <= 88),
            "{c}"
        );
        assert_eq!(comment("  indented"), "#   indented\n");
    }

    #[test]
    fn a_plan_renders_every_key_it_decided() {
        let plan = Plan {
            folder_name: "web".into(),
            namespace: Namespace::Unset,
            images: vec![ImagePlan {
                name: "web".into(),
                context: ".".into(),
                dockerfile: "Dockerfile".into(),
                written_as: Vec::new(),
                other_dockerfiles: Vec::new(),
            }],
            unbuilt: Vec::new(),
            resources: vec![ResourcePlan {
                name: "web".into(),
                objects: vec!["Deployment web".into()],
                manifests: vec!["k8s/web.yaml".into()],
                depends_on: Vec::new(),
                port_forwards: vec![Forward {
                    local: 8080,
                    remote: 80,
                    why: "Service web port 8080".into(),
                }],
            }],
            includes: vec![Include {
                path: "../base".into(),
                provides: vec!["Namespace api".into()],
            }],
            notes: Vec::new(),
            skipped: vec![("compose.yaml".into(), "not an object\nmore".into())],
        };
        let text = render(&plan);
        for line in [
            "[images.web]\n",
            "dockerfile = \"Dockerfile\"\n",
            "manifests = [\"k8s/web.yaml\"]  # YAML files, applied in this order\n",
            "port_forwards = [\"8080:80\"]\n",
            "#   compose.yaml: not an object\n",
            "#   ../base: Namespace api\ninclude = [\"../base\"]\n",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
        assert!(!text.contains("\nnamespace ="), "{text}");
    }
}
