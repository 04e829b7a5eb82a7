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

#[tokio::test]
async fn dovecot_imap_and_pop3_login_with_and_without_tls() {
    let mail = crate::peer!(Dovecot::start(DovecotOpts { messages: 2, ..DovecotOpts::default() }).await);
    let tls = mail.certs.client_config();

    let mut imap = LineClient::connect(mail.imap_addr).await;
    assert!(imap.read_line().await.contains("STARTTLS"));
    imap.send("a STARTTLS").await;
    assert!(imap.read_until("a ").await.last().expect("reply").starts_with("a OK"));
    let mut imap = imap.start_tls(tls.clone(), "localhost").await;
    imap.send(&format!("b LOGIN {} {}", mail.user, mail.password)).await;
    assert!(imap.read_until("b ").await.last().expect("reply").starts_with("b OK"));
    imap.send("c SELECT INBOX").await;
    let select = imap.read_until("c ").await;
    assert!(select.iter().any(|line| line == "* 2 EXISTS"), "{select:?}");

    let mut imaps = LineClient::connect_tls(mail.imaps_addr, tls.clone(), "localhost").await;
    assert!(imaps.read_line().await.starts_with("* OK"));
    imaps.send(&format!("a LOGIN {} wrong", mail.user)).await;
    assert!(imaps.read_until("a ").await.last().expect("reply").starts_with("a NO"));

    mail.deliver("Late", "arrived later\r\n");
    let mut pop3 = LineClient::connect(mail.pop3_addr).await;
    assert!(pop3.read_line().await.starts_with("+OK"));
    pop3.send(&format!("USER {}", mail.user)).await;
    assert!(pop3.read_line().await.starts_with("+OK"));
    pop3.send(&format!("PASS {}", mail.password)).await;
    assert!(pop3.read_line().await.starts_with("+OK"));
    pop3.send("STAT").await;
    assert!(pop3.read_line().await.starts_with("+OK 3 "));

    let mut pop3s = LineClient::connect_tls(mail.pop3s_addr, tls, "localhost").await;
    assert!(pop3s.read_line().await.starts_with("+OK"));
}

#[tokio::test]
async fn dnsmasq_answers_soa_over_udp_and_a_over_tcp() {
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    let dns = crate::peer!(Dnsmasq::start(DnsmasqOpts::default()).await);
    let query = |name: &str, record_type| {
        let mut message = Message::new();
        message.set_id(7).add_query(Query::query(Name::from_ascii(name).expect("name"), record_type));
        message.to_vec().expect("encode")
    };

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(&query("example.test.", RecordType::SOA), dns.addr).await.expect("send");
    let mut buf = [0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("answer in time")
        .expect("recv");
    let answer = Message::from_vec(&buf[..len]).expect("decode");
    assert!(answer.authoritative());
    match answer.answers()[0].data() {
        RData::SOA(soa) => assert_eq!(soa.serial(), dns.serial),
        other => panic!("not an SOA: {other:?}"),
    }

    // DNS over TCP: two-byte length prefix.
    let mut tcp = tokio::net::TcpStream::connect(dns.addr).await.expect("connect");
    let request = query("www.example.test.", RecordType::A);
    tcp.write_all(&(request.len() as u16).to_be_bytes()).await.expect("write");
    tcp.write_all(&request).await.expect("write");
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.expect("read");
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut body).await.expect("read");
    let answer = Message::from_vec(&body).expect("decode");
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(answer.answers()[0].data().to_string(), "192.0.2.11");
}

#[tokio::test]
async fn ftp_login_retrieve_and_tls() {
    let ftp =
        crate::peer!(FtpServer::start(FtpOpts { anonymous: true, implicit_tls: true, ..FtpOpts::default() }).await);
    let tls = ftp.certs.client_config();

    let mut control = LineClient::connect(ftp.addr).await;
    assert_eq!(control.read_reply().await.0, 220);
    assert_eq!(control.command(&format!("USER {}", ftp.user)).await.0, 331);
    assert_eq!(control.command("PASS wrong").await.0, 530);
    assert_eq!(control.command(&format!("USER {}", ftp.user)).await.0, 331);
    assert_eq!(control.command(&format!("PASS {}", ftp.password)).await.0, 230);
    let (code, size) = control.command(&format!("SIZE {}", ftp.file_name)).await;
    assert_eq!((code, size[0].clone()), (213, format!("213 {}", ftp.file_contents.len())));
    let (code, pasv) = control.command("PASV").await;
    assert_eq!(code, 227);
    let numbers: Vec<u16> = pasv[0]
        .split(['(', ')'])
        .nth(1)
        .expect("227 (h,h,h,h,p,p)")
        .split(',')
        .map(|part| part.parse().expect("number"))
        .collect();
    let data_addr = crate::support::loopback(numbers[4] * 256 + numbers[5]);
    let mut data = tokio::net::TcpStream::connect(data_addr).await.expect("data connection");
    assert_eq!(control.command(&format!("RETR {}", ftp.file_name)).await.0, 150);
    let mut contents = String::new();
    data.read_to_string(&mut contents).await.expect("read file");
    assert_eq!(contents, ftp.file_contents);
    assert_eq!(control.read_reply().await.0, 226);

    let mut explicit = LineClient::connect(ftp.addr).await;
    assert_eq!(explicit.read_reply().await.0, 220);
    assert_eq!(explicit.command("AUTH TLS").await.0, 234);
    let mut explicit = explicit.start_tls(tls.clone(), "localhost").await;
    assert_eq!(explicit.command(&format!("USER {}", ftp.user)).await.0, 331);
    assert_eq!(explicit.command(&format!("PASS {}", ftp.password)).await.0, 230);

    let implicit_addr = ftp.implicit_tls_addr.expect("implicit TLS instance");
    let mut implicit = LineClient::connect_tls(implicit_addr, tls, "localhost").await;
    assert_eq!(implicit.read_reply().await.0, 220);

    let mut anonymous = LineClient::connect(ftp.addr).await;
    assert_eq!(anonymous.read_reply().await.0, 220);
    assert_eq!(anonymous.command("USER anonymous").await.0, 230);
}

#[tokio::test]
async fn blackbox_exporter_probes_nginx() {
    let config = "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n";
    let blackbox = crate::peer!(BlackboxExporter::start(config).await);
    let nginx = crate::peer!(Nginx::start(NginxOpts::default()).await);

    let (status, body) = blackbox.probe(&nginx.url("/"), "http_2xx").await;
    assert_eq!(status, 200);
    assert!(body.lines().any(|line| line == "probe_success 1"), "{body}");
    let (_, body) = blackbox.probe(&nginx.url("/status/500"), "http_2xx").await;
    assert!(body.lines().any(|line| line == "probe_success 0"), "{body}");
}

#[tokio::test]
async fn prometheus_evaluates_a_rule() {
    let config = "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n";
    let rules = "groups:\n- name: t\n  rules:\n  - record: checkit_answer\n    expr: vector(42)\n";
    let prometheus = crate::peer!(Prometheus::start(config, &[("rules.yml", rules)]).await);

    let result = prometheus.wait_until("checkit_answer", Duration::from_secs(30)).await;
    assert_eq!(result[0]["value"][1], "42");
}

#[tokio::test]
async fn alertmanager_cluster_of_two_shares_alerts() {
    let config = "route:\n  receiver: blackhole\nreceivers:\n- name: blackhole\n";
    let members = crate::peer!(Alertmanager::start_cluster(config, 2).await);

    let status = members[1].status().await;
    assert_eq!(status["cluster"]["status"], "ready", "{status}");
    assert_eq!(status["cluster"]["peers"].as_array().map(Vec::len), Some(2));
    let alert = serde_json::json!([{ "labels": { "alertname": "CheckitSmoke" } }]);
    assert_eq!(members[0].post_alerts(&alert).await, 200);
    assert_eq!(members[0].alerts().await[0]["labels"]["alertname"], "CheckitSmoke");

    let single = crate::peer!(Alertmanager::start(config).await);
    assert_eq!(single.status().await["cluster"]["status"], "disabled");
}

#[tokio::test]
async fn test_certs_cover_every_tls_outcome() {
    use crate::support::Leaf;
    let certs = TestCerts::generate();
    for (leaf, name, accepted) in [
        (Leaf::Valid, "localhost", true),
        (Leaf::Valid, "127.0.0.1", true),
        (Leaf::Expired, "localhost", false),
        (Leaf::Untrusted, "localhost", false),
        (Leaf::WrongHost, "localhost", false),
        (Leaf::WrongHost, "wrong.example.test", true),
    ] {
        let server =
            crate::support::scripted_tls_server(certs.server_config(leaf), vec![ScriptStep::send("hello")]).await;
        let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
        let handshake = tokio_rustls::TlsConnector::from(certs.client_config()).connect(server_name, tcp).await;
        assert_eq!(handshake.is_ok(), accepted, "{leaf:?} as {name}: {handshake:?}");
    }
    assert!(certs.expired.not_after < std::time::SystemTime::now());
    assert!(certs.valid.not_after > std::time::SystemTime::now());
}
