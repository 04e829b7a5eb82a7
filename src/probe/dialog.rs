//! The expect/send/STARTTLS line dialogue shared by tcp and unix: blackbox's
//! `query_response` (`prober/query_response.go`), generic over the stream.
//!
//! Each step runs, in this order: `expect` (read lines until one matches),
//! `expect_bytes` (one read, compared byte for byte), `send` (written with a
//! `\n` appended, always, as blackbox does) and `starttls` (a TLS handshake
//! on the same connection, after which the TLS families are recorded).

use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::Regex;
use crate::config::yaml::BINARY_TAG;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// A connection the dialogue can run over: plain TCP, a unix socket, or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed [`Stream`], so STARTTLS can swap the plain stream for a TLS one.
pub type BoxStream = Box<dyn Stream>;

/// Longest line `expect` accepts, newline included (Go's `bufio.MaxScanTokenSize`).
const MAX_LINE: usize = 64 * 1024;

const HELP_REGEX: &str = "Indicates if probe failed due to regex";
const HELP_BYTES: &str = "Indicates if probe failed due to bytes";
const HELP_EXPECT_INFO: &str = "Explicit content matched";

/// TLS families of tcp and unix: no cipher, with the verified-chain expiry.
pub const TLS_FAMILIES: tls::Families = tls::Families { cipher: false, last_chain_expiry: true };

/// Bytes written in YAML as a string or as `!!binary` base64 (`send`, `expect_bytes`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "binary:{}", hex::encode(&self.0)),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> serde::de::Visitor<'de> for PayloadVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or !!binary base64")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Payload, E> {
                Ok(Payload(text.as_bytes().to_vec()))
            }
            // Go's YAML decoder accepts any scalar for a string field.
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Payload, E> {
                Ok(Payload(value.to_string().into_bytes()))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Payload, E> {
                Ok(Payload(value.to_string().into_bytes()))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Payload, E> {
                Ok(Payload(value.to_string().into_bytes()))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Payload, E> {
                Ok(Payload(value.to_string().into_bytes()))
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Payload, A::Error> {
                use serde::de::{Error, VariantAccess};
                let (tag, content): (String, A::Variant) = data.variant()?;
                if tag != BINARY_TAG {
                    return Err(A::Error::custom(format!("unsupported tag !{tag}: use a string or !!binary")));
                }
                let text: String = content.newtype_variant()?;
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(Payload)
                    .map_err(|err| A::Error::custom(format!("invalid !!binary base64: {err}")))
            }
        }
        deserializer.deserialize_any(PayloadVisitor)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => {
                use base64::Engine as _;
                // serde_yaml writes a newtype variant as a tag. It cannot write the
                // core tag `!!binary`, so `/config` shows the local tag `!binary`,
                // which checkit reads back the same way.
                let encoded = base64::engine::general_purpose::STANDARD.encode(&self.0);
                serializer.serialize_newtype_variant("Payload", 0, BINARY_TAG, &encoded)
            }
        }
    }
}

/// One `labels:` entry of a step: a label of `probe_expect_info`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value; `${1}` and `${name}` expand to the `expect` captures.
    pub value: String,
}

/// One `query_response` step.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Step {
    /// Read lines until one matches (non-matching lines are skipped).
    pub expect: Option<Regex>,
    /// Read once and compare these bytes exactly.
    pub expect_bytes: Option<Payload>,
    /// Labels of `probe_expect_info`, set when `expect` matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// Written followed by `\n`; `${1}` expands to the `expect` captures.
    pub send: Option<Payload>,
    /// Upgrade the connection to TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub starttls: bool,
}

/// Records every problem of a `query_response` list under `path`.
pub fn validate(steps: &[Step], path: &str, problems: &mut Problems) {
    for (index, step) in steps.iter().enumerate() {
        let step_path = format!("{path}[{index}]");
        if step.expect.is_some() && step.expect_bytes.is_some() {
            problems.push(step_path.clone(), "expect and expect_bytes are mutually exclusive");
        }
        for (label_index, label) in step.labels.iter().enumerate() {
            // Go would panic registering such a label at probe time.
            if !valid_label_name(&label.name) {
                problems.push(
                    format!("{step_path}.labels[{label_index}].name"),
                    format!("{:?} is not a valid label name", label.name),
                );
            }
        }
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Creates `probe_failed_due_to_regex` and `probe_failed_due_to_bytes` at 0.
pub fn seed(ctx: &mut ProbeCtx<'_>) {
    ctx.registry.set("probe_failed_due_to_regex", HELP_REGEX, 0.0);
    ctx.registry.set("probe_failed_due_to_bytes", HELP_BYTES, 0.0);
}

enum Line {
    /// A line without its `\n` and trailing `\r`.
    Text(Vec<u8>),
    /// The peer closed the connection.
    Eof,
}

/// Reads one line as Go's `bufio.ScanLines` splits it.
async fn read_line(reader: &mut BufReader<BoxStream>) -> std::io::Result<Line> {
    let mut line = Vec::new();
    (&mut *reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if line.is_empty() {
        return Ok(Line::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() >= MAX_LINE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line longer than 64 KiB"));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Line::Text(line))
}

/// Opens the dialogue on a freshly dialled connection: implicit TLS first when
/// `implicit_tls` (recording the TLS families), then [`run`]. Shared by the tcp
/// and unix probers, which differ only in how they dial.
pub async fn start(
    ctx: &mut ProbeCtx<'_>,
    implicit_tls: bool,
    steps: &[Step],
    tls_config: &TlsConfig,
    server_name: &str,
    stream: impl Stream + 'static,
) -> ProbeResult {
    if !implicit_tls && steps.is_empty() {
        // A bare connect check: nothing to read, so no buffer to allocate.
        seed(ctx);
        return Ok(());
    }
    let stream: BoxStream = if implicit_tls {
        let (tls_stream, info) = tls::connect(ctx, tls_config, server_name, &[], stream).await?;
        tls::record(&info, &mut ctx.registry, TLS_FAMILIES);
        Box::new(tls_stream)
    } else {
        Box::new(stream)
    };
    run(ctx, steps, tls_config, server_name, stream).await
}

/// Runs the dialogue over `stream`. `server_name` is the STARTTLS default
/// when `tls_config.server_name` is unset.
pub async fn run(
    ctx: &mut ProbeCtx<'_>,
    steps: &[Step],
    tls_config: &TlsConfig,
    server_name: &str,
    stream: BoxStream,
) -> ProbeResult {
    seed(ctx);
    if steps.is_empty() {
        return Ok(());
    }
    let mut reader = BufReader::new(stream);
    for (index, step) in steps.iter().enumerate() {
        ctx.log.debug(format!("Processing query response entry entry_number={index}"));
        let mut send = step.send.as_ref().map(|payload| payload.0.clone()).unwrap_or_default();
        if let Some(expect) = &step.expect {
            send = expect_line(ctx, &mut reader, expect, step, send).await?;
        }
        if let Some(expected) = step.expect_bytes.as_ref().filter(|payload| !payload.0.is_empty()) {
            expect_bytes(ctx, &mut reader, &expected.0).await?;
        }
        if !send.is_empty() {
            ctx.log.debug(format!("Sending line line={:?}", String::from_utf8_lossy(&send)));
            send.push(b'\n');
            let write = async {
                reader.get_mut().write_all(&send).await?;
                reader.get_mut().flush().await
            };
            ctx.within(Phase::Processing, write).await?.map_err(|err| {
                ctx.log.error(format!("Failed to send err={err}"));
                ProbeError::io(Phase::Processing, &err)
            })?;
        }
        if step.starttls {
            if !reader.buffer().is_empty() {
                // Bytes that arrived before the handshake are not trusted (as Go drops its scanner).
                ctx.log.debug(format!("Discarding {} bytes received before STARTTLS", reader.buffer().len()));
            }
            let plain = reader.into_inner();
            let (tls_stream, info) = tls::connect(ctx, tls_config, server_name, &[], plain).await?;
            ctx.log.debug("TLS Handshake (client) succeeded.");
            tls::record(&info, &mut ctx.registry, TLS_FAMILIES);
            reader = BufReader::new(Box::new(tls_stream));
        }
    }
    Ok(())
}

/// The `expect` part of a step: returns `send` with the captures expanded.
async fn expect_line(
    ctx: &mut ProbeCtx<'_>,
    reader: &mut BufReader<BoxStream>,
    expect: &Regex,
    step: &Step,
    send: Vec<u8>,
) -> Result<Vec<u8>, ProbeError> {
    let mut lines_seen = 0usize;
    loop {
        let line = ctx.within(Phase::Processing, read_line(reader)).await?.map_err(|err| {
            ctx.log.error(format!("Error reading from connection err={err}"));
            match err.kind() {
                std::io::ErrorKind::InvalidData => ProbeError::new(Phase::Processing, Reason::UnexpectedResponse, err),
                _ => ProbeError::io(Phase::Processing, &err),
            }
        })?;
        let line = match line {
            Line::Text(line) => String::from_utf8_lossy(&line).into_owned(),
            Line::Eof => {
                // Go's scanner ends without error at EOF and the gauge is set.
                ctx.registry.set("probe_failed_due_to_regex", HELP_REGEX, 1.0);
                ctx.log.error(format!("Regexp did not match regexp={:?} lines_read={lines_seen}", expect.as_str()));
                let (reason, detail) = if lines_seen == 0 {
                    (Reason::UnexpectedResponse, "connection closed before any line arrived".to_string())
                } else {
                    (Reason::Regex, format!("no line matched {:?} before the connection closed", expect.as_str()))
                };
                return Err(ProbeError::new(Phase::Check, reason, detail));
            }
        };
        lines_seen += 1;
        ctx.log.debug(format!("Read line line={line:?}"));
        let Some(captures) = expect.captures(&line) else { continue };
        ctx.log.debug(format!("Regexp matched regexp={:?} line={line:?}", expect.as_str()));
        ctx.registry.set("probe_failed_due_to_regex", HELP_REGEX, 0.0);
        if !step.labels.is_empty() {
            let values: Vec<String> = step
                .labels
                .iter()
                .map(|label| {
                    let mut value = String::new();
                    captures.expand(&label.value, &mut value);
                    value
                })
                .collect();
            let pairs: Vec<(&str, &str)> =
                step.labels.iter().zip(&values).map(|(label, value)| (label.name.as_str(), value.as_str())).collect();
            ctx.registry.set_with("probe_expect_info", HELP_EXPECT_INFO, &pairs, 1.0);
        }
        return Ok(match std::str::from_utf8(&send) {
            Ok(template) if !template.is_empty() => {
                let mut expanded = String::new();
                captures.expand(template, &mut expanded);
                expanded.into_bytes()
            }
            _ => send,
        });
    }
}

/// The `expect_bytes` part of a step: one read of `expected.len()` bytes.
async fn expect_bytes(ctx: &mut ProbeCtx<'_>, reader: &mut BufReader<BoxStream>, expected: &[u8]) -> ProbeResult {
    let mut data = vec![0u8; expected.len()];
    let read = ctx.within(Phase::Processing, reader.read(&mut data)).await?.map_err(|err| {
        ctx.log.error(format!("Error reading from connection err={err}"));
        ProbeError::io(Phase::Processing, &err)
    })?;
    data.truncate(read);
    ctx.log.debug(format!("Read bytes bytes={}", hex::encode(&data)));
    if read == 0 {
        return Err(ProbeError::new(Phase::Processing, Reason::UnexpectedResponse, "connection closed"));
    }
    if read < expected.len() {
        // As blackbox: a short read fails without setting the gauge.
        ctx.log.error(format!("Read less data than expected expected={} bytes={}", expected.len(), read));
        return Err(ProbeError::new(
            Phase::Check,
            Reason::UnexpectedResponse,
            format!("read {read} bytes, expected {}", expected.len()),
        ));
    }
    if data != expected {
        ctx.registry.set("probe_failed_due_to_bytes", HELP_BYTES, 1.0);
        ctx.log.error(format!("Bytes did not match expected={} bytes={}", hex::encode(expected), hex::encode(&data)));
        return Err(ProbeError::new(
            Phase::Check,
            Reason::Bytes,
            format!("expected bytes {}, got {}", hex::encode(expected), hex::encode(&data)),
        ));
    }
    ctx.log.debug("Bytes matched");
    ctx.registry.set("probe_failed_due_to_bytes", HELP_BYTES, 0.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;
    use crate::probe::metrics::Registry;
    use crate::probe::policy::TargetPolicy;

    fn steps(text: &str) -> Vec<Step> {
        yaml::from_value(yaml::parse_value(text).unwrap(), "query_response").unwrap()
    }

    async fn run_against(steps: &[Step], server_script: &'static [u8]) -> (Registry, Result<(), ProbeError>, Vec<u8>) {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let server_task = tokio::spawn(async move {
            server.write_all(server_script).await.unwrap();
            server.shutdown().await.unwrap();
            let mut received = Vec::new();
            server.read_to_end(&mut received).await.unwrap();
            received
        });
        let policy = TargetPolicy::allow_all();
        let mut ctx = ProbeCtx {
            target: "test",
            hostname: None,
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(5),
            registry: Registry::new(),
            log: Default::default(),
            phase: Phase::Connect,
            policy: &policy,
            env: &crate::probe::Env::default(),
        };
        let result = run(&mut ctx, steps, &TlsConfig::default(), "localhost", Box::new(client)).await;
        let received = server_task.await.unwrap();
        (ctx.registry, result, received)
    }

    #[test]
    fn payloads_parse_strings_and_binary() {
        let parsed = steps("- send: !!binary AAAACATSFi8=\n- expect_bytes: S\n- send: 42\n");
        assert_eq!(parsed[0].send, Some(Payload(vec![0, 0, 0, 8, 4, 210, 22, 47])));
        assert_eq!(parsed[1].expect_bytes, Some(Payload(b"S".to_vec())));
        assert_eq!(parsed[2].send, Some(Payload(b"42".to_vec())));
        // Round trip through /config keeps the bytes.
        let text = yaml::to_string(&parsed);
        assert!(text.contains("!binary AAAACATSFi8="), "{text}");
        assert_eq!(steps(&text), parsed);
    }

    #[test]
    fn validation_reports_exclusive_keys_and_bad_labels() {
        let parsed = steps("- expect: a\n  expect_bytes: b\n  labels: [{name: 'bad-name', value: x}]\n");
        let mut problems = Problems::default();
        validate(&parsed, "modules.m.tcp.query_response", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["modules.m.tcp.query_response[0]", "modules.m.tcp.query_response[0].labels[0].name"]);
    }

    #[tokio::test]
    async fn expect_skips_lines_and_expands_captures() {
        let parsed = steps(
            "- expect: \"^SSH-2.0-([^ -]+)(?: (.*))?$\"\n  labels: [{name: ssh_version, value: \"${1}\"}]\n  send: \"hello ${1}\"\n",
        );
        let (registry, result, received) =
            run_against(&parsed, b"banner line\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\n").await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(registry.get("probe_expect_info", &[("ssh_version", "OpenSSH_9.2p1")]), Some(1.0));
        assert_eq!(registry.get("probe_failed_due_to_regex", &[]), Some(0.0));
        assert_eq!(received, b"hello OpenSSH_9.2p1\n");
    }

    #[tokio::test]
    async fn expect_fails_at_eof_with_the_regex_gauge() {
        let parsed = steps("- expect: ^SSH\n");
        let (registry, result, _) = run_against(&parsed, b"220 smtp ready\nbye").await;
        let err = result.unwrap_err();
        assert_eq!((err.phase, err.reason), (Phase::Check, Reason::Regex));
        assert_eq!(registry.get("probe_failed_due_to_regex", &[]), Some(1.0));
        let (_, result, _) = run_against(&parsed, b"").await;
        assert_eq!(result.unwrap_err().reason, Reason::UnexpectedResponse);
    }

    #[tokio::test]
    async fn expect_bytes_compares_exactly() {
        let parsed = steps("- expect_bytes: S\n");
        let (registry, result, _) = run_against(&parsed, b"N").await;
        assert_eq!(result.unwrap_err().reason, Reason::Bytes);
        assert_eq!(registry.get("probe_failed_due_to_bytes", &[]), Some(1.0));
        let (registry, result, _) = run_against(&parsed, b"S").await;
        assert!(result.is_ok());
        assert_eq!(registry.get("probe_failed_due_to_bytes", &[]), Some(0.0));
    }

    #[tokio::test]
    async fn last_line_without_newline_counts_and_long_lines_fail() {
        let parsed = steps("- expect: ^done$\n");
        let (_, result, _) = run_against(&parsed, b"x\ndone").await;
        assert!(result.is_ok(), "{result:?}");
        let long: &'static [u8] = Box::leak(vec![b'a'; MAX_LINE + 10].into_boxed_slice());
        let (_, result, _) = run_against(&parsed, long).await;
        assert_eq!(result.unwrap_err().reason, Reason::UnexpectedResponse);
    }
}
