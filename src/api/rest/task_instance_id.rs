//! A task instance's Airflow `id`: a stable UUID derived from its DAG, run and task ids.

/// A stable UUID for a task instance (Airflow's `id`), derived from its dag, run and task ids:
/// FNV-1a, 128 bits, with the version (5) and variant bits set.
pub fn instance_uuid(dag_id: &str, run_id: &str, task_id: &str) -> String {
    let mut bytes = Vec::with_capacity(dag_id.len() + run_id.len() + task_id.len() + 2);
    for (position, part) in [dag_id, run_id, task_id].iter().enumerate() {
        if position > 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(part.as_bytes());
    }
    let hash = super::fnv1a_128(&bytes);
    let hash = (hash & !(0xf << 76)) | (0x5 << 76);
    let hash = (hash & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{hash:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_instance_ids_are_stable_version_5_uuids() {
        let id = instance_uuid("etl", "manual__2026-03-01T00:00:00+00:00", "load");
        assert_eq!(id, instance_uuid("etl", "manual__2026-03-01T00:00:00+00:00", "load"));
        assert_ne!(id, instance_uuid("etl", "manual__2026-03-01T00:00:00+00:00", "extract"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "5");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
