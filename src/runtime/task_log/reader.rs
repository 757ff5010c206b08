//! The one reader of task logs. A [`LogStore`] hands out bytes at an offset; the [`LogReader`]
//! decides where a piece may end: at a line end when more follows (or the attempt still writes
//! its last line), else at a UTF-8 character boundary, so no surface ever shows half a character
//! or holds more than one bounded piece of a log.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::LogPath;

/// How often a follow looks for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// How often a follow asks whether the attempt has ended.
const FOLLOW_STATE_CHECK: Duration = Duration::from_secs(1);
/// The smallest piece worth asking for: one character of any width.
const MIN_PIECE: usize = 4;

/// Bytes of a log as a store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// From `offset.min(size)`, at most the `max` asked for.
    pub bytes: Vec<u8>,
    /// The log's length when it was read.
    pub size: u64,
}

/// Where a log's bytes are kept: today a file, later a store of lines shipped from workers.
pub trait LogStore: Send + Sync {
    /// Up to `max` bytes from `offset` (clamped to the log's length) and the length; `None` while
    /// nothing has been logged.
    fn read_at(&self, offset: u64, max: usize) -> impl Future<Output = io::Result<Option<Stored>>> + Send;
}

/// An attempt's log file, read with a seek: a 100 MB log is never loaded whole.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: &LogPath) -> Self {
        Self { path: path.file() }
    }
}

impl LogStore for FileStore {
    async fn read_at(&self, offset: u64, max: usize) -> io::Result<Option<Stored>> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let size = file.metadata().await?.len();
        let start = offset.min(size);
        let length = (size - start).min(max as u64);
        file.seek(io::SeekFrom::Start(start)).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        file.take(length).read_to_end(&mut bytes).await?;
        Ok(Some(Stored { bytes, size }))
    }
}

/// A piece of a log and where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    /// Whether anything has been logged at all.
    pub exists: bool,
    pub bytes: Vec<u8>,
    /// Byte offsets of the piece within the log, and the log's length when it was read.
    pub start: u64,
    pub end: u64,
    pub size: u64,
}

impl Window {
    /// The piece as text (a byte the task wrote that is not UTF-8 shows as U+FFFD).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Why a follow stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E> {
    #[error("reading the log: {0}")]
    Reading(#[from] io::Error),
    #[error("asking whether the attempt ended: {0}")]
    Watching(E),
}

/// Reads one attempt's log through its store.
#[derive(Debug, Clone)]
pub struct LogReader<S = FileStore> {
    store: S,
    /// The attempt still writes: a last line without its newline is not shown yet.
    still_writing: bool,
}

impl LogReader<FileStore> {
    /// The log file of `path`, read as finished.
    pub fn file(path: &LogPath) -> Self {
        Self::new(FileStore::new(path))
    }
}

impl<S: LogStore> LogReader<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            still_writing: false,
        }
    }

    /// Whether the attempt still writes to the log: then every piece ends at a line end.
    pub fn still_writing(mut self, still_writing: bool) -> Self {
        self.still_writing = still_writing;
        self
    }

    /// The log's length now; `None` while nothing has been logged.
    pub async fn size(&self) -> io::Result<Option<u64>> {
        Ok(self.store.read_at(u64::MAX, 0).await?.map(|stored| stored.size))
    }

    /// At most `max` bytes from `offset` (clamped to the log's length; an offset inside a
    /// character moves to the next character's start). The piece ends at a line
    /// end when the log goes on past it or the attempt still writes; a piece without any line
    /// end is cut at a character boundary instead, so a giant line still makes progress.
    pub async fn window(&self, offset: u64, max: usize) -> io::Result<Window> {
        self.window_within(offset, max, None).await
    }

    /// At most `max` bytes of the log's end, starting at a line start (or, in one giant line,
    /// at a character start).
    pub async fn tail(&self, max: usize) -> io::Result<Window> {
        let max = max.max(MIN_PIECE);
        let Some(size) = self.size().await? else {
            return Ok(Window::default());
        };
        let from = size.saturating_sub(max as u64);
        let mut window = self.window_within(from, max, None).await?;
        if window.start > 0 {
            let skip = match window.bytes.iter().position(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None => window.bytes.iter().take_while(|&&byte| is_continuation(byte)).count(),
            };
            window.bytes.drain(..skip);
            window.start += skip as u64;
        }
        Ok(window)
    }

    /// The log from `from` to `until` (the length seen earlier, say) in pieces of at most
    /// `piece` bytes, each ending at a line end or character boundary. Ends early if the log
    /// shrank.
    pub fn pieces(self, from: u64, until: u64, piece: usize) -> impl Stream<Item = io::Result<Vec<u8>>> {
        futures_util::stream::unfold(Some((self, from)), move |state| async move {
            let (reader, position) = state?;
            if position >= until {
                return None;
            }
            match reader.window_within(position, piece, Some(until)).await {
                Ok(window) if window.bytes.is_empty() => None,
                Ok(window) => {
                    let next = window.end;
                    Some((Ok(window.bytes), Some((reader, next))))
                }
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    /// New pieces of at most `max` bytes from `from` as they are written: whole lines while the
    /// attempt runs, everything once `ended` says it has ended; then the stream ends. Looks for
    /// new bytes four times a second and asks `ended` once a second.
    pub fn follow<F, Fut, E>(
        self,
        from: u64,
        max: usize,
        ended: F,
    ) -> impl Stream<Item = Result<Window, FollowError<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let follow = Follow {
            reader: self.still_writing(true),
            position: from,
            max,
            ended,
            checked_at: None,
            done: false,
        };
        futures_util::stream::unfold(follow, |mut follow| async move {
            follow.next().await.map(|item| (item, follow))
        })
    }

    /// A window whose log ends at `limit` when one is given (what a reader saw earlier).
    async fn window_within(&self, offset: u64, max: usize, limit: Option<u64>) -> io::Result<Window> {
        let max = max.max(MIN_PIECE);
        let Some(stored) = self.store.read_at(offset, max).await? else {
            return Ok(Window::default());
        };
        let size = limit.map_or(stored.size, |limit| limit.min(stored.size));
        let start = offset.min(size);
        let mut bytes = stored.bytes;
        bytes.truncate(usize::try_from(size - start).unwrap_or(usize::MAX));
        let full = bytes.len() == max;
        // An offset inside a character (the UI's "earlier" link steps back a fixed number of
        // bytes) starts at the next character instead. The writer writes only UTF-8 text, so a
        // continuation byte here is always the rest of a character begun before the offset.
        let skip = if start > 0 {
            bytes.iter().take(3).take_while(|&&byte| is_continuation(byte)).count()
        } else {
            0
        };
        bytes.drain(..skip);
        let start = start + skip as u64;
        let more_follows = start + (bytes.len() as u64) < size || (self.still_writing && limit.is_none());
        if more_follows {
            let keep = match bytes.iter().rposition(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None if full => utf8_boundary(&bytes),
                None => 0,
            };
            bytes.truncate(keep);
        }
        let end = start + bytes.len() as u64;
        Ok(Window {
            exists: true,
            bytes,
            start,
            end,
            size: stored.size,
        })
    }
}

/// Where a follow is in one attempt's log.
struct Follow<S, F> {
    reader: LogReader<S>,
    position: u64,
    max: usize,
    ended: F,
    checked_at: Option<Instant>,
    done: bool,
}

impl<S, F, Fut, E> Follow<S, F>
where
    S: LogStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    async fn next(&mut self) -> Option<Result<Window, FollowError<E>>> {
        loop {
            if self.done {
                return None;
            }
            if self.reader.still_writing && self.checked_at.is_none_or(|at| at.elapsed() >= FOLLOW_STATE_CHECK) {
                self.checked_at = Some(Instant::now());
                match (self.ended)().await {
                    Ok(ended) => self.reader.still_writing = !ended,
                    Err(error) => {
                        self.done = true;
                        return Some(Err(FollowError::Watching(error)));
                    }
                }
            }
            let window = match self.reader.window(self.position, self.max).await {
                Ok(window) => window,
                Err(error) => {
                    self.done = true;
                    return Some(Err(FollowError::Reading(error)));
                }
            };
            if !window.bytes.is_empty() {
                self.position = window.end;
                return Some(Ok(window));
            }
            if !self.reader.still_writing {
                self.done = true;
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// The length of `bytes` without a UTF-8 character cut at its end.
fn utf8_boundary(bytes: &[u8]) -> usize {
    let tail_start = bytes.len().saturating_sub(4);
    for position in (tail_start..bytes.len()).rev() {
        let byte = bytes[position];
        if is_continuation(byte) {
            continue; // keep looking for the lead byte
        }
        let width = match byte {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        return if position + width > bytes.len() {
            position
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::domain::ids::{DagId, RunId, TaskId};

    fn log_in(dir: &std::path::Path, text: &[u8]) -> LogReader {
        let path = LogPath::new(
            dir,
            &DagId::parse("d").unwrap(),
            &RunId::parse("r").unwrap(),
            &TaskId::parse("t").unwrap(),
            1,
        );
        std::fs::create_dir_all(path.file().parent().unwrap()).unwrap();
        std::fs::write(path.file(), text).unwrap();
        LogReader::file(&path)
    }

    #[test]
    fn a_piece_is_never_cut_inside_a_character() {
        assert_eq!(utf8_boundary(b"abc"), 3);
        assert_eq!(utf8_boundary("ab\u{e9}".as_bytes()), 4);
        assert_eq!(utf8_boundary(&"ab\u{e9}".as_bytes()[..3]), 2);
        assert_eq!(utf8_boundary(&"a\u{1f600}".as_bytes()[..4]), 1);
        assert_eq!(utf8_boundary("a\u{1f600}".as_bytes()), 5);
        assert_eq!(utf8_boundary(b""), 0);
    }

    #[tokio::test]
    async fn windows_end_at_line_ends_and_wait_for_a_line_still_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let missing = LogReader::file(&LogPath::new(
            dir.path(),
            &DagId::parse("d").unwrap(),
            &RunId::parse("r").unwrap(),
            &TaskId::parse("t").unwrap(),
            9,
        ));
        assert_eq!(missing.window(0, 8).await.unwrap(), Window::default());
        let log = log_in(dir.path(), b"one\ntwo\nthree");
        let piece = |window: Window| (window.bytes, window.end);
        assert_eq!(piece(log.window(0, 8).await.unwrap()), (b"one\ntwo\n".to_vec(), 8));
        assert_eq!(piece(log.window(8, 8).await.unwrap()), (b"three".to_vec(), 13));
        let writing = log.clone().still_writing(true);
        assert_eq!(piece(writing.window(8, 8).await.unwrap()), (Vec::new(), 8));
        assert_eq!(piece(log.window(99, 8).await.unwrap()), (Vec::new(), 13));
        let giant = log_in(dir.path(), "ab\u{1f600}cd\n".as_bytes());
        assert_eq!(piece(giant.window(0, 4).await.unwrap()), (b"ab".to_vec(), 2));
        assert_eq!(
            piece(giant.window(2, 4).await.unwrap()),
            ("\u{1f600}".as_bytes().to_vec(), 6)
        );
    }

    #[tokio::test]
    async fn a_tail_starts_at_a_line_start_or_a_character_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path(), "first line\nsecond\n".as_bytes());
        let tail = log.tail(10).await.unwrap();
        assert_eq!((tail.text().as_ref(), tail.start), ("second\n", 11));
        let log = log_in(dir.path(), "\u{e9}\u{e9}\u{e9}\u{e9}".as_bytes());
        let tail = log.tail(5).await.unwrap();
        assert_eq!((tail.text().as_ref(), tail.start), ("\u{e9}\u{e9}", 4));
    }

    #[tokio::test]
    async fn pieces_cover_exactly_the_range_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\u{e9}t\u{e9}\u{1f600}\nline two\nthree";
        let log = log_in(dir.path(), text.as_bytes());
        let pieces: Vec<Vec<u8>> = log.clone().pieces(0, 20, 5).map(Result::unwrap).collect().await;
        assert!(
            pieces.iter().all(|piece| std::str::from_utf8(piece).is_ok()),
            "{pieces:?}"
        );
        assert_eq!(pieces.concat(), text.as_bytes()[..20].to_vec());
    }

    #[tokio::test]
    async fn a_follow_ends_with_the_partial_last_line_once_the_attempt_ended() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path(), b"done\npartial");
        let mut checks = 0;
        let pieces: Vec<String> = log
            .follow(0, 64, || {
                checks += 1;
                let ended = checks > 1;
                async move { Ok::<_, io::Error>(ended) }
            })
            .map(|window| window.unwrap().text().into_owned())
            .collect()
            .await;
        assert_eq!(pieces, vec!["done\n".to_string(), "partial".to_string()]);
    }
}
