//! The workshop's tests: parsing and its errors, each check kind against local fakes,
//! resuming, the JSON shape, the plain lines and snapshots of the screen.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crossterm::event::KeyCode;
use ratatui::{Terminal, backend::TestBackend};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::{
    Check, Env, Outcome, Progress, WorkshopError, check, progress, report,
    screen::{self, Screen},
    steps,
};

const GOOD: &str = r#"
title = "Tiny"

[reset]
commands = [["true"]]

[[step]]
title = "Something listens"
prose = "Start it."
commands = ["nc -l 9999"]
fix = "start it"
check = { kind = "port", port = 9999 }

[[step]]
title = "It answers"
commands = ["curl http://localhost:9999/"]
fix = "make it answer"
check = { kind = "http", url = "http://localhost:9999/", body_contains = "ok" }
also = [{ kind = "command", run = ["true"] }]
"#;

fn parse(text: &str) -> Result<super::Workshop, WorkshopError> {
    steps::parse(Path::new("/w/workshop.toml"), text)
}

fn fail(what: &str) -> Outcome {
    Outcome::Fail { what: what.into() }
}

#[test]
fn a_good_file_parses_with_defaults() {
    let w = parse(GOOD).unwrap();
    assert_eq!(w.title, "Tiny");
    assert_eq!(w.dir, PathBuf::from("/w"));
    assert_eq!(w.root, PathBuf::from("/w"));
    assert_eq!(w.reset, vec![vec!["true".to_owned()]]);
    assert_eq!(w.steps.len(), 2);
    assert_eq!(w.steps[0].check, Check::Port { port: 9999 });
    assert_eq!(
        w.steps[1].check,
        Check::Http {
            url: "http://localhost:9999/".into(),
            method: "GET".into(),
            json: None,
            status: 200,
            body_contains: Some("ok".into()),
            via_connect: false,
        }
    );
    assert_eq!(w.steps[1].checks().count(), 2);
}

#[test]
fn the_shipped_workshop_parses_with_its_eight_steps() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("workspace-demo/workshop.toml");
    let w = steps::load(&file).unwrap();
    assert_eq!(w.steps.len(), 8);
    assert!(w.root.join("examples/shop/walkthrough.sh").is_file());
    assert_eq!(
        steps::find(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap(),
        file
    );
    assert!(matches!(
        w.steps[6].check,
        Check::Command { ref stdout_contains, .. } if stdout_contains.as_deref() == Some("refused")
    ));
}

fn error_text(text: &str) -> (String, bool) {
    let e = parse(text).unwrap_err();
    (e.to_string(), e.is_bad_input())
}

#[test]
fn an_unknown_key_is_bad_input_at_its_line() {
    let (text, bad) = error_text(
        "[[step]]\ntitle = \"a\"\ncheck = { kind = \"port\", port = 1 }\ncolour = \"red\"\n",
    );
    assert!(bad);
    assert!(text.starts_with("/w/workshop.toml:4:1: "), "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[test]
fn an_unknown_key_in_a_check_names_the_check() {
    let (text, _) = error_text(
        "[[step]]\ntitle = \"a\"\ncheck = { kind = \"port\", port = 1, host = \"x\" }\n",
    );
    assert!(text.starts_with("/w/workshop.toml:3:"), "{text}");
    assert!(text.contains("host"), "{text}");
}

#[test]
fn an_unknown_kind_and_a_bad_value_are_located() {
    let (text, _) = error_text("[[step]]\ntitle = \"a\"\ncheck = { kind = \"dns\" }\n");
    assert!(
        text.starts_with("/w/workshop.toml:3:") && text.contains("dns"),
        "{text}"
    );
    let (text, _) =
        error_text("[[step]]\ntitle = \"a\"\n\ncheck = { kind = \"http\", url = \"ftp://x\" }\n");
    assert_eq!(
        text,
        "/w/workshop.toml:4:9: url `ftp://x`: expected http:// or https://"
    );
    let (text, _) = error_text(
        "[[step]]\ntitle = \"a\"\ncheck = { kind = \"ready\", namespace = \"api\", deployments = [] }\n",
    );
    assert_eq!(
        text,
        "/w/workshop.toml:3:9: deployments: name at least one Deployment"
    );
    let (text, _) = error_text("title = \"none\"\n");
    assert!(text.contains("at least one [[step]]"), "{text}");
}

#[test]
fn a_root_that_is_not_a_folder_is_located() {
    let (text, bad) = error_text(
        "root = \"nowhere\"\n[[step]]\ntitle = \"a\"\ncheck = { kind = \"port\", port = 1 }\n",
    );
    assert!(bad);
    assert!(
        text.starts_with("/w/workshop.toml:1:8: root `nowhere`"),
        "{text}"
    );
}

/// A one-shot HTTP server on 127.0.0.1 answering every request with `status` and `body`.
async fn serve(status: u16, body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    port
}

fn http(port: u16, status: u16, body_contains: Option<&str>) -> Check {
    Check::Http {
        url: format!("http://127.0.0.1:{port}/healthz"),
        method: "GET".into(),
        json: None,
        status,
        body_contains: body_contains.map(str::to_owned),
        via_connect: false,
    }
}

fn env() -> Env {
    Env::local(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

#[tokio::test]
async fn http_passes_on_the_status_and_body_and_says_what_differs() {
    let port = serve(200, r#"{"status":"ok"}"#).await;
    assert_eq!(
        check::run(&http(port, 200, Some("ok")), &env()).await,
        Outcome::Pass
    );
    let Outcome::Fail { what } = check::run(&http(port, 200, Some("ready")), &env()).await else {
        panic!("a body without the text fails");
    };
    assert!(what.contains("without `ready`"), "{what}");
    let Outcome::Fail { what } = check::run(&http(port, 201, None), &env()).await else {
        panic!("another status fails");
    };
    assert!(what.contains("HTTP 200, expected 201"), "{what}");
}

#[tokio::test]
async fn http_to_nothing_fails_in_words() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let Outcome::Fail { what } = check::run(&http(port, 200, None), &env()).await else {
        panic!("nothing listening fails");
    };
    assert!(what.starts_with("GET http://127.0.0.1:"), "{what}");
}

#[test]
fn the_edited_text_is_the_first_quoted_one_on_the_marker_line() {
    let source = "// GREETING below\nconst GREETING: &str = \"hi \\\"you\\\"\"; // \"no\"\n";
    assert_eq!(
        super::edit::quoted_after(source, "const GREETING"),
        Some(r#"hi "you""#.to_owned())
    );
    assert_eq!(super::edit::quoted_after(source, "const OTHER"), None);
    assert_eq!(
        super::edit::quoted_after("const GREETING: &str = \"open", "GREETING"),
        None,
        "an unterminated text is none"
    );
}

/// A source file with `GREETING` set to `text`, in a fresh folder that is the root.
fn greeting_root(text: &str) -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("routes.rs"),
        format!("const GREETING: &str = \"{text}\";\n"),
    )
    .unwrap();
    let env = Env::local(dir.path().to_path_buf());
    (dir, env)
}

fn edit(port: u16) -> Check {
    Check::Edit {
        file: "routes.rs".into(),
        marker: "const GREETING".into(),
        shipped: "hello from users".into(),
        url: format!("http://127.0.0.1:{port}/hello"),
    }
}

#[tokio::test]
async fn an_edit_passes_once_the_service_answers_the_new_text() {
    let port = serve(200, "hello from alice\n").await;
    let (_dir, env) = greeting_root("hello from alice");
    assert_eq!(check::run(&edit(port), &env).await, Outcome::Pass);
}

#[tokio::test]
async fn an_edit_not_made_or_not_served_yet_says_which() {
    let port = serve(200, "hello from users\n").await;
    let (_dir, env) = greeting_root("hello from users");
    assert_eq!(
        check::run(&edit(port), &env).await,
        fail(
            r#"`const GREETING` in routes.rs is still "hello from users": change the text and save"#
        )
    );
    let (_dir, env) = greeting_root("hello from bob");
    let Outcome::Fail { what } = check::run(&edit(port), &env).await else {
        panic!("an edit the service does not answer yet fails");
    };
    assert!(
        what.contains(r#"answers "hello from users", not the edited "hello from bob" yet"#),
        "{what}"
    );
    assert!(what.contains("tether up"), "{what}");
}

#[test]
fn an_edit_check_needs_a_file_a_marker_and_an_http_url() {
    let text = GOOD.replace(
        r#"check = { kind = "port", port = 9999 }"#,
        r#"check = { kind = "edit", file = "a.rs", marker = "X", shipped = "x", url = "ftp://h/" }"#,
    );
    let Err(WorkshopError::Invalid { at, message }) = parse(&text) else {
        panic!("a non-HTTP url is refused");
    };
    assert_eq!(message, "url `ftp://h/`: expected http:// or https://");
    assert_eq!(at.line, 12);
}

#[tokio::test]
async fn port_passes_while_something_listens() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        check::run(&Check::Port { port }, &env()).await,
        Outcome::Pass
    );
    // Bound but not listening: refused, and no other test can take the port meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let Outcome::Fail { what } = check::run(&Check::Port { port }, &env()).await else {
        panic!("a closed port fails");
    };
    assert!(what.contains(&format!("localhost:{port}")), "{what}");
    drop(listener);
}

fn command(run: &[&str], exit: i32, stdout_contains: Option<&str>, timeout: u64) -> Check {
    Check::Command {
        run: run.iter().map(|s| (*s).to_owned()).collect(),
        exit,
        stdout_contains: stdout_contains.map(str::to_owned),
        timeout,
    }
}

#[tokio::test]
async fn command_checks_the_exit_code_and_output_from_the_root() {
    let sh = |script: &str| {
        vec!["sh", "-c", script]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let refused = Check::Command {
        run: sh("test -f Cargo.toml && echo 'The second payment was refused'"),
        exit: 0,
        stdout_contains: Some("refused".into()),
        timeout: 5,
    };
    assert_eq!(check::run(&refused, &env()).await, Outcome::Pass);
    let Outcome::Fail { what } = check::run(
        &command(&["sh", "-c", "echo paid TWICE"], 0, Some("refused"), 5),
        &env(),
    )
    .await
    else {
        panic!("output without the text fails");
    };
    assert!(
        what.contains("did not print `refused`: paid TWICE"),
        "{what}"
    );
    let Outcome::Fail { what } = check::run(
        &command(&["sh", "-c", "echo boom >&2; exit 3"], 0, None, 5),
        &env(),
    )
    .await
    else {
        panic!("another exit code fails");
    };
    assert!(what.contains("code 3, expected 0: boom"), "{what}");
    let Outcome::Fail { what } =
        check::run(&command(&["no-such-program-here"], 0, None, 5), &env()).await
    else {
        panic!("a missing program fails");
    };
    assert!(
        what.starts_with("cannot run `no-such-program-here`"),
        "{what}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_command_past_its_time_box_fails() {
    let started = tokio::time::Instant::now();
    let outcome = check::run(&command(&["sleep", "30"], 0, None, 2), &env()).await;
    assert_eq!(outcome, fail("no answer within 2s"));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn cluster_checks_without_a_cluster_say_why() {
    let e = Env {
        root: PathBuf::from("."),
        cluster: Err("no kubeconfig".into()),
    };
    let ready = Check::Ready {
        namespace: "api".into(),
        deployments: vec!["users".into()],
    };
    assert_eq!(check::run(&ready, &e).await, fail("no kubeconfig"));
    assert_eq!(
        check::run(&Check::Cluster {}, &e).await,
        fail("no kubeconfig")
    );
}

#[test]
fn a_deployment_is_ready_when_observed_and_available() {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    let d = |generation, observed, replicas, available| Deployment {
        metadata: kube::api::ObjectMeta {
            generation: Some(generation),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(observed),
            available_replicas: Some(available),
            ..Default::default()
        }),
    };
    assert_eq!(check::deployment_ready(&d(2, 2, 1, 1)), Ok(()));
    assert!(
        check::deployment_ready(&d(3, 2, 1, 1))
            .unwrap_err()
            .contains("rolling out")
    );
    assert_eq!(
        check::deployment_ready(&d(2, 2, 2, 1)),
        Err("has 1/2 replicas available".into())
    );
}

#[test]
fn an_intercept_is_judged_both_ways() {
    assert_eq!(
        check::judge_intercept("p", true, "port 80", true),
        Outcome::Pass
    );
    assert_eq!(check::judge_intercept("p", false, "", false), Outcome::Pass);
    assert_eq!(
        check::judge_intercept("p", false, "", true),
        fail("p is not intercepted")
    );
    assert_eq!(
        check::judge_intercept("p", true, "port 80", false),
        fail("p is still intercepted (port 80)")
    );
}

#[test]
fn a_run_resumes_at_the_first_step_that_does_not_pass() {
    let results = [Outcome::Pass, fail("x"), Outcome::Pass, fail("y")];
    assert_eq!(progress::current(&results), 2);
    assert_eq!(progress::current(&[Outcome::Pass, Outcome::Pass]), 2);
    assert_eq!(progress::current(&[fail("x")]), 1);
}

#[test]
fn progress_keeps_first_passes_and_reports_regressions() {
    let mut p = Progress::default();
    p.record(&[Outcome::Pass, Outcome::Pass, fail("x")], "t1");
    p.record(&[Outcome::Pass, Outcome::Pass, Outcome::Pass], "t2");
    assert_eq!(p.passed.get(&1).map(String::as_str), Some("t1"));
    assert_eq!(p.passed.get(&3).map(String::as_str), Some("t2"));
    assert_eq!(
        p.regressed(&[Outcome::Pass, fail("gone"), Outcome::Pass]),
        vec![2]
    );
}

#[test]
fn a_step_whose_set_up_a_later_step_ended_stays_done_and_any_other_is_undone() {
    let w = parse(
        r#"
[[step]]
title = "runs"
holds_until = 3
check = { kind = "port", port = 1 }
[[step]]
title = "served"
check = { kind = "port", port = 2 }
[[step]]
title = "stopped"
check = { kind = "port", port = 3 }
"#,
    )
    .unwrap();
    let mut saved = Progress::default();
    // "stopped" holds before anything ran: recorded only in order, so not yet.
    saved.record(&[Outcome::Pass, fail("not yet"), Outcome::Pass], "t0");
    assert_eq!(saved.passed.keys().copied().collect::<Vec<_>>(), [1]);
    saved.record(&[Outcome::Pass, Outcome::Pass, fail("not yet")], "t1");
    // Step 1 undone while step 3 does not hold: named, with its reason.
    let now = [fail("nothing on 1"), Outcome::Pass, fail("not yet")];
    let settled = progress::settle(&w.steps, &saved, &now);
    assert_eq!(settled[0], fail("nothing on 1"));
    assert_eq!(saved.regressed(&settled), vec![1]);
    assert_eq!(progress::current(&settled), 1);
    // Once step 3 holds, step 1's end was meant: done. Step 2 has no such end.
    let now = [fail("nothing on 1"), fail("gone"), Outcome::Pass];
    let settled = progress::settle(&w.steps, &saved, &now);
    assert_eq!(settled, vec![Outcome::Pass, fail("gone"), Outcome::Pass]);
    assert_eq!(saved.regressed(&settled), vec![2]);
}

#[test]
fn holds_until_must_name_a_later_step() {
    let (text, _) = error_text(
        r#"
[[step]]
title = "a"
holds_until = 1
check = { kind = "port", port = 1 }
"#,
    );
    assert!(text.contains("/w/workshop.toml:4:15"), "{text}");
    assert!(text.contains("holds_until names step 1"), "{text}");
}

#[test]
fn progress_round_trips_in_a_private_folder_and_is_removed() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = tempfile::tempdir().unwrap();
    assert_eq!(Progress::load(t.path()).unwrap(), Progress::default());
    let mut p = Progress::default();
    p.record(&[Outcome::Pass], "2026-01-01T00:00:00Z");
    p.save(t.path()).unwrap();
    let mode = std::fs::metadata(t.path().join(".tether"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(Progress::load(t.path()).unwrap(), p);
    Progress::remove(t.path()).unwrap();
    assert!(!progress::file(t.path()).exists());
    Progress::remove(t.path()).unwrap();
}

#[test]
fn a_corrupt_progress_file_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join(".tether")).unwrap();
    std::fs::write(progress::file(t.path()), "{").unwrap();
    let e = Progress::load(t.path()).unwrap_err();
    assert!(e.to_string().contains("workshop.json"), "{e}");
}

#[test]
fn the_json_report_has_every_step_and_the_current_one() {
    let w = parse(GOOD).unwrap();
    let results = [Outcome::Pass, fail("GET http://localhost:9999/: refused")];
    let value = serde_json::to_value(report::Report::new(&w, &results, 2)).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "steps": [
                {"number": 1, "title": "Something listens", "passed": true, "detail": null, "fix": "start it"},
                {"number": 2, "title": "It answers", "passed": false,
                 "detail": "GET http://localhost:9999/: refused", "fix": "make it answer"},
            ],
            "current": 2,
            "all_passed": false,
        })
    );
}

#[test]
fn plain_lines_mark_each_step_then_show_the_current_one() {
    let w = parse(GOOD).unwrap();
    let text = report::plain(&w, &[fail("nothing on 9999"), fail("no answer")], 1, &[]);
    assert_eq!(
        text,
        "\
✗ 1. Something listens: nothing on 9999 — fix: start it
✗ 2. It answers: no answer — fix: make it answer

== 1. Something listens

Start it.

    nc -l 9999
"
    );
    let done = report::plain(&w, &[Outcome::Pass, Outcome::Pass], 2, &[]);
    assert!(
        done.starts_with("✓ 1. Something listens\n✓ 2. It answers\n"),
        "{done}"
    );
    assert!(done.contains("the workshop is done"), "{done}");
    let regressed = report::plain(&w, &[fail("closed"), Outcome::Pass], 1, &[1]);
    assert!(
        regressed.contains("! step 1 passed before and fails now"),
        "{regressed}"
    );
}

fn drawn(s: &Screen) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(100, 18)).unwrap();
    terminal.draw(|f| screen::draw(f, s)).unwrap();
    terminal
}

fn shipped() -> super::Workshop {
    steps::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("workspace-demo/workshop.toml"))
        .unwrap()
}

#[test]
fn screen_at_a_failing_step() {
    let results = [
        Outcome::Pass,
        Outcome::Pass,
        Outcome::Pass,
        fail("no `tether connect` session runs"),
    ];
    let s = Screen::new(shipped(), &results, 4);
    insta::assert_snapshot!(drawn(&s).backend());
}

#[test]
fn screen_with_the_explanation_after_moving() {
    let mut s = Screen::new(shipped(), &[Outcome::Pass], 1);
    s.key(KeyCode::Char('n'));
    s.key(KeyCode::Char('e'));
    s.checked(1, Outcome::Pass);
    assert_eq!(s.selected, 1);
    insta::assert_snapshot!(drawn(&s).backend());
    s.key(KeyCode::Char('p'));
    s.key(KeyCode::Char('p'));
    assert_eq!(s.selected, 0);
    s.key(KeyCode::Char('q'));
    assert!(s.quit);
}
