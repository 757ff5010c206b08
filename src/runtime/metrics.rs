//! What the scheduler measures about itself for `/metrics`: how long its steps take and how long
//! task attempts run. Plain atomics, shared with the web server of the same process.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the task-duration histogram buckets.
const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

#[derive(Debug, Default)]
pub struct SchedulerMetrics {
    steps: AtomicU64,
    step_micros_total: AtomicU64,
    step_micros_last: AtomicU64,
    attempts: AtomicU64,
    attempt_micros_total: AtomicU64,
    attempt_buckets: [AtomicU64; DURATION_BUCKETS.len()],
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl SchedulerMetrics {
    pub fn record_step(&self, elapsed: Duration) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.step_micros_total.fetch_add(micros(elapsed), Ordering::Relaxed);
        self.step_micros_last.store(micros(elapsed), Ordering::Relaxed);
    }

    pub fn record_attempt(&self, duration: Duration) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.attempt_micros_total.fetch_add(micros(duration), Ordering::Relaxed);
        let seconds = duration.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.attempt_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Appends the Prometheus text exposition of these metrics.
    pub fn render(&self, out: &mut String) {
        let seconds = |value: &AtomicU64| value.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let _ = writeln!(out, "# HELP weir_scheduler_step_seconds Time spent in scheduler steps.");
        let _ = writeln!(out, "# TYPE weir_scheduler_step_seconds summary");
        let _ = writeln!(
            out,
            "weir_scheduler_step_seconds_sum {}",
            seconds(&self.step_micros_total)
        );
        let _ = writeln!(
            out,
            "weir_scheduler_step_seconds_count {}",
            self.steps.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weir_scheduler_last_step_seconds Duration of the latest scheduler step."
        );
        let _ = writeln!(out, "# TYPE weir_scheduler_last_step_seconds gauge");
        let _ = writeln!(
            out,
            "weir_scheduler_last_step_seconds {}",
            seconds(&self.step_micros_last)
        );
        let _ = writeln!(
            out,
            "# HELP weir_task_attempt_duration_seconds How long finished task attempts ran."
        );
        let _ = writeln!(out, "# TYPE weir_task_attempt_duration_seconds histogram");
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.attempt_buckets) {
            let _ = writeln!(
                out,
                "weir_task_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.attempts.load(Ordering::Relaxed);
        let _ = writeln!(out, "weir_task_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "weir_task_attempt_duration_seconds_sum {}",
            seconds(&self.attempt_micros_total)
        );
        let _ = writeln!(out, "weir_task_attempt_duration_seconds_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_attempts_render_as_a_summary_and_a_cumulative_histogram() {
        let metrics = SchedulerMetrics::default();
        metrics.record_step(Duration::from_millis(3));
        metrics.record_step(Duration::from_millis(5));
        metrics.record_attempt(Duration::from_millis(400));
        metrics.record_attempt(Duration::from_secs(20));
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "weir_scheduler_step_seconds_sum 0.008",
            "weir_scheduler_step_seconds_count 2",
            "weir_scheduler_last_step_seconds 0.005",
            "weir_task_attempt_duration_seconds_bucket{le=\"0.1\"} 0",
            "weir_task_attempt_duration_seconds_bucket{le=\"0.5\"} 1",
            "weir_task_attempt_duration_seconds_bucket{le=\"30\"} 2",
            "weir_task_attempt_duration_seconds_bucket{le=\"+Inf\"} 2",
            "weir_task_attempt_duration_seconds_count 2",
        ] {
            assert!(
                out.lines().any(|candidate| candidate == line),
                "missing `{line}` in:\n{out}"
            );
        }
    }
}
