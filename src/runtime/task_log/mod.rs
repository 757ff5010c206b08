//! Task logs: where an attempt's log lives ([`LogPath`]), the one way lines get into it
//! ([`LogWriter`]: masked, capped, one line at a time) and the one way they come out
//! ([`LogReader`]: windows, tails and a follow, never a character cut in two, never the whole log
//! in memory). The REST API, the UI, the CLI and alerts read through the reader; the shell
//! supervisor, the in-process task types and recovery's notes write through the writer.
//!
//! Reading is split in two so that a later log store plugs in behind the same reader: a
//! [`LogStore`] only answers "the log's length, and up to `max` bytes from `offset`"
//! ([`FileStore`] does it for `<logs_dir>/<dag>/<run>/<task>/<try>.log`), and the [`LogReader`]
//! on top of it owns every framing rule (whole lines while an attempt writes, UTF-8 boundaries,
//! bounded buffers). A store fed by lines shipped from a worker on another host implements
//! `LogStore` and every surface reads it unchanged.

mod path;
mod reader;
mod writer;

pub use path::LogPath;
pub use reader::{FileStore, LogReader, LogStore, Window};
pub use writer::{LogWriter, append_note};
