//! `tether run` against the real cluster, from the laptop namespace: programs that know
//! nothing of proxies (curl, a static busybox, a shell) reach Services and pods by their
//! cluster names, failures come at once, CMD's exit code is tether's, and the laptop's
//! routes, links and resolv.conf are as they were, also after SIGKILL.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{
    connect::{TURN, deploy, run, tether_cmd},
    support::{TestNamespace, cluster, laptop::Laptop},
};

/// `tether run -n NS -- ARGS` on the laptop.
fn tether_run(laptop: &Laptop, state: &std::path::Path, ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["run", "-n", ns, "--"];
    all.extend_from_slice(args);
    run(tether_cmd(laptop, state, &all))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a `tether run` must leave as it found it on the laptop.
pub(crate) fn laptop_network(laptop: &Laptop) -> String {
    let mut c = laptop.command("sh");
    c.args(["-c", "ip route; ip -6 route; ip link; cat /etc/resolv.conf"]);
    text(&c.output().unwrap())
}

#[test]
fn any_program_reaches_cluster_names_through_run_and_the_laptop_is_left_as_it_was() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "run"));
    let web_ip = rt.block_on(deploy(&cluster.client, &ns.name));
    let state = tempfile::tempdir().unwrap();
    let before = laptop_network(&laptop);

    // Without tether the laptop cannot even resolve the name.
    let url = format!("http://web-svc.{}/", ns.name);
    let mut plain = laptop.command("curl");
    plain.args(["-sS", "--max-time", "5", &url]);
    let out = run(plain);
    assert!(
        !out.status.success(),
        "the laptop reached the cluster by itself"
    );

    // curl knows no proxy here: its traffic goes through run's namespace.
    let pod = format!("http://web-0.web-h.{}:8080/", ns.name);
    for target in ["http://web-svc/", &url, &pod] {
        let out = tether_run(
            &laptop,
            state.path(),
            &ns.name,
            &["curl", "-sS", "--max-time", "10", target],
        );
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text(&out), "hello from the cluster", "{target}");
    }
    // A static client with its own resolver (busybox reads /etc/resolv.conf itself).
    let out = tether_run(
        &laptop,
        state.path(),
        &ns.name,
        &["busybox", "wget", "-q", "-O", "-", "http://web-svc/"],
    );
    assert_eq!(
        text(&out),
        "hello from the cluster",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Service with no endpoints is refused at once; a missing name fails to resolve.
    let started = Instant::now();
    let out = tether_run(
        &laptop,
        state.path(),
        &ns.name,
        &["curl", "-sS", "--max-time", "10", "http://idle-svc/"],
    );
    assert_eq!(out.status.code(), Some(7), "curl's 'could not connect'");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "refused, not timed out"
    );
    let out = tether_run(
        &laptop,
        state.path(),
        &ns.name,
        &["curl", "-sS", "--max-time", "10", "http://nope/"],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "curl's 'could not resolve host'"
    );
    // How long the laptop's libc takes to hear "no such name" (getent is in every Debian).
    let lookup = format!(
        "s=$(date +%s%N); getent hosts nope.{}; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))",
        ns.name
    );
    let out = tether_run(&laptop, state.path(), &ns.name, &["sh", "-c", &lookup]);
    let ms: u64 = text(&out).trim().parse().expect("the lookup time in ms");
    assert!(ms < 100, "NXDOMAIN took {ms} ms");

    // The Service's environment, and CMD's exit code.
    let mut c = tether_cmd(
        &laptop,
        state.path(),
        &[
            "run",
            "-n",
            &ns.name,
            "--env-from",
            "web-svc",
            "--",
            "sh",
            "-c",
            "echo \"$GREETING\"; exit 3",
        ],
    );
    c.stdout(Stdio::piped());
    let out = run(c);
    assert_eq!(text(&out).trim(), "hello from web's env");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        laptop_network(&laptop),
        before,
        "run changed the laptop's network"
    );

    // A server run this way is reached from the laptop on its published port.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(
        www.path().join("index.html"),
        "served from the run namespace",
    )
    .unwrap();
    let port = laptop
        .bind_tcp("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let www_dir = www.path().to_str().unwrap();
    let mut c = tether_cmd(
        &laptop,
        state.path(),
        &[
            "run", "-n", &ns.name, "-p", &port, "--", "busybox", "httpd", "-f", "-p", &port, "-h",
            www_dir,
        ],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = c.spawn().unwrap();
    let local = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut get = laptop.command("curl");
        get.args(["-sS", "--max-time", "2", &local]);
        let out = get.output().unwrap();
        if text(&out) == "served from the run namespace" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the published port never answered: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every new connection is served, also when its request arrives before the stack's
    // handshake into the namespace is done (a client writes at once).
    for i in 0..30 {
        let mut get = laptop.command("curl");
        get.args(["-sS", "--max-time", "5", &local]);
        let out = get.output().unwrap();
        assert_eq!(
            text(&out),
            "served from the run namespace",
            "request {i}: {out:?}"
        );
    }
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();

    // `tether intercept -- CMD`: CMD started as `run` starts it, the Service's traffic
    // routed to it, and the intercept ended (and the Service restored) with Ctrl-C.
    let port = laptop
        .bind_tcp("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut c = tether_cmd(
        &laptop,
        state.path(),
        &[
            "intercept",
            "web-svc",
            "-p",
            &port,
            "-n",
            &ns.name,
            "--",
            "busybox",
            "httpd",
            "-f",
            "-p",
            &port,
            "-h",
            www_dir,
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut intercept = crate::process::Running::spawn(c);
    intercept.wait_for(0, Duration::from_secs(300), "the intercept", |l| {
        l.starts_with("ready: ")
    });
    // A caller in the cluster (the node's view) now reaches the laptop's CMD.
    let cluster_url = format!("http://{web_ip}/");
    let from_cluster = || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", &cluster_url])
            .output()
            .unwrap();
        text(&out)
    };
    assert_eq!(from_cluster(), "served from the run namespace");
    assert!(intercept.interrupt(), "the intercept ends with Ctrl-C");
    let deadline = Instant::now() + Duration::from_secs(120);
    while from_cluster() != "hello from the cluster" {
        assert!(Instant::now() < deadline, "the Service was not restored");
        std::thread::sleep(Duration::from_millis(500));
    }

    // CMD is a sleep no other process on this machine runs, so looking for it finds this
    // test's alone: the node's process list holds other tests' and pods' processes too
    // (a foreign `sleep 300`, 57 s old, once failed the check below).
    let (interrupted, killed) = (
        format!("301.{}", std::process::id()),
        format!("300.{}", std::process::id()),
    );
    let only = |arg: &str| format!("^sleep {}$", arg.replace('.', "\\."));
    // Ctrl-C reaches CMD, and tether exits as CMD did.
    let mut c = tether_cmd(
        &laptop,
        state.path(),
        &["run", "-n", &ns.name, "--", "sleep", &interrupted],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "128 + SIGINT, as a shell reports it"
    );
    assert!(
        !Command::new("pgrep")
            .args(["-f", &only(&interrupted)])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        laptop_network(&laptop),
        before,
        "an interrupted run left something behind"
    );

    // SIGKILL of tether: CMD dies with it, and nothing is left on the laptop.
    let mut c = tether_cmd(
        &laptop,
        state.path(),
        &["run", "-n", &ns.name, "--", "sleep", &killed],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("pgrep")
        .args(["-f", &only(&killed)])
        .status()
        .is_ok_and(|s| s.success())
    {
        if Instant::now() > deadline {
            // Which process it is, and whose child: a zombie, a reparented child, or one
            // of another test's.
            let ps = Command::new("ps")
                .args(["-eo", "pid,ppid,stat,etime,args"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let sleeps: Vec<&str> = ps.lines().filter(|l| l.contains("sleep")).collect();
            panic!(
                "CMD outlived a killed tether (pid {}):\n{}",
                child.id(),
                sleeps.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        laptop_network(&laptop),
        before,
        "a killed run left something behind"
    );
}
