//! Finds Rust syntax that needs a newer compiler than a crate's declared `rust-version`.
//!
//! Only one toolchain is installed on the CI machine, so the MSRV cannot be checked by building
//! with the old compiler. Library APIs are checked by clippy's `incompatible_msrv` lint (which
//! reads `rust-version`); this crate covers what that lint cannot see: language syntax
//! stabilized after Rust 1.85 (the floor set by edition 2024, which cargo itself enforces).
//!
//! The source is parsed with `syn`, so comments, strings and identifiers that merely look like
//! the syntax are not counted. Covered:
//!
//! 1. the arguments of macro invocations that parse as expressions, statements or items
//!    (`assert!`, `format!`, `vec!`, ...);
//! 2. Rust code blocks in doc comments (they are compiled by `cargo test` as doctests).
//!
//! Not covered (documented in the README): bodies of `macro_rules!` definitions (they are not
//! Rust until expanded), features that are only visible after type checking (trait-object
//! upcasting, 1.86; `_` as an inferred const generic argument, 1.89, because `f::<_>` is also a
//! type argument), inline assembly features (the workspace forbids `unsafe`).

use std::fmt;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, BinOp, Expr, Meta, Token};

/// A Rust release, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RustVersion {
    /// Always 1 so far.
    pub major: u32,
    /// The release number that matters.
    pub minor: u32,
    /// Patch releases add no features; kept for ordering `rust-version = "1.88.1"`.
    pub patch: u32,
}

impl RustVersion {
    /// Parses `1.88` or `1.88.0` (the forms `rust-version` accepts).
    ///
    /// # Errors
    ///
    /// A string that is not two or three dot-separated numbers.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(format!("not a rust version: {text:?}"));
        }
        let number = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("not a rust version: {text:?}"))
        };
        Ok(Self {
            major: number(parts[0])?,
            minor: number(parts[1])?,
            patch: if parts.len() == 3 {
                number(parts[2])?
            } else {
                0
            },
        })
    }

    const fn minor(minor: u32) -> Self {
        Self {
            major: 1,
            minor,
            patch: 0,
        }
    }
}

impl fmt::Display for RustVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A piece of syntax stabilized after Rust 1.85.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// `use<..>` bounds on `impl Trait` returned by a trait's method (1.87).
    PreciseCapturingInTraits,
    /// A range without start right after `!`, `-` or `*`, such as `-..x` (1.87).
    RangeAfterUnaryOperator,
    /// `if let P = e && c` and `while let P = e && c` (1.88, edition 2024).
    LetChains,
    /// `#[cfg(true)]`, `#[cfg(false)]`, `cfg!(true)` (1.88).
    CfgBooleanLiterals,
    /// `#[unsafe(naked)]` functions (1.88).
    NakedFunctions,
    /// `#[repr(u128)]` and `#[repr(i128)]` (1.89).
    Repr128,
    /// `_` as an array length, `[0; _]` or `[u8; _]` (1.89, `generic_arg_infer`).
    InferredArrayLength,
    /// `if let` guards on match arms, `Some(x) if let Ok(y) = f(x) =>` (1.95).
    IfLetGuards,
    /// The `cfg_select!` macro (1.95; clippy's lint does not look at macros).
    CfgSelect,
}

impl Feature {
    /// Every feature, oldest first.
    pub const ALL: [Self; 9] = [
        Self::PreciseCapturingInTraits,
        Self::RangeAfterUnaryOperator,
        Self::LetChains,
        Self::CfgBooleanLiterals,
        Self::NakedFunctions,
        Self::Repr128,
        Self::InferredArrayLength,
        Self::IfLetGuards,
        Self::CfgSelect,
    ];

    /// The first stable release that accepts it.
    pub const fn since(self) -> RustVersion {
        RustVersion::minor(match self {
            Self::PreciseCapturingInTraits | Self::RangeAfterUnaryOperator => 87,
            Self::LetChains | Self::CfgBooleanLiterals | Self::NakedFunctions => 88,
            Self::Repr128 | Self::InferredArrayLength => 89,
            Self::IfLetGuards | Self::CfgSelect => 95,
        })
    }

    /// What a reader would search the release notes for.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PreciseCapturingInTraits => "precise capturing (`use<..>`) in a trait",
            Self::RangeAfterUnaryOperator => "open-start range after a unary operator",
            Self::LetChains => "let chains (`if let .. && ..`)",
            Self::CfgBooleanLiterals => "boolean literal in `cfg(..)`",
            Self::NakedFunctions => "naked function",
            Self::Repr128 => "`repr(u128)` / `repr(i128)`",
            Self::InferredArrayLength => "inferred array length `[..; _]`",
            Self::IfLetGuards => "`if let` guard on a match arm",
            Self::CfgSelect => "`cfg_select!`",
        }
    }
}

/// One use of a feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Which feature.
    pub feature: Feature,
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column (of the doc comment, for code in a doctest).
    pub column: usize,
    /// True if the use is inside a doc comment's code block.
    pub in_doctest: bool,
}

/// Parses one file's source and lists every use of a [`Feature`].
///
/// # Errors
///
/// The file, or a Rust code block in one of its doc comments, does not parse: it may use
/// syntax newer than this tool knows, so the check cannot vouch for it.
pub fn scan_source(source: &str) -> Result<Vec<Finding>, String> {
    let file = syn::parse_file(source).map_err(|e| located(&e))?;
    let mut scanner = Scanner::default();
    scanner.visit_file(&file);
    if let Some(error) = scanner.doctest_errors.into_iter().next() {
        return Err(error);
    }
    scanner.findings.sort_by_key(|f| (f.line, f.column));
    Ok(scanner.findings)
}

fn located(error: &syn::Error) -> String {
    let start = error.span().start();
    format!("{}:{}: {error}", start.line, start.column + 1)
}

#[derive(Default)]
struct Scanner {
    findings: Vec<Finding>,
    doctest_errors: Vec<String>,
    /// A doctest being collected: the span of its opening line and its lines so far.
    fence: Option<(Span, Vec<String>, bool)>,
    /// Nonzero while visiting code taken from a doc comment.
    in_doctest: usize,
    /// Where the doctest being visited starts (its findings are reported there).
    doctest_span: Option<Span>,
}

impl Scanner {
    fn found(&mut self, feature: Feature, span: Span) {
        let span = if self.in_doctest > 0 {
            self.doctest_span.unwrap_or(span)
        } else {
            span
        };
        let start = span.start();
        self.findings.push(Finding {
            feature,
            line: start.line,
            column: start.column + 1,
            in_doctest: self.in_doctest > 0,
        });
    }

    /// A doc comment line: collects fenced Rust code blocks and scans each when it closes.
    fn doc_line(&mut self, line: &str, span: Span) {
        let text = line.strip_prefix(' ').unwrap_or(line);
        let trimmed = text.trim_start();
        if let Some(info) = trimmed
            .strip_prefix("```")
            .or_else(|| trimmed.strip_prefix("~~~"))
        {
            match self.fence.take() {
                Some((start, lines, true)) => self.scan_doctest(start, &lines.join("\n")),
                Some((_, _, false)) => {}
                None => self.fence = Some((span, Vec::new(), is_compiled_rust(info))),
            }
            return;
        }
        if let Some((_, lines, _)) = &mut self.fence {
            // rustdoc hides lines starting with `# ` but compiles them.
            let code = if trimmed == "#" {
                ""
            } else {
                trimmed.strip_prefix("# ").unwrap_or(text)
            };
            lines.push(code.to_owned());
        }
    }

    fn scan_doctest(&mut self, start: Span, code: &str) {
        let parsed = Parser::parse_str(syn::Block::parse_within, code).or_else(|_| {
            syn::parse_file(code).map(|f| f.items.into_iter().map(syn::Stmt::Item).collect())
        });
        match parsed {
            Ok(stmts) => {
                self.in_doctest += 1;
                let outer = self.doctest_span.replace(start);
                for stmt in &stmts {
                    self.visit_stmt(stmt);
                }
                self.doctest_span = outer;
                self.in_doctest -= 1;
            }
            Err(e) => {
                let at = start.start();
                self.doctest_errors.push(format!(
                    "{}:{}: doctest does not parse: {e}",
                    at.line,
                    at.column + 1
                ));
            }
        }
    }

    fn check_condition(&mut self, cond: &Expr) {
        // `if let P = e` alone is old syntax; a `let` anywhere in a `&&` chain is a let chain.
        if let Expr::Binary(binary) = cond
            && matches!(binary.op, BinOp::And(_))
            && chain_has_let(cond)
        {
            self.found(Feature::LetChains, span_of(cond));
        }
    }
}

fn span_of(expr: &Expr) -> Span {
    syn::spanned::Spanned::span(expr)
}

fn chain_has_let(expr: &Expr) -> bool {
    match expr {
        Expr::Let(_) => true,
        Expr::Binary(b) if matches!(b.op, BinOp::And(_)) => {
            chain_has_let(&b.left) || chain_has_let(&b.right)
        }
        _ => false,
    }
}

fn is_compiled_rust(info: &str) -> bool {
    // rustdoc compiles a block unless its info string names another language or says
    // `ignore` / `compile_fail` (a block that must not compile proves nothing about syntax).
    info.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .all(|token| {
            token == "rust"
                || token == "should_panic"
                || token == "no_run"
                || token == "test_harness"
                || token == "standalone_crate"
                || token.starts_with("edition")
        })
}

/// True if a `cfg` predicate contains `true` or `false` as a predicate.
fn predicate_has_bool(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "true" || ident == "false",
        TokenTree::Group(group) => predicate_has_bool(group.stream()),
        _ => false,
    })
}

/// The predicate of `cfg_attr(predicate, attrs..)`: its tokens up to the first top-level comma.
fn cfg_attr_predicate(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .take_while(|t| !matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
        .collect()
}

fn path_is(path: &syn::Path, name: &str) -> bool {
    path.segments.last().is_some_and(|s| s.ident == name)
}

fn tokens_have_ident(tokens: TokenStream, names: &[&str]) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => names.iter().any(|n| ident == n),
        TokenTree::Group(group) => tokens_have_ident(group.stream(), names),
        _ => false,
    })
}

impl<'ast> Visit<'ast> for Scanner {
    fn visit_attribute(&mut self, attr: &'ast Attribute) {
        let span = syn::spanned::Spanned::span(attr);
        if let Meta::NameValue(nv) = &attr.meta
            && nv.path.is_ident("doc")
        {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                // `/** .. */` comments arrive as one attribute of several lines.
                for line in s.value().lines() {
                    self.doc_line(line, span);
                }
            }
            return;
        }
        if let Meta::List(list) = &attr.meta {
            let tokens = list.tokens.clone();
            if list.path.is_ident("cfg") && predicate_has_bool(tokens.clone()) {
                self.found(Feature::CfgBooleanLiterals, span);
            }
            if list.path.is_ident("cfg_attr")
                && predicate_has_bool(cfg_attr_predicate(tokens.clone()))
            {
                self.found(Feature::CfgBooleanLiterals, span);
            }
            if list.path.is_ident("repr") && tokens_have_ident(tokens.clone(), &["u128", "i128"]) {
                self.found(Feature::Repr128, span);
            }
            if list.path.is_ident("unsafe") && tokens_have_ident(tokens, &["naked"]) {
                self.found(Feature::NakedFunctions, span);
            }
        }
        if let Meta::Path(path) = &attr.meta
            && path.is_ident("naked")
        {
            self.found(Feature::NakedFunctions, span);
        }
        visit::visit_attribute(self, attr);
    }

    fn visit_expr_if(&mut self, node: &'ast syn::ExprIf) {
        self.check_condition(&node.cond);
        visit::visit_expr_if(self, node);
    }

    fn visit_expr_while(&mut self, node: &'ast syn::ExprWhile) {
        self.check_condition(&node.cond);
        visit::visit_expr_while(self, node);
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if let Some((_, guard)) = &arm.guard
            && (matches!(**guard, Expr::Let(_)) || chain_has_let(guard))
        {
            self.found(Feature::IfLetGuards, span_of(guard));
        }
        visit::visit_arm(self, arm);
    }

    fn visit_expr_unary(&mut self, node: &'ast syn::ExprUnary) {
        if let Expr::Range(range) = &*node.expr
            && range.start.is_none()
        {
            self.found(Feature::RangeAfterUnaryOperator, span_of(&node.expr));
        }
        visit::visit_expr_unary(self, node);
    }

    fn visit_expr_repeat(&mut self, node: &'ast syn::ExprRepeat) {
        if matches!(*node.len, Expr::Infer(_)) {
            self.found(Feature::InferredArrayLength, span_of(&node.len));
        }
        visit::visit_expr_repeat(self, node);
    }

    fn visit_type_array(&mut self, node: &'ast syn::TypeArray) {
        if matches!(node.len, Expr::Infer(_)) {
            self.found(Feature::InferredArrayLength, span_of(&node.len));
        }
        visit::visit_type_array(self, node);
    }

    fn visit_trait_item_fn(&mut self, node: &'ast syn::TraitItemFn) {
        if let syn::ReturnType::Type(_, ty) = &node.sig.output {
            let mut capture = PreciseCaptureFinder::default();
            capture.visit_type(ty);
            if let Some(span) = capture.found {
                self.found(Feature::PreciseCapturingInTraits, span);
            }
        }
        visit::visit_trait_item_fn(self, node);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let span = syn::spanned::Spanned::span(&mac.path);
        if path_is(&mac.path, "cfg_select") {
            self.found(Feature::CfgSelect, span);
        }
        if mac.path.is_ident("cfg") && predicate_has_bool(mac.tokens.clone()) {
            self.found(Feature::CfgBooleanLiterals, span);
        }
        if mac.path.is_ident("macro_rules") {
            return;
        }
        // Most macros take expressions (`assert!`, `format!`) or statements (`vec![x; n]`
        // parses as two). Input that is neither, such as `matches!`'s pattern, is skipped.
        let tokens = mac.tokens.clone();
        let comma_separated =
            |input: ParseStream| Punctuated::<Expr, Token![,]>::parse_terminated(input);
        if let Ok(exprs) = comma_separated.parse2(tokens.clone()) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        } else if let Ok(stmts) = Parser::parse2(syn::Block::parse_within, tokens) {
            for stmt in &stmts {
                self.visit_stmt(stmt);
            }
        }
    }
}

#[derive(Default)]
struct PreciseCaptureFinder {
    found: Option<Span>,
}

impl<'ast> Visit<'ast> for PreciseCaptureFinder {
    fn visit_type_param_bound(&mut self, bound: &'ast syn::TypeParamBound) {
        if let syn::TypeParamBound::PreciseCapture(capture) = bound {
            self.found
                .get_or_insert(syn::spanned::Spanned::span(capture));
        }
        visit::visit_type_param_bound(self, bound);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(source: &str) -> Vec<Feature> {
        scan_source(source)
            .unwrap()
            .into_iter()
            .map(|f| f.feature)
            .collect()
    }

    #[test]
    fn let_chains_are_found_in_if_and_while() {
        let source = r#"
            fn f(a: Option<u8>, b: bool) {
                if let Some(x) = a && x > 1 { }
                if b && let Some(_) = a { }
                while let Some(_) = a && b { }
            }
        "#;
        assert_eq!(features(source), vec![Feature::LetChains; 3]);
    }

    #[test]
    fn if_let_and_boolean_conditions_are_not_let_chains() {
        let source = r#"
            fn f(a: Option<u8>, b: bool, c: bool) {
                if let Some(x) = a { if x > 1 && b { } }
                if b && c { }
                while let Some(_) = a { }
                if (b && c) || let_x(b) { }
                let _ = a.is_some() && b;
            }
            fn let_x(_: bool) -> bool { true }
        "#;
        assert_eq!(features(source), vec![]);
    }

    #[test]
    fn comments_strings_and_macro_rules_bodies_are_not_code() {
        let source = r##"
            // if let Some(x) = a && x > 1 { }
            /* while let Some(x) = a && b { } */
            fn f() -> &'static str {
                "if let Some(x) = a && x > 1 {}"
            }
            const RAW: &str = r#"match x { Some(y) if let Ok(z) = y => {} }"#;
            macro_rules! m { ($a:expr) => { if let Some(_) = $a && true { } }; }
        "##;
        assert_eq!(features(source), vec![]);
    }

    #[test]
    fn let_chains_inside_macro_arguments_are_found() {
        let source = r#"
            fn f(a: Option<u8>) {
                assert!(if let Some(x) = a && x > 1 { true } else { false });
                println!("{}", if let Some(x) = a && x > 2 { 1 } else { 0 });
                let _v = vec![if let Some(_) = a && true { 1 } else { 0 }; 3];
            }
        "#;
        assert_eq!(features(source), vec![Feature::LetChains; 3]);
    }

    #[test]
    fn if_let_guards_are_found_and_plain_guards_are_not() {
        let source = r#"
            fn f(a: Option<Result<u8, ()>>) {
                match a {
                    Some(r) if let Ok(x) = r => {}
                    Some(r) if r.is_ok() && let Ok(_) = r => {}
                    Some(r) if r.is_err() => {}
                    _ => {}
                }
            }
        "#;
        assert_eq!(features(source), vec![Feature::IfLetGuards; 2]);
    }

    #[test]
    fn attribute_features_are_found() {
        let source = r#"
            #[cfg(true)] fn a() {}
            #[cfg(any(unix, false))] fn b() {}
            #[cfg_attr(true, allow(dead_code))] fn c() {}
            #[cfg_attr(unix, doc = "true")] fn d() {}
            #[cfg(feature = "true")] fn e() {}
            #[repr(u128)] enum E { A }
            #[repr(u8)] enum F { A }
            fn g() -> bool { cfg!(false) }
        "#;
        assert_eq!(
            features(source),
            vec![
                Feature::CfgBooleanLiterals,
                Feature::CfgBooleanLiterals,
                Feature::CfgBooleanLiterals,
                Feature::Repr128,
                Feature::CfgBooleanLiterals,
            ]
        );
    }

    #[test]
    fn inferred_array_lengths_and_precise_capture_in_traits_are_found() {
        let source = r#"
            fn f() { let a: [u8; _] = [0; _]; let b = [0u8; 4]; }
            trait T { fn items(&self) -> impl Iterator<Item = u8> + use<Self>; }
            fn free<'a>(x: &'a u8) -> impl Sized + use<'a> { x }
        "#;
        assert_eq!(
            features(source),
            vec![
                Feature::InferredArrayLength,
                Feature::InferredArrayLength,
                Feature::PreciseCapturingInTraits,
            ]
        );
    }

    #[test]
    fn doctests_are_scanned_unless_ignored_or_not_rust() {
        let source = r#"
            /// ```
            /// # let a = Some(1);
            /// if let Some(x) = a && x > 0 {}
            /// ```
            ///
            /// ```ignore
            /// if let Some(x) = a && x > 0 {}
            /// ```
            ///
            /// ```text
            /// if let Some(x) = a && x > 0 {}
            /// ```
            fn documented() {}
        "#;
        let found = scan_source(source).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].feature, Feature::LetChains);
        assert!(found[0].in_doctest);
        assert_eq!(found[0].line, 2, "reported at the opening fence");
    }

    #[test]
    fn unparsable_code_is_an_error_not_a_pass() {
        assert!(scan_source("fn f( {").is_err());
        assert!(scan_source("/// ```\n/// fn ( {\n/// ```\nfn f() {}").is_err());
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(RustVersion::parse("1.88").unwrap(), RustVersion::minor(88));
        assert!(RustVersion::parse("1.88.1").unwrap() > RustVersion::minor(88));
        assert!(RustVersion::parse("1.87.9").unwrap() < Feature::LetChains.since());
        assert!(RustVersion::parse("1").is_err());
        assert!(RustVersion::parse("1.x").is_err());
    }
}
