//! `tether run`'s cost: a curl round trip and a 100 MB transfer each way through the
//! namespace's TUN device and userspace stack, against the same curl straight to the
//! service on loopback, printed as ratios. The cluster is the tests' loopback fake, so
//! this measures tether's own path (TUN, smoltcp, the splice) and nothing of a tunnel.
//!
//! `scripts/bench-run` runs it; it needs root or unprivileged user namespaces, and curl.

#[path = "../tests/run_support/mod.rs"]
mod run_support;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use run_support::{FakeNet, http_service};
use tether::run::{RunCommand, RunOptions, exit_code, run_with};

const REQUESTS: usize = 200;
const BULK: usize = 100_000_000;
const TRANSFERS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// curl's `-w` lines, from curl on the laptop or through `tether run`.
async fn curl(net: Option<&FakeNet>, args: &[String]) -> Vec<String> {
    match net {
        None => {
            let out = tokio::process::Command::new("curl")
                .args(args)
                .output()
                .await
                .expect("curl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from)
                .collect()
        }
        Some(net) => {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let mut argv = vec![
                "sh".to_string(),
                "-c".into(),
                "out=$1; shift; exec curl \"$@\" > \"$out\"".into(),
                "sh".into(),
                out.display().to_string(),
            ];
            argv.extend(args.iter().cloned());
            let cmd = RunCommand::from_argv(argv, "api").unwrap();
            let status = run_with(cmd, net.clone(), RunOptions::default())
                .await
                .unwrap();
            assert_eq!(exit_code(status), 0);
            std::fs::read_to_string(out)
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        }
    }
}

fn column(lines: &[String], i: usize) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(i)?.parse().ok())
        .collect()
}

fn main() {
    if !rustix::process::geteuid().is_root()
        && std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .is_ok_and(|s| s.trim() == "0")
    {
        println!("skipped: no user namespaces");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let service = http_service("orders-svc", IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        let net = FakeNet::default();
        let ip = net.name("orders-svc.api", "198.18.0.7");
        net.serve(ip, 8080, service.addr);
        let direct_base = format!("http://{}", service.addr);
        let run_base = "http://orders-svc.api:8080".to_string();
        let fmt = "%{time_connect} %{time_total}\\n".to_string();

        // Starting a namespace: `true` through tether run.
        let mut starts = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let cmd = RunCommand::from_argv(["true"], "api").unwrap();
            run_with(cmd, net.clone(), RunOptions::default())
                .await
                .unwrap();
            starts.push(t.elapsed().as_secs_f64());
        }
        println!(
            "tether run true (namespace, TUN, exec, teardown): {:.1} ms",
            median(starts) * 1e3
        );

        // Round trips: one kept-alive connection, then a new connection per request.
        for (label, extra) in [
            ("kept-alive", vec![]),
            (
                "new connection each",
                vec!["-H".to_string(), "Connection: close".to_string()],
            ),
        ] {
            let mut results = Vec::new();
            for (net, base) in [(None, &direct_base), (Some(&net), &run_base)] {
                let mut args = vec![
                    "-s".to_string(),
                    "-o".into(),
                    "/dev/null".into(),
                    "-w".into(),
                    fmt.clone(),
                ];
                args.extend(extra.iter().cloned());
                for _ in 0..REQUESTS {
                    args.push(format!("{base}/healthz"));
                }
                let lines = curl(net, &args).await;
                // The first request also resolved the name; the rest show the steady state.
                results.push((median(column(&lines[1..], 0)), median(column(&lines[1..], 1))));
            }
            println!(
                "HTTP round trip, {label}: direct {:.0} µs, through tether run {:.0} µs: {:.2}x",
                results[0].1 * 1e6,
                results[1].1 * 1e6,
                results[1].1 / results[0].1
            );
            if !extra.is_empty() {
                println!(
                    "  of which connecting: direct {:.0} µs, through tether run {:.0} µs",
                    results[0].0 * 1e6,
                    results[1].0 * 1e6
                );
            }
        }

        // Throughput, 100 MB each way.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![0x5au8; BULK]).unwrap();
        let up = file.path().display().to_string();
        for (label, what) in [("download", "speed_download"), ("upload", "speed_upload")] {
            let mut speeds = Vec::new();
            for (net, base) in [(None, &direct_base), (Some(&net), &run_base)] {
                let mut args = vec![
                    "-s".to_string(),
                    "-o".into(),
                    "/dev/null".into(),
                    "-w".into(),
                    format!("%{{{what}}}\\n"),
                ];
                if label == "upload" {
                    args.extend(["-T".to_string(), up.clone(), format!("{base}/upload")]);
                } else {
                    args.push(format!("{base}/download?bytes={BULK}"));
                }
                // The median of a few: the machine's other work makes single runs noisy.
                let mut runs = Vec::new();
                for _ in 0..TRANSFERS {
                    let lines = curl(net, &args).await;
                    runs.push(column(&lines, 0).first().copied().unwrap_or(f64::NAN));
                }
                speeds.push(median(runs));
            }
            println!(
                "100 MB {label} (median of {TRANSFERS}): direct {:.0} MB/s, through tether run {:.0} MB/s: {:.2}x",
                speeds[0] / 1e6,
                speeds[1] / 1e6,
                speeds[1] / speeds[0]
            );
        }
    });
}
