//! Times one `transfer` (the engine behind the transfer task type) for bench/transfer.sh:
//! `transfer_bench FROM_URL SQL TO_URL TABLE [BATCH_SIZE]`, appending into TABLE, then prints
//! rows, seconds and rows/s.

use std::time::Instant;

use weir::runtime::operators::sql::{TransferMode, TransferSpec, transfer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [from_url, from_sql, to_url, table, rest @ ..] = arguments.as_slice() else {
        anyhow::bail!("usage: transfer_bench FROM_URL SQL TO_URL TABLE [BATCH_SIZE]");
    };
    let batch_size = match rest.first() {
        Some(text) => text.parse()?,
        None => 5000,
    };
    let spec = TransferSpec {
        from_url: from_url.clone(),
        from_sql: from_sql.clone(),
        to_url: to_url.clone(),
        table: table.clone(),
        mode: TransferMode::Append,
        keys: Vec::new(),
        batch_size,
    };
    // Every line but the batch progress, of which one in 50.
    let mut batches_seen = 0u64;
    let mut log = |line: &str| {
        if line.starts_with("batch ") {
            batches_seen += 1;
            if !batches_seen.is_multiple_of(50) {
                return;
            }
        }
        eprintln!("{line}");
    };
    let started = Instant::now();
    let rows = transfer(&spec, &mut log).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rows={rows} seconds={seconds:.2} rows_per_second={:.0}",
        rows as f64 / seconds
    );
    Ok(())
}
