//! Smoke tests for the test peers: each starts and speaks its protocol.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::tls_connect;
use crate::support::peers::*;
use crate::support::{LineClient, ScriptStep, TestCerts};

#[tokio::test]
async fn postgres_password_login_and_tls() {
    let pg = crate::peer!(Postgres::start(PostgresOpts::default()).await);

    let mut config: tokio_postgres::Config = pg.url().parse().expect("url");
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("login");
    tokio::spawn(connection);
    let row = client.query_one("SELECT current_user::text", &[]).await.expect("query");
    assert_eq!(row.get::<_, String>(0), pg.user);

    let mut wrong = config.clone();
    wrong.password("wrong");
    assert!(wrong.connect(tokio_postgres::NoTls).await.is_err());

    // SSLRequest, then a handshake that must verify against the test CA.
    let mut stream = tokio::net::TcpStream::connect(pg.addr).await.expect("connect");
    stream.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.expect("ssl request");
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.expect("ssl answer");
    assert_eq!(answer[0], b'S');
    tls_connect(stream, pg.certs.client_config(), "localhost").await;
}

#[tokio::test]
async fn smtp_starttls_auth_delivery_failures_and_restart() {
    let mut smtp = crate::peer!(SmtpServer::start(SmtpOpts { implicit_tls: true, ..SmtpOpts::default() }).await);

    let mut client = LineClient::connect(smtp.addr).await;
    assert_eq!(client.read_reply().await.0, 220);
    let (code, ehlo) = client.command("EHLO probe.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.iter().any(|line| line.contains("STARTTLS")), "{ehlo:?}");
    assert!(!ehlo.iter().any(|line| line.contains("AUTH")), "AUTH before TLS: {ehlo:?}");
    assert_eq!(client.command("STARTTLS").await.0, 220);
    let mut client = client.start_tls(smtp.certs.client_config(), "localhost").await;
    let (_, ehlo) = client.command("EHLO probe.test").await;
    assert!(ehlo.iter().any(|line| line.contains("AUTH LOGIN PLAIN")), "{ehlo:?}");
    let bad = base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0wrong", smtp.user));
    assert_eq!(client.command(&format!("AUTH PLAIN {bad}")).await.0, 535);
    let good = base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", smtp.user, smtp.password));
    assert_eq!(client.command(&format!("AUTH PLAIN {good}")).await.0, 235);
    send_mail(&mut client, "Subject: one").await;
    let messages = smtp.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(messages[0].auth_user.as_deref(), Some(smtp.user.as_str()));
    assert!(messages[0].tls);
    assert!(messages[0].data.contains("Subject: one"));

    smtp.set_failure(SmtpStage::Rcpt, Some(SmtpFailure::Temporary));
    assert_eq!(client.command("MAIL FROM:<a@checkit.test>").await.0, 250);
    assert_eq!(client.command("RCPT TO:<b@checkit.test>").await.0, 451);
    assert_eq!(client.command("RSET").await.0, 250);
    smtp.set_failure(SmtpStage::Rcpt, Some(SmtpFailure::Permanent));
    assert_eq!(client.command("MAIL FROM:<a@checkit.test>").await.0, 250);
    assert_eq!(client.command("RCPT TO:<b@checkit.test>").await.0, 550);
    smtp.set_failure(SmtpStage::Rcpt, None);
    drop(client);

    smtp.kill();
    assert!(tokio::net::TcpStream::connect(smtp.addr).await.is_err());
    smtp.restart().await;
    let tls_addr = smtp.tls_addr.expect("implicit TLS listener");
    let mut client = LineClient::connect_tls(tls_addr, smtp.certs.client_config(), "localhost").await;
    assert_eq!(client.read_reply().await.0, 220);
    let (_, ehlo) = client.command("EHLO probe.test").await;
    assert!(ehlo.iter().any(|line| line.contains("AUTH")), "{ehlo:?}");
    send_mail(&mut client, "Subject: two").await;
    let messages = smtp.wait_for_messages(2, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 2);
    assert!(messages[1].data.contains("Subject: two"));
}

async fn send_mail(client: &mut LineClient, header: &str) {
    assert_eq!(client.command("MAIL FROM:<a@checkit.test>").await.0, 250);
    assert_eq!(client.command("RCPT TO:<b@checkit.test>").await.0, 250);
    assert_eq!(client.command("DATA").await.0, 354);
    client.send(header).await;
    client.send("").await;
    client.send("body").await;
    assert_eq!(client.command(".").await.0, 250);
}

#[tokio::test]
async fn misbehaving_servers() {
    let closed = crate::support::closed_port();
    assert!(tokio::net::TcpStream::connect(closed).await.is_err());

    let hang = crate::support::hang_server().await;
    let mut stream = tokio::net::TcpStream::connect(hang.addr).await.expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(read.is_err(), "hang server answered");

    let certs = TestCerts::generate();
    let server = crate::support::scripted_line_server(vec![
        ScriptStep::send("220 fake ESMTP"),
        ScriptStep::expect("^EHLO "),
        ScriptStep::send("250 STARTTLS"),
        ScriptStep::expect("^STARTTLS$"),
        ScriptStep::send("220 go ahead"),
        ScriptStep::StartTls(certs.server_config(crate::support::Leaf::Valid)),
        ScriptStep::expect("^QUIT$"),
        ScriptStep::send("221 bye"),
    ])
    .await;
    let mut client = LineClient::connect(server.addr).await;
    assert_eq!(client.read_reply().await.0, 220);
    assert_eq!(client.command("EHLO me").await.0, 250);
    assert_eq!(client.command("STARTTLS").await.0, 220);
    let mut client = client.start_tls(certs.client_config(), "localhost").await;
    assert_eq!(client.command("QUIT").await.0, 221);
    assert_eq!(server.received_lines(), ["EHLO me", "STARTTLS", "QUIT"]);
}

#[tokio::test]
async fn mariadb_password_login_over_tls() {
    use mysql_async::prelude::Queryable;
    let db = crate::peer!(MariaDb::start(MariaDbOpts { require_tls: true, ..MariaDbOpts::default() }).await);

    let mut conn = mysql_async::Conn::new(db.opts(true)).await.expect("tls login");
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.expect("query");
    assert_eq!(user.as_deref(), Some(format!("{}@%", db.user).as_str()));
    let cipher: Option<(String, String)> =
        conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.expect("status");
    assert!(cipher.is_some_and(|(_, value)| !value.is_empty()));
    conn.disconnect().await.expect("disconnect");

    // The user requires TLS, so a plain login must fail.
    assert!(mysql_async::Conn::new(db.opts(false)).await.is_err());
}

#[tokio::test]
async fn nginx_http_https_redirects_and_files() {
    let nginx = crate::peer!(Nginx::start(NginxOpts::default()).await);
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    let root = plain.get(nginx.url("/")).send().await.expect("GET /");
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.expect("body"), NGINX_BODY);
    let hop = plain.get(nginx.url("/redirect-chain")).send().await.expect("GET");
    assert_eq!(hop.status(), 302);
    assert_eq!(hop.headers()["location"].to_str().expect("ascii"), format!("{}/redirect-chain/2", nginx.url("")));
    assert_eq!(plain.get(nginx.url("/status/503")).send().await.expect("GET").status(), 503);
    assert_eq!(plain.get(nginx.url("/basic-auth")).send().await.expect("GET").status(), 401);
    let (user, password) = &nginx.basic_auth;
    let authed = plain.get(nginx.url("/basic-auth")).basic_auth(user, Some(password)).send().await;
    assert_eq!(authed.expect("GET").status(), 200);
    let big = plain.get(nginx.url("/big")).send().await.expect("GET /big");
    assert_eq!(big.bytes().await.expect("body").len(), NGINX_BIG_SIZE);
    let page = plain.get(nginx.url("/static.txt")).send().await.expect("GET");
    assert_eq!(page.headers()["last-modified"], "Tue, 02 Jan 2024 03:04:05 GMT");
    if nginx.has_slow {
        let slow = plain.get(nginx.url("/slow?seconds=0.2")).send().await.expect("GET /slow");
        assert_eq!(slow.text().await.expect("body"), "slow\n");
    }

    let ca = reqwest::Certificate::from_pem(nginx.certs.ca.cert_pem.as_bytes()).expect("ca");
    let tls = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("localhost", nginx.tls_addr)
        .build()
        .expect("client");
    let followed = tls.get(nginx.tls_url("/redirect-chain")).send().await.expect("GET https");
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.url().path(), "/");
}
