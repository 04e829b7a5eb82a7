//! The `mysql` prober: logs in to MySQL or MariaDB, optionally runs a query
//! and checks its result.
//!
//! The client dialogue is driven here over a socket checkit dialed itself,
//! with packet types, scrambles and RSA from `mysql_common` (the protocol crate
//! under mysql_async). mysql_async itself cannot take a pre-connected socket
//! and keeps its TLS session private, so with it neither the chosen address
//! nor the server's certificate (for `probe_ssl_*`) would be ours.

use super::session::PhaseFamilies;
use super::sql::{self, QueryResult, Verify};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::Secret;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, ErrPacket, HandshakePacket, HandshakeResponse, SslRequest};
use mysql_common::proto::MySerialize;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// MySQL's `--ssl-mode`, lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Never use TLS.
    #[serde(alias = "DISABLED")]
    Disabled,
    /// Use TLS when the server offers it; the certificate is not verified.
    #[default]
    #[serde(alias = "PREFERRED")]
    Preferred,
    /// Insist on TLS; the certificate is not verified.
    #[serde(alias = "REQUIRED")]
    Required,
    /// Insist on TLS and verify the chain, not the name.
    #[serde(alias = "VERIFY_CA")]
    VerifyCa,
    /// Insist on TLS and verify the chain and the server name.
    #[serde(alias = "VERIFY_IDENTITY")]
    VerifyIdentity,
}

/// The `mysql:` block of a module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The keys every database prober shares.
    #[serde(flatten)]
    pub common: sql::Common,
    /// Whether and how to use TLS.
    pub tls: TlsMode,
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, problems);
        self.common.validate_verifying(
            path,
            matches!(self.tls, TlsMode::VerifyCa | TlsMode::VerifyIdentity),
            "tls verify_ca and verify_identity",
            problems,
        );
    }
}

const METRICS: PhaseFamilies = super::sql::metrics!("mysql", "MySQL");
const VERSION: &str = "probe_mysql_version_info";
const HELP_VERSION: &str = "The server version the MySQL or MariaDB server announced in its greeting";
const DEFAULT_PORT: u16 = 3306;
/// The largest packet accepted, so a misbehaving server cannot make the
/// prober buffer without bound (one MySQL packet holds one row).
const MAX_PACKET: usize = 16 * 1024 * 1024;
/// A greeting is about a hundred bytes; a larger "length" is not MySQL.
const MAX_GREETING: usize = 64 * 1024;
const UTF8MB4_GENERAL_CI: u8 = 45;
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let (password, stream, host) = config.common.open(ctx, METRICS, DEFAULT_PORT).await?;
    let dialed = Instant::now();

    // The server speaks first; its greeting belongs to `connect`.
    let mut conn = Packets { stream: Box::new(stream), seq: 0 };
    let greeting = ctx.within(Phase::Connect, conn.read_limited(MAX_GREETING)).await;
    METRICS.add(ctx, Phase::Connect, dialed.elapsed());
    let greeting = greeting?.map_err(|err| sql::io_failure(Phase::Connect, err))?;
    let handshake = parse_greeting(&greeting)?;
    let version = server_version(&handshake);
    ctx.log.info(format!("Greeting received version={version:?} plugin={:?}", handshake.auth_plugin_name_str()));
    sql::record_version(ctx, VERSION, HELP_VERSION, &version);

    let server_caps = handshake.capabilities();
    if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(ProbeError::new(Phase::Connect, Reason::UnexpectedResponse, "server lacks protocol 4.1"));
    }
    let mut caps = client_capabilities(config) & server_caps;

    let verify = match config.tls {
        TlsMode::Disabled => None,
        TlsMode::Preferred | TlsMode::Required => Some(Verify::Nothing),
        TlsMode::VerifyCa => Some(Verify::Chain),
        TlsMode::VerifyIdentity => Some(Verify::ChainAndName),
    };
    let encrypted = match verify {
        Some(verify) if server_caps.contains(CapabilityFlags::CLIENT_SSL) => {
            caps.insert(CapabilityFlags::CLIENT_SSL);
            let client = sql::tls_client(&config.common.tls_config, verify)?;
            let mut request = Vec::new();
            SslRequest::new(caps, MAX_PACKET as u32, UTF8MB4_GENERAL_CI).serialize(&mut request);
            let start = Instant::now();
            let sent = ctx.within(Phase::Tls, conn.write(&request)).await;
            METRICS.add(ctx, Phase::Tls, start.elapsed());
            sent?.map_err(|err| sql::io_failure(Phase::Tls, err))?;
            let server_name = sql::server_name(ctx, &config.common.tls_config, &host);
            let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::empty()));
            let secure = sql::tls_handshake(ctx, METRICS, &client, &server_name, plain).await?;
            conn.stream = Box::new(secure);
            true
        }
        Some(_) if config.tls != TlsMode::Preferred => {
            return Err(ProbeError::new(Phase::Tls, Reason::TlsPolicy, "the server does not offer TLS"));
        }
        _ => {
            caps.remove(CapabilityFlags::CLIENT_SSL);
            false
        }
    };

    let auth_start = Instant::now();
    let login = ctx.within(Phase::Auth, login(&mut conn, config, password.as_ref(), &handshake, caps, encrypted)).await;
    METRICS.add(ctx, Phase::Auth, auth_start.elapsed());
    login??;
    ctx.log.info(format!("Logged in user={:?} tls={encrypted}", config.common.user));

    let result = match config.common.query.as_deref() {
        None => Ok(()),
        Some(query) => {
            let start = Instant::now();
            let outcome = ctx.within(Phase::Query, run_query(&mut conn, query, caps)).await;
            METRICS.add(ctx, Phase::Query, start.elapsed());
            match outcome? {
                Ok(result) => {
                    ctx.log.info(format!("Query done rows={} first_value={:?}", result.rows, result.first_value));
                    config.common.expectation().check(&result)
                }
                Err(err) => Err(err),
            }
        }
    };
    // Say goodbye so the server does not count an aborted connection.
    conn.seq = 0;
    let _ = tokio::time::timeout_at(ctx.deadline, async {
        let _ = conn.write(&[COM_QUIT]).await;
        let _ = conn.stream.shutdown().await;
    })
    .await;
    result
}

fn client_capabilities(config: &Config) -> CapabilityFlags {
    let mut caps = CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_CONNECT_ATTRS;
    if config.common.database.is_some() {
        caps.insert(CapabilityFlags::CLIENT_CONNECT_WITH_DB);
    }
    caps
}

/// MariaDB prefixes its version with `5.5.5-` for old replication clients.
fn server_version(handshake: &HandshakePacket<'_>) -> String {
    let version = handshake.server_version_str();
    version.strip_prefix("5.5.5-").unwrap_or(&version).to_string()
}

fn parse_greeting(payload: &[u8]) -> Result<HandshakePacket<'_>, ProbeError> {
    match payload.first() {
        Some(0xFF) => Err(server_error(Phase::Connect, payload, CapabilityFlags::empty())),
        Some(10) => ParseBuf(payload).parse::<HandshakePacket<'_>>(()).map_err(|err| {
            ProbeError::new(Phase::Connect, Reason::UnexpectedResponse, format!("invalid greeting: {err}"))
        }),
        _ => Err(ProbeError::new(Phase::Connect, Reason::UnexpectedResponse, "the server's greeting is not MySQL's")),
    }
}

/// Sends the handshake response and follows the server through auth-switch
/// and caching_sha2 exchanges until OK or ERR.
async fn login(
    conn: &mut Packets,
    config: &Config,
    password: Option<&Secret>,
    handshake: &HandshakePacket<'_>,
    caps: CapabilityFlags,
    encrypted: bool,
) -> Result<(), ProbeError> {
    let pass = password.map(Secret::expose);
    let mut plugin = match handshake.auth_plugin() {
        Some(plugin) if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) => plugin.into_owned(),
        _ => AuthPlugin::MysqlNativePassword,
    };
    let mut nonce = handshake.nonce();
    let data = auth_data(&plugin, pass, &nonce, encrypted)?;
    let attributes = caps.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS).then(|| {
        HashMap::from([
            ("_client_name".to_string(), "checkit".to_string()),
            ("program_name".to_string(), config.common.application_name.clone()),
        ])
    });
    let mut response = Vec::new();
    HandshakeResponse::new(
        Some(data),
        handshake.server_version_parsed().unwrap_or((5, 5, 3)),
        Some(config.common.user.as_bytes()),
        config.common.database.as_deref().map(str::as_bytes),
        caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH).then(|| plugin.borrow()),
        caps,
        attributes,
        MAX_PACKET as u32,
    )
    .serialize(&mut response);
    conn.write(&response).await.map_err(|err| sql::io_failure(Phase::Auth, err))?;

    let mut switched = false;
    // Bounded: one switch, then at most a key request and a full exchange.
    for _ in 0..6 {
        let packet = conn.read().await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
        match packet.first() {
            Some(0x00) => return Ok(()),
            Some(0xFF) => return Err(server_error(Phase::Auth, &packet, caps)),
            Some(0xFE) if !switched => {
                switched = true;
                let request = ParseBuf(&packet).parse::<AuthSwitchRequest<'_>>(()).map_err(|err| {
                    ProbeError::new(Phase::Auth, Reason::UnexpectedResponse, format!("invalid auth switch: {err}"))
                })?;
                plugin = request.auth_plugin().into_owned();
                nonce = request.plugin_data().to_vec();
                let data = auth_data(&plugin, pass, &nonce, encrypted)?;
                conn.write(&data).await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
            }
            // caching_sha2_password: 3 = the cached hash matched, OK follows.
            Some(0x01) if plugin == AuthPlugin::CachingSha2Password && packet.get(1) == Some(&0x03) => {}
            // 4 = full authentication: the password itself, over TLS or RSA.
            Some(0x01) if plugin == AuthPlugin::CachingSha2Password && packet.get(1) == Some(&0x04) => {
                let mut secret = pass.unwrap_or_default().as_bytes().to_vec();
                secret.push(0);
                if encrypted {
                    conn.write(&secret).await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
                } else {
                    conn.write(&[0x02]).await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
                    let key = conn.read().await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
                    let key = match key.split_first() {
                        Some((0x01, pem)) => pem.to_vec(),
                        _ => {
                            return Err(ProbeError::new(
                                Phase::Auth,
                                Reason::UnexpectedResponse,
                                "expected the server's RSA public key",
                            ));
                        }
                    };
                    for (index, byte) in secret.iter_mut().enumerate() {
                        *byte ^= nonce[index % nonce.len().max(1)];
                    }
                    let encrypted_secret = mysql_common::crypto::encrypt(&secret, &key);
                    conn.write(&encrypted_secret).await.map_err(|err| sql::io_failure(Phase::Auth, err))?;
                }
            }
            _ => {
                return Err(ProbeError::new(Phase::Auth, Reason::UnexpectedResponse, "unexpected packet during login"));
            }
        }
    }
    Err(ProbeError::new(Phase::Auth, Reason::UnexpectedResponse, "the login dialogue did not end"))
}

/// The scramble (or clear password) a plugin wants, for the plugins checkit
/// speaks.
fn auth_data(
    plugin: &AuthPlugin<'_>,
    pass: Option<&str>,
    nonce: &[u8],
    encrypted: bool,
) -> Result<Vec<u8>, ProbeError> {
    let supported = match plugin {
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password => true,
        // Never send a clear password over an unencrypted socket.
        AuthPlugin::MysqlClearPassword => encrypted,
        _ => false,
    };
    if !supported {
        return Err(ProbeError::new(
            Phase::Auth,
            Reason::Config,
            format!(
                "authentication plugin {:?} is not supported{}",
                String::from_utf8_lossy(plugin.as_bytes()),
                if matches!(plugin, AuthPlugin::MysqlClearPassword) { " without TLS" } else { "" }
            ),
        ));
    }
    let mut data = Vec::new();
    if let Some(generated) = plugin.gen_data(pass, nonce) {
        generated.serialize(&mut data);
    }
    Ok(data)
}

/// Maps an ERR packet: access denied is `auth_failed`; other refusals
/// (unknown database, too many connections) are `status`.
fn server_error(phase: Phase, payload: &[u8], caps: CapabilityFlags) -> ProbeError {
    match ParseBuf(payload).parse::<ErrPacket<'_>>(caps) {
        Ok(ErrPacket::Error(error)) => {
            // 1044 database access denied, 1045 access denied, 1130 host not
            // allowed, 1698 access denied without password.
            let reason = match error.error_code() {
                1044 | 1045 | 1130 | 1698 => Reason::AuthFailed,
                _ if phase == Phase::Query => Reason::Query,
                _ => Reason::Status,
            };
            ProbeError::new(phase, reason, format!("error {}: {}", error.error_code(), error.message_str()))
        }
        _ => ProbeError::new(phase, Reason::UnexpectedResponse, "invalid error packet"),
    }
}

/// Runs `query` with the text protocol and reads the first result set.
async fn run_query(conn: &mut Packets, query: &str, caps: CapabilityFlags) -> Result<QueryResult, ProbeError> {
    let fail = |err| sql::io_failure(Phase::Query, err);
    let mut command = vec![COM_QUERY];
    command.extend_from_slice(query.as_bytes());
    conn.seq = 0;
    conn.write(&command).await.map_err(fail)?;
    let first = conn.read().await.map_err(fail)?;
    let columns = match first.first() {
        Some(0x00) => return Ok(QueryResult::default()),
        Some(0xFF) => return Err(server_error(Phase::Query, &first, caps)),
        Some(0xFB) => return Err(ProbeError::new(Phase::Query, Reason::Query, "LOAD DATA LOCAL is not supported")),
        _ => lenenc_int(&mut first.as_slice()).ok_or_else(|| unexpected("invalid column count"))?,
    };
    // Column definitions, then the EOF that CLIENT_DEPRECATE_EOF would drop.
    for _ in 0..columns {
        conn.read().await.map_err(fail)?;
    }
    let eof = conn.read().await.map_err(fail)?;
    if !is_eof(&eof) {
        return Err(unexpected("expected EOF after the column definitions"));
    }
    let mut result = QueryResult::default();
    loop {
        let row = conn.read().await.map_err(fail)?;
        if is_eof(&row) {
            return Ok(result);
        }
        if row.first() == Some(&0xFF) {
            return Err(server_error(Phase::Query, &row, caps));
        }
        if result.first_value.is_none() {
            result.first_value = Some(first_text_value(&row)?);
        }
        result.rows += 1;
    }
}

fn is_eof(packet: &[u8]) -> bool {
    packet.first() == Some(&0xFE) && packet.len() < 9
}

fn unexpected(detail: &str) -> ProbeError {
    ProbeError::new(Phase::Query, Reason::UnexpectedResponse, detail)
}

/// The first column of a text-protocol row: a length-encoded string, or
/// 0xFB for NULL.
fn first_text_value(row: &[u8]) -> Result<Option<String>, ProbeError> {
    if row.first() == Some(&0xFB) {
        return Ok(None);
    }
    let mut rest = row;
    let length = lenenc_int(&mut rest).ok_or_else(|| unexpected("invalid row"))?;
    let value =
        usize::try_from(length).ok().and_then(|length| rest.get(..length)).ok_or_else(|| unexpected("short row"))?;
    Ok(Some(String::from_utf8_lossy(value).into_owned()))
}

/// Reads a length-encoded integer, advancing `input`.
fn lenenc_int(input: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = input.split_first()?;
    let width = match first {
        0..=0xFA => {
            *input = rest;
            return Some(u64::from(first));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    *input = &rest[width..];
    Some(bytes.iter().rev().fold(0, |value, &byte| (value << 8) | u64::from(byte)))
}

/// MySQL packet framing: a 3-byte little-endian length and a sequence id.
struct Packets {
    stream: Box<dyn sql::Io>,
    seq: u8,
}

impl Packets {
    async fn read(&mut self) -> io::Result<Vec<u8>> {
        self.read_limited(MAX_PACKET).await
    }

    /// Reads one logical packet (joining 16 MiB continuation chunks), refusing
    /// lengths above `limit` before reading their body.
    async fn read_limited(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header).await?;
            let length = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            if payload.len() + length > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("packet of {length} bytes is too large"),
                ));
            }
            self.seq = header[3].wrapping_add(1);
            let start = payload.len();
            payload.resize(start + length, 0);
            self.stream.read_exact(&mut payload[start..]).await?;
            if length < 0xFF_FFFF {
                return Ok(payload);
            }
        }
    }

    async fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut frames = Vec::with_capacity(payload.len() + 8);
        let mut chunks = payload.chunks(0xFF_FFFF).peekable();
        if chunks.peek().is_none() {
            frames.extend_from_slice(&[0, 0, 0, self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        while let Some(chunk) = chunks.next() {
            let length = chunk.len() as u32;
            frames.extend_from_slice(&length.to_le_bytes()[..3]);
            frames.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            frames.extend_from_slice(chunk);
            // A payload that fills its last chunk exactly ends with an empty one.
            if chunks.peek().is_none() && chunk.len() == 0xFF_FFFF {
                frames.extend_from_slice(&[0, 0, 0, self.seq]);
                self.seq = self.seq.wrapping_add(1);
            }
        }
        self.stream.write_all(&frames).await?;
        self.stream.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encoded_integers() {
        for (bytes, value, left) in [
            (&[0x05, 0xAA][..], 5, 1),
            (&[0xFC, 0x01, 0x02][..], 0x0201, 0),
            (&[0xFD, 0x01, 0x02, 0x03][..], 0x030201, 0),
            (&[0xFE, 1, 0, 0, 0, 0, 0, 0, 1][..], 0x0100_0000_0000_0001, 0),
        ] {
            let mut input = bytes;
            assert_eq!(lenenc_int(&mut input), Some(value));
            assert_eq!(input.len(), left);
        }
        assert_eq!(lenenc_int(&mut &[0xFC, 0x01][..]), None);
        assert_eq!(lenenc_int(&mut &[0xFF][..]), None);
    }

    #[test]
    fn first_values_of_text_rows() {
        assert_eq!(first_text_value(&[0x02, b'4', b'2', 0x01, b'x']).unwrap(), Some("42".into()));
        assert_eq!(first_text_value(&[0xFB, 0x01, b'x']).unwrap(), None);
        assert!(first_text_value(&[0x05, b'a']).is_err());
    }

    #[test]
    fn tls_modes_accept_mysql_spelling() {
        let mode: TlsMode =
            crate::config::yaml::from_value(crate::config::yaml::parse_value("VERIFY_IDENTITY").unwrap(), "tls")
                .unwrap();
        assert_eq!(mode, TlsMode::VerifyIdentity);
    }
}
