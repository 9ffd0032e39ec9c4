//! Property: for any syntax tree the parser can produce, format -> parse gives the same
//! tree back, and formatting is a fixed point.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use gatehouse_dsl::ast::*;
use gatehouse_dsl::{Span, Spanned, fmt, parse};
use proptest::prelude::*;

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "matches",
    "contains",
    "icontains",
    "starts_with",
    "istarts_with",
    "ends_with",
    "iends_with",
    "intersects",
    "glob",
    "between",
    "exists",
    "when",
    "unless",
    "then",
    "severity",
    "tags",
    "message",
    "stage",
    "capture",
    "until",
    "within",
    "owner",
    "expires",
    "reason",
    "limit",
    "bytes",
    "sequence",
    "armed",
    "after",
    "rule",
    "list",
    "macro",
    "default",
    "test",
    "at",
];

fn sp<T>(t: T) -> Spanned<T> {
    Spanned::new(t, Span::default())
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn path() -> impl Strategy<Value = String> {
    (ident(), prop::collection::vec("[a-z_][a-z0-9_]{0,5}", 0..3)).prop_map(|(first, rest)| {
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join(".")
    })
}

fn symbol() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_-]{0,6}".prop_filter("bool", |s| s != "true" && s != "false")
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\\n\\t]{0,12}|[éü/\\\\\"{}]{0,4}"
}

fn duration() -> impl Strategy<Value = String> {
    (
        "[0-9]{1,3}",
        prop::sample::select(vec!["ms", "s", "m", "h", "d", "w"]),
    )
        .prop_map(|(n, u)| format!("{n}{u}"))
}

fn tod() -> impl Strategy<Value = String> {
    ("[0-2][0-9]", "[0-5][0-9]", prop::option::of("[0-5][0-9]")).prop_map(|(h, m, s)| match s {
        Some(s) => format!("{h}:{m}:{s}"),
        None => format!("{h}:{m}"),
    })
}

fn date() -> impl Strategy<Value = String> {
    ("20[0-9]{2}", "[01][0-9]", "[0-3][0-9]").prop_map(|(y, m, d)| format!("{y}-{m}-{d}"))
}

fn regex_lit() -> impl Strategy<Value = RegexLit> {
    (
        "([a-z0-9 .*+?()|^$\\[\\]-]|\\\\/|\\\\d){1,8}",
        "[imsxU]{0,2}",
    )
        .prop_map(|(body, flags)| RegexLit { body, flags })
}

fn list_elem() -> impl Strategy<Value = Literal> {
    prop_oneof![
        text().prop_map(Literal::Str),
        (-1000i64..1000).prop_map(Literal::Int),
        symbol().prop_map(Literal::Symbol),
        duration().prop_map(Literal::Duration),
        tod().prop_map(Literal::TimeOfDay),
        date().prop_map(Literal::Date),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn expr_of(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        path().prop_map(ExprKind::Path),
        text().prop_map(|s| ExprKind::Literal(Literal::Str(s))),
        (-1000i64..1000).prop_map(|i| ExprKind::Literal(Literal::Int(i))),
        any::<bool>().prop_map(|b| ExprKind::Literal(Literal::Bool(b))),
        duration().prop_map(|d| ExprKind::Literal(Literal::Duration(d))),
        tod().prop_map(|d| ExprKind::Literal(Literal::TimeOfDay(d))),
        date().prop_map(|d| ExprKind::Literal(Literal::Date(d))),
        regex_lit().prop_map(|r| ExprKind::Literal(Literal::Regex(r))),
        prop::collection::vec(list_elem().prop_map(sp), 0..4).prop_map(ExprKind::List),
        (ident(), prop::option::of(ident())).prop_map(|(s, a)| ExprKind::SequenceArmed {
            sequence: sp(s),
            after: a.map(sp),
        }),
    ]
    .prop_map(expr_of)
}

/// Expressions in the shapes the parser produces (grouping only through `Paren`).
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        let operand = prop_oneof![
            3 => leaf(),
            1 => inner.clone().prop_map(|e| expr_of(ExprKind::Paren(Box::new(e)))),
            1 => (path(), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(p, args)| expr_of(ExprKind::Call(sp(p), args))),
        ];
        let predicate = prop_oneof![
            2 => operand.clone(),
            3 => (prop::sample::select(BinOp::ALL.to_vec()), operand.clone(), operand.clone())
                .prop_map(|(op, l, r)| expr_of(ExprKind::Binary(op, Box::new(l), Box::new(r)))),
            1 => (operand.clone(), operand.clone(), operand.clone()).prop_map(|(x, lo, hi)| {
                expr_of(ExprKind::Between(Box::new(x), Box::new(lo), Box::new(hi)))
            }),
            1 => operand.clone().prop_map(|x| expr_of(ExprKind::Exists(Box::new(x)))),
        ];
        let unary = (0usize..3, predicate).prop_map(|(nots, mut e)| {
            for _ in 0..nots {
                e = expr_of(ExprKind::Not(Box::new(e)));
            }
            e
        });
        let and = prop::collection::vec(unary.clone(), 1..4).prop_map(|mut v| {
            if v.len() == 1 {
                v.remove(0)
            } else {
                expr_of(ExprKind::And(v))
            }
        });
        prop::collection::vec(and, 1..3).prop_map(|mut v| {
            if v.len() == 1 {
                v.remove(0)
            } else {
                expr_of(ExprKind::Or(v))
            }
        })
    })
}

fn comments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("([ -~]{0,10}[!-~])?", 0..2)
}

fn effect() -> impl Strategy<Value = Effect> {
    let mask_item = (
        prop_oneof![
            prop::collection::vec(
                prop_oneof![
                    text().prop_map(Literal::Str),
                    symbol().prop_map(Literal::Symbol)
                ]
                .prop_map(sp),
                0..3
            )
            .prop_map(MaskTarget::Columns),
            regex_lit().prop_map(|r| MaskTarget::ColumnsMatching(sp(r))),
            regex_lit().prop_map(|r| MaskTarget::ValuesMatching(sp(r))),
        ],
        prop::option::of(prop_oneof![
            text().prop_map(|s| MaskReplacement::With(sp(s))),
            (any::<bool>(), 0i64..100)
                .prop_map(|(last, n)| MaskReplacement::Keep { last, count: sp(n) }),
        ]),
    )
        .prop_map(|(target, replacement)| MaskItem {
            target,
            replacement,
            span: Span::default(),
        });
    prop_oneof![
        Just(Effect::Allow),
        Just(Effect::Alert),
        prop::option::of(text()).prop_map(|m| Effect::Block(m.map(sp))),
        (prop::option::of(text()), prop::option::of(duration())).prop_map(|(g, t)| {
            Effect::RequireApproval {
                group: g.map(sp),
                timeout: t.map(sp),
            }
        }),
        prop::collection::vec(mask_item, 1..3).prop_map(Effect::Mask),
    ]
}

fn tags() -> impl Strategy<Value = Vec<Ident>> {
    prop::collection::vec("[a-z0-9_-][a-z0-9_.-]{0,8}".prop_map(sp), 0..3)
}

fn rule_clause() -> impl Strategy<Value = RuleClause> {
    prop_oneof![
        expr().prop_map(RuleClause::When),
        effect().prop_map(RuleClause::Then),
        ident().prop_map(|s| RuleClause::Severity(sp(s))),
        tags().prop_map(RuleClause::Tags),
        text().prop_map(|s| RuleClause::Message(sp(s))),
        (ident(), expr(), text(), date(), prop::option::of(text())).prop_map(|(n, w, o, d, r)| {
            RuleClause::Unless(Exception {
                name: sp(n),
                when: w,
                owner: sp(o),
                expires: sp(d),
                reason: r.map(sp),
            })
        }),
    ]
}

fn clause<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Clause<T>> {
    (comments(), s).prop_map(|(comments, kind)| Clause {
        comments,
        kind,
        span: Span::default(),
    })
}

fn capture() -> impl Strategy<Value = CaptureDecl> {
    (
        ident(),
        prop_oneof![
            path().prop_map(|p| expr_of(ExprKind::Path(p))),
            (path(), text()).prop_map(|(p, a)| expr_of(ExprKind::Call(
                sp(p),
                vec![expr_of(ExprKind::Literal(Literal::Str(a)))]
            ))),
        ],
        prop::option::of(0i64..5000),
        prop::option::of(0i64..5000),
    )
        .prop_map(|(n, source, limit, bytes)| CaptureDecl {
            name: sp(n),
            source,
            limit: limit.map(sp),
            bytes: bytes.map(sp),
            span: Span::default(),
        })
}

fn sequence_clause() -> impl Strategy<Value = SequenceClause> {
    prop_oneof![
        3 => (ident(), prop::option::of(duration()), expr(), prop::collection::vec(capture(), 0..2))
            .prop_map(|(n, w, e, c)| SequenceClause::Stage(Stage {
                name: sp(n),
                within: w.map(sp),
                when: e,
                captures: c,
            })),
        1 => expr().prop_map(SequenceClause::Until),
        1 => effect().prop_map(SequenceClause::Then),
        1 => ident().prop_map(|s| SequenceClause::Severity(sp(s))),
        1 => tags().prop_map(SequenceClause::Tags),
        1 => text().prop_map(|s| SequenceClause::Message(sp(s))),
    ]
}

fn test_step() -> impl Strategy<Value = TestStep> {
    let time = prop_oneof![
        duration().prop_map(|d| StepTime::After(sp(d))),
        (prop::option::of(date()), tod()).prop_map(|(d, t)| StepTime::At {
            date: d.map(sp),
            time: sp(t),
        }),
    ];
    let value = prop_oneof![
        list_elem().prop_map(TestValue::Scalar),
        prop::collection::vec(list_elem(), 0..3).prop_map(TestValue::List),
    ];
    let field = prop_oneof![
        (path(), value.clone()).prop_map(|(n, v)| TestField {
            name: sp(n),
            quoted: false,
            value: sp(v)
        }),
        (text(), value).prop_map(|(n, v)| TestField {
            name: sp(n),
            quoted: true,
            value: sp(v)
        }),
    ];
    let expectation = prop_oneof![
        prop::sample::select(vec![
            ExpectedEffect::Allow,
            ExpectedEffect::Block,
            ExpectedEffect::Mask,
            ExpectedEffect::RequireApproval
        ])
        .prop_map(Expectation::Effect),
        ident().prop_map(Expectation::Alert),
        ident().prop_map(Expectation::Rule),
        Just(Expectation::NoAlert),
    ];
    (
        time,
        ident(),
        prop::collection::vec(field, 0..3),
        prop::collection::vec(expectation.prop_map(sp), 0..3),
    )
        .prop_map(|(time, kind, fields, expect)| TestStep {
            time,
            kind: sp(kind),
            fields,
            expect,
            span: Span::default(),
        })
}

fn item() -> impl Strategy<Value = ItemKind> {
    prop_oneof![
        (any::<bool>(), prop::option::of(expr()))
            .prop_map(|(allow, when)| ItemKind::Default(DefaultDecl { allow, when })),
        (
            ident(),
            prop::collection::vec(list_elem().prop_map(sp), 0..4)
        )
            .prop_map(|(n, elems)| ItemKind::List(ListDecl { name: sp(n), elems })),
        (
            ident(),
            prop::option::of(prop::collection::vec((ident(), ident()), 0..3)),
            expr()
        )
            .prop_map(|(n, params, body)| ItemKind::Macro(MacroDecl {
                name: sp(n),
                params: params.map(|ps| ps.into_iter().map(|(a, b)| (sp(a), sp(b))).collect()),
                body,
            })),
        (
            ident(),
            prop::collection::vec(clause(rule_clause()), 0..5),
            comments()
        )
            .prop_map(|(n, clauses, trailing_comments)| ItemKind::Rule(RuleDecl {
                name: sp(n),
                clauses,
                trailing_comments,
            })),
        (
            ident(),
            prop::collection::vec(path().prop_map(sp), 0..3),
            prop::option::of(duration()),
            prop::collection::vec(clause(sequence_clause()), 0..5),
            comments()
        )
            .prop_map(|(n, by, within, clauses, trailing_comments)| {
                ItemKind::Sequence(SequenceDecl {
                    name: sp(n),
                    by,
                    within: within.map(sp),
                    clauses,
                    trailing_comments,
                })
            }),
        (text(), prop::collection::vec(test_step(), 0..3))
            .prop_map(|(n, steps)| ItemKind::Test(TestDecl { name: sp(n), steps })),
    ]
}

fn file() -> impl Strategy<Value = File> {
    (
        prop::collection::vec((comments(), item()), 0..4),
        comments(),
    )
        .prop_map(|(items, trailing_comments)| File {
            items: items
                .into_iter()
                .map(|(comments, kind)| Item {
                    comments,
                    kind,
                    span: Span::default(),
                })
                .collect(),
            trailing_comments,
        })
}

/// The parser recurses on nesting; give the generated deep trees room (the depth the
/// parser accepts is bounded separately, see `nesting_is_bounded`).
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn format_then_parse_is_identity() {
    with_big_stack(|| {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
        runner
            .run(&file(), |ast| {
                let text = fmt::format_file(&ast);
                let reparsed = match parse(0, &text) {
                    Ok(f) => f,
                    Err(d) => {
                        return Err(TestCaseError::fail(format!("{d:?}\n--- text ---\n{text}")));
                    }
                };
                prop_assert_eq!(&reparsed, &ast, "text:\n{}", text);
                prop_assert_eq!(fmt::format_file(&reparsed), text);
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn nesting_is_bounded() {
    // Runs on the default 2 MiB test stack: deep input is refused, not a stack overflow.
    let deep = format!(
        "rule r {{ when {}a == 1{} then allow }}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let err = parse(0, &deep).unwrap_err();
    assert_eq!(err.code, gatehouse_dsl::Code::E0001);
    assert!(err.message.contains("nests"));
    let nots = format!("rule r {{ when {}a then allow }}", "not ".repeat(10_000));
    assert!(parse(0, &nots).is_err());
    let ok = format!(
        "rule r {{ when {}a == 1{} then allow }}",
        "(".repeat(24),
        ")".repeat(24)
    );
    assert!(parse(0, &ok).is_ok());
}

#[test]
fn fuzz_regressions_round_trip() {
    // Found by `cargo fuzz`: a comment glued to code, without a space after `//`.
    let text = "rule wrong_equals {\n  when ident//ity = \"agent:a\"\n  then allow\n}\n";
    let ast = parse(0, text).unwrap();
    let formatted = fmt::format_file(&ast);
    assert_eq!(parse(0, &formatted).unwrap(), ast, "{formatted}");
}
