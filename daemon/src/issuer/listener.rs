//! `[issuer] listen`: a TCP listener that serves the issuer's public
//! documents (`/.well-known/openid-configuration`, `/v1/jwks`) to remote
//! backends, over TLS when a certificate is configured (plain http only
//! on loopback addresses, which configuration enforces). Nothing else is
//! reachable through it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::state::Daemon;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// The longest a connection may take for its TLS handshake and request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the TLS acceptor from PEM files (a certificate chain and its
/// private key).
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, daemon: Arc<Daemon>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("[issuer] listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let daemon = Arc::clone(&daemon);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let d = Arc::clone(&daemon);
                async move { Ok::<_, std::convert::Infallible>(answer(&d, &req).await) }
            });
            let served = async {
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => {
                            let _ = builder.serve_connection(TokioIo::new(s), service).await;
                        }
                        Err(e) => tracing::debug!("[issuer] listener: TLS handshake failed: {e}"),
                    },
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            };
            // keep-alive is allowed, but no connection lives forever
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT * 6, served).await;
        });
    }
}

async fn answer(daemon: &Daemon, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let rt = daemon.runtime();
    let reply = |status: StatusCode, body: serde_json::Value| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    };
    let (Some(config), Some(issuer)) = (&rt.config.issuer, &rt.issuer) else {
        return reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": "not_found"}}),
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": {"code": "method_not_allowed"}}),
        );
    }
    let now = gatehouse_sdk::jose::unix(std::time::SystemTime::now());
    match req.uri().path() {
        "/.well-known/openid-configuration" => reply(StatusCode::OK, super::Issuer::discovery(config)),
        "/v1/jwks" => match issuer.jwks(config, now).await {
            Ok(jwks) => reply(StatusCode::OK, jwks),
            Err(e) => {
                tracing::warn!("[issuer] listener: {e}");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"error": {"code": "backend_unavailable", "message": "the keyring cannot be read from the store"}}),
                )
            }
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": "not_found", "message": "this listener serves the issuer's discovery document and JWKS only"}}),
        ),
    }
}
