//! The references under `docs/` that are generated from the code, checked to be current: the CLI
//! reference (`docs/cli.md`, every command's `--help`) and the DAG file JSON Schema
//! (`docs/dag.schema.json`). `WEIR_UPDATE_DOCS=1 cargo test --test integration generated_docs`
//! rewrites both. Then the schema itself: every example DAG passes it, files weir refuses for
//! their shape fail it, and the daemon serves it without a token. And the hand-written references
//! are complete: `docs/dag-file.md` names every key of the schema, `docs/config.md` every key of
//! the commented `config.toml`.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::CommandFactory;
use serde_json::Value;
use weir::domain::dag::Dag;
use weir::domain::spec::{DAG_SCHEMA_PATH, dag_file_schema};
use weir::domain::validate::ValidationContext;

const UPDATE: &str = "WEIR_UPDATE_DOCS";
const REGENERATE: &str = "WEIR_UPDATE_DOCS=1 cargo test --test integration generated_docs";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `docs/<name>` with `generated`, or writes it when `WEIR_UPDATE_DOCS` is set.
fn check_current(name: &str, generated: &str) {
    let path = root().join("docs").join(name);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(old, new)| old != new)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "docs/{name} is not what the code generates (first difference at line {line}): run `{REGENERATE}` and commit the result"
        );
    }
}

/// The command tree as the binary has it, with the environment's `WEIR_CONFIG` value left out of
/// the help (it would make the reference depend on the shell that generated it).
fn command_tree() -> clap::Command {
    let mut command = weir::cli::Cli::command()
        .term_width(100)
        .mut_arg("config", |arg| arg.hide_env_values(true));
    command.build();
    command
}

/// Every visible command with its full name (`weir dags list`), depth first, in help order.
pub fn commands() -> Vec<(String, clap::Command)> {
    fn walk(command: &clap::Command, name: String, found: &mut Vec<(String, clap::Command)>) {
        found.push((name.clone(), command.clone()));
        // clap's own `help` subcommand repeats the tree; `weir help X` is `weir X --help`.
        for sub in command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
        {
            walk(sub, format!("{name} {}", sub.get_name()), found);
        }
    }
    let tree = command_tree();
    let mut found = Vec::new();
    walk(&tree, tree.get_name().to_string(), &mut found);
    found
}

/// What `--help` prints for one command of the tree.
pub fn long_help(command: &clap::Command) -> String {
    let mut command = command.clone();
    let text = command.render_long_help().to_string();
    text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// `docs/cli.md`: a contents list, then each command's `--help` as it prints.
fn cli_reference() -> String {
    let commands = commands();
    let mut text = String::from(
        "# Command-line reference\n\n\
         Every `weir` command with what its `--help` prints. Generated from the code: do not edit;\n\
         regenerate with `",
    );
    text.push_str(REGENERATE);
    text.push_str("`.\n\n");
    for (name, command) in &commands {
        let depth = name.matches(' ').count();
        let about = command.get_about().map(ToString::to_string).unwrap_or_default();
        let anchor = name.replace(' ', "-");
        let line = format!("{}- [`{name}`](#{anchor}) {about}", "  ".repeat(depth));
        text.push_str(line.trim_end());
        text.push('\n');
    }
    for (name, command) in &commands {
        text.push_str(&format!("\n## {name}\n\n```text\n{}\n```\n", long_help(command)));
    }
    text
}

fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&dag_file_schema()).unwrap();
    text.push('\n');
    text
}

#[test]
fn the_cli_reference_is_current() {
    let reference = cli_reference();
    assert!(reference.contains("\n## weir dags list\n"), "{reference}");
    check_current("cli.md", &reference);
}

#[test]
fn the_dag_file_schema_is_current() {
    check_current("dag.schema.json", &schema_text());
}

fn validator() -> jsonschema::Validator {
    let schema = dag_file_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::draft7::new(&schema).unwrap_or_else(|error| panic!("the DAG schema is not a valid schema: {error}"))
}

/// A YAML DAG file as the JSON value a YAML language server checks.
fn as_json(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("not YAML: {error}\n{yaml}"))
}

/// The shape errors of `yaml` against the schema, one line each.
fn schema_errors(validator: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    validator
        .iter_errors(&as_json(yaml))
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

fn yaml_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            found.push(path);
        }
    }
}

/// The YAML blocks of a Markdown file that are whole DAG files (they have `tasks:` at the top).
fn dag_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                if block.lines().any(|line| line.starts_with("tasks:")) {
                    blocks.push(block.clone());
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_dag_passes_the_schema() {
    let validator = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("dags"), &mut files);
    assert!(files.len() >= 4, "only {} example DAGs found", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let yaml = std::fs::read_to_string(file).unwrap();
        for error in schema_errors(&validator, &yaml) {
            failures.push(format!("{}: {error}", file.display()));
        }
    }
    let reference = std::fs::read_to_string(root().join("docs/dag-file.md")).unwrap();
    let blocks = dag_blocks(&reference);
    assert!(
        blocks.len() >= 3,
        "only {} DAG examples in docs/dag-file.md",
        blocks.len()
    );
    for (index, yaml) in blocks.iter().enumerate() {
        for error in schema_errors(&validator, yaml) {
            failures.push(format!("docs/dag-file.md example {}: {error}", index + 1));
        }
        // The reference's examples are real DAGs too.
        if let Err(error) = Dag::from_yaml(Path::new("dags/example.yaml"), yaml, &ValidationContext::default()) {
            failures.push(format!(
                "docs/dag-file.md example {}: weir refuses it: {error}",
                index + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn files_weir_refuses_for_their_shape_fail_the_schema_and_say_where() {
    let validator = validator();
    let cases = [
        ("a misspelt task key", "tasks:\n  a: { comand: echo }\n", "/tasks/a"),
        (
            "a misspelt DAG key",
            "schedul: \"@daily\"\ntasks:\n  a: { command: echo }\n",
            "",
        ),
        ("no tasks", "description: nothing to do\n", ""),
        ("an empty task map", "tasks: {}\n", "/tasks"),
        (
            "a wrong type",
            "tasks:\n  a: { command: echo, retries: two }\n",
            "/tasks/a/retries",
        ),
        (
            "an unknown task type",
            "tasks:\n  a: { type: bash, command: echo }\n",
            "/tasks/a/type",
        ),
        (
            "an unknown trigger rule",
            "tasks:\n  a: { command: echo, trigger_rule: all_sucess }\n",
            "/tasks/a/trigger_rule",
        ),
        (
            "a duration without unit",
            "tasks:\n  a: { command: echo, timeout: \"90\" }\n",
            "/tasks/a/timeout",
        ),
        ("a bad task id", "tasks:\n  \"a b\": { command: echo }\n", "/tasks"),
        (
            "a misspelt schedule key",
            "schedule: { cron: \"@daily\", data_intervl: false }\nstart_date: 2026-01-01\ntasks:\n  a: { command: echo }\n",
            "/schedule",
        ),
        (
            "a misspelt param key",
            "params:\n  region: { type: string, defualt: kr }\ntasks:\n  a: { command: echo }\n",
            "/params/region",
        ),
        (
            "max_active_runs of 0",
            "max_active_runs: 0\ntasks:\n  a: { command: echo }\n",
            "/max_active_runs",
        ),
        (
            "a transfer mode that does not exist",
            "tasks:\n  a:\n    type: transfer\n    from: { conn: a, sql: SELECT 1 }\n    to: { conn: b, table: t, mode: merge }\n",
            "/tasks/a/to",
        ),
    ];
    for (what, yaml, at) in cases {
        let errors = schema_errors(&validator, yaml);
        assert!(!errors.is_empty(), "{what}: the schema accepts\n{yaml}");
        assert!(
            errors
                .iter()
                .any(|error| error.starts_with(&format!("{at}:")) || error.starts_with(&format!("{at}/"))),
            "{what}: no error at `{at}`: {errors:#?}"
        );
        // The schema agrees with weir: these are all refused by the parser or validation too.
        assert!(
            Dag::from_yaml(Path::new("dags/bad.yaml"), yaml, &ValidationContext::default()).is_err(),
            "{what}: weir accepts\n{yaml}"
        );
    }
}

#[test]
fn files_weir_accepts_pass_the_schema() {
    // Shapes the example DAGs do not show: every schedule form, params both ways, sensors and a
    // sql sensor's map, numbers where text is read, `defaults:`.
    let validator = validator();
    let cases = [
        "schedule: null\ntasks:\n  a: { command: echo }\n",
        "schedule: \"@once\"\nstart_date: 2026-01-01T06:00:00+09:00\ntasks:\n  a: { command: echo }\n",
        "schedule: { cron: \"0 3 * * *\", data_interval: false }\nstart_date: 2026-01-01\ntasks:\n  a: { command: echo }\n",
        "schedule: { datasets: [warehouse.orders] }\ntasks:\n  a: { command: echo }\n",
        "params:\n  region: kr\n  limit: { type: integer, default: 10, minimum: 1 }\n  flags: [a, b]\n  name: { type: string, minLength: 1, maxLength: 8, pattern: '^[a-z]+$' }\ntasks:\n  a: { command: echo }\n",
        "defaults: { retries: 2, retry_delay: 30s, retry_exponential_backoff: true, max_retry_delay: 10m, timeout: 1h30m, pool: default, env: { A: b } }\ntasks:\n  a: { command: echo, priority_weight: -3, skip_exit_code: 3 }\n",
        "tasks:\n  wait:\n    type: sensor\n    sql: { conn: warehouse, sql: SELECT 1 }\n    poke_interval: 1m\n    timeout: 6h\n    soft_fail: true\n",
        "tasks:\n  call:\n    type: http\n    url: http://example.com\n    method: post\n    json: { day: \"{{ ds }}\" }\n    expect_status: [200, \"2xx\"]\n",
        "tasks:\n  other:\n    type: sensor\n    dag_run: { dag_id: hello_world }\n  start:\n    type: trigger_dag\n    dag_id: hello_world\n    conf: { day: 1 }\n    wait_for_completion: true\n",
        "alerts: { on_failure: [], sla_miss: [] }\nsla: 2h\ntasks:\n  a: { command: echo, outlets: [warehouse.orders], doc: hi, depends_on_past: true }\n",
        // Numbers written bare where text is read, as people write them in these maps and lists.
        "tags: [2026, etl]\ntasks:\n  a: { command: echo, env: { PORT: 5432, DEBUG: true } }\n  b: { type: http, url: x, headers: { X-Retries: 3 } }\n",
    ];
    for yaml in cases {
        let parsed = Dag::from_yaml(Path::new("dags/good.yaml"), yaml, &ValidationContext::default());
        assert!(
            parsed.is_ok(),
            "weir refuses\n{yaml}{:?}",
            parsed.err().map(|e| e.to_string())
        );
        let errors = schema_errors(&validator, yaml);
        assert!(errors.is_empty(), "the schema refuses\n{yaml}{errors:#?}");
    }
}

#[tokio::test]
async fn the_daemon_serves_the_schema_without_a_token() {
    for api in crate::api::apis().await {
        let request = Request::get(DAG_SCHEMA_PATH).body(Body::empty()).unwrap();
        let answer = api.send_anonymous(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{}",
            answer.content_type
        );
        assert_eq!(answer.body, dag_file_schema(), "{}", api.label);
    }
}

/// Every key name in the schema: the properties of the root and of every definition.
fn schema_keys(schema: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let definitions = schema["definitions"].as_object().unwrap();
    for object in std::iter::once(schema).chain(definitions.values()) {
        if let Some(properties) = object["properties"].as_object() {
            keys.extend(properties.keys().cloned());
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn the_dag_file_reference_names_every_key_of_the_schema() {
    // docs/dag-file.md is written by hand; the schema is generated from the parser's types, so a
    // key added to the parser and forgotten in the reference shows here.
    let reference = std::fs::read_to_string(root().join("docs/dag-file.md")).unwrap();
    let keys = schema_keys(&dag_file_schema());
    assert!(keys.len() >= 60, "only {} keys in the schema: {keys:?}", keys.len());
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !reference.contains(&format!("`{key}`")) && !reference.contains(&format!("`to.{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/dag-file.md does not name these DAG file keys: {missing:?}"
    );
}

#[test]
fn the_config_reference_names_every_key_of_the_commented_config() {
    // config.toml names every key, set or commented out (`# key = ...`); docs/config.md must too.
    let config = std::fs::read_to_string(root().join("config.toml")).unwrap();
    let reference = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    // A key and the start of a TOML value (not `# name = slots`, a comment's prose).
    let key = regex::Regex::new(r#"^#?\s*([a-z_]+)\s*=\s*["\[{0-9tf-]"#).unwrap();
    let section = regex::Regex::new(r"^#?\s*\[([a-z_.]+)\]").unwrap();
    let mut missing = Vec::new();
    let mut n_keys = 0;
    let mut current = String::new();
    for line in config.lines() {
        if let Some(found) = section.captures(line) {
            current = found[1].to_string();
            continue;
        }
        let Some(found) = key.captures(line) else { continue };
        // Connections and the example channels are names the user picks, not keys.
        if current.starts_with("connections.") && current != "connections.warehouse" {
            continue;
        }
        n_keys += 1;
        let name = &found[1];
        if !reference.contains(&format!("`{name}`")) && !reference.contains(&format!("`{name} =")) {
            missing.push(format!("[{current}] {name}"));
        }
    }
    assert!(n_keys >= 40, "only {n_keys} keys read from config.toml");
    assert!(missing.is_empty(), "docs/config.md does not name: {missing:?}");
}
