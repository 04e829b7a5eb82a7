//! nginx: one server block on an HTTP and an HTTPS (HTTP/2) port with fixed
//! locations for the HTTP prober tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::START_TIMEOUT;
use crate::support::{
    ChildGuard, Leaf, TestCerts, free_ports, loopback, make_dir, require_binary, shared_temp_dir, write_file,
};

/// Body of `/` and `/basic-auth` (with a trailing newline).
pub const NGINX_BODY: &str = "checkit nginx ok\n";
/// Size in bytes of `/big`.
pub const NGINX_BIG_SIZE: usize = 1 << 20;
/// `Last-Modified` of `/static.txt`: 2024-01-02T03:04:05Z.
pub const NGINX_LAST_MODIFIED_UNIX: u64 = 1_704_164_645;

const ECHO_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

/// How to start [`Nginx`].
#[derive(Clone, Debug, Default)]
pub struct NginxOpts {
    /// Certificate the HTTPS port presents.
    pub leaf: Leaf,
    /// Require a client certificate signed by the test CA on HTTPS.
    pub require_client_cert: bool,
}

/// A running nginx.
///
/// Locations (same on `addr` and `tls_addr`):
/// - `/` 200 [`NGINX_BODY`]; `/json` 200 `{"status":"ok"}`
/// - `/redirect` 302 → `/`; `/redirect-chain` 302 → `/redirect-chain/2` →
///   `/redirect-chain/3` → `/` (three hops); `/redirect-loop` 302 → itself
/// - `/status/<code>` for 204, 301 (→ `/`), 401, 403, 404, 500, 502, 503
/// - `/slow?seconds=<s>` answers after `s` seconds (when `has_slow`)
/// - `/big`: [`NGINX_BIG_SIZE`] bytes; `/static.txt` with `Last-Modified`
///   [`NGINX_LAST_MODIFIED_UNIX`]
/// - `/basic-auth`: needs `basic_auth` (user, password), then [`NGINX_BODY`]
/// - `/headers`: 200 with `X-Checkit: yes` and `Cache-Control: no-store`
pub struct Nginx {
    /// Plain HTTP/1.1 with keep-alive.
    pub addr: SocketAddr,
    /// HTTPS (HTTP/1.1 and HTTP/2 via ALPN).
    pub tls_addr: SocketAddr,
    /// Certificates; HTTPS presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    /// Whether `/slow` exists (needs the echo module from nginx-light).
    pub has_slow: bool,
    /// Credentials for `/basic-auth`.
    pub basic_auth: (String, String),
    /// The document root (add files to serve more paths).
    pub root: PathBuf,
    /// Access log, one line per request:
    /// `<connection id> requests=<n on that connection> connection=<Connection header> "<request>" <status>`.
    pub access_log: PathBuf,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx and waits until both ports answer.
    pub async fn start(opts: NginxOpts) -> Option<Nginx> {
        let nginx = require_binary("nginx", "nginx-light")?;
        let dir = shared_temp_dir("nginx");
        let root = dir.path().join("www");
        make_dir(&root, 0o755);
        make_dir(&dir.path().join("tmp"), 0o755);
        write_file(&root.join("index.html"), NGINX_BODY, 0o644);
        write_file(&root.join("big"), vec![b'x'; NGINX_BIG_SIZE], 0o644);
        let static_file = root.join("static.txt");
        write_file(&static_file, "static\n", 0o644);
        std::fs::File::options()
            .write(true)
            .open(&static_file)
            .and_then(|file| file.set_modified(UNIX_EPOCH + Duration::from_secs(NGINX_LAST_MODIFIED_UNIX)))
            .expect("set mtime");
        let basic_auth = ("checkit".to_owned(), "checkit-http-secret".to_owned());
        write_file(&dir.path().join("htpasswd"), format!("{}:{{PLAIN}}{}\n", basic_auth.0, basic_auth.1), 0o644);

        let certs = TestCerts::generate();
        let has_slow = Path::new(ECHO_MODULE).is_file();
        let ports = free_ports(2);
        let config = config(dir.path(), &root, ports[0], ports[1], &certs, &opts, has_slow);
        let config_path = dir.path().join("nginx.conf");
        write_file(&config_path, config, 0o644);

        let mut command = Command::new(nginx);
        command.arg("-p").arg(dir.path()).arg("-c").arg(&config_path);
        // SIGQUIT is nginx's graceful shutdown.
        let mut guard = ChildGuard::spawn("nginx", command, &dir.path().join("nginx.out"))
            .with_stop_signal("QUIT")
            .with_log(dir.path().join("error.log"));
        let (addr, tls_addr) = (loopback(ports[0]), loopback(ports[1]));
        guard.wait_for_port(addr, START_TIMEOUT).await;
        guard.wait_for_port(tls_addr, START_TIMEOUT).await;
        let access_log = dir.path().join("access.log");
        Some(Nginx { addr, tls_addr, certs, has_slow, basic_auth, root, access_log, guard, _dir: dir })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://localhost:<port><path>` (the name the valid leaf carries).
    pub fn tls_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls_addr.port())
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}

/// The time `/static.txt` reports as `Last-Modified`.
pub fn nginx_last_modified() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NGINX_LAST_MODIFIED_UNIX)
}

fn config(
    dir: &Path,
    root: &Path,
    port: u16,
    tls_port: u16,
    certs: &TestCerts,
    opts: &NginxOpts,
    has_slow: bool,
) -> String {
    let leaf = certs.leaf(opts.leaf);
    let dir = dir.display();
    let load_echo = if has_slow { format!("load_module {ECHO_MODULE};") } else { String::new() };
    let slow = if has_slow {
        r#"location = /slow { default_type text/plain; echo_sleep $arg_seconds; echo "slow"; }"#
    } else {
        ""
    };
    let client_auth = if opts.require_client_cert {
        format!("ssl_client_certificate {}; ssl_verify_client on;", certs.ca.cert_path.display())
    } else {
        String::new()
    };
    let statuses: String = [204, 401, 403, 404, 500, 502, 503]
        .iter()
        .map(|code| format!("    location = /status/{code} {{ return {code}; }}\n"))
        .collect();
    format!(
        r#"{load_echo}
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
  log_format checkit '$connection requests=$connection_requests connection=$http_connection "$request" $status';
  access_log {dir}/access.log checkit;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 30s;
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{tls_port} ssl http2;
    server_name localhost;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    {client_auth}
    root {root};
    location = / {{ default_type text/plain; try_files /index.html =404; }}
    location = /json {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
    location = /redirect {{ return 302 /; }}
    location = /redirect-chain {{ return 302 /redirect-chain/2; }}
    location = /redirect-chain/2 {{ return 302 /redirect-chain/3; }}
    location = /redirect-chain/3 {{ return 302 /; }}
    location = /redirect-loop {{ return 302 /redirect-loop; }}
    location = /status/301 {{ return 301 /; }}
{statuses}    {slow}
    location = /big {{ default_type application/octet-stream; }}
    location = /static.txt {{ default_type text/plain; }}
    # `return` runs before the access phase, so serve a file behind auth.
    location = /basic-auth {{
      auth_basic "checkit";
      auth_basic_user_file {dir}/htpasswd;
      default_type text/plain;
      try_files /index.html =404;
    }}
    location = /headers {{
      add_header X-Checkit yes;
      add_header Cache-Control no-store;
      default_type text/plain;
      try_files /index.html =404;
    }}
  }}
}}
"#,
        cert = leaf.cert_path.display(),
        key = leaf.key_path.display(),
        root = root.display(),
    )
}
