//! Each file's recorded progress (K5): kept sorted by name so a resumed job never fetches a
//! finished file again.

use super::Job;

impl Job {
    /// Each file's recorded progress (K5).
    pub fn file_records(&self) -> &[crate::coordinator::FileRecord] {
        &self.files
    }

    /// Records files' progress (replacing earlier records of the same files;
    /// of two records of one file in `records`, the later wins).
    ///
    /// A merge of two lists sorted by name, no hash map: the browser build
    /// pays for every map type (issue 14), and 100,000 records merge in one pass.
    pub fn record_files(&mut self, mut records: Vec<crate::coordinator::FileRecord>) {
        if records.is_empty() {
            return;
        }
        // Stable sorts: after the reverse, the latest record of a name comes first and is kept.
        records.reverse();
        records.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        records.dedup_by(|later, kept| later.file_name == kept.file_name);
        let mut old = std::mem::take(&mut self.files);
        old.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let mut merged = Vec::with_capacity(old.len() + records.len());
        let mut new = records.into_iter().peekable();
        for o in old {
            while new.peek().is_some_and(|n| n.file_name < o.file_name) {
                merged.extend(new.next());
            }
            match new.peek() {
                Some(n) if n.file_name == o.file_name => merged.extend(new.next()),
                _ => merged.push(o),
            }
        }
        merged.extend(new);
        self.files = merged;
    }

    /// Records one file's progress, replacing its earlier record: a binary
    /// search in the name-sorted records (no sort, no map: a binding records
    /// each part handed out, and the browser build pays for every sort; K5).
    pub fn record_file(&mut self, record: crate::coordinator::FileRecord) {
        match self.files.binary_search_by(|r| r.file_name.cmp(&record.file_name)) {
            Ok(i) => self.files[i] = record,
            Err(i) => self.files.insert(i, record),
        }
    }
}
