//! A protocol-level fake of Microsoft SQL Server, because no real server can
//! run here. It speaks TDS 7.4 as far as a login probe goes: PRELOGIN (with
//! any ENCRYPTION answer), the TLS handshake inside PRELOGIN packets, LOGIN7
//! answered with LOGINACK + ENVCHANGE + DONE or with ERROR 18456, and SQL
//! batches for `SELECT <n>`, `SELECT <n> WHERE 1=0` and `SELECT @@VERSION`
//! (anything else gets error 208).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::db::TaskServer;

/// The fake's version in PRELOGIN: 16.0.1000 (SQL Server 2022 RTM).
pub const VERSION: [u8; 4] = [16, 0, 0x03, 0xE8];
/// What `SELECT @@VERSION` returns.
pub const VERSION_TEXT: &str = "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (checkit fake)";

const PRELOGIN: u8 = 0x12;
const REPLY: u8 = 0x04;
const LOGIN7: u8 = 0x10;
const SQL_BATCH: u8 = 0x01;
const ENCRYPT_NOT_SUP: u8 = 0x02;
const ENCRYPT_REQ: u8 = 0x03;

/// How the fake behaves.
#[derive(Clone)]
pub struct TdsOpts {
    /// The only login accepted.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The PRELOGIN ENCRYPTION answer: 0 off, 1 on, 2 not supported, 3 required.
    pub encryption: u8,
    /// Certificate and key for TLS (needed when `encryption` is 1 or 3).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Answer LOGIN7 with a token type that does not exist.
    pub garbled_login_reply: bool,
}

impl Default for TdsOpts {
    fn default() -> Self {
        TdsOpts {
            user: "checkit".into(),
            password: "checkit-tds-secret".into(),
            encryption: ENCRYPT_NOT_SUP,
            tls: None,
            garbled_login_reply: false,
        }
    }
}

/// What a client sent in LOGIN7.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password, de-obfuscated.
    pub password: String,
    /// Application name.
    pub app_name: String,
    /// Database.
    pub database: String,
    /// Whether the login arrived over TLS.
    pub tls: bool,
}

/// A running fake on `server.addr`; logins are recorded.
pub struct TdsFake {
    /// The listener (aborted on drop).
    pub server: TaskServer,
    /// Every LOGIN7 received.
    pub logins: Arc<Mutex<Vec<Login>>>,
}

impl TdsFake {
    /// Starts the fake on a free loopback port.
    pub async fn start(mut opts: TdsOpts) -> TdsFake {
        // TLS 1.3 session tickets would follow the handshake still framed as
        // PRELOGIN, which no client expects (SQL Server uses TLS 1.2 here).
        opts.tls = opts.tls.map(|config| {
            let mut config = (*config).clone();
            config.send_tls13_tickets = 0;
            Arc::new(config)
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let logins: Arc<Mutex<Vec<Login>>> = Arc::default();
        let recorded = logins.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let opts = opts.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, opts, recorded).await;
                });
            }
        });
        TdsFake { server: TaskServer::new(addr, task), logins }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The logins received so far.
    pub fn logins(&self) -> Vec<Login> {
        self.logins.lock().expect("lock").clone()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn serve(mut stream: TcpStream, opts: TdsOpts, logins: Arc<Mutex<Vec<Login>>>) -> io::Result<()> {
    let (kind, request) = read_message(&mut stream).await?;
    if kind != PRELOGIN {
        return Ok(());
    }
    let client_encryption =
        options(&request).into_iter().find(|(token, _)| *token == 1).and_then(|(_, value)| value.first().copied());
    let version = [VERSION[0], VERSION[1], VERSION[2], VERSION[3], 0, 0];
    let response = prelogin(&[(0, &version), (1, &[opts.encryption]), (2, &[0]), (3, &[]), (4, &[0])]);
    write_message(&mut stream, REPLY, &response).await?;
    let client_declines = client_encryption == Some(ENCRYPT_NOT_SUP);
    if client_declines && opts.encryption == ENCRYPT_REQ {
        // A real server closes the connection here.
        return Ok(());
    }
    let tls = !client_declines && matches!(opts.encryption, 1 | 3);
    let mut io: Box<dyn Io> = match (&opts.tls, tls) {
        (Some(config), true) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let mut secure = acceptor.accept(Framed::new(stream)).await?;
            secure.get_mut().0.handshake_done = true;
            Box::new(secure)
        }
        _ => Box::new(stream),
    };
    loop {
        let (kind, payload) = read_message(&mut io).await?;
        match kind {
            LOGIN7 => {
                let mut login = parse_login(&payload).ok_or_else(|| io::Error::other("bad LOGIN7"))?;
                login.tls = tls;
                logins.lock().expect("lock").push(login.clone());
                if opts.garbled_login_reply {
                    write_message(&mut io, REPLY, &[0x00, 0x01, 0x02]).await?;
                    return Ok(());
                }
                if login.user != opts.user || login.password != opts.password {
                    let mut reply = error_token(18456, 1, 14, &format!("Login failed for user '{}'.", login.user));
                    reply.extend(done(0x0002, 0, 0));
                    write_message(&mut io, REPLY, &reply).await?;
                    return Ok(());
                }
                let mut reply = login_ack();
                let database = if login.database.is_empty() { "master".to_string() } else { login.database };
                reply.extend(env_change_database(&database));
                reply.extend(done(0, 0, 0));
                write_message(&mut io, REPLY, &reply).await?;
            }
            SQL_BATCH => {
                let headers = payload.get(..4).map(|len| u32::from_le_bytes([len[0], len[1], len[2], len[3]]));
                let text = payload.get(headers.unwrap_or(0) as usize..).unwrap_or_default();
                write_message(&mut io, REPLY, &answer(&ucs2(text))).await?;
            }
            _ => return Ok(()),
        }
    }
}

/// The reply to one SQL batch.
fn answer(query: &str) -> Vec<u8> {
    let query = query.trim().to_ascii_uppercase();
    if query == "SELECT @@VERSION" {
        let mut reply = vec![0x81, 1, 0, 0, 0, 0, 0, 0x01, 0];
        // NVARCHAR(4000), Latin1_General_CI_AS collation, no column name.
        reply.extend([0xE7, 0x40, 0x1F, 0x09, 0x04, 0xD0, 0x00, 0x34, 0x00]);
        let text: Vec<u8> = VERSION_TEXT.encode_utf16().flat_map(u16::to_le_bytes).collect();
        reply.push(0xD1);
        reply.extend((text.len() as u16).to_le_bytes());
        reply.extend(text);
        reply.extend(done(0x0010, 0xC1, 1));
        return reply;
    }
    let (number, empty) = match query.strip_prefix("SELECT ") {
        Some(rest) => match rest.strip_suffix(" WHERE 1=0") {
            Some(number) => (number.parse::<i32>().ok(), true),
            None => (rest.parse::<i32>().ok(), false),
        },
        None => (None, false),
    };
    let Some(number) = number else {
        let mut reply = error_token(208, 1, 16, "Invalid object name 'no_such_table'.");
        reply.extend(done(0x0002, 0xC1, 0));
        return reply;
    };
    // One nullable INT column without a name.
    let mut reply = vec![0x81, 1, 0, 0, 0, 0, 0, 0x01, 0, 0x26, 4, 0];
    let rows = if empty { 0 } else { 1 };
    if !empty {
        reply.extend([0xD1, 4]);
        reply.extend(number.to_le_bytes());
    }
    reply.extend(done(0x0010, 0xC1, rows));
    reply
}

fn login_ack() -> Vec<u8> {
    let name = b_varchar("Microsoft SQL Server");
    let mut body = vec![0x01, 0x74, 0x00, 0x00, 0x04];
    body.extend(name);
    body.extend([VERSION[0], VERSION[1], VERSION[2], VERSION[3]]);
    token(0xAD, &body)
}

fn env_change_database(database: &str) -> Vec<u8> {
    let mut body = vec![0x01];
    body.extend(b_varchar(database));
    body.extend(b_varchar("master"));
    token(0xE3, &body)
}

fn error_token(number: u32, state: u8, class: u8, message: &str) -> Vec<u8> {
    let mut body = number.to_le_bytes().to_vec();
    body.extend([state, class]);
    let text: Vec<u8> = message.encode_utf16().flat_map(u16::to_le_bytes).collect();
    body.extend(((text.len() / 2) as u16).to_le_bytes());
    body.extend(text);
    body.extend(b_varchar("fake"));
    body.extend(b_varchar(""));
    body.extend(1u32.to_le_bytes());
    token(0xAA, &body)
}

fn done(status: u16, command: u16, rows: u64) -> Vec<u8> {
    let mut done = vec![0xFD];
    done.extend(status.to_le_bytes());
    done.extend(command.to_le_bytes());
    done.extend(rows.to_le_bytes());
    done
}

fn token(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut token = vec![kind];
    token.extend((body.len() as u16).to_le_bytes());
    token.extend_from_slice(body);
    token
}

fn b_varchar(text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut out = vec![units.len() as u8];
    out.extend(units.iter().flat_map(|unit| unit.to_le_bytes()));
    out
}

fn ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// LOGIN7 (MS-TDS 2.2.6.4): offset/length pairs after a 36-byte fixed part.
fn parse_login(payload: &[u8]) -> Option<Login> {
    let field = |at: usize| -> Option<&[u8]> {
        let pair = payload.get(at..at + 4)?;
        let offset = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
        let chars = usize::from(u16::from_le_bytes([pair[2], pair[3]]));
        payload.get(offset..offset + chars * 2)
    };
    // Each password byte has its nibbles swapped and is XORed with 0xA5.
    let password: Vec<u8> = field(44)?.iter().map(|byte| (byte ^ 0xA5).rotate_left(4)).collect();
    Some(Login {
        user: ucs2(field(40)?),
        password: ucs2(&password),
        app_name: ucs2(field(48)?),
        database: ucs2(field(68)?),
        tls: false,
    })
}

fn prelogin(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let table_len = entries.len() * 5 + 1;
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (token, value) in entries {
        table.push(*token);
        table.extend(((table_len + data.len()) as u16).to_be_bytes());
        table.extend((value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    table.push(0xFF);
    table.extend(data);
    table
}

fn options(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut found = Vec::new();
    let mut index = 0;
    while let (Some(&token), Some(entry)) = (payload.get(index), payload.get(index + 1..index + 5)) {
        if token == 0xFF {
            break;
        }
        let offset = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
        let length = usize::from(u16::from_be_bytes([entry[2], entry[3]]));
        found.push((token, payload.get(offset..offset + length).unwrap_or_default().to_vec()));
        index += 5;
    }
    found
}

async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u8, Vec<u8>)> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length < 8 || payload.len() > 1 << 20 {
            return Err(io::Error::other("bad TDS header"));
        }
        let start = payload.len();
        payload.resize(start + length - 8, 0);
        stream.read_exact(&mut payload[start..]).await?;
        if header[1] & 0x01 != 0 {
            return Ok((header[0], payload));
        }
    }
}

async fn write_message<S: AsyncWrite + Unpin>(stream: &mut S, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut packet = vec![kind, 0x01];
    packet.extend(((payload.len() + 8) as u16).to_be_bytes());
    packet.extend([0, 0, 1, 0]);
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await?;
    stream.flush().await
}

/// The server side of TLS inside PRELOGIN packets: handshake records are
/// unwrapped on the way in and wrapped on the way out until the handshake
/// is done.
struct Framed {
    inner: TcpStream,
    handshake_done: bool,
    header: [u8; 8],
    header_filled: usize,
    payload_left: usize,
    outgoing: Vec<u8>,
    packet: Vec<u8>,
    written: usize,
}

impl Framed {
    fn new(inner: TcpStream) -> Self {
        Framed {
            inner,
            handshake_done: false,
            header: [0; 8],
            header_filled: 0,
            payload_left: 0,
            outgoing: Vec::new(),
            packet: Vec::new(),
            written: 0,
        }
    }
}

impl AsyncRead for Framed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.handshake_done {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.payload_left == 0 {
            // The client may send its first raw TLS record (LOGIN7) right
            // behind its last framed handshake record: look before reading.
            let mut first = [0u8; 1];
            let mut peek = ReadBuf::new(&mut first);
            if this.header_filled == 0 && ready!(this.inner.poll_peek(cx, &mut peek))? == 1 && first[0] != PRELOGIN {
                this.handshake_done = true;
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut header = ReadBuf::new(&mut this.header[this.header_filled..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut header))?;
            let read = header.filled().len();
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
            this.header_filled += read;
            if this.header_filled == 8 {
                this.header_filled = 0;
                this.payload_left = usize::from(u16::from_be_bytes([this.header[2], this.header[3]])).saturating_sub(8);
            }
        }
        let want = this.payload_left.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let read = limited.filled().len();
        buf.advance(read);
        this.payload_left -= read;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Framed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.handshake_done {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        self.outgoing.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.packet.is_empty() && !this.outgoing.is_empty() {
            let payload = std::mem::take(&mut this.outgoing);
            this.packet = vec![PRELOGIN, 0x01];
            this.packet.extend(((payload.len() + 8) as u16).to_be_bytes());
            this.packet.extend([0, 0, 1, 0]);
            this.packet.extend(payload);
            this.written = 0;
        }
        while this.written < this.packet.len() {
            this.written += ready!(Pin::new(&mut this.inner).poll_write(cx, &this.packet[this.written..]))?;
        }
        this.packet.clear();
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
