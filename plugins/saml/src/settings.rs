//! Settings: the names of CONFIG.md (snake_case of the platform's fields)
//! and the platform's own uppercase names (`SP_ENTITY_ID`, `IDP_URL`, …),
//! so an exported configuration pastes in. Everything is checked when the
//! instance is built; a configuration on which the plugin would verify
//! nothing (no IdP certificate) is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_sdk::{PluginError, Secret, parse_duration};
use serde::Deserialize;

/// `org_info`: per language (`en-US`), the organization's names and URL.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrgInfo {
    /// `OrganizationName`.
    #[serde(default)]
    pub name: String,
    /// `OrganizationDisplayName`.
    #[serde(default)]
    pub displayname: String,
    /// `OrganizationURL`.
    #[serde(default)]
    pub url: String,
}

/// `technical_contact` / `support_contact`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// `GivenName`.
    #[serde(default, alias = "givenName")]
    pub given_name: String,
    /// `EmailAddress`.
    #[serde(default, alias = "emailAddress")]
    pub email_address: String,
}

/// `security_config`, with the platform's camelCase keys.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    #[serde(default, rename = "authnRequestsSigned")]
    authn_requests_signed: Option<bool>,
    #[serde(default, rename = "wantMessagesSigned")]
    want_messages_signed: Option<bool>,
    #[serde(default, rename = "wantAssertionsSigned")]
    want_assertions_signed: Option<bool>,
    /// false: none; true: PasswordProtectedTransport; a list: those classes.
    #[serde(default, rename = "requestedAuthnContext")]
    requested_authn_context: Option<serde_json::Value>,
    /// The AuthnRequest signature algorithm (a URI or a short name).
    #[serde(default, rename = "signatureAlgorithm")]
    signature_algorithm: Option<String>,
}

/// The settings as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default, alias = "SP_ENTITY_ID")]
    sp_entity_id: String,
    #[serde(default, alias = "SP_PUBLIC_CERT")]
    sp_public_cert: Option<String>,
    #[serde(default, alias = "SP_PRIVATE_KEY")]
    sp_private_key: Option<Secret>,
    #[serde(default, alias = "IDP_URL")]
    idp_url: String,
    #[serde(default, alias = "IDP_X509_CERT", alias = "IDP_X509CERT")]
    idp_x509_cert: String,
    #[serde(default, alias = "IDP_ENTITY_ID")]
    idp_entity_id: String,
    #[serde(default, alias = "IDP_ATTR_USER_PERMANENT_ID")]
    idp_attr_user_permanent_id: String,
    #[serde(default, alias = "IDP_ATTR_USERNAME")]
    idp_attr_username: Option<String>,
    #[serde(default, alias = "IDP_ATTR_EMAIL")]
    idp_attr_email: Option<String>,
    #[serde(default, alias = "IDP_ATTR_FIRST_NAME")]
    idp_attr_first_name: Option<String>,
    #[serde(default, alias = "IDP_ATTR_LAST_NAME")]
    idp_attr_last_name: Option<String>,
    #[serde(default, alias = "IDP_GROUPS", alias = "IDP_ATTR_GROUPS")]
    idp_groups: Option<String>,
    #[serde(default, alias = "EXTRA_DATA")]
    extra_data: Vec<String>,
    #[serde(default, alias = "GET_ALL_EXTRA_DATA")]
    get_all_extra_data: bool,
    #[serde(default, alias = "ORG_INFO")]
    org_info: BTreeMap<String, OrgInfo>,
    #[serde(default, alias = "TECHNICAL_CONTACT")]
    technical_contact: Option<Contact>,
    #[serde(default, alias = "SUPPORT_CONTACT")]
    support_contact: Option<Contact>,
    #[serde(default, alias = "SP_EXTRA")]
    sp_extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default, alias = "SECURITY_CONFIG")]
    security_config: RawSecurity,
    /// Filled in by the daemon (the setting, or derived from `public_url`).
    #[serde(default, alias = "CALLBACK_URL")]
    callback_url: Option<String>,
    #[serde(default, alias = "ALLOW_IDP_INITIATED")]
    allow_idp_initiated: Option<bool>,
    /// Signature algorithms accepted on responses (short names).
    #[serde(default)]
    signature_algorithms: Option<Vec<String>>,
    /// Clock skew allowed on NotBefore / NotOnOrAfter.
    #[serde(default)]
    clock_skew: Option<String>,
}

/// An XML-DSig signature algorithm the plugin accepts or signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512,
    /// ECDSA P-256 with SHA-256.
    EcdsaSha256,
    /// ECDSA with SHA-384.
    EcdsaSha384,
    /// ECDSA with SHA-512.
    EcdsaSha512,
}

impl Algorithm {
    const ALL: [Algorithm; 6] = [
        Self::RsaSha256,
        Self::RsaSha384,
        Self::RsaSha512,
        Self::EcdsaSha256,
        Self::EcdsaSha384,
        Self::EcdsaSha512,
    ];

    /// The short name used in the settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa-sha256",
            Self::RsaSha384 => "rsa-sha384",
            Self::RsaSha512 => "rsa-sha512",
            Self::EcdsaSha256 => "ecdsa-sha256",
            Self::EcdsaSha384 => "ecdsa-sha384",
            Self::EcdsaSha512 => "ecdsa-sha512",
        }
    }

    /// The XML-DSig `SignatureMethod` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            Self::EcdsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        }
    }

    /// By short name or URI.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s) || a.uri() == s)
    }
}

/// The resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The SP entity ID (also the audience required).
    pub sp_entity_id: String,
    /// The SP certificate (DER), published in the metadata.
    pub sp_cert_der: Option<Vec<u8>>,
    /// The SP private key (PEM), for signed AuthnRequests.
    pub sp_private_key: Option<Secret>,
    /// Where AuthnRequests go (HTTP-Redirect binding).
    pub idp_url: String,
    /// The IdP signing certificate (DER). Always present.
    pub idp_cert_der: Vec<u8>,
    /// The IdP entity ID (the issuer required).
    pub idp_entity_id: String,
    /// Attribute of the permanent ID (`name_id`: the NameID).
    pub attr_permanent_id: String,
    /// Attribute of the username (default: the permanent ID).
    pub attr_username: Option<String>,
    /// Attribute of the e-mail address.
    pub attr_email: Option<String>,
    /// Attribute of the given name.
    pub attr_first_name: Option<String>,
    /// Attribute of the family name.
    pub attr_last_name: Option<String>,
    /// Attribute of the groups.
    pub attr_groups: Option<String>,
    /// Attributes copied into the identity's attributes.
    pub extra_data: Vec<String>,
    /// Copy every attribute.
    pub get_all_extra_data: bool,
    /// Organization, per language.
    pub org_info: BTreeMap<String, OrgInfo>,
    /// Technical contact.
    pub technical_contact: Option<Contact>,
    /// Support contact.
    pub support_contact: Option<Contact>,
    /// Sign AuthnRequests (`authnRequestsSigned` or `sp_extra.sign_request`).
    pub sign_requests: bool,
    /// The AuthnRequest signature algorithm.
    pub request_algorithm: Algorithm,
    /// The Response element must be signed.
    pub want_messages_signed: bool,
    /// The Assertion element must carry its own signature.
    pub want_assertions_signed: bool,
    /// AuthnContext classes to request (empty: none).
    pub requested_authn_context: Vec<String>,
    /// The ACS URL.
    pub acs_url: String,
    /// Unsolicited responses accepted.
    pub allow_idp_initiated: bool,
    /// Response signature algorithms accepted.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew on validity windows.
    pub clock_skew: Duration,
}

fn bad(key: &str, what: &str) -> PluginError {
    PluginError::Misconfigured(format!("{key}: {what}"))
}

/// A PEM certificate (or its bare base64 body, as IdP metadata shows it)
/// as DER.
pub fn certificate_der(key: &str, text: &str) -> Result<Vec<u8>, PluginError> {
    let text = text.trim();
    let pem = if text.starts_with("-----BEGIN") {
        text.to_owned()
    } else {
        let body: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    };
    let cert =
        openssl::x509::X509::from_pem(pem.as_bytes()).map_err(|_| bad(key, "not a PEM certificate"))?;
    cert.to_der().map_err(|_| bad(key, "not a PEM certificate"))
}

impl Settings {
    /// Checks and resolves the settings.
    pub fn parse(config: &gatehouse_sdk::PluginConfig) -> Result<Self, PluginError> {
        let raw: RawSettings = config.parse()?;
        let required = |key: &str, v: &str| {
            if v.trim().is_empty() {
                Err(bad(key, "required"))
            } else {
                Ok(())
            }
        };
        required("sp_entity_id", &raw.sp_entity_id)?;
        required("idp_url", &raw.idp_url)?;
        required("idp_entity_id", &raw.idp_entity_id)?;
        required("idp_attr_user_permanent_id", &raw.idp_attr_user_permanent_id)?;
        // every response is verified with this certificate's key: the
        // plugin never runs without one.
        required("idp_x509_cert", &raw.idp_x509_cert)?;
        let idp_cert_der = certificate_der("idp_x509_cert", &raw.idp_x509_cert)?;
        let idp_url = url::Url::parse(&raw.idp_url).map_err(|_| bad("idp_url", "not a URL"))?;
        if !matches!(idp_url.scheme(), "https" | "http") {
            return Err(bad("idp_url", "must be an http(s) URL"));
        }
        let acs_url = raw
            .callback_url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| bad("callback_url", "required (set it, or the daemon's public_url)"))?;
        url::Url::parse(&acs_url).map_err(|_| bad("callback_url", "not a URL"))?;
        let sp_cert_der = raw
            .sp_public_cert
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| certificate_der("sp_public_cert", c))
            .transpose()?;
        let sp_private_key = raw.sp_private_key.filter(|k| !k.expose().trim().is_empty());
        if let Some(key) = &sp_private_key {
            openssl::pkey::PKey::private_key_from_pem(key.expose().as_bytes())
                .map_err(|_| bad("sp_private_key", "not a PEM private key"))?;
        }
        let mut sign_requests = raw.security_config.authn_requests_signed.unwrap_or(false);
        for (k, v) in &raw.sp_extra {
            match (k.as_str(), v) {
                ("sign_request", serde_json::Value::Bool(b)) => sign_requests |= *b,
                ("sign_request", _) => return Err(bad("sp_extra.sign_request", "must be true or false")),
                (other, _) => config
                    .context
                    .warn(&format!("sp_extra.{other} is not used by this plugin")),
            }
        }
        if sign_requests && (sp_private_key.is_none() || sp_cert_der.is_none()) {
            return Err(bad(
                "sp_private_key",
                "signed AuthnRequests need sp_private_key and sp_public_cert",
            ));
        }
        let request_algorithm = match &raw.security_config.signature_algorithm {
            None => Algorithm::RsaSha256,
            Some(a) => Algorithm::parse(a)
                .ok_or_else(|| bad("security_config.signatureAlgorithm", "unknown algorithm"))?,
        };
        let requested_authn_context = match raw.security_config.requested_authn_context {
            None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Bool(true)) => {
                vec!["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".to_owned()]
            }
            Some(serde_json::Value::Array(v)) => v
                .into_iter()
                .map(|c| match c {
                    serde_json::Value::String(s) if !s.is_empty() => Ok(s),
                    _ => Err(bad(
                        "security_config.requestedAuthnContext",
                        "a list of class URIs",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(bad(
                    "security_config.requestedAuthnContext",
                    "true, false or a list of class URIs",
                ));
            }
        };
        let algorithms = match raw.signature_algorithms {
            None => vec![Algorithm::RsaSha256],
            Some(list) if list.is_empty() => return Err(bad("signature_algorithms", "must not be empty")),
            Some(list) => list
                .iter()
                .map(|a| Algorithm::parse(a).ok_or_else(|| bad("signature_algorithms", "unknown algorithm")))
                .collect::<Result<_, _>>()?,
        };
        let clock_skew = match raw.clock_skew {
            None => Duration::from_secs(60),
            Some(s) => parse_duration(&s).map_err(|_| bad("clock_skew", "not a duration"))?,
        };
        if clock_skew > Duration::from_secs(600) {
            return Err(bad("clock_skew", "at most 10m"));
        }
        let opt = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(Self {
            sp_entity_id: raw.sp_entity_id,
            sp_cert_der,
            sp_private_key,
            idp_url: raw.idp_url,
            idp_cert_der,
            idp_entity_id: raw.idp_entity_id,
            attr_permanent_id: raw.idp_attr_user_permanent_id,
            attr_username: opt(raw.idp_attr_username),
            attr_email: opt(raw.idp_attr_email),
            attr_first_name: opt(raw.idp_attr_first_name),
            attr_last_name: opt(raw.idp_attr_last_name),
            attr_groups: opt(raw.idp_groups),
            extra_data: raw.extra_data,
            get_all_extra_data: raw.get_all_extra_data,
            org_info: raw.org_info,
            technical_contact: raw.technical_contact,
            support_contact: raw.support_contact,
            sign_requests,
            request_algorithm,
            want_messages_signed: raw.security_config.want_messages_signed.unwrap_or(false),
            want_assertions_signed: raw.security_config.want_assertions_signed.unwrap_or(false),
            requested_authn_context,
            acs_url,
            allow_idp_initiated: raw.allow_idp_initiated.unwrap_or(true),
            algorithms,
            clock_skew,
        })
    }
}
