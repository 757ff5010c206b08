-- How many attempts of a task instance were ended by the death of their scheduler (a crash or a
-- kill) rather than by the task. The first few are run again without using a retry; past the cap
-- (runtime::attempt_end::MAX_FREE_CRASH_ENDS) one counts as a failure, so a task that crashes the
-- host cannot loop. A clear sets it back to 0 with the retry budget.
ALTER TABLE task_instance ADD COLUMN crash_ends BIGINT NOT NULL DEFAULT 0;
