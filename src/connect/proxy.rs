//! The loopback proxy of `tether connect`: SOCKS5 (RFC 1928, no authentication, CONNECT
//! only) and HTTP (CONNECT, and plain requests in absolute form) on one port, told apart
//! by the first byte. Every destination goes through [`reach`]: cluster names and
//! addresses through the agent, anything else from the laptop. A failed dial is answered
//! at once with the reason (a SOCKS reply code, an HTTP 502 with a body saying why).

use std::{net::IpAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;

use super::net::{ClusterNet, DialError, reach};

/// The longest HTTP request head read before the destination is known.
const HEAD_LIMIT: usize = 16 * 1024;
/// How long a client may take to say where it goes.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves proxy clients on `listener` until `shutdown`.
pub async fn serve<N: ClusterNet>(listener: TcpListener, net: N, shutdown: CancellationToken) {
    while let Some((conn, _)) = crate::accept::next(&listener, &shutdown).await {
        let net = net.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(conn, &net).await {
                tracing::debug!("a proxy client ended: {e}");
            }
        });
    }
}

/// One client: SOCKS5 when it starts with version byte 5, HTTP otherwise.
pub async fn handle<S, N>(mut client: S, net: &N) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    N: ClusterNet,
{
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(GREETING_TIMEOUT, client.read_exact(&mut first)).await;
    if !matches!(read, Ok(Ok(_))) {
        return Ok(());
    }
    if first[0] == 5 {
        socks5(client, net).await
    } else {
        http(client, first[0], net).await
    }
}

/// A SOCKS5 reply code for a failed dial.
fn socks_code(e: &DialError) -> u8 {
    match e {
        DialError::Refused(_) => 5,
        DialError::NotFound(_) | DialError::Unreachable(_) => 4,
        DialError::Disconnected(_) => 1,
    }
}

async fn socks5<S, N>(mut client: S, net: &N) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    N: ClusterNet,
{
    let n = client.read_u8().await?;
    let mut methods = vec![0u8; n as usize];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        // No acceptable method: this proxy asks for no authentication.
        return client.write_all(&[5, 0xff]).await;
    }
    client.write_all(&[5, 0]).await?;
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await?;
    let [version, command, _, kind] = head;
    if version != 5 {
        return Ok(());
    }
    let host = match kind {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a).await?;
            IpAddr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a).await?;
            IpAddr::from(a).to_string()
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; len as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return client.write_all(&reply(8)).await,
    };
    let port = client.read_u16().await?;
    if command != 1 {
        // Only CONNECT: BIND and UDP ASSOCIATE are not offered.
        return client.write_all(&reply(7)).await;
    }
    match reach(net, &host, port).await {
        Ok(mut conn) => {
            client.write_all(&reply(0)).await?;
            tokio::io::copy_bidirectional(&mut client, &mut conn)
                .await
                .map(|_| ())
        }
        Err(e) => {
            tracing::debug!(%host, port, "socks: {e}");
            client.write_all(&reply(socks_code(&e))).await
        }
    }
}

/// A SOCKS5 reply with `code` and an unspecified bound address.
fn reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// An HTTP request head, as far as the proxy reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub host: String,
    pub port: u16,
    /// CONNECT: a tunnel; otherwise a plain request, forwarded as it came.
    pub tunnel: bool,
}

/// Reads the request line of a proxy request: `CONNECT host:port HTTP/1.1`, or
/// `GET http://host[:port]/path HTTP/1.1`.
pub fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("not an HTTP request line: {line:?}"));
    };
    let (authority, default_port, tunnel) = if method.eq_ignore_ascii_case("CONNECT") {
        (target, None, true)
    } else if let Some(rest) = target.strip_prefix("http://") {
        (rest.split('/').next().unwrap_or_default(), Some(80), false)
    } else {
        return Err(format!(
            "`{target}` is not a proxy request: use CONNECT or an http:// URL"
        ));
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => (
            h,
            p.parse().map_err(|_| format!("bad port in {authority}"))?,
        ),
        _ => (
            authority,
            default_port.ok_or_else(|| format!("CONNECT {authority} names no port"))?,
        ),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("no host in {target}"));
    }
    Ok(Head {
        host: host.to_owned(),
        port,
        tunnel,
    })
}

async fn http<S, N>(mut client: S, first: u8, net: &N) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    N: ClusterNet,
{
    let mut head = vec![first];
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > HEAD_LIMIT {
            return respond(&mut client, "431 Request Header Fields Too Large", "").await;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let parsed = match parse_head(&head) {
        Ok(h) => h,
        Err(why) => return respond(&mut client, "400 Bad Request", &why).await,
    };
    let mut conn = match reach(net, &parsed.host, parsed.port).await {
        Ok(conn) => conn,
        Err(e) => {
            let status = match e {
                DialError::Unreachable(_) => "504 Gateway Timeout",
                _ => "502 Bad Gateway",
            };
            return respond(&mut client, status, &e.to_string()).await;
        }
    };
    if parsed.tunnel {
        // Bytes after the head belong to the tunnel already.
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(head.len(), |p| p + 4);
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        conn.write_all(&head[end..]).await?;
    } else {
        conn.write_all(&origin_form(&head)).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut conn)
        .await
        .map(|_| ())
}

/// A plain proxy request as its origin server expects it: the request line's target in
/// origin form (`/path`; not every server takes the absolute form), the proxy's own
/// headers dropped, and `Connection: close`, since every later request on the client's
/// connection would again be in absolute form and this proxy forwards bytes after the
/// first head.
fn origin_form(raw: &[u8]) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let (head, body) = raw.split_at(end);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let path = target
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        let proxy_own = [
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if !proxy_own {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn respond<S: AsyncWrite + Unpin>(
    client: &mut S,
    status: &str,
    why: &str,
) -> std::io::Result<()> {
    let body = format!("tether connect: {why}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(text.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_request_lines_name_their_destination() {
        let h = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            h("CONNECT orders-svc.api:80 HTTP/1.1\r\n\r\n"),
            Ok(Head {
                host: "orders-svc.api".into(),
                port: 80,
                tunnel: true
            })
        );
        assert_eq!(
            h("GET http://orders-svc.api/healthz HTTP/1.1\r\nHost: orders-svc.api\r\n\r\n"),
            Ok(Head {
                host: "orders-svc.api".into(),
                port: 80,
                tunnel: false
            })
        );
        assert_eq!(
            h("GET http://10.96.0.5:8080/x HTTP/1.1\r\n\r\n"),
            Ok(Head {
                host: "10.96.0.5".into(),
                port: 8080,
                tunnel: false
            })
        );
        assert_eq!(
            h("CONNECT [fd00::1]:443 HTTP/1.1\r\n\r\n"),
            Ok(Head {
                host: "fd00::1".into(),
                port: 443,
                tunnel: true
            })
        );
        assert!(
            h("GET /healthz HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .contains("not a proxy request")
        );
        assert!(
            h("CONNECT orders-svc.api HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .contains("no port")
        );
        assert!(h("\r\n\r\n").is_err());
    }

    #[test]
    fn plain_requests_go_on_in_origin_form_and_close() {
        let raw = b"GET http://web-svc.api/a/b?c=1 HTTP/1.1\r\nHost: web-svc.api\r\n\
                    Proxy-Connection: Keep-Alive\r\nAccept: */*\r\n\r\nbody";
        assert_eq!(
            String::from_utf8(origin_form(raw)).unwrap(),
            "GET /a/b?c=1 HTTP/1.1\r\nHost: web-svc.api\r\nAccept: */*\r\nConnection: close\r\n\r\nbody"
        );
        assert!(
            String::from_utf8(origin_form(b"GET http://h HTTP/1.1\r\n\r\n"))
                .unwrap()
                .starts_with("GET / HTTP/1.1\r\n")
        );
    }
}
