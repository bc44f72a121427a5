//! Custom conditions in CEL: compiling, checking references, and evaluating over a request.
//!
//! A condition is a CEL expression that must evaluate to `true`. It sees only the whitelisted
//! variables in [`VARIABLES`] (request fields, `now`, `params`), each with a fixed shape, and
//! only the functions in [`FUNCTIONS`]. Unknown variables, unknown fields of known records,
//! unknown functions and comprehensions over maps (whose iteration order is unspecified and
//! would make results depend on it) are compile errors. Source text and nesting are bounded.
//!
//! Every value a condition can see is total: absent optional strings are `""`, an absent
//! artifact or emergency record is a record of empty strings and lists, times are integer
//! Unix seconds and durations integer seconds. No `null` is ever bound.

// Value builders use one-letter helpers (`s` string, `r` request) to keep the tables readable.
#![allow(clippy::many_single_char_names)]

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr};
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use cel::parser::Parser;
use cel::{Context, Value};

use crate::bundle::ParamValue;
use crate::request::{ApprovalKind, CheckStatus, EvidenceValue, Request};

mod plan;

/// Longest condition source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 2048;
/// Deepest bracket nesting (parentheses, brackets, braces) in a condition.
pub const MAX_NESTING: usize = 12;
/// Most comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) nested in each other.
pub const MAX_COMPREHENSION_NESTING: usize = 2;
/// Deepest expression tree, counting every operator, call, field selection and index: chains
/// without brackets (`!!!x`, `a.b.c`, `a + b + c`) nest too, and checking and evaluating a
/// condition recurse once per level.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// The shape of a value a condition can reach, for reference checking.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Any,
    Str,
    Int,
    Bool,
    List(&'static Shape),
    Record(RecordKind, &'static [(&'static str, Shape)]),
    /// A map with free keys; `MapKeys` says whether a vocabulary may restrict them.
    Map(&'static Shape, MapKeys),
    /// `params`: a record whose fields are the bundle's parameters.
    Params,
}

/// The records a condition can reach; their fields are bound only if some condition reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordKind {
    Approval = 0,
    Check = 1,
    Artifact = 2,
    Emergency = 3,
    Promotion = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapKeys {
    Free,
    Evidence,
    Checks,
}

const STR_LIST: Shape = Shape::List(&Shape::Str);
const APPROVAL: Shape = Shape::Record(
    RecordKind::Approval,
    &[
        ("approver", Shape::Str),
        ("roles", STR_LIST),
        ("kind", Shape::Str),
        ("at", Shape::Int),
        ("rationale", Shape::Str),
    ],
);
const CHECK: Shape = Shape::Record(
    RecordKind::Check,
    &[
        ("status", Shape::Str),
        ("rationale", Shape::Str),
        ("url", Shape::Str),
    ],
);
const ARTIFACT: Shape = Shape::Record(
    RecordKind::Artifact,
    &[
        ("version", Shape::Str),
        ("commit", Shape::Str),
        ("digest", Shape::Str),
    ],
);
const EMERGENCY: Shape = Shape::Record(
    RecordKind::Emergency,
    &[
        ("id", Shape::Str),
        ("reason", Shape::Str),
        ("approver", Shape::Str),
        ("approver_roles", STR_LIST),
        ("scope", Shape::Str),
        ("rollback_plan", Shape::Str),
        ("follow_ups", STR_LIST),
    ],
);
const PROMOTION: Shape = Shape::Record(
    RecordKind::Promotion,
    &[
        ("environment", Shape::Str),
        ("version", Shape::Str),
        ("commit", Shape::Str),
        ("digest", Shape::Str),
        ("at", Shape::Int),
    ],
);

/// The variables a condition may use, in the order of their bit in a [`VarSet`].
const VARIABLES: &[(&str, Shape)] = &[
    ("subject", Shape::Str),
    ("environment", Shape::Str),
    ("transition", Shape::Str),
    ("repository", Shape::Str),
    ("branch", Shape::Str),
    ("service", Shape::Str),
    ("tier", Shape::Str),
    ("risk", Shape::Str),
    ("change_type", Shape::Str),
    ("author", Shape::Str),
    ("co_authors", STR_LIST),
    ("requester", Shape::Str),
    ("releaser", Shape::Str),
    ("approvals", Shape::List(&APPROVAL)),
    ("evidence", Shape::Map(&Shape::Any, MapKeys::Evidence)),
    ("checks", Shape::Map(&CHECK, MapKeys::Checks)),
    ("artifact", ARTIFACT),
    ("labels", Shape::Map(&Shape::Str, MapKeys::Free)),
    ("now", Shape::Int),
    ("emergency", EMERGENCY),
    ("promotions", Shape::List(&PROMOTION)),
    ("params", Shape::Params),
];

/// The names of the variables a condition may use.
pub fn variable_names() -> impl Iterator<Item = &'static str> {
    VARIABLES.iter().map(|(n, _)| *n)
}

/// The functions and methods a condition may call (operators and macros aside).
pub const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "string",
    "bool",
];

const OPERATORS: &[&str] = &[
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_+_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_>=_",
    "_<=_",
    "_>_",
    "_<_",
    "-_",
    "_[_]",
    "@in",
    "@not_strictly_false",
];

/// What conditions read: a bit per entry of [`VARIABLES`], and per record kind a bit per
/// field (in the order of the record's shape). Records are built with only the fields read,
/// which is unobservable because a record read as a whole marks all its fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VarSet {
    vars: u32,
    fields: [u8; 5],
}

impl VarSet {
    pub(crate) fn union(self, other: VarSet) -> VarSet {
        let mut fields = self.fields;
        for (f, o) in fields.iter_mut().zip(other.fields) {
            *f |= o;
        }
        VarSet {
            vars: self.vars | other.vars,
            fields,
        }
    }

    fn insert(&mut self, index: usize) {
        self.vars |= 1 << index;
    }

    fn contains(self, index: usize) -> bool {
        self.vars & (1 << index) != 0
    }

    fn mark(&mut self, kind: RecordKind, field: usize) {
        self.fields[kind as usize] |= 1 << field;
    }

    fn mark_all(&mut self, kind: RecordKind) {
        self.fields[kind as usize] = u8::MAX;
    }

    fn reads(self, kind: RecordKind, field: usize) -> bool {
        self.fields[kind as usize] & (1 << field) != 0
    }
}

/// What a condition may refer to besides the fixed variables.
pub(crate) struct Schema<'a> {
    /// Declared parameters and their types.
    pub(crate) params: &'a [(String, crate::bundle::ParamType)],
    /// `vocabulary.evidence`, if declared.
    pub(crate) evidence: Option<&'a [String]>,
    /// `vocabulary.checks`, if declared.
    pub(crate) checks: Option<&'a [String]>,
}

/// A problem with a condition found at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Issue {
    /// Finding code: `cel-syntax`, `cel-unknown-variable`, `cel-unknown-field`,
    /// `cel-unknown-function`, `cel-map-iteration` or `cel-too-complex`.
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    expr: IdedExpr,
    vars: VarSet,
    /// The condition compiled for direct evaluation, if it is within the subset that
    /// [`plan`] covers.
    plan: Option<plan::Plan>,
}

impl Condition {
    /// The variables the condition reads.
    pub(crate) fn vars(&self) -> VarSet {
        self.vars
    }

    /// Evaluates the condition directly over `request`, with the parameter values `params`
    /// (in the order of the bundle's parameters), without the CEL interpreter.
    ///
    /// `Some` is what [`Condition::evaluate`] returns, `Ok` with that boolean; `None` says
    /// that [`Condition::evaluate`] must decide (the condition has no plan, evaluating it
    /// fails, or its result is not a boolean).
    pub(crate) fn evaluate_direct(
        &self,
        request: &Request,
        params: &[&ParamValue],
    ) -> Option<bool> {
        self.plan.as_ref()?.evaluate(request, params)
    }
}

/// Compiles and checks `source`.
pub(crate) fn compile(source: &str, schema: &Schema<'_>) -> Result<Condition, Vec<Issue>> {
    let too_complex = |message: String| {
        vec![Issue {
            code: "cel-too-complex",
            message,
        }]
    };
    if source.len() > MAX_SOURCE_BYTES {
        return Err(too_complex(format!(
            "condition is {} bytes long (at most {MAX_SOURCE_BYTES})",
            source.len()
        )));
    }
    let nesting = max_nesting(source);
    if nesting > MAX_NESTING {
        return Err(too_complex(format!(
            "brackets nest {nesting} deep (at most {MAX_NESTING})"
        )));
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        Parser::new()
            .max_recursion_depth(250)
            .parse_with_source_info(source)
    }));
    let (expr, info) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(errors)) => {
            return Err(errors
                .errors
                .iter()
                .map(|e| Issue {
                    code: "cel-syntax",
                    message: if e.pos.0 > 0 {
                        format!(
                            "{} (at line {}, column {} of the expression)",
                            e.msg, e.pos.0, e.pos.1
                        )
                    } else {
                        e.msg.clone()
                    },
                })
                .collect());
        }
        Err(_) => {
            return Err(vec![Issue {
                code: "cel-syntax",
                message: "expression cannot be parsed".into(),
            }]);
        }
    };
    let depth = expression_depth(&expr);
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(too_complex(format!(
            "the expression nests {depth} deep (at most {MAX_EXPRESSION_DEPTH})"
        )));
    }
    let mut checker = Checker {
        schema,
        source,
        info: &info,
        issues: Vec::new(),
        vars: VarSet::default(),
        scopes: Vec::new(),
    };
    let root = checker.walk(&expr, 0);
    checker.consume(root);
    if checker.issues.is_empty() {
        let plan = plan::Plan::build(&expr, schema.params);
        Ok(Condition {
            expr,
            vars: checker.vars,
            plan,
        })
    } else {
        checker.issues.dedup();
        Err(checker.issues)
    }
}

/// The depth of an expression tree, found without recursion (the tree may be as deep as its
/// source is long).
fn expression_depth(root: &IdedExpr) -> usize {
    use cel::common::ast::EntryExpr;
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        max = max.max(depth);
        let below = depth + 1;
        match &e.expr {
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
            Expr::Select(s) => stack.push((&s.operand, below)),
            Expr::Call(c) => {
                stack.extend(c.target.as_deref().map(|t| (t, below)));
                stack.extend(c.args.iter().map(|a| (a, below)));
            }
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, below))),
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            stack.push((&me.key, below));
                            stack.push((&me.value, below));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, below)),
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            stack.push((&me.key, below));
                            stack.push((&me.value, below));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, below)),
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, below));
                }
            }
        }
    }
    max
}

/// Deepest nesting of `(`, `[` and `{` outside string literals (a cheap, conservative bound
/// checked before the parser runs).
fn max_nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

struct Checker<'a> {
    schema: &'a Schema<'a>,
    source: &'a str,
    info: &'a cel::common::ast::SourceInfo,
    issues: Vec<Issue>,
    vars: VarSet,
    /// Comprehension variables in scope, innermost last.
    scopes: Vec<(String, Shape)>,
}

impl Checker<'_> {
    fn at(&self, id: u64) -> String {
        match self.info.offset_for(id) {
            Some((start, _)) => {
                let start = usize::try_from(start).unwrap_or(usize::MAX);
                let before = self.source.get(..start).unwrap_or(self.source);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!(" (at line {line}, column {column} of the expression)")
            }
            None => String::new(),
        }
    }

    fn issue(&mut self, code: &'static str, message: &str, id: u64) {
        let at = self.at(id);
        self.issues.push(Issue {
            code,
            message: format!("{message}{at}"),
        });
    }

    /// Marks every record field reachable from a value of `shape`, which is used as a whole.
    fn consume(&mut self, shape: Shape) {
        match shape {
            Shape::Record(kind, _) => self.vars.mark_all(kind),
            Shape::List(inner) | Shape::Map(inner, _) => self.consume(*inner),
            _ => {}
        }
    }

    /// Walks `e`, marking what its value is built from, and returns its shape.
    fn walk(&mut self, e: &IdedExpr, comprehensions: usize) -> Shape {
        match &e.expr {
            Expr::Ident(name) => self.ident(name, e.id),
            Expr::Select(select) => {
                let operand = self.walk(&select.operand, comprehensions);
                self.field(operand, &select.field, e.id)
            }
            Expr::Call(call) => {
                let target = call.target.as_ref().map(|t| self.walk(t, comprehensions));
                let args: Vec<Shape> = call
                    .args
                    .iter()
                    .map(|a| self.walk(a, comprehensions))
                    .collect();
                let name = call.func_name.as_str();
                // Arguments are used as whole values, except a container that is only indexed,
                // sized, or (for a map) tested for a key.
                if let Some(t) = target {
                    self.consume(t);
                }
                let literal_key = matches!(
                    call.args.get(1),
                    Some(IdedExpr {
                        expr: Expr::Literal(cel::common::ast::LiteralValue::String(_)),
                        ..
                    })
                );
                for (i, shape) in args.iter().enumerate() {
                    let container = matches!(shape, Shape::List(_) | Shape::Map(..));
                    let record = matches!(shape, Shape::Record(..));
                    let partial =
                        (name == "_[_]" && i == 0 && (container || (record && literal_key)))
                            || (name == "size" && container)
                            || (name == "@in" && i == 1 && matches!(shape, Shape::Map(..)));
                    if !partial {
                        self.consume(*shape);
                    }
                }
                if name == "_[_]" {
                    if let (
                        Some(container),
                        Some(IdedExpr {
                            expr: Expr::Literal(lit),
                            ..
                        }),
                    ) = (args.first(), call.args.get(1))
                        && let cel::common::ast::LiteralValue::String(key) = lit
                    {
                        return self.field(*container, key.inner(), e.id);
                    }
                    return match args.first() {
                        Some(Shape::List(inner) | Shape::Map(inner, _)) => **inner,
                        _ => Shape::Any,
                    };
                }
                if !OPERATORS.contains(&name) && !FUNCTIONS.contains(&name) {
                    let list = FUNCTIONS.join(", ");
                    self.issue(
                        "cel-unknown-function",
                        &format!("unknown function \"{name}\"; conditions may call {list}"),
                        e.id,
                    );
                }
                match name {
                    "size" | "int" | "uint" => Shape::Int,
                    "string" => Shape::Str,
                    _ => Shape::Any,
                }
            }
            Expr::Comprehension(c) => {
                if comprehensions >= MAX_COMPREHENSION_NESTING {
                    self.issue(
                        "cel-too-complex",
                        &format!("comprehensions nest deeper than {MAX_COMPREHENSION_NESTING}"),
                        e.id,
                    );
                }
                let range = self.walk(&c.iter_range, comprehensions);
                let element = match range {
                    Shape::List(inner) => *inner,
                    Shape::Map(..) | Shape::Params | Shape::Record(..) => {
                        self.issue("cel-map-iteration", "comprehensions over maps are not allowed: map iteration order is unspecified", e.id);
                        Shape::Any
                    }
                    _ => Shape::Any,
                };
                let init = self.walk(&c.accu_init, comprehensions + 1);
                self.consume(init);
                self.scopes.push((c.iter_var.clone(), element));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push((v2.clone(), Shape::Any));
                }
                self.scopes.push((c.accu_var.clone(), Shape::Any));
                let cond = self.walk(&c.loop_cond, comprehensions + 1);
                self.consume(cond);
                let step = self.walk(&c.loop_step, comprehensions + 1);
                self.consume(step);
                let result = self.walk(&c.result, comprehensions + 1);
                self.scopes.pop();
                if c.iter_var2.is_some() {
                    self.scopes.pop();
                }
                self.scopes.pop();
                result
            }
            Expr::List(list) => {
                for el in &list.elements {
                    let shape = self.walk(el, comprehensions);
                    self.consume(shape);
                }
                Shape::Any
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(m) = &entry.expr {
                        let key = self.walk(&m.key, comprehensions);
                        self.consume(key);
                        let value = self.walk(&m.value, comprehensions);
                        self.consume(value);
                    }
                }
                Shape::Any
            }
            Expr::Struct(_) => {
                self.issue(
                    "cel-unknown-function",
                    "message construction is not supported",
                    e.id,
                );
                Shape::Any
            }
            Expr::Literal(lit) => match lit {
                cel::common::ast::LiteralValue::String(_) => Shape::Str,
                cel::common::ast::LiteralValue::Int(_) => Shape::Int,
                cel::common::ast::LiteralValue::Boolean(_) => Shape::Bool,
                _ => Shape::Any,
            },
            Expr::Unspecified => Shape::Any,
        }
    }

    fn ident(&mut self, name: &str, id: u64) -> Shape {
        if let Some((_, shape)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return *shape;
        }
        if let Some(index) = VARIABLES.iter().position(|(n, _)| *n == name) {
            self.vars.insert(index);
            return VARIABLES[index].1;
        }
        let names: Vec<&str> = variable_names().collect();
        let hint = match crate::document::reader::nearest(name, &names) {
            Some(near) => format!("; did you mean \"{near}\"?"),
            None => String::new(),
        };
        self.issue(
            "cel-unknown-variable",
            &format!("unknown variable \"{name}\"{hint}"),
            id,
        );
        Shape::Any
    }

    fn field(&mut self, operand: Shape, field: &str, id: u64) -> Shape {
        match operand {
            Shape::Any => Shape::Any,
            Shape::Record(kind, fields) => {
                if let Some(index) = fields.iter().position(|(n, _)| *n == field) {
                    self.vars.mark(kind, index);
                    fields[index].1
                } else {
                    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
                    let hint = match crate::document::reader::nearest(field, &names) {
                        Some(near) => format!("did you mean \"{near}\"?"),
                        None => format!("known fields: {}", names.join(", ")),
                    };
                    self.issue(
                        "cel-unknown-field",
                        &format!("unknown field \"{field}\"; {hint}"),
                        id,
                    );
                    Shape::Any
                }
            }
            Shape::Params => {
                if let Some((_, ty)) = self.schema.params.iter().find(|(n, _)| n == field) {
                    match ty {
                        crate::bundle::ParamType::Integer | crate::bundle::ParamType::Duration => {
                            Shape::Int
                        }
                        crate::bundle::ParamType::String => Shape::Str,
                        crate::bundle::ParamType::Strings => STR_LIST,
                        crate::bundle::ParamType::Boolean => Shape::Bool,
                    }
                } else {
                    self.issue(
                        "cel-unknown-field",
                        &format!("unknown parameter \"{field}\" in params"),
                        id,
                    );
                    Shape::Any
                }
            }
            Shape::Map(inner, keys) => {
                let vocabulary = match keys {
                    MapKeys::Free => None,
                    MapKeys::Evidence => self.schema.evidence.map(|v| ("evidence", v)),
                    MapKeys::Checks => self.schema.checks.map(|v| ("checks", v)),
                };
                if let Some((what, known)) = vocabulary
                    && !known.iter().any(|k| k == field)
                {
                    self.issue(
                        "cel-unknown-field",
                        &format!("\"{field}\" is not in vocabulary.{what}"),
                        id,
                    );
                }
                *inner
            }
            Shape::Str | Shape::Int | Shape::Bool | Shape::List(_) => {
                self.issue(
                    "cel-unknown-field",
                    &format!("\"{field}\" selects a field of a value that has none"),
                    id,
                );
                Shape::Any
            }
        }
    }
}

/// Builds the CEL values of the variables of a request.
///
/// Values are built directly as CEL's own value types, borrowing every string from the
/// request (no copies), and only for the variables the matched conditions read.
pub(crate) struct Bindings<'r> {
    request: &'r Request,
    params: &'r [(String, ParamValue)],
}

type Boxed<'r> = Box<dyn Val + 'r>;

fn text(s: &str) -> Boxed<'_> {
    Box::new(CelString::from(s))
}

fn opt_text(s: Option<&String>) -> Boxed<'_> {
    Box::new(CelString::from(s.map_or("", String::as_str)))
}

fn text_list(items: &[String]) -> Boxed<'_> {
    Box::new(CelList::from(
        items.iter().map(|s| text(s)).collect::<Vec<_>>(),
    ))
}

fn int(v: i64) -> Boxed<'static> {
    Box::new(CelInt::from(v))
}

/// A record of kind `kind` with the fields that `needs` marks as read; each field is built
/// only if it is read.
type FieldBuilder<'f, 'r> = (&'static str, &'f dyn Fn() -> Boxed<'r>);

fn record<'r>(kind: RecordKind, needs: VarSet, entries: &[FieldBuilder<'_, 'r>]) -> Boxed<'r> {
    let map: HashMap<CelMapKey<'r>, Boxed<'r>> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| needs.reads(kind, *i))
        .map(|(_, (k, build))| (CelMapKey::from(*k), build()))
        .collect();
    Box::new(CelMap::from(map))
}

impl<'r> Bindings<'r> {
    pub(crate) fn new(request: &'r Request, params: &'r [(String, ParamValue)]) -> Self {
        Bindings { request, params }
    }

    /// A context with the variables in `vars` bound.
    pub(crate) fn context(&self, env: &Arc<cel::Env>, vars: VarSet) -> Context<'r, 'r> {
        let mut ctx = Context::with_env(Arc::clone(env));
        for (index, (name, _)) in VARIABLES.iter().enumerate() {
            if vars.contains(index) {
                ctx.add_variable_as_val(*name, self.value(name, vars));
            }
        }
        ctx
    }

    fn value(&self, name: &str, needs: VarSet) -> Boxed<'r> {
        let r = self.request;
        match name {
            "subject" => text(&r.subject),
            "environment" => text(&r.environment),
            "transition" => opt_text(r.transition.as_ref()),
            "repository" => opt_text(r.repository.as_ref()),
            "branch" => opt_text(r.branch.as_ref()),
            "service" => opt_text(r.service.as_ref()),
            "tier" => opt_text(r.tier.as_ref()),
            "risk" => opt_text(r.risk.as_ref()),
            "change_type" => opt_text(r.change_type.as_ref()),
            "author" => text(&r.author),
            "co_authors" => text_list(&r.co_authors),
            "requester" => opt_text(r.requester.as_ref()),
            "releaser" => opt_text(r.releaser.as_ref()),
            "approvals" => Box::new(CelList::from(
                r.approvals
                    .iter()
                    .map(|a| {
                        let kind = match a.kind {
                            ApprovalKind::Pr => "pr",
                            ApprovalKind::Production => "production",
                        };
                        record(
                            RecordKind::Approval,
                            needs,
                            &[
                                ("approver", &|| text(&a.approver)),
                                ("roles", &|| text_list(&a.roles)),
                                ("kind", &|| text(kind)),
                                ("at", &|| int(a.at.as_second())),
                                ("rationale", &|| opt_text(a.rationale.as_ref())),
                            ],
                        )
                    })
                    .collect::<Vec<_>>(),
            )),
            "evidence" => {
                let map: HashMap<CelMapKey<'r>, Boxed<'r>> = r
                    .evidence
                    .iter()
                    .map(|(k, v)| {
                        let v: Boxed<'r> = match v {
                            EvidenceValue::Text(t) => text(t),
                            EvidenceValue::Number(n) => int(*n),
                            EvidenceValue::Flag(b) => Box::new(CelBool::from(*b)),
                            EvidenceValue::List(items) => text_list(items),
                        };
                        (CelMapKey::from(k.as_str()), v)
                    })
                    .collect();
                Box::new(CelMap::from(map))
            }
            "checks" => {
                let map: HashMap<CelMapKey<'r>, Boxed<'r>> = r
                    .checks
                    .iter()
                    .map(|(k, c)| {
                        let status = match c.status {
                            CheckStatus::Passed => "passed",
                            CheckStatus::Failed => "failed",
                            CheckStatus::Na => "na",
                            CheckStatus::Pending => "pending",
                        };
                        let v = record(
                            RecordKind::Check,
                            needs,
                            &[
                                ("status", &|| text(status)),
                                ("rationale", &|| opt_text(c.rationale.as_ref())),
                                ("url", &|| opt_text(c.url.as_ref())),
                            ],
                        );
                        (CelMapKey::from(k.as_str()), v)
                    })
                    .collect();
                Box::new(CelMap::from(map))
            }
            "artifact" => {
                let (v, c, d) = r.artifact.as_ref().map_or(("", "", ""), |a| {
                    (a.version.as_str(), a.commit.as_str(), a.digest.as_str())
                });
                record(
                    RecordKind::Artifact,
                    needs,
                    &[
                        ("version", &|| text(v)),
                        ("commit", &|| text(c)),
                        ("digest", &|| text(d)),
                    ],
                )
            }
            "labels" => {
                let map: HashMap<CelMapKey<'r>, Boxed<'r>> = r
                    .labels
                    .iter()
                    .map(|(k, v)| (CelMapKey::from(k.as_str()), text(v)))
                    .collect();
                Box::new(CelMap::from(map))
            }
            "now" => int(r.now.as_second()),
            "emergency" => match &r.emergency {
                Some(e) => record(
                    RecordKind::Emergency,
                    needs,
                    &[
                        ("id", &|| opt_text(e.id.as_ref())),
                        ("reason", &|| opt_text(e.reason.as_ref())),
                        ("approver", &|| opt_text(e.approver.as_ref())),
                        ("approver_roles", &|| text_list(&e.approver_roles)),
                        ("scope", &|| opt_text(e.scope.as_ref())),
                        ("rollback_plan", &|| opt_text(e.rollback_plan.as_ref())),
                        ("follow_ups", &|| text_list(&e.follow_ups)),
                    ],
                ),
                None => record(
                    RecordKind::Emergency,
                    needs,
                    &[
                        ("id", &|| text("")),
                        ("reason", &|| text("")),
                        ("approver", &|| text("")),
                        ("approver_roles", &|| text_list(&[])),
                        ("scope", &|| text("")),
                        ("rollback_plan", &|| text("")),
                        ("follow_ups", &|| text_list(&[])),
                    ],
                ),
            },
            "promotions" => Box::new(CelList::from(
                r.context
                    .promotions
                    .iter()
                    .map(|p| {
                        record(
                            RecordKind::Promotion,
                            needs,
                            &[
                                ("environment", &|| text(&p.environment)),
                                ("version", &|| text(&p.version)),
                                ("commit", &|| text(&p.commit)),
                                ("digest", &|| text(&p.digest)),
                                ("at", &|| int(p.at.as_second())),
                            ],
                        )
                    })
                    .collect::<Vec<_>>(),
            )),
            "params" => {
                let map: HashMap<CelMapKey<'r>, Boxed<'r>> = self
                    .params
                    .iter()
                    .map(|(k, v)| {
                        let v: Boxed<'r> = match v {
                            ParamValue::Integer(i) => int(*i),
                            ParamValue::Duration(d) => int(d.seconds()),
                            ParamValue::String(t) => text(t),
                            ParamValue::Strings(items) => text_list(items),
                            ParamValue::Boolean(b) => Box::new(CelBool::from(*b)),
                        };
                        (CelMapKey::from(k.as_str()), v)
                    })
                    .collect();
                Box::new(CelMap::from(map))
            }
            _ => Box::new(CelNull),
        }
    }
}

impl Condition {
    /// Evaluates the condition in `ctx`.
    ///
    /// Returns `Ok(true|false)`, or a message for an evaluation error (including a result that
    /// is not a boolean). A panic inside the CEL interpreter is caught and reported as an
    /// error, so no request can bring evaluation down.
    pub(crate) fn evaluate(&self, ctx: &Context<'_, '_>) -> Result<bool, String> {
        let result = catch_unwind(AssertUnwindSafe(|| Value::resolve(&self.expr, ctx)));
        match result {
            Ok(Ok(Value::Bool(b))) => Ok(b),
            Ok(Ok(other)) => Err(format!(
                "condition returned {}, not a boolean",
                type_name(&other)
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the CEL interpreter failed on this input".to_owned()),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) => "an integer",
        Value::Float(_) => "a double",
        Value::String(_) => "a string",
        Value::Null => "null",
        _ => "a non-boolean value",
    }
}

/// The shared CEL environment: the standard library, nothing added.
pub(crate) fn environment() -> Arc<cel::Env> {
    Arc::new(cel::Env::stdlib())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::ParamType;

    fn schema() -> Schema<'static> {
        static PARAMS: std::sync::OnceLock<Vec<(String, ParamType)>> = std::sync::OnceLock::new();
        let params = PARAMS.get_or_init(|| vec![("min_approvals".to_owned(), ParamType::Integer)]);
        Schema {
            params,
            evidence: None,
            checks: None,
        }
    }

    fn issues(source: &str) -> Vec<(&'static str, String)> {
        compile(source, &schema())
            .expect_err(source)
            .into_iter()
            .map(|i| (i.code, i.message))
            .collect()
    }

    fn request() -> Request {
        Request::from_json(
            br#"{"subject": "CHG-1", "environment": "production", "author": "alice", "branch": "feature/ABC-12-x",
                "now": "2025-06-03T10:15:00Z",
                "approvals": [{"approver": "bob", "roles": ["Security"], "kind": "pr", "at": "2025-06-02T09:00:00Z"}],
                "evidence": {"critical": 0, "ticket": "ABC-12"},
                "checks": {"lint": {"status": "passed"}}}"#,
        )
        .unwrap()
    }

    fn eval(source: &str) -> Result<bool, String> {
        let cond = compile(source, &schema()).unwrap();
        let params = vec![("min_approvals".to_owned(), ParamValue::Integer(2))];
        let r = request();
        let b = Bindings::new(&r, &params);
        let ctx = b.context(&environment(), cond.vars());
        cond.evaluate(&ctx)
    }

    #[test]
    fn conditions_evaluate_over_the_request() {
        assert_eq!(eval("evidence.critical == 0"), Ok(true));
        assert_eq!(
            eval("approvals.exists(a, 'Security' in a.roles && a.approver != author)"),
            Ok(true)
        );
        assert_eq!(eval("size(approvals) >= params.min_approvals"), Ok(false));
        assert_eq!(
            eval("branch.matches('^feature/[A-Z]+-[0-9]+-[a-z0-9-]+$')"),
            Ok(true)
        );
        assert_eq!(
            eval("checks.lint.status == 'passed' && artifact.digest == ''"),
            Ok(true)
        );
        assert_eq!(eval("now - approvals[0].at < 86400 * 2"), Ok(true));
        assert_eq!(
            eval("emergency.reason == '' && size(emergency.follow_ups) == 0"),
            Ok(true)
        );
    }

    #[test]
    fn binding_only_read_fields_is_unobservable() {
        assert_eq!(eval("size(approvals[0]) == 5"), Ok(true));
        assert_eq!(
            eval("size(artifact) == 3 && artifact['digest'] == ''"),
            Ok(true)
        );
        assert_eq!(eval("approvals.map(a, a)[0].kind == 'pr'"), Ok(true));
        assert_eq!(
            eval(
                "approvals[0] == {'approver': 'bob', 'roles': ['Security'], 'kind': 'pr', 'at': 1748854800, 'rationale': ''}"
            ),
            Ok(true)
        );
        assert_eq!(eval("'lint' in checks && size(checks) == 1"), Ok(true));
    }

    /// Chains without brackets nest as deep as their source is long; checking them recursed
    /// once per level and overflowed a 2 MiB stack (a tokio worker's) at 1000 levels.
    #[test]
    fn deep_chains_without_brackets_are_too_complex_not_a_stack_overflow() {
        for source in [
            format!("risk{}", ".x".repeat(1000)),
            vec!["risk"; 280].join(" + "),
            format!("risk{}", "[0]".repeat(600)),
        ] {
            let checked = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || issues(&source))
                .unwrap()
                .join()
                .expect("checked without overflowing the stack");
            assert_eq!(checked.len(), 1, "{checked:?}");
            assert_eq!(checked[0].0, "cel-too-complex", "{checked:?}");
            assert!(checked[0].1.contains("at most 64"), "{checked:?}");
        }
        // The parser folds repeated unary operators (`!!x` is `x`): deep on the page, not in
        // the tree.
        for source in [
            format!("{}true", "!".repeat(2000)),
            format!("{}1 == 1", "-".repeat(2000)),
        ] {
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || compile(&source, &schema()).map(drop).unwrap())
                .unwrap()
                .join()
                .expect("checked without overflowing the stack");
        }
        // A long condition of the usual shape is within the limits.
        let usual = vec!["risk != 'x'"; 30].join(" && ");
        compile(&usual, &schema()).unwrap();
    }

    #[test]
    fn runtime_errors_and_non_booleans_are_errors() {
        assert!(
            eval("evidence.missing == 1")
                .unwrap_err()
                .contains("missing")
        );
        assert_eq!(
            eval("size(approvals)"),
            Err("condition returned an integer, not a boolean".to_owned())
        );
        assert!(eval("1 / (size(approvals) - 1) == 1").is_err());
    }

    #[test]
    fn references_are_checked() {
        assert_eq!(issues("risk == 'high' && rsik == 'low'"), vec![(
            "cel-unknown-variable",
            "unknown variable \"rsik\"; did you mean \"risk\"? (at line 1, column 19 of the expression)".to_owned()
        )]);
        assert_eq!(
            issues("artifact.digset == ''")[0].1,
            "unknown field \"digset\"; did you mean \"digest\"? (at line 1, column 9 of the expression)"
        );
        assert_eq!(
            issues("approvals.all(a, a.approvr != author)")[0].0,
            "cel-unknown-field"
        );
        assert_eq!(
            issues("params.max_approvals > 1")[0].1,
            "unknown parameter \"max_approvals\" in params (at line 1, column 7 of the expression)"
        );
        assert_eq!(issues("now.year > 1")[0].0, "cel-unknown-field");
        assert_eq!(
            issues("timestamp('2025-01-01T00:00:00Z') > now")[0].0,
            "cel-unknown-function"
        );
        assert_eq!(issues("evidence.all(k, k != '')")[0].0, "cel-map-iteration");
        assert_eq!(issues("risk ==")[0].0, "cel-syntax");
    }

    #[test]
    fn complexity_is_bounded() {
        assert_eq!(issues(&"(".repeat(13))[0].0, "cel-too-complex");
        assert_eq!(
            issues(&format!("'{}' == ''", "x".repeat(MAX_SOURCE_BYTES)))[0].0,
            "cel-too-complex"
        );
        let nested = "approvals.all(a, approvals.all(b, approvals.all(c, a == b)))";
        assert_eq!(issues(nested)[0].0, "cel-too-complex");
        assert!(
            compile(
                "approvals.all(a, approvals.exists(b, a.approver != b.approver))",
                &schema()
            )
            .is_ok()
        );
        assert!(
            compile(
                &format!("{}true{}", "(".repeat(12), ")".repeat(12)),
                &schema()
            )
            .is_ok()
        );
    }

    #[test]
    fn vocabularies_restrict_map_keys() {
        let evidence = vec!["ticket".to_owned()];
        let s = Schema {
            params: &[],
            evidence: Some(&evidence),
            checks: None,
        };
        assert!(compile("evidence.ticket != ''", &s).is_ok());
        let e = compile("evidence.tiket != ''", &s).unwrap_err();
        assert_eq!(
            e[0].message,
            "\"tiket\" is not in vocabulary.evidence (at line 1, column 9 of the expression)"
        );
    }
}
