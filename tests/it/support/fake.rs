//! In-process misbehaving servers: a port nobody listens on, a server that
//! accepts and never answers, and scripted line dialogues (optionally TLS).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::client::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A background server task, aborted (closing its sockets) on drop.
pub struct FakeServer {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Every line clients sent, in order, without line endings.
    pub received: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// A copy of the lines received so far.
    pub fn received_lines(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
    // The listener drops here, so the port is closed.
}

/// A server that accepts TCP connections and never sends or reads a byte.
pub async fn hang_server() -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    FakeServer { addr, received: Arc::default(), task }
}

/// One step of a scripted dialogue.
#[derive(Clone)]
pub enum ScriptStep {
    /// Write this line followed by CRLF.
    Send(String),
    /// Read one line; it must match this regex, else the connection closes.
    Expect(String),
    /// Upgrade the connection to TLS as the server (after a STARTTLS reply).
    StartTls(Arc<rustls::ServerConfig>),
    /// Wait before the next step.
    Sleep(Duration),
    /// Close the connection.
    Close,
}

impl ScriptStep {
    /// `ScriptStep::Send` from anything string-like.
    pub fn send(line: impl Into<String>) -> ScriptStep {
        ScriptStep::Send(line.into())
    }

    /// `ScriptStep::Expect` from anything string-like.
    pub fn expect(pattern: impl Into<String>) -> ScriptStep {
        ScriptStep::Expect(pattern.into())
    }
}

/// A plain TCP server that runs `script` on every connection it accepts.
pub async fn scripted_line_server(script: Vec<ScriptStep>) -> FakeServer {
    serve_script(script, None).await
}

/// Like [`scripted_line_server`] behind implicit TLS with `config`.
pub async fn scripted_tls_server(config: Arc<rustls::ServerConfig>, script: Vec<ScriptStep>) -> FakeServer {
    serve_script(script, Some(config)).await
}

async fn serve_script(script: Vec<ScriptStep>, tls: Option<Arc<rustls::ServerConfig>>) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let script = Arc::new(script);
    let task_received = received.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            let received = task_received.clone();
            let tls = tls.clone();
            connections.spawn(async move {
                let _ = run_script(stream, tls, &script, &received).await;
            });
        }
    });
    FakeServer { addr, received, task }
}

async fn run_script(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    script: &[ScriptStep],
    received: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let stream: Box<dyn Stream> = match tls {
        Some(config) => Box::new(tokio_rustls::TlsAcceptor::from(config).accept(stream).await?),
        None => Box::new(stream),
    };
    let mut reader = BufReader::new(stream);
    for step in script {
        match step {
            ScriptStep::Send(line) => {
                reader.get_mut().write_all(format!("{line}\r\n").as_bytes()).await?;
                reader.get_mut().flush().await?;
            }
            ScriptStep::Expect(pattern) => {
                let mut line = String::new();
                if reader.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                received.lock().expect("lock").push(line.clone());
                let regex = regex::Regex::new(pattern).expect("valid script regex");
                if !regex.is_match(&line) {
                    return Ok(());
                }
            }
            ScriptStep::StartTls(config) => {
                // The client waits for our STARTTLS reply before its
                // handshake, so the read buffer is empty here.
                let inner = reader.into_inner();
                let tls = tokio_rustls::TlsAcceptor::from(config.clone()).accept(inner).await?;
                reader = BufReader::new(Box::new(tls) as Box<dyn Stream>);
            }
            ScriptStep::Sleep(duration) => tokio::time::sleep(*duration).await,
            ScriptStep::Close => return Ok(()),
        }
    }
    // Let the client read the last reply before the socket closes.
    reader.get_mut().shutdown().await
}
