//! SMART system scopes, v1 (`system/*.read`) and v2 (`system/Patient.rs`), and narrowing a
//! request to what a client is allowed.

/// Permission bits in v2 order: c r u d s.
const LETTERS: [(char, u8); 5] = [('c', 1), ('r', 2), ('u', 4), ('d', 8), ('s', 16)];
const READ: u8 = 2 | 16;
const WRITE: u8 = 1 | 4 | 8;
const ALL: u8 = READ | WRITE;

/// One `system/{Type|*}.{perm}[?query]` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    ty: String,
    perms: u8,
    v2: bool,
    query: Option<String>,
}

impl Scope {
    /// Parses one scope; `Err` says what is wrong with it.
    pub fn parse(s: &str) -> Result<Scope, String> {
        let Some((context, rest)) = s.split_once('/') else {
            return Err(format!("scope {s} is not a system/ resource scope (backend services grant only system/...)"));
        };
        if context != "system" {
            return Err(format!("scope {s}: backend services grant only system/ scopes, not {context}/"));
        }
        let Some((ty, perm)) = rest.split_once('.') else {
            return Err(format!(
                "scope {s}: expected system/Type.permission (e.g. system/*.read or system/Patient.rs)"
            ));
        };
        let type_ok = ty == "*"
            || (ty.starts_with(|c: char| c.is_ascii_uppercase()) && ty.chars().all(|c| c.is_ascii_alphanumeric()));
        if !type_ok {
            return Err(format!("scope {s}: {ty} is not a resource type or *"));
        }
        let (perm, query) = match perm.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (perm, None),
        };
        let v1 = match perm {
            "read" => Some(READ),
            "write" => Some(WRITE),
            "*" => Some(ALL),
            _ => None,
        };
        if let Some(perms) = v1 {
            if query.is_some() {
                return Err(format!("scope {s}: only v2 scopes (cruds) take a ?query"));
            }
            return Ok(Scope { ty: ty.to_string(), perms, v2: false, query });
        }
        let mut perms = 0u8;
        let mut next = 0usize;
        for c in perm.chars() {
            let Some(i) = LETTERS[next..].iter().position(|(l, _)| *l == c) else {
                return Err(format!(
                    "scope {s}: permission {perm} is neither v1 (read, write, *) nor v2 (letters of cruds, in that order)"
                ));
            };
            perms |= LETTERS[next + i].1;
            next += i + 1;
        }
        if perms == 0 {
            return Err(format!("scope {s}: no permission after the dot"));
        }
        Ok(Scope { ty: ty.to_string(), perms, v2: true, query })
    }

    /// Parses a space-separated list.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        s.split_whitespace().map(Scope::parse).collect()
    }

    /// The part of `self` that `allowed` permits, if any (in `self`'s syntax).
    fn within(&self, allowed: &Scope) -> Option<Scope> {
        let ty = if self.ty == "*" {
            allowed.ty.clone()
        } else if allowed.ty == "*" || allowed.ty == self.ty {
            self.ty.clone()
        } else {
            return None;
        };
        let perms = self.perms & allowed.perms;
        if perms == 0 {
            return None;
        }
        let query = self.query.clone().or_else(|| allowed.query.clone());
        // A v1 request narrowed to permissions v1 cannot spell (e.g. `r` alone) is answered in v2.
        let v2 = self.v2 || query.is_some() || !matches!(perms, READ | WRITE | ALL);
        Some(Scope { ty, perms, v2, query })
    }

    /// The scope's text.
    pub fn render(&self) -> String {
        let perm = if self.v2 {
            LETTERS.iter().filter(|(_, b)| self.perms & b != 0).map(|(l, _)| *l).collect()
        } else {
            match self.perms {
                READ => "read".to_string(),
                WRITE => "write".to_string(),
                _ => "*".to_string(),
            }
        };
        match &self.query {
            Some(q) => format!("system/{}.{perm}?{q}", self.ty),
            None => format!("system/{}.{perm}", self.ty),
        }
    }
}

/// What a client with `allowed` scopes (None = anything) gets for `requested`: the granted
/// scope string, or `None` when nothing requested is allowed.
pub fn grant(requested: &[Scope], allowed: Option<&[Scope]>) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        let parts: Vec<Scope> = match allowed {
            None => vec![r.clone()],
            Some(a) => a.iter().filter_map(|a| r.within(a)).collect(),
        };
        for p in parts {
            let text = p.render();
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(req: &str, allowed: Option<&str>) -> Option<String> {
        let a = allowed.map(|a| Scope::parse_list(a).unwrap());
        grant(&Scope::parse_list(req).unwrap(), a.as_deref())
    }

    // protocol J3: v1 and v2 syntax pass through; a narrower grant is answered.
    #[test]
    fn parse_and_narrow() {
        for ok in [
            "system/*.read",
            "system/Patient.read",
            "system/*.rs",
            "system/Patient.rs",
            "system/*.cruds",
            "system/Observation.rs?category=x",
            "system/*.*",
            "system/Patient.write",
        ] {
            assert_eq!(Scope::parse(ok).unwrap().render(), ok);
        }
        for bad in [
            "launch",
            "user/*.read",
            "patient/Patient.rs",
            "system/*.sr",
            "system/*.rr",
            "system/patient.read",
            "system/*",
            "system/*.read?x=1",
            "system/*.x",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(g("system/*.read", None).as_deref(), Some("system/*.read"));
        assert_eq!(g("system/*.read", Some("system/Patient.read")).as_deref(), Some("system/Patient.read"));
        assert_eq!(g("system/*.rs", Some("system/Patient.read")).as_deref(), Some("system/Patient.rs"));
        assert_eq!(g("system/*.read", Some("system/Patient.r")).as_deref(), Some("system/Patient.r"));
        assert_eq!(
            g("system/Patient.read system/Observation.read", Some("system/Patient.read")).as_deref(),
            Some("system/Patient.read")
        );
        assert_eq!(g("system/Observation.read", Some("system/Patient.read")), None);
        assert_eq!(g("system/*.write", Some("system/*.read")), None);
    }
}
