//! The operator console at `/console`: one HTML page with its script and styles, embedded in the
//! binary (`include_str!`), so there is no build step and no file to deploy. The page holds no
//! data; it asks for the admin token, keeps it in `sessionStorage` and calls the admin API with
//! it, so it works through any node and every call is authorised as a script's would be.

use crate::cluster::HttpReply;

/// The page, its script and styles inlined.
const PAGE: &str = include_str!("../console/index.html");

/// `GET /console`.
pub fn page() -> HttpReply {
    HttpReply {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
            (
                "content-security-policy".into(),
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'"
                    .into(),
            ),
        ],
        body: PAGE.into(),
    }
}
