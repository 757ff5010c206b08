//! Placeholder with the agreed interface of the sql engine; replaced by the real module on merge.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqlTaskError(String);

pub struct SqlOutcome {
    pub rows: serde_json::Value,
    pub truncated: bool,
    pub statements: usize,
}

pub enum TransferMode {
    Append,
    Replace,
    Upsert,
}

pub struct TransferSpec {
    pub from_url: String,
    pub from_sql: String,
    pub to_url: String,
    pub table: String,
    pub mode: TransferMode,
    pub keys: Vec<String>,
    pub batch_size: usize,
}

pub async fn run_sql(
    _url: &str,
    _script: &str,
    _row_cap: usize,
    _log: &mut (dyn FnMut(&str) + Send),
) -> Result<SqlOutcome, SqlTaskError> {
    Err(SqlTaskError("the sql engine is being merged".to_string()))
}

pub async fn transfer(_spec: &TransferSpec, _log: &mut (dyn FnMut(&str) + Send)) -> Result<u64, SqlTaskError> {
    Err(SqlTaskError("the sql engine is being merged".to_string()))
}
