//! The page's files, compiled into the binary from `web/`: a fixed table,
//! looked up by exact name, never by a path on disk.

/// `(name, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../web/app.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../web/style.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../web/favicon.svg")),
];

/// The page itself.
pub(crate) const INDEX_HTML: &str = include_str!("../../web/index.html");

/// The asset called exactly `name`, with its content type.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, ct, b)| (*ct, *b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_exact_names() {
        assert!(super::get("app.js").is_some());
        assert!(super::get("../app.js").is_none());
        assert!(super::get("app.js/").is_none());
        assert!(super::get("").is_none());
    }
}
