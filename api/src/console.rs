//! The operator console at `/console`: one HTML page, its script and its styles, embedded in the
//! binary (`include_str!`), so there is no build step and no file to deploy. The page holds no
//! data; it asks for the admin token, keeps it in `sessionStorage` and calls the admin API with
//! it, so it works through any node and every call is authorised as a script's would be.
//!
//! The page runs no inline script or style: the content security policy allows only these
//! assets and calls to the node that served them.

use crate::cluster::HttpReply;
use crate::error::ApiError;

/// The page.
const PAGE: &str = include_str!("../console/index.html");
/// The assets under `/console/`: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
];
/// What the console may load and call: its own assets and the node's API, nothing inline.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' data:; connect-src 'self'; form-action 'none'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// `GET /console`.
pub fn page() -> HttpReply {
    reply("text/html; charset=utf-8", PAGE)
}

/// `GET /console/{name}`: an embedded asset, 404 for any other name.
pub fn asset(name: &str) -> Result<HttpReply, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| reply(content_type, body))
        .ok_or_else(|| ApiError::not_found(format!("no console asset {name}")))
}

fn reply(content_type: &str, body: &'static str) -> HttpReply {
    HttpReply {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("cache-control".into(), "no-cache".into()),
            ("content-security-policy".into(), POLICY.into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        for (name, _, _) in ASSETS {
            assert!(PAGE.contains(&format!("/console/{name}")), "{name} linked");
            assert_eq!(asset(name).map(|r| r.status), Ok(200));
        }
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert_eq!(
            asset("../Cargo.toml").map(|r| r.status),
            Err(ApiError::not_found("no console asset ../Cargo.toml"))
        );
    }
}
