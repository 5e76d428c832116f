//! Runs one step's [`Check`] against the real state and says, in words, what is wrong.
//!
//! Every check is time-boxed ([`Check::time_box`]) and turns network and cluster errors
//! into a [`Outcome::Fail`]: a check never panics and never hangs the screen.

use std::{
    error::Error as StdError, net::SocketAddr, path::PathBuf, process::Stdio, time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde::Serialize;
use tokio::{net::UdpSocket, process::Command};

use super::{Check, Step};
use crate::cluster::{AllowList, Cluster, ClusterError};

/// A check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Pass,
    /// What is wrong, for a person.
    Fail {
        what: String,
    },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail { what } => Some(what),
        }
    }

    pub(super) fn fail(what: impl Into<String>) -> Outcome {
        Outcome::Fail { what: what.into() }
    }
}

/// What checks run against: the workshop's root folder and the cluster.
#[derive(Clone)]
pub struct Env {
    pub root: PathBuf,
    /// The cluster when the context answered the kubeconfig and is allowed; else why not.
    pub cluster: Result<Cluster, String>,
}

impl Env {
    /// An environment without a cluster (for workshops with no cluster checks, and tests).
    pub fn local(root: PathBuf) -> Env {
        Env {
            root,
            cluster: Err("no cluster: this workshop reads none".into()),
        }
    }

    /// Connects to the context; one that does not look local and is not allowed is
    /// refused (the error), as every command that works on a cluster refuses it. Any
    /// other problem is what the cluster checks report.
    pub async fn connect(root: PathBuf, context: Option<&str>) -> Result<Env, ClusterError> {
        let allow = AllowList::for_dir(&root)?;
        let cluster = match Cluster::connect(context).await {
            Ok(c) => {
                c.check_allowed(&allow)?;
                Ok(c)
            }
            Err(e) if e.is_bad_input() => return Err(e),
            Err(e) => Err(chain(&e)),
        };
        Ok(Env { root, cluster })
    }
}

/// Runs a step's checks in order; the first that fails is the step's verdict.
pub async fn run_step(step: &Step, env: &Env) -> Outcome {
    for c in step.checks() {
        let outcome = run(c, env).await;
        if !outcome.passed() {
            return outcome;
        }
    }
    Outcome::Pass
}

/// Runs `check`, failing it when it takes longer than its time box.
pub async fn run(check: &Check, env: &Env) -> Outcome {
    let limit = check.time_box();
    match tokio::time::timeout(limit, evaluate(check, env)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::fail(format!("no answer within {}s", limit.as_secs())),
    }
}

async fn evaluate(check: &Check, env: &Env) -> Outcome {
    match check {
        Check::Cluster {} => match &env.cluster {
            Ok(c) => match c.client.apiserver_version().await {
                Ok(_) => Outcome::Pass,
                Err(e) => Outcome::fail(format!(
                    "the cluster of context `{}` does not answer: {}",
                    c.context,
                    chain(&e)
                )),
            },
            Err(why) => Outcome::fail(why.clone()),
        },
        Check::Http {
            url,
            method,
            json,
            status,
            body_contains,
            via_connect,
        } => {
            let proxy = if *via_connect {
                match crate::connect::control::running().await {
                    Some(s) => Some(s.held.proxy),
                    None => return Outcome::fail("no `tether connect` session runs"),
                }
            } else {
                None
            };
            http_check(url, method, json.as_ref(), *status, body_contains, proxy).await
        }
        Check::Ready {
            namespace,
            deployments,
        } => match &env.cluster {
            Ok(c) => ready(c, namespace, deployments).await,
            Err(why) => Outcome::fail(why.clone()),
        },
        Check::Connect {
            namespace,
            resolves,
        } => {
            let Some(session) = crate::connect::control::running().await else {
                return Outcome::fail("no `tether connect` session runs");
            };
            if session.held.namespace != *namespace {
                return Outcome::fail(format!(
                    "the connect session is for namespace `{}`, not `{namespace}`",
                    session.held.namespace
                ));
            }
            match resolves {
                Some(name) => resolve(session.held.dns, name).await,
                None => Outcome::Pass,
            }
        }
        Check::Intercept {
            service,
            namespace,
            active,
        } => match &env.cluster {
            Ok(c) => intercept(c, service, namespace, *active).await,
            Err(why) => Outcome::fail(why.clone()),
        },
        Check::Port { port } => port_check(*port).await,
        Check::Edit {
            file,
            marker,
            shipped,
            url,
        } => edited(env, file, marker, shipped, url).await,
        Check::Command {
            run,
            exit,
            stdout_contains,
            ..
        } => command(env, run, *exit, stdout_contains.as_deref()).await,
    }
}

/// One request; the answer's status and body are judged by [`judge_http`].
pub async fn http_check(
    url: &str,
    method: &str,
    json: Option<&serde_json::Value>,
    status: u16,
    body_contains: &Option<String>,
    proxy: Option<SocketAddr>,
) -> Outcome {
    let client = match http_client(proxy) {
        Ok(c) => c,
        Err(why) => return Outcome::fail(why),
    };
    let method = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Outcome::fail(format!("`{method}` is not an HTTP method")),
    };
    let mut request = client.request(method.clone(), url);
    if let Some(body) = json {
        request = request.json(body);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::fail(format!("{method} {url}: {}", chain(&e))),
    };
    let got = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    judge_http(
        &format!("{method} {url}"),
        got,
        &body,
        status,
        body_contains,
    )
}

/// A client with the checks' time box, through connect's proxy when given.
fn http_client(proxy: Option<SocketAddr>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(2));
    builder = match proxy {
        // connect's loopback proxy speaks HTTP as well as SOCKS5.
        Some(addr) => match reqwest::Proxy::all(format!("http://{addr}")) {
            Ok(p) => builder.proxy(p),
            Err(e) => return Err(format!("the connect proxy {addr}: {}", chain(&e))),
        },
        None => builder.no_proxy(),
    };
    builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", chain(&e)))
}

/// The text at `marker` in `file` (from the root) was edited, and `url` serves it.
async fn edited(env: &Env, file: &str, marker: &str, shipped: &str, url: &str) -> Outcome {
    let path = env.root.join(file);
    let source = match tokio::fs::read_to_string(&path).await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(format!("cannot read {}: {e}", path.display())),
    };
    let value = super::edit::quoted_after(&source, marker);
    let served = async {
        let response = http_client(None)?
            .get(url)
            .send()
            .await
            .map_err(|e| chain(&e))?;
        response.text().await.map_err(|e| chain(&e))
    };
    // The file alone decides a fail that needs no request.
    let served = match value.as_deref() {
        Some(v) if v != shipped => served.await,
        _ => Ok(String::new()),
    };
    super::edit::judge(file, marker, value.as_deref(), shipped, url, served)
}

/// The verdict on an HTTP answer.
pub fn judge_http(
    request: &str,
    got: u16,
    body: &str,
    status: u16,
    body_contains: &Option<String>,
) -> Outcome {
    if got != status {
        return Outcome::fail(format!(
            "{request} answered HTTP {got}, expected {status}: {}",
            excerpt(body)
        ));
    }
    match body_contains {
        Some(needle) if !body.contains(needle.as_str()) => Outcome::fail(format!(
            "{request} answered without `{needle}`: {}",
            excerpt(body)
        )),
        _ => Outcome::Pass,
    }
}

async fn ready(cluster: &Cluster, namespace: &str, names: &[String]) -> Outcome {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let mut missing = Vec::new();
    for name in names {
        match api.get_opt(name).await {
            Ok(Some(d)) => {
                if let Err(why) = deployment_ready(&d) {
                    missing.push(format!("{name} {why}"));
                }
            }
            Ok(None) => missing.push(format!("{name} is not deployed")),
            Err(e) => {
                return Outcome::fail(format!(
                    "cannot read Deployment {namespace}/{name}: {}",
                    chain(&e)
                ));
            }
        }
    }
    if missing.is_empty() {
        Outcome::Pass
    } else {
        Outcome::fail(format!("in namespace {namespace}: {}", missing.join("; ")))
    }
}

/// A Deployment is ready when its controller saw the current spec and every replica is
/// available; `Err` says which is not yet so.
pub fn deployment_ready(d: &Deployment) -> Result<(), String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return Err("is rolling out (its newest spec is not observed yet)".into());
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = status.available_replicas.unwrap_or(0);
    if available != want {
        return Err(format!("has {available}/{want} replicas available"));
    }
    Ok(())
}

async fn intercept(cluster: &Cluster, service: &str, namespace: &str, active: bool) -> Outcome {
    let rows = match crate::intercept::list(&cluster.client, Some(namespace)).await {
        Ok(rows) => rows,
        Err(e) => return Outcome::fail(format!("cannot list intercepts: {}", chain(&e))),
    };
    let Some(row) = rows.iter().find(|r| r.service == service) else {
        return Outcome::fail(format!("no Service {service} in namespace {namespace}"));
    };
    judge_intercept(
        service,
        row.intercepted_port.is_some(),
        &row.intercept,
        active,
    )
}

/// The verdict on whether a Service is intercepted, as the step wants it.
pub fn judge_intercept(service: &str, is: bool, words: &str, want: bool) -> Outcome {
    match (is, want) {
        (true, true) | (false, false) => Outcome::Pass,
        (false, true) => Outcome::fail(format!("{service} is not intercepted")),
        (true, false) => Outcome::fail(format!("{service} is still intercepted ({words})")),
    }
}

/// Asks connect's DNS server for `name`'s address.
async fn resolve(dns: SocketAddr, name: &str) -> Outcome {
    let fail = |why: String| Outcome::fail(format!("connect's DNS ({dns}) on {name}: {why}"));
    let qname = match Name::from_ascii(name) {
        Ok(n) => n,
        Err(e) => return fail(e.to_string()),
    };
    let mut query = Message::new();
    query
        .set_id(0x7e7e)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    query.add_query(Query::query(qname, RecordType::A));
    let bytes = match query.to_vec() {
        Ok(b) => b,
        Err(e) => return fail(e.to_string()),
    };
    let bind: SocketAddr = if dns.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = socket.send_to(&bytes, dns).await {
        return fail(e.to_string());
    }
    let mut buf = vec![0u8; 4096];
    let n = match tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return fail(e.to_string()),
        Err(_) => return fail("no answer within 3s".into()),
    };
    match Message::from_vec(&buf[..n]) {
        Ok(reply) if !reply.answers().is_empty() => Outcome::Pass,
        Ok(reply) => fail(format!("no address ({})", reply.response_code())),
        Err(e) => fail(e.to_string()),
    }
}

/// Something on localhost accepts TCP on `port`.
pub async fn port_check(port: u16) -> Outcome {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Outcome::Pass,
        Ok(Err(e)) => Outcome::fail(format!("nothing accepts on localhost:{port} ({e})")),
        Err(_) => Outcome::fail(format!("localhost:{port} does not accept within 2s")),
    }
}

async fn command(env: &Env, run: &[String], exit: i32, stdout_contains: Option<&str>) -> Outcome {
    let Some((program, args)) = run.split_first() else {
        return Outcome::fail("no program to run");
    };
    let shown = run.join(" ");
    let child = Command::new(program)
        .args(args)
        .current_dir(&env.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The time box drops the future: the program must not outlive it.
        .kill_on_drop(true)
        .spawn();
    let output = match child {
        Ok(c) => c.wait_with_output().await,
        Err(e) => return Outcome::fail(format!("cannot run `{shown}`: {e}")),
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => return Outcome::fail(format!("`{shown}`: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(code) if code == exit => {}
        code => {
            let code = code.map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
            let last = stderr.lines().chain(stdout.lines()).last().unwrap_or("");
            return Outcome::fail(format!(
                "`{shown}` exited with {code}, expected {exit}: {}",
                excerpt(last)
            ));
        }
    }
    match stdout_contains {
        Some(needle) if !stdout.contains(needle) => Outcome::fail(format!(
            "`{shown}` did not print `{needle}`: {}",
            excerpt(stdout.lines().last().unwrap_or(""))
        )),
        _ => Outcome::Pass,
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The start of a body, on one line, for a failure message.
fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 160 {
        let cut: String = one_line.chars().take(160).collect();
        format!("{cut}…")
    } else if one_line.is_empty() {
        "(empty)".into()
    } else {
        one_line
    }
}
