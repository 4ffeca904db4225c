//! `GET /v1/plugins` (admin): what the registry knows — every type with its
//! origin, the plugin libraries and their manifests, and the files of
//! `plugin_dirs` that were skipped as not plugins.

use http::{Response, StatusCode};

use gatehouse_sdk::proto::{PluginLibrary, PluginList, PluginType, SkippedFile};

use super::{ApiError, Body, Call, json};

pub(super) fn list(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let registry = &call.runtime.registry;
    let types = registry
        .listing()
        .into_iter()
        .map(|t| PluginType {
            family: t.family.to_owned(),
            type_name: t.type_name,
            origin: t.origin,
        })
        .collect();
    let libraries = registry
        .libraries()
        .into_iter()
        .map(|info| {
            let d = &info.library.descriptor;
            PluginLibrary {
                path: info.library.path.display().to_string(),
                name: info.manifest.name,
                version: info.manifest.version,
                sdk_version: info.manifest.sdk_version,
                authenticators: d.authenticators.iter().map(|t| t.type_name.clone()).collect(),
                verifiers: d.verifiers.iter().map(|t| t.type_name.clone()).collect(),
                capabilities: info.manifest.capabilities,
            }
        })
        .collect();
    let skipped = registry
        .skipped()
        .iter()
        .map(|s| SkippedFile {
            path: s.path.display().to_string(),
            code: s.reason.code().to_owned(),
            reason: s.reason.to_string(),
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &PluginList {
            types,
            libraries,
            skipped,
        },
    ))
}
