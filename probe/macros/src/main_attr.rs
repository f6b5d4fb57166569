//! `#[parkwatch::main]`: `async fn main` run by `parkwatch::run`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, Result};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(args, "#[parkwatch::main] takes no arguments"));
    }
    let mut f: ItemFn = syn::parse2(item)?;
    if f.sig.asyncness.take().is_none() {
        return Err(syn::Error::new_spanned(f.sig.fn_token, "#[parkwatch::main] goes on an `async fn`"));
    }
    let (attrs, vis, sig, body) = (&f.attrs, &f.vis, &f.sig, &f.block);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            ::parkwatch::__private::run(async move #body)
        }
    })
}
