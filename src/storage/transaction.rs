//! The one kind of write transaction on the metadata database, whose commit moves the change
//! counter when a write through it is one other processes' caches depend on.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection};

use super::Result;

/// A write transaction (from [`Db::begin`](super::Db::begin)). The storage functions that write
/// what a running scheduler keeps or waits for (variables, connections, DAG rows and pause flags,
/// runs and task instances changed by hand, backfills, dataset events, adopted runs and taken-over
/// attempts) take a `&mut Transaction`, not a connection, and mark it; its
/// [`commit`](Self::commit) then bumps the change counter in the same transaction. So a write
/// that schedulers must see cannot be made without the bump: every scheduler re-reads what it
/// keeps, and wakes, when the counter moves.
///
/// Reads and the scheduler's own writes (claims, starts, attempt ends, planning decisions: its
/// cache follows them itself) go through the plain connection this derefs to and move nothing.
pub struct Transaction {
    inner: sqlx::Transaction<'static, Any>,
    signal: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Nothing written through this transaction needs announcing (yet).
    Unchanged,
    /// The commit bumps the change counter.
    Changed,
    /// The scheduler's own run creation ([`Db::begin_for_scheduler`](super::Db::begin_for_scheduler)):
    /// never announced.
    Quiet,
}

impl Transaction {
    pub(super) fn new(inner: sqlx::Transaction<'static, Any>) -> Transaction {
        Transaction {
            inner,
            signal: Signal::Unchanged,
        }
    }

    pub(super) fn quiet(inner: sqlx::Transaction<'static, Any>) -> Transaction {
        Transaction {
            inner,
            signal: Signal::Quiet,
        }
    }

    /// The connection for a write that other processes' caches depend on: the commit will move
    /// the change counter. Only storage's write functions call it.
    pub(super) fn changes(&mut self) -> &mut AnyConnection {
        if self.signal == Signal::Unchanged {
            self.signal = Signal::Changed;
        }
        &mut self.inner
    }

    /// Commits, bumping the change counter first when a write through this transaction asked for
    /// it: the bump and the writes become visible together.
    pub async fn commit(mut self) -> Result<()> {
        if self.signal == Signal::Changed {
            sqlx::query("UPDATE weir_meta SET value = value + 1 WHERE key = 'change_seq'")
                .execute(&mut *self.inner)
                .await?;
        }
        self.inner.commit().await?;
        Ok(())
    }

    /// Undoes every write (dropping the transaction does too).
    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }
}

impl Deref for Transaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
