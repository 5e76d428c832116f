//! The `gateway` binary as the pod runs it: it refuses to start without a
//! key to check tokens with, rather than accepting tokens anyone can forge.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[test]
fn unset_or_empty_jwt_secret_stops_the_start_with_status_2() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    for secret in [None, Some("")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .env_remove("JWT_SECRET")
            .env("PORT", &port)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(secret) = secret {
            command.env("JWT_SECRET", secret);
        }
        let mut child = command.spawn().expect("the gateway binary starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait for the binary").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("the binary's output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "the gateway must refuse to start without JWT_SECRET ({secret:?}); it printed:\n{text}"
        );
        assert!(
            text.contains("gateway: JWT_SECRET=\"\" is invalid: it must be set"),
            "{text}"
        );
    }
}
