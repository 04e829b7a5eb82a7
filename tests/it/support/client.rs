//! `LineClient`: a raw line-protocol client (SMTP, IMAP, POP3, FTP) with
//! STARTTLS, for tests that check what a peer or the app says on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Every read and write gives up after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain or TLS byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A CRLF line client. All methods panic on I/O errors or timeouts.
pub struct LineClient {
    reader: BufReader<Box<dyn Stream>>,
}

impl LineClient {
    /// Connects over plain TCP.
    pub async fn connect(addr: SocketAddr) -> LineClient {
        let stream = timed(TcpStream::connect(addr)).await.expect("connect");
        LineClient { reader: BufReader::new(Box::new(stream)) }
    }

    /// Connects with implicit TLS, verifying the server as `server_name`.
    pub async fn connect_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>, server_name: &str) -> LineClient {
        let stream = timed(TcpStream::connect(addr)).await.expect("connect");
        let tls = tls_connect(stream, config, server_name).await;
        LineClient { reader: BufReader::new(Box::new(tls)) }
    }

    /// Upgrades the connection to TLS (after the server agreed to STARTTLS).
    pub async fn start_tls(self, config: Arc<rustls::ClientConfig>, server_name: &str) -> LineClient {
        let tls = tls_connect(self.reader.into_inner(), config, server_name).await;
        LineClient { reader: BufReader::new(Box::new(tls)) }
    }

    /// Sends `line` plus CRLF.
    pub async fn send(&mut self, line: &str) {
        let stream = self.reader.get_mut();
        timed(stream.write_all(format!("{line}\r\n").as_bytes())).await.expect("write");
        timed(stream.flush()).await.expect("flush");
    }

    /// Reads one line without its line ending; `None` at end of stream.
    pub async fn try_read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = timed(self.reader.read_line(&mut line)).await.expect("read line");
        (read > 0).then(|| line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Reads one line without its line ending; panics at end of stream.
    pub async fn read_line(&mut self) -> String {
        self.try_read_line().await.expect("line, not end of stream")
    }

    /// Reads lines until one starts with `prefix` (an IMAP tag); returns all.
    pub async fn read_until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.try_read_line().await else {
                panic!("stream ended before {prefix:?}: {lines:?}");
            };
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Reads a (multi-line) SMTP or FTP reply: `(code, lines)`.
    pub async fn read_reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await;
            assert!(line.len() >= 3, "short reply line {line:?} after {lines:?}");
            let code = line[..3].parse::<u16>().unwrap_or_else(|_| panic!("bad reply {line:?}"));
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return (code, lines);
            }
        }
    }

    /// Sends `line` and reads the SMTP/FTP reply.
    pub async fn command(&mut self, line: &str) -> (u16, Vec<String>) {
        self.send(line).await;
        self.read_reply().await
    }
}

/// A TLS handshake over `stream`, verifying the server as `server_name`.
pub async fn tls_connect<S>(
    stream: S,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> tokio_rustls::client::TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    timed(tokio_rustls::TlsConnector::from(config).connect(name, stream)).await.expect("tls handshake")
}

async fn timed<T>(future: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")))
}
