"""Drives a running `weir serve` with the official Airflow 3 Python client (apache-airflow-client
3.3.x), whose pydantic models validate every response strictly.

Usage: client_check.py BASE_URL DAG_ID
Exits 0 when every step passed; prints the failing step and the error otherwise.
"""

import sys
import time

import airflow_client.client as client
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody
from airflow_client.client.models.clear_task_instances_body_task_ids_inner import ClearTaskInstancesBodyTaskIdsInner
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody


def step(name):
    print(f"-- {name}", flush=True)


def main():
    base_url, dag_id = sys.argv[1], sys.argv[2]
    # Airflow 3 clients send a bearer token; weir has no auth yet and accepts any.
    configuration = client.Configuration(host=base_url, access_token="weir-has-no-auth-yet")
    with client.ApiClient(configuration) as api_client:
        dags = DAGApi(api_client)
        runs = DagRunApi(api_client)
        tis = TaskInstanceApi(api_client)

        step("health and version")
        MonitorApi(api_client).get_health()
        assert VersionApi(api_client).get_version().version

        step("list DAGs")
        listed = dags.get_dags(limit=10, tags=["client"], dag_id_pattern=dag_id[:4])
        assert dag_id in [dag.dag_id for dag in listed.dags], listed

        step("get a DAG and its details")
        dag = dags.get_dag(dag_id)
        assert dag.dag_id == dag_id and [tag.name for tag in dag.tags] == ["client"], dag
        details = dags.get_dag_details(dag_id)
        assert "region" in (details.params or {}), details.params

        step("tasks")
        tasks = TaskApi(api_client).get_tasks(dag_id)
        assert sorted(task.task_id for task in tasks.tasks) == ["first", "second"], tasks

        step("pause and unpause")
        assert dags.patch_dag(dag_id, DAGPatchBody(is_paused=True)).is_paused is True
        assert dags.patch_dag(dag_id, DAGPatchBody(is_paused=False), update_mask=["is_paused"]).is_paused is False

        step("trigger a run with conf")
        run = runs.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf={"region": "us"}))
        assert run.conf["region"] == "us" and run.state.value == "queued", run

        step("poll the run to success")
        deadline = time.monotonic() + 60
        while True:
            current = runs.get_dag_run(dag_id, run.dag_run_id)
            if current.state.value in ("success", "failed"):
                break
            assert time.monotonic() < deadline, f"run still {current.state.value} after 60 s"
            time.sleep(0.2)
        assert current.state.value == "success", current
        listed_runs = runs.get_dag_runs(dag_id, limit=5, order_by=["-id"], state=["success"])
        assert listed_runs.dag_runs[0].dag_run_id == run.dag_run_id, listed_runs

        step("list its task instances")
        instances = tis.get_task_instances(dag_id, run.dag_run_id)
        states = {ti.task_id: ti.state.value for ti in instances.task_instances}
        assert states == {"first": "success", "second": "success"}, states
        one = tis.get_task_instance(dag_id, run.dag_run_id, "first")
        assert one.try_number == 1, one
        tries = tis.get_task_instance_tries(dag_id, run.dag_run_id, "first")
        assert len(tries.task_instances) == 1, tries

        step("read a task log")
        log = tis.get_log(dag_id, run.dag_run_id, "first", 1)
        lines = [message.event for message in log.content.actual_instance]
        assert any("hello us" in line for line in lines), lines

        step("clear task instances (dry run)")
        body = ClearTaskInstancesBody(
            dry_run=True,
            only_failed=False,
            dag_run_id=run.dag_run_id,
            task_ids=[ClearTaskInstancesBodyTaskIdsInner("first")],
            include_downstream=True,
        )
        cleared = tis.post_clear_task_instances(dag_id, body)
        assert sorted(ti.task_id for ti in cleared.task_instances) == ["first", "second"], cleared
        assert runs.get_dag_run(dag_id, run.dag_run_id).state.value == "success", "a dry run changed the run"

    print("all client checks passed")


if __name__ == "__main__":
    main()
