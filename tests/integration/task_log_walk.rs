//! One 50 MB task log walked through every surface that reads logs: the REST API (JSON windows
//! by continuation token, and plain text), the UI (log windows page by page, and the live stream)
//! and the CLI (`weir tasks logs`), all against a real `weir serve` and the real binary. Every
//! byte of the log but its line ends belongs to a 2-, 3- or 4-byte character, a character spans
//! every 64 KiB boundary (so every boundary of a fixed-size window falls inside one), and some
//! lines are megabytes long, so windows must be cut inside lines. Each surface must give the file
//! back byte for byte, every piece ending on a character boundary.

use std::process::{Command, Stdio};

use crate::support;

const DAG: &str = "
tasks:
  work: { command: echo hi }
";

/// The finest window any surface uses (the UI's stream and the plain-text pieces): 64 KiB. The
/// UI's page (256 KiB) and the REST window (1 MiB) are multiples of it.
const BOUNDARY: usize = 64 * 1024;

/// About `size` bytes of lines of 2-, 3- and 4-byte characters; a character spans every
/// multiple of [`BOUNDARY`], and about one line in fifty is 1–4 MB long.
fn multibyte_log(size: usize) -> Vec<u8> {
    const CHARACTERS: [&str; 6] = ["é", "€", "😀", "ж", "✓", "𝄞"];
    let mut log = Vec::with_capacity(size + 4 * 1024 * 1024);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut next_character = 0;
    // Never lets a character or a line end land exactly on a boundary: then every boundary is
    // inside a character.
    while log.len() < size {
        let draw = random();
        let characters = if draw % 50 == 0 {
            300_000 + (draw >> 8) as usize % 1_200_000
        } else {
            1 + (draw >> 8) as usize % 3000
        };
        for _ in 0..characters {
            let mut character = CHARACTERS[next_character % CHARACTERS.len()];
            next_character += 1;
            while log.len() % BOUNDARY + character.len() == BOUNDARY {
                character = CHARACTERS[next_character % CHARACTERS.len()];
                next_character += 1;
            }
            log.extend_from_slice(character.as_bytes());
        }
        if log.len() % BOUNDARY + 1 == BOUNDARY {
            log.extend_from_slice("é".as_bytes());
        }
        log.push(b'\n');
    }
    log
}

fn is_character_start(log: &[u8], offset: usize) -> bool {
    offset == log.len() || log[offset] & 0xC0 != 0x80
}

/// Percent-encodes a path segment (run ids hold `:` and `+`).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

struct Server {
    base: String,
    client: reqwest::Client,
    token: String,
}

impl Server {
    async fn get(&self, path: &str, accept: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response
    }

    /// A UI page or stream, with the session cookie a browser would send.
    async fn get_ui(&self, path: &str) -> String {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Cookie", support::session_cookie(&self.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }
}

/// REST, JSON: windows of whole lines (a giant line cut at a character boundary) by token.
async fn walk_rest_json(server: &Server, uri: &str, log: &[u8]) {
    let mut walked = Vec::with_capacity(log.len());
    let mut token = 0usize;
    let mut cut_inside_a_line = 0;
    loop {
        let answer: serde_json::Value = server
            .get(&format!("{uri}?token={token}"), "application/json")
            .await
            .json()
            .await
            .unwrap();
        let next: usize = answer["continuation_token"].as_str().unwrap().parse().unwrap();
        let lines: Vec<&str> = answer["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["event"].as_str().unwrap())
            .collect();
        if next == token {
            assert!(lines.is_empty(), "lines without progress at {token}");
            break;
        }
        let mut piece = lines.join("\n");
        if piece.len() + 1 == next - token {
            piece.push('\n');
        } else {
            cut_inside_a_line += 1;
        }
        assert!(
            is_character_start(log, next),
            "a REST window ends inside a character at {next}"
        );
        assert!(
            piece.as_bytes() == &log[token..next],
            "REST window {token}..{next} differs from the file"
        );
        walked.extend_from_slice(piece.as_bytes());
        token = next;
    }
    assert!(walked == log, "the REST windows do not add up to the file");
    assert!(cut_inside_a_line > 0, "no REST window had to cut a giant line");
}

/// REST, plain text: the whole log in one streamed body, its end as the continuation token.
async fn read_rest_text(server: &Server, uri: &str, log: &[u8]) {
    let response = server.get(uri, "text/plain").await;
    let token = response.headers()["airflow-continuation-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(token, log.len().to_string());
    let body = response.bytes().await.unwrap();
    assert!(body.as_ref() == log, "the plain-text log differs from the file");
}

/// The UI's task page, window after window (`offset=`), and its default view, the log's end.
async fn walk_ui_pages(server: &Server, page: &str, log: &[u8]) {
    let window_of = |html: &str| {
        let (_, range) = html.split_once("<span class=\"muted small\">bytes ").unwrap();
        let (range, _) = range.split_once("</span>").unwrap();
        let (start, rest) = range.split_once('–').unwrap();
        let (end, size) = rest.split_once(" of ").unwrap();
        let (_, text) = html.split_once("id=\"log\"").unwrap();
        let (_, text) = text.split_once('>').unwrap();
        let (text, _) = text.split_once("</pre>").unwrap();
        let offsets: [usize; 3] = [start, end, size].map(|number| number.parse().unwrap());
        (offsets, text.to_string())
    };
    let mut walked = Vec::with_capacity(log.len());
    let mut offset = 0;
    while offset < log.len() {
        let ([start, end, size], text) = window_of(&server.get_ui(&format!("{page}?try=1&offset={offset}")).await);
        assert_eq!((start, size), (offset, log.len()));
        assert!(end > start, "no progress at {start}");
        assert!(
            is_character_start(log, end),
            "a UI window ends inside a character at {end}"
        );
        assert!(
            text.as_bytes() == &log[start..end],
            "UI window {start}..{end} differs from the file"
        );
        walked.extend_from_slice(text.as_bytes());
        offset = end;
    }
    assert!(walked == log, "the UI windows do not add up to the file");
    let ([start, end, _], text) = window_of(&server.get_ui(&format!("{page}?try=1")).await);
    assert_eq!(end, log.len());
    assert!(
        is_character_start(log, start) && text.as_bytes() == &log[start..],
        "the UI's tail window"
    );
}

/// The UI's live stream from offset 0: `log` events whose ids are the offsets after them, then `end`.
async fn read_ui_stream(server: &Server, page: &str, log: &[u8]) {
    let body = server.get_ui(&format!("{page}/logs/1/stream?from=0")).await;
    let mut walked = Vec::with_capacity(log.len());
    let mut ended = false;
    for event in body.split("\n\n").filter(|event| !event.trim().is_empty()) {
        let field = |name: &str| {
            event
                .lines()
                .find_map(|line| line.strip_prefix(name).map(|value| value.trim_start().to_string()))
        };
        match field("event:").as_deref() {
            Some("log") => {
                let end: usize = field("id:").unwrap().parse().unwrap();
                let data: serde_json::Value = serde_json::from_str(&field("data:").unwrap()).unwrap();
                let text = data["text"].as_str().unwrap();
                let start = walked.len();
                assert!(
                    is_character_start(log, end),
                    "a stream event ends inside a character at {end}"
                );
                assert!(
                    text.as_bytes() == &log[start..end],
                    "stream event {start}..{end} differs from the file"
                );
                walked.extend_from_slice(text.as_bytes());
            }
            Some("end") => ended = true,
            other => assert!(other.is_none(), "unexpected event {other:?}"),
        }
    }
    assert!(ended, "the stream never said the attempt ended");
    assert!(walked == log, "the stream does not add up to the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_log_of_multi_byte_characters_reads_back_byte_for_byte_through_rest_ui_and_cli() {
    let log = multibyte_log(50 * 1024 * 1024);
    for boundary in (BOUNDARY..log.len()).step_by(BOUNDARY) {
        assert!(
            !is_character_start(&log, boundary),
            "offset {boundary} starts a character"
        );
    }
    assert!(std::str::from_utf8(&log).is_ok());

    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("dags")).unwrap();
    std::fs::write(project.path().join("dags/walk.yaml"), DAG).unwrap();
    let port = support::free_port();
    let config = project.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let weir = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("WEIR_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let tested = weir(&["dags", "test", "walk", "2026-03-01"]);
    assert!(tested.status.success(), "{}", String::from_utf8_lossy(&tested.stderr));

    let serve_log = project.path().join("serve.log");
    let _daemon = support::ServerProcess::start(&config, "serve", &serve_log);
    support::wait_for_port(port, &serve_log);
    let base = format!("http://127.0.0.1:{port}");
    let client = weir::runtime::builtin::http_client().unwrap().clone();
    let password = std::fs::read_to_string(project.path().join("state/admin_password.txt")).unwrap();
    let answer: serde_json::Value = client
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({ "username": "admin", "password": password.trim() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap().to_string();
    let server = Server { base, client, token };

    let runs: serde_json::Value = server
        .get("/api/v2/dags/walk/dagRuns", "application/json")
        .await
        .json()
        .await
        .unwrap();
    let run_id = runs["dag_runs"][0]["dag_run_id"].as_str().unwrap().to_string();
    let log_file = project.path().join(format!("state/logs/walk/{run_id}/work/1.log"));
    assert!(log_file.exists(), "the attempt's log is not at {}", log_file.display());
    std::fs::write(&log_file, &log).unwrap();

    let uri = format!(
        "/api/v2/dags/walk/dagRuns/{}/taskInstances/work/logs/1",
        encode(&run_id)
    );
    walk_rest_json(&server, &uri, &log).await;
    read_rest_text(&server, &uri, &log).await;
    let page = format!("/dags/walk/runs/{}/tasks/work", encode(&run_id));
    walk_ui_pages(&server, &page, &log).await;
    read_ui_stream(&server, &page, &log).await;

    let printed = weir(&["tasks", "logs", "walk", &run_id, "work", "--try", "1"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert!(
        printed.stdout == log,
        "`weir tasks logs` printed something else than the file"
    );
}
