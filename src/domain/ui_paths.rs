//! The paths of the UI's pages, built in this one place: the UI links with them, alerts put
//! `[webserver] base_url` in front. Every id is one percent-encoded segment (a run id's `:` and
//! `+` too), so a path always reaches the page it names.

use crate::domain::percent::encode_component as encode;

/// `/dags/{dag_id}`: the DAG's page.
pub fn dag(dag_id: &str) -> String {
    format!("/dags/{}", encode(dag_id))
}

/// `/dags/{dag_id}/runs/{run_id}`: the run's page.
pub fn run(dag_id: &str, run_id: &str) -> String {
    format!("{}/runs/{}", dag(dag_id), encode(run_id))
}

/// `/dags/{dag_id}/runs/{run_id}/tasks/{task_id}`: the task instance's page.
pub fn task(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!("{}/tasks/{}", run(dag_id, run_id), encode(task_id))
}

/// The task instance's page showing the log of one try.
pub fn task_try(dag_id: &str, run_id: &str, task_id: &str, try_number: u32) -> String {
    format!("{}?try={try_number}", task(dag_id, run_id, task_id))
}

/// `/dags/{dag_id}/backfills/{id}`: a backfill's page.
pub fn backfill(dag_id: &str, id: i64) -> String {
    format!("{}/backfills/{id}", dag(dag_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_one_encoded_segment() {
        let run_id = "scheduled__2026-03-01T00:00:00+00:00";
        assert_eq!(dag("daily"), "/dags/daily");
        assert_eq!(
            run("daily", run_id),
            "/dags/daily/runs/scheduled__2026-03-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(
            task_try("daily", run_id, "a/b", 2),
            "/dags/daily/runs/scheduled__2026-03-01T00%3A00%3A00%2B00%3A00/tasks/a%2Fb?try=2"
        );
        assert_eq!(backfill("daily", 7), "/dags/daily/backfills/7");
    }
}
