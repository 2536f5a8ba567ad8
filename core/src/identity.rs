//! A file is known by what it is, not by where it stands in a list (protocol
//! K6): its list, its resource type, its `count` and `fileSize` when given,
//! and its URL path. A refreshed manifest is matched to the first one by that
//! identity, so a server that lists the same files in another order (or signs
//! their links anew) never makes one file continue with another's bytes.

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity<'a> {
    pub(crate) list: u8,
    pub(crate) resource_type: Option<&'a str>,
    pub(crate) count: Option<u64>,
    pub(crate) size: Option<u64>,
    /// The URL without scheme, host, query or fragment.
    pub(crate) path: &'a str,
}

impl<'a> Identity<'a> {
    pub(crate) fn new(
        list: u8,
        resource_type: Option<&'a str>,
        count: Option<u64>,
        size: Option<u64>,
        url: &'a str,
    ) -> Self {
        Identity { list, resource_type, count, size, path: url_path(url) }
    }

    /// Same list and type, and no figure given by both that differs.
    fn could_be(&self, other: &Identity<'_>) -> bool {
        let agree = |a: Option<u64>, b: Option<u64>| a.is_none() || b.is_none() || a == b;
        self.list == other.list
            && self.resource_type == other.resource_type
            && agree(self.count, other.count)
            && agree(self.size, other.size)
    }
}

/// A file URL's path, without scheme, host, query or fragment (a refresh may
/// sign or version its links anew).
pub(crate) fn url_path(url: &str) -> &str {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.find("://") {
        Some(i) => no_query[i + 3..].find('/').map_or("/", |p| &no_query[i + 3 + p..]),
        None => no_query,
    }
}

/// For each file of `old`, the index of the same file in `fresh`: the one at
/// the same URL path that could be it; failing that, the only one of its list
/// and type that could be it. Each fresh file is taken once. O(n log n) but
/// for the fallback, which scans the files of one list and type.
pub(crate) fn match_files(old: &[Identity<'_>], fresh: &[Identity<'_>]) -> Vec<Option<usize>> {
    fn key<'k>(f: &Identity<'k>) -> (u8, Option<&'k str>, &'k str) {
        (f.list, f.resource_type, f.path)
    }
    let mut order: Vec<usize> = (0..fresh.len()).collect();
    order.sort_by_key(|&j| key(&fresh[j]));
    let keys: Vec<_> = order.iter().map(|&j| key(&fresh[j])).collect();
    let mut taken = vec![false; fresh.len()];
    let mut out = vec![None; old.len()];
    let mut unmatched = Vec::new();
    for (i, o) in old.iter().enumerate() {
        let k = key(o);
        let start = keys.partition_point(|x| *x < k);
        let hit = (start..keys.len())
            .take_while(|&p| keys[p] == k)
            .map(|p| order[p])
            .find(|&j| !taken[j] && fresh[j].could_be(o));
        match hit {
            Some(j) => {
                taken[j] = true;
                out[i] = Some(j);
            }
            None => unmatched.push(i),
        }
    }
    // A path that changed: only a file that is the one candidate of its kind is surely it.
    for i in unmatched {
        let o = &old[i];
        let start = keys.partition_point(|x| (x.0, x.1) < (o.list, o.resource_type));
        let mut candidates = (start..keys.len())
            .take_while(|&p| (keys[p].0, keys[p].1) == (o.list, o.resource_type))
            .map(|p| order[p])
            .filter(|&j| !taken[j] && fresh[j].could_be(o));
        if let (Some(j), None) = (candidates.next(), candidates.next()) {
            taken[j] = true;
            out[i] = Some(j);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(ty: &'a str, url: &'a str, count: Option<u64>) -> Identity<'a> {
        Identity::new(0, Some(ty), count, None, url)
    }

    #[test]
    fn k6_matched_by_path_and_type_never_by_place() {
        let old = [
            id("Patient", "https://h/f/1", Some(3)),
            id("Observation", "https://h/f/2", None),
            id("Observation", "https://h/f/3", None),
        ];
        let fresh = [
            id("Observation", "https://h/f/3?sig=2", None),
            id("Observation", "https://h/f/2?sig=2", None),
            id("Patient", "https://h/f/1?sig=2", None),
        ];
        assert_eq!(match_files(&old, &fresh), [Some(2), Some(1), Some(0)]);
        // Another count is another file, whatever its path.
        let fresh = [id("Patient", "https://h/f/1", Some(4))];
        assert_eq!(match_files(&old[..1], &fresh), [None]);
        // New paths: only a type with one candidate is matched.
        let fresh = [
            id("Observation", "https://h/g/a", None),
            id("Observation", "https://h/g/b", None),
            id("Patient", "https://h/g/c", None),
        ];
        assert_eq!(match_files(&old, &fresh), [Some(2), None, None]);
    }

    #[test]
    fn paths_lose_host_query_and_fragment() {
        assert_eq!(url_path("https://h:8/a/b?x=1#y"), "/a/b");
        assert_eq!(url_path("https://h"), "/");
        assert_eq!(url_path("Binary/7?x"), "Binary/7");
    }
}
