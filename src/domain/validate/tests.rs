//! Validation tests: each DAG file below and the `Dag` or the problems it gives.

use super::*;
use crate::domain::ids::TaskId;
use crate::domain::trigger_rule::TriggerRule;

// Every YAML below starts on the line after `r"` (the leading newline is dropped), so line 1
// is the first line shown.

fn context() -> ValidationContext {
    ValidationContext {
        pools: BTreeMap::from([("default".to_string(), 128), ("etl".to_string(), 4)]),
        alert_channels: BTreeSet::from(["ops".to_string()]),
        ..ValidationContext::default()
    }
}

fn load_from(path: &str, yaml: &str) -> Result<Dag, DagFileError> {
    let text = yaml.strip_prefix('\n').unwrap_or(yaml);
    Dag::from_yaml(Path::new(path), text, &context())
}

fn load(yaml: &str) -> Result<Dag, DagFileError> {
    load_from("dags/demo.yaml", yaml)
}

/// Every problem as `line:column: message`; empty when the file is valid.
fn problems(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => Vec::new(),
        Err(error) => error.problems.iter().map(Problem::to_string).collect(),
    }
}

fn check(yaml: &str, expected: &[&str]) {
    assert_eq!(problems(yaml), expected, "problems in:\n{yaml}");
}

/// The single problem, for messages whose wording partly comes from a library.
fn only_problem(yaml: &str) -> String {
    let found = problems(yaml);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    found[0].clone()
}

#[test]
fn a_misspelt_top_level_key_is_reported_with_the_key_it_probably_meant() {
    check(
        r"
dag_id: demo
schedul: '@daily'
tasks:
  hello:
    command: echo hello
",
        &["2:1: unknown key `schedul`: did you mean `schedule`?"],
    );
}

#[test]
fn an_unknown_top_level_key_with_no_near_match_lists_the_allowed_keys() {
    check(
        r"
dag_id: demo
colour: blue
tasks:
  hello:
    command: echo hello
",
        &[
            "2:1: unknown key `colour`: the keys allowed here are dag_id, description, owner, \
               tags, schedule, timezone, start_date, end_date, catchup, max_active_runs, \
               max_active_tasks, is_paused_upon_creation, params, defaults, alerts, sla, tasks",
        ],
    );
}

#[test]
fn an_unknown_key_in_a_task_is_reported_where_it_is() {
    check(
        r"
dag_id: demo
tasks:
  hello:
    command: echo hello
    retires: 2
",
        &["5:5: unknown key `retires` in `tasks.hello`: did you mean `retries`?"],
    );
    check(
        r"
tasks:
  hello: {command: echo hello, retires: 2}
",
        &["2:32: unknown key `retires` in `tasks.hello`: did you mean `retries`?"],
    );
}

#[test]
fn an_unknown_key_in_defaults_or_alerts_names_its_section() {
    check(
        r"
defaults:
  retry_dealy: 30s
tasks:
  hello:
    command: echo hello
",
        &["2:3: unknown key `retry_dealy` in `defaults`: did you mean `retry_delay`?"],
    );
    check(
        r"
alerts: {on_failur: [ops]}
tasks:
  hello:
    command: echo hello
",
        &["1:10: unknown key `on_failur` in `alerts`: did you mean `on_failure`?"],
    );
}

#[test]
fn a_word_where_a_count_belongs_is_reported_at_the_value_with_its_path() {
    check(
        r"
dag_id: demo
tasks:
  hello:
    command: echo hello
    retries: many
",
        &["5:14: `tasks.hello.retries` must be a whole number, 0 or more, not `many`"],
    );
    check(
        r"
tasks:
  hello: {command: echo hello, retries: many}
",
        &["2:41: `tasks.hello.retries` must be a whole number, 0 or more, not `many`"],
    );
}

#[test]
fn a_negative_or_zero_count_is_reported_at_the_value() {
    check(
        r"
dag_id: demo
max_active_runs: -1
tasks:
  hello:
    command: echo hello
",
        &["2:18: max_active_runs must be at least 1, not -1"],
    );
    check(
        r"
max_active_tasks: 0
tasks:
  hello:
    command: echo hello
    pool_slots: 0
",
        &[
            "1:19: max_active_tasks must be at least 1, not 0",
            "5:17: pool_slots must be at least 1, not 0",
        ],
    );
    check(
        r"
max_active_runs: lots
tasks:
  hello:
    command: echo hello
",
        &["1:18: `max_active_runs` must be a whole number, not `lots`"],
    );
}

#[test]
fn a_cron_that_never_fires_is_refused_at_the_schedule_and_a_leap_day_cron_is_not() {
    check(
        r"
schedule: '0 0 31 2 *'
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &[
            "1:11: `0 0 31 2 *` never fires: no date matches it (e.g. a 31st in a month of 30 \
               days, or 30 February); fix the day-of-month or month field",
        ],
    );
    check(
        r"
schedule: {cron: '0 0 31 4 *', data_interval: false}
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &[
            "1:11: `0 0 31 4 *` never fires: no date matches it (e.g. a 31st in a month of 30 \
               days, or 30 February); fix the day-of-month or month field",
        ],
    );
    check(
        r"
schedule: '0 0 29 2 *'
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &[],
    );
}

#[test]
fn a_start_date_in_year_zero_or_before_is_refused_with_the_accepted_range() {
    check(
        r"
schedule: '@daily'
start_date: 0000-01-01
tasks:
  hello:
    command: echo hello
",
        &[
            "2:13: start_date: 0000-01-01T00:00:00Z is outside the dates weir accepts: use a date \
               from 1000-01-01 to 9999-12-31 (UTC)",
        ],
    );
    check(
        r"
schedule: '@daily'
start_date: -0001-06-01
tasks:
  hello:
    command: echo hello
",
        &[
            "2:13: start_date: -0001-06-01T00:00:00Z is outside the dates weir accepts: use a \
               date from 1000-01-01 to 9999-12-31 (UTC)",
        ],
    );
}

#[test]
fn a_task_taking_more_slots_than_its_pool_has_is_refused_with_the_pool_size() {
    check(
        r"
defaults:
  pool_slots: 200
tasks:
  small:
    command: echo small
    pool: etl
    pool_slots: 4
  big:
    command: echo big
    pool: etl
    pool_slots: 5
  everything:
    command: echo everything
",
        &[
            "2:15: task `everything` takes 200 slots of pool `default`, which has 128, so it \
                 would never start: lower pool_slots to at most 128, or give the pool more slots \
                 under [pools] in config.toml",
            "11:17: task `big` takes 5 slots of pool `etl`, which has 4, so it would never \
                 start: lower pool_slots to at most 4, or give the pool more slots under [pools] \
                 in config.toml",
        ],
    );
}

#[test]
fn a_pool_closed_with_zero_slots_is_not_a_mistake() {
    let context = ValidationContext {
        pools: BTreeMap::from([("default".to_string(), 128), ("paused".to_string(), 0)]),
        ..ValidationContext::default()
    };
    let yaml = "tasks:\n  hello:\n    command: echo hello\n    pool: paused\n    pool_slots: 2\n";
    let dag = Dag::from_yaml(Path::new("dags/demo.yaml"), yaml, &context).unwrap();
    assert_eq!(dag.tasks[0].pool_slots, 2);
}

#[test]
fn a_skip_exit_code_a_process_cannot_end_with_is_refused() {
    check(
        r"
tasks:
  above:
    command: exit 256
    skip_exit_code: 256
  negative:
    command: exit 1
    skip_exit_code: -1
  success:
    command: exit 0
    skip_exit_code: 0
  highest:
    command: exit 255
    skip_exit_code: 255
",
        &[
            "4:21: skip_exit_code must be an exit code from 1 to 255, not 256: a process \
                 cannot end with any other",
            "7:21: skip_exit_code must be an exit code from 1 to 255, not -1: a process \
                 cannot end with any other",
            "10:21: skip_exit_code cannot be 0: exit code 0 means success; pick another code \
                 from 1 to 255 (99 if you leave it out)",
        ],
    );
}

#[test]
fn retries_past_a_thousand_are_refused_with_what_to_use_instead() {
    check(
        r"
defaults:
  retries: 4294967295
tasks:
  hello:
    command: echo hello
  bounded:
    command: echo bounded
    retries: 1000
",
        &[
            "2:12: retries must be at most 1000, not 4294967295: to wait longer for something, \
               use a sensor task with `poke_interval` and `timeout`",
        ],
    );
}

#[test]
fn counts_past_their_bound_are_refused_at_the_value() {
    check(
        r"
max_active_runs: 10001
max_active_tasks: 4294967296
tasks:
  hello:
    command: echo hello
    priority_weight: 2147483648
  low:
    command: echo low
    priority_weight: -2147483648
",
        &[
            "1:18: max_active_runs must be at most 10000, not 10001",
            "2:19: max_active_tasks must be at most 10000, not 4294967296",
            "6:22: priority_weight must be between -2147483648 and 2147483647 (as in \
                 Airflow), not 2147483648: only the order of weights matters, so smaller numbers \
                 do the same",
        ],
    );
}

#[test]
fn a_transfer_batch_past_a_million_rows_is_refused() {
    check(
        r"
tasks:
  copy:
    type: transfer
    from: {conn: shop, sql: 'SELECT * FROM orders'}
    to: {conn: warehouse, table: orders}
    batch_size: 1000001
",
        &[
            "6:17: `batch_size` must be at most 1000000, not 1000001: a batch of rows is held \
               in memory",
        ],
    );
}

#[test]
fn a_duration_longer_than_a_year_is_refused_at_the_value() {
    check(
        r"
sla: 366d
tasks:
  hello:
    command: echo hello
    timeout: 100000d
    retry_delay: 365d
",
        &[
            "1:6: sla `366d` is longer than weir accepts (365d): give at most 365d, or leave \
                 `sla` out",
            "5:14: timeout `100000d` is longer than weir accepts (365d): give at most 365d, or \
                 leave `timeout` out",
        ],
    );
}

#[test]
fn a_value_of_the_wrong_shape_says_what_shape_is_expected() {
    check(
        r"
tasks:
  hello:
    command: echo hello
    depends_on: other
",
        &["4:17: `tasks.hello.depends_on` must be a list, such as `[a, b]`"],
    );
    check(
        r"
tasks:
  hello:
    command: [echo, hello]
",
        &["3:14: `tasks.hello.command` must be a single text value, not a list or a map"],
    );
    check(
        r"
tasks:
  hello:
    command: echo hello
    env: {GREETING: [hi]}
",
        &["4:21: `tasks.hello.env.GREETING` must be a single text value, not a list or a map"],
    );
    check(
        r"
catchup: maybe
tasks:
  hello:
    command: echo hello
",
        &["1:10: `catchup` must be true or false, not `maybe`"],
    );
    check(
        r"
- hello
",
        &["1:1: the value must be a map of `key: value` entries"],
    );
}

#[test]
fn a_shell_task_without_a_command_is_reported_at_its_id() {
    check(
        r"
dag_id: demo
tasks:
  hello:
    retries: 1
  bye:
    command:
",
        &[
            "3:3: task `hello` is a shell task without `command:`: add the command to run",
            "5:3: task `bye` is a shell task without `command:`: add the command to run",
        ],
    );
}

#[test]
fn depending_on_an_unknown_task_is_reported_at_the_entry_with_the_near_names() {
    check(
        r"
tasks:
  extract:
    command: ./extract.sh
  transform:
    command: ./transform.sh
  load:
    command: ./load.sh
    depends_on: [extract, transfrom]
",
        &[
            "8:27: task `load` depends on unknown task `transfrom`: did you mean `transform`? Fix the name or add the task",
        ],
    );
}

#[test]
fn a_task_listed_twice_in_depends_on_is_reported_at_the_repeat() {
    check(
        r"
tasks:
  extract:
    command: ./extract.sh
  load:
    command: ./load.sh
    depends_on:
      - extract
      - extract
",
        &["8:9: task `load` lists `extract` twice in depends_on: remove one"],
    );
}

#[test]
fn a_task_depending_on_itself_is_reported() {
    check(
        r"
tasks:
  load:
    command: ./load.sh
    depends_on: [load]
",
        &["4:18: task `load` depends on itself: remove it from its own depends_on"],
    );
}

#[test]
fn a_cycle_is_reported_once_naming_every_task_in_it() {
    check(
        r"
tasks:
  extract:
    command: ./extract.sh
    depends_on: [load]
  transform:
    command: ./transform.sh
    depends_on: [extract]
  load:
    command: ./load.sh
    depends_on: [transform]
  report:
    command: ./report.sh
    depends_on: [load]
",
        // Reported at the entry that closed the cycle: transform's `extract`.
        &[
            "7:18: tasks form a cycle: extract -> load -> transform -> extract (each depends \
               on the next); remove one of these depends_on entries",
        ],
    );
}

#[test]
fn an_invalid_cron_expression_is_reported_at_the_schedule() {
    let problem = only_problem(
        r"
dag_id: demo
schedule: '0 3 * *'
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
    );
    // The middle part is croner's own explanation.
    assert!(
        problem.starts_with("2:11: `0 3 * *` is not a valid cron expression: "),
        "{problem}"
    );
    assert!(problem.contains("5 fields"), "{problem}");
    assert!(
        problem.ends_with(
            "; use 5 fields (minute hour day-of-month month day-of-week) or one of @hourly, \
                 @daily, @weekly, @monthly, @quarterly, @yearly, @once"
        ),
        "{problem}"
    );
    check(
        r"
schedule: '@fortnightly'
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &["1:11: `@fortnightly` is not a valid cron expression: unknown alias \
               `@fortnightly`; use 5 fields (minute hour day-of-month month day-of-week) or one \
               of @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @once"],
    );
}

#[test]
fn an_unknown_time_zone_is_reported_at_its_value() {
    check(
        r"
timezone: Asia/Seol
tasks:
  hello:
    command: echo hello
",
        &[
            "1:11: `Asia/Seol` is not an IANA time zone name: use one like UTC, Europe/Berlin \
               or Asia/Seoul",
        ],
    );
}

#[test]
fn a_start_date_after_the_end_date_is_reported_at_the_end_date() {
    check(
        r"
schedule: '@daily'
start_date: 2026-06-01
end_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &[
            "3:11: end_date 2026-01-01 is before start_date 2026-06-01: move end_date later or \
               start_date earlier",
        ],
    );
}

#[test]
fn an_invalid_date_is_reported_with_the_accepted_forms() {
    check(
        r"
schedule: '@daily'
start_date: 2026-13-01
tasks:
  hello:
    command: echo hello
",
        &["2:13: start_date `2026-13-01` is not a date: write 2026-01-01, \
               2026-01-01T03:00:00 or an RFC 3339 time"],
    );
}

#[test]
fn a_start_date_before_the_year_1000_is_reported_with_the_accepted_range() {
    check(
        r"
schedule: '@daily'
start_date: 0500-01-01
tasks:
  hello:
    command: echo hello
",
        &[
            "2:13: start_date: 0500-01-01T00:00:00Z is outside the dates weir accepts: use a date \
               from 1000-01-01 to 9999-12-31 (UTC)",
        ],
    );
}

#[test]
fn an_unknown_trigger_rule_is_reported_with_the_known_ones() {
    check(
        r"
tasks:
  hello:
    command: echo hello
    trigger_rule: all_sucess
",
        &[
            "4:19: unknown trigger rule `all_sucess`; expected one of: all_success, \
               all_failed, all_done, all_skipped, one_success, one_failed, one_done, \
               none_failed, none_failed_min_one_success, none_skipped, always",
        ],
    );
}

#[test]
fn an_unknown_pool_is_reported_with_the_configured_ones() {
    check(
        r"
tasks:
  hello:
    command: echo hello
    pool: gpu
",
        &[
            "4:11: unknown pool `gpu`: add it under [pools] in config.toml (known pools: \
               default, etl)",
        ],
    );
}

#[test]
fn an_unknown_alert_channel_is_reported_at_its_name() {
    check(
        r"
alerts:
  on_failure: [ops, pager]
tasks:
  hello:
    command: echo hello
",
        &[
            "2:21: unknown alert channel `pager`: define [alerts.pager] in config.toml (known \
               channels: ops)",
        ],
    );
}

#[test]
fn a_template_syntax_error_is_reported_in_the_command_and_in_env_values() {
    check(
        r"
tasks:
  hello:
    command: echo {{ ds
    env:
      DAY: '{% if %}'
",
        &[
            "3:14: template error in `command`: syntax error: unexpected end of input, \
                 expected end of variable block (template line 1); check the {{ }} and {% %} \
                 pairs",
            "5:12: template error in `env.DAY`: syntax error: unexpected end of block \
                 (template line 1); check the {{ }} and {% %} pairs",
        ],
    );
}

#[test]
fn a_command_with_a_value_inside_quotes_is_refused_at_its_line() {
    check(
        r#"
tasks:
  hello:
    command: echo "hi {{ params.name }}"
"#,
        &[
            "3:14: template error in `command`: `{{ ... }}` on line 1 of the command sits inside double \
               quotes: weir shell-quotes every value, so remove the quotes around it (write `--name \
               {{ params.name }}`), or read the value from its environment variable (\"$WEIR_PARAM_NAME\")",
        ],
    );
}

#[test]
fn sql_parameters_are_checked_where_they_are_written() {
    check(
        r#"
tasks:
  load:
    type: sql
    conn: warehouse
    sql: DELETE FROM t WHERE name = '{{ params.name }}'
    parameters:
      ok: "{{ params.name }}"
      bad-name: 1
      list: [1, 2]
      broken: "{{ params."
"#,
        &[
            "5:10: `sql` pastes `params` into its SQL text, where a value from a trigger's conf could \
                 change the statement: bind it instead, as `parameters: {value: \"{{ params.value }}\"}` on a \
                 sql task and `:value` in the SQL",
            "8:17: parameter name `bad-name` cannot be written as `:bad-name` in SQL: use letters, \
                 digits and `_`, starting with a letter",
            "9:13: parameter `list` is a list or map, which SQL cannot bind: give text, a number, \
                 true/false or null",
            "10:15: template error in `parameters.broken`: syntax error: unexpected end of input, \
                 expected identifier or integer (template line 1); check the {{ }} and {% %} pairs",
        ],
    );
    let dag = load_from(
            "/dags/ok.yaml",
            "tasks:\n  load:\n    type: sql\n    conn: w\n    sql: DELETE FROM t WHERE name = :name\n    parameters: {name: '{{ params.name }}', n: 3, flag: true, none: null}\n",
        )
        .unwrap();
    let crate::domain::dag::Operator::Sql(sql) = &dag.tasks[0].operator else {
        panic!("a sql task")
    };
    assert_eq!(
        sql.parameters,
        [
            ("name".to_string(), serde_json::json!("{{ params.name }}")),
            ("n".to_string(), serde_json::json!(3)),
            ("flag".to_string(), serde_json::json!(true)),
            ("none".to_string(), serde_json::Value::Null),
        ]
    );
}

#[test]
fn a_duplicate_key_is_reported_at_its_second_occurrence() {
    check(
        r"
dag_id: demo
dag_id: other
tasks:
  hello:
    command: echo hello
",
        &["2:1: duplicate key `dag_id`: each key may appear once; remove or merge the repeats"],
    );
    check(
        r"
tasks:
  hello:
    command: echo hello
    retries: 1
    retries: 2
  hello:
    command: echo again
",
        &[
            "5:5: duplicate key `retries` in `tasks.hello`: each key may appear once; remove \
               or merge the repeats",
        ],
    );
}

#[test]
fn an_invalid_duration_is_reported_with_examples() {
    check(
        r"
sla: 2 hours
tasks:
  hello:
    command: echo hello
    retry_delay: 5 minutes
",
        &[
            "1:6: sla: `2 hours` is not a duration: write a number with a unit, e.g. 500ms, \
                 30s, 5m, 1h30m, 2d",
            "5:18: retry_delay: `5 minutes` is not a duration: write a number with a unit, \
                 e.g. 500ms, 30s, 5m, 1h30m, 2d",
        ],
    );
}

#[test]
fn a_zero_timeout_is_reported_at_the_timeout() {
    check(
        r"
tasks:
  hello:
    command: echo hello
    timeout: 0s
",
        &["4:14: task `hello` has a zero timeout: remove it or give a positive duration"],
    );
}

#[test]
fn an_unknown_task_type_is_reported_at_the_type_with_the_known_ones() {
    check(
        r"
tasks:
  run:
    type: docker
",
        &["3:11: unknown task type `docker`: use one of shell, http, sql, transfer, sensor, trigger_dag"],
    );
}

#[test]
fn every_task_type_of_section_5_loads_with_its_keys() {
    use crate::domain::dag::{
        HttpBody, Operator, SensorCondition, SqlSource, StatusExpectation, StatusRule, TransferMode,
    };
    let dag = load(
        r"
tasks:
  ping:
    type: http
    url: https://api.example.com/orders?day={{ ds }}
    headers: {Authorization: 'Bearer {{ var.api_token }}'}
    json: {day: '{{ ds }}', limit: 10}
    expect_status: [200, 2xx]
  build:
    type: sql
    conn: warehouse
    sql: DELETE FROM t WHERE day = '{{ ds }}'; INSERT INTO t SELECT 1
  build_from_file:
    type: sql
    conn: warehouse
    sql_file: sql/build.sql
  copy:
    type: transfer
    from: {conn: shop, sql: 'SELECT * FROM orders'}
    to: {conn: warehouse, table: staging.orders, mode: upsert, keys: [order_id]}
    batch_size: 500
  wait_file:
    type: sensor
    file: data/{{ ds }}.csv
    poke_interval: 5s
    timeout: 1h
    soft_fail: true
  wait_rows:
    type: sensor
    sql: {conn: warehouse, sql: SELECT count(*) FROM t}
  wait_api:
    type: sensor
    http: {url: 'http://localhost:1/health', expect_status: 204}
  wait_upstream:
    type: sensor
    dag_run: {dag_id: upstream, task_id: load}
  report:
    type: trigger_dag
    dag_id: reporting
    conf: {day: '{{ ds }}'}
    wait_for_completion: true
",
    )
    .unwrap();
    let operator = |id: &str| dag.task(id).unwrap().operator.clone();
    let Operator::Http(http) = operator("ping") else {
        panic!("ping")
    };
    assert_eq!(http.method, "POST", "a request with a body is a POST by default");
    assert_eq!(
        http.expect_status,
        StatusExpectation(vec![StatusRule::Exact(200), StatusRule::Class(2)])
    );
    assert!(matches!(http.body, HttpBody::Json(_)));
    assert_eq!(
        operator("build_from_file"),
        Operator::Sql(crate::domain::dag::SqlTask {
            conn: "warehouse".into(),
            sql: SqlSource::File("sql/build.sql".into()),
            parameters: vec![],
        })
    );
    let Operator::Transfer(transfer) = operator("copy") else {
        panic!("copy")
    };
    assert_eq!(
        (transfer.mode, transfer.keys, transfer.batch_size),
        (TransferMode::Upsert, vec!["order_id".to_string()], 500)
    );
    let Operator::Sensor(file) = operator("wait_file") else {
        panic!("wait_file")
    };
    assert_eq!((file.poke_interval, file.soft_fail), (Duration::from_secs(5), true));
    let Operator::Sensor(rows) = operator("wait_rows") else {
        panic!("wait_rows")
    };
    assert!(matches!(rows.condition, SensorCondition::Sql { .. }));
    assert_eq!(
        rows.poke_interval,
        Duration::from_secs(30),
        "Airflow's default poke interval"
    );
    let Operator::TriggerDag(trigger) = operator("report") else {
        panic!("report")
    };
    assert!(trigger.wait_for_completion);
    let names: Vec<String> = operator("ping")
        .templated_fields()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        ["url", "headers.Authorization", "json.day"],
        "numbers are not templated"
    );
}

#[test]
fn each_task_type_says_what_it_is_missing_and_which_keys_belong_elsewhere() {
    check(
        r"
tasks:
  a:
    type: http
  b:
    type: sql
    sql: SELECT 1
  c:
    type: transfer
    from: {conn: shop}
    to: {conn: warehouse, table: t, mode: upsert}
  d:
    type: sensor
  e:
    type: sensor
    file: x
    dag_run: {dag_id: other}
  f:
    type: trigger_dag
  g:
    type: http
    url: http://x
    command: echo hi
    expect_status: teapot
",
        &[
            "2:3: http task `a` has neither `url:` nor `conn:`: give the URL to call, or a connection whose URL is the base",
            "4:3: sql task `b` has no `conn:`: name the connection to run it on (see `weir connections list`)",
            "9:11: `from.sql` is missing: transfer tasks need it",
            "10:9: `mode: upsert` needs `keys:`, the columns that identify a row, e.g. `keys: [order_id]`",
            "11:3: sensor `d` has nothing to wait for: give one of `file:`, `http:`, `sql:` or `dag_run:`",
            "13:3: sensor `e` waits for file and dag_run: give exactly one condition (make one sensor per condition)",
            "17:3: trigger_dag task `f` has no `dag_id:`: name the DAG to trigger",
            "22:14: `command` is not used by http tasks (it belongs to shell tasks): remove it or change `type:`",
            "23:20: `expect_status` must be a status code (200), a class (\"2xx\"), or a list of them, e.g. [200, 204]",
        ],
    );
}

#[test]
fn template_errors_in_the_fields_of_other_task_types_are_reported() {
    check(
        r"
tasks:
  a:
    type: http
    url: http://x/{{ ds
  b:
    type: trigger_dag
    dag_id: other
    conf: {day: '{{ ds'}
",
        &[
            "4:10: template error in `url`: syntax error: unexpected end of input, expected end of variable block (template line 1); check the {{ }} and {% %} pairs",
            "8:11: template error in `conf.day`: syntax error: unexpected end of input, expected end of variable block (template line 1); check the {{ }} and {% %} pairs",
        ],
    );
}

#[test]
fn an_invalid_dag_id_is_reported_at_its_value() {
    check(
        r"
dag_id: daily revenue
tasks:
  hello:
    command: echo hello
",
        &[
            "1:9: `daily revenue` is not a valid DAG id: use 1 to 250 characters from A-Z a-z \
               0-9 _ . -",
        ],
    );
}

#[test]
fn an_invalid_dag_id_taken_from_the_file_name_asks_for_a_dag_id_key() {
    let error = load_from(
        "dags/daily revenue.yaml",
        r"
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap_err();
    assert_eq!(
        error.problems,
        vec![Problem {
            line: 1,
            column: 1,
            message: "`daily revenue` is not a valid DAG id: use 1 to 250 characters from \
                          A-Z a-z 0-9 _ . - (taken from the file name): add a `dag_id:` key"
                .to_string(),
        }]
    );
}

#[test]
fn an_invalid_task_id_is_reported_at_the_id() {
    check(
        r"
tasks:
  'say hello':
    command: echo hello
",
        &[
            "2:3: `say hello` is not a valid task id: use 1 to 250 characters from A-Z a-z \
               0-9 _ . -",
        ],
    );
}

#[test]
fn a_cron_schedule_without_a_start_date_is_reported_at_the_schedule() {
    check(
        r"
dag_id: demo
schedule: '0 3 * * *'
tasks:
  hello:
    command: echo hello
",
        &["2:11: schedule `0 3 * * *` needs a start_date: add e.g. `start_date: 2026-01-01`"],
    );
}

#[test]
fn a_dag_without_tasks_is_reported() {
    let message = "`tasks:` is missing or empty: a DAG needs at least one task, e.g. \
                       `tasks: {hello: {command: echo hello}}`";
    check(
        r"
dag_id: demo
tasks: {}
",
        &[&format!("2:8: {message}")],
    );
    check(
        r"
dag_id: demo
tasks:
",
        &[&format!("2:6: {message}")],
    );
    check(
        r"
dag_id: demo
",
        &[&format!("1:1: {message}")],
    );
    check("", &[&format!("1:1: {message}")]);
}

#[test]
fn a_yaml_syntax_error_is_one_line_without_a_repeated_location() {
    let problem = only_problem(
        r#"
tasks:
  hello:
    command: "echo hello
"#,
    );
    assert!(problem.starts_with("3:14: "), "{problem}");
    assert!(problem.contains("quote"), "{problem}");
    assert!(!problem.contains("line"), "{problem}");
    assert!(!problem.contains('\n'), "{problem}");
}

#[test]
fn several_problems_in_one_file_are_all_reported_sorted_by_line() {
    check(
        r"
dag_id: demo
schedule: '0 3 * * *'
timezone: Mars/Olympus
alerts: {on_failure: [pager]}
tasks:
  load:
    command: ./load.sh {{ ds
    depends_on: [extract, missing]
    pool: gpu
  extract:
    command: ./extract.sh
    trigger_rule: sometimes
",
        &[
            "2:11: schedule `0 3 * * *` needs a start_date: add e.g. `start_date: 2026-01-01`",
            "3:11: `Mars/Olympus` is not an IANA time zone name: use one like UTC, \
                 Europe/Berlin or Asia/Seoul",
            "4:23: unknown alert channel `pager`: define [alerts.pager] in config.toml \
                 (known channels: ops)",
            "7:14: template error in `command`: syntax error: unexpected end of input, \
                 expected end of variable block (template line 1); check the {{ }} and {% %} \
                 pairs",
            "8:27: task `load` depends on unknown task `missing`: no task has a similar id; \
                 fix the name or add the task",
            "9:11: unknown pool `gpu`: add it under [pools] in config.toml (known pools: \
                 default, etl)",
            "12:19: unknown trigger rule `sometimes`; expected one of: all_success, \
                 all_failed, all_done, all_skipped, one_success, one_failed, one_done, \
                 none_failed, none_failed_min_one_success, none_skipped, always",
        ],
    );
}

#[test]
fn defaults_apply_to_every_task_and_a_task_own_value_wins() {
    let dag = load(
        r"
defaults:
  retries: 2
  retry_delay: 30s
  timeout: 1h
  pool: etl
  trigger_rule: all_done
  env: {REGION: kr, MODE: full}
tasks:
  extract:
    command: ./extract.sh
  load:
    command: ./load.sh
    depends_on: [extract]
    retries: 5
    pool: default
    env: {MODE: incremental}
",
    )
    .unwrap();
    let extract = dag.task("extract").unwrap();
    assert_eq!(extract.retry.retries, 2);
    assert_eq!(extract.retry.retry_delay, Duration::from_secs(30));
    assert_eq!(extract.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(extract.pool, "etl");
    assert_eq!(extract.trigger_rule, TriggerRule::AllDone);
    let load = dag.task("load").unwrap();
    assert_eq!(load.retry.retries, 5);
    assert_eq!(load.retry.retry_delay, Duration::from_secs(30));
    assert_eq!(load.pool, "default");
    assert_eq!(
        load.env,
        vec![
            ("REGION".to_string(), "kr".to_string()),
            ("MODE".to_string(), "incremental".to_string()),
        ]
    );
    assert_eq!(load.upstream, vec![TaskId::parse("extract").unwrap()]);
}

#[test]
fn without_defaults_tasks_get_the_configured_ones() {
    let dag = load(
        r"
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap();
    let hello = dag.task("hello").unwrap();
    assert_eq!(hello.retry.retries, 0);
    assert_eq!(hello.retry.retry_delay, Duration::from_secs(300));
    assert_eq!(hello.timeout, None);
    assert_eq!(hello.pool, "default");
    assert_eq!(hello.pool_slots, 1);
    assert_eq!(hello.trigger_rule, TriggerRule::AllSuccess);
}

#[test]
fn the_dag_id_defaults_to_the_file_stem() {
    let yaml = r"
tasks:
  hello:
    command: echo hello
";
    let dag = load_from("dags/finance/daily_revenue.yaml", yaml).unwrap();
    assert_eq!(dag.dag_id.as_str(), "daily_revenue");
    let dag = load_from("dags/finance/daily_revenue.yaml", &format!("dag_id: revenue.v2{yaml}")).unwrap();
    assert_eq!(dag.dag_id.as_str(), "revenue.v2");
}

#[test]
fn a_cron_schedule_map_can_turn_off_data_intervals() {
    let dag = load(
        r"
schedule: {cron: '0 3 * * *', data_interval: false}
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap();
    match &dag.timetable.schedule {
        Schedule::Cron {
            expression,
            data_interval,
            ..
        } => {
            assert_eq!(expression, "0 3 * * *");
            assert!(!data_interval);
        }
        other => panic!("expected a cron schedule, got {other:?}"),
    }
}

#[test]
fn a_dataset_schedule_parses() {
    let dag = load(
        r"
schedule: {datasets: [warehouse.orders]}
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap();
    match &dag.timetable.schedule {
        Schedule::Datasets(names) => assert_eq!(names, &["warehouse.orders".to_string()]),
        other => panic!("expected a dataset schedule, got {other:?}"),
    }
}

#[test]
fn a_null_schedule_means_manual_runs_only() {
    let dag = load(
        r"
schedule: null
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap();
    assert!(matches!(dag.timetable.schedule, Schedule::Never));
}

#[test]
fn a_malformed_schedule_map_is_reported_precisely() {
    check(
        r"
schedule: {cron: '0 3 * * *', data_intervall: false}
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &["1:31: unknown key `data_intervall` in `schedule`: did you mean `data_interval`?"],
    );
    check(
        r"
schedule: {cron: '0 3 * * *', datasets: [orders]}
start_date: 2026-01-01
tasks:
  hello:
    command: echo hello
",
        &["1:11: a schedule has `cron:` or `datasets:`, not both: keep one of them"],
    );
    check(
        r"
schedule: {datasets: []}
tasks:
  hello:
    command: echo hello
",
        &["1:11: `datasets:` lists no dataset: name at least one, or use `schedule: null`"],
    );
    check(
        r"
schedule: {data_interval: false}
tasks:
  hello:
    command: echo hello
",
        &["1:11: the schedule map needs `cron:` (e.g. `cron: \"0 3 * * *\"`) or `datasets:`"],
    );
    check(
        r"
schedule: 5
tasks:
  hello:
    command: echo hello
",
        &[
            "1:1: `schedule` must be a cron expression such as \"0 3 * * *\", an alias such \
               as @daily, null, or a map with `cron:` or `datasets:`, not integer `5`",
        ],
    );
}

#[test]
fn a_param_default_that_breaks_its_own_enum_is_reported_at_the_default() {
    check(
        r"
params:
  region: {type: string, default: eu, enum: [kr, us, jp]}
tasks:
  hello:
    command: echo {{ params.region }}
",
        &[
            "2:35: the default breaks its own declaration: param `region` is \"eu\"; allowed \
               values: \"kr\", \"us\", \"jp\"",
        ],
    );
}

#[test]
fn a_misspelt_key_in_a_param_declaration_is_reported() {
    check(
        r"
params:
  region: {type: string, defualt: kr}
tasks:
  hello:
    command: echo hello
",
        &["2:26: unknown key `defualt` in `params.region`: did you mean `default`?"],
    );
}

#[test]
fn a_param_may_be_a_bare_default_or_a_declaration() {
    let dag = load(
        r"
params:
  limit: 1000
  regions: [kr, us]
  region: {type: string, default: kr, enum: [kr, us, jp]}
tasks:
  hello:
    command: echo hello
",
    )
    .unwrap();
    let params = &dag.params.0;
    assert_eq!(params["limit"].default, Some(serde_json::json!(1000)));
    assert_eq!(params["regions"].default, Some(serde_json::json!(["kr", "us"])));
    assert_eq!(params["region"].default, Some(serde_json::json!("kr")));
    assert_eq!(params["region"].kind, ParamType::String);
}

#[test]
fn the_error_display_prints_path_line_column_and_message_per_problem() {
    let error = load_from(
        "dags/demo.yaml",
        r"
tasks:
  hello:
    command: echo hello
    pool: gpu
    trigger_rule: never
",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "dags/demo.yaml:4:11: unknown pool `gpu`: add it under [pools] in config.toml (known \
             pools: default, etl)\n\
             dags/demo.yaml:5:19: unknown trigger rule `never`; expected one of: all_success, \
             all_failed, all_done, all_skipped, one_success, one_failed, one_done, none_failed, \
             none_failed_min_one_success, none_skipped, always"
    );
}
