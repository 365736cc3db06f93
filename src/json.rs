//! JSON read with the field named: a small helper that the configuration and the snapshot both
//! read through.

/// Reads a JSON object, naming the field (`defaults.factor`) of a type error as well as its
/// position. Anything but an object is refused: serde would read an array by position.
pub(crate) fn object_naming_the_field<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    match text.trim_start().chars().next() {
        Some('{') => {}
        Some(other) => return Err(format!("expected a JSON object `{{...}}`, found {other:?}")),
        None => return Err("expected a JSON object `{...}`, found nothing".into()),
    }
    let mut json = serde_json::Deserializer::from_str(text);
    let value =
        serde_path_to_error::deserialize(&mut json).map_err(|e| match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("`{path}`: {}", e.inner()),
        })?;
    json.end().map_err(|e| e.to_string())?;
    Ok(value)
}
