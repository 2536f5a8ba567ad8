//! Deterministic synthetic FHIR R4 data, generated on the fly.
//!
//! Each patient `p` owns a deterministic number of resources of every type (from a hash of
//! `(seed, p, type)`); resource `i` of a type has id `{Type}-{i}`, with `i` in `0..count`, so
//! indices are contiguous per type and ordered by patient. Bytes are written from fixed
//! templates with `itoa` and precomputed date strings, so a multi-GB export needs no memory.

use std::sync::OnceLock;

/// The resource types of the data set, in export order.
pub const TYPES: [&str; 6] = ["Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Procedure"];

/// Index of a type name in [`TYPES`].
pub fn type_index(name: &str) -> Option<usize> {
    TYPES.iter().position(|t| *t == name)
}

/// Unix seconds of the newest `meta.lastUpdated` in the data set (2025-06-01T00:00:00Z).
pub const DATA_EPOCH: i64 = 1_748_736_000;
const YEAR: i64 = 365 * 86_400;

/// splitmix64: a cheap, well-mixed deterministic hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A data set: per type, the index of the first resource of each patient.
#[derive(Debug)]
pub struct Dataset {
    seed: u64,
    patients: u32,
    /// `starts[t][p]` = index of patient `p`'s first resource of type `t`; length `patients + 1`.
    starts: Vec<Vec<u64>>,
}

impl Dataset {
    /// Builds the index of a data set with `patients` patients.
    pub fn new(patients: u32, seed: u64) -> Dataset {
        let mut starts = Vec::with_capacity(TYPES.len());
        for t in 0..TYPES.len() {
            let mut v = Vec::with_capacity(patients as usize + 1);
            let mut acc = 0u64;
            for p in 0..patients {
                v.push(acc);
                acc += u64::from(per_patient(seed, t, p));
            }
            v.push(acc);
            starts.push(v);
        }
        Dataset { seed, patients, starts }
    }

    /// Number of patients.
    pub fn patients(&self) -> u32 {
        self.patients
    }

    /// Number of resources of type `t`.
    pub fn count(&self, t: usize) -> u64 {
        self.starts[t][self.patients as usize]
    }

    /// First index of type `t` owned by patient `p` (`p == patients` gives the count).
    pub fn start(&self, t: usize, p: u32) -> u64 {
        self.starts[t][p as usize]
    }

    /// The patient that owns resource `i` of type `t` (`i < count(t)`).
    pub fn patient_of(&self, t: usize, i: u64) -> u32 {
        let v = &self.starts[t];
        // Last p with starts[p] <= i; patients with no resource share a start, skip them.
        let p = v.partition_point(|&s| s <= i);
        (p.saturating_sub(1)) as u32
    }

    fn h(&self, t: usize, i: u64, salt: u64) -> u64 {
        mix(self.seed ^ ((t as u64) << 56) ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ salt)
    }

    /// Unix seconds of `meta.lastUpdated` of resource `i` of type `t`.
    pub fn last_updated(&self, t: usize, i: u64) -> i64 {
        DATA_EPOCH - (self.h(t, i, 1) % YEAR as u64) as i64
    }

    /// The searchable code of a resource (Patient gender, Encounter/MedicationRequest/Procedure
    /// status, Observation category, Condition clinical-status).
    pub fn attr(&self, t: usize, i: u64) -> &'static str {
        let h = self.h(t, i, 2);
        match t {
            0 => ["male", "female"][(h & 1) as usize],
            1 => ["finished", "finished", "in-progress"][(h % 3) as usize],
            2 => ["vital-signs", "laboratory"][(h & 1) as usize],
            3 => ["active", "resolved"][(h & 1) as usize],
            4 => ["active", "completed"][(h & 1) as usize],
            _ => ["completed", "completed", "not-done"][(h % 3) as usize],
        }
    }

    /// The search parameter name [`Dataset::attr`] answers for type `t`.
    pub fn attr_param(t: usize) -> &'static str {
        match t {
            0 => "gender",
            2 => "category",
            3 => "clinical-status",
            _ => "status",
        }
    }

    /// Family and given name of patient `i`.
    pub fn patient_name(&self, i: u64) -> (&'static str, &'static str) {
        let h = self.h(0, i, 3);
        (FAMILY[(h % FAMILY.len() as u64) as usize], GIVEN[((h >> 16) % GIVEN.len() as u64) as usize])
    }

    /// Appends resource `i` of type `t` (owned by patient `p`) as one NDJSON line.
    pub fn write(&self, out: &mut Vec<u8>, t: usize, i: u64, p: u32) {
        // One reservation up front: every resource is under 2 KB.
        out.reserve(2048);
        match t {
            0 => self.patient(out, i),
            1 => self.encounter(out, i, p),
            2 => self.observation(out, i, p),
            3 => self.condition(out, i, p),
            4 => self.medication_request(out, i, p),
            _ => self.procedure(out, i, p),
        }
        out.push(b'\n');
    }

    /// Resource `i` of type `t` as a JSON value (slow path: reads and filters).
    pub fn resource_json(&self, t: usize, i: u64) -> serde_json::Value {
        let mut buf = Vec::with_capacity(2048);
        let p = self.patient_of(t, i);
        self.write(&mut buf, t, i, p);
        serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null)
    }

    fn head(&self, out: &mut Vec<u8>, t: usize, i: u64) {
        out.extend_from_slice(b"{\"resourceType\":\"");
        out.extend_from_slice(TYPES[t].as_bytes());
        out.extend_from_slice(b"\",\"id\":\"");
        out.extend_from_slice(TYPES[t].as_bytes());
        out.push(b'-');
        num(out, i);
        out.extend_from_slice(b"\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"");
        instant(out, self.last_updated(t, i));
        out.extend_from_slice(b"\"}");
    }

    fn subject(&self, out: &mut Vec<u8>, p: u32) {
        out.extend_from_slice(b",\"subject\":{\"reference\":\"Patient/Patient-");
        num(out, u64::from(p));
        out.extend_from_slice(b"\"}");
    }

    fn encounter_ref(&self, out: &mut Vec<u8>, p: u32, h: u64) {
        let first = self.start(1, p);
        let n = self.start(1, p + 1) - first;
        if n > 0 {
            out.extend_from_slice(b",\"encounter\":{\"reference\":\"Encounter/Encounter-");
            num(out, first + h % n);
            out.extend_from_slice(b"\"}");
        }
    }

    fn patient(&self, out: &mut Vec<u8>, i: u64) {
        let h = self.h(0, i, 4);
        let (family, given) = self.patient_name(i);
        self.head(out, 0, i);
        out.extend_from_slice(
            b",\"text\":{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">",
        );
        out.extend_from_slice(given.as_bytes());
        out.push(b' ');
        out.extend_from_slice(family.as_bytes());
        out.extend_from_slice(b"</div>\"},\"identifier\":[{\"use\":\"usual\",\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"MR\",\"display\":\"Medical Record Number\"}]},\"system\":\"urn:oid:2.16.840.1.113883.19.5\",\"value\":\"MRN-");
        num(out, 100_000 + i);
        out.extend_from_slice(b"\"}],\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"");
        out.extend_from_slice(family.as_bytes());
        out.extend_from_slice(b"\",\"given\":[\"");
        out.extend_from_slice(given.as_bytes());
        out.extend_from_slice(b"\"]}],\"telecom\":[{\"system\":\"phone\",\"value\":\"555-");
        num(out, 1000 + h % 9000);
        out.extend_from_slice(b"\",\"use\":\"home\"}],\"gender\":\"");
        out.extend_from_slice(self.attr(0, i).as_bytes());
        out.extend_from_slice(b"\",\"birthDate\":\"");
        date(out, DATA_EPOCH - 5 * YEAR - ((h >> 8) % (80 * YEAR as u64)) as i64);
        out.extend_from_slice(b"\",\"address\":[{\"use\":\"home\",\"line\":[\"");
        num(out, 1 + (h >> 20) % 999);
        out.push(b' ');
        out.extend_from_slice(STREETS[((h >> 30) % STREETS.len() as u64) as usize].as_bytes());
        out.extend_from_slice(b"\"],\"city\":\"");
        out.extend_from_slice(CITIES[((h >> 36) % CITIES.len() as u64) as usize].as_bytes());
        out.extend_from_slice(b"\",\"state\":\"MA\",\"postalCode\":\"0");
        num(out, 1000 + (h >> 40) % 9000);
        out.extend_from_slice(b"\",\"country\":\"US\"}],\"maritalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\",\"code\":\"M\",\"display\":\"Married\"}]},\"communication\":[{\"language\":{\"coding\":[{\"system\":\"urn:ietf:bcp:47\",\"code\":\"en-US\",\"display\":\"English (United States)\"}]}}]}");
    }

    fn encounter(&self, out: &mut Vec<u8>, i: u64, p: u32) {
        let h = self.h(1, i, 4);
        let start = self.last_updated(1, i) - 7200 - (h % 86_400) as i64;
        let (class, class_display) =
            [("AMB", "ambulatory"), ("IMP", "inpatient encounter"), ("EMER", "emergency")][(h % 3) as usize];
        self.head(out, 1, i);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.attr(1, i).as_bytes());
        out.extend_from_slice(
            b"\",\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"",
        );
        out.extend_from_slice(class.as_bytes());
        out.extend_from_slice(b"\",\"display\":\"");
        out.extend_from_slice(class_display.as_bytes());
        out.extend_from_slice(b"\"},\"type\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"185349003\",\"display\":\"Encounter for check up (procedure)\"}],\"text\":\"Encounter for check up (procedure)\"}]");
        self.subject(out, p);
        out.extend_from_slice(b",\"participant\":[{\"type\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ParticipationType\",\"code\":\"PPRF\",\"display\":\"primary performer\"}],\"text\":\"primary performer\"}],\"individual\":{\"reference\":\"Practitioner/Practitioner-");
        num(out, h % 50);
        out.extend_from_slice(b"\",\"display\":\"Dr. ");
        out.extend_from_slice(FAMILY[((h >> 12) % FAMILY.len() as u64) as usize].as_bytes());
        out.extend_from_slice(b"\"}}],\"period\":{\"start\":\"");
        instant(out, start);
        out.extend_from_slice(b"\",\"end\":\"");
        instant(out, start + 1800 + (h >> 24) as i64 % 5400);
        out.extend_from_slice(b"\"},\"serviceProvider\":{\"reference\":\"Organization/Organization-");
        num(out, (h >> 32) % 10);
        out.extend_from_slice(b"\",\"display\":\"General Hospital\"}}");
    }

    fn observation(&self, out: &mut Vec<u8>, i: u64, p: u32) {
        let h = self.h(2, i, 4);
        let lab = self.attr(2, i) == "laboratory";
        let set: &[ObsCode] = if lab { &LAB } else { &VITALS };
        let c = &set[(h % set.len() as u64) as usize];
        let ts = self.last_updated(2, i) - 3600;
        self.head(out, 2, i);
        out.extend_from_slice(b",\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"");
        out.extend_from_slice(if lab {
            b"laboratory\",\"display\":\"Laboratory"
        } else {
            b"vital-signs\",\"display\":\"Vital Signs"
        });
        out.extend_from_slice(b"\"}]}],\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"");
        coding_tail(out, (c.0, c.1));
        self.subject(out, p);
        self.encounter_ref(out, p, h >> 8);
        out.extend_from_slice(b",\"effectiveDateTime\":\"");
        instant(out, ts);
        out.extend_from_slice(b"\",\"issued\":\"");
        instant(out, ts + 600);
        out.extend_from_slice(b"\",\"valueQuantity\":{\"value\":");
        let span = c.4 - c.3;
        let v10 = c.3 * 10 + ((h >> 16) % (span * 10 + 1));
        num(out, v10 / 10);
        out.push(b'.');
        num(out, v10 % 10);
        out.extend_from_slice(b",\"unit\":\"");
        out.extend_from_slice(c.2.as_bytes());
        out.extend_from_slice(b"\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"");
        out.extend_from_slice(c.2.as_bytes());
        out.extend_from_slice(b"\"}}");
    }

    fn condition(&self, out: &mut Vec<u8>, i: u64, p: u32) {
        let h = self.h(3, i, 4);
        let c = CONDITIONS[(h % CONDITIONS.len() as u64) as usize];
        let status = self.attr(3, i);
        self.head(out, 3, i);
        out.extend_from_slice(b",\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"");
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(b"\"}]},\"verificationStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-ver-status\",\"code\":\"confirmed\"}]},\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-category\",\"code\":\"encounter-diagnosis\",\"display\":\"Encounter Diagnosis\"}]}],\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"");
        coding_tail(out, c);
        self.subject(out, p);
        self.encounter_ref(out, p, h >> 8);
        out.extend_from_slice(b",\"onsetDateTime\":\"");
        instant(out, self.last_updated(3, i) - ((h >> 20) % (3 * YEAR as u64)) as i64);
        out.extend_from_slice(b"\",\"recordedDate\":\"");
        instant(out, self.last_updated(3, i));
        out.extend_from_slice(b"\"}");
    }

    fn medication_request(&self, out: &mut Vec<u8>, i: u64, p: u32) {
        let h = self.h(4, i, 4);
        let m = MEDS[(h % MEDS.len() as u64) as usize];
        self.head(out, 4, i);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.attr(4, i).as_bytes());
        out.extend_from_slice(b"\",\"intent\":\"order\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"");
        coding_tail(out, m);
        self.subject(out, p);
        self.encounter_ref(out, p, h >> 8);
        out.extend_from_slice(b",\"authoredOn\":\"");
        instant(out, self.last_updated(4, i));
        out.extend_from_slice(b"\",\"requester\":{\"reference\":\"Practitioner/Practitioner-");
        num(out, (h >> 16) % 50);
        out.extend_from_slice(b"\"},\"dosageInstruction\":[{\"sequence\":1,\"text\":\"Take ");
        num(out, 1 + (h >> 24) % 2);
        out.extend_from_slice(b" tablet(s) by mouth daily\",\"timing\":{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"d\"}},\"asNeededBoolean\":false,\"doseAndRate\":[{\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/dose-rate-type\",\"code\":\"ordered\",\"display\":\"Ordered\"}]},\"doseQuantity\":{\"value\":1}}]}]}");
    }

    fn procedure(&self, out: &mut Vec<u8>, i: u64, p: u32) {
        let h = self.h(5, i, 4);
        let c = PROCEDURES[(h % PROCEDURES.len() as u64) as usize];
        let start = self.last_updated(5, i) - 5400;
        self.head(out, 5, i);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.attr(5, i).as_bytes());
        out.extend_from_slice(b"\",\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"");
        coding_tail(out, c);
        self.subject(out, p);
        self.encounter_ref(out, p, h >> 8);
        out.extend_from_slice(b",\"performedPeriod\":{\"start\":\"");
        instant(out, start);
        out.extend_from_slice(b"\",\"end\":\"");
        instant(out, start + 900 + (h >> 16) as i64 % 3600);
        out.extend_from_slice(b"\"}}");
    }
}

/// Number of resources of type `t` owned by patient `p`.
fn per_patient(seed: u64, t: usize, p: u32) -> u32 {
    if t == 0 {
        return 1;
    }
    let h = mix(seed ^ ((t as u64) << 48) ^ (u64::from(p) << 1) ^ 0x5EED);
    let (lo, hi) = [(1, 1), (1, 4), (2, 8), (0, 3), (0, 3), (0, 2)][t];
    lo + (h % u64::from(hi - lo + 1)) as u32
}

/// Ends a CodeableConcept whose coding `code` value is open:
/// `CODE","display":"DISPLAY"}],"text":"DISPLAY"}`.
fn coding_tail(out: &mut Vec<u8>, (code, display): (&str, &str)) {
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(b"\",\"display\":\"");
    out.extend_from_slice(display.as_bytes());
    out.extend_from_slice(b"\"}],\"text\":\"");
    out.extend_from_slice(display.as_bytes());
    out.extend_from_slice(b"\"}");
}

fn num(out: &mut Vec<u8>, n: u64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
}

/// `YYYY-MM-DD` strings for every day from 1900-01-01 on (about 73k days).
fn day_table() -> &'static [[u8; 10]] {
    static T: OnceLock<Vec<[u8; 10]>> = OnceLock::new();
    T.get_or_init(|| {
        let first = days_from_civil(1900, 1, 1);
        (0..73_000)
            .map(|d| {
                let (y, m, dd) = civil_from_days(first + d);
                let s = format!("{y:04}-{m:02}-{dd:02}");
                let mut a = [0u8; 10];
                a.copy_from_slice(s.as_bytes());
                a
            })
            .collect()
    })
}

fn day_row(secs: i64) -> (&'static [u8; 10], i64) {
    let base = days_from_civil(1900, 1, 1);
    let days = secs.div_euclid(86_400);
    let idx = (days - base).clamp(0, 72_999) as usize;
    (&day_table()[idx], secs.rem_euclid(86_400))
}

fn date(out: &mut Vec<u8>, secs: i64) {
    out.extend_from_slice(day_row(secs).0);
}

/// Appends `YYYY-MM-DDThh:mm:ssZ` (one copy from a stack buffer: this is on the hot path).
pub fn instant(out: &mut Vec<u8>, secs: i64) {
    let (d, s) = day_row(secs);
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut a = [0u8; 20];
    a[..10].copy_from_slice(d);
    a[10] = b'T';
    a[11] = b'0' + (h / 10) as u8;
    a[12] = b'0' + (h % 10) as u8;
    a[13] = b':';
    a[14] = b'0' + (m / 10) as u8;
    a[15] = b'0' + (m % 10) as u8;
    a[16] = b':';
    a[17] = b'0' + (sec / 10) as u8;
    a[18] = b'0' + (sec % 10) as u8;
    a[19] = b'Z';
    out.extend_from_slice(&a);
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

type ObsCode = (&'static str, &'static str, &'static str, u64, u64);

const VITALS: [ObsCode; 5] = [
    ("8867-4", "Heart rate", "/min", 50, 120),
    ("8310-5", "Body temperature", "Cel", 36, 39),
    ("29463-7", "Body weight", "kg", 40, 120),
    ("8302-2", "Body height", "cm", 140, 200),
    ("9279-1", "Respiratory rate", "/min", 10, 25),
];
const LAB: [ObsCode; 4] = [
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 60, 200),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 120, 280),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10, 18),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4, 10),
];
const CONDITIONS: [(&str, &str); 5] = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195662009", "Acute viral pharyngitis"),
    ("10509002", "Acute bronchitis"),
    ("55822004", "Hyperlipidemia"),
];
const MEDS: [(&str, &str); 4] = [
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("617312", "atorvastatin 10 MG Oral Tablet"),
    ("308136", "amLODIPine 2.5 MG Oral Tablet"),
];
const PROCEDURES: [(&str, &str); 4] = [
    ("430193006", "Medication Reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("428191000124101", "Documentation of current medications"),
    ("73761001", "Colonoscopy"),
];
const FAMILY: [&str; 16] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
];
const GIVEN: [&str; 16] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
];
const STREETS: [&str; 6] = ["Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Elm Street", "Park Road"];
const CITIES: [&str; 6] = ["Boston", "Worcester", "Springfield", "Cambridge", "Lowell", "Brockton"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_json_with_its_id() {
        let d = Dataset::new(20, 7);
        for (t, name) in TYPES.iter().enumerate() {
            for i in 0..d.count(t) {
                let v = d.resource_json(t, i);
                assert_eq!(v["resourceType"], *name);
                assert_eq!(v["id"], format!("{name}-{i}"));
                let p = d.patient_of(t, i);
                assert!(d.start(t, p) <= i && i < d.start(t, p + 1));
            }
        }
        assert_eq!(d.count(0), 20);
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        let mut s = Vec::new();
        instant(&mut s, DATA_EPOCH);
        assert_eq!(s, b"2025-06-01T00:00:00Z");
    }
}
