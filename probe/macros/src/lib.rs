//! Procedural macros of parkwatch: `select!`, `select_blocking!` and
//! `#[parkwatch::main]`. Use them through the `parkwatch` crate.

mod main_attr;
mod select;
mod test_attr;

use proc_macro::TokenStream;

/// See `parkwatch::select!`.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    select::expand(input.into(), select::Mode::Async).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// See `parkwatch::select_blocking!`.
#[proc_macro]
pub fn select_blocking(input: TokenStream) -> TokenStream {
    select::expand(input.into(), select::Mode::Blocking).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// See `parkwatch::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(args.into(), item.into()).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// See `parkwatch_probe::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).unwrap_or_else(|e| e.to_compile_error()).into()
}
