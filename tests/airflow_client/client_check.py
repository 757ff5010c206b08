"""Drives a running `weir serve` with the official Airflow 3 Python client (apache-airflow-client
3.3.x), whose pydantic models validate every response strictly.

Usage: client_check.py BASE_URL DAG_ID SCHEDULED_DAG_ID USERNAME PASSWORD
Gets a token from POST /auth/token as Airflow 3's users do, and first shows that without one
every call is refused with 401. Exits 0 when every step passed; prints the failing step and the error otherwise.
"""

import datetime
import json
import sys
import time
import urllib.request

import airflow_client.client as client
from airflow_client.client.api.backfill_api import BackfillApi
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.event_log_api import EventLogApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models.backfill_post_body import BackfillPostBody
from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody
from airflow_client.client.models.clear_task_instances_body_task_ids_inner import ClearTaskInstancesBodyTaskIdsInner
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.reprocess_behavior import ReprocessBehavior
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody


def step(name):
    print(f"-- {name}", flush=True)


def get_token(base_url, username, password):
    """POST /auth/token, as Airflow 3's documentation shows: 201 {"access_token": ...}."""
    request = urllib.request.Request(
        f"{base_url}/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status
        return json.load(response)["access_token"]


def refused_without_token(base_url, dag_id):
    configuration = client.Configuration(host=base_url)
    with client.ApiClient(configuration) as api_client:
        for call in (lambda: DAGApi(api_client).get_dags(limit=1),
                     lambda: DagRunApi(api_client).trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None))):
            try:
                call()
            except ApiException as error:
                assert error.status == 401, error
            else:
                raise AssertionError("a call without a token was answered")
    wrong = client.Configuration(host=base_url, access_token="garbage")
    with client.ApiClient(wrong) as api_client:
        try:
            DAGApi(api_client).get_dags(limit=1)
        except ApiException as error:
            assert error.status == 401, error
        else:
            raise AssertionError("a garbage token was accepted")


def main():
    base_url, dag_id, scheduled_dag_id, username, password = sys.argv[1:6]
    step("without a token: 401")
    refused_without_token(base_url, dag_id)
    step("a token from POST /auth/token")
    configuration = client.Configuration(host=base_url, access_token=get_token(base_url, username, password))
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

        check_backfills(api_client, scheduled_dag_id)
        check_event_logs(api_client, dag_id, run.dag_run_id, scheduled_dag_id)

    print("all client checks passed")


def check_backfills(api_client, dag_id):
    backfills = BackfillApi(api_client)
    utc = datetime.timezone.utc
    # 59 daily dates, one run at a time: long enough to pause and cancel it while it runs.
    body = BackfillPostBody(
        dag_id=dag_id,
        from_date=datetime.datetime(2026, 1, 1, tzinfo=utc),
        to_date=datetime.datetime(2026, 2, 28, tzinfo=utc),
        max_active_runs=1,
        reprocess_behavior=ReprocessBehavior.NONE,
        run_backwards=False,
        dag_run_conf={},
    )

    step("backfill: dry run")
    dry = backfills.create_backfill_dry_run(body)
    assert dry.total_entries == 59 and len(dry.backfills) == 59, dry.total_entries
    assert dry.backfills[0].logical_date == datetime.datetime(2026, 1, 1, tzinfo=utc), dry.backfills[0]
    assert backfills.list_backfills(dag_id=dag_id).total_entries == 0, "a dry run created a backfill"

    step("backfill: create")
    created = backfills.create_backfill(body)
    assert created.dag_id == dag_id and created.is_paused is False, created
    assert created.reprocess_behavior == ReprocessBehavior.NONE and created.max_active_runs == 1, created
    assert created.from_date == datetime.datetime(2026, 1, 1, tzinfo=utc), created
    assert created.completed_at is None, created

    step("backfill: a second one is refused")
    try:
        backfills.create_backfill(body)
        raise AssertionError("a second active backfill was accepted")
    except client.exceptions.ApiException as error:
        assert error.status == 409 and f"id {created.id}" in error.body, (error.status, error.body)

    step("backfill: get and list")
    got = backfills.get_backfill(created.id)
    assert got.id == created.id and got.dag_id == dag_id, got
    listed = backfills.list_backfills(dag_id=dag_id, limit=10, offset=0, order_by=["-id"])
    assert listed.total_entries == 1 and listed.backfills[0].id == created.id, listed

    step("backfill: pause, unpause, cancel")
    assert backfills.pause_backfill(created.id).is_paused is True
    assert backfills.unpause_backfill(created.id).is_paused is False
    cancelled = backfills.cancel_backfill(created.id)
    assert cancelled.is_paused is False and cancelled.completed_at is not None, cancelled
    try:
        backfills.pause_backfill(created.id)
        raise AssertionError("a cancelled backfill was paused")
    except client.exceptions.ApiException as error:
        assert error.status == 409, (error.status, error.body)

    step("backfill: bad input")
    try:
        backfills.get_backfill(999999)
        raise AssertionError("an unknown backfill was found")
    except client.exceptions.ApiException as error:
        assert error.status == 404, (error.status, error.body)


def check_event_logs(api_client, dag_id, run_id, scheduled_dag_id):
    logs = EventLogApi(api_client)

    step("event logs: the changes above are in the audit log")
    triggered = logs.get_event_logs(dag_id=dag_id, event="trigger_dag_run", order_by=["-when"], limit=5)
    assert triggered.total_entries == 1, triggered
    assert triggered.event_logs[0].run_id == run_id and triggered.event_logs[0].owner, triggered
    paused = logs.get_event_logs(dag_id=dag_id, event="patch_dag")
    assert [entry.extra for entry in paused.event_logs] == ['{"is_paused":true}', '{"is_paused":false}'], paused
    backfill = logs.get_event_logs(
        dag_id=scheduled_dag_id, included_events=["create_backfill", "pause_backfill", "cancel_backfill"]
    )
    events = [entry.event for entry in backfill.event_logs]
    assert events == ["create_backfill", "pause_backfill", "cancel_backfill"], events
    one = logs.get_event_log(backfill.event_logs[0].event_log_id)
    assert one.event == "create_backfill" and one.map_index is None, one
    dry_runs = logs.get_event_logs(included_events=["create_backfill_dry_run", "post_clear_task_instances"])
    assert dry_runs.total_entries == 0, "dry runs were recorded"


if __name__ == "__main__":
    main()
