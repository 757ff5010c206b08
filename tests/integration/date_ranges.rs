//! The logical dates a backfill's range covers, through each surface that takes one: `weir dags
//! backfill --dry-run` (the real binary), `POST /api/v2/backfills/dry_run` and the UI form's
//! preview. A date alone covers its whole day in the DAG's time zone, at either end; a time is
//! taken as given. The same table runs through all three, so they cannot drift apart.

use std::path::Path;
use std::process::Command;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::api::apis_with;
use crate::support;

const DAGS: [(&str, &str); 5] = [
    ("daily_0300", "schedule: '0 3 * * *'\ntimezone: UTC"),
    ("daily_0430", "schedule: '30 4 * * *'\ntimezone: UTC"),
    ("hourly", "schedule: '0 * * * *'\ntimezone: UTC"),
    ("seoul_0300", "schedule: '0 3 * * *'\ntimezone: Asia/Seoul"),
    ("berlin_hourly", "schedule: '0 * * * *'\ntimezone: Europe/Berlin"),
];

fn yaml(dag_id: &str, schedule: &str) -> String {
    format!(
        "dag_id: {dag_id}\n{schedule}\nstart_date: 2026-01-01\nis_paused_upon_creation: true\ntasks:\n  work: {{ command: 'true' }}\n"
    )
}

/// A range as typed, and the logical dates (UTC) it must cover: how many, the first and the last.
struct Case {
    dag_id: &'static str,
    from: &'static str,
    to: &'static str,
    count: usize,
    first: &'static str,
    last: &'static str,
}

const CASES: [Case; 7] = [
    // The README's example: March has 31 days, and its 31st's 03:00 run is included.
    Case {
        dag_id: "daily_0300",
        from: "2026-03-01",
        to: "2026-03-31",
        count: 31,
        first: "2026-03-01T03:00:00Z",
        last: "2026-03-31T03:00:00Z",
    },
    Case {
        dag_id: "daily_0430",
        from: "2026-03-01",
        to: "2026-03-31",
        count: 31,
        first: "2026-03-01T04:30:00Z",
        last: "2026-03-31T04:30:00Z",
    },
    Case {
        dag_id: "hourly",
        from: "2026-03-01",
        to: "2026-03-02",
        count: 48,
        first: "2026-03-01T00:00:00Z",
        last: "2026-03-02T23:00:00Z",
    },
    // Seoul is UTC+9: its March 1 begins on February 28 in UTC.
    Case {
        dag_id: "seoul_0300",
        from: "2026-03-01",
        to: "2026-03-31",
        count: 31,
        first: "2026-02-28T18:00:00Z",
        last: "2026-03-30T18:00:00Z",
    },
    // Berlin springs forward on March 29: that day has 23 hours.
    Case {
        dag_id: "berlin_hourly",
        from: "2026-03-29",
        to: "2026-03-29",
        count: 23,
        first: "2026-03-28T23:00:00Z",
        last: "2026-03-29T21:00:00Z",
    },
    // A time is taken as given: midnight of March 31 leaves that day's 03:00 run out.
    Case {
        dag_id: "daily_0300",
        from: "2026-03-01",
        to: "2026-03-31T00:00",
        count: 30,
        first: "2026-03-01T03:00:00Z",
        last: "2026-03-30T03:00:00Z",
    },
    Case {
        dag_id: "daily_0300",
        from: "2026-03-01T03:00:01",
        to: "2026-03-31T03:00:00Z",
        count: 30,
        first: "2026-03-02T03:00:00Z",
        last: "2026-03-31T03:00:00Z",
    },
];

impl Case {
    fn name(&self) -> String {
        format!("{} {}..{}", self.dag_id, self.from, self.to)
    }
}

/// `2026-03-01T03:00:00Z` as the UI shows it: `2026-03-01 03:00:00`.
fn as_ui_shows(rfc3339: &str) -> String {
    rfc3339.trim_end_matches('Z').replace('T', " ")
}

#[test]
fn the_cli_covers_the_whole_last_day_of_a_date_range() {
    let folder = tempfile::tempdir().unwrap();
    write_project(folder.path());
    for case in &CASES {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(folder.path())
            .args([
                "dags",
                "backfill",
                case.dag_id,
                "--from",
                case.from,
                "--to",
                case.to,
                "--dry-run",
            ])
            .env_remove("WEIR_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            case.name(),
            String::from_utf8_lossy(&output.stderr)
        );
        let dates: Vec<&str> = stdout
            .lines()
            .filter_map(|line| line.split_once("  new run").map(|(date, _)| date))
            .collect();
        assert_eq!(dates.len(), case.count, "{}: {stdout}", case.name());
        assert_eq!(dates.first(), Some(&case.first), "{}", case.name());
        assert_eq!(dates.last(), Some(&case.last), "{}", case.name());
        assert!(
            stdout.contains(&format!("{} date(s); nothing created", case.count)),
            "{stdout}"
        );
    }
}

fn write_project(folder: &Path) {
    std::fs::create_dir_all(folder.join("dags")).unwrap();
    std::fs::write(
        folder.join("config.toml"),
        "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n",
    )
    .unwrap();
    for (dag_id, schedule) in DAGS {
        std::fs::write(
            folder.join("dags").join(format!("{dag_id}.yaml")),
            yaml(dag_id, schedule),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn the_api_and_the_ui_form_cover_the_whole_last_day_of_a_date_range() {
    let dags: Vec<String> = DAGS.iter().map(|(dag_id, schedule)| yaml(dag_id, schedule)).collect();
    let dags: Vec<&str> = dags.iter().map(String::as_str).collect();
    for api in apis_with(&dags).await {
        let label = api.label;
        let session = support::session_cookie(&api.admin_token);
        for case in &CASES {
            let name = case.name();
            let body = json!({"dag_id": case.dag_id, "from_date": case.from, "to_date": case.to});
            let answer = api.call(Method::POST, "/api/v2/backfills/dry_run", Some(body)).await;
            assert_eq!(answer.status, StatusCode::OK, "{label} {name}: {answer:?}");
            let dates: Vec<&str> = answer.body["backfills"]
                .as_array()
                .unwrap()
                .iter()
                .map(|date| date["logical_date"].as_str().unwrap())
                .collect();
            assert_eq!(answer.body["total_entries"], case.count, "{label} {name}");
            assert_eq!(dates.len(), case.count, "{label} {name}");
            assert_eq!(dates.first(), Some(&case.first), "{label} {name}");
            assert_eq!(dates.last(), Some(&case.last), "{label} {name}");

            let form = format!(
                "from={}&to={}&reprocess=none&max_active_runs=10&intent=preview",
                case.from.replace(':', "%3A"),
                case.to.replace(':', "%3A")
            );
            let mut request = support::ui_form_post(&format!("/dags/{}/backfill", case.dag_id), &form);
            support::add_session(&mut request, &session);
            let answer = api.send(request).await;
            assert_eq!(answer.status, StatusCode::OK, "{label} {name}: {answer:?}");
            let page = answer.body.as_str().unwrap();
            assert!(
                page.contains(&format!("{} new runs, 0 re-runs, 0 skipped", case.count)),
                "{label} {name}: {page}"
            );
            let first = page.find(&as_ui_shows(case.first));
            let last = page.rfind(&as_ui_shows(case.last));
            assert!(first.is_some() && last.is_some(), "{label} {name}: {page}");
        }
    }
}

/// `weir tasks clear --from/--to` reads its dates by the same rule: a date alone at `--to` takes in
/// that day's 03:00 run.
#[test]
fn tasks_clear_covers_the_whole_last_day_of_its_range() {
    let folder = tempfile::tempdir().unwrap();
    write_project(folder.path());
    let weir = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(folder.path())
            .args(args)
            .env_remove("WEIR_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    for date in ["2026-03-30T03:00:00Z", "2026-03-31T03:00:00Z", "2026-04-01T03:00:00Z"] {
        weir(&["dags", "test", "daily_0300", date]);
    }
    let runs_cleared = |from: &str, to: &str| -> Vec<String> {
        let stdout = weir(&["tasks", "clear", "daily_0300", "--from", from, "--to", to, "--dry-run"]);
        stdout
            .lines()
            .filter(|line| line.starts_with("daily_0300 "))
            .map(|line| line.split(": ").next().unwrap().to_string())
            .collect()
    };
    let one_day = runs_cleared("2026-03-31", "2026-03-31");
    assert_eq!(one_day.len(), 1, "{one_day:?}");
    assert!(one_day[0].contains("2026-03-31T03:00:00"), "{one_day:?}");
    assert_eq!(runs_cleared("2026-03-30", "2026-03-31").len(), 2);
    // A time is taken as given: midnight of March 31 leaves that day's run out.
    assert_eq!(runs_cleared("2026-03-30", "2026-03-31T00:00").len(), 1);
}
