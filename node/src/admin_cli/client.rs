//! [`AdminClient`]: the admin API of one node, as `orderq admin` calls it. Any node will do: a
//! node forwards what only the leader can answer.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use super::error::CliError;

/// How long one call may take before the node counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's admin API: its base URL and the token sent with every call.
#[derive(Debug)]
pub struct AdminClient {
    /// The node's base URL (`http://127.0.0.1:8080`).
    base: Url,
    /// The admin token, sent as `Authorization: Bearer`; `None` for an open node.
    token: Option<String>,
    /// The HTTP client.
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the node at `url` (http or https).
    pub fn new(url: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = Url::parse(url)
            .map_err(|e| CliError::Usage(format!("--url {url:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::Usage(format!(
                "--url {url:?} must be an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| CliError::Usage(format!("building the HTTP client: {e}")))?;
        Ok(AdminClient {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The URL of the path made of `segments` (each percent-encoded) and `query` pairs (those
    /// whose value is `None` left out).
    pub fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let pairs: Vec<(&str, &String)> = query
            .iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| (*name, v)))
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// `GET url`: the JSON answer.
    pub async fn get(&self, url: Url) -> Result<Value, CliError> {
        self.call(Method::GET, url, None).await
    }

    /// `POST url` with a JSON `body`: the JSON answer.
    pub async fn post(&self, url: Url, body: Value) -> Result<Value, CliError> {
        self.call(Method::POST, url, Some(body)).await
    }

    async fn call(&self, method: Method, url: Url, body: Option<Value>) -> Result<Value, CliError> {
        let shown = url.to_string();
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.map_err(|e| CliError::Unreachable {
            url: shown.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.map_err(|e| CliError::Unreachable {
            url: shown.clone(),
            reason: e.without_url().to_string(),
        })?;
        let json = serde_json::from_slice::<Value>(&bytes);
        if (200..300).contains(&status) {
            return json.map_err(|e| CliError::BadAnswer {
                url: shown,
                reason: format!("not JSON: {e}"),
            });
        }
        let error = json.ok().map(|v| v["error"].clone()).unwrap_or_default();
        Err(CliError::Refused {
            status,
            code: error["code"].as_str().unwrap_or("error").to_string(),
            message: error["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string()),
            hint: CliError::hint_for(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_and_absent_query_values_left_out() {
        let client = AdminClient::new("http://127.0.0.1:8080/", None).expect("client");
        let url = client.url(
            &["admin", "subscriptions", "a b/c", "dead"],
            &[("q", Some("needle & co".into())), ("after", None)],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/admin/subscriptions/a%20b%2Fc/dead?q=needle+%26+co"
        );
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(AdminClient::new("ftp://x", None).is_err());
        assert!(AdminClient::new("localhost:8080", None).is_err());
    }
}
