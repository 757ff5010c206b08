//! What the real binary says about its configuration and surroundings: an unreachable database
//! named with its address, environment variables blamed (or ignored) by name, a host name as the
//! listening address, and tables whose cells are longer than a terminal line.

use std::io::{Read, Write};

use crate::support;
use crate::support::cli::{project_with_config, text, weir, weir_in_env};

#[test]
fn an_unreachable_postgres_is_named_with_its_address_and_the_refusal() {
    let project = project_with_config("[database]\nurl = \"postgres://postgres@127.0.0.1:1/test\"\n", &[]);
    let output = weir(project.path(), &["db", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "cannot open the metadata database postgres://postgres@127.0.0.1:1/test: cannot connect to 127.0.0.1:1: connection refused"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
}

#[tokio::test]
async fn a_postgres_server_that_refuses_the_login_is_quoted_in_its_own_words() {
    let Some(server) = support::postgres_url().await else {
        return;
    };
    let mut missing = url::Url::parse(&server).unwrap();
    missing.set_path("/weir_no_such_database");
    let project = project_with_config(&format!("[database]\nurl = \"{missing}\"\n"), &[]);
    let output = weir(project.path(), &["db", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("refused the connection: database \"weir_no_such_database\" does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_bad_value_in_the_environment_is_blamed_on_the_variable_not_the_file() {
    let project = project_with_config("[core]\ndags_folder = \"dags\"\n", &[]);
    let output = weir_in_env(project.path(), &["dags", "list"], &[("WEIR__CORE__PARALLELISM", "abc")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr
            .contains("environment variable WEIR__CORE__PARALLELISM: [core] parallelism: invalid type: string \"abc\""),
        "{stderr}"
    );
    assert!(!stderr.contains("config.toml"), "{stderr}");

    let output = weir_in_env(project.path(), &["dags", "list"], &[("WEIR__CORE__PARALLELISM", "0")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("environment variable WEIR__CORE__PARALLELISM: [core] parallelism = \"0\": must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_in_the_environment_is_ignored_with_a_warning_but_in_the_file_it_is_an_error() {
    let project = project_with_config("[core]\ndags_folder = \"dags\"\n", &[]);
    let output = weir_in_env(
        project.path(),
        &["dags", "list"],
        &[("WEIR__CORE__NOPE", "1"), ("WEIR__NOSECTION__KEY", "x")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ignored environment variable WEIR__CORE__NOPE: unknown field `nope`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ignored environment variable WEIR__NOSECTION__KEY: unknown field `nosection`"),
        "{stderr}"
    );

    std::fs::write(project.path().join("config.toml"), "[core]\nnope = 1\n").unwrap();
    let output = weir(project.path(), &["dags", "list"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("config.toml: unknown field `nope`"), "{stderr}");
}

/// The status line of a plain HTTP/1.1 GET of `path` on `port`, addressed to `host`.
fn status_for_host(port: u16, path: &str, host: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_host_name_is_accepted_as_the_bind_address_and_localhost_stays_loopback_only() {
    let port = support::free_port();
    let project = project_with_config(
        &format!(
            "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[webserver]\nbind = \"localhost:{port}\"\n\n[api_auth]\nmode = \"none\"\n"
        ),
        &[],
    );
    let log = project.path().join("serve.log");
    let _daemon = support::ServerProcess::start_in(project.path(), "serve", &log);
    support::wait_for_port(port, &log);
    let health = "/api/v2/monitor/health";
    assert_eq!(
        status_for_host(port, health, &format!("localhost:{port}")),
        "HTTP/1.1 200 OK"
    );
    // A page that pointed its own name at 127.0.0.1 is still refused (DNS rebinding).
    assert_eq!(
        status_for_host(port, health, &format!("rebound.example:{port}")),
        "HTTP/1.1 421 Misdirected Request"
    );
}

#[test]
fn a_table_cell_longer_than_a_format_width_is_cut_and_json_keeps_it_whole() {
    let tag = "t".repeat(70_000);
    let dag = format!("dag_id: tagged\ntags: [{tag}]\ntasks:\n  a: {{ command: 'true' }}\n");
    let project = project_with_config("[core]\ndags_folder = \"dags\"\n", &[("tagged.yaml", &dag)]);
    let output = weir(project.path(), &["dags", "list"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let row = stdout.lines().find(|line| line.starts_with("tagged")).unwrap();
    assert!(
        row.contains(&format!(
            "{}… (69000 more characters; see --output json)",
            "t".repeat(1000)
        )),
        "{}",
        &row[..200]
    );

    let output = weir(project.path(), &["dags", "list", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[0]["tags"][0].as_str(), Some(tag.as_str()));
}
