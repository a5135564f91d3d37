//! The benchmark's own SMTP server: enough of RFC 5321 for a client that sends plain mail (EHLO or HELO,
//! MAIL, RCPT, DATA, RSET, NOOP, QUIT), any number of connections at once, recording the moment each
//! message's DATA ends with its `Message-ID`. In-process and doing nothing with the mail, so its own speed
//! does not colour the figures (the tests' aiosmtpd writes a maildir per message).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest line accepted (RFC 5321 allows 1,000 octets for text lines; a little slack for long headers).
const MAX_LINE: usize = 64 * 1024;
/// Largest message accepted.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// When the end of DATA (`.` alone on a line) was read, before the reply was written.
    pub at: Instant,
    /// The `Message-ID` header, without angle brackets ("" when the message had none).
    pub message_id: String,
    pub recipients: Vec<String>,
}

pub struct SmtpSink {
    pub port: u16,
    accepted: Arc<Mutex<Vec<Accepted>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the SMTP sink")?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&accepted), stop.clone()));
        Ok(Self {
            port,
            accepted,
            stop,
            task,
        })
    }

    /// How many messages have been accepted so far.
    pub fn count(&self) -> usize {
        self.accepted.lock().map_or(0, |a| a.len())
    }

    /// Wait until `count` messages have been accepted or `deadline` passes; true when they have.
    pub async fn wait_for(&self, count: usize, deadline: Instant) -> bool {
        loop {
            if self.count() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything accepted so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, accepted: Arc<Mutex<Vec<Accepted>>>, stop: CancellationToken) {
    loop {
        let connection = tokio::select! {
            () = stop.cancelled() => return,
            connection = listener.accept() => connection,
        };
        match connection {
            Ok((stream, _)) => {
                let accepted = Arc::clone(&accepted);
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        served = serve(stream, &accepted) => {
                            if let Err(err) = served {
                                eprintln!("  SMTP sink: a connection failed: {err:#}");
                            }
                        }
                    }
                });
            }
            Err(err) => {
                eprintln!("  SMTP sink: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Where a conversation stands.
#[derive(Debug, Default)]
struct Envelope {
    from: bool,
    recipients: Vec<String>,
}

/// One client's conversation, until QUIT or the client goes.
async fn serve(stream: TcpStream, accepted: &Mutex<Vec<Accepted>>) -> Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(b"220 bench.localhost ESMTP notifications-bench sink\r\n")
        .await?;
    let mut envelope = Envelope::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if read_line(&mut read, &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-bench.localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n",
            "HELO" => b"250 bench.localhost\r\n",
            "MAIL" => {
                envelope = Envelope {
                    from: true,
                    recipients: Vec::new(),
                };
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if envelope.from => {
                envelope.recipients.push(address(command));
                b"250 2.1.5 OK\r\n"
            }
            "RCPT" => b"503 5.5.1 MAIL first\r\n",
            "DATA" if envelope.recipients.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let message_id = read_data(&mut read).await?;
                let message = Accepted {
                    at: Instant::now(),
                    message_id,
                    recipients: std::mem::take(&mut envelope.recipients),
                };
                envelope = Envelope::default();
                if let Ok(mut all) = accepted.lock() {
                    all.push(message);
                }
                b"250 2.0.0 OK queued\r\n"
            }
            "RSET" => {
                envelope = Envelope::default();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// One line including its end, refusing absurd lengths.
async fn read_line<R: AsyncBufReadExt + Unpin>(read: &mut R, line: &mut Vec<u8>) -> Result<usize> {
    let n = (&mut *read).take(MAX_LINE as u64).read_until(b'\n', line).await?;
    anyhow::ensure!(
        n < MAX_LINE || line.ends_with(b"\n"),
        "a line longer than {MAX_LINE} bytes"
    );
    Ok(n)
}

/// The message up to the `.` line; returns its Message-ID (without angle brackets).
async fn read_data<R: AsyncBufReadExt + Unpin>(read: &mut R) -> Result<String> {
    let mut message_id = String::new();
    let mut in_headers = true;
    let mut size = 0;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = read_line(read, &mut line).await?;
        anyhow::ensure!(n > 0, "the client went away during DATA");
        if line == b".\r\n" || line == b".\n" {
            return Ok(message_id);
        }
        size += n;
        anyhow::ensure!(size <= MAX_MESSAGE, "a message larger than {MAX_MESSAGE} bytes");
        if in_headers {
            let text = String::from_utf8_lossy(&line);
            let header = text.trim_end();
            if header.is_empty() {
                in_headers = false;
            } else if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("message-id")
            {
                message_id = value
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned();
            }
        }
    }
}

/// The address of `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or_else(String::new, |(address, _)| address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `send` (unless empty) and read the reply, which must start with `code`.
    async fn expect<R: AsyncBufReadExt + Unpin, W: AsyncWriteExt + Unpin>(
        read: &mut R,
        write: &mut W,
        send: &str,
        code: &str,
    ) {
        if !send.is_empty() {
            write.write_all(send.as_bytes()).await.expect("write");
        }
        // Multi-line replies: read until the line with a space after the code.
        let mut reply = String::new();
        loop {
            reply.clear();
            read.read_line(&mut reply).await.expect("read");
            assert!(reply.starts_with(code), "{send:?} got {reply:?}");
            if reply.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    }

    #[tokio::test]
    async fn a_conversation_is_recorded_with_its_message_id() {
        let sink = SmtpSink::start().await.expect("sink");
        let stream = TcpStream::connect(("127.0.0.1", sink.port))
            .await
            .expect("connect");
        let (read, mut w) = stream.into_split();
        let mut r = BufReader::new(read);
        expect(&mut r, &mut w, "", "220").await;
        expect(&mut r, &mut w, "EHLO client\r\n", "250").await;
        expect(&mut r, &mut w, "DATA\r\n", "503").await;
        expect(
            &mut r,
            &mut w,
            "MAIL FROM:<alerts@trust.localhost> BODY=8BITMIME\r\n",
            "250",
        )
        .await;
        expect(&mut r, &mut w, "RCPT TO:<dcs@example.org>\r\n", "250").await;
        expect(&mut r, &mut w, "DATA\r\n", "354").await;
        let message = "Subject: hello\r\nMessage-ID: <0192-abc@trust.localhost>\r\n\r\n\
                       Message-ID: <not-a-header>\r\n..dot\r\n.\r\n";
        expect(&mut r, &mut w, message, "250").await;
        expect(&mut r, &mut w, "QUIT\r\n", "221").await;
        assert!(sink.wait_for(1, Instant::now() + Duration::from_secs(5)).await);
        let accepted = sink.accepted();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].message_id, "0192-abc@trust.localhost");
        assert_eq!(accepted[0].recipients, vec!["dcs@example.org".to_owned()]);
        sink.stop().await;
    }
}
