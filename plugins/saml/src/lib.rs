//! SAML 2.0 service provider authenticator for gatehouse (type `saml`,
//! linked into the daemon behind its cargo feature `saml`).
//!
//! A redirect login ([`Flow::Redirect`]): `start` answers the IdP's SSO URL
//! with an AuthnRequest in the HTTP-Redirect binding (DEFLATE, base64,
//! optionally signed: `security_config.authnRequestsSigned` or
//! `sp_extra.sign_request`) and the daemon's state as `RelayState`; the
//! request ID stays in the pending login for the `InResponseTo` check.
//! `finish` takes the HTTP-POST binding's `SAMLResponse` (and
//! `RelayState`): `RelayState = "IdP"` or none is an IdP-initiated login,
//! accepted only with `allow_idp_initiated` (default true, as CONFIG.md).
//! `metadata` publishes the SP metadata (entity ID, ACS, signing
//! certificate, organization, contacts), which an IdP imports as it is.
//!
//! # Settings
//! CONFIG.md's names, or the platform's uppercase ones: `sp_entity_id`,
//! `sp_public_cert` and `sp_private_key` (also `*_file` / `*_credential`),
//! `idp_url` (SSO, HTTP-Redirect), `idp_x509_cert` (PEM or bare base64;
//! required: without it nothing would be verified, so such a configuration
//! is refused), `idp_entity_id`, `idp_attr_user_permanent_id` (required;
//! `name_id` means the NameID), `idp_attr_username` (default: the
//! permanent ID), `idp_attr_email`, `idp_attr_first_name`,
//! `idp_attr_last_name`, `idp_groups` (the groups attribute: values become
//! [`Identity::groups`], for maps), `extra_data` (attributes copied into
//! [`Identity::attributes`]) and `get_all_extra_data`, `org_info`
//! (`{"en-US": {name, displayname, url}}`), `technical_contact` and
//! `support_contact` (`{givenName, emailAddress}`), `sp_extra`
//! (`sign_request`), `security_config` (`authnRequestsSigned`,
//! `wantMessagesSigned`, `wantAssertionsSigned`, `requestedAuthnContext`,
//! `signatureAlgorithm`), `callback_url` (the ACS URL; the daemon derives
//! it from `public_url` when empty), `allow_idp_initiated`. This plugin's
//! own: `signature_algorithms` (accepted on responses, default
//! `["rsa-sha256"]`; also `rsa-sha384`, `rsa-sha512`, `ecdsa-sha256`,
//! `ecdsa-sha384`, `ecdsa-sha512`) and `clock_skew` (default `"60s"`).
//!
//! # What a response must pass
//! In order ([`front`], [`structure`], [`verify`]): at most 48 KiB, base64,
//! UTF-8, no DTD or entity, no comment, CDATA or processing instruction;
//! one `Response` holding exactly one `Assertion`, every signature directly
//! in the element it references, unique IDs (no signature wrapping); every
//! signature verifies with the IdP certificate and an allowed algorithm
//! ([`dsig`]: exclusive canonicalization in Rust over a quick-xml tree, the
//! RSA or ECDSA check by OpenSSL with the key loaded once; the Response and
//! Assertion are read from the canonical bytes that were signed); issuer, audience, `Destination` and `Recipient` (= the ACS URL),
//! `NotBefore` / `NotOnOrAfter` and IssueInstant within the skew, status
//! success, `InResponseTo` equal to this login's request (and absent for
//! IdP-initiated logins). The assertion ID is then single use until it
//! expires: the plugin hands it to the daemon ([`Identity::once`]), which
//! claims it in its store (shared by every host using the store). A refusal
//! is a [`PluginError::InvalidAssertion`] with a stable reason
//! ([`SamlError::reason`]: `signature`, `audience`, `expired`, …): 401
//! `invalid_credentials` to the client, the reason in the log and `explain`;
//! `replay` comes from the daemon.
//!
//! # Isolation
//! The XML is parsed and canonicalized in safe Rust; OpenSSL (C) checks
//! the RSA or ECDSA signature over bytes already canonical, and parses the
//! IdP certificate once per configuration. `isolation = "process"` still
//! keeps a crash of this plugin, or its CPU, away from the daemon's
//! serving threads.

use std::sync::Arc;

use base64::Engine as _;
use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, FinishRequest, Flow, Identity, LoginStep, Metadata, Plugin,
    PluginConfig, PluginError, Redirect, StartRequest, async_trait, serde_json,
};
use openssl::pkey::{PKey, Private};

pub mod c14n;
pub mod dsig;
pub mod error;
pub mod front;
pub mod schema;
pub mod settings;
pub mod structure;
pub mod verify;
pub mod xml;

pub use error::SamlError;
use settings::Settings;
use verify::{ResponseVerifier, VerifiedAssertion};

/// The plugin: one authenticator type, `saml`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SamlPlugin;

impl Plugin for SamlPlugin {
    fn name(&self) -> &str {
        "saml"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![Box::new(SamlFactory)]
    }
}

/// Builds `saml` authenticators.
#[derive(Clone, Copy, Debug, Default)]
pub struct SamlFactory;

impl AuthenticatorFactory for SamlFactory {
    fn type_name(&self) -> &str {
        "saml"
    }

    fn flow(&self) -> Flow {
        Flow::Redirect
    }

    fn config_schema(&self) -> serde_json::Value {
        let s = |d: &str| serde_json::json!({"type": "string", "description": d});
        serde_json::json!({
            "type": "object",
            "required": ["sp_entity_id", "idp_url", "idp_x509_cert", "idp_entity_id", "idp_attr_user_permanent_id"],
            "properties": {
                "sp_entity_id": s("this service provider's entity ID (SP_ENTITY_ID)"),
                "sp_public_cert": s("the SP certificate, PEM (SP_PUBLIC_CERT; also _file/_credential)"),
                "sp_private_key": s("the SP private key, PEM (SP_PRIVATE_KEY; also _file/_credential)"),
                "idp_url": s("the IdP's SSO URL, HTTP-Redirect binding (IDP_URL)"),
                "idp_x509_cert": s("the IdP's signing certificate, PEM (IDP_X509_CERT; required: without it nothing is verified)"),
                "idp_entity_id": s("the IdP's entity ID (IDP_ENTITY_ID)"),
                "idp_attr_user_permanent_id": s("attribute with the permanent user ID (IDP_ATTR_USER_PERMANENT_ID)"),
                "idp_attr_username": s("attribute with the username"),
                "idp_attr_email": s("attribute with the email address"),
                "idp_attr_first_name": s("attribute with the first name"),
                "idp_attr_last_name": s("attribute with the last name"),
                "idp_groups": s("attribute with the groups (for maps)"),
                "extra_data": {"type": "array", "items": {"type": "string"}, "description": "attributes copied into the identity"},
                "get_all_extra_data": {"type": "boolean", "default": false, "description": "copy every attribute"},
                "org_info": {"type": "object", "description": "organization info per language, for the SP metadata"},
                "technical_contact": {"type": "object", "description": "{givenName, emailAddress}, for the SP metadata"},
                "support_contact": {"type": "object", "description": "{givenName, emailAddress}, for the SP metadata"},
                "sp_extra": {"type": "object", "description": "extra SP settings, e.g. sign_request"},
                "security_config": {"type": "object", "description": "authnRequestsSigned, wantMessagesSigned, wantAssertionsSigned, requestedAuthnContext, signatureAlgorithm"},
                "callback_url": s("the ACS URL (derived from [daemon] public_url when empty)"),
                "allow_idp_initiated": {"type": "boolean", "default": false, "description": "accept responses without a prior start (RelayState \"IdP\")"},
                "signature_algorithms": {"type": "array", "items": {"type": "string"}, "default": ["rsa-sha256"], "description": "accepted response signature algorithms"},
                "clock_skew": {"type": "string", "default": "60s", "description": "allowed on NotBefore / NotOnOrAfter, at most 10m"}
            }
        })
    }

    fn secret_settings(&self) -> &[&str] {
        // the certificates are not secret, but read from files the same way
        &["sp_private_key", "sp_public_cert", "idp_x509_cert"]
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        Ok(Arc::new(Saml::new(&config)?))
    }
}

/// A configured SAML service provider.
pub struct Saml {
    settings: Settings,
    verifier: ResponseVerifier,
    signing_key: Option<PKey<Private>>,
    metadata: String,
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

impl Saml {
    /// Checks the settings and builds the instance.
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let settings = Settings::parse(config)?;
        let verifier = ResponseVerifier::new(&settings)?;
        let signing_key =
            match (&settings.sp_private_key, settings.sign_requests) {
                (Some(k), true) => Some(PKey::private_key_from_pem(k.expose().as_bytes()).map_err(|_| {
                    PluginError::Misconfigured("sp_private_key: not a PEM private key".into())
                })?),
                _ => None,
            };
        let metadata = sp_metadata(&settings);
        Ok(Self {
            settings,
            verifier,
            signing_key,
            metadata,
        })
    }

    /// The HTTP-Redirect URL of a fresh AuthnRequest.
    fn redirect_url(&self, request_xml: &str, relay_state: &str) -> Result<String, PluginError> {
        use std::io::Write as _;
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate
            .write_all(request_xml.as_bytes())
            .map_err(|e| PluginError::Internal(format!("deflate: {e}")))?;
        let deflated = deflate
            .finish()
            .map_err(|e| PluginError::Internal(format!("deflate: {e}")))?;
        let request = base64::engine::general_purpose::STANDARD.encode(deflated);
        // The signed octets are the query exactly as sent (SAML bindings §3.4.4.1).
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("SAMLRequest", &request);
        query.append_pair("RelayState", relay_state);
        if let Some(key) = &self.signing_key {
            query.append_pair("SigAlg", self.settings.request_algorithm.uri());
            let signed = query.finish();
            let digest = match self.settings.request_algorithm {
                settings::Algorithm::RsaSha256 | settings::Algorithm::EcdsaSha256 => {
                    openssl::hash::MessageDigest::sha256()
                }
                settings::Algorithm::RsaSha384 | settings::Algorithm::EcdsaSha384 => {
                    openssl::hash::MessageDigest::sha384()
                }
                settings::Algorithm::RsaSha512 | settings::Algorithm::EcdsaSha512 => {
                    openssl::hash::MessageDigest::sha512()
                }
            };
            let sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
                let mut signer = openssl::sign::Signer::new(digest, key)?;
                signer.update(signed.as_bytes())?;
                signer.sign_to_vec()
            };
            let signature =
                sign().map_err(|_| PluginError::Internal("cannot sign the AuthnRequest".into()))?;
            let mut tail = url::form_urlencoded::Serializer::new(String::new());
            tail.append_pair(
                "Signature",
                &base64::engine::general_purpose::STANDARD.encode(signature),
            );
            let sep = if self.settings.idp_url.contains('?') {
                '&'
            } else {
                '?'
            };
            return Ok(format!(
                "{}{sep}{signed}&{}",
                self.settings.idp_url,
                tail.finish()
            ));
        }
        let sep = if self.settings.idp_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{}", self.settings.idp_url, query.finish()))
    }

    /// The AuthnRequest document.
    fn authn_request(&self, id: &str, now: std::time::SystemTime) -> String {
        let s = &self.settings;
        let instant = chrono::DateTime::<chrono::Utc>::from(now).format("%Y-%m-%dT%H:%M:%SZ");
        let mut context = String::new();
        if !s.requested_authn_context.is_empty() {
            context.push_str("<samlp:RequestedAuthnContext Comparison=\"exact\">");
            for class in &s.requested_authn_context {
                context.push_str(&format!(
                    "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                    xml_escape(class)
                ));
            }
            context.push_str("</samlp:RequestedAuthnContext>");
        }
        format!(
            "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{}\" ProtocolBinding=\"{HTTP_POST}\" \
             AssertionConsumerServiceURL=\"{}\"><saml:Issuer>{}</saml:Issuer>\
             <samlp:NameIDPolicy Format=\"{NAMEID_UNSPECIFIED}\" AllowCreate=\"true\"/>{context}\
             </samlp:AuthnRequest>",
            xml_escape(&s.idp_url),
            xml_escape(&s.acs_url),
            xml_escape(&s.sp_entity_id),
        )
    }

    /// The identity of a verified assertion, per the attribute settings.
    fn identity(&self, a: &VerifiedAssertion) -> Result<Identity, SamlError> {
        let s = &self.settings;
        let values = |name: &str| -> Option<Vec<String>> {
            if name == "name_id" {
                return a.name_id.clone().map(|v| vec![v]);
            }
            a.attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let first = |name: &Option<String>| {
            name.as_deref()
                .and_then(values)
                .and_then(|v| v.into_iter().find(|x| !x.is_empty()))
        };
        let uid = first(&Some(s.attr_permanent_id.clone()))
            .ok_or_else(|| SamlError::MissingAttribute(s.attr_permanent_id.clone()))?;
        let username = match &s.attr_username {
            Some(attr) => {
                first(&Some(attr.clone())).ok_or_else(|| SamlError::MissingAttribute(attr.clone()))?
            }
            None => uid.clone(),
        };
        let mut identity = Identity::new(uid, username);
        identity.email = first(&s.attr_email);
        identity.first_name = first(&s.attr_first_name);
        identity.last_name = first(&s.attr_last_name);
        if let Some(groups) = s.attr_groups.as_deref().and_then(values) {
            identity.groups = groups.into_iter().filter(|g| !g.is_empty()).collect();
        }
        for (name, vals) in &a.attributes {
            if s.get_all_extra_data || s.extra_data.iter().any(|e| e == name) {
                identity
                    .attributes
                    .entry(name.clone())
                    .or_default()
                    .extend(vals.iter().cloned());
            }
        }
        Ok(identity.with_once(a.id.clone(), a.expires_at))
    }

    fn finish_response(&self, request: &FinishRequest) -> Result<Identity, SamlError> {
        let request_id = match &request.flow_state {
            Some(state) => Some(
                state
                    .get("request_id")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| SamlError::Malformed("the login's state has no request ID".into()))?,
            ),
            None if !self.settings.allow_idp_initiated => return Err(SamlError::Unsolicited),
            None => None,
        };
        let encoded = request
            .params
            .get("SAMLResponse")
            .ok_or_else(|| SamlError::Malformed("no SAMLResponse".into()))?;
        let xml = front::decode_response(encoded)?;
        let assertion = self.verifier.verify(&xml, request_id)?;
        self.identity(&assertion)
    }
}

/// The SP metadata document.
fn sp_metadata(s: &Settings) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\n\
         <md:SPSSODescriptor AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"{}\" \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n",
        xml_escape(&s.sp_entity_id),
        s.sign_requests,
        s.want_assertions_signed,
    );
    if let Some(der) = &s.sp_cert_der {
        out.push_str(&format!(
            "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
    }
    out.push_str(&format!(
        "<md:NameIDFormat>{NAMEID_UNSPECIFIED}</md:NameIDFormat>\n\
         <md:AssertionConsumerService Binding=\"{HTTP_POST}\" Location=\"{}\" index=\"1\"/>\n\
         </md:SPSSODescriptor>\n",
        xml_escape(&s.acs_url)
    ));
    if !s.org_info.is_empty() {
        let mut names = String::new();
        let mut displays = String::new();
        let mut urls = String::new();
        for (lang, org) in &s.org_info {
            let lang = xml_escape(lang);
            names.push_str(&format!(
                "<md:OrganizationName xml:lang=\"{lang}\">{}</md:OrganizationName>",
                xml_escape(&org.name)
            ));
            displays.push_str(&format!(
                "<md:OrganizationDisplayName xml:lang=\"{lang}\">{}</md:OrganizationDisplayName>",
                xml_escape(&org.displayname)
            ));
            urls.push_str(&format!(
                "<md:OrganizationURL xml:lang=\"{lang}\">{}</md:OrganizationURL>",
                xml_escape(&org.url)
            ));
        }
        out.push_str(&format!(
            "<md:Organization>{names}{displays}{urls}</md:Organization>\n"
        ));
    }
    for (kind, contact) in [
        ("technical", &s.technical_contact),
        ("support", &s.support_contact),
    ] {
        if let Some(c) = contact {
            out.push_str(&format!(
                "<md:ContactPerson contactType=\"{kind}\"><md:GivenName>{}</md:GivenName>\
                 <md:EmailAddress>{}</md:EmailAddress></md:ContactPerson>\n",
                xml_escape(&c.given_name),
                xml_escape(&c.email_address)
            ));
        }
    }
    out.push_str("</md:EntityDescriptor>\n");
    out
}

/// A fresh AuthnRequest ID: `_` and 160 random bits in hex (an ID must not
/// start with a digit).
fn request_id() -> Result<String, PluginError> {
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes).map_err(|_| PluginError::Internal("no randomness".into()))?;
    let mut id = String::with_capacity(41);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

#[async_trait]
impl Authenticator for Saml {
    async fn start(&self, ctx: &Context, request: StartRequest) -> Result<Redirect, PluginError> {
        let id = request_id()?;
        let xml = self.authn_request(&id, ctx.now());
        let url = self.redirect_url(&xml, &request.state)?;
        Ok(Redirect::new(url, serde_json::json!({ "request_id": id })))
    }

    async fn finish(&self, ctx: &Context, request: FinishRequest) -> Result<LoginStep, PluginError> {
        // The XML work (about 0.4 ms of CPU since session 10) runs here, on the
        // calling thread. On the blocking pool (`gatehouse_sdk::blocking`)
        // it cost 10–25% more CPU per response and up to a third of the
        // rate at 8 connections (docs/benchmarks.md, SAML, session 9): the
        // thread hand-offs cost more than they spare. With the recommended
        // `isolation = "process"` none of it runs on the daemon's serving
        // threads anyway.
        match self.finish_response(&request) {
            Ok(identity) => Ok(LoginStep::Authenticated(identity)),
            Err(e) => {
                ctx.info(&format!("{}: SAML response refused: {e}", ctx.instance()));
                Err(e.into())
            }
        }
    }

    async fn metadata(&self, _ctx: &Context) -> Result<Metadata, PluginError> {
        Ok(Metadata::new(
            "application/samlmetadata+xml",
            self.metadata.clone(),
        ))
    }
}

#[cfg(test)]
mod tests;
