//! A real SMTP server for tests: Debian's aiosmtpd, delivering into a maildir we read.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{eventually, free_port};

pub struct SmtpSink {
    pub port: u16,
    maildir: PathBuf,
    child: Child,
    /// From [`SmtpSink::start_counting`]: the connections made to `port`, and the proxy counting them.
    counting: Option<(Arc<AtomicUsize>, tokio::task::JoinHandle<()>)>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// On a given port, e.g. one a service has been failing to reach.
    pub async fn start_on(port: u16) -> Self {
        let maildir = std::env::temp_dir().join(format!("trust-mail-{}", uuid::Uuid::new_v4().simple()));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd (install Debian's python3-aiosmtpd: deploy/local/ensure-infra.sh)");
        eventually(Duration::from_secs(15), "aiosmtpd to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self {
            port,
            maildir,
            child,
            counting: None,
        }
    }

    /// Like [`SmtpSink::start`], with `port` a proxy in front of aiosmtpd that counts the SMTP connections
    /// made to it ([`SmtpSink::connections`]).
    pub async fn start_counting() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the counting proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mut sink = Self::start_on(free_port()).await;
        let inner = sink.port;
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let proxy = tokio::spawn(async move {
            // Dropped with the proxy, so stopping it ends every proxied connection too.
            let mut conversations = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                conversations.spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", inner)).await else {
                        return;
                    };
                    // As the service's own socket: no Nagle delay on the small SMTP replies.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        sink.port = port;
        sink.counting = Some((connections, proxy));
        sink
    }

    /// SMTP connections made so far to a sink from [`SmtpSink::start_counting`] (0 for any other).
    pub fn connections(&self) -> usize {
        self.counting
            .as_ref()
            .map_or(0, |(connections, _)| connections.load(Ordering::SeqCst))
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(entry.path()) {
                        messages.push(text);
                    }
                }
            }
        }
        messages
    }

    pub async fn stop(mut self) {
        if let Some((_, proxy)) = self.counting.take() {
            proxy.abort();
        }
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Undo quoted-printable soft line breaks and `=XX` escapes so assertions can read the body.
pub fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One part of a received email (or the whole of a single-part one): its content type and its body with
/// the transfer encoding undone (quoted-printable; 7bit and 8bit are as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePart {
    /// e.g. "text/plain; charset=utf-8".
    pub content_type: String,
    pub body: String,
}

/// The leaf parts of a raw RFC 5322 message, in order: one for a single-part email, each part of a
/// multipart one (nested multiparts flattened).
pub fn mime_parts(raw: &str) -> Vec<MimePart> {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let content_type = header(head, "content-type").unwrap_or_else(|| "text/plain".to_owned());
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let Some(boundary) = parameter(&content_type, "boundary") else {
            return Vec::new();
        };
        let delimiter = format!("--{boundary}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .flat_map(|part| mime_parts(part.strip_prefix('\n').unwrap_or(part)))
            .collect();
    }
    let encoding = header(head, "content-transfer-encoding").unwrap_or_default();
    let body = if encoding.eq_ignore_ascii_case("quoted-printable") {
        decode_quoted_printable(body)
    } else {
        body.to_owned()
    };
    vec![MimePart { content_type, body }]
}

/// A header's value (continuation lines unfolded), by case-insensitive name.
pub fn header(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.lines() {
        if let Some(current) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                current.push(' ');
                current.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((field, rest)) = line.split_once(':')
            && field.trim().eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim().to_owned());
        }
    }
    value
}

fn parameter(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}
