//! `select!` / `select_blocking!`.
//!
//! ```text
//! select! {
//!     recv(c1) -> v => body,
//!     send(c2, value) -> res => body,
//!     default => body,
//! }
//! ```
//!
//! expands to: every operand borrowed and every send value evaluated once, in
//! order (as Go does); one case value per arm; one call to the engine, which
//! returns the index of the completed case (or none, for `default`); a `match`
//! that moves the case's result into the arm's pattern.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{parenthesized, Expr, Ident, Pat, Result, Token};

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Async,
    Blocking,
}

enum Op {
    Recv { chan: Expr },
    Send { chan: Expr, value: Expr },
    Default,
}

struct Arm {
    op: Op,
    pat: Option<Pat>,
    body: Expr,
}

struct Arms(Vec<Arm>);

impl Parse for Arm {
    fn parse(input: ParseStream) -> Result<Self> {
        let kw: Ident = if input.peek(Token![default]) {
            input.parse::<Token![default]>()?;
            Ident::new("default", Span::call_site())
        } else {
            input.parse()?
        };
        let op = match kw.to_string().as_str() {
            "default" => Op::Default,
            "recv" => {
                let content;
                parenthesized!(content in input);
                Op::Recv { chan: content.parse()? }
            }
            "send" => {
                let content;
                parenthesized!(content in input);
                let chan = content.parse()?;
                content.parse::<Token![,]>()?;
                Op::Send { chan, value: content.parse()? }
            }
            _ => return Err(syn::Error::new(kw.span(), "expected `recv(..)`, `send(.., ..)` or `default`")),
        };
        let pat = if !matches!(op, Op::Default) && input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(Pat::parse_single(input)?)
        } else {
            None
        };
        input.parse::<Token![=>]>()?;
        let body: Expr = input.parse()?;
        Ok(Arm { op, pat, body })
    }
}

impl Parse for Arms {
    fn parse(input: ParseStream) -> Result<Self> {
        let mut arms = Vec::new();
        while !input.is_empty() {
            let arm: Arm = input.parse()?;
            let is_block = matches!(arm.body, Expr::Block(_));
            arms.push(arm);
            if input.is_empty() {
                break;
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else if !is_block {
                return Err(input.error("expected `,` after a select arm"));
            }
        }
        Ok(Arms(arms))
    }
}

pub(crate) fn expand(input: TokenStream, mode: Mode) -> Result<TokenStream> {
    let Arms(arms) = syn::parse2(input)?;
    let pw = quote!(::parkwatch::__private);
    if arms.is_empty() {
        return Ok(match mode {
            Mode::Async => quote! {
                match #pw::park_forever(#pw::WaitReason::SelectNoCases).await {}
            },
            Mode::Blocking => quote! { #pw::park_forever_blocking(#pw::WaitReason::SelectNoCases) },
        });
    }
    let defaults: Vec<&Arm> = arms.iter().filter(|a| matches!(a.op, Op::Default)).collect();
    if defaults.len() > 1 {
        return Err(syn::Error::new(Span::call_site(), "a select has at most one `default` arm"));
    }
    let cases: Vec<&Arm> = arms.iter().filter(|a| !matches!(a.op, Op::Default)).collect();

    let mut setup = Vec::new();
    let mut case_idents = Vec::new();
    let mut match_arms = Vec::new();
    for (i, arm) in cases.iter().enumerate() {
        let op_ident = format_ident!("__pw_op{}", i);
        let case_ident = format_ident!("__pw_case{}", i);
        match &arm.op {
            Op::Recv { chan } => setup.push(quote! {
                let #op_ident = &(#chan);
                let #case_ident = #pw::recv_case(#op_ident);
            }),
            Op::Send { chan, value } => setup.push(quote! {
                let #op_ident = &(#chan);
                let #case_ident = #pw::send_case(#op_ident, #value);
            }),
            Op::Default => unreachable!(),
        }
        let body = &arm.body;
        let field = syn::Index::from(i);
        let result = match mode {
            Mode::Async => quote! { #case_ident.pinned_result() },
            Mode::Blocking => quote! { __pw_cases.#field.into_result() },
        };
        let bind = match &arm.pat {
            Some(pat) => quote! { let #pat = #result; },
            None => quote! { let _ = #result; },
        };
        match_arms.push(quote! { ::core::option::Option::Some(#i) => { #bind #body } });
        case_idents.push(case_ident);
    }
    let has_default = !defaults.is_empty();
    let default_arm = match defaults.first() {
        Some(arm) => {
            let body = &arm.body;
            quote! { ::core::option::Option::None => { #body } }
        }
        None => quote! {},
    };
    // The async select's cases are pinned: while it is parked, channel
    // queues point into them. Its arms take their results through the pin.
    let call = match mode {
        Mode::Async => quote! {
            let mut __pw_cases = ::core::pin::pin!((#(#case_idents,)*));
            let __pw_chosen = #pw::select_async(__pw_cases.as_mut(), #has_default).await;
            #[allow(unused_variables)]
            let (#(#case_idents,)*) = #pw::ProjectCases::project(__pw_cases);
        },
        Mode::Blocking => quote! {
            let mut __pw_cases = (#(#case_idents,)*);
            let __pw_chosen = #pw::select_blocking(&mut __pw_cases, #has_default);
        },
    };
    Ok(quote! {
        {
            #(#setup)*
            #call
            #[allow(unreachable_patterns, unused_variables)]
            match __pw_chosen {
                #(#match_arms)*
                #default_arm
                _ => ::core::unreachable!("parkwatch::select!: no case chosen"),
            }
        }
    })
}
