//! What `tether up` costs while nothing happens: CPU and resident memory of the daemon
//! watching a tree of 100,000 input files, against `inotifywait -m -r` watching the same
//! tree (the floor any watcher pays), measured in the same run. Needs the cluster
//! (`scripts/dev-cluster up`, `eval "$(scripts/dev-cluster env)"`). Prints figures only.
//!
//! Run: `cargo bench --bench idle` (FILES=100000, SECONDS=20 by default).

#[path = "../tests/e2e/process.rs"]
#[allow(dead_code)]
mod process;

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use process::{Running, tether};

fn main() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "no cluster: run `scripts/dev-cluster up` and `eval \"$(scripts/dev-cluster env)\"` first"
        );
        return;
    }
    let files: usize = std::env::var("FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let ns = format!("tether-bench-idle-{}", std::process::id());
    make_project(root, &ns, files);

    let mut up = Running::start(root, &["up", "--no-tui"]);
    up.wait_for(
        0,
        Duration::from_secs(900),
        "the resource to be ready",
        |l| l.contains("[idle] ready"),
    );
    let watching = up.wait_for(0, Duration::from_secs(120), "the watcher", |l| {
        l.starts_with("watching ")
    });
    std::thread::sleep(Duration::from_secs(3));
    let tether_pid = up.pid();
    let (t_cpu, t_rss) = sample(tether_pid, seconds);

    let peer = Command::new("inotifywait")
        .args(["-m", "-r", "-q"])
        .arg(root.join("tree"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let peer_figures = peer.ok().map(|mut child| {
        std::thread::sleep(Duration::from_secs(10)); // its recursive setup
        let f = sample(child.id(), seconds);
        let _ = child.kill();
        let _ = child.wait();
        f
    });
    drop(up);
    let _ = tether(root, &["down", "--delete-namespaces"]);

    println!("\nidle `tether up` over {files} input files ({watching}), sampled {seconds}s:");
    println!("  tether:      CPU {t_cpu:.2}% of one core, RSS {t_rss:.1} MiB");
    match peer_figures {
        Some((p_cpu, p_rss)) => {
            println!("  inotifywait: CPU {p_cpu:.2}% of one core, RSS {p_rss:.1} MiB");
            println!(
                "  ratio tether / inotifywait: RSS {:.1}x",
                t_rss / p_rss.max(0.1)
            );
        }
        None => println!("  (no inotifywait for a peer figure: apt-get install inotify-tools)"),
    }
}

/// A project whose one image has `files` inputs, and a Deployment that runs it.
fn make_project(root: &Path, ns: &str, files: usize) {
    let per_dir = 100;
    for i in 0..files {
        let d = root.join(format!("tree/d{:04}", i / per_dir));
        if i % per_dir == 0 {
            fs::create_dir_all(&d).expect("tree");
        }
        fs::write(d.join(format!("f{i}.txt")), i.to_string()).expect("file");
    }
    fs::create_dir_all(root.join("ctx")).expect("ctx");
    fs::copy("/bin/busybox", root.join("ctx/busybox"))
        .expect("busybox-static (scripts/dev-cluster installs it)");
    fs::write(
        root.join("ctx/Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\", \"sleep\", \"100000\"]\n",
    )
    .expect("Dockerfile");
    fs::write(
        root.join("k8s.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: idle}}\nspec:\n  selector: {{matchLabels: {{app: idle}}}}\n  template:\n    metadata: {{labels: {{app: idle}}}}\n    spec:\n      containers: [{{name: idle, image: idle}}]\n"
        ),
    )
    .expect("manifest");
    fs::write(
        root.join("tether.toml"),
        format!(
            "namespace = \"{ns}\"\n[images.idle]\ncontext = \"ctx\"\ninputs = [\"ctx\", \"tree\"]\n[resources.idle]\nmanifests = [\"k8s.yaml\"]\n"
        ),
    )
    .expect("tether.toml");
}

/// CPU (percent of one core) over `seconds`, and RSS (MiB) at the end, from /proc.
fn sample(pid: u32, seconds: u64) -> (f64, f64) {
    let ticks = |pid: u32| -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = after
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // utime and stime are fields 14 and 15; after the ")" they are the 12th and 13th,
        // and the state letter (field 3) does not parse as a number.
        f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
    };
    let hz = 100.0; // USER_HZ on Linux
    let before = ticks(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = (ticks(pid) - before) as f64 / hz / seconds as f64 * 100.0;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (cpu, rss_kib / 1024.0)
}
