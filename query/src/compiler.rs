//! From [`SourceBundle`] to [`CompiledBundle`]: reference checks, the IR, and the execution plan.
//!
//! One pass over the source both checks it (every problem becomes a located [`Finding`]) and
//! builds two things side by side: the canonical [`Ir`] that is hashed, and the plan that
//! evaluation runs — `when` matchers deduplicated, globs compiled into `GlobSet`s, exact
//! values interned to integers, parameters and calendars resolved to indexes, time zones
//! loaded from the bundled tz database, CEL conditions parsed and checked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};
use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::bundle::{
    Amount, ApprovalsDecl, EvidenceDecl, KindFilter, MatcherDecl, ParamDecl, ParamType, ParamValue,
    PolicyDecl, Quantity, SodRule, SourceBundle, Stricter, VocabularyKey,
};
use crate::cel_condition::{self, VarSet};
use crate::document::Loc;
use crate::document::reader::{Text, child, item};
use crate::duration::Duration;
use crate::ir::{
    IR_VERSION, Ir, IrAmount, IrApprovals, IrArtifact, IrCalendar, IrCheck, IrCondition,
    IrDateRange, IrEmergency, IrEvidence, IrMatcher, IrObligation, IrOverlay, IrOverrides, IrParam,
    IrPolicy, IrRequire, IrValue, IrWeekly, IrWindow,
};
use crate::lint::{self, Accepts, Finding, Findings};
use crate::request::{Field, build_glob, compile_glob};

/// A bundle ready for evaluation, with its canonical IR and hash.
pub struct CompiledBundle {
    pub(crate) ir: Ir,
    canonical: Vec<u8>,
    hash: String,
    pub(crate) strict: bool,
    pub(crate) symbols: HashMap<String, u32>,
    pub(crate) vocabulary: Vec<(Field, BTreeSet<String>)>,
    pub(crate) params: Vec<RtParam>,
    pub(crate) calendars: Vec<RtCalendar>,
    pub(crate) matchers: Vec<RtMatcher>,
    /// One set per field (indexed like [`Field::ALL`]) of every distinct glob used on it, so a
    /// request value is matched against all of a field's patterns in one pass.
    pub(crate) field_globs: Vec<Option<GlobSet>>,
    pub(crate) overlays: Vec<RtOverlay>,
    pub(crate) policies: Vec<RtPolicy>,
    pub(crate) cel_env: Arc<cel::Env>,
}

impl fmt::Debug for CompiledBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledBundle")
            .field("name", &self.ir.name)
            .field("hash", &self.hash)
            .field("policies", &self.policies.len())
            .finish_non_exhaustive()
    }
}

impl CompiledBundle {
    /// The canonical serialisation of the IR (canonical JSON; see `docs/policy.md`).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// `sha256:` and the lowercase hex SHA-256 of [`CompiledBundle::canonical_bytes`].
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.ir.name
    }

    /// Whether evaluation errors block (the `settings.strict` of the bundle).
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// The policy ids, in declaration order.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.id.as_str())
    }
}

/// Why a bundle did not compile: its error-severity lint findings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct CompileErrors {
    /// The errors, sorted by location.
    pub errors: Vec<Finding>,
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Compiles a parsed bundle.
///
/// # Errors
///
/// Returns the error-severity findings of [`SourceBundle::lint`] if there are any: a bundle
/// compiles exactly when its lint has no errors.
pub fn compile(source: &SourceBundle) -> Result<CompiledBundle, CompileErrors> {
    let (compiled, findings) = analyze(source);
    match compiled {
        Some(c) => Ok(c),
        None => Err(CompileErrors {
            errors: findings
                .into_iter()
                .filter(|f| f.severity == lint::Severity::Error)
                .collect(),
        }),
    }
}

pub(crate) struct RtParam {
    pub(crate) name: String,
    pub(crate) default: ParamValue,
    pub(crate) stricter: Option<Stricter>,
}

pub(crate) struct RtCalendar {
    pub(crate) name: String,
    pub(crate) tz: TimeZone,
    /// (days bitmask with bit 0 = Monday, start minute, end minute).
    pub(crate) weekly: Vec<(u8, u16, u16)>,
    pub(crate) dates: Vec<(Timestamp, Timestamp)>,
}

pub(crate) struct RtMatcher {
    pub(crate) field: Field,
    pub(crate) values: Vec<u32>,
    /// Indexes of this matcher's patterns in the field's [`CompiledBundle::field_globs`] set.
    pub(crate) globs: Vec<usize>,
    pub(crate) negated: bool,
}

pub(crate) struct RtOverlay {
    pub(crate) id: String,
    pub(crate) matchers: Vec<usize>,
    pub(crate) set: Vec<(usize, ParamValue)>,
    pub(crate) tighten: Vec<(usize, ParamValue)>,
}

/// A value written in place or read from parameter number `.0` at evaluation.
#[derive(Clone, Debug)]
pub(crate) enum RtAmount<T> {
    Value(T),
    Param(usize),
}

pub(crate) struct RtApprovals {
    pub(crate) min: RtAmount<i64>,
    pub(crate) roles: Vec<(String, RtAmount<i64>)>,
    pub(crate) kind: KindFilter,
    pub(crate) exclude_requester: bool,
    pub(crate) exclude_releaser: bool,
    pub(crate) require_rationale: bool,
}

pub(crate) enum RtEvidence {
    Names(Vec<String>),
    Param(usize),
}

pub(crate) struct RtEmergency {
    pub(crate) approver_roles: Vec<String>,
    pub(crate) review_within: RtAmount<Duration>,
}

pub(crate) struct RtWindow {
    pub(crate) calendar: Option<usize>,
    pub(crate) freeze: Vec<usize>,
    pub(crate) emergency: Option<RtEmergency>,
}

pub(crate) struct RtCondition {
    pub(crate) id: String,
    pub(crate) message: Option<String>,
    pub(crate) condition: cel_condition::Condition,
}

pub(crate) struct RtOverrides {
    pub(crate) allowed_roles: Vec<String>,
    pub(crate) require_justification: bool,
    pub(crate) max_duration: Option<RtAmount<Duration>>,
}

pub(crate) struct RtObligation {
    pub(crate) kind: String,
    pub(crate) within: RtAmount<Duration>,
    pub(crate) roles: Vec<String>,
    pub(crate) description: String,
}

pub(crate) struct RtPolicy {
    pub(crate) id: String,
    pub(crate) matchers: Vec<usize>,
    pub(crate) approvals: Option<RtApprovals>,
    pub(crate) sod: Vec<SodRule>,
    pub(crate) evidence: Option<RtEvidence>,
    pub(crate) checks: Vec<IrCheck>,
    pub(crate) artifact: Option<IrArtifact>,
    pub(crate) window: Option<RtWindow>,
    pub(crate) conditions: Vec<RtCondition>,
    pub(crate) cel_vars: VarSet,
    pub(crate) overrides: Option<RtOverrides>,
    pub(crate) honour_exceptions: bool,
    pub(crate) obligations: Vec<RtObligation>,
}

/// The compiler's working state.
struct Compiler<'s> {
    source: &'s SourceBundle,
    findings: Findings,
    roles: BTreeSet<&'s str>,
    vocabulary: BTreeMap<VocabularyKey, Vec<String>>,
    /// Parameters sorted by name; the index is the parameter's id.
    params: Vec<&'s ParamDecl>,
    used_params: HashSet<usize>,
    calendar_names: Vec<&'s str>,
    used_calendars: HashSet<usize>,
    symbols: HashMap<String, u32>,
    matchers: Vec<(IrMatcher, RtMatcher)>,
    /// Distinct glob patterns per field, in id order.
    field_patterns: Vec<Vec<String>>,
    cel_params: Vec<(String, ParamType)>,
}

/// Checks and compiles; returns the bundle when there are no errors, and all findings.
pub(crate) fn analyze(source: &SourceBundle) -> (Option<CompiledBundle>, Vec<Finding>) {
    let mut params: Vec<&ParamDecl> = source.parameters.iter().collect();
    params.sort_by(|a, b| a.name.value.cmp(&b.name.value));
    let mut calendar_names: Vec<&str> = source
        .calendars
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    calendar_names.sort_unstable();
    let mut c = Compiler {
        source,
        findings: Findings::default(),
        roles: source.roles.iter().map(|r| r.value.as_str()).collect(),
        vocabulary: source
            .vocabulary
            .iter()
            .map(|v| {
                let mut values: Vec<String> = v.values.iter().map(|t| t.value.clone()).collect();
                values.sort();
                (v.key, values)
            })
            .collect(),
        cel_params: params
            .iter()
            .map(|p| (p.name.value.clone(), p.param_type))
            .collect(),
        params,
        used_params: HashSet::new(),
        calendar_names,
        used_calendars: HashSet::new(),
        symbols: HashMap::new(),
        matchers: Vec::new(),
        field_patterns: vec![Vec::new(); Field::ALL.len()],
    };
    let (ir_params, rt_params) = c.parameters();
    let (ir_calendars, rt_calendars) = c.calendars();
    let (ir_overlays, rt_overlays) = c.overlays();
    let mut ir_policies = Vec::new();
    let mut rt_policies = Vec::new();
    for (i, p) in source.policies.iter().enumerate() {
        if let Some((ir, rt)) = c.policy(p, &item("policies", i)) {
            ir_policies.push(ir);
            rt_policies.push(rt);
        }
    }
    c.whole_bundle_checks(&ir_policies);
    let vocabulary_ir: BTreeMap<String, Vec<String>> = c
        .vocabulary
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    let rt_vocabulary: Vec<(Field, BTreeSet<String>)> = c
        .vocabulary
        .iter()
        .filter_map(|(k, v)| match k {
            VocabularyKey::Field(f) => Some((*f, v.iter().cloned().collect())),
            _ => None,
        })
        .collect();
    let has_errors = c.findings.has_errors() || ir_policies.len() != source.policies.len();
    let Compiler {
        findings,
        symbols,
        matchers,
        field_patterns,
        ..
    } = c;
    let findings = findings.finish();
    if has_errors {
        return (None, findings);
    }
    let mut roles: Vec<String> = source.roles.iter().map(|r| r.value.clone()).collect();
    roles.sort();
    let ir = Ir {
        ir_version: IR_VERSION,
        bundle_version: crate::bundle::BUNDLE_VERSION,
        name: source.name.value.clone(),
        description: source.description.clone(),
        strict: source.strict,
        roles,
        vocabulary: vocabulary_ir,
        parameters: ir_params,
        calendars: ir_calendars,
        overlays: ir_overlays,
        policies: ir_policies,
    };
    let canonical = crate::canonical::to_vec(&ir);
    let hash = crate::canonical::sha256_tagged(&canonical);
    let compiled = CompiledBundle {
        strict: source.strict,
        ir,
        canonical,
        hash,
        symbols,
        vocabulary: rt_vocabulary,
        params: rt_params,
        calendars: rt_calendars,
        matchers: matchers.into_iter().map(|(_, m)| m).collect(),
        field_globs: field_patterns
            .iter()
            .map(|patterns| {
                if patterns.is_empty() {
                    return None;
                }
                let mut builder = GlobSetBuilder::new();
                for p in patterns {
                    if let Ok(g) = build_glob(p) {
                        builder.add(g);
                    }
                }
                builder.build().ok()
            })
            .collect(),
        overlays: rt_overlays,
        policies: rt_policies,
        cel_env: cel_condition::environment(),
    };
    (Some(compiled), findings)
}

fn sorted(texts: &[Text]) -> Vec<String> {
    let mut v: Vec<String> = texts.iter().map(|t| t.value.clone()).collect();
    v.sort();
    v.dedup();
    v
}

fn time_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl Compiler<'_> {
    fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name.value == name)
    }

    fn parameters(&mut self) -> (BTreeMap<String, IrParam>, Vec<RtParam>) {
        let mut ir = BTreeMap::new();
        let mut rt = Vec::new();
        for p in self.params.clone() {
            let path = child("parameters", &p.name.value);
            if let (Some((lo, lo_loc)), Some((hi, _))) = (p.minimum, p.maximum)
                && lo > hi
            {
                self.findings.error(
                    "invalid-parameter-bounds",
                    child(&path, "minimum"),
                    lo_loc,
                    format!("minimum {lo} is greater than maximum {hi}"),
                );
            }
            self.check_range(p, &p.default, &child(&path, "default"), p.default_loc);
            ir.insert(
                p.name.value.clone(),
                IrParam {
                    param_type: p.param_type.as_str(),
                    default: normalise(&p.default),
                    minimum: p.minimum.map(|(v, _)| v),
                    maximum: p.maximum.map(|(v, _)| v),
                    stricter: p.stricter.map(|s| match s {
                        Stricter::Higher => "higher",
                        Stricter::Lower => "lower",
                    }),
                    description: p.description.clone(),
                },
            );
            rt.push(RtParam {
                name: p.name.value.clone(),
                default: normalise(&p.default),
                stricter: p.stricter,
            });
        }
        (ir, rt)
    }

    /// Reports a value outside the parameter's declared bounds.
    fn check_range(&mut self, p: &ParamDecl, value: &ParamValue, path: &str, loc: Loc) {
        let Some(v) = value.ordinal() else { return };
        let show = |x: i64| match p.param_type {
            ParamType::Duration => {
                Duration::from_seconds(x).map_or_else(|| x.to_string(), |d| d.to_string())
            }
            _ => x.to_string(),
        };
        if let Some((lo, _)) = p.minimum
            && v < lo
        {
            self.findings.error(
                "parameter-out-of-range",
                path,
                loc,
                format!(
                    "{} is below the minimum {} of parameter \"{}\"",
                    value,
                    show(lo),
                    p.name.value
                ),
            );
        }
        if let Some((hi, _)) = p.maximum
            && v > hi
        {
            self.findings.error(
                "parameter-out-of-range",
                path,
                loc,
                format!(
                    "{} is above the maximum {} of parameter \"{}\"",
                    value,
                    show(hi),
                    p.name.value
                ),
            );
        }
    }

    fn calendars(&mut self) -> (BTreeMap<String, IrCalendar>, Vec<RtCalendar>) {
        let db = TimeZoneDatabase::bundled();
        let mut decls: Vec<_> = self.source.calendars.iter().collect();
        decls.sort_by(|a, b| a.name.value.cmp(&b.name.value));
        let mut ir = BTreeMap::new();
        let mut rt = Vec::new();
        for cal in decls {
            let path = child("calendars", &cal.name.value);
            let tz = if let Ok(tz) = db.get(&cal.timezone.value) {
                tz
            } else {
                self.findings.error(
                    "unknown-time-zone",
                    child(&path, "timezone"),
                    cal.timezone.loc,
                    format!(
                        "\"{}\" is not an IANA time zone name (e.g. \"Europe/Berlin\")",
                        cal.timezone.value
                    ),
                );
                TimeZone::UTC
            };
            let mut weekly: Vec<IrWeekly> = cal
                .weekly
                .iter()
                .map(|w| {
                    let mut days = w.days.clone();
                    days.sort();
                    days.dedup();
                    IrWeekly {
                        days: days.iter().map(|d| d.as_str()).collect(),
                        start: time_text(w.start),
                        end: time_text(w.end),
                    }
                })
                .collect();
            weekly.sort();
            weekly.dedup();
            let mut dates: Vec<IrDateRange> = cal
                .dates
                .iter()
                .map(|d| IrDateRange {
                    start: d.start.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                    end: d.end.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                    label: d.label.clone(),
                })
                .collect();
            dates.sort();
            dates.dedup();
            let mut rt_dates = Vec::new();
            for (i, d) in cal.dates.iter().enumerate() {
                let start = d.start.to_zoned(tz.clone()).map(|z| z.timestamp());
                let end = d.end.to_zoned(tz.clone()).map(|z| z.timestamp());
                match (start, end) {
                    (Ok(s), Ok(e)) if s < e => rt_dates.push((s, e)),
                    _ => self.findings.error(
                        "invalid-date-range",
                        item(&child(&path, "dates"), i),
                        d.loc,
                        "the range is empty or out of range in the calendar's time zone",
                    ),
                }
            }
            rt_dates.sort();
            let rt_weekly = cal
                .weekly
                .iter()
                .map(|w| {
                    let mask = w.days.iter().fold(0u8, |m, d| m | (1 << (*d as u8)));
                    (mask, w.start, w.end)
                })
                .collect();
            ir.insert(
                cal.name.value.clone(),
                IrCalendar {
                    timezone: cal.timezone.value.clone(),
                    description: cal.description.clone(),
                    weekly,
                    dates,
                },
            );
            rt.push(RtCalendar {
                name: cal.name.value.clone(),
                tz,
                weekly: rt_weekly,
                dates: rt_dates,
            });
        }
        (ir, rt)
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.symbols.get(s) {
            return *id;
        }
        let id = u32::try_from(self.symbols.len()).unwrap_or(u32::MAX);
        self.symbols.insert(s.to_owned(), id);
        id
    }

    /// Compiles a `when` clause; returns the IR matchers (sorted by field) and matcher ids.
    fn when(&mut self, when: &[MatcherDecl], path: &str) -> (Vec<IrMatcher>, Vec<usize>) {
        let mut decls: Vec<&MatcherDecl> = when.iter().collect();
        decls.sort_by_key(|m| m.field);
        let mut ir = Vec::new();
        let mut ids = Vec::new();
        for m in decls {
            let mpath = child(path, m.field.as_str());
            let values = sorted(&m.values);
            let globs = sorted(&m.globs);
            let mut ok = true;
            for g in &m.globs {
                match build_glob(&g.value) {
                    Ok(_) => {}
                    Err(e) => {
                        ok = false;
                        self.findings.error(
                            "invalid-glob",
                            mpath.clone(),
                            g.loc,
                            format!("invalid glob \"{}\": {e}", g.value),
                        );
                    }
                }
            }
            let irm = IrMatcher {
                field: m.field.as_str(),
                values: values.clone(),
                globs: globs.clone(),
                negated: m.negated,
            };
            if !ok {
                ir.push(irm);
                continue;
            }
            if let Some(existing) = self.matchers.iter().position(|(x, _)| *x == irm) {
                ids.push(existing);
                ir.push(irm);
                continue;
            }
            let patterns = &mut self.field_patterns[m.field as usize];
            let glob_ids: Vec<usize> = globs
                .iter()
                .map(|g| {
                    patterns.iter().position(|p| p == g).unwrap_or_else(|| {
                        patterns.push(g.clone());
                        patterns.len() - 1
                    })
                })
                .collect();
            let symbols: Vec<u32> = values.iter().map(|v| self.intern(v)).collect();
            let rt = RtMatcher {
                field: m.field,
                values: symbols,
                globs: glob_ids,
                negated: m.negated,
            };
            ids.push(self.matchers.len());
            self.matchers.push((irm.clone(), rt));
            ir.push(irm);
        }
        (ir, ids)
    }

    fn vocabulary_of(&self, field: Field) -> Option<Vec<String>> {
        self.vocabulary.get(&VocabularyKey::Field(field)).cloned()
    }

    /// Whether the matcher can match some request (reported by the caller if not).
    fn reachable(&self, m: &IrMatcher) -> bool {
        let vocab = Field::parse(m.field).and_then(|f| self.vocabulary_of(f));
        !matches!(lint::accepts(m, vocab.as_deref(), &glob_matches), Accepts::Values(v) if v.is_empty())
    }

    fn overlays(&mut self) -> (Vec<IrOverlay>, Vec<RtOverlay>) {
        let mut ir = Vec::new();
        let mut rt = Vec::new();
        for (i, o) in self.source.overlays.iter().enumerate() {
            let path = item("overlays", i);
            let (when, matchers) = self.when(&o.when, &child(&path, "when"));
            for (m, decl) in when.iter().zip(o.when.iter()) {
                if !self.reachable(m) {
                    self.findings.warning(
                        "unreachable-overlay",
                        child(&child(&path, "when"), m.field),
                        decl.loc,
                        format!(
                            "overlay \"{}\" can never apply: no {} value matches",
                            o.id.value, m.field
                        ),
                    );
                }
            }
            let mut set_ir = BTreeMap::new();
            let mut set_rt = Vec::new();
            for (name, value) in &o.set {
                let p = child(&child(&path, "set"), &name.value);
                if let Some((index, v)) = self.overlay_value(name, value.as_ref(), &p) {
                    set_ir.insert(name.value.clone(), IrValue(v.clone()));
                    set_rt.push((index, v));
                }
            }
            let mut tighten_ir = BTreeMap::new();
            let mut tighten_rt = Vec::new();
            for (name, value) in &o.tighten {
                let p = child(&child(&path, "tighten"), &name.value);
                let Some((index, v)) = self.overlay_value(name, value.as_ref(), &p) else {
                    continue;
                };
                let decl = self.params[index];
                match decl.stricter {
                    None => self.findings.error(
                        "tighten-without-direction",
                        p,
                        name.loc,
                        format!(
                            "parameter \"{}\" declares no stricter direction (add stricter: higher or lower), so it can only be set",
                            name.value
                        ),
                    ),
                    Some(dir) => {
                        if !is_stricter(dir, &v, &decl.default) {
                            self.findings.warning(
                                "ineffective-tighten",
                                p,
                                name.loc,
                                format!(
                                    "{v} is not stricter than the default {} of \"{}\"; tighten never loosens, so this has no effect on its own",
                                    decl.default, name.value
                                ),
                            );
                        }
                        tighten_ir.insert(name.value.clone(), IrValue(v.clone()));
                        tighten_rt.push((index, v));
                    }
                }
            }
            ir.push(IrOverlay {
                id: o.id.value.clone(),
                description: o.description.clone(),
                when,
                set: set_ir,
                tighten: tighten_ir,
            });
            rt.push(RtOverlay {
                id: o.id.value.clone(),
                matchers,
                set: set_rt,
                tighten: tighten_rt,
            });
        }
        (ir, rt)
    }

    fn overlay_value(
        &mut self,
        name: &Text,
        value: Option<&ParamValue>,
        path: &str,
    ) -> Option<(usize, ParamValue)> {
        let Some(index) = self.param_index(&name.value) else {
            self.unknown_parameter(name, path);
            return None;
        };
        self.used_params.insert(index);
        let value = normalise(value?);
        let decl = self.params[index];
        self.check_range(decl, &value, path, name.loc);
        Some((index, value))
    }

    fn unknown_parameter(&mut self, name: &Text, path: &str) {
        let names: Vec<&str> = self.params.iter().map(|p| p.name.value.as_str()).collect();
        let hint = match crate::document::reader::nearest(&name.value, &names) {
            Some(n) => format!("; did you mean \"{n}\"?"),
            None if names.is_empty() => "; the bundle declares no parameters".to_owned(),
            None => format!("; declared: {}", names.join(", ")),
        };
        self.findings.error(
            "unknown-parameter",
            path,
            name.loc,
            format!("unknown parameter \"{}\"{hint}", name.value),
        );
    }

    /// Resolves `{param: x}` of type `ty`, reporting unknown names and type mismatches.
    fn param_ref(&mut self, name: &Text, ty: ParamType, path: &str) -> Option<usize> {
        let Some(index) = self.param_index(&name.value) else {
            self.unknown_parameter(name, path);
            return None;
        };
        self.used_params.insert(index);
        let actual = self.params[index].param_type;
        if actual != ty {
            self.findings.error(
                "parameter-type-mismatch",
                path,
                name.loc,
                format!(
                    "parameter \"{}\" is of type {}, but type {} is needed here",
                    name.value,
                    actual.as_str(),
                    ty.as_str()
                ),
            );
            return None;
        }
        Some(index)
    }

    fn int_amount(&mut self, q: &Quantity<i64>, path: &str) -> Option<(IrAmount, RtAmount<i64>)> {
        match &q.amount {
            Amount::Value(v) => Some((IrAmount::Int(*v), RtAmount::Value(*v))),
            Amount::Param(name) => {
                let index = self.param_ref(name, ParamType::Integer, path)?;
                Some((
                    IrAmount::Param {
                        param: name.value.clone(),
                    },
                    RtAmount::Param(index),
                ))
            }
        }
    }

    fn duration_amount(
        &mut self,
        q: &Quantity<Duration>,
        path: &str,
    ) -> Option<(IrAmount, RtAmount<Duration>)> {
        match &q.amount {
            Amount::Value(d) => Some((IrAmount::Text(d.to_string()), RtAmount::Value(*d))),
            Amount::Param(name) => {
                let index = self.param_ref(name, ParamType::Duration, path)?;
                Some((
                    IrAmount::Param {
                        param: name.value.clone(),
                    },
                    RtAmount::Param(index),
                ))
            }
        }
    }

    /// Reports roles not declared in `roles:`.
    fn roles_declared(&mut self, roles: &[Text], path: &str) {
        for (i, r) in roles.iter().enumerate() {
            self.role_declared(r, &item(path, i));
        }
    }

    fn role_declared(&mut self, role: &Text, path: &str) {
        if self.roles.contains(role.value.as_str()) {
            return;
        }
        let declared: Vec<&str> = self.roles.iter().copied().collect();
        let hint = match crate::document::reader::nearest(&role.value, &declared) {
            Some(n) => format!("; did you mean \"{n}\"?"),
            None => String::new(),
        };
        self.findings.error(
            "undeclared-role",
            path,
            role.loc,
            format!("role \"{}\" is not declared in roles{hint}", role.value),
        );
    }

    fn name_in_vocabulary(
        &mut self,
        key: VocabularyKey,
        name: &Text,
        path: &str,
        code: &'static str,
    ) {
        if let Some(values) = self.vocabulary.get(&key)
            && !values.contains(&name.value)
        {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let hint = match crate::document::reader::nearest(&name.value, &refs) {
                Some(n) => format!("; did you mean \"{n}\"?"),
                None => String::new(),
            };
            self.findings.error(
                code,
                path,
                name.loc,
                format!(
                    "\"{}\" is not in vocabulary.{}{hint}",
                    name.value,
                    key.as_str()
                ),
            );
        }
    }

    fn calendar_ref(&mut self, name: &Text, path: &str) -> Option<usize> {
        if let Some(index) = self.calendar_names.iter().position(|c| *c == name.value) {
            self.used_calendars.insert(index);
            return Some(index);
        }
        let hint = match crate::document::reader::nearest(&name.value, &self.calendar_names) {
            Some(n) => format!("; did you mean \"{n}\"?"),
            None => String::new(),
        };
        self.findings.error(
            "unknown-calendar",
            path,
            name.loc,
            format!("unknown calendar \"{}\"{hint}", name.value),
        );
        None
    }

    fn approvals(&mut self, a: &ApprovalsDecl, path: &str) -> Option<(IrApprovals, RtApprovals)> {
        let min = self.int_amount(&a.min, &child(path, "min"));
        let mut ir_roles = BTreeMap::new();
        let mut rt_roles = Vec::new();
        let mut literal_sum: i64 = 0;
        for (role, q) in &a.roles {
            let rpath = child(&child(path, "roles"), &role.value);
            self.role_declared(role, &rpath);
            if let Some((ir, rt)) = self.int_amount(q, &rpath) {
                if let IrAmount::Int(n) = ir {
                    literal_sum = literal_sum.saturating_add(n);
                }
                ir_roles.insert(role.value.clone(), ir);
                rt_roles.push((role.value.clone(), rt));
            }
        }
        rt_roles.sort_by(|x, y| x.0.cmp(&y.0));
        let limit = crate::request::limits::MAX_APPROVALS;
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let min_value = match &min {
            Some((IrAmount::Int(n), _)) => Some(*n),
            Some((IrAmount::Param { .. }, RtAmount::Param(i))) => self.params[*i]
                .maximum
                .map(|(m, _)| m)
                .or(self.params[*i].default.ordinal()),
            _ => None,
        };
        if let Some(n) = min_value
            && n > limit_i64
        {
            self.findings.error(
                "unsatisfiable-approvals",
                child(path, "min"),
                a.min.loc,
                format!("{n} approvals can never be given: a request carries at most {limit}"),
            );
        }
        if literal_sum > limit_i64 {
            self.findings.error(
                "unsatisfiable-approvals",
                child(path, "roles"),
                a.loc,
                format!("the role minimums add up to {literal_sum} distinct approvers, but a request carries at most {limit}"),
            );
        }
        let (min_ir, min_rt) = min?;
        let kind = match a.kind {
            KindFilter::Any => "any",
            KindFilter::Pr => "pr",
            KindFilter::Production => "production",
        };
        Some((
            IrApprovals {
                min: min_ir,
                roles: ir_roles,
                kind,
                exclude_requester: a.exclude_requester,
                exclude_releaser: a.exclude_releaser,
                require_rationale: a.require_rationale,
            },
            RtApprovals {
                min: min_rt,
                roles: rt_roles,
                kind: a.kind,
                exclude_requester: a.exclude_requester,
                exclude_releaser: a.exclude_releaser,
                require_rationale: a.require_rationale,
            },
        ))
    }

    fn policy(&mut self, p: &PolicyDecl, path: &str) -> Option<(IrPolicy, RtPolicy)> {
        let errors_before = self
            .findings
            .items
            .iter()
            .filter(|f| f.severity == lint::Severity::Error)
            .count();
        let (when, mut matchers) = self.when(&p.when, &child(path, "when"));
        // Exact-value matchers are integer comparisons: try them before glob matchers.
        matchers.sort_by_key(|id| {
            self.matchers
                .get(*id)
                .is_some_and(|(_, m)| !m.globs.is_empty())
        });
        for (m, decl) in when.iter().zip(p.when.iter().collect::<Vec<_>>().iter()) {
            if !self.reachable(m) {
                let vocab = Field::parse(m.field).and_then(|f| self.vocabulary_of(f));
                let why = match vocab {
                    Some(v) => format!(
                        "no value in vocabulary.{} ({}) matches",
                        m.field,
                        v.join(", ")
                    ),
                    None => format!("no {} value matches", m.field),
                };
                self.findings.error(
                    "unreachable-policy",
                    child(&child(path, "when"), m.field),
                    decl.loc,
                    format!("policy \"{}\" can never match: {why}", p.id.value),
                );
            }
        }
        let rpath = child(path, "require");
        let r = &p.require;
        let approvals = r
            .approvals
            .as_ref()
            .and_then(|a| self.approvals(a, &child(&rpath, "approvals")));
        let mut sod: Vec<SodRule> = r.separation_of_duties.iter().map(|(s, _)| *s).collect();
        sod.sort();
        let evidence = match &r.evidence {
            None => None,
            Some((EvidenceDecl::Names(names), _)) => {
                for (i, n) in names.iter().enumerate() {
                    self.name_in_vocabulary(
                        VocabularyKey::Evidence,
                        n,
                        &item(&child(&rpath, "evidence"), i),
                        "unknown-evidence",
                    );
                }
                let names = sorted(names);
                Some((IrEvidence::Names(names.clone()), RtEvidence::Names(names)))
            }
            Some((EvidenceDecl::Param(name), _)) => {
                let index = self.param_ref(name, ParamType::Strings, &child(&rpath, "evidence"));
                if let (Some(index), Some(vocab)) = (
                    index,
                    self.vocabulary.get(&VocabularyKey::Evidence).cloned(),
                ) && let ParamValue::Strings(items) = &self.params[index].default
                {
                    for e in items.iter().filter(|e| !vocab.contains(e)) {
                        self.findings.error(
                            "unknown-evidence",
                            child(&rpath, "evidence"),
                            name.loc,
                            format!(
                                "\"{e}\" (from parameter \"{}\") is not in vocabulary.evidence",
                                name.value
                            ),
                        );
                    }
                }
                index.map(|i| {
                    (
                        IrEvidence::Param {
                            param: name.value.clone(),
                        },
                        RtEvidence::Param(i),
                    )
                })
            }
        };
        for (i, c) in r.checks.iter().enumerate() {
            self.name_in_vocabulary(
                VocabularyKey::Checks,
                &c.name,
                &item(&child(&rpath, "checks"), i),
                "unknown-check",
            );
        }
        let mut checks: Vec<IrCheck> = r
            .checks
            .iter()
            .map(|c| IrCheck {
                name: c.name.value.clone(),
                allow_na: c.allow_na,
            })
            .collect();
        checks.sort();
        let artifact = r.artifact.as_ref().map(|a| {
            let apath = child(&child(&rpath, "artifact"), "same_digest_in");
            for (i, e) in a.same_digest_in.iter().enumerate() {
                self.name_in_vocabulary(
                    VocabularyKey::Field(Field::Environment),
                    e,
                    &item(&apath, i),
                    "unknown-environment",
                );
            }
            IrArtifact {
                same_digest_in: sorted(&a.same_digest_in),
                immutable_version: a.immutable_version,
            }
        });
        let window = r.window.as_ref().map(|w| {
            let wpath = child(&rpath, "window");
            let calendar = w.calendar.as_ref().and_then(|c| self.calendar_ref(c, &child(&wpath, "calendar")));
            let freeze: Vec<usize> = w
                .freeze
                .iter()
                .enumerate()
                .filter_map(|(i, f)| self.calendar_ref(f, &item(&child(&wpath, "freeze"), i)))
                .collect();
            let emergency = w.emergency.as_ref().and_then(|e| {
                let epath = child(&wpath, "emergency");
                self.roles_declared(&e.approver_roles, &child(&epath, "approver_roles"));
                let (ir, rt) = self.duration_amount(&e.review_within, &child(&epath, "review_within"))?;
                Some((
                    IrEmergency { approver_roles: sorted(&e.approver_roles), review_within: ir },
                    RtEmergency { approver_roles: sorted(&e.approver_roles), review_within: rt },
                ))
            });
            if let Some(index) = calendar {
                let cal = &self.source.calendars.iter().find(|c| c.name.value == self.calendar_names[index]);
                if cal.is_some_and(|c| c.weekly.is_empty() && c.dates.is_empty()) {
                    self.findings.warning(
                        "calendar-never-open",
                        child(&wpath, "calendar"),
                        w.loc,
                        format!("calendar \"{}\" has no weekly windows and no dates: changes are always outside it", self.calendar_names[index]),
                    );
                }
            }
            if let Some(index) = calendar
                && freeze.contains(&index)
            {
                self.findings.error(
                    "contradictory-window",
                    child(&wpath, "freeze"),
                    w.loc,
                    format!(
                        "calendar \"{}\" is both the change window and a freeze: no time is inside one and outside the other",
                        self.calendar_names[index]
                    ),
                );
            }
            let mut freeze_sorted = freeze.clone();
            freeze_sorted.sort_unstable();
            freeze_sorted.dedup();
            (
                IrWindow {
                    calendar: w.calendar.as_ref().map(|c| c.value.clone()),
                    freeze: sorted(&w.freeze),
                    emergency: emergency.as_ref().map(|(ir, _)| ir.clone()),
                },
                RtWindow { calendar, freeze: freeze_sorted, emergency: emergency.map(|(_, rt)| rt) },
            )
        });
        let mut conditions_ir = Vec::new();
        let mut conditions_rt = Vec::new();
        let mut cel_vars = VarSet::default();
        for (i, c) in r.conditions.iter().enumerate() {
            let cpath = item(&child(&rpath, "conditions"), i);
            let evidence_vocab = self.vocabulary.get(&VocabularyKey::Evidence).cloned();
            let checks_vocab = self.vocabulary.get(&VocabularyKey::Checks).cloned();
            let schema = cel_condition::Schema {
                params: &self.cel_params,
                evidence: evidence_vocab.as_deref(),
                checks: checks_vocab.as_deref(),
            };
            let source = c.cel.value.trim();
            match cel_condition::compile(source, &schema) {
                Ok(condition) => {
                    cel_vars = cel_vars.union(condition.vars());
                    for (name, _) in &self.cel_params {
                        if source.contains(&format!("params.{name}"))
                            && let Some(index) = self.param_index(name)
                        {
                            self.used_params.insert(index);
                        }
                    }
                    conditions_ir.push(IrCondition {
                        id: c.id.value.clone(),
                        cel: source.to_owned(),
                        message: c.message.clone(),
                    });
                    conditions_rt.push(RtCondition {
                        id: c.id.value.clone(),
                        message: c.message.clone(),
                        condition,
                    });
                }
                Err(issues) => {
                    for issue in issues {
                        self.findings.error(
                            issue.code,
                            child(&cpath, "cel"),
                            c.cel.loc,
                            issue.message,
                        );
                    }
                }
            }
        }
        conditions_ir.sort_by(|a, b| a.id.cmp(&b.id));
        conditions_rt.sort_by(|a, b| a.id.cmp(&b.id));
        let overrides = p.overrides.as_ref().and_then(|o| {
            let opath = child(path, "overrides");
            self.roles_declared(&o.allowed_roles, &child(&opath, "allowed_roles"));
            let max = match &o.max_duration {
                None => Some(None),
                Some(q) => self
                    .duration_amount(q, &child(&opath, "max_duration"))
                    .map(Some),
            }?;
            let roles = sorted(&o.allowed_roles);
            Some((
                IrOverrides {
                    allowed_roles: roles.clone(),
                    require_justification: o.require_justification,
                    max_duration: max.as_ref().map(|(ir, _)| ir.clone()),
                },
                RtOverrides {
                    allowed_roles: roles,
                    require_justification: o.require_justification,
                    max_duration: max.map(|(_, rt)| rt),
                },
            ))
        });
        let mut obligations = Vec::new();
        for (i, o) in p.obligations.iter().enumerate() {
            let opath = item(&child(path, "obligations"), i);
            self.roles_declared(&o.roles, &child(&opath, "roles"));
            if let Some((ir, rt)) = self.duration_amount(&o.within, &child(&opath, "within")) {
                let roles = sorted(&o.roles);
                obligations.push((
                    IrObligation {
                        kind: o.kind.value.clone(),
                        within: ir,
                        roles: roles.clone(),
                        description: o.description.clone(),
                    },
                    RtObligation {
                        kind: o.kind.value.clone(),
                        within: rt,
                        roles,
                        description: o.description.clone(),
                    },
                ));
            }
        }
        obligations.sort_by(|a, b| a.0.cmp(&b.0));
        let empty = r.approvals.is_none()
            && r.separation_of_duties.is_empty()
            && r.evidence.is_none()
            && r.checks.is_empty()
            && r.artifact.is_none()
            && r.window.is_none()
            && r.conditions.is_empty();
        if empty && p.obligations.is_empty() {
            self.findings.warning(
                "empty-policy",
                path,
                p.require_loc.unwrap_or(p.id.loc),
                format!(
                    "policy \"{}\" requires nothing: every request it matches is allowed",
                    p.id.value
                ),
            );
        }
        let errors_after = self
            .findings
            .items
            .iter()
            .filter(|f| f.severity == lint::Severity::Error)
            .count();
        if errors_after > errors_before {
            return None;
        }
        let (approvals_ir, approvals_rt) = match approvals {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (evidence_ir, evidence_rt) = match evidence {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (window_ir, window_rt) = match window {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (overrides_ir, overrides_rt) = match overrides {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (obligations_ir, obligations_rt): (Vec<_>, Vec<_>) = obligations.into_iter().unzip();
        let ir = IrPolicy {
            id: p.id.value.clone(),
            description: p.description.clone(),
            when,
            require: IrRequire {
                approvals: approvals_ir,
                separation_of_duties: sod.iter().map(|s| s.as_str()).collect(),
                evidence: evidence_ir,
                checks: checks.clone(),
                artifact: artifact.clone(),
                window: window_ir,
                conditions: conditions_ir,
            },
            overrides: overrides_ir,
            honour_exceptions: p.honour_exceptions,
            obligations: obligations_ir,
        };
        let rt = RtPolicy {
            id: p.id.value.clone(),
            matchers,
            approvals: approvals_rt,
            sod,
            evidence: evidence_rt,
            checks,
            artifact,
            window: window_rt,
            conditions: conditions_rt,
            cel_vars,
            overrides: overrides_rt,
            honour_exceptions: p.honour_exceptions,
            obligations: obligations_rt,
        };
        Some((ir, rt))
    }

    /// Shadowed policies and unused declarations.
    fn whole_bundle_checks(&mut self, policies: &[IrPolicy]) {
        let vocabulary = |f: Field| self.vocabulary_of(f);
        let mut shadowed = Vec::new();
        for (j, later) in policies.iter().enumerate() {
            for earlier in &policies[..j] {
                if lint::when_covers(&earlier.when, &later.when, &vocabulary, &glob_matches)
                    && lint::requirements_implied(earlier, later)
                {
                    shadowed.push((j, earlier.id.clone(), later.id.clone()));
                    break;
                }
            }
        }
        for (j, earlier, later) in shadowed {
            let Some(decl) = self.source.policies.iter().find(|p| p.id.value == later) else {
                continue;
            };
            self.findings.warning(
                "shadowed-policy",
                item("policies", j),
                decl.id.loc,
                format!(
                    "policy \"{later}\" is shadowed by \"{earlier}\": \"{earlier}\" applies to every request \"{later}\" matches and requires at least as much, so \"{later}\" never changes a decision"
                ),
            );
        }
        for (index, p) in self.params.clone().iter().enumerate() {
            if !self.used_params.contains(&index) {
                self.findings.warning(
                    "unused-parameter",
                    child("parameters", &p.name.value),
                    p.name.loc,
                    format!("parameter \"{}\" is never used", p.name.value),
                );
            }
        }
        for (index, name) in self.calendar_names.clone().iter().enumerate() {
            if !self.used_calendars.contains(&index)
                && let Some(decl) = self.source.calendars.iter().find(|c| c.name.value == *name)
            {
                self.findings.warning(
                    "unused-calendar",
                    child("calendars", name),
                    decl.name.loc,
                    format!("calendar \"{name}\" is never used"),
                );
            }
        }
    }
}

/// Whether glob `pattern` matches `value` (with the bundle's glob rules).
pub(crate) fn glob_matches(pattern: &str, value: &str) -> bool {
    compile_glob(pattern).is_ok_and(|g| g.is_match(value))
}

/// Puts set-like parameter values in canonical order.
fn normalise(v: &ParamValue) -> ParamValue {
    match v {
        ParamValue::Strings(items) => {
            let mut items = items.clone();
            items.sort();
            items.dedup();
            ParamValue::Strings(items)
        }
        other => other.clone(),
    }
}

/// Whether `candidate` is at least as strict as `base` in direction `dir`.
pub(crate) fn is_stricter(dir: Stricter, candidate: &ParamValue, base: &ParamValue) -> bool {
    match (candidate.ordinal(), base.ordinal()) {
        (Some(c), Some(b)) => match dir {
            Stricter::Higher => c > b,
            Stricter::Lower => c < b,
        },
        _ => false,
    }
}
