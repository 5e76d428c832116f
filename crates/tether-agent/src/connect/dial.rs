//! A `tcp:` stream: dial the host from inside the cluster, say how it went in one
//! [`Reply`] line, then carry the bytes both ways until both sides are done.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::resolve::ClusterDns;
use crate::tunnel::target::{Failure, Reply, line};

/// Dials `host:port`, answers on `stream`, splices. Returns the bytes carried (to the
/// destination, back) for the log, or why nothing was.
pub async fn serve<S>(
    mut stream: S,
    dns: &ClusterDns,
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let dialled = tokio::time::timeout(timeout, dial(dns, host, port)).await;
    let mut conn = match dialled {
        Ok(Ok(conn)) => conn,
        Ok(Err((failure, detail))) => return refuse(&mut stream, failure, detail).await,
        Err(_) => {
            let detail = format!("{host}:{port}: no answer within {timeout:?}");
            return refuse(&mut stream, Failure::Unreachable, detail).await;
        }
    };
    let _ = conn.set_nodelay(true);
    let detail = conn
        .peer_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    stream
        .write_all(&line(&Reply {
            failure: None,
            detail,
        }))
        .await?;
    tokio::io::copy_bidirectional(&mut stream, &mut conn).await
}

async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    failure: Failure,
    detail: String,
) -> io::Result<(u64, u64)> {
    stream
        .write_all(&line(&Reply {
            failure: Some(failure),
            detail,
        }))
        .await?;
    stream.shutdown().await?;
    Ok((0, 0))
}

/// The first address of `host` that accepts, or the failure of the last one tried.
async fn dial(dns: &ClusterDns, host: &str, port: u16) -> Result<TcpStream, (Failure, String)> {
    let addrs = dns.addresses(host).await.map_err(|e| {
        let failure = if e.is_no_records_found() {
            Failure::NotFound
        } else {
            Failure::Unreachable
        };
        (failure, format!("{host}: {e}"))
    })?;
    let mut last = (Failure::NotFound, format!("{host}: no addresses"));
    for ip in addrs {
        let addr = SocketAddr::new(ip, port);
        match TcpStream::connect(addr).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = (classify(&e), format!("{addr}: {e}")),
        }
    }
    Err(last)
}

/// What a failed connect means to the laptop's client.
fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        _ => Failure::Unreachable,
    }
}
