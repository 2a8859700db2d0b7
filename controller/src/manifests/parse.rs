//! YAML and JSON documents into typed Kubernetes objects, with errors that name the file, the
//! document, the object and the field.

use std::path::Path;

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;
use serde_norway::Value;

use super::ManifestError;
use crate::index::Object;

/// The objects of one file, with the document each came from (1-based), and the kinds ferry
/// does not read (Deployments and the like), which are skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<(usize, Object)>,
    pub skipped: Vec<String>,
}

/// `apiVersion` and `kind` of each kind ferry reads.
const KINDS: [(&str, &str); 6] = [
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("v1", "Service"),
    ("v1", "Endpoints"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("v1", "Secret"),
];

/// Parses every document of `text`, read from `file`.
pub fn parse_str(text: &str, file: &Path) -> Result<Parsed, Vec<ManifestError>> {
    let mut parsed = Parsed::default();
    let mut errors = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        match Value::deserialize(document) {
            Ok(value) => {
                if let Err(e) = parse_value(value, file, doc, "", &mut parsed) {
                    errors.push(e);
                }
            }
            Err(e) => {
                errors.push(ManifestError::Syntax {
                    file: file.to_owned(),
                    doc,
                    message: e.to_string(),
                });
                // The parser cannot find the next document after a syntax error.
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn parse_value(
    value: Value,
    file: &Path,
    doc: usize,
    at: &str,
    parsed: &mut Parsed,
) -> Result<(), ManifestError> {
    let document_error = |what: String| ManifestError::Document {
        file: file.to_owned(),
        doc,
        what,
    };
    if value.is_null() {
        return Ok(()); // an empty document, e.g. after a trailing `---`
    }
    if !value.is_mapping() {
        return Err(document_error(format!(
            "{at}expected a Kubernetes object (a mapping)"
        )));
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(document_error(format!(
            "{at}apiVersion and kind are required"
        )));
    };
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_owned();

    if kind == "List" || kind.ends_with("List") && value.get("items").is_some() {
        let items = match value.get("items") {
            Some(Value::Sequence(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(document_error(format!("{at}items: expected a list"))),
        };
        for (i, item) in items.into_iter().enumerate() {
            parse_value(item, file, doc, &format!("{at}items[{i}]: "), parsed)?;
        }
        return Ok(());
    }

    let tls_secret = text("type").as_deref() == Some(crate::index::TLS_SECRET_TYPE);
    let Some(&(supported, _)) = KINDS
        .iter()
        .find(|(_, k)| *k == kind && (kind != "Secret" || tls_secret))
    else {
        // Other Secrets (credentials, tokens) are none of ferry's business.
        parsed.skipped.push(format!("{kind} {name}"));
        return Ok(());
    };
    if api_version != supported {
        return Err(document_error(format!(
            "{at}{kind} {name}: apiVersion {api_version} is not supported; use {supported}"
        )));
    }
    let field_error = |e: serde_path_to_error::Error<serde_norway::Error>| {
        let field = e.path().to_string();
        ManifestError::Field {
            file: file.to_owned(),
            doc,
            object: format!("{at}{kind} {name}"),
            field: if field == "." {
                "(object)".to_owned()
            } else {
                field
            },
            message: e.into_inner().to_string(),
        }
    };
    let object = match kind.as_str() {
        "Ingress" => Object::Ingress(Box::new(typed::<Ingress>(value).map_err(field_error)?)),
        "IngressClass" => {
            Object::IngressClass(Box::new(typed::<IngressClass>(value).map_err(field_error)?))
        }
        "Service" => Object::Service(Box::new(typed::<Service>(value).map_err(field_error)?)),
        "Endpoints" => Object::Endpoints(Box::new(typed::<Endpoints>(value).map_err(field_error)?)),
        "EndpointSlice" => Object::EndpointSlice(Box::new(
            typed::<EndpointSlice>(value).map_err(field_error)?,
        )),
        "Secret" => Object::Secret(Box::new(typed::<Secret>(value).map_err(field_error)?)),
        _ => unreachable!("every kind of KINDS is matched"),
    };
    parsed.objects.push((doc, object));
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, serde_path_to_error::Error<serde_norway::Error>> {
    serde_path_to_error::deserialize(value)
}
