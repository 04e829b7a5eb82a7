//! The `mssql` prober: logs in to Microsoft SQL Server, optionally runs a
//! query and checks its result.
//!
//! checkit speaks PRELOGIN and the TLS handshake itself (TDS carries the
//! handshake inside PRELOGIN packets), with its own rustls client so that
//! `probe_ssl_*` describes the server's certificate. tiberius then does
//! LOGIN7 and the query over the finished stream: a small shim answers its
//! PRELOGIN with the server's real answer, marked "no encryption" because the
//! stream beneath it is already encrypted. tiberius 0.12 cannot be given a
//! rustls config or show the peer certificate, hence this split.

use super::session::PhaseFamilies;
use super::sql::{self, QueryResult, Verify};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// The client's encryption request (TDS 7.x PRELOGIN `ENCRYPTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// No TLS; fails when the server insists on it.
    Off,
    /// TLS when the server supports it, plain otherwise.
    #[default]
    On,
    /// TLS or failure.
    Required,
}

/// The `mssql:` block of a module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The keys every database prober shares.
    #[serde(flatten)]
    pub common: sql::Common,
    /// Whether to encrypt.
    pub encryption: Encryption,
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, problems);
        if self.common.application_name.encode_utf16().count() > 128 {
            problems.push(format!("{path}.application_name"), "application_name must be at most 128 characters");
        }
    }
}

const METRICS: PhaseFamilies = super::sql::metrics!("mssql", "MSSQL");
const VERSION: &str = "probe_mssql_version_info";
const HELP_VERSION: &str = "The server version the MSSQL server announced in its PRELOGIN response";
const DEFAULT_PORT: u16 = 1433;

/// TDS packet types and PRELOGIN values (MS-TDS 2.2.3 and 2.2.6.5).
const PACKET_PRELOGIN: u8 = 0x12;
const PACKET_REPLY: u8 = 0x04;
const STATUS_EOM: u8 = 0x01;
const HEADER_LEN: usize = 8;
const OPTION_VERSION: u8 = 0x00;
const OPTION_ENCRYPTION: u8 = 0x01;
const OPTION_INSTOPT: u8 = 0x02;
const OPTION_THREADID: u8 = 0x03;
const OPTION_MARS: u8 = 0x04;
const OPTION_END: u8 = 0xFF;
const ENCRYPT_OFF: u8 = 0x00;
const ENCRYPT_ON: u8 = 0x01;
const ENCRYPT_NOT_SUP: u8 = 0x02;
const ENCRYPT_REQ: u8 = 0x03;
/// A PRELOGIN response is a few dozen bytes; more is not TDS.
const MAX_PRELOGIN: usize = 4096;
/// Login failed for user (wrong password, unknown login, disabled login).
const LOGIN_FAILED: u32 = 18456;

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let (password, mut stream, host) = config.common.open(ctx, METRICS, DEFAULT_PORT).await?;

    let start = Instant::now();
    let request = prelogin_request(if config.encryption == Encryption::Off { ENCRYPT_NOT_SUP } else { ENCRYPT_ON });
    let exchanged = ctx
        .within(Phase::Connect, async {
            stream.write_all(&request).await?;
            read_message(&mut stream, MAX_PRELOGIN).await
        })
        .await;
    METRICS.add(ctx, Phase::Connect, start.elapsed());
    let response = exchanged?.map_err(|err| sql::io_failure(Phase::Connect, err))?;
    let prelogin = Prelogin::parse(&response.payload)
        .ok_or_else(|| ProbeError::new(Phase::Connect, Reason::UnexpectedResponse, "invalid PRELOGIN response"))?;
    if let Some(version) = &prelogin.version {
        sql::record_version(ctx, VERSION, HELP_VERSION, version);
    }
    ctx.log.info(format!("PRELOGIN done version={:?} encryption={}", prelogin.version, prelogin.encryption));

    let encrypt = match (config.encryption, prelogin.encryption) {
        (Encryption::Off, ENCRYPT_OFF | ENCRYPT_NOT_SUP) => false,
        (Encryption::Off, _) => {
            return Err(ProbeError::new(Phase::Tls, Reason::TlsPolicy, "the server requires encryption"));
        }
        (_, ENCRYPT_ON | ENCRYPT_REQ) => true,
        (Encryption::On, ENCRYPT_NOT_SUP) => false,
        (Encryption::Required, ENCRYPT_NOT_SUP) => {
            return Err(ProbeError::new(Phase::Tls, Reason::TlsPolicy, "the server does not support encryption"));
        }
        (_, other) => {
            return Err(ProbeError::new(
                Phase::Connect,
                Reason::UnexpectedResponse,
                format!("PRELOGIN encryption value {other} is not valid here"),
            ));
        }
    };
    let transport: Box<dyn sql::Io> = if encrypt {
        let client = sql::tls_client(&config.common.tls_config, Verify::ChainAndName)?;
        let server_name = sql::server_name(ctx, &config.common.tls_config, &host);
        let framed = TdsTls::new(stream);
        let mut secure = sql::tls_handshake(ctx, METRICS, &client, &server_name, framed).await?;
        secure.get_mut().0.handshake_done = true;
        Box::new(secure)
    } else {
        Box::new(stream)
    };
    let shim = PreloginShim::new(transport, &response.payload);

    let mut tiberius_config = tiberius::Config::new();
    tiberius_config.host(&host);
    tiberius_config.encryption(tiberius::EncryptionLevel::NotSupported);
    tiberius_config.application_name(&config.common.application_name);
    if let Some(database) = &config.common.database {
        tiberius_config.database(database);
    }
    let secret = password.as_ref().map(|secret| secret.expose()).unwrap_or_default();
    tiberius_config.authentication(tiberius::AuthMethod::sql_server(&config.common.user, secret));

    let start = Instant::now();
    let login =
        ctx.within(Phase::Auth, unpanicked(tiberius::Client::connect(tiberius_config, shim.compat_write()))).await;
    METRICS.add(ctx, Phase::Auth, start.elapsed());
    let mut client = login?.map_err(|err| tiberius_failure(Phase::Auth, err))?;
    ctx.log.info(format!("Logged in user={:?} tls={encrypt}", config.common.user));

    let result = match config.common.query.as_deref() {
        None => Ok(()),
        Some(query) => {
            let start = Instant::now();
            let outcome = ctx.within(Phase::Query, unpanicked(run_query(&mut client, query))).await;
            METRICS.add(ctx, Phase::Query, start.elapsed());
            match outcome? {
                Ok(result) => {
                    ctx.log.info(format!("Query done rows={} first_value={:?}", result.rows, result.first_value));
                    config.common.expectation().check(&result)
                }
                Err(err) => Err(tiberius_failure(Phase::Query, err)),
            }
        }
    };
    let _ = tokio::time::timeout_at(ctx.deadline, client.close()).await;
    result
}

/// tiberius panics on token types it knows but does not implement; a
/// server sending one is a protocol surprise, not a reason to lose the probe.
async fn unpanicked<T>(future: impl std::future::Future<Output = tiberius::Result<T>>) -> tiberius::Result<T> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(future).catch_unwind().await.unwrap_or_else(|_| {
        Err(tiberius::error::Error::Protocol("the server sent a token tiberius cannot read".into()))
    })
}

async fn run_query<S>(client: &mut tiberius::Client<S>, query: &str) -> tiberius::Result<QueryResult>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send,
{
    let mut stream = client.simple_query(query).await?;
    let mut result = QueryResult::default();
    while let Some(item) = stream.try_next().await? {
        let tiberius::QueryItem::Row(row) = item else { continue };
        if row.result_index() > 0 {
            break;
        }
        if result.first_value.is_none() {
            result.first_value = Some(row.cells().next().and_then(|(_, data)| column_text(data)));
        }
        result.rows += 1;
    }
    Ok(result)
}

/// A value as text, the way expectations compare it. Dates and times use
/// ISO 8601 with a space (`2024-05-01 12:00:00.000`).
fn column_text(data: &tiberius::ColumnData<'_>) -> Option<String> {
    use tiberius::ColumnData;
    match data {
        ColumnData::U8(value) => value.map(|v| v.to_string()),
        ColumnData::I16(value) => value.map(|v| v.to_string()),
        ColumnData::I32(value) => value.map(|v| v.to_string()),
        ColumnData::I64(value) => value.map(|v| v.to_string()),
        ColumnData::F32(value) => value.map(|v| v.to_string()),
        ColumnData::F64(value) => value.map(|v| v.to_string()),
        ColumnData::Bit(value) => value.map(|v| if v { "1" } else { "0" }.to_string()),
        ColumnData::String(value) => value.as_ref().map(|v| v.to_string()),
        ColumnData::Guid(value) => value.map(|v| v.to_string().to_uppercase()),
        ColumnData::Binary(value) => value.as_ref().map(|v| format!("0x{}", hex::encode_upper(v))),
        ColumnData::Numeric(value) => value.map(|v| v.to_string()),
        ColumnData::Xml(value) => value.as_ref().map(|v| v.to_string()),
        ColumnData::DateTime(value) => value.map(|v| {
            // Days since 1900-01-01 and 1/300 s ticks.
            let millis = (u64::from(v.seconds_fragments()) * 10 + 1) / 3;
            datetime_text(1900, i64::from(v.days()), millis * 1_000_000, 3)
        }),
        ColumnData::SmallDateTime(value) => value
            .map(|v| datetime_text(1900, i64::from(v.days()), u64::from(v.seconds_fragments()) * 60_000_000_000, 0)),
        ColumnData::Time(value) => value.map(|v| time_text(time_nanos(v), v.scale())),
        ColumnData::Date(value) => value.map(|v| date_text(1, i64::from(v.days()))),
        ColumnData::DateTime2(value) => {
            value.map(|v| datetime_text(1, i64::from(v.date().days()), time_nanos(v.time()), v.time().scale()))
        }
        ColumnData::DateTimeOffset(value) => value.map(|v| {
            // Stored in UTC; shown in the value's own offset, as SQL Server does.
            let offset = i64::from(v.offset());
            let utc = v.datetime2();
            let nanos = time_nanos(utc.time()) as i128 + i128::from(offset) * 60_000_000_000;
            let day_nanos = 86_400_000_000_000i128;
            let days = i64::from(utc.date().days()) + nanos.div_euclid(day_nanos) as i64;
            let local = datetime_text(1, days, nanos.rem_euclid(day_nanos) as u64, utc.time().scale());
            let sign = if offset < 0 { '-' } else { '+' };
            format!("{local} {sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60)
        }),
    }
}

fn time_nanos(time: tiberius::time::Time) -> u64 {
    time.increments().saturating_mul(10u64.pow(9u32.saturating_sub(u32::from(time.scale()))))
}

fn date_text(base_year: i32, days: i64) -> String {
    chrono::NaiveDate::from_ymd_opt(base_year, 1, 1)
        .and_then(|base| base.checked_add_signed(chrono::TimeDelta::days(days)))
        .map(|date| date.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn time_text(nanos: u64, scale: u8) -> String {
    let seconds = nanos / 1_000_000_000;
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if scale > 0 {
        let fraction = format!("{:09}", nanos % 1_000_000_000);
        text.push('.');
        text.push_str(&fraction[..usize::from(scale.min(9))]);
    }
    text
}

fn datetime_text(base_year: i32, days: i64, nanos: u64, scale: u8) -> String {
    format!("{} {}", date_text(base_year, days), time_text(nanos, scale))
}

/// Maps a tiberius failure: login failed is `auth_failed`, other server
/// errors are `status` at login and `query` afterwards.
fn tiberius_failure(phase: Phase, err: tiberius::error::Error) -> ProbeError {
    use tiberius::error::Error;
    match &err {
        Error::Server(token) if token.code() == LOGIN_FAILED => {
            ProbeError::new(phase, Reason::AuthFailed, format!("error {}: {}", token.code(), token.message()))
        }
        Error::Server(token) => ProbeError::new(
            phase,
            if phase == Phase::Query { Reason::Query } else { Reason::Status },
            format!("error {}: {}", token.code(), token.message()),
        ),
        Error::Io { kind, message } => sql::io_failure(phase, io::Error::new(*kind, message.clone())),
        _ => ProbeError::new(phase, Reason::UnexpectedResponse, err),
    }
}

/// Our PRELOGIN: version, encryption, instance, thread id, MARS.
fn prelogin_request(encryption: u8) -> Vec<u8> {
    let options: [(u8, &[u8]); 5] = [
        (OPTION_VERSION, &[0, 0, 0, 0, 0, 0]),
        (OPTION_ENCRYPTION, &[encryption]),
        (OPTION_INSTOPT, &[0]),
        (OPTION_THREADID, &[0, 0, 0, 0]),
        (OPTION_MARS, &[0]),
    ];
    let mut table = Vec::new();
    let mut data = Vec::new();
    let table_len = options.len() * 5 + 1;
    for (token, value) in options {
        table.push(token);
        table.extend_from_slice(&((table_len + data.len()) as u16).to_be_bytes());
        table.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    table.push(OPTION_END);
    table.extend_from_slice(&data);
    packet(PACKET_PRELOGIN, 1, &table)
}

fn packet(kind: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() + HEADER_LEN) as u16;
    let mut packet = vec![kind, STATUS_EOM];
    packet.extend_from_slice(&length.to_be_bytes());
    packet.extend_from_slice(&[0, 0, id, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// A reply message: the payloads of its packets.
struct Message {
    payload: Vec<u8>,
}

/// Reads reply packets up to end-of-message, refusing anything that is not
/// TDS framing before buffering it.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S, limit: usize) -> io::Result<Message> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header[0] != PACKET_REPLY || length < HEADER_LEN || payload.len() + length > limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the server's answer is not a TDS reply"));
        }
        let start = payload.len();
        payload.resize(start + length - HEADER_LEN, 0);
        stream.read_exact(&mut payload[start..]).await?;
        if header[1] & STATUS_EOM != 0 {
            return Ok(Message { payload });
        }
    }
}

/// The parts of a PRELOGIN response the prober uses.
#[derive(Debug, PartialEq)]
struct Prelogin {
    /// `major.minor.build` from the VERSION option.
    version: Option<String>,
    /// The ENCRYPTION option.
    encryption: u8,
}

impl Prelogin {
    fn parse(payload: &[u8]) -> Option<Prelogin> {
        let mut version = None;
        let mut encryption = None;
        for (token, value) in prelogin_options(payload)? {
            match token {
                OPTION_VERSION if value.len() >= 4 => {
                    let build = u16::from_be_bytes([value[2], value[3]]);
                    version = Some(format!("{}.{}.{build}", value[0], value[1]));
                }
                OPTION_ENCRYPTION if !value.is_empty() => encryption = Some(value[0]),
                _ => {}
            }
        }
        Some(Prelogin { version, encryption: encryption? })
    }
}

/// The option table: `(token, value)` pairs, `None` if malformed.
fn prelogin_options(payload: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut options = Vec::new();
    let mut index = 0;
    loop {
        let token = *payload.get(index)?;
        if token == OPTION_END {
            return Some(options);
        }
        let entry = payload.get(index + 1..index + 5)?;
        let offset = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
        let length = usize::from(u16::from_be_bytes([entry[2], entry[3]]));
        options.push((token, payload.get(offset..offset + length)?));
        index += 5;
    }
}

/// The server's PRELOGIN response with ENCRYPTION set to "not supported",
/// as one reply packet, for tiberius to read.
fn patched_response(payload: &[u8]) -> Vec<u8> {
    let mut patched = payload.to_vec();
    let mut index = 0;
    while let (Some(&token), Some(entry)) = (patched.get(index), patched.get(index + 1..index + 5)) {
        if token == OPTION_END {
            break;
        }
        let offset = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
        if token == OPTION_ENCRYPTION {
            if let Some(value) = patched.get_mut(offset) {
                *value = ENCRYPT_NOT_SUP;
            }
        }
        index += 5;
    }
    packet(PACKET_REPLY, 1, &patched)
}

/// TLS handshake records travel inside PRELOGIN packets (MS-TDS 2.2.6.5);
/// once the handshake is done, TLS runs directly on the socket.
struct TdsTls<S> {
    inner: S,
    handshake_done: bool,
    header: [u8; HEADER_LEN],
    header_filled: usize,
    payload_left: usize,
    outgoing: Vec<u8>,
    packet: Vec<u8>,
    packet_written: usize,
}

impl<S> TdsTls<S> {
    fn new(inner: S) -> Self {
        TdsTls {
            inner,
            handshake_done: false,
            header: [0; HEADER_LEN],
            header_filled: 0,
            payload_left: 0,
            outgoing: Vec::new(),
            packet: Vec::new(),
            packet_written: 0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TdsTls<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.header_filled > 0 && this.handshake_done {
            // Bytes read as a header before the peer switched to raw TLS.
            let count = this.header_filled.min(buf.remaining());
            buf.put_slice(&this.header[..count]);
            this.header.copy_within(count..this.header_filled, 0);
            this.header_filled -= count;
            return Poll::Ready(Ok(()));
        }
        if this.handshake_done {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.payload_left == 0 {
            let mut header = ReadBuf::new(&mut this.header[this.header_filled..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut header))?;
            let read = header.filled().len();
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
            this.header_filled += read;
            if this.header[0] != PACKET_PRELOGIN && this.header[0] != PACKET_REPLY {
                // A TLS record, not a TDS packet: the peer finished the
                // handshake and went raw (TLS 1.3 tickets arrive like this).
                this.handshake_done = true;
                return Pin::new(this).poll_read(cx, buf);
            }
            if this.header_filled == HEADER_LEN {
                this.header_filled = 0;
                let length = usize::from(u16::from_be_bytes([this.header[2], this.header[3]]));
                if length < HEADER_LEN {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "TDS packet shorter than its header",
                    )));
                }
                this.payload_left = length - HEADER_LEN;
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TdsTls<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // The handshake has flushed everything by the time it is marked done.
        if self.handshake_done {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        // Collected until flush, which sends them as one PRELOGIN packet.
        self.outgoing.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.packet.is_empty() && !this.outgoing.is_empty() {
            this.packet = packet(PACKET_PRELOGIN, 1, &std::mem::take(&mut this.outgoing));
            this.packet_written = 0;
        }
        while this.packet_written < this.packet.len() {
            let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.packet[this.packet_written..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.packet_written += written;
        }
        this.packet.clear();
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Stands in for the PRELOGIN exchange tiberius performs on connect: its
/// request is swallowed (ours already went out) and it reads the server's
/// response, marked unencrypted. Everything after passes through.
struct PreloginShim {
    inner: Box<dyn sql::Io>,
    /// Bytes of tiberius' PRELOGIN packet still to discard; `None` until its
    /// header is complete.
    swallow_left: Option<usize>,
    header: Vec<u8>,
    replay: Vec<u8>,
    replayed: usize,
}

impl PreloginShim {
    fn new(inner: Box<dyn sql::Io>, response: &[u8]) -> Self {
        PreloginShim {
            inner,
            swallow_left: None,
            header: Vec::with_capacity(HEADER_LEN),
            replay: patched_response(response),
            replayed: 0,
        }
    }

    fn swallowing(&self) -> bool {
        self.swallow_left != Some(0)
    }
}

impl AsyncRead for PreloginShim {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replayed < this.replay.len() {
            let count = buf.remaining().min(this.replay.len() - this.replayed);
            buf.put_slice(&this.replay[this.replayed..this.replayed + count]);
            this.replayed += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PreloginShim {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.swallow_left {
            Some(0) => Pin::new(&mut this.inner).poll_write(cx, buf),
            Some(left) => {
                let count = left.min(buf.len());
                this.swallow_left = Some(left - count);
                Poll::Ready(Ok(count))
            }
            None => {
                let count = (HEADER_LEN - this.header.len()).min(buf.len());
                this.header.extend_from_slice(&buf[..count]);
                if this.header.len() == HEADER_LEN {
                    let length = usize::from(u16::from_be_bytes([this.header[2], this.header[3]]));
                    this.swallow_left = Some(length.saturating_sub(HEADER_LEN));
                }
                Poll::Ready(Ok(count))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.swallowing() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelogin_request_round_trips() {
        let request = prelogin_request(ENCRYPT_ON);
        assert_eq!(request[0], PACKET_PRELOGIN);
        assert_eq!(usize::from(u16::from_be_bytes([request[2], request[3]])), request.len());
        let parsed = Prelogin::parse(&request[HEADER_LEN..]).unwrap();
        assert_eq!(parsed, Prelogin { version: Some("0.0.0".into()), encryption: ENCRYPT_ON });
    }

    #[test]
    fn patched_response_says_not_supported() {
        let mut response = prelogin_request(ENCRYPT_REQ);
        // A server's version: 16.0.1000.
        response[HEADER_LEN + 26..HEADER_LEN + 30].copy_from_slice(&[16, 0, 0x03, 0xE8]);
        let server = Prelogin::parse(&response[HEADER_LEN..]).unwrap();
        assert_eq!(server, Prelogin { version: Some("16.0.1000".into()), encryption: ENCRYPT_REQ });
        let patched = patched_response(&response[HEADER_LEN..]);
        assert_eq!(patched[0], PACKET_REPLY);
        let seen = Prelogin::parse(&patched[HEADER_LEN..]).unwrap();
        assert_eq!(seen, Prelogin { version: Some("16.0.1000".into()), encryption: ENCRYPT_NOT_SUP });
    }

    #[test]
    fn malformed_option_tables_are_rejected() {
        assert_eq!(Prelogin::parse(b"HTTP/1.1 400 Bad Request"), None);
        assert_eq!(Prelogin::parse(&[OPTION_ENCRYPTION, 0, 200, 0, 1, OPTION_END]), None);
        assert_eq!(Prelogin::parse(&[OPTION_END]), None, "no ENCRYPTION option");
    }

    #[test]
    fn dates_and_times_read_like_sql_server() {
        use tiberius::ColumnData;
        use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, Time};
        // 2024-05-01 is day 739006 since 0001-01-01 and day 45411 since 1900-01-01.
        assert_eq!(column_text(&ColumnData::Date(Some(Date::new(739_006)))).unwrap(), "2024-05-01");
        let noon = Time::new(12 * 3600 * 1000, 3);
        assert_eq!(
            column_text(&ColumnData::DateTime2(Some(DateTime2::new(Date::new(739_006), noon)))).unwrap(),
            "2024-05-01 12:00:00.000"
        );
        assert_eq!(
            column_text(&ColumnData::DateTime(Some(DateTime::new(45_411, 300 * 3600)))).unwrap(),
            "2024-05-01 01:00:00.000"
        );
        let utc = DateTime2::new(Date::new(739_006), Time::new(30 * 60, 0));
        assert_eq!(
            column_text(&ColumnData::DateTimeOffset(Some(DateTimeOffset::new(utc, -60)))).unwrap(),
            "2024-04-30 23:30:00 -01:00"
        );
        assert_eq!(column_text(&ColumnData::I32(None)), None);
        assert_eq!(column_text(&ColumnData::Bit(Some(true))).unwrap(), "1");
    }
}
