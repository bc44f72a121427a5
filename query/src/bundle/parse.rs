//! Reads a [`Node`] tree into a [`SourceBundle`], applying the bundle schema.

// Reader code uses the same short names throughout: `r` reader, `f` fields, `n` node, `p` path.
#![allow(clippy::many_single_char_names)]
// `Option<Option<T>>` is "absent" (Some(None)) versus "error already recorded" (None).
#![allow(clippy::option_option)]

use jiff::civil;

use super::{
    Amount, ApprovalsDecl, ArtifactDecl, BUNDLE_VERSION, CalendarDecl, CheckDecl, ConditionDecl,
    DateRangeDecl, Day, EmergencyDecl, EvidenceDecl, KindFilter, MAX_BUNDLE_BYTES, MAX_POLICIES,
    MatcherDecl, ObligationDecl, OverlayDecl, OverridesDecl, ParamDecl, ParamType, ParamValue,
    ParseErrors, PolicyDecl, Quantity, RequireDecl, SodRule, SourceBundle, Stricter,
    VocabularyDecl, VocabularyKey, WeeklyDecl, WindowDecl,
};
use crate::document::reader::{FieldError, Fields, Reader, Text, child, item};
use crate::document::{Format, Loc, Node, NodeKind, json, quote_for_message, yaml};
use crate::duration::Duration;
use crate::request::Field;

/// Longest string accepted in a bundle, in bytes.
const MAX_STRING_BYTES: usize = 8192;
/// Most entries in any list or mapping of a bundle (other than `policies`).
const MAX_ENTRIES: usize = 256;

pub(super) fn parse(text: &str, format: Format) -> Result<SourceBundle, ParseErrors> {
    let single = |message: String, loc: Loc| ParseErrors {
        errors: vec![FieldError {
            loc,
            path: String::new(),
            message,
        }],
    };
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(single(
            format!(
                "bundle too large: {} bytes (at most {MAX_BUNDLE_BYTES})",
                text.len()
            ),
            Loc::new(1, 1),
        ));
    }
    let parsed = match format {
        Format::Yaml => yaml::parse(text),
        Format::Json => json::parse(text),
    };
    let root = parsed.map_err(|e| {
        let what = match format {
            Format::Yaml => "invalid YAML",
            Format::Json => "invalid JSON",
        };
        single(format!("{what}: {}", e.message), e.loc)
    })?;
    let mut r = Reader::new(format, MAX_STRING_BYTES);
    let bundle = read_bundle(&mut r, &root);
    match bundle {
        Some(b) if r.errors.is_empty() => Ok(b),
        _ => {
            let mut errors = r.errors;
            if errors.is_empty() {
                errors.push(FieldError {
                    loc: root.loc,
                    path: String::new(),
                    message: "invalid bundle".to_owned(),
                });
            }
            errors.sort();
            errors.dedup();
            Err(ParseErrors { errors })
        }
    }
}

const TOP_FIELDS: &[&str] = &[
    "version",
    "name",
    "description",
    "settings",
    "roles",
    "vocabulary",
    "parameters",
    "calendars",
    "overlays",
    "policies",
];

fn read_bundle(r: &mut Reader, root: &Node) -> Option<SourceBundle> {
    if let NodeKind::Null = root.kind {
        r.error("", root.loc, "the bundle is empty".to_owned());
        return None;
    }
    let f = r.fields(root, "", TOP_FIELDS)?;
    // The version decides the schema: read it first and stop if it is not ours.
    let version_node = f.required(r, "version")?;
    let version = r.int(version_node, "version")?;
    if version != BUNDLE_VERSION {
        r.error(
            "version",
            version_node.loc,
            format!(
                "unsupported bundle version {version}; this build reads version {BUNDLE_VERSION}"
            ),
        );
        return None;
    }
    let name = f.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = opt_string(r, &f, "description");
    let strict = match f.get("settings") {
        None => Some(true),
        Some(n) => read_settings(r, n),
    };
    let roles = match f.get("roles") {
        None => Some(Vec::new()),
        Some(n) => r.name_list(n, "roles", MAX_ENTRIES),
    };
    let vocabulary = match f.get("vocabulary") {
        None => Some(Vec::new()),
        Some(n) => read_vocabulary(r, n),
    };
    let parameters = match f.get("parameters") {
        None => Some(Vec::new()),
        Some(n) => read_parameters(r, n),
    };
    let calendars = match f.get("calendars") {
        None => Some(Vec::new()),
        Some(n) => read_calendars(r, n),
    };
    let overlays = match f.get("overlays") {
        None => Some(Vec::new()),
        Some(n) => read_overlays(r, n, parameters.as_deref().unwrap_or(&[])),
    };
    let policies = f.required(r, "policies").and_then(|n| read_policies(r, n));
    Some(SourceBundle {
        format: r.format,
        name: name?,
        description: description?,
        strict: strict?,
        roles: roles?,
        vocabulary: vocabulary?,
        parameters: parameters?,
        calendars: calendars?,
        overlays: overlays?,
        policies: policies?,
    })
}

/// Reads optional string field `name`, defaulting to "".
fn opt_string(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<String> {
    match f.get(name) {
        None => Some(String::new()),
        Some(n) => r.string(n, &f.path_of(name)).map(|t| t.value),
    }
}

/// Reads optional boolean field `name`.
fn opt_bool(r: &mut Reader, f: &Fields<'_>, name: &str, default: bool) -> Option<bool> {
    match f.get(name) {
        None => Some(default),
        Some(n) => r.bool(n, &f.path_of(name)),
    }
}

/// Reads an optional list of names.
fn opt_names(r: &mut Reader, f: &Fields<'_>, name: &str) -> Option<Vec<Text>> {
    match f.get(name) {
        None => Some(Vec::new()),
        Some(n) => r.name_list(n, &f.path_of(name), MAX_ENTRIES),
    }
}

fn read_settings(r: &mut Reader, node: &Node) -> Option<bool> {
    let f = r.fields(node, "settings", &["strict"])?;
    opt_bool(r, &f, "strict", true)
}

/// Whether `s` is an identifier usable in paths: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128.
fn is_identifier(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Reads an identifier (policy, overlay, condition and calendar names).
fn identifier(r: &mut Reader, node: &Node, path: &str) -> Option<Text> {
    let t = r.string(node, path)?;
    if is_identifier(&t.value) {
        Some(t)
    } else {
        r.error(
            path,
            node.loc,
            format!(
                "{} is not a valid identifier (letters, digits, '.', '_' and '-', starting with a \
                 letter or digit, at most 128 characters)",
                quote_for_message(&t.value)
            ),
        );
        None
    }
}

/// Whether `s` is a parameter name: `[a-z_][a-z0-9_]*`, usable as `params.<name>` in CEL.
fn is_param_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn read_vocabulary(r: &mut Reader, node: &Node) -> Option<Vec<VocabularyDecl>> {
    let mut known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    known.extend(["evidence", "checks"]);
    let f = r.fields(node, "vocabulary", &known)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in f.entries {
        let vk = match key.name.as_str() {
            "evidence" => VocabularyKey::Evidence,
            "checks" => VocabularyKey::Checks,
            other => match Field::parse(other) {
                Some(field) => VocabularyKey::Field(field),
                None => continue, // already reported as an unknown field
            },
        };
        match r.name_list(value, &f.path_of(&key.name), MAX_ENTRIES) {
            Some(values) => out.push(VocabularyDecl { key: vk, values }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_parameters(r: &mut Reader, node: &Node) -> Option<Vec<ParamDecl>> {
    let entries = r.entries(node, "parameters")?;
    if entries.len() > MAX_ENTRIES {
        r.error(
            "parameters",
            node.loc,
            format!("too many parameters (at most {MAX_ENTRIES})"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let path = child("parameters", &key.name);
        if !is_param_name(&key.name) {
            r.error(
                &path,
                key.loc,
                format!(
                    "{} is not a valid parameter name (lowercase letters, digits and '_', \
                     not starting with a digit)",
                    quote_for_message(&key.name)
                ),
            );
            ok = false;
            continue;
        }
        let name = Text {
            value: key.name.clone(),
            loc: key.loc,
        };
        match read_parameter(r, value, &path, name) {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_parameter(r: &mut Reader, node: &Node, path: &str, name: Text) -> Option<ParamDecl> {
    let f = r.fields(
        node,
        path,
        &[
            "type",
            "default",
            "minimum",
            "maximum",
            "stricter",
            "description",
        ],
    )?;
    let param_type = f.required(r, "type").and_then(|n| {
        let s = r.choice(n, &f.path_of("type"), &ParamType::NAMES)?;
        Some(match s {
            "integer" => ParamType::Integer,
            "duration" => ParamType::Duration,
            "string" => ParamType::String,
            "strings" => ParamType::Strings,
            _ => ParamType::Boolean,
        })
    });
    let description = opt_string(r, &f, "description");
    let default_node = f.required(r, "default");
    let param_type = param_type?;
    let default_node = default_node?;
    let default = param_value(r, default_node, &f.path_of("default"), param_type);
    let ordered = matches!(param_type, ParamType::Integer | ParamType::Duration);
    let bound = |r: &mut Reader, field: &str| -> Option<Option<(i64, Loc)>> {
        let Some(n) = f.get(field) else {
            return Some(None);
        };
        let p = f.path_of(field);
        if !ordered {
            r.error(
                &p,
                n.loc,
                format!("only integer and duration parameters have a {field}"),
            );
            return None;
        }
        param_value(r, n, &p, param_type)?
            .ordinal()
            .map(|v| Some((v, n.loc)))
    };
    let minimum = bound(r, "minimum");
    let maximum = bound(r, "maximum");
    let stricter = match f.get("stricter") {
        None => Some(None),
        Some(n) => {
            let p = f.path_of("stricter");
            if ordered {
                r.choice(n, &p, &["higher", "lower"]).map(|s| {
                    Some(if s == "higher" {
                        Stricter::Higher
                    } else {
                        Stricter::Lower
                    })
                })
            } else {
                r.error(
                    &p,
                    n.loc,
                    "only integer and duration parameters have a stricter direction".to_owned(),
                );
                None
            }
        }
    };
    Some(ParamDecl {
        name,
        param_type,
        default: default?,
        default_loc: default_node.loc,
        minimum: minimum?,
        maximum: maximum?,
        stricter: stricter?,
        description: description?,
    })
}

/// Reads a value of parameter type `ty`.
pub(crate) fn param_value(
    r: &mut Reader,
    node: &Node,
    path: &str,
    ty: ParamType,
) -> Option<ParamValue> {
    match ty {
        ParamType::Integer => r.int(node, path).map(ParamValue::Integer),
        ParamType::Duration => duration(r, node, path).map(ParamValue::Duration),
        ParamType::String => r.string(node, path).map(|t| ParamValue::String(t.value)),
        ParamType::Strings => r
            .name_list(node, path, MAX_ENTRIES)
            .map(|v| ParamValue::Strings(v.into_iter().map(|t| t.value).collect())),
        ParamType::Boolean => r.bool(node, path).map(ParamValue::Boolean),
    }
}

fn duration(r: &mut Reader, node: &Node, path: &str) -> Option<Duration> {
    let t = r.string(node, path)?;
    match Duration::parse(&t.value) {
        Ok(d) => Some(d),
        Err(message) => {
            r.error(path, node.loc, message);
            None
        }
    }
}

/// Reads `{param: name}` if `node` is that form.
fn param_ref(r: &mut Reader, node: &Node, path: &str) -> Option<Option<Text>> {
    if let NodeKind::Map(_) = node.kind {
        let f = r.fields(node, path, &["param"])?;
        let n = f.required(r, "param")?;
        return r.name(n, &f.path_of("param")).map(Some);
    }
    Some(None)
}

/// Reads an integer written in place or `{param: name}`.
fn int_quantity(
    r: &mut Reader,
    node: &Node,
    path: &str,
    min: i64,
    max: i64,
) -> Option<Quantity<i64>> {
    if let Some(p) = param_ref(r, node, path)? {
        return Some(Quantity {
            amount: Amount::Param(p),
            loc: node.loc,
        });
    }
    if let NodeKind::Int(_) | NodeKind::Float(_) = node.kind {
        let v = r.int_in(node, path, min, max)?;
        return Some(Quantity {
            amount: Amount::Value(v),
            loc: node.loc,
        });
    }
    r.expected(path, node, "an integer");
    None
}

/// Reads a duration written in place or `{param: name}`.
fn duration_quantity(r: &mut Reader, node: &Node, path: &str) -> Option<Quantity<Duration>> {
    if let Some(p) = param_ref(r, node, path)? {
        return Some(Quantity {
            amount: Amount::Param(p),
            loc: node.loc,
        });
    }
    duration(r, node, path).map(|d| Quantity {
        amount: Amount::Value(d),
        loc: node.loc,
    })
}

fn read_calendars(r: &mut Reader, node: &Node) -> Option<Vec<CalendarDecl>> {
    let entries = r.entries(node, "calendars")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let path = child("calendars", &key.name);
        if !is_identifier(&key.name) {
            r.error(
                &path,
                key.loc,
                format!(
                    "{} is not a valid calendar name",
                    quote_for_message(&key.name)
                ),
            );
            ok = false;
            continue;
        }
        let name = Text {
            value: key.name.clone(),
            loc: key.loc,
        };
        match read_calendar(r, value, &path, name) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_calendar(r: &mut Reader, node: &Node, path: &str, name: Text) -> Option<CalendarDecl> {
    let f = r.fields(node, path, &["timezone", "description", "weekly", "dates"])?;
    let timezone = f
        .required(r, "timezone")
        .and_then(|n| r.name(n, &f.path_of("timezone")));
    let description = opt_string(r, &f, "description");
    let weekly = match f.get("weekly") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("weekly");
            r.bounded_list(n, &p, MAX_ENTRIES).and_then(|items| {
                collect(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| read_weekly(r, n, &item(&p, i))),
                )
            })
        }
    };
    let dates = match f.get("dates") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("dates");
            r.bounded_list(n, &p, MAX_ENTRIES).and_then(|items| {
                collect(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| read_date_range(r, n, &item(&p, i))),
                )
            })
        }
    };
    Some(CalendarDecl {
        name,
        timezone: timezone?,
        description: description?,
        weekly: weekly?,
        dates: dates?,
    })
}

/// Collects an iterator of options, evaluating every item (so all errors are recorded).
fn collect<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    let mut ok = true;
    for x in items {
        match x {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_weekly(r: &mut Reader, node: &Node, path: &str) -> Option<WeeklyDecl> {
    let f = r.fields(node, path, &["days", "start", "end"])?;
    let days = f.required(r, "days").and_then(|n| {
        let p = f.path_of("days");
        let items = r.bounded_list(n, &p, 7)?;
        let days = collect(items.iter().enumerate().map(|(i, d)| {
            let s = r.choice(d, &item(&p, i), &Day::NAMES)?;
            Day::ALL.iter().copied().find(|day| day.as_str() == s)
        }))?;
        if days.is_empty() {
            r.error(&p, n.loc, "must list at least one day".to_owned());
            return None;
        }
        Some(days)
    });
    let start = f
        .required(r, "start")
        .and_then(|n| time_of_day(r, n, &f.path_of("start"), false));
    let end = f
        .required(r, "end")
        .and_then(|n| time_of_day(r, n, &f.path_of("end"), true));
    let (days, start, end) = (days?, start?, end?);
    if end <= start {
        let p = f.path_of("end");
        let loc = f.get("end").map_or(f.loc, |n| n.loc);
        r.error(
            &p,
            loc,
            "must be later than start (split windows that cross midnight in two)".to_owned(),
        );
        return None;
    }
    Some(WeeklyDecl { days, start, end })
}

/// Reads `HH:MM` as minutes after midnight; `24:00` only when `allow_end_of_day`.
fn time_of_day(r: &mut Reader, node: &Node, path: &str, allow_end_of_day: bool) -> Option<u16> {
    let t = r.string(node, path)?;
    let parsed = (|| {
        let (h, m) = t.value.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        let ok = (h < 24 && m < 60) || (allow_end_of_day && h == 24 && m == 0);
        ok.then_some(h * 60 + m)
    })();
    if parsed.is_none() {
        let range = if allow_end_of_day {
            "00:00 to 24:00"
        } else {
            "00:00 to 23:59"
        };
        r.error(
            path,
            node.loc,
            format!(
                "expected a time of day \"HH:MM\" ({range}), got {}",
                quote_for_message(&t.value)
            ),
        );
    }
    parsed
}

fn read_date_range(r: &mut Reader, node: &Node, path: &str) -> Option<DateRangeDecl> {
    let f = r.fields(node, path, &["start", "end", "label"])?;
    let start = f
        .required(r, "start")
        .and_then(|n| civil_datetime(r, n, &f.path_of("start")));
    let end = f
        .required(r, "end")
        .and_then(|n| civil_datetime(r, n, &f.path_of("end")));
    let label = opt_string(r, &f, "label");
    let (start, end) = (start?, end?);
    if end <= start {
        let loc = f.get("end").map_or(f.loc, |n| n.loc);
        r.error(
            &f.path_of("end"),
            loc,
            "must be later than start".to_owned(),
        );
        return None;
    }
    Some(DateRangeDecl {
        start,
        end,
        label: label?,
        loc: node.loc,
    })
}

/// Reads `YYYY-MM-DDTHH:MM[:SS]` (a civil date and time, no offset).
fn civil_datetime(r: &mut Reader, node: &Node, path: &str) -> Option<civil::DateTime> {
    let t = r.string(node, path)?;
    let v = &t.value;
    let shaped = v.len() >= 16
        && v.as_bytes().get(10) == Some(&b'T')
        && v.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | 'T'));
    match v.parse::<civil::DateTime>() {
        Ok(dt) if shaped => Some(dt),
        _ => {
            r.error(
                path,
                node.loc,
                format!(
                    "expected a civil date and time \"YYYY-MM-DDTHH:MM\" (no offset: the calendar's \
                     time zone applies), got {}",
                    quote_for_message(v)
                ),
            );
            None
        }
    }
}

const MATCHER_HINT: &str = "a string, a list of alternatives, {glob: ...} or {not: ...}";

/// Reads a `when` mapping.
fn read_when(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<MatcherDecl>> {
    let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    let f = r.fields(node, path, &known)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in f.entries {
        let Some(field) = Field::parse(&key.name) else {
            continue;
        };
        match read_matcher(r, value, &f.path_of(&key.name), field, true) {
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_matcher(
    r: &mut Reader,
    node: &Node,
    path: &str,
    field: Field,
    allow_not: bool,
) -> Option<MatcherDecl> {
    let mut m = MatcherDecl {
        field,
        values: Vec::new(),
        globs: Vec::new(),
        negated: false,
        loc: node.loc,
    };
    match &node.kind {
        NodeKind::Str(_) => m.values.push(r.name(node, path)?),
        NodeKind::Seq(items) => {
            if items.len() > MAX_ENTRIES {
                r.error(
                    path,
                    node.loc,
                    format!("too many alternatives (at most {MAX_ENTRIES})"),
                );
                return None;
            }
            let mut ok = true;
            for (i, it) in items.iter().enumerate() {
                let p = item(path, i);
                match &it.kind {
                    NodeKind::Str(_) => match r.name(it, &p) {
                        Some(t) => m.values.push(t),
                        None => ok = false,
                    },
                    NodeKind::Map(_) => match read_glob(r, it, &p) {
                        Some(g) => m.globs.extend(g),
                        None => ok = false,
                    },
                    _ => {
                        r.expected(&p, it, "a string or {glob: ...}");
                        ok = false;
                    }
                }
            }
            if !ok {
                return None;
            }
        }
        NodeKind::Map(entries) => {
            let is_not = entries.iter().any(|(k, _)| k.name == "not");
            if is_not && allow_not {
                let f = r.fields(node, path, &["not"])?;
                let inner = f.get("not")?;
                let mut m = read_matcher(r, inner, &f.path_of("not"), field, false)?;
                m.negated = true;
                m.loc = node.loc;
                return Some(m);
            }
            if is_not {
                r.error(path, node.loc, "\"not\" cannot be nested".to_owned());
                return None;
            }
            m.globs = read_glob(r, node, path)?;
        }
        _ => {
            r.expected(path, node, MATCHER_HINT);
            return None;
        }
    }
    Some(m)
}

/// Reads `{glob: pattern}` or `{glob: [patterns]}`.
fn read_glob(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Text>> {
    let f = r.fields(node, path, &["glob"])?;
    let g = f.required(r, "glob")?;
    let p = f.path_of("glob");
    match &g.kind {
        NodeKind::Seq(_) => r.name_list(g, &p, MAX_ENTRIES),
        _ => r.name(g, &p).map(|t| vec![t]),
    }
}

fn read_overlays(r: &mut Reader, node: &Node, params: &[ParamDecl]) -> Option<Vec<OverlayDecl>> {
    let items = r.bounded_list(node, "overlays", MAX_ENTRIES)?;
    let overlays = collect(
        items
            .iter()
            .enumerate()
            .map(|(i, n)| read_overlay(r, n, &item("overlays", i), params)),
    )?;
    let mut ok = true;
    for (i, o) in overlays.iter().enumerate() {
        if overlays[..i].iter().any(|p| p.id.value == o.id.value) {
            r.error(
                &child(&item("overlays", i), "id"),
                o.id.loc,
                format!("duplicate overlay id {}", quote_for_message(&o.id.value)),
            );
            ok = false;
        }
    }
    ok.then_some(overlays)
}

fn read_overlay(
    r: &mut Reader,
    node: &Node,
    path: &str,
    params: &[ParamDecl],
) -> Option<OverlayDecl> {
    let f = r.fields(node, path, &["id", "description", "when", "set", "tighten"])?;
    let id = f
        .required(r, "id")
        .and_then(|n| identifier(r, n, &f.path_of("id")));
    let description = opt_string(r, &f, "description");
    let when = f
        .required(r, "when")
        .and_then(|n| read_when(r, n, &f.path_of("when")));
    let read_values = |r: &mut Reader, name: &str| -> Option<Vec<(Text, Option<ParamValue>)>> {
        let Some(n) = f.get(name) else {
            return Some(Vec::new());
        };
        let p = f.path_of(name);
        let entries = r.entries(n, &p)?;
        collect(entries.iter().map(|(k, v)| {
            let key = Text {
                value: k.name.clone(),
                loc: k.loc,
            };
            match params.iter().find(|d| d.name.value == k.name) {
                // Unknown names are reported by the compiler, which knows all parameters.
                None => Some((key, None)),
                Some(d) => {
                    param_value(r, v, &child(&p, &k.name), d.param_type).map(|v| (key, Some(v)))
                }
            }
        }))
    };
    let set = read_values(r, "set");
    let tighten = read_values(r, "tighten");
    Some(OverlayDecl {
        id: id?,
        description: description?,
        when: when?,
        set: set?,
        tighten: tighten?,
    })
}

fn read_policies(r: &mut Reader, node: &Node) -> Option<Vec<PolicyDecl>> {
    let items = r.bounded_list(node, "policies", MAX_POLICIES)?;
    let policies = collect(
        items
            .iter()
            .enumerate()
            .map(|(i, n)| read_policy(r, n, &item("policies", i))),
    )?;
    let mut ok = true;
    for (i, p) in policies.iter().enumerate() {
        if let Some(first) = policies[..i].iter().position(|q| q.id.value == p.id.value) {
            r.error(
                &child(&item("policies", i), "id"),
                p.id.loc,
                format!(
                    "duplicate policy id {} (first declared at policies[{first}])",
                    quote_for_message(&p.id.value)
                ),
            );
            ok = false;
        }
    }
    ok.then_some(policies)
}

const POLICY_FIELDS: &[&str] = &[
    "id",
    "description",
    "when",
    "require",
    "overrides",
    "honour_exceptions",
    "obligations",
];

fn read_policy(r: &mut Reader, node: &Node, path: &str) -> Option<PolicyDecl> {
    let f = r.fields(node, path, POLICY_FIELDS)?;
    let id = f
        .required(r, "id")
        .and_then(|n| identifier(r, n, &f.path_of("id")));
    let description = opt_string(r, &f, "description");
    let when = match f.get("when") {
        None => Some(Vec::new()),
        Some(n) => read_when(r, n, &f.path_of("when")),
    };
    let require = match f.get("require") {
        None => Some(RequireDecl::default()),
        Some(n) => read_require(r, n, &f.path_of("require")),
    };
    let overrides = match f.get("overrides") {
        None => Some(None),
        Some(n) => read_overrides(r, n, &f.path_of("overrides")).map(Some),
    };
    let honour_exceptions = opt_bool(r, &f, "honour_exceptions", false);
    let obligations = match f.get("obligations") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("obligations");
            r.bounded_list(n, &p, MAX_ENTRIES).and_then(|items| {
                collect(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| read_obligation(r, n, &item(&p, i))),
                )
            })
        }
    };
    Some(PolicyDecl {
        id: id?,
        description: description?,
        when: when?,
        require: require?,
        require_loc: f.get("require").map(|n| n.loc),
        overrides: overrides?,
        honour_exceptions: honour_exceptions?,
        obligations: obligations?,
    })
}

const REQUIRE_FIELDS: &[&str] = &[
    "approvals",
    "separation_of_duties",
    "evidence",
    "checks",
    "artifact",
    "window",
    "conditions",
];

fn read_require(r: &mut Reader, node: &Node, path: &str) -> Option<RequireDecl> {
    let f = r.fields(node, path, REQUIRE_FIELDS)?;
    let approvals = match f.get("approvals") {
        None => Some(None),
        Some(n) => read_approvals(r, n, &f.path_of("approvals")).map(Some),
    };
    let sod = match f.get("separation_of_duties") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("separation_of_duties");
            r.bounded_list(n, &p, MAX_ENTRIES).and_then(|items| {
                let rules = collect(items.iter().enumerate().map(|(i, n)| {
                    let ip = item(&p, i);
                    let s = r.choice(n, &ip, &SodRule::NAMES)?;
                    let rule = SodRule::ALL.iter().copied().find(|x| x.as_str() == s)?;
                    Some((rule, n.loc, ip))
                }))?;
                let mut out: Vec<(SodRule, Loc)> = Vec::new();
                for (rule, loc, ip) in rules {
                    if out.iter().any(|(x, _)| *x == rule) {
                        r.error(&ip, loc, format!("duplicate entry \"{}\"", rule.as_str()));
                        return None;
                    }
                    out.push((rule, loc));
                }
                Some(out)
            })
        }
    };
    let evidence = match f.get("evidence") {
        None => Some(None),
        Some(n) => {
            let p = f.path_of("evidence");
            match param_ref(r, n, &p) {
                Some(Some(param)) => Some(Some((EvidenceDecl::Param(param), n.loc))),
                Some(None) => r
                    .name_list(n, &p, MAX_ENTRIES)
                    .map(|v| Some((EvidenceDecl::Names(v), n.loc))),
                None => None,
            }
        }
    };
    let checks = match f.get("checks") {
        None => Some(Vec::new()),
        Some(n) => read_checks(r, n, &f.path_of("checks")),
    };
    let artifact = match f.get("artifact") {
        None => Some(None),
        Some(n) => read_artifact(r, n, &f.path_of("artifact")).map(Some),
    };
    let window = match f.get("window") {
        None => Some(None),
        Some(n) => read_window(r, n, &f.path_of("window")).map(Some),
    };
    let conditions = match f.get("conditions") {
        None => Some(Vec::new()),
        Some(n) => read_conditions(r, n, &f.path_of("conditions")),
    };
    Some(RequireDecl {
        approvals: approvals?,
        separation_of_duties: sod?,
        evidence: evidence?,
        checks: checks?,
        artifact: artifact?,
        window: window?,
        conditions: conditions?,
    })
}

fn read_approvals(r: &mut Reader, node: &Node, path: &str) -> Option<ApprovalsDecl> {
    let f = r.fields(
        node,
        path,
        &[
            "min",
            "roles",
            "kind",
            "exclude_requester",
            "exclude_releaser",
            "require_rationale",
        ],
    )?;
    let min = match f.get("min") {
        None => Some(Quantity {
            amount: Amount::Value(1),
            loc: node.loc,
        }),
        Some(n) => int_quantity(r, n, &f.path_of("min"), 0, i64::MAX),
    };
    let roles = match f.get("roles") {
        None => Some(Vec::new()),
        Some(n) => {
            let p = f.path_of("roles");
            r.entries(n, &p).and_then(|entries| {
                collect(entries.iter().map(|(k, v)| {
                    let kp = child(&p, &k.name);
                    if let Some(problem) = crate::document::reader::name_problem(&k.name) {
                        r.error(&kp, k.loc, problem);
                        return None;
                    }
                    let q = int_quantity(r, v, &kp, 1, i64::MAX)?;
                    Some((
                        Text {
                            value: k.name.clone(),
                            loc: k.loc,
                        },
                        q,
                    ))
                }))
            })
        }
    };
    let kind = match f.get("kind") {
        None => Some(KindFilter::Any),
        Some(n) => r
            .choice(n, &f.path_of("kind"), &KindFilter::NAMES)
            .map(|s| match s {
                "pr" => KindFilter::Pr,
                "production" => KindFilter::Production,
                _ => KindFilter::Any,
            }),
    };
    let exclude_requester = opt_bool(r, &f, "exclude_requester", true);
    let exclude_releaser = opt_bool(r, &f, "exclude_releaser", false);
    let require_rationale = opt_bool(r, &f, "require_rationale", false);
    Some(ApprovalsDecl {
        min: min?,
        roles: roles?,
        kind: kind?,
        exclude_requester: exclude_requester?,
        exclude_releaser: exclude_releaser?,
        require_rationale: require_rationale?,
        loc: node.loc,
    })
}

fn read_checks(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<CheckDecl>> {
    let items = r.bounded_list(node, path, MAX_ENTRIES)?;
    let checks = collect(items.iter().enumerate().map(|(i, n)| {
        let p = item(path, i);
        match &n.kind {
            NodeKind::Str(_) => r.name(n, &p).map(|name| CheckDecl {
                name,
                allow_na: false,
            }),
            NodeKind::Map(_) => {
                let f = r.fields(n, &p, &["name", "allow_na"])?;
                let name = f
                    .required(r, "name")
                    .and_then(|x| r.name(x, &f.path_of("name")));
                let allow_na = opt_bool(r, &f, "allow_na", false);
                Some(CheckDecl {
                    name: name?,
                    allow_na: allow_na?,
                })
            }
            _ => {
                r.expected(&p, n, "a check name or {name: ..., allow_na: ...}");
                None
            }
        }
    }))?;
    for (i, c) in checks.iter().enumerate() {
        if checks[..i].iter().any(|d| d.name.value == c.name.value) {
            r.error(
                &item(path, i),
                c.name.loc,
                format!("duplicate check {}", quote_for_message(&c.name.value)),
            );
            return None;
        }
    }
    Some(checks)
}

fn read_artifact(r: &mut Reader, node: &Node, path: &str) -> Option<ArtifactDecl> {
    let f = r.fields(node, path, &["same_digest_in", "immutable_version"])?;
    let same_digest_in = opt_names(r, &f, "same_digest_in");
    let immutable_version = opt_bool(r, &f, "immutable_version", false);
    Some(ArtifactDecl {
        same_digest_in: same_digest_in?,
        immutable_version: immutable_version?,
    })
}

fn read_window(r: &mut Reader, node: &Node, path: &str) -> Option<WindowDecl> {
    let f = r.fields(node, path, &["calendar", "freeze", "emergency"])?;
    let calendar = match f.get("calendar") {
        None => Some(None),
        Some(n) => r.name(n, &f.path_of("calendar")).map(Some),
    };
    let freeze = opt_names(r, &f, "freeze");
    let emergency = match f.get("emergency") {
        None => Some(None),
        Some(n) => {
            let p = f.path_of("emergency");
            r.fields(n, &p, &["approver_roles", "review_within"])
                .and_then(|e| {
                    let approver_roles = opt_names(r, &e, "approver_roles");
                    let review_within = e
                        .required(r, "review_within")
                        .and_then(|x| duration_quantity(r, x, &e.path_of("review_within")));
                    Some(Some(EmergencyDecl {
                        approver_roles: approver_roles?,
                        review_within: review_within?,
                    }))
                })
        }
    };
    let (calendar, freeze, emergency) = (calendar?, freeze?, emergency?);
    if calendar.is_none() && freeze.is_empty() {
        r.error(
            path,
            node.loc,
            "a window needs a calendar, a freeze list, or both".to_owned(),
        );
        return None;
    }
    Some(WindowDecl {
        calendar,
        freeze,
        emergency,
        loc: node.loc,
    })
}

fn read_conditions(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<ConditionDecl>> {
    let items = r.bounded_list(node, path, MAX_ENTRIES)?;
    let conditions = collect(items.iter().enumerate().map(|(i, n)| {
        let p = item(path, i);
        let f = r.fields(n, &p, &["id", "cel", "message"])?;
        let id = f
            .required(r, "id")
            .and_then(|x| identifier(r, x, &f.path_of("id")));
        let cel = f
            .required(r, "cel")
            .and_then(|x| r.non_empty_string(x, &f.path_of("cel")));
        let message = match f.get("message") {
            None => Some(None),
            Some(x) => r
                .non_empty_string(x, &f.path_of("message"))
                .map(|t| Some(t.value)),
        };
        Some(ConditionDecl {
            id: id?,
            cel: cel?,
            message: message?,
        })
    }))?;
    for (i, c) in conditions.iter().enumerate() {
        if conditions[..i].iter().any(|d| d.id.value == c.id.value) {
            r.error(
                &child(&item(path, i), "id"),
                c.id.loc,
                format!("duplicate condition id {}", quote_for_message(&c.id.value)),
            );
            return None;
        }
    }
    Some(conditions)
}

fn read_overrides(r: &mut Reader, node: &Node, path: &str) -> Option<OverridesDecl> {
    let f = r.fields(
        node,
        path,
        &["allowed_roles", "require_justification", "max_duration"],
    )?;
    let allowed_roles = f.required(r, "allowed_roles").and_then(|n| {
        let p = f.path_of("allowed_roles");
        let roles = r.name_list(n, &p, MAX_ENTRIES)?;
        if roles.is_empty() {
            r.error(
                &p,
                n.loc,
                "must name at least one role (omit overrides to forbid them)".to_owned(),
            );
            return None;
        }
        Some(roles)
    });
    let require_justification = opt_bool(r, &f, "require_justification", true);
    let max_duration = match f.get("max_duration") {
        None => Some(None),
        Some(n) => duration_quantity(r, n, &f.path_of("max_duration")).map(Some),
    };
    Some(OverridesDecl {
        allowed_roles: allowed_roles?,
        require_justification: require_justification?,
        max_duration: max_duration?,
    })
}

fn read_obligation(r: &mut Reader, node: &Node, path: &str) -> Option<ObligationDecl> {
    let f = r.fields(node, path, &["kind", "within", "roles", "description"])?;
    let kind = f
        .required(r, "kind")
        .and_then(|n| identifier(r, n, &f.path_of("kind")));
    let within = f
        .required(r, "within")
        .and_then(|n| duration_quantity(r, n, &f.path_of("within")));
    let roles = opt_names(r, &f, "roles");
    let description = opt_string(r, &f, "description");
    Some(ObligationDecl {
        kind: kind?,
        within: within?,
        roles: roles?,
        description: description?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_param_names() {
        assert!(is_identifier("prod-high-risk.v2"));
        assert!(!is_identifier("-x"));
        assert!(!is_identifier("a b"));
        assert!(is_param_name("min_approvals"));
        assert!(!is_param_name("MinApprovals"));
        assert!(!is_param_name("2x"));
    }

    #[test]
    fn a_minimal_bundle_parses() {
        let b = SourceBundle::parse("version: 1\nname: t\npolicies: []\n", Format::Yaml).unwrap();
        assert_eq!(b.name(), "t");
        assert!(b.strict);
        assert!(b.policies.is_empty());
    }
}
