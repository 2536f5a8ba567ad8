//! Safe names made from what a server sends: a resource type as the stem of
//! a file or a table (`Patient` → `Patient.000.ndjson`, `Patient.parquet`).
//! One rule for the plan's file names, the CLI's tables and Python's
//! `to_parquet`, so a manifest can never steer a path and every binding
//! names a type's table the same.

/// The stem of a file or table named for `resource_type`: its ASCII letters,
/// digits, `_` and `-` (at most 64), or `output` when none is left (files of
/// organized output, which have no type, are `output` too).
pub fn table_name(resource_type: &str) -> String {
    let out: String =
        resource_type.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(64).collect();
    if out.is_empty() {
        "output".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::table_name;

    // issue 20: a resource type becomes a safe stem, the same in the plan, the CLI and Python
    #[test]
    fn table_name_keeps_only_safe_characters() {
        assert_eq!(table_name("Patient"), "Patient");
        assert_eq!(table_name("../etc/passwd"), "etcpasswd");
        assert_eq!(table_name("Médication Request"), "MdicationRequest");
        assert_eq!(table_name("my_type-2"), "my_type-2");
        assert_eq!(table_name(""), "output");
        assert_eq!(table_name("/../"), "output");
        assert_eq!(table_name(&"A".repeat(100)).len(), 64);
    }
}
