//! The unit-primitive catalog: which services exist, which unit primitives
//! each add-on bundles with them, and when free access ends.
//!
//! Read from YAML in both shapes upstream writes, as written:
//!
//! - the service shape (`cloud_connector.yml`, `access_data.yml`): a
//!   `services` mapping, either at the top or under an environment key
//!   (`production:`, `defaults:`), with anchors and merge keys;
//! - the per-unit-primitive shape: one file per unit primitive (`name`,
//!   `cut_off_date`, `backend_services`, `add_ons`, …). Each becomes a
//!   service of its own name whose add-ons bundle just that primitive.
//!
//! A path may name a file or a directory (its `*.yml` / `*.yaml` files,
//! in name order). A service defined twice is an error, as is any value
//! that does not parse; every error carries its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The largest catalog file read (the catalog is configuration, not data).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A dotted version such as `16.8` or `17.1.2`, compared part by part
/// (`16.10` is newer than `16.9`; a missing part counts as 0).
#[derive(Clone, Debug)]
pub struct Version(Vec<u32>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// Parses `16.8`, `17.1.0`, `17` (a leading `v` and a `-pre`/`+build`
    /// suffix are allowed and ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+']).next().unwrap_or(s);
        if core.is_empty() {
            return None;
        }
        let parts = core
            .split('.')
            .map(|p| {
                if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect::<Option<Vec<u32>>>()?;
        (parts.len() <= 4).then_some(Self(parts))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// One service: what a token for it may carry and who may have one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The service's name (what `POST /v1/tokens/issue` names).
    pub name: String,
    /// The audiences of its tokens: the backend services that serve it.
    pub backends: Vec<String>,
    /// Free access ends at this Unix time; `None`: free for good.
    pub cut_off: Option<i64>,
    /// Callers older than this get nothing.
    pub min_version: Option<Version>,
    /// Callers older than this get no free access.
    pub min_version_for_free_access: Option<Version>,
    /// Add-on → the unit primitives it bundles with this service.
    pub bundled_with: BTreeMap<String, BTreeSet<String>>,
    /// License types the service is sold with (empty: any).
    pub license_types: BTreeSet<String>,
}

impl Service {
    /// Every unit primitive of the service, whichever add-on bundles it.
    pub fn all_unit_primitives(&self) -> BTreeSet<String> {
        self.bundled_with.values().flatten().cloned().collect()
    }
}

/// Every service of the configured catalog files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
    /// The files read (watched for reload).
    pub files: Vec<PathBuf>,
}

/// A catalog that did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Catalog {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Every service, by name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// Loads every path (files, or directories of `*.yml`/`*.yaml`).
    /// `environment` picks the section of a service-shape file that keeps
    /// its services under environment keys (`production`, falling back to
    /// `defaults`). All errors are returned, not just the first.
    pub fn load(paths: &[PathBuf], environment: &str) -> Result<Self, Vec<CatalogError>> {
        let mut catalog = Self::default();
        let mut errors = Vec::new();
        let mut origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in paths {
            let files = match expand(path) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for file in files {
                let text = match read(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                catalog.files.push(file.clone());
                match parse_file(&file, &text, environment) {
                    Ok(services) => {
                        for (service, line) in services {
                            if let Some(first) = origin.get(&service.name) {
                                errors.push(CatalogError {
                                    file: file.clone(),
                                    line,
                                    message: format!(
                                        "service {:?} is already defined in {}",
                                        service.name,
                                        first.display()
                                    ),
                                });
                                continue;
                            }
                            origin.insert(service.name.clone(), file.clone());
                            catalog.services.insert(service.name.clone(), service);
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Parses one document (for tests and the fuzz target).
    pub fn from_str(name: &str, text: &str, environment: &str) -> Result<Self, Vec<CatalogError>> {
        let services = parse_file(Path::new(name), text, environment)?;
        let mut catalog = Self::default();
        for (s, line) in services {
            if catalog.services.contains_key(&s.name) {
                return Err(vec![CatalogError {
                    file: name.into(),
                    line,
                    message: format!("service {:?} is defined twice", s.name),
                }]);
            }
            catalog.services.insert(s.name.clone(), s);
        }
        Ok(catalog)
    }
}

fn expand(path: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let err = |m: String| CatalogError {
        file: path.to_owned(),
        line: None,
        message: m,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read the catalog: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(format!("cannot list the catalog directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    Ok(files)
}

fn read(file: &Path) -> Result<String, CatalogError> {
    let err = |m: String| CatalogError {
        file: file.to_owned(),
        line: None,
        message: m,
    };
    let meta = std::fs::metadata(file).map_err(|e| err(format!("cannot read the catalog: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!(
            "the catalog file is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    std::fs::read_to_string(file).map_err(|e| err(format!("cannot read the catalog: {e}")))
}

/// The service shape's entry for one service.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    backend: Option<Spanned<String>>,
    cut_off_date: Option<Spanned<String>>,
    min_gitlab_version: Option<Spanned<String>>,
    min_gitlab_version_for_free_access: Option<Spanned<String>>,
    #[serde(default)]
    bundled_with: BTreeMap<String, RawBundle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    #[serde(default)]
    unit_primitives: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawSection {
    services: Option<BTreeMap<String, Spanned<RawService>>>,
}

/// One file of the per-unit-primitive shape. Descriptive fields upstream
/// writes are accepted and ignored; anything else is a typo.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnitPrimitive {
    name: Spanned<String>,
    cut_off_date: Option<Spanned<String>>,
    min_gitlab_version: Option<Spanned<String>>,
    min_gitlab_version_for_free_access: Option<Spanned<String>>,
    #[serde(default)]
    backend_services: Vec<Spanned<String>>,
    #[serde(default)]
    add_ons: Vec<Spanned<String>>,
    #[serde(default)]
    license_types: Vec<String>,
    #[serde(rename = "description")]
    _description: Option<String>,
    #[serde(rename = "group")]
    _group: Option<String>,
    #[serde(rename = "feature_category")]
    _feature_category: Option<String>,
    #[serde(rename = "documentation_url")]
    _documentation_url: Option<String>,
    #[serde(rename = "introduced_by_url")]
    _introduced_by_url: Option<String>,
    #[serde(rename = "unit_primitive_issue_url")]
    _unit_primitive_issue_url: Option<String>,
    #[serde(rename = "deprecated_by_url")]
    _deprecated_by_url: Option<String>,
    #[serde(rename = "deprecation_message")]
    _deprecation_message: Option<String>,
}

fn line_of<T>(s: &Spanned<T>) -> Option<u32> {
    u32::try_from(s.defined.line()).ok().filter(|l| *l > 0)
}

/// What a YAML error says, without the rendered source excerpt.
fn yaml_error(file: &Path, e: &serde_saphyr::Error) -> CatalogError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line L column C: message" → "message" (the line is kept apart)
    let message = first
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(first, |(_, m)| m);
    CatalogError {
        file: file.to_owned(),
        line: e
            .location()
            .and_then(|l| u32::try_from(l.line()).ok())
            .filter(|l| *l > 0),
        message: format!("invalid catalog: {message}"),
    }
}

fn parse_file(
    file: &Path,
    text: &str,
    environment: &str,
) -> Result<Vec<(Service, Option<u32>)>, Vec<CatalogError>> {
    let top: BTreeMap<String, serde::de::IgnoredAny> = match serde_saphyr::from_str(text) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => return Err(vec![yaml_error(file, &e)]),
    };
    let err = |line: Option<u32>, m: String| CatalogError {
        file: file.to_owned(),
        line,
        message: m,
    };
    if top.contains_key("name") {
        let up: RawUnitPrimitive = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
        return unit_primitive(file, up).map(|s| vec![s]);
    }
    // the service shape: `services` at the top, else under the environment
    let section = if top.contains_key("services") {
        let s: RawSection = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
        s.services
    } else {
        let wanted = [environment, "defaults"]
            .into_iter()
            .find(|k| top.contains_key(*k));
        let Some(key) = wanted else {
            return Err(vec![err(
                Some(1),
                format!(
                    "no `services` mapping: expected one at the top, under `{environment}:` or under `defaults:` \
                     (or a per-unit-primitive file with `name:`)"
                ),
            )]);
        };
        let mut all: BTreeMap<String, RawSection> =
            serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(file, &e)])?;
        all.remove(key).and_then(|s| s.services)
    };
    let Some(services) = section else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, raw) in services {
        let line = line_of(&raw);
        match service(file, &name, line, raw.value) {
            Ok(s) => out.push((s, line)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn check_name(file: &Path, what: &str, name: &str, line: Option<u32>) -> Result<String, CatalogError> {
    let v = name.trim();
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(CatalogError {
            file: file.to_owned(),
            line,
            message: format!("{what} {name:?} must be 1 to 128 letters, digits, `_`, `-` or `.`"),
        })
    }
}

fn version(file: &Path, key: &str, v: &Option<Spanned<String>>) -> Result<Option<Version>, CatalogError> {
    let Some(v) = v else { return Ok(None) };
    Version::parse(&v.value).map(Some).ok_or_else(|| CatalogError {
        file: file.to_owned(),
        line: line_of(v),
        message: format!("{key} {:?} is not a version such as 17.1", v.value),
    })
}

fn cut_off(file: &Path, v: &Option<Spanned<String>>) -> Result<Option<i64>, CatalogError> {
    let Some(v) = v else { return Ok(None) };
    parse_date(&v.value).map(Some).ok_or_else(|| CatalogError {
        file: file.to_owned(),
        line: line_of(v),
        message: format!(
            "cut_off_date {:?} is not a date such as `2024-7-15 00:00:00 UTC` or `2024-07-15T00:00:00+00:00`",
            v.value
        ),
    })
}

/// The cut-off date and minimum versions both shapes share, into `s`.
fn timing(
    file: &Path,
    cut_off_date: &Option<Spanned<String>>,
    min_version: &Option<Spanned<String>>,
    min_version_for_free_access: &Option<Spanned<String>>,
    s: &mut Service,
) -> Result<(), CatalogError> {
    s.cut_off = cut_off(file, cut_off_date)?;
    s.min_version = version(file, "min_gitlab_version", min_version)?;
    s.min_version_for_free_access = version(
        file,
        "min_gitlab_version_for_free_access",
        min_version_for_free_access,
    )?;
    Ok(())
}

fn service(
    file: &Path,
    name: &str,
    line: Option<u32>,
    raw: RawService,
) -> Result<Service, Vec<CatalogError>> {
    let mut errors = Vec::new();
    let mut keep = |r: Result<(), CatalogError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    let mut s = Service {
        name: String::new(),
        backends: Vec::new(),
        cut_off: None,
        min_version: None,
        min_version_for_free_access: None,
        bundled_with: BTreeMap::new(),
        license_types: BTreeSet::new(),
    };
    keep(check_name(file, "service", name, line).map(|n| s.name = n));
    if let Some(b) = &raw.backend {
        keep(check_name(file, "backend", &b.value, line_of(b)).map(|b| s.backends.push(b)));
    }
    keep(timing(
        file,
        &raw.cut_off_date,
        &raw.min_gitlab_version,
        &raw.min_gitlab_version_for_free_access,
        &mut s,
    ));
    for (add_on, bundle) in raw.bundled_with {
        let ups = s.bundled_with.entry(add_on).or_default();
        for up in &bundle.unit_primitives {
            keep(
                check_name(file, "unit primitive", &up.value, line_of(up)).map(|u| {
                    ups.insert(u);
                }),
            );
        }
    }
    if errors.is_empty() { Ok(s) } else { Err(errors) }
}

fn unit_primitive(file: &Path, raw: RawUnitPrimitive) -> Result<(Service, Option<u32>), Vec<CatalogError>> {
    let mut errors = Vec::new();
    let line = line_of(&raw.name);
    let name = check_name(file, "unit primitive", &raw.name.value, line).map_err(|e| vec![e])?;
    let mut s = Service {
        name: name.clone(),
        backends: Vec::new(),
        cut_off: None,
        min_version: None,
        min_version_for_free_access: None,
        bundled_with: BTreeMap::new(),
        license_types: raw.license_types.iter().map(|l| l.trim().to_owned()).collect(),
    };
    let mut keep = |r: Result<(), CatalogError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    for b in &raw.backend_services {
        keep(check_name(file, "backend service", &b.value, line_of(b)).map(|b| s.backends.push(b)));
    }
    for a in &raw.add_ons {
        keep(check_name(file, "add-on", &a.value, line_of(a)).map(|a| {
            s.bundled_with.entry(a).or_default().insert(name.clone());
        }));
    }
    keep(timing(
        file,
        &raw.cut_off_date,
        &raw.min_gitlab_version,
        &raw.min_gitlab_version_for_free_access,
        &mut s,
    ));
    if errors.is_empty() {
        Ok((s, line))
    } else {
        Err(errors)
    }
}

/// Parses upstream's dates: `2024-7-15 00:00:00 UTC` (one-digit month and
/// day allowed), `2024-07-15T00:00:00+00:00`, `2024-07-15T00:00:00Z`, or a
/// bare `2024-07-15` (midnight UTC). Returns Unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&m) || day < 1 || day > days_in_month(y, m) {
        return None;
    }
    let (time, zone) = match rest.find(['+', '-', 'Z', ' ']) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let mut secs = 0;
    if !time.is_empty() {
        let mut t = time.split(':');
        let (h, mi) = (num(t.next()?, 2)?, num(t.next()?, 2)?);
        let sec = match t.next() {
            Some(x) => num(x.split('.').next()?, 2)?,
            None => 0,
        };
        if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        secs = h * 3600 + mi * 60 + sec;
    }
    let offset = match zone {
        "" | "UTC" | "Z" | "+00:00" | "-00:00" | "+0000" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 6 && &z[3..4] == ":" => {
            let h = num(&z[1..3], 2)?;
            let m = num(&z[4..6], 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if z.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, m, day) * 86_400 + secs - offset)
}

fn num(s: &str, max_len: usize) -> Option<i64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_upstream_forms() {
        assert_eq!(parse_date("2024-7-15 00:00:00 UTC"), Some(1_721_001_600));
        assert_eq!(parse_date("2024-07-15T00:00:00+00:00"), Some(1_721_001_600));
        assert_eq!(parse_date("2024-07-15T02:00:00+02:00"), Some(1_721_001_600));
        assert_eq!(parse_date("2024-07-15"), Some(1_721_001_600));
        assert_eq!(parse_date("2024-1-1 00:00:00 UTC"), Some(1_704_067_200));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1));
        for bad in [
            "",
            "2024-13-01",
            "2024-02-30",
            "2023-02-29",
            "24-1-1x",
            "2024-1-1 25:00:00 UTC",
            "2024-1-1 00:00:00 CEST",
            "tomorrow",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800));
        // centuries leap only every 400 years; thirty days hath September
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("2100-02-29"), None);
        assert_eq!(parse_date("2100-02-28"), Some(4_107_456_000));
        for short in ["2024-04-31", "2024-06-31", "2024-09-31", "2024-11-31"] {
            assert_eq!(parse_date(short), None, "{short}");
        }
        assert_eq!(parse_date("2024-11-30"), Some(1_732_924_800));
        assert_eq!(parse_date("2024-12-31"), Some(1_735_603_200));
    }

    #[test]
    fn times_of_day_and_offsets_are_exact_and_checked() {
        let midnight = 1_721_001_600; // 2024-07-15T00:00:00Z
        let at = |s: &str| parse_date(&format!("2024-07-15T{s}"));
        assert_eq!(at("01:02:03Z"), Some(midnight + 3_723));
        assert_eq!(at("23:59:59Z"), Some(midnight + 86_399));
        // a leap second is a second like another
        assert_eq!(at("23:59:60Z"), Some(midnight + 86_400));
        assert_eq!(at("00:59:00Z"), Some(midnight + 3_540));
        assert_eq!(at("10:00"), Some(midnight + 36_000));
        assert_eq!(at("00:00:00.250Z"), Some(midnight));
        // east of UTC is earlier in UTC, west is later
        assert_eq!(at("00:00:00+05:30"), Some(midnight - 19_800));
        assert_eq!(at("00:00:00-05:30"), Some(midnight + 19_800));
        assert_eq!(at("00:00:00+23:59"), Some(midnight - 86_340));
        for bad in [
            "24:00:00Z",
            "00:60:00Z",
            "00:00:61Z",
            "00:00:00:00Z",
            "00:00:00+24:00",
            "00:00:00+05:60",
            "00:00:00+0530",
            "00:00:00+05:30x",
            "00:00:00Z05:30",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        // at most four digits of year and two of month and day
        assert_eq!(parse_date("12024-07-15"), None);
        assert_eq!(parse_date("2024-007-15"), None);
        assert_eq!(parse_date("9999-12-31"), Some(253_402_214_400));
    }

    #[test]
    fn versions_compare_part_by_part() {
        let v = |s| Version::parse(s).expect(s);
        assert!(v("16.10") > v("16.9"));
        assert!(v("17.1") > v("17.0.9"));
        assert_eq!(v("17.1"), v("17.1.0"));
        assert!(v("17.1.0-pre") >= v("17.1"));
        for bad in ["", "x", "17..1", "1.2.3.4.5", "-1"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_service_shape_with_anchors_and_merge_keys() {
        let yaml = "defaults: &defaults\n  services:\n    duo_chat:\n      backend: gitlab-ai-gateway\n      cut_off_date: 2024-7-15 00:00:00 UTC\n      min_gitlab_version: 16.8\n      min_gitlab_version_for_free_access: 16.8\n      bundled_with:\n        duo_pro:\n          unit_primitives:\n            - duo_chat\n            - documentation_search\n\nproduction:\n  <<: *defaults\n";
        let c = Catalog::from_str("cc.yml", yaml, "production").expect("parses");
        let s = c.service("duo_chat").expect("duo_chat");
        assert_eq!(s.backends, vec!["gitlab-ai-gateway".to_owned()]);
        assert_eq!(s.cut_off, Some(1_721_001_600));
        assert_eq!(s.min_version, Version::parse("16.8"));
        assert_eq!(
            s.bundled_with["duo_pro"],
            ["duo_chat", "documentation_search"].map(String::from).into()
        );
        // an environment that is not there falls back to `defaults`
        assert!(
            Catalog::from_str("cc.yml", yaml, "staging")
                .expect("parses")
                .service("duo_chat")
                .is_some()
        );
    }

    #[test]
    fn the_per_unit_primitive_shape() {
        let yaml = "---\nname: duo_chat\ndescription: Chat\ncut_off_date: 2024-10-17T00:00:00+00:00\nmin_gitlab_version: '16.8'\ngroup: group::duo chat\nbackend_services:\n  - ai_gateway\nadd_ons:\n  - duo_pro\n  - duo_enterprise\nlicense_types:\n  - premium\n";
        let c = Catalog::from_str("duo_chat.yml", yaml, "production").expect("parses");
        let s = c.service("duo_chat").expect("duo_chat");
        assert_eq!(s.backends, vec!["ai_gateway".to_owned()]);
        assert_eq!(s.bundled_with.len(), 2);
        assert!(
            s.bundled_with
                .values()
                .all(|u| u.len() == 1 && u.contains("duo_chat"))
        );
        assert!(s.license_types.contains("premium"));
    }

    #[test]
    fn versions_parse_strictly_and_print_as_read() {
        let v = |s| Version::parse(s).expect(s);
        assert_ne!(v("1.2"), v("1.3"));
        assert_ne!(v("17"), v("17.0.1"));
        assert_eq!(v("v16.8.1-rc1").to_string(), "16.8.1");
        assert_eq!(v("17").to_string(), "17");
        // nine digits a part at most (ten could pass u32 and still be
        // no version anyone ships)
        assert_eq!(v("123456789.1").to_string(), "123456789.1");
        for bad in ["1234567890", "1.1234567890", "1.2a", "1.+2", " . "] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn catalogs_load_from_files_and_directories_and_report_every_error() {
        let dir = tempfile::tempdir().expect("dir");
        let lib = dir.path().join("services");
        std::fs::create_dir_all(lib.join("nested.yml")).expect("mkdir");
        write(&lib.join("a.yml"), "services:\n  alpha:\n    backend: one\n");
        write(&lib.join("b.yaml"), "services:\n  beta:\n    backend: two\n");
        // neither is read: not YAML by name, and a directory
        write(&lib.join("notes.txt"), "not: [yaml\n");
        let c = Catalog::load(std::slice::from_ref(&lib), "production").expect("loads");
        let names: Vec<&str> = c.services().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert_eq!(c.files, [lib.join("a.yml"), lib.join("b.yaml")]);
        assert_eq!(c.service("beta").expect("beta").backends, ["two"]);

        // a file named on its own is read whatever its name
        let single = dir.path().join("gamma.conf");
        write(&single, "services:\n  gamma:\n    backend: three\n");
        let c = Catalog::load(std::slice::from_ref(&single), "production").expect("loads");
        assert_eq!(c.services().count(), 1);

        // all the errors, each with its file
        let missing = dir.path().join("missing.yml");
        let e = Catalog::load(&[lib.clone(), missing.clone(), lib.join("a.yml")], "production")
            .expect_err("errors");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].file, missing);
        assert!(e[0].message.starts_with("cannot read the catalog"), "{e:?}");
        assert_eq!(e[1].file, lib.join("a.yml"));
        // the service's first line inside its definition
        assert_eq!(e[1].line, Some(3));
        assert_eq!(
            e[1].message,
            format!(
                "service \"alpha\" is already defined in {}",
                lib.join("a.yml").display()
            )
        );
        assert_eq!(
            e[1].to_string(),
            format!("{}:3: {}", lib.join("a.yml").display(), e[1].message)
        );
        assert_eq!(
            e[0].to_string(),
            format!("{}: {}", missing.display(), e[0].message)
        );
    }

    #[test]
    fn a_catalog_file_is_read_up_to_four_mebibytes() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("big.yml");
        let head = "services:\n  alpha:\n    backend: one\n#";
        let fill = |len: usize| format!("{head}{}\n", "x".repeat(len - head.len() - 1));
        write(&file, &fill(4 * 1024 * 1024));
        let c = Catalog::load(std::slice::from_ref(&file), "production").expect("at the limit");
        assert!(c.service("alpha").is_some());
        write(&file, &fill(4 * 1024 * 1024 + 1));
        let e = Catalog::load(std::slice::from_ref(&file), "production").expect_err("over");
        assert_eq!(e[0].message, "the catalog file is larger than 4194304 bytes");
    }

    #[test]
    fn errors_name_the_line() {
        let typo = "services:\n  x:\n    bundled_with:\n      duo_pro:\n        unit_primitive: [a]\n";
        let e = Catalog::from_str("c.yml", typo, "production").expect_err("typo");
        assert_eq!(e[0].line, Some(5), "{e:?}");
        assert!(e[0].message.contains("unit_primitive"), "{e:?}");
        let date = "services:\n  x:\n    cut_off_date: someday\n";
        let e = Catalog::from_str("c.yml", date, "production").expect_err("date");
        assert_eq!(e[0].line, Some(3), "{e:?}");
        assert!(e[0].message.contains("cut_off_date"), "{e:?}");
        let name = "services:\n  x:\n    bundled_with:\n      duo_pro:\n        unit_primitives: [\"a b\"]\n";
        let e = Catalog::from_str("c.yml", name, "production").expect_err("name");
        assert_eq!(e[0].line, Some(5), "{e:?}");
        let none = "something: else\n";
        assert!(Catalog::from_str("c.yml", none, "production").is_err());
        let broken = "services:\n  x: [\n";
        let e = Catalog::from_str("c.yml", broken, "production").expect_err("yaml");
        assert!(e[0].line.is_some(), "{e:?}");
    }
}
