//! Direct evaluation of conditions: a checked condition compiled to a tree over the request's
//! own fields, evaluated without the CEL interpreter.
//!
//! The interpreter needs the request as CEL values: a map per record, built for every
//! decision, and a scope per comprehension step that clones the element record. A [`Plan`]
//! resolves at compile time what the reference checker already knows: each variable to a
//! request field, each record field to its slot, each parameter to its index, each
//! comprehension variable to its depth. Evaluating it reads the request in place and
//! allocates nothing but the comprehension variables' stack.
//!
//! A plan is an accelerator, never a second semantics. It covers a subset of CEL (literals
//! of type `bool`, `int` and `string`; variables, fields, map members and indexes; `!`, `-`,
//! `&&`, `||`, `?:`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `+`, `-`, `*`, `/`, `%` on integers,
//! `in`, `size`, `startsWith`, `endsWith`, `contains`; `all`, `exists` and `exists_one` over
//! lists), and answers only when the interpreter would answer the same boolean without an
//! error: on any error (a missing map key, an index out of range, an overflow, an operand of
//! another type than it models) and for any result that is not a boolean it answers `None`,
//! and the condition is evaluated by the interpreter, whose result (error message included)
//! is the one recorded. A condition with something the subset lacks gets no plan at all.
//! `tests` checks, over generated conditions and requests, that a plan's every answer is the
//! interpreter's.

use cel::common::ast::{ComprehensionExpr, Expr, IdedExpr, LiteralValue};

use super::{STR_LIST, Shape, VARIABLES};
use crate::bundle::{ParamType, ParamValue};
use crate::request::{
    Approval, ApprovalKind, Artifact, CheckResult, CheckStatus, EmergencyRecord, EvidenceValue,
    Named, Promotion, Request,
};

/// A condition compiled for direct evaluation.
#[derive(Debug)]
pub(crate) struct Plan {
    root: Node,
}

/// A request variable, in the order of [`VARIABLES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Subject,
    Environment,
    Transition,
    Repository,
    Branch,
    Service,
    Tier,
    Risk,
    ChangeType,
    Author,
    CoAuthors,
    Requester,
    Releaser,
    Approvals,
    Evidence,
    Checks,
    Artifact,
    Labels,
    Now,
    Emergency,
    Promotions,
    Params,
}

impl Var {
    /// Every variable, in the order of [`VARIABLES`].
    const ALL: [Var; 22] = [
        Var::Subject,
        Var::Environment,
        Var::Transition,
        Var::Repository,
        Var::Branch,
        Var::Service,
        Var::Tier,
        Var::Risk,
        Var::ChangeType,
        Var::Author,
        Var::CoAuthors,
        Var::Requester,
        Var::Releaser,
        Var::Approvals,
        Var::Evidence,
        Var::Checks,
        Var::Artifact,
        Var::Labels,
        Var::Now,
        Var::Emergency,
        Var::Promotions,
        Var::Params,
    ];
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    In,
    Index,
    StartsWith,
    EndsWith,
    Contains,
}

/// A comprehension macro.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantifier {
    All,
    Exists,
    ExistsOne,
}

/// A node of a plan.
#[derive(Debug)]
enum Node {
    Bool(bool),
    Int(i64),
    Str(String),
    Var(Var),
    /// A comprehension variable: 0 is the innermost.
    Local(usize),
    /// A record field, by its slot in the record's shape.
    Field(Box<Node>, usize),
    /// A map member named in the source (`evidence.ticket`, `checks['lint']`).
    Key(Box<Node>, String),
    /// A parameter, by its index in the bundle's parameters.
    Param(usize),
    Not(Box<Node>),
    Neg(Box<Node>),
    Size(Box<Node>),
    Binary(Op, Box<(Node, Node)>),
    Cond(Box<(Node, Node, Node)>),
    Quantifier(Quantifier, Box<(Node, Node)>),
}

/// A value during direct evaluation, borrowed from the request, the parameters or the plan.
#[derive(Clone, Copy, Debug)]
enum V<'a> {
    Bool(bool),
    Int(i64),
    Str(&'a str),
    Strs(&'a [String]),
    Approvals(&'a [Approval]),
    Approval(&'a Approval),
    Promotions(&'a [Promotion]),
    Promotion(&'a Promotion),
    Artifact(Option<&'a Artifact>),
    Emergency(Option<&'a EmergencyRecord>),
    Check(&'a CheckResult),
    Evidence(&'a Named<EvidenceValue>),
    Checks(&'a Named<CheckResult>),
    Labels(&'a Named<String>),
}

/// Why direct evaluation gave up: the interpreter decides.
struct GiveUp;

type Eval<'a> = Result<V<'a>, GiveUp>;

impl Plan {
    /// Compiles a checked condition, or `None` if it uses something the subset lacks.
    pub(crate) fn build(expr: &IdedExpr, params: &[(String, ParamType)]) -> Option<Plan> {
        let mut builder = Builder {
            params,
            scopes: Vec::new(),
        };
        let (root, _) = builder.node(expr)?;
        Some(Plan { root })
    }

    /// Evaluates the plan over `request` with the parameter values `params` (in the order of
    /// the bundle's parameters): `Some` with the interpreter's result, or `None` when the
    /// interpreter must decide.
    pub(crate) fn evaluate(&self, request: &Request, params: &[&ParamValue]) -> Option<bool> {
        let inputs = Inputs { request, params };
        let mut locals = Vec::new();
        match inputs.eval(&self.root, &mut locals) {
            Ok(V::Bool(b)) => Some(b),
            _ => None,
        }
    }
}

/// Compiles expressions, with the comprehension variables in scope (innermost last).
struct Builder<'s, 'e> {
    params: &'s [(String, ParamType)],
    scopes: Vec<(&'e str, Shape)>,
}

impl<'e> Builder<'_, 'e> {
    fn node(&mut self, e: &'e IdedExpr) -> Option<(Node, Shape)> {
        match &e.expr {
            Expr::Literal(LiteralValue::Boolean(b)) => Some((Node::Bool(*b.inner()), Shape::Bool)),
            Expr::Literal(LiteralValue::Int(i)) => Some((Node::Int(*i.inner()), Shape::Int)),
            Expr::Literal(LiteralValue::String(s)) => {
                Some((Node::Str(s.inner().to_owned()), Shape::Str))
            }
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                if select.test {
                    return None;
                }
                let operand = self.node(&select.operand)?;
                self.member(operand, &select.field)
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                match (call.target.as_deref(), call.args.as_slice()) {
                    (None, [a]) => {
                        let (a, _) = self.node(a)?;
                        match name {
                            "!_" => Some((Node::Not(Box::new(a)), Shape::Bool)),
                            "-_" => Some((Node::Neg(Box::new(a)), Shape::Int)),
                            "size" => Some((Node::Size(Box::new(a)), Shape::Int)),
                            _ => None,
                        }
                    }
                    (Some(target), []) if name == "size" => {
                        let (t, _) = self.node(target)?;
                        Some((Node::Size(Box::new(t)), Shape::Int))
                    }
                    (Some(target), [arg]) => {
                        let op = match name {
                            "startsWith" => Op::StartsWith,
                            "endsWith" => Op::EndsWith,
                            "contains" => Op::Contains,
                            _ => return None,
                        };
                        let (t, _) = self.node(target)?;
                        let (a, _) = self.node(arg)?;
                        Some((Node::Binary(op, Box::new((t, a))), Shape::Bool))
                    }
                    (None, [a, b]) => self.binary(name, a, b),
                    (None, [c, a, b]) if name == "_?_:_" => {
                        let (c, _) = self.node(c)?;
                        let (a, _) = self.node(a)?;
                        let (b, _) = self.node(b)?;
                        Some((Node::Cond(Box::new((c, a, b))), Shape::Any))
                    }
                    _ => None,
                }
            }
            Expr::Comprehension(c) => self.comprehension(c),
            _ => None,
        }
    }

    fn ident(&self, name: &str) -> Option<(Node, Shape)> {
        if let Some(depth) = self.scopes.iter().rev().position(|(n, _)| *n == name) {
            let shape = self.scopes[self.scopes.len() - 1 - depth].1;
            return Some((Node::Local(depth), shape));
        }
        let index = VARIABLES.iter().position(|(n, _)| *n == name)?;
        Some((Node::Var(Var::ALL[index]), VARIABLES[index].1))
    }

    /// `operand.field`, or `operand['field']`.
    fn member(&self, (operand, shape): (Node, Shape), field: &str) -> Option<(Node, Shape)> {
        match shape {
            Shape::Record(_, fields) => {
                let slot = fields.iter().position(|(n, _)| *n == field)?;
                Some((Node::Field(Box::new(operand), slot), fields[slot].1))
            }
            Shape::Map(inner, _) => Some((Node::Key(Box::new(operand), field.to_owned()), *inner)),
            Shape::Params if matches_var(&operand, Var::Params) => {
                let index = self.params.iter().position(|(n, _)| n == field)?;
                let shape = match self.params[index].1 {
                    ParamType::Integer | ParamType::Duration => Shape::Int,
                    ParamType::String => Shape::Str,
                    ParamType::Strings => STR_LIST,
                    ParamType::Boolean => Shape::Bool,
                };
                Some((Node::Param(index), shape))
            }
            _ => None,
        }
    }

    fn binary(&mut self, name: &str, a: &'e IdedExpr, b: &'e IdedExpr) -> Option<(Node, Shape)> {
        if name == "_[_]"
            && let Expr::Literal(LiteralValue::String(key)) = &b.expr
        {
            let operand = self.node(a)?;
            if let Shape::Record(..) | Shape::Map(..) = operand.1 {
                return self.member(operand, key.inner());
            }
            let (a, _) = operand;
            return Some((
                Node::Binary(Op::Index, Box::new((a, Node::Str(key.inner().to_owned())))),
                Shape::Any,
            ));
        }
        let (op, shape) = match name {
            "_&&_" => (Op::And, Shape::Bool),
            "_||_" => (Op::Or, Shape::Bool),
            "_==_" => (Op::Eq, Shape::Bool),
            "_!=_" => (Op::Ne, Shape::Bool),
            "_<_" => (Op::Lt, Shape::Bool),
            "_<=_" => (Op::Le, Shape::Bool),
            "_>_" => (Op::Gt, Shape::Bool),
            "_>=_" => (Op::Ge, Shape::Bool),
            "_+_" => (Op::Add, Shape::Int),
            "_-_" => (Op::Sub, Shape::Int),
            "_*_" => (Op::Mul, Shape::Int),
            "_/_" => (Op::Div, Shape::Int),
            "_%_" => (Op::Rem, Shape::Int),
            "@in" => (Op::In, Shape::Bool),
            "_[_]" => (Op::Index, Shape::Any),
            _ => return None,
        };
        let (a, a_shape) = self.node(a)?;
        let (b, _) = self.node(b)?;
        let shape = match (op, a_shape) {
            (Op::Index, Shape::List(inner)) => *inner,
            _ => shape,
        };
        Some((Node::Binary(op, Box::new((a, b))), shape))
    }

    /// `all`, `exists` and `exists_one` over a list, as the parser expands them; any other
    /// comprehension has no plan.
    fn comprehension(&mut self, c: &'e ComprehensionExpr) -> Option<(Node, Shape)> {
        if c.iter_var2.is_some() || c.accu_var != ACCU {
            return None;
        }
        let (quantifier, predicate) = quantifier_of(c)?;
        let (range, shape) = self.node(&c.iter_range)?;
        let Shape::List(element) = shape else {
            return None;
        };
        self.scopes.push((c.iter_var.as_str(), *element));
        let body = self.node(predicate);
        self.scopes.pop();
        let (body, _) = body?;
        Some((
            Node::Quantifier(quantifier, Box::new((range, body))),
            Shape::Bool,
        ))
    }
}

/// The accumulator of the parser's comprehension macros.
const ACCU: &str = "@result";

fn matches_var(node: &Node, var: Var) -> bool {
    match node {
        Node::Var(v) => *v == var,
        _ => false,
    }
}

fn is_accu(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Ident(name) => name == ACCU,
        _ => false,
    }
}

fn is_bool(e: &IdedExpr, value: bool) -> bool {
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => *b.inner() == value,
        _ => false,
    }
}

fn is_int(e: &IdedExpr, value: i64) -> bool {
    match &e.expr {
        Expr::Literal(LiteralValue::Int(i)) => *i.inner() == value,
        _ => false,
    }
}

/// `name(args)` without a target, if `e` is that call.
fn call<'e>(e: &'e IdedExpr, name: &str) -> Option<&'e [IdedExpr]> {
    match &e.expr {
        Expr::Call(c) if c.target.is_none() && c.func_name == name => Some(&c.args),
        _ => None,
    }
}

/// The macro a comprehension is the expansion of, and its predicate.
///
/// - `all`: init `true`, condition `@not_strictly_false(@result)`, step `@result && p`.
/// - `exists`: init `false`, condition `@not_strictly_false(!@result)`, step `@result || p`.
/// - `exists_one`: init `0`, condition `true`, step `p ? @result + 1 : @result`, result
///   `@result == 1`.
fn quantifier_of(c: &ComprehensionExpr) -> Option<(Quantifier, &IdedExpr)> {
    let strictly = call(&c.loop_cond, "@not_strictly_false").and_then(|a| match a {
        [x] => Some(x),
        _ => None,
    });
    if is_bool(&c.accu_init, true) && is_accu(&c.result) {
        if !is_accu(strictly?) {
            return None;
        }
        return match call(&c.loop_step, "_&&_")? {
            [accu, p] if is_accu(accu) => Some((Quantifier::All, p)),
            _ => None,
        };
    }
    if is_bool(&c.accu_init, false) && is_accu(&c.result) {
        match call(strictly?, "!_")? {
            [x] if is_accu(x) => {}
            _ => return None,
        }
        return match call(&c.loop_step, "_||_")? {
            [accu, p] if is_accu(accu) => Some((Quantifier::Exists, p)),
            _ => None,
        };
    }
    if is_int(&c.accu_init, 0) && is_bool(&c.loop_cond, true) {
        match call(&c.result, "_==_")? {
            [accu, one] if is_accu(accu) && is_int(one, 1) => {}
            _ => return None,
        }
        let [p, then, otherwise] = call(&c.loop_step, "_?_:_")? else {
            return None;
        };
        match call(then, "_+_")? {
            [accu, one] if is_accu(accu) && is_int(one, 1) => {}
            _ => return None,
        }
        return is_accu(otherwise).then_some((Quantifier::ExistsOne, p));
    }
    None
}

/// What a plan reads.
struct Inputs<'a> {
    request: &'a Request,
    params: &'a [&'a ParamValue],
}

fn opt(s: Option<&String>) -> &str {
    s.map_or("", String::as_str)
}

fn evidence(v: &EvidenceValue) -> V<'_> {
    match v {
        EvidenceValue::Text(t) => V::Str(t),
        EvidenceValue::Number(n) => V::Int(*n),
        EvidenceValue::Flag(b) => V::Bool(*b),
        EvidenceValue::List(items) => V::Strs(items),
    }
}

fn size(v: V<'_>) -> Result<i64, GiveUp> {
    let n = match v {
        V::Str(s) => s.chars().count(),
        V::Strs(l) => l.len(),
        V::Approvals(l) => l.len(),
        V::Promotions(l) => l.len(),
        V::Evidence(m) => m.len(),
        V::Checks(m) => m.len(),
        V::Labels(m) => m.len(),
        _ => return Err(GiveUp),
    };
    i64::try_from(n).map_err(|_| GiveUp)
}

/// The field in `slot` of a record (the order of the record's shape in the parent module).
fn field(record: V<'_>, slot: usize) -> Eval<'_> {
    const NONE: &[String] = &[];
    Ok(match (record, slot) {
        (V::Approval(a), 0) => V::Str(&a.approver),
        (V::Approval(a), 1) => V::Strs(&a.roles),
        (V::Approval(a), 2) => V::Str(match a.kind {
            ApprovalKind::Pr => "pr",
            ApprovalKind::Production => "production",
        }),
        (V::Approval(a), 3) => V::Int(a.at.as_second()),
        (V::Approval(a), 4) => V::Str(opt(a.rationale.as_ref())),
        (V::Check(c), 0) => V::Str(match c.status {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Na => "na",
            CheckStatus::Pending => "pending",
        }),
        (V::Check(c), 1) => V::Str(opt(c.rationale.as_ref())),
        (V::Check(c), 2) => V::Str(opt(c.url.as_ref())),
        (V::Artifact(a), 0) => V::Str(a.map_or("", |a| &a.version)),
        (V::Artifact(a), 1) => V::Str(a.map_or("", |a| &a.commit)),
        (V::Artifact(a), 2) => V::Str(a.map_or("", |a| &a.digest)),
        (V::Emergency(e), 0) => V::Str(e.map_or("", |e| opt(e.id.as_ref()))),
        (V::Emergency(e), 1) => V::Str(e.map_or("", |e| opt(e.reason.as_ref()))),
        (V::Emergency(e), 2) => V::Str(e.map_or("", |e| opt(e.approver.as_ref()))),
        (V::Emergency(e), 3) => V::Strs(e.map_or(NONE, |e| &e.approver_roles)),
        (V::Emergency(e), 4) => V::Str(e.map_or("", |e| opt(e.scope.as_ref()))),
        (V::Emergency(e), 5) => V::Str(e.map_or("", |e| opt(e.rollback_plan.as_ref()))),
        (V::Emergency(e), 6) => V::Strs(e.map_or(NONE, |e| &e.follow_ups)),
        (V::Promotion(p), 0) => V::Str(&p.environment),
        (V::Promotion(p), 1) => V::Str(&p.version),
        (V::Promotion(p), 2) => V::Str(&p.commit),
        (V::Promotion(p), 3) => V::Str(&p.digest),
        (V::Promotion(p), 4) => V::Int(p.at.as_second()),
        _ => return Err(GiveUp),
    })
}

/// The member `key` of a map.
fn key<'a>(map: V<'a>, key: &str) -> Eval<'a> {
    match map {
        V::Evidence(m) => m.get(key).map(evidence),
        V::Checks(m) => m.get(key).map(V::Check),
        V::Labels(m) => m.get(key).map(|v| V::Str(v)),
        _ => None,
    }
    .ok_or(GiveUp)
}

/// The `i`-th element of a list.
fn element(list: V<'_>, i: i64) -> Eval<'_> {
    let i = usize::try_from(i).map_err(|_| GiveUp)?;
    match list {
        V::Strs(l) => l.get(i).map(|s| V::Str(s)),
        V::Approvals(l) => l.get(i).map(V::Approval),
        V::Promotions(l) => l.get(i).map(V::Promotion),
        _ => None,
    }
    .ok_or(GiveUp)
}

fn int_op(op: Op, a: i64, b: i64) -> Option<i64> {
    match op {
        Op::Add => a.checked_add(b),
        Op::Sub => a.checked_sub(b),
        Op::Mul => a.checked_mul(b),
        Op::Div => a.checked_div(b),
        Op::Rem => a.checked_rem(b),
        _ => None,
    }
}

impl<'a> Inputs<'a> {
    fn var(&self, var: Var) -> Eval<'a> {
        let r = self.request;
        Ok(match var {
            Var::Subject => V::Str(&r.subject),
            Var::Environment => V::Str(&r.environment),
            Var::Transition => V::Str(opt(r.transition.as_ref())),
            Var::Repository => V::Str(opt(r.repository.as_ref())),
            Var::Branch => V::Str(opt(r.branch.as_ref())),
            Var::Service => V::Str(opt(r.service.as_ref())),
            Var::Tier => V::Str(opt(r.tier.as_ref())),
            Var::Risk => V::Str(opt(r.risk.as_ref())),
            Var::ChangeType => V::Str(opt(r.change_type.as_ref())),
            Var::Author => V::Str(&r.author),
            Var::CoAuthors => V::Strs(&r.co_authors),
            Var::Requester => V::Str(opt(r.requester.as_ref())),
            Var::Releaser => V::Str(opt(r.releaser.as_ref())),
            Var::Approvals => V::Approvals(&r.approvals),
            Var::Evidence => V::Evidence(&r.evidence),
            Var::Checks => V::Checks(&r.checks),
            Var::Artifact => V::Artifact(r.artifact.as_ref()),
            Var::Labels => V::Labels(&r.labels),
            Var::Now => V::Int(r.now.as_second()),
            Var::Emergency => V::Emergency(r.emergency.as_deref()),
            Var::Promotions => V::Promotions(&r.context.promotions),
            Var::Params => return Err(GiveUp),
        })
    }

    fn param(&self, index: usize) -> Eval<'a> {
        Ok(match self.params.get(index).ok_or(GiveUp)? {
            ParamValue::Integer(i) => V::Int(*i),
            ParamValue::Duration(d) => V::Int(d.seconds()),
            ParamValue::String(s) => V::Str(s),
            ParamValue::Strings(items) => V::Strs(items),
            ParamValue::Boolean(b) => V::Bool(*b),
        })
    }

    fn boolean(&self, node: &'a Node, locals: &mut Vec<V<'a>>) -> Result<bool, GiveUp> {
        match self.eval(node, locals)? {
            V::Bool(b) => Ok(b),
            _ => Err(GiveUp),
        }
    }

    fn eval(&self, node: &'a Node, locals: &mut Vec<V<'a>>) -> Eval<'a> {
        match node {
            Node::Bool(b) => Ok(V::Bool(*b)),
            Node::Int(i) => Ok(V::Int(*i)),
            Node::Str(s) => Ok(V::Str(s)),
            Node::Var(var) => self.var(*var),
            Node::Local(depth) => {
                let at = locals.len().checked_sub(depth + 1).ok_or(GiveUp)?;
                locals.get(at).copied().ok_or(GiveUp)
            }
            Node::Field(record, slot) => field(self.eval(record, locals)?, *slot),
            Node::Key(map, name) => key(self.eval(map, locals)?, name),
            Node::Param(index) => self.param(*index),
            Node::Not(x) => Ok(V::Bool(!self.boolean(x, locals)?)),
            Node::Neg(x) => match self.eval(x, locals)? {
                V::Int(i) => i.checked_neg().map(V::Int).ok_or(GiveUp),
                _ => Err(GiveUp),
            },
            Node::Size(x) => size(self.eval(x, locals)?).map(V::Int),
            Node::Cond(parts) => {
                let (c, a, b) = &**parts;
                if self.boolean(c, locals)? {
                    self.eval(a, locals)
                } else {
                    self.eval(b, locals)
                }
            }
            Node::Binary(Op::And, parts) => {
                let (a, b) = &**parts;
                Ok(V::Bool(
                    self.boolean(a, locals)? && self.boolean(b, locals)?,
                ))
            }
            Node::Binary(Op::Or, parts) => {
                let (a, b) = &**parts;
                Ok(V::Bool(
                    self.boolean(a, locals)? || self.boolean(b, locals)?,
                ))
            }
            Node::Binary(op, parts) => {
                let (a, b) = &**parts;
                let a = self.eval(a, locals)?;
                let b = self.eval(b, locals)?;
                binary(*op, a, b)
            }
            Node::Quantifier(quantifier, parts) => {
                let (range, body) = &**parts;
                let range = self.eval(range, locals)?;
                let count = match range {
                    V::Strs(l) => l.len(),
                    V::Approvals(l) => l.len(),
                    V::Promotions(l) => l.len(),
                    _ => return Err(GiveUp),
                };
                let mut hits = 0usize;
                for i in 0..count {
                    let item = element(range, i64::try_from(i).map_err(|_| GiveUp)?)?;
                    locals.push(item);
                    let hit = self.boolean(body, locals);
                    locals.pop();
                    match (quantifier, hit?) {
                        (Quantifier::All, false) => return Ok(V::Bool(false)),
                        (Quantifier::Exists, true) => return Ok(V::Bool(true)),
                        (_, true) => hits += 1,
                        (_, false) => {}
                    }
                }
                Ok(V::Bool(match quantifier {
                    Quantifier::All => true,
                    Quantifier::Exists => false,
                    Quantifier::ExistsOne => hits == 1,
                }))
            }
        }
    }
}

/// A binary operator other than `&&` and `||` (which short-circuit).
fn binary<'a>(op: Op, a: V<'a>, b: V<'a>) -> Eval<'a> {
    let truth = match (op, a, b) {
        (Op::Eq | Op::Ne, V::Bool(x), V::Bool(y)) => (x == y) == (op == Op::Eq),
        (Op::Eq | Op::Ne, V::Int(x), V::Int(y)) => (x == y) == (op == Op::Eq),
        (Op::Eq | Op::Ne, V::Str(x), V::Str(y)) => (x == y) == (op == Op::Eq),
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, V::Int(x), V::Int(y)) => compare(op, x.cmp(&y)),
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, V::Str(x), V::Str(y)) => compare(op, x.cmp(y)),
        (Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem, V::Int(x), V::Int(y)) => {
            return int_op(op, x, y).map(V::Int).ok_or(GiveUp);
        }
        (Op::In, V::Str(x), V::Strs(list)) => list.iter().any(|s| s == x),
        (Op::In, V::Str(x), V::Evidence(m)) => m.contains_key(x),
        (Op::In, V::Str(x), V::Checks(m)) => m.contains_key(x),
        (Op::In, V::Str(x), V::Labels(m)) => m.contains_key(x),
        (Op::Index, list, V::Int(i)) => return element(list, i),
        (Op::Index, map, V::Str(k)) => return key(map, k),
        (Op::StartsWith, V::Str(s), V::Str(p)) => s.starts_with(p),
        (Op::EndsWith, V::Str(s), V::Str(p)) => s.ends_with(p),
        (Op::Contains, V::Str(s), V::Str(p)) => s.contains(p),
        _ => return Err(GiveUp),
    };
    Ok(V::Bool(truth))
}

fn compare(op: Op, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    match op {
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Gt => ordering == Greater,
        _ => ordering != Less,
    }
}

#[cfg(test)]
mod tests {
    //! A plan answers only what the interpreter answers: over generated conditions (typed
    //! mostly, with values of the wrong type mixed in) and generated requests, every `Some`
    //! from [`Plan::evaluate`] is the interpreter's `Ok` result.

    use proptest::prelude::*;

    use super::super::{Bindings, Condition, Schema, compile, environment};
    use crate::bundle::{ParamType, ParamValue};
    use crate::duration::Duration;
    use crate::request::Request;

    /// A small deterministic generator (xorshift64*), driven by a seed from proptest.
    struct Gen(u64);

    /// What a comprehension variable in scope holds.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Elem {
        Approval,
        Promotion,
        Str,
    }

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        fn local(&mut self, locals: &[(String, Elem)], elem: Elem) -> Option<String> {
            let found: Vec<&String> = locals
                .iter()
                .filter(|(_, e)| *e == elem)
                .map(|(n, _)| n)
                .collect();
            (!found.is_empty()).then(|| found[self.below(found.len())].clone())
        }

        /// Any expression: a value of a random type.
        fn any(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            match self.below(5) {
                0 => self.boolean(d, locals),
                1 => self.int(d, locals),
                2 => self.string(d, locals),
                3 => self.list(d, locals),
                _ => self
                    .pick(&["approvals", "evidence", "checks", "labels", "artifact"])
                    .to_owned(),
            }
        }

        fn boolean(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            if d == 0 || self.chance(20) {
                return self
                    .pick(&[
                        "true",
                        "false",
                        "params.strict",
                        "evidence.flag",
                        "'ticket' in evidence",
                        "'lint' in checks",
                        "'team' in labels",
                    ])
                    .to_owned();
            }
            let d = d - 1;
            match self.below(19) {
                0 => format!("{} && {}", self.boolean(d, locals), self.boolean(d, locals)),
                1 => format!(
                    "({} || {})",
                    self.boolean(d, locals),
                    self.boolean(d, locals)
                ),
                2 => format!("!({})", self.boolean(d, locals)),
                3 => {
                    let op = self.pick(&["<", "<=", ">", ">=", "==", "!="]);
                    format!("{} {op} {}", self.int(d, locals), self.int(d, locals))
                }
                4 => {
                    let op = self.pick(&["<", "<=", ">", ">=", "==", "!="]);
                    format!("{} {op} {}", self.string(d, locals), self.string(d, locals))
                }
                5 => {
                    let op = self.pick(&["==", "!=", "<"]);
                    format!("{} {op} {}", self.any(d, locals), self.any(d, locals))
                }
                6 => format!("{} in {}", self.string(d, locals), self.list(d, locals)),
                7 => format!("{} in {}", self.any(d, locals), self.any(d, locals)),
                8 => {
                    let f = self.pick(&["startsWith", "endsWith", "contains"]);
                    format!("{}.{f}({})", self.string(d, locals), self.string(d, locals))
                }
                9 => format!(
                    "({} ? {} : {})",
                    self.boolean(d, locals),
                    self.boolean(d, locals),
                    self.boolean(d, locals)
                ),
                10..=12 => self.quantified(d, locals),
                13 => format!("{} == {}", self.boolean(d, locals), self.boolean(d, locals)),
                14 => {
                    let name = self.pick(&["ticket", "missing", "critical"]);
                    format!("\"{name}\" in evidence && evidence.{name} != ''")
                }
                15 => self.any(d, locals),
                16 => format!("size({}) > 0", self.any(d, locals)),
                // Outside the subset: conditions with these have no plan.
                17 => self
                    .pick(&[
                        "approvals.map(a, a.approver).size() > 0",
                        "string(now) != ''",
                        "branch.matches('^main$')",
                        "has(artifact.digest)",
                        "1u == 1u",
                        "[1, 2] == [1, 2]",
                    ])
                    .to_owned(),
                _ => format!(
                    "{} == {}",
                    self.string(d, locals),
                    self.pick(&["'alice'", "'production'", "''"])
                ),
            }
        }

        fn quantified(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            let macro_ = self.pick(&["exists", "all", "exists_one"]);
            let (range, elem) = match self.below(5) {
                0 | 1 => ("approvals".to_owned(), Elem::Approval),
                2 => ("promotions".to_owned(), Elem::Promotion),
                _ => (self.list(d, locals), Elem::Str),
            };
            // Sometimes shadow a request variable or an outer comprehension variable.
            let var = self
                .pick(&["a", "b", "x", "author", "risk", "a"])
                .to_owned();
            locals.push((var.clone(), elem));
            let body = self.boolean(d, locals);
            locals.pop();
            format!("{range}.{macro_}({var}, {body})")
        }

        fn int(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            if d == 0 || self.chance(25) {
                if self.chance(30) {
                    if let Some(a) = self.local(locals, Elem::Approval) {
                        return format!("{a}.at");
                    }
                    if let Some(p) = self.local(locals, Elem::Promotion) {
                        return format!("{p}['at']");
                    }
                }
                return self
                    .pick(&[
                        "0",
                        "1",
                        "2",
                        "-3",
                        "9223372036854775807",
                        "now",
                        "size(approvals)",
                        "params.limit",
                        "params.window",
                        "evidence.n",
                        "evidence.critical",
                    ])
                    .to_owned();
            }
            let d = d - 1;
            match self.below(8) {
                0..=2 => {
                    let op = self.pick(&["+", "-", "*", "/", "%"]);
                    format!("({} {op} {})", self.int(d, locals), self.int(d, locals))
                }
                3 => format!("-({})", self.int(d, locals)),
                4 => format!("size({})", self.string(d, locals)),
                5 => format!("{}.size()", self.list(d, locals)),
                6 => format!(
                    "({} ? {} : {})",
                    self.boolean(d, locals),
                    self.int(d, locals),
                    self.int(d, locals)
                ),
                _ => format!("approvals[{}].at", self.int(d, locals)),
            }
        }

        fn string(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            if d == 0 || self.chance(30) {
                if self.chance(40) {
                    if let Some(a) = self.local(locals, Elem::Approval) {
                        let f = self.pick(&["approver", "kind", "rationale"]);
                        return if self.chance(30) {
                            format!("{a}['{f}']")
                        } else {
                            format!("{a}.{f}")
                        };
                    }
                    if let Some(p) = self.local(locals, Elem::Promotion) {
                        let f = self.pick(&["environment", "version", "commit", "digest"]);
                        return format!("{p}.{f}");
                    }
                    if let Some(x) = self.local(locals, Elem::Str) {
                        return x;
                    }
                }
                return self
                    .pick(&[
                        "'alice'",
                        "''",
                        "'Security'",
                        "'ü-x'",
                        "'a'",
                        "author",
                        "risk",
                        "branch",
                        "environment",
                        "requester",
                        "subject",
                        "artifact.digest",
                        "artifact.version",
                        "checks.lint.status",
                        "checks['sast'].url",
                        "labels.team",
                        "labels['missing']",
                        "emergency.reason",
                        "emergency.scope",
                        "params.team",
                        "evidence.ticket",
                        "approvals[0].approver",
                        "approvals[1].kind",
                        "promotions[0].environment",
                    ])
                    .to_owned();
            }
            let d = d - 1;
            match self.below(3) {
                0 => format!(
                    "({} ? {} : {})",
                    self.boolean(d, locals),
                    self.string(d, locals),
                    self.string(d, locals)
                ),
                1 => format!("{}[{}]", self.list(d, locals), self.int(d, locals)),
                _ => format!("evidence[{}]", self.string(d, locals)),
            }
        }

        fn list(&mut self, d: usize, locals: &mut Vec<(String, Elem)>) -> String {
            if self.chance(30)
                && let Some(a) = self.local(locals, Elem::Approval)
            {
                return format!("{a}.roles");
            }
            if d > 0 && self.chance(15) {
                return format!("approvals[{}].roles", self.int(d - 1, locals));
            }
            self.pick(&[
                "co_authors",
                "params.names",
                "evidence.list",
                "emergency.follow_ups",
                "emergency.approver_roles",
            ])
            .to_owned()
        }

        /// A request as JSON.
        fn request(&mut self) -> String {
            let names = ["alice", "bob", "sam", "rita"];
            let mut fields = vec![
                "\"subject\": \"CHG-1\"".to_owned(),
                format!("\"environment\": \"{}\"", self.pick(&["production", "dev"])),
                format!("\"author\": \"{}\"", self.pick(&names)),
                "\"now\": \"2025-06-03T10:00:00Z\"".to_owned(),
            ];
            for (field, values) in [
                ("risk", &["high", "low", "ü-x"][..]),
                ("branch", &["main", "feature/a-1", ""][..]),
                ("requester", &names[..]),
            ] {
                if self.chance(70) {
                    let v = self.pick(values);
                    if !v.is_empty() {
                        fields.push(format!("\"{field}\": \"{v}\""));
                    }
                }
            }
            let co: Vec<String> = names
                .iter()
                .filter(|_| self.chance(30))
                .map(|n| format!("\"{n}\""))
                .collect();
            fields.push(format!("\"co_authors\": [{}]", co.join(", ")));
            let approvals: Vec<String> = (0..self.below(4))
                .map(|_| {
                    let roles: Vec<String> = ["Security", "Developer", "QA"]
                        .iter()
                        .filter(|_| self.chance(50))
                        .map(|r| format!("\"{r}\""))
                        .collect();
                    let rationale = if self.chance(50) {
                        ", \"rationale\": \"ok\""
                    } else {
                        ""
                    };
                    format!(
                        "{{\"approver\": \"{}\", \"roles\": [{}], \"kind\": \"{}\", \"at\": \"{}\"{rationale}}}",
                        self.pick(&names),
                        roles.join(", "),
                        self.pick(&["pr", "production"]),
                        self.pick(&["2025-06-02T12:00:00Z", "2025-06-04T00:00:00Z"]),
                    )
                })
                .collect();
            fields.push(format!("\"approvals\": [{}]", approvals.join(", ")));
            let mut evidence = Vec::new();
            for (key, values) in [
                ("ticket", &["\"ABC-1\"", "\"\"", "7"][..]),
                (
                    "critical",
                    &["0", "3", "-9223372036854775808", "\"none\""][..],
                ),
                ("n", &["9223372036854775807", "2", "0"][..]),
                ("flag", &["true", "false", "1"][..]),
                ("list", &["[\"a\", \"alice\"]", "[]", "\"alice\""][..]),
            ] {
                if self.chance(60) {
                    evidence.push(format!("\"{key}\": {}", self.pick(values)));
                }
            }
            fields.push(format!("\"evidence\": {{{}}}", evidence.join(", ")));
            let mut checks = Vec::new();
            if self.chance(60) {
                checks.push(format!(
                    "\"lint\": {{\"status\": \"{}\"}}",
                    self.pick(&["passed", "failed", "na", "pending"])
                ));
            }
            if self.chance(40) {
                checks.push("\"sast\": {\"status\": \"na\", \"rationale\": \"internal\", \"url\": \"https://ci/1\"}".to_owned());
            }
            fields.push(format!("\"checks\": {{{}}}", checks.join(", ")));
            if self.chance(50) {
                fields.push(
                    "\"artifact\": {\"version\": \"1.2.3\", \"commit\": \"abc\", \"digest\": \"sha256:01\"}"
                        .to_owned(),
                );
            }
            if self.chance(50) {
                fields.push("\"labels\": {\"team\": \"core\"}".to_owned());
            }
            if self.chance(30) {
                fields.push("\"emergency\": {\"reason\": \"outage\", \"approver\": \"sam\", \"approver_roles\": [\"Security\"], \"follow_ups\": [\"review\"]}".to_owned());
            }
            if self.chance(50) {
                fields.push("\"context\": {\"promotions\": [{\"environment\": \"staging\", \"version\": \"1.2.3\", \"commit\": \"abc\", \"digest\": \"sha256:01\", \"at\": \"2025-06-02T00:00:00Z\"}]}".to_owned());
            }
            format!("{{{}}}", fields.join(", "))
        }

        fn params(&mut self) -> Vec<ParamValue> {
            vec![
                ParamValue::Integer([0, 2, i64::MAX][self.below(3)]),
                ParamValue::Strings(if self.chance(50) {
                    vec!["alice".to_owned(), "bob".to_owned()]
                } else {
                    Vec::new()
                }),
                ParamValue::Boolean(self.chance(50)),
                ParamValue::String(self.pick(&["core", "alice", ""]).to_owned()),
                ParamValue::Duration(Duration::from_seconds(3600).unwrap()),
            ]
        }
    }

    /// The parameters the generated conditions may read, sorted by name as the compiler
    /// sorts them.
    fn param_types() -> Vec<(String, ParamType)> {
        vec![
            ("limit".to_owned(), ParamType::Integer),
            ("names".to_owned(), ParamType::Strings),
            ("strict".to_owned(), ParamType::Boolean),
            ("team".to_owned(), ParamType::String),
            ("window".to_owned(), ParamType::Duration),
        ]
    }

    /// Both evaluations of `condition`: the plan's and the interpreter's.
    fn both(
        condition: &Condition,
        request: &Request,
        types: &[(String, ParamType)],
        values: &[ParamValue],
    ) -> (Option<bool>, Result<bool, String>) {
        let refs: Vec<&ParamValue> = values.iter().collect();
        let direct = condition.evaluate_direct(request, &refs);
        let named: Vec<(String, ParamValue)> = types
            .iter()
            .map(|(n, _)| n.clone())
            .zip(values.iter().cloned())
            .collect();
        let bindings = Bindings::new(request, &named);
        let ctx = bindings.context(&environment(), condition.vars());
        (direct, condition.evaluate(&ctx))
    }

    /// Outcome of one generated case: whether it compiled, had a plan, and the plan answered.
    #[derive(Default)]
    struct Tally {
        compiled: usize,
        planned: usize,
        answered: usize,
    }

    /// Generates a condition and a few requests from `seed`, and checks that the plan agrees
    /// with the interpreter wherever it answers.
    fn check_seed(seed: u64, tally: &mut Tally) -> Result<(), String> {
        let mut g = Gen(seed | 1);
        let depth = 1 + g.below(4);
        let source = g.boolean(depth, &mut Vec::new());
        let types = param_types();
        let schema = Schema {
            params: &types,
            evidence: None,
            checks: None,
        };
        let Ok(condition) = compile(&source, &schema) else {
            return Ok(());
        };
        tally.compiled += 1;
        if condition.plan.is_some() {
            tally.planned += 1;
        }
        for _ in 0..4 {
            let json = g.request();
            let request = Request::from_json(json.as_bytes())
                .map_err(|e| format!("generated request does not parse: {e}\n{json}"))?;
            let values = g.params();
            let (direct, interpreted) = both(&condition, &request, &types, &values);
            if let Some(b) = direct {
                tally.answered += 1;
                if interpreted != Ok(b) {
                    return Err(format!(
                        "condition {source:?}: plan {b}, interpreter {interpreted:?}\nrequest {json}\nparams {values:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn a_plan_answers_only_what_the_interpreter_answers(seed in any::<u64>()) {
            let mut tally = Tally::default();
            if let Err(e) = check_seed(seed, &mut tally) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    /// The generator is not vacuous: most generated conditions compile and have a plan, and
    /// the plans answer a good share of the evaluations (the rest hit errors and values of
    /// the wrong type, which the interpreter decides).
    #[test]
    fn most_generated_conditions_have_a_plan_that_answers() {
        let mut tally = Tally::default();
        for seed in 0..3000u64 {
            check_seed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), &mut tally).unwrap();
        }
        assert!(tally.compiled > 2000, "{} compiled", tally.compiled);
        assert!(
            tally.planned * 10 > tally.compiled * 8,
            "{} of {} have a plan",
            tally.planned,
            tally.compiled
        );
        assert!(
            tally.answered * 10 > tally.planned * 4 * 3,
            "{} of {} evaluations answered",
            tally.answered,
            tally.planned * 4
        );
    }

    fn eval(source: &str, request: &str) -> (Option<bool>, Result<bool, String>) {
        let types = param_types();
        let schema = Schema {
            params: &types,
            evidence: None,
            checks: None,
        };
        let condition = compile(source, &schema).unwrap();
        let request = Request::from_json(request.as_bytes()).unwrap();
        let values = vec![
            ParamValue::Integer(2),
            ParamValue::Strings(vec!["bob".to_owned()]),
            ParamValue::Boolean(true),
            ParamValue::String("core".to_owned()),
            ParamValue::Duration(Duration::from_seconds(60).unwrap()),
        ];
        both(&condition, &request, &types, &values)
    }

    const REQUEST: &str = r#"{"subject": "CHG-1", "environment": "production", "author": "alice",
        "now": "2025-06-03T10:00:00Z",
        "approvals": [
            {"approver": "bob", "roles": ["Developer"], "kind": "pr", "at": "2025-06-02T12:00:00Z"},
            {"approver": "sam", "roles": ["Security"], "kind": "production", "at": "2025-06-03T08:00:00Z", "rationale": "ok"}],
        "evidence": {"ticket": "ABC-1", "critical_findings": 0}}"#;

    #[test]
    fn the_benchmark_conditions_are_answered_by_their_plans() {
        for (source, expected) in [
            (
                "approvals.exists(a, \"Security\" in a.roles && a.approver != author)",
                true,
            ),
            (
                "!(\"critical_findings\" in evidence) || evidence.critical_findings == 0",
                true,
            ),
            ("approvals.all(a, a.at < now)", true),
            ("approvals.exists_one(a, a.kind == 'production')", true),
            ("size(approvals) >= params.limit", true),
            ("params.names.exists(n, n == approvals[0].approver)", true),
        ] {
            assert_eq!(
                eval(source, REQUEST),
                (Some(expected), Ok(expected)),
                "{source}"
            );
        }
    }

    #[test]
    fn errors_and_other_types_are_left_to_the_interpreter() {
        for source in [
            "evidence.missing == 1",
            "approvals[5].approver == ''",
            "9223372036854775807 + 1 > 0",
            "1 / (size(approvals) - 2) == 1",
            "evidence.ticket == 1",
            "size(approvals) == 2 ? 1 : false",
        ] {
            let (direct, interpreted) = eval(source, REQUEST);
            assert_eq!(direct, None, "{source}: {interpreted:?}");
        }
        let (direct, interpreted) = eval("approvals.map(a, a.kind).size() == 2", REQUEST);
        assert_eq!((direct, interpreted), (None, Ok(true)));
    }
}
