//! What the benchmarks measure the same way for every path: latency of sequential
//! keep-alive requests and the throughput of concurrent ones. Figures are printed, never
//! asserted: they are read as ratios against a peer measured in the same run.

use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
pub struct Measured {
    pub p50: Duration,
    pub p99: Duration,
    pub throughput: f64,
}

/// [`measure_with`] a plain client.
pub fn measure(url: &str) -> Measured {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    measure_with(client, url)
}

/// Latency of 500 sequential keep-alive requests, then 16 connections for 3 s.
pub fn measure_with(client: reqwest::Client, url: &str) -> Measured {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut lat = Vec::new();
        for _ in 0..500 {
            let t = Instant::now();
            if let Ok(r) = client.get(url).send().await {
                if r.text().await.is_ok() {
                    lat.push(t.elapsed());
                }
            }
        }
        lat.sort();
        let until = Instant::now() + Duration::from_secs(3);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_owned());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while Instant::now() < until {
                        if let Ok(r) = client.get(&url).send().await {
                            if r.text().await.is_ok() {
                                n += 1;
                            }
                        }
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        Measured {
            p50: quantile(&lat, 0.5),
            p99: quantile(&lat, 0.99),
            throughput: total as f64 / 3.0,
        }
    })
}

/// The `q` quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// One table row: the path, p50, p99, throughput.
pub fn row(name: &str, m: &Measured) {
    println!(
        "{name:<40} {:>7.2}ms {:>7.2}ms {:>12.0}",
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        m.throughput
    );
}

/// The table's header.
pub fn header() {
    println!(
        "{:<40} {:>9} {:>9} {:>12}",
        "path", "p50", "p99", "req/s (x16)"
    );
}
