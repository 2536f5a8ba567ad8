//! Deterministic fault specs: `key` or `key=value` items separated by `;`.
//!
//! A spec comes from `--faults` (server default) and/or a `/_f/{SPEC}` path prefix (per job;
//! its keys override the default's). Counters are "every Nth", never random.

/// A parsed fault spec. `None`/`false`/`0` means the fault is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// `ms=N`: job duration in milliseconds.
    pub ms: Option<u64>,
    /// `retry=N`: Retry-After seconds.
    pub retry: Option<u64>,
    /// `retry-date`: send Retry-After as an IMF-fixdate.
    pub retry_date: bool,
    /// `no-retry`: omit Retry-After.
    pub no_retry: bool,
    /// `e500=N`: every Nth status poll answers 500 + OperationOutcome `transient`.
    pub e500: u64,
    /// `e503html=N`: every Nth status poll answers 503 with an HTML gateway page.
    pub e503html: u64,
    /// `e429=N`: every Nth status poll answers 429 + Retry-After seconds.
    pub e429: u64,
    /// `e429date=N`: every Nth status poll answers 429 + Retry-After HTTP-date.
    pub e429date: u64,
    /// `kick429=N`: the first N kick-offs carrying this spec answer 429 + Retry-After: 1.
    pub kick429: u64,
    /// `kick429ms=N`: the first N kick-offs carrying this spec answer 429 + a Retry-After that
    /// is an epoch time in milliseconds (now + `retry` seconds, default 2), as one real server does.
    pub kick429ms: u64,
    /// `reset`: the first download attempt of each file is reset mid-body.
    pub reset: bool,
    /// `gzbad`: the first gzip download attempt of each file is a truncated gzip stream.
    pub gzbad: bool,
    /// `gzcorrupt`: the first gzip download attempt of each file turns into
    /// invalid deflate data halfway (a complete, well-framed HTTP body).
    pub gzcorrupt: bool,
    /// `slow=BYTES_PER_SEC`: throttled file bodies.
    pub slow: u64,
    /// `cut=BYTES`: file bodies are aborted at encoded offsets BYTES, 2×BYTES, ... of each file,
    /// each offset once per file and encoding (issue 14).
    pub cut: u64,
    /// `norange`: no `Accept-Ranges`, `Range` ignored (always 200).
    pub norange: bool,
    /// `rangechange`: from the second request of a file on, its validators change (If-Range fails once).
    pub rangechange: bool,
    /// `conn=N`: more than N file downloads of a job in flight at once → 429 + `Retry-After: 1`.
    pub conn: u64,
    /// `relative`: relative Content-Location.
    pub relative: bool,
    /// `noloc`: `Location` instead of `Content-Location`.
    pub noloc: bool,
    /// `ooloc`: neither header; only the OperationOutcome diagnostics carries the URL.
    pub ooloc: bool,
    /// `never`: the job never completes.
    pub never: bool,
    /// `expire`: generation-0 file URLs answer 410; later manifests carry `g=1` URLs.
    pub expire: bool,
    /// `expireafter` (issue 19): each generation-0 file URL serves its first request only (which
    /// `cut`/`reset` may cut); later ones answer 410; later manifests carry `g=1` URLs.
    pub expireafter: bool,
    /// `fail`: the job ends in an error (dialect-appropriate form).
    pub fail: bool,
    /// `partial`: some types fail and are listed in the manifest's `error`.
    pub partial: bool,
    /// `errcount=N`: manifests list every `error` file with `count: N`, whatever its lines.
    pub errcount: Option<u64>,
    /// `count-excl-headers`: organized (`organizeOutputBy`) files' `count` excludes the header
    /// `Parameters` lines, as the HL7 reference server counts.
    pub count_excl_headers: bool,
    /// `queued=MS`: Medplum: no worker takes the job for its first MS ms (AsyncJob `accepted`).
    pub queued: Option<u64>,
    /// `ratelimit=N`: more than N status polls per second for a job answer 429.
    pub ratelimit: u64,
    /// `storage`: bulk files are served from the storage origin.
    pub storage: bool,
    /// `token503=N`: the first N token requests carrying this spec answer 503.
    pub token503: u64,
    /// `token-ttl=SECS`: lifetime of tokens issued at this spec's token endpoint.
    pub token_ttl: Option<u64>,
    /// `no-smart-config`: `.well-known/smart-configuration` answers 404.
    pub no_smart_config: bool,
    /// `reorder` (issue 19): every completed manifest after the first lists its entries in
    /// reverse order; no manifest has a `count`.
    pub reorder: bool,
    /// `changeafter` (issue 19): a continuation (`Range`/`If-Range`) of a file is answered 200
    /// with a second version of it (new validators, other bytes), served from then on.
    pub changeafter: bool,
    /// `refresh500[=N]` (issue 19): status GETs after the first completed manifest answer 500
    /// (the first N of them; `u64::MAX` = for ever).
    pub refresh500: u64,
    /// `refresh202` (issue 19): status GETs after the first completed manifest answer 202 for ever.
    pub refresh202: bool,
    /// `hugestatus=BYTES` (issue 19): the completed status answer is a streamed JSON body of BYTES bytes.
    pub hugestatus: u64,
    /// `hugeprogress=BYTES`: every running 202 carries a streamed JSON body of BYTES bytes.
    pub hugeprogress: u64,
    /// `signed` (issue 19): file URLs carry an S3-style presigned query; a wrong one → 403.
    pub signed: bool,
    /// `signedfail` (issue 19): `signed`, and every file request answers 500.
    pub signedfail: bool,
    /// `junklines` (issue 19): each output file is `hello`, `{not json}` and one Patient (count 3).
    pub junklines: bool,
    /// `cutlast` (issue 19): each output file's last line is cut in the middle; no `count`.
    pub cutlast: bool,
    /// `attachments=N` (issue 24, `/attach/fhir`): N more DocumentReferences, each with its own
    /// text attachment, alternately `Binary/att-bulk-{k}` and on the storage origin (benchmarks).
    pub attachments: u64,
    /// `attachbytes=B`: the size of each `attachments=N` attachment (default 4096).
    pub attachbytes: Option<u64>,
}

impl Faults {
    /// Parses a spec, returning a description of the first bad item on error.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        f.apply(spec)?;
        Ok(f)
    }

    /// Applies the items of `spec` on top of `self` (later keys win).
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let num = || -> Result<u64, String> {
                value
                    .ok_or_else(|| format!("fault `{key}` needs a value"))?
                    .parse::<u64>()
                    .map_err(|_| format!("fault `{key}` needs a non-negative integer"))
            };
            let flag = || -> Result<bool, String> {
                match value {
                    None => Ok(true),
                    Some(_) => Err(format!("fault `{key}` takes no value")),
                }
            };
            match key {
                "ms" => self.ms = Some(num()?),
                "retry" => self.retry = Some(num()?),
                "retry-date" => self.retry_date = flag()?,
                "no-retry" => self.no_retry = flag()?,
                "e500" => self.e500 = num()?,
                "e503html" => self.e503html = num()?,
                "e429" => self.e429 = num()?,
                "e429date" => self.e429date = num()?,
                "kick429" => self.kick429 = num()?,
                "kick429ms" => self.kick429ms = num()?,
                "reset" => self.reset = flag()?,
                "gzbad" => self.gzbad = flag()?,
                "gzcorrupt" => self.gzcorrupt = flag()?,
                "slow" => self.slow = num()?,
                "cut" => self.cut = num()?,
                "norange" => self.norange = flag()?,
                "rangechange" => self.rangechange = flag()?,
                "conn" => self.conn = num()?,
                "relative" => self.relative = flag()?,
                "noloc" => self.noloc = flag()?,
                "ooloc" => self.ooloc = flag()?,
                "never" => self.never = flag()?,
                "expire" => self.expire = flag()?,
                "expireafter" => self.expireafter = flag()?,
                "fail" => self.fail = flag()?,
                "partial" => self.partial = flag()?,
                "errcount" => self.errcount = Some(num()?),
                "count-excl-headers" => self.count_excl_headers = flag()?,
                "queued" => self.queued = Some(num()?),
                "ratelimit" => self.ratelimit = num()?,
                "storage" => self.storage = flag()?,
                "token503" => self.token503 = num()?,
                "token-ttl" => self.token_ttl = Some(num()?),
                "no-smart-config" => self.no_smart_config = flag()?,
                "reorder" => self.reorder = flag()?,
                "changeafter" => self.changeafter = flag()?,
                "refresh500" => self.refresh500 = if value.is_some() { num()? } else { u64::MAX },
                "refresh202" => self.refresh202 = flag()?,
                "hugestatus" => self.hugestatus = num()?,
                "hugeprogress" => self.hugeprogress = num()?,
                "signed" => self.signed = flag()?,
                "signedfail" => {
                    self.signedfail = flag()?;
                    self.signed |= self.signedfail;
                }
                "junklines" => self.junklines = flag()?,
                "cutlast" => self.cutlast = flag()?,
                "attachments" => self.attachments = num()?,
                "attachbytes" => self.attachbytes = Some(num()?),
                _ => return Err(format!("unknown fault `{key}`")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_overrides() {
        let mut f = Faults::parse("ms=300;e500=3;reset").unwrap();
        assert_eq!(f.ms, Some(300));
        assert_eq!(f.e500, 3);
        assert!(f.reset);
        f.apply("ms=5; storage").unwrap();
        assert_eq!(f.ms, Some(5));
        assert!(f.storage);
        f.apply("kick429ms=1;errcount=100;count-excl-headers;queued=5").unwrap();
        assert_eq!((f.kick429ms, f.errcount, f.count_excl_headers, f.queued), (1, Some(100), true, Some(5)));
        f.apply("token503=2;token-ttl=3;no-smart-config").unwrap();
        assert_eq!((f.token503, f.token_ttl, f.no_smart_config), (2, Some(3), true));
        // issue 14: the range and politeness faults.
        f.apply("cut=1000;norange;rangechange;conn=2").unwrap();
        assert_eq!((f.cut, f.norange, f.rangechange, f.conn), (1000, true, true, 2));
        // issue 19: the rare-path faults.
        f.apply("reorder;changeafter;refresh500;refresh202;hugestatus=1000;hugeprogress=10").unwrap();
        assert!(f.reorder && f.changeafter && f.refresh202);
        assert_eq!((f.refresh500, f.hugestatus, f.hugeprogress), (u64::MAX, 1000, 10));
        f.apply("refresh500=2;signedfail;junklines;cutlast;expireafter").unwrap();
        assert!(f.expireafter);
        assert_eq!(f.refresh500, 2);
        assert!(f.signed && f.signedfail && f.junklines && f.cutlast);
        f.apply("attachments=10;attachbytes=100").unwrap();
        assert_eq!((f.attachments, f.attachbytes), (10, Some(100)));
        assert!(Faults::parse("bogus").is_err());
        assert!(Faults::parse("e500=x").is_err());
        assert!(Faults::parse("reset=1").is_err());
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
    }
}
