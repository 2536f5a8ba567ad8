//! The NDJSON bytes of one file, generated chunk by chunk from a small state (a resource index
//! and its patient), so any chunk boundary can be resumed from without the bytes before it.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::Value;

use crate::data::Dataset;
use crate::export::{block_lines, FileBody, Plan};

/// Target size of a generated chunk (a chunk ends at the first line past it).
pub const CHUNK: usize = 64 * 1024;

/// Generates the bytes of one file of a plan, chunk by chunk.
#[derive(Debug)]
pub struct Cursor {
    ds: Arc<Dataset>,
    plan: Arc<Plan>,
    file: usize,
    pos: u64,
    patient: u32,
    /// Fault `changeafter`: the file's second version (resources `{Type}-{k}` with k % 3 == 2
    /// left out, `meta.versionId` "2").
    v2: bool,
}

impl Cursor {
    /// A cursor at the start of file `file`.
    pub fn new(ds: Arc<Dataset>, plan: Arc<Plan>, file: usize) -> Cursor {
        let (pos, patient) = match &plan.files[file].body {
            FileBody::Range { t, start, .. } => (*start, ds.patient_of(*t, *start)),
            FileBody::Organized { start, .. } => (u64::from(*start), *start),
            FileBody::Lines(_) => (0, 0),
        };
        Cursor { ds, plan, file, pos, patient, v2: false }
    }

    /// The same cursor over the file's second version when `v2` (fault `changeafter`).
    pub fn second_version(mut self, v2: bool) -> Cursor {
        self.v2 = v2;
        self
    }

    /// A cursor at a state returned by [`Cursor::state`] of a cursor on the same file.
    pub fn resume(ds: Arc<Dataset>, plan: Arc<Plan>, file: usize, (pos, patient): (u64, u32)) -> Cursor {
        Cursor { ds, plan, file, pos, patient, v2: false }
    }

    /// Where the cursor stands: (position, patient). The chunks after it depend only on this.
    pub fn state(&self) -> (u64, u32) {
        (self.pos, self.patient)
    }

    /// The next chunk (None at the end).
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        let mut buf = Vec::with_capacity(CHUNK + 8 * 1024);
        let plan = self.plan.clone();
        let sel = &plan.params.selection;
        let ds = &*self.ds;
        match &plan.files[self.file].body {
            FileBody::Lines(b) => {
                let start = self.pos as usize;
                if start >= b.len() {
                    return None;
                }
                let end = (start + CHUNK).min(b.len());
                self.pos = end as u64;
                return Some(Bytes::copy_from_slice(&b[start..end]));
            }
            FileBody::Range { t, end, .. } => {
                let (t, end) = (*t, *end);
                let trivial = sel.is_trivial() && sel.elements.is_empty();
                while self.pos < end && buf.len() < CHUNK {
                    let i = self.pos;
                    while ds.start(t, self.patient + 1) <= i {
                        self.patient += 1;
                    }
                    if (trivial || sel.matches(ds, t, i, self.patient)) && !(self.v2 && i % 3 == 2) {
                        self.write(&mut buf, t, i, self.patient);
                    }
                    self.pos += 1;
                }
            }
            FileBody::Organized { end, .. } => {
                let end = u64::from(*end);
                let types: Vec<usize> = plan.params.types.clone();
                while self.pos < end && buf.len() < CHUNK {
                    let p = self.pos as u32;
                    if block_lines(ds, sel, &types, p) > 0 {
                        buf.extend_from_slice(b"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"header\",\"valueReference\":{\"reference\":\"Patient/Patient-");
                        buf.extend_from_slice(p.to_string().as_bytes());
                        buf.extend_from_slice(b"\"}}]}\n");
                        for &t in &types {
                            for i in ds.start(t, p)..ds.start(t, p + 1) {
                                if sel.matches(ds, t, i, p) && !(self.v2 && i % 3 == 2) {
                                    self.write(&mut buf, t, i, p);
                                }
                            }
                        }
                    }
                    self.pos += 1;
                }
            }
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }

    fn write(&self, buf: &mut Vec<u8>, t: usize, i: u64, p: u32) {
        let at = buf.len();
        self.write_v1(buf, t, i, p);
        if self.v2 {
            // Same length, so chunk sizes and offsets stay computable.
            const V1: &[u8] = b"\"versionId\":\"1\"";
            if let Some(k) = buf[at..].windows(V1.len()).position(|w| w == V1) {
                buf[at + k + V1.len() - 2] = b'2';
            }
        }
    }

    fn write_v1(&self, buf: &mut Vec<u8>, t: usize, i: u64, p: u32) {
        let sel = &self.plan.params.selection;
        if sel.elements.is_empty() {
            self.ds.write(buf, t, i, p);
            return;
        }
        // Slow path: keep the mandatory elements and the requested ones, tag SUBSETTED.
        let mut v = self.ds.resource_json(t, i);
        if let Value::Object(o) = &mut v {
            o.retain(|k, _| {
                matches!(k.as_str(), "resourceType" | "id" | "meta") || sel.elements.iter().any(|e| e == k)
            });
            o["meta"]["tag"] = serde_json::json!([{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]);
        }
        buf.extend_from_slice(v.to_string().as_bytes());
        buf.push(b'\n');
    }

    /// The whole file in memory (the `gzcorrupt` fault, on small files).
    pub fn collect(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk() {
            all.extend_from_slice(&c);
        }
        all
    }
}
