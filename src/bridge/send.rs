//! `checkit send`: posts one message to a running checkit's message API and
//! prints its ID, so cron jobs and scripts need no HTTP client of their own.

use clap::Args;
use std::process::ExitCode;

/// The arguments of `checkit send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The checkit to send through (its bridge address).
    #[arg(long, default_value = "http://127.0.0.1:9115")]
    pub url: String,
    /// The message token (prefer `--token-file` or `CHECKIT_TOKEN`: arguments show in `ps`).
    #[arg(long, env = "CHECKIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the message token.
    #[arg(long)]
    pub token_file: Option<String>,
    /// A contact to message (repeatable).
    #[arg(long = "to")]
    pub contacts: Vec<String>,
    /// A group to message (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// One line.
    #[arg(long)]
    pub subject: String,
    /// The text; `-` reads it from standard input.
    #[arg(long, default_value = "")]
    pub body: String,
    /// Severity, matched by quiet-hours bypass rules and routes.
    #[arg(long)]
    pub severity: Option<String>,
    /// Only this channel of each recipient (repeatable).
    #[arg(long = "channel")]
    pub channels: Vec<String>,
    /// A retry with the same key sends nothing new.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Sends the message; exit 0 with the ID on stdout when it was accepted.
pub async fn run(args: SendArgs) -> ExitCode {
    match send(args).await {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("checkit send: {reason}");
            ExitCode::FAILURE
        }
    }
}

async fn send(args: SendArgs) -> Result<String, String> {
    let token = match (&args.token, &args.token_file) {
        (_, Some(file)) => crate::config::types::read_secret_file(file)?.expose().to_string(),
        (Some(token), None) => token.clone(),
        (None, None) => return Err("no token: set --token-file or CHECKIT_TOKEN".into()),
    };
    let body = if args.body == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|err| format!("cannot read the body from standard input: {err}"))?;
        text
    } else {
        args.body.clone()
    };
    let request = super::messages::SendRequest {
        contacts: args.contacts,
        groups: args.groups,
        subject: args.subject,
        body,
        severity: args.severity,
        channels: args.channels,
        idempotency_key: args.idempotency_key,
    };
    let url = format!("{}/api/v1/messages", args.url.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|err| err.to_string())?
        .post(&url)
        .bearer_auth(token)
        .json(&request)
        .send()
        .await
        .map_err(|err| format!("cannot reach {url}: {err}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| format!("unexpected answer: {err}"))?;
        let duplicate = if answer["duplicate"] == true { " (already accepted)" } else { "" };
        Ok(format!("accepted message {}{duplicate}", answer["id"]))
    } else {
        Err(format!("{} {}", status.as_u16(), text.trim()))
    }
}
