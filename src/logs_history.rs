//! The bounded on-disk history of container logs, so views can scroll back further than
//! the lines kept in memory ([`crate::engine::state::LOG_LINES_IN_MEMORY`]).
//!
//! Layout: `<project root>/.tether/logs/<resource>/<segment>.log`. Each `up` starts a new
//! segment per resource; a segment is closed at [`SEGMENT_BYTES`] and only the newest
//! [`SEGMENTS_KEPT`] stay, so a chatty pod costs a fixed amount of disk and a quiet one
//! keeps its history. A line is `<RFC 3339 UTC time> <pod> <container> <text>`: readable
//! with `tail -f`, and fixed-width times make the merge of resources a string comparison.
//!
//! Data in: the log followers' lines, each stored and then passed on to the views
//! ([`History::write_and_pass`]), so what is on screen is also on disk. Data out:
//! pages read backwards ([`History::page`], the TUI's scrollback) and the tail plus the
//! live lines after it with no gap and no duplicate ([`History::tail_and_follow`], the
//! control socket's `/logs`).

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{broadcast, mpsc};

use crate::logs::LogLine;

/// A segment is closed once it holds this much.
pub const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Segments kept per resource; older ones are deleted.
pub const SEGMENTS_KEPT: usize = 4;
/// Longer lines are cut, so reading backwards never holds more than this per line.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Bytes read per step when reading backwards.
const CHUNK: u64 = 64 * 1024;
/// How far a follower of written lines may fall behind before it skips some.
const FOLLOW_BACKLOG: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot create the log history folder {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the log history in {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One stored line: when it was written and what the container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339 UTC with microseconds, fixed width, so it sorts as text.
    pub at: String,
    pub line: LogLine,
}

/// Where a reader continues towards older lines: per resource folder, the segment and
/// the byte offset just before the oldest line already read. A resource missing from the
/// map has nothing older.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, Pos>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    segment: u64,
    offset: u64,
}

/// Lines read backwards, oldest first, and where to continue.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// `None` once the oldest stored line is in `entries`.
    pub older: Option<Cursor>,
}

/// The history of one project. Writes are serialised by one lock, which is also what
/// lets a follower join at an exact line.
pub struct History {
    dir: PathBuf,
    writers: Mutex<Writers>,
    written_tx: broadcast::Sender<Arc<Entry>>,
}

#[derive(Default)]
struct Writers {
    open: HashMap<String, Segment>,
    /// The first write error, reported once; lines still reach followers.
    failed: bool,
}

struct Segment {
    number: u64,
    file: BufWriter<File>,
    len: u64,
}

impl History {
    /// Opens (creating) `<root>/.tether/logs`.
    pub fn open(root: &Path) -> Result<Arc<History>, HistoryError> {
        let dir =
            crate::state_dir::ensure_sub(root, "logs").map_err(|source| HistoryError::Create {
                path: root.join(crate::state_dir::NAME).join("logs"),
                source,
            })?;
        let (written_tx, _) = broadcast::channel(FOLLOW_BACKLOG);
        Ok(Arc::new(History {
            dir,
            writers: Mutex::new(Writers::default()),
            written_tx,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores every line of `lines`, then hands it to `onward` (the views), until the
    /// followers are gone or `onward` says the views are. Lines are flushed whenever the
    /// queue is empty, so the files trail the followers by one batch at most.
    pub async fn write_and_pass(
        self: Arc<Self>,
        mut lines: mpsc::Receiver<LogLine>,
        mut onward: impl FnMut(LogLine) -> bool,
    ) {
        while let Some(line) = lines.recv().await {
            self.append(line.clone());
            if lines.is_empty() {
                self.flush();
            }
            if !onward(line) {
                break;
            }
        }
        self.flush();
    }

    /// Stores one line and hands it to followers.
    pub fn append(&self, line: LogLine) {
        let entry = Arc::new(Entry {
            at: now(),
            line: clean(line),
        });
        let mut w = self.lock();
        let result = self.write(&mut w, &entry);
        if let Err(e) = result {
            if !w.failed {
                tracing::warn!("log history in {}: {e}", self.dir.display());
            }
            w.failed = true;
        }
        // Sent under the lock: a follower that joins under it sees each line exactly once.
        let _ = self.written_tx.send(entry);
    }

    /// Pushes buffered lines to the files.
    pub fn flush(&self) {
        let mut w = self.lock();
        for s in w.open.values_mut() {
            let _ = s.file.flush();
        }
    }

    /// The newest `n` lines (of `resource`, or of all) and a receiver of every line
    /// written after them.
    pub fn tail_and_follow(
        &self,
        resource: Option<&str>,
        n: usize,
    ) -> Result<(Vec<Entry>, broadcast::Receiver<Arc<Entry>>), HistoryError> {
        let mut w = self.lock();
        for s in w.open.values_mut() {
            let _ = s.file.flush();
        }
        let page = self.read_page(resource, None, n)?;
        Ok((page.entries, self.written_tx.subscribe()))
    }

    /// Up to `n` lines older than `before` (or the newest, without a cursor), of
    /// `resource` or of all resources merged by time.
    pub fn page(
        &self,
        resource: Option<&str>,
        before: Option<&Cursor>,
        n: usize,
    ) -> Result<Page, HistoryError> {
        let mut w = self.lock();
        for s in w.open.values_mut() {
            let _ = s.file.flush();
        }
        self.read_page(resource, before, n)
    }

    fn lock(&self) -> MutexGuard<'_, Writers> {
        // A panic while writing leaves only buffered bytes behind; the data stays usable.
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, w: &mut Writers, entry: &Entry) -> io::Result<()> {
        let folder = folder_name(&entry.line.resource);
        let segment = match w.open.remove(&folder) {
            Some(s) if s.len < SEGMENT_BYTES => s,
            Some(mut full) => {
                full.file.flush()?;
                self.start_segment(&folder, full.number + 1)?
            }
            None => {
                let next = segments(&self.dir.join(&folder))?
                    .last()
                    .map_or(1, |n| n + 1);
                self.start_segment(&folder, next)?
            }
        };
        let segment = w.open.entry(folder).or_insert(segment);
        let text = encode(entry);
        segment.file.write_all(text.as_bytes())?;
        segment.len += text.len() as u64;
        Ok(())
    }

    fn start_segment(&self, folder: &str, number: u64) -> io::Result<Segment> {
        let dir = self.dir.join(folder);
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&dir, number))?;
        let len = file.metadata()?.len();
        let all = segments(&dir)?;
        for old in all.iter().take(all.len().saturating_sub(SEGMENTS_KEPT)) {
            let _ = fs::remove_file(segment_path(&dir, *old));
        }
        Ok(Segment {
            number,
            file: BufWriter::new(file),
            len,
        })
    }

    fn read_page(
        &self,
        resource: Option<&str>,
        before: Option<&Cursor>,
        n: usize,
    ) -> Result<Page, HistoryError> {
        let read_err = |source| HistoryError::Read {
            path: self.dir.clone(),
            source,
        };
        let folders: Vec<String> = match resource {
            Some(r) => vec![folder_name(r)],
            None => list_folders(&self.dir).map_err(read_err)?,
        };
        // Each folder's newest `n` lines before its position, newest first.
        let mut per_folder: Vec<(String, Vec<Stored>)> = Vec::new();
        for folder in folders {
            let start = match before {
                None => None,
                Some(c) => match c.0.get(&folder) {
                    Some(p) => Some(*p),
                    None => continue,
                },
            };
            let lines = read_back(&self.dir.join(&folder), &folder, start, n).map_err(read_err)?;
            per_folder.push((folder, lines));
        }
        // Merge, newest first, and take `n`.
        let mut heads: Vec<usize> = vec![0; per_folder.len()];
        let mut taken: Vec<Entry> = Vec::new();
        while taken.len() < n {
            let next = per_folder
                .iter()
                .enumerate()
                .filter_map(|(i, (_, lines))| lines.get(heads[i]).map(|l| (i, l)))
                .max_by(|(_, a), (_, b)| a.entry.at.cmp(&b.entry.at));
            let Some((i, stored)) = next else { break };
            taken.push(stored.entry.clone());
            heads[i] += 1;
        }
        // Where each folder continues: before its oldest taken line, or, if none was
        // taken, after its newest line read (lines written since are not older).
        let mut older = BTreeMap::new();
        for (i, (folder, lines)) in per_folder.iter().enumerate() {
            let all_taken = heads[i] == lines.len() && lines.len() < n;
            if lines.is_empty() || all_taken {
                continue;
            }
            let at = match heads[i] {
                0 => lines[0].end,
                h => lines[h - 1].start,
            };
            older.insert(folder.clone(), at);
        }
        taken.reverse();
        Ok(Page {
            entries: taken,
            older: (!older.is_empty()).then_some(Cursor(older)),
        })
    }
}

/// A line read back, with where it starts and ends.
struct Stored {
    start: Pos,
    end: Pos,
    entry: Entry,
}

/// Up to `n` lines of one resource folder before `start` (its newest segment's end when
/// `None`), newest first.
fn read_back(dir: &Path, resource: &str, start: Option<Pos>, n: usize) -> io::Result<Vec<Stored>> {
    let mut out = Vec::new();
    let numbers = segments(dir)?;
    for &number in numbers.iter().rev() {
        let end = match start {
            Some(p) if number > p.segment => continue,
            Some(p) if number == p.segment => p.offset,
            _ => u64::MAX,
        };
        let path = segment_path(dir, number);
        let lines = match lines_before(&path, end, n - out.len()) {
            Ok(l) => l,
            // Pruned since the cursor was made: older segments may still be there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (from, to, text) in lines {
            if let Some(entry) = decode(resource, &text) {
                let pos = |offset| Pos {
                    segment: number,
                    offset,
                };
                out.push(Stored {
                    start: pos(from),
                    end: pos(to),
                    entry,
                });
            }
        }
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}

/// Up to `n` complete lines that end at or before byte `end` of `path`, newest first,
/// each with its start and end offsets. A trailing partial line (a write in progress) is
/// skipped.
fn lines_before(path: &Path, end: u64, n: usize) -> io::Result<Vec<(u64, u64, String)>> {
    let mut file = File::open(path)?;
    let end = end.min(file.metadata()?.len());
    // `buf` holds the bytes [start, start + buf.len()) not yet returned.
    let mut start = end;
    let mut buf: Vec<u8> = Vec::new();
    // Cut back to the last newline.
    loop {
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            buf.truncate(i + 1);
            break;
        }
        if start == 0 {
            return Ok(Vec::new());
        }
        prepend(&mut file, &mut buf, &mut start)?;
    }
    let mut out = Vec::new();
    while out.len() < n && !buf.is_empty() {
        let body_end = buf.len() - 1;
        let line_start = match buf[..body_end].iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if start == 0 => 0,
            None => {
                // The line begins in an earlier chunk.
                prepend(&mut file, &mut buf, &mut start)?;
                continue;
            }
        };
        out.push((
            start + line_start as u64,
            start + buf.len() as u64,
            String::from_utf8_lossy(&buf[line_start..body_end]).into_owned(),
        ));
        buf.truncate(line_start);
    }
    Ok(out)
}

/// Reads the chunk before `*start` into the front of `buf`.
fn prepend(file: &mut File, buf: &mut Vec<u8>, start: &mut u64) -> io::Result<()> {
    let from = start.saturating_sub(CHUNK);
    let mut chunk = vec![0; (*start - from) as usize];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut chunk)?;
    chunk.extend_from_slice(buf);
    *buf = chunk;
    *start = from;
    Ok(())
}

/// Segment numbers in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
        Err(e) => return Err(e),
    };
    for e in entries {
        let name = e?.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        numbers.push(n);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn list_folders(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir()
            && let Some(name) = e.file_name().to_str()
        {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:08}.log"))
}

/// The folder of a resource. Config names are already safe (lower-case letters, digits,
/// '-'); anything else is replaced so no name can leave the history folder.
pub fn folder_name(resource: &str) -> String {
    let name: String = resource
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".to_owned()
    } else {
        name
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// One line per entry: newlines inside the text would split it, and huge lines are cut.
fn clean(mut line: LogLine) -> LogLine {
    if line.text.len() > MAX_LINE_BYTES {
        let mut cut = MAX_LINE_BYTES;
        while !line.text.is_char_boundary(cut) {
            cut -= 1;
        }
        line.text.truncate(cut);
    }
    if line.text.contains(['\n', '\r']) {
        line.text = line
            .text
            .trim_end_matches(['\n', '\r'])
            .replace(['\n', '\r'], " ");
    }
    line
}

fn encode(e: &Entry) -> String {
    let word = |s: &str| {
        if s.is_empty() || s.contains(char::is_whitespace) {
            s.replace(char::is_whitespace, "_")
                .chars()
                .chain(s.is_empty().then_some('-'))
                .collect()
        } else {
            s.to_owned()
        }
    };
    format!(
        "{} {} {} {}\n",
        e.at,
        word(&e.line.pod),
        word(&e.line.container),
        e.line.text
    )
}

fn decode(resource: &str, text: &str) -> Option<Entry> {
    let mut parts = text.splitn(4, ' ');
    let at = parts.next()?;
    let pod = parts.next()?;
    let container = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(Entry {
        at: at.to_owned(),
        line: LogLine {
            resource: resource.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            text: text.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(resource: &str, text: &str) -> LogLine {
        LogLine {
            resource: resource.into(),
            pod: "users-7d9c-x2x4q".into(),
            container: "app".into(),
            text: text.into(),
        }
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| e.line.text.clone()).collect()
    }

    #[test]
    fn times_are_fixed_width_utc() {
        let t = now();
        assert_eq!(t.len(), "2025-01-02T03:04:05.123456Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn lines_round_trip_and_pages_go_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        for i in 0..25 {
            h.append(line("users", &format!("line {i}")));
        }
        h.append(line("users", "two\nlines"));
        let first = h.page(Some("users"), None, 10).unwrap();
        assert_eq!(first.entries.len(), 10);
        assert_eq!(first.entries.last().unwrap().line.text, "two lines");
        assert_eq!(first.entries[0].line.text, "line 16");
        assert_eq!(first.entries[0].line.pod, "users-7d9c-x2x4q");
        assert_eq!(first.entries[0].line.resource, "users");
        let second = h.page(Some("users"), first.older.as_ref(), 10).unwrap();
        assert_eq!(second.entries[0].line.text, "line 6");
        assert_eq!(second.entries[9].line.text, "line 15");
        let third = h.page(Some("users"), second.older.as_ref(), 10).unwrap();
        assert_eq!(texts(&third.entries)[..2], ["line 0", "line 1"]);
        assert_eq!(third.entries.len(), 6);
        assert!(third.older.is_none(), "{:?}", third.older);
    }

    #[test]
    fn all_resources_merge_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        for i in 0..6 {
            let r = if i % 2 == 0 { "users" } else { "orders" };
            h.append(line(r, &format!("l{i}")));
            // Distinct microseconds, so the order is the write order.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let p = h.page(None, None, 4).unwrap();
        assert_eq!(texts(&p.entries), ["l2", "l3", "l4", "l5"]);
        let q = h.page(None, p.older.as_ref(), 4).unwrap();
        assert_eq!(texts(&q.entries), ["l0", "l1"]);
        assert!(q.older.is_none());
        assert_eq!(q.entries[1].line.resource, "orders");
    }

    #[test]
    fn segments_rotate_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let big = "x".repeat(MAX_LINE_BYTES);
        let per_segment = (SEGMENT_BYTES as usize / MAX_LINE_BYTES) + 1;
        for i in 0..per_segment * (SEGMENTS_KEPT + 2) {
            h.append(line("users", &format!("{i} {big}")));
        }
        h.flush();
        let kept = segments(&h.dir().join("users")).unwrap();
        assert_eq!(kept.len(), SEGMENTS_KEPT, "{kept:?}");
        assert!(
            *kept.last().unwrap() > (SEGMENTS_KEPT + 1) as u64,
            "{kept:?}"
        );
        let total: u64 = kept
            .iter()
            .map(|n| {
                fs::metadata(segment_path(&h.dir().join("users"), *n))
                    .unwrap()
                    .len()
            })
            .sum();
        assert!(total <= SEGMENTS_KEPT as u64 * (SEGMENT_BYTES + MAX_LINE_BYTES as u64 + 100));
        // Reading back crosses segment boundaries.
        let p = h.page(Some("users"), None, per_segment + 5).unwrap();
        assert_eq!(p.entries.len(), per_segment + 5);
        assert!(
            p.entries
                .last()
                .unwrap()
                .line
                .text
                .starts_with(&format!("{} ", per_segment * (SEGMENTS_KEPT + 2) - 1))
        );
    }

    #[test]
    fn a_partial_last_line_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("users");
        fs::create_dir_all(&folder).unwrap();
        fs::write(
            segment_path(&folder, 1),
            "2025-01-01T00:00:00.000001Z p c one\n2025-01-01T00:00:00.000002Z p c tw",
        )
        .unwrap();
        let lines = read_back(&folder, "users", None, 10).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].entry.line.text, "one");
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        assert_eq!(folder_name("../etc"), "___etc");
        assert_eq!(folder_name(""), "_");
        assert_eq!(folder_name("users"), "users");
    }

    #[tokio::test]
    async fn a_follower_joins_at_an_exact_line() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        h.append(line("users", "before"));
        let (tail, mut rx) = h.tail_and_follow(Some("users"), 10).unwrap();
        h.append(line("users", "after"));
        assert_eq!(texts(&tail), ["before"]);
        assert_eq!(rx.recv().await.unwrap().line.text, "after");
    }

    #[tokio::test]
    async fn each_line_is_on_disk_before_the_views_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let (tx, rx) = mpsc::channel(8);
        for i in 0..3 {
            tx.send(line("users", &format!("line {i}"))).await.unwrap();
        }
        drop(tx);
        let reader = h.clone();
        let mut passed = Vec::new();
        h.write_and_pass(rx, |l| {
            let stored = reader.page(Some("users"), None, 10).unwrap();
            assert_eq!(
                stored.entries.last().map(|e| &e.line.text),
                Some(&l.text),
                "stored before passed on"
            );
            passed.push(l.text);
            true
        })
        .await;
        assert_eq!(passed, ["line 0", "line 1", "line 2"]);
    }

    #[tokio::test]
    async fn the_writer_ends_once_the_views_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let (tx, rx) = mpsc::channel(8);
        tx.send(line("users", "seen")).await.unwrap();
        tx.send(line("users", "unseen")).await.unwrap();
        // The sender stays open: only the views' end may stop the writer here.
        h.clone().write_and_pass(rx, |_| false).await;
        assert_eq!(texts(&h.page(None, None, 10).unwrap().entries), ["seen"]);
        drop(tx);
    }
}
