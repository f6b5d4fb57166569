//! `#[parkwatch_probe::test]`: a test whose body runs as the main task of a
//! fresh parkwatch runtime, supervised by `parkwatch_probe` (deadlocks fail it
//! fast, leaked tasks fail it at the end, a hard timeout dumps every task).
//!
//! ```text
//! #[parkwatch_probe::test(leak_wait = "500ms", timeout = "30s", ignore = "my_crate::pool")]
//! async fn name() -> Ret { body }
//! ```
//! becomes
//! ```text
//! #[::core::prelude::v1::test]
//! fn name() {
//!     async fn __parkwatch_body() -> Ret { body }
//!     ::parkwatch_probe::__private::run_test(TestConfig { .. }, || __parkwatch_body())
//! }
//! ```
//! Durations are checked here, at compile time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, MetaNameValue, Result, Token};

#[derive(Default)]
struct Args {
    leak_wait: Option<u128>,
    timeout: Option<u128>,
    grace: Option<u128>,
    worker_threads: Option<usize>,
    ignore: Vec<LitStr>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let args = parse_args(args)?;
    let f: ItemFn = syn::parse2(item)?;
    if let Some(p) = f.sig.inputs.first() {
        return Err(syn::Error::new_spanned(p, "#[parkwatch_probe::test] functions take no arguments"));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&f.sig.generics, "#[parkwatch_probe::test] functions cannot be generic"));
    }
    let is_async = f.sig.asyncness.is_some();
    let name = &f.sig.ident;
    let vis = &f.vis;
    // A `#[test]` written next to ours would declare the test twice; ours adds it.
    let attrs: Vec<&syn::Attribute> = f.attrs.iter().filter(|a| !a.path().is_ident("test")).collect();
    let body_ident = format_ident!("__parkwatch_body");
    let mut inner_sig = f.sig.clone();
    inner_sig.ident = body_ident.clone();
    let block = &f.block;
    let call = if is_async {
        quote! { move || #body_ident() }
    } else {
        quote! { move || async move { #body_ident() } }
    };
    let dur = |d: Option<u128>| match d {
        Some(ns) => {
            let ns = ns as u64;
            quote! { ::core::option::Option::Some(::core::time::Duration::from_nanos(#ns)) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let (leak_wait, timeout, grace) = (dur(args.leak_wait), dur(args.timeout), dur(args.grace));
    let workers = match args.worker_threads {
        Some(n) => quote! { ::core::option::Option::Some(#n) },
        None => quote! { ::core::option::Option::None },
    };
    let ignore = &args.ignore;
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #[allow(clippy::unused_async)]
            #inner_sig #block
            ::parkwatch_probe::__private::run_test(
                ::parkwatch_probe::__private::TestConfig {
                    module: ::core::module_path!(),
                    function: ::core::stringify!(#name),
                    leak_wait: #leak_wait,
                    timeout: #timeout,
                    grace: #grace,
                    worker_threads: #workers,
                    ignore: &[#(#ignore),*],
                },
                #call,
            )
        }
    })
}

fn parse_args(args: TokenStream) -> Result<Args> {
    let mut out = Args::default();
    let list = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    for nv in list {
        let key = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        match key.as_str() {
            "leak_wait" => out.leak_wait = Some(duration_arg(&nv.value)?),
            "timeout" => out.timeout = Some(duration_arg(&nv.value)?),
            "grace" => out.grace = Some(duration_arg(&nv.value)?),
            "worker_threads" => match &nv.value {
                Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => out.worker_threads = Some(n.base10_parse()?),
                v => return Err(syn::Error::new_spanned(v, "worker_threads takes an integer, e.g. `worker_threads = 4`")),
            },
            "ignore" => match &nv.value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => out.ignore.push(s.clone()),
                Expr::Array(a) => {
                    for e in &a.elems {
                        match e {
                            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => out.ignore.push(s.clone()),
                            e => return Err(syn::Error::new_spanned(e, "ignore takes string literals")),
                        }
                    }
                }
                v => {
                    return Err(syn::Error::new_spanned(
                        v,
                        "ignore takes a string or an array of strings: a substring of a leaked task's top function or spawn site",
                    ))
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    "unknown option; expected leak_wait, timeout, grace, worker_threads or ignore",
                ))
            }
        }
    }
    Ok(out)
}

/// A duration literal ("500ms", "30s", "1.5s", "2m", "100us", "0") in nanoseconds.
fn duration_arg(v: &Expr) -> Result<u128> {
    let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = v else {
        return Err(syn::Error::new_spanned(v, "expected a duration string such as \"500ms\" or \"30s\""));
    };
    parse_duration(&s.value()).ok_or_else(|| {
        syn::Error::new(
            s.span(),
            format!(
                "cannot read {:?} as a duration: use a number and a unit (ns, us, ms, s, m, h), e.g. \"500ms\"",
                s.value()
            ),
        )
    })
}

pub(crate) fn parse_duration(s: &str) -> Option<u128> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let per: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n * per).round() as u128)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("100us"), Some(100_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("ms"), None);
    }
}
