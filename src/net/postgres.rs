//! rustls for tokio-postgres, which ships adapters only for native-tls and
//! OpenSSL. Used by the bridge's PostgreSQL store ([`MakeRustls`]) and by the
//! postgres prober (one [`Connect`] with a [`Watch`] that times and
//! classifies the handshake).
//!
//! Not `tokio-postgres-rustls`: its stream hides the rustls connection (no
//! `get_ref`), so the prober could not read the negotiated version, cipher
//! and ALPN or the peer certificates of a finished handshake for
//! `probe_tls_*` / `probe_ssl_*`, and its connector offers no hook to time the
//! `tls` phase or classify a failed handshake. Chain capture alone would work
//! (it lives in the verifier of [`crate::net::tls::Client`]), the rest would not.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// A finished tokio-rustls stream as tokio-postgres wants it.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> RustlsStream<S> {
    /// Wraps a finished TLS stream.
    pub fn new(stream: tokio_rustls::client::TlsStream<S>) -> Self {
        RustlsStream(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // Without binding data SCRAM still works (channel_binding=prefer).
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Makes one [`Connect`] per connection, naming the server by the URL's host.
#[derive(Clone)]
pub struct MakeRustls(pub Arc<rustls::ClientConfig>);

/// What a [`Connect`] tells about its handshake: the prober times it and
/// describes the session; the store needs nothing (`()`).
pub trait Watch: Send + 'static {
    /// The server accepted the SSL request: the handshake starts.
    fn started(&self) {}
    /// The handshake ended, with the connection or the error.
    fn finished(&self, _handshake: Result<&rustls::ClientConnection, &io::Error>) {}
}

impl Watch for () {}

/// One connection's handshake; without a client config TLS is refused (the
/// prober's `sslmode: disable`, where tokio-postgres never asks for it).
pub struct Connect<W = ()> {
    config: Option<Arc<rustls::ClientConfig>>,
    server_name: rustls::pki_types::ServerName<'static>,
    watch: W,
}

impl<W> Connect<W> {
    /// A handshake with `config` (`None`: refused) naming `server_name`, told to `watch`.
    pub fn new(
        config: Option<Arc<rustls::ClientConfig>>,
        server_name: rustls::pki_types::ServerName<'static>,
        watch: W,
    ) -> Self {
        Connect { config, server_name, watch }
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let server_name = rustls::pki_types::ServerName::try_from(domain.to_string())
            .map_err(|err| io::Error::other(format!("invalid server name {domain:?}: {err}")))?;
        Ok(Connect::new(Some(Arc::clone(&self.0)), server_name, ()))
    }
}

impl<S, W: Watch> TlsConnect<S> for Connect<W>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.watch.started();
            let Some(config) = self.config else {
                return Err(io::Error::other("TLS is disabled"));
            };
            let handshake = tokio_rustls::TlsConnector::from(config).connect(self.server_name, stream).await;
            self.watch.finished(handshake.as_ref().map(|stream| stream.get_ref().1));
            handshake.map(RustlsStream::new)
        })
    }
}
