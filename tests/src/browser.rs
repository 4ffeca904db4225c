//! A scripted browser for redirect logins: it opens the authorization URL
//! that `/v1/login/start` answered, follows the provider's redirects,
//! fills in the login form, answers the consent form, and stops at the
//! callback URL, whose query parameters it returns — what a user's browser
//! would carry to the application (which passes them to `/v1/login/finish`).
//!
//! Cookies are kept by name for the one provider host (the provider
//! scopes them by path; sending them everywhere is harmless there). The
//! pages are the test provider's own (tests/peers/oidc/logins.mjs): a login
//! form with `login` and `password`, a consent form, an "abort" link.

use std::collections::BTreeMap;

use reqwest::{Method, Url};

/// What the user does on the provider's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Signs in and allows.
    Allow,
    /// Signs in, then declines the consent page.
    Decline,
}

/// A browser session: a cookie jar and an HTTP client that follows no
/// redirect by itself.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// One answer: status, `Location` (resolved), body.
struct Page {
    status: u16,
    location: Option<Url>,
    body: String,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&").replace("&amp;", "&")
}

impl Browser {
    /// A new session (no cookies).
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self {
            http,
            cookies: BTreeMap::new(),
        }
    }

    async fn request(&mut self, method: Method, url: &Url, form: Option<Vec<(&str, &str)>>) -> Page {
        let mut req = self.http.request(method, url.clone());
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        if let Some(form) = form {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                body.append_pair(k, v);
            }
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.finish());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap_or_default();
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| url.join(l).expect("a Location URL"));
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            location,
            body,
        }
    }

    /// Signs in at the provider from `authorize_url` as `user` with
    /// `password`, and allows or declines; the query parameters the
    /// browser brings back to `callback` (a URL prefix). Panics when the
    /// pages do not lead there within a few steps.
    pub async fn login(
        &mut self,
        authorize_url: &str,
        user: &str,
        password: &str,
        choice: Choice,
        callback: &str,
    ) -> BTreeMap<String, String> {
        let mut url = Url::parse(authorize_url).expect("an authorization URL");
        let mut page = self.request(Method::GET, &url, None).await;
        for _ in 0..12 {
            if let Some(next) = page.location.take() {
                if next.as_str().starts_with(callback) {
                    return next.query_pairs().into_owned().collect();
                }
                url = next;
                page = self.request(Method::GET, &url, None).await;
                continue;
            }
            assert_eq!(page.status, 200, "{url}: {}", page.body);
            let form = page
                .body
                .find("<form")
                .map(|i| &page.body[i..])
                .and_then(|f| f.find('>').map(|j| &f[..j]))
                .unwrap_or_else(|| panic!("no form on {url}: {}", page.body));
            let action = url
                .join(&unescape(attr(form, "action").expect("a form action")))
                .expect("a form URL");
            if page.body.contains("name=\"password\"") {
                page = self
                    .request(
                        Method::POST,
                        &action,
                        Some(vec![("login", user), ("password", password)]),
                    )
                    .await;
                assert!(
                    page.status == 303 || page.status == 302,
                    "the login was not accepted ({}): {}",
                    page.status,
                    page.body
                );
            } else if choice == Choice::Decline {
                let start = page.body.find("href=\"").expect("a cancel link") + 6;
                let len = page.body[start..].find('"').expect("a link");
                let abort = url
                    .join(&unescape(&page.body[start..start + len]))
                    .expect("a link URL");
                page = self.request(Method::GET, &abort, None).await;
            } else {
                page = self.request(Method::POST, &action, Some(vec![])).await;
            }
            url = action;
        }
        panic!("the provider's pages did not lead to {callback}");
    }
}
