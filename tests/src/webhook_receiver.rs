//! A real HTTP server for webhook tests (axum on a free port): records every post with its headers and the
//! instant it came, and answers as the test scripts it (e.g. 503 with `Retry-After`, then 200).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// One post as received.
#[derive(Debug, Clone)]
pub struct Post {
    pub at: Instant,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
}

impl Post {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

/// How to answer one post.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

impl Answer {
    pub const OK: Answer = Answer {
        status: 200,
        retry_after: None,
    };
}

#[derive(Default)]
struct Shared {
    posts: Vec<Post>,
    script: VecDeque<Answer>,
    /// Once the script runs out.
    then: Option<Answer>,
}

pub struct WebhookReceiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Answers `script` in turn, then `then` for every later post.
    pub async fn start(script: &[Answer], then: Answer) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            posts: Vec::new(),
            script: script.iter().copied().collect(),
            then: Some(then),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, server }
    }

    pub fn posts(&self) -> Vec<Post> {
        self.shared.lock().expect("receiver state").posts.clone()
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = {
        let mut shared = shared.lock().expect("receiver state");
        shared.posts.push(Post {
            at: Instant::now(),
            id: header("trust-webhook-id"),
            timestamp: header("trust-webhook-timestamp"),
            signature: header("trust-webhook-signature"),
            body: body.to_vec(),
        });
        let next = shared.script.pop_front();
        next.or(shared.then).unwrap_or(Answer::OK)
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match answer.retry_after {
        Some(after) => (status, [("retry-after", after)]).into_response(),
        None => status.into_response(),
    }
}
