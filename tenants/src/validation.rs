//! Field-level validation errors. Every input type is parsed into a domain type by a function that
//! returns *all* the problems at once, each naming the field by its JSON path, so a client can fix a
//! form in one round trip.

use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, dotted (`address.postal_code`); empty for the body as a whole.
    pub field: String,
    /// Stable snake_case code a client can switch on (`required`, `too_long`, `invalid_format`…).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Field errors collected while parsing an input; empty means the input is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no error was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Checks a required, trimmed text field: not blank, at most `max` characters, no control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.push(field, "required", "must not be blank");
        } else if trimmed.chars().count() > max {
            self.push(
                field,
                "too_long",
                format!("must be at most {max} characters"),
            );
        } else if trimmed.chars().any(char::is_control) {
            self.push(
                field,
                "invalid_characters",
                "must not contain control characters",
            );
        }
        trimmed.to_owned()
    }

    /// Like [`Self::text`] for an optional field: blank becomes `None`.
    pub fn optional_text(
        &mut self,
        field: &str,
        value: Option<&str>,
        max: usize,
    ) -> Option<String> {
        match value.map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(self.text(field, v, max)),
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Deserializes a JSON document into `T`, turning serde's complaint (wrong type, unknown field,
/// missing field) into a [`FieldError`] that names the field by its path.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| ValidationErrors(vec![serde_field_error(&e)]))
}

/// Deserializes JSON text into `T`; syntax errors name the line and column.
pub fn from_json_slice<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, ValidationErrors> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            ValidationErrors(vec![FieldError::new(
                "",
                "malformed_json",
                e.inner().to_string(),
            )])
        } else {
            ValidationErrors(vec![serde_field_error(&e)])
        }
    })?;
    // Deserializing stops after the first value; anything but whitespace after it is malformed.
    de.end().map_err(|e| {
        ValidationErrors(vec![FieldError::new("", "malformed_json", e.to_string())])
    })?;
    // PostgreSQL text (and jsonb) cannot hold U+0000: a string with one would fail in the database
    // as a 500, so it is refused here, naming the field. JSON text can carry it only escaped, so
    // bodies without the escape skip the second parse.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = nul_path(&doc, String::new())
    {
        return Err(ValidationErrors(vec![FieldError::new(
            field,
            "invalid_characters",
            "text must not contain the NUL character (U+0000)",
        )]));
    }
    Ok(value)
}

/// The path (`a.b[0].c`, as serde names fields) of the first string in `v` — a value or an
/// object's key — that contains U+0000.
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match v {
        Value::String(s) => s.contains('\0').then_some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(join(k))
            } else {
                nul_path(item, join(k))
            }
        }),
        _ => None,
    }
}

fn serde_field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let msg = e.inner().to_string();
    // serde's messages end with " at line L column C", noise for a value-level error.
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
    let code = if msg.starts_with("unknown field") {
        "unknown_field"
    } else if msg.starts_with("missing field") {
        "required"
    } else if msg.starts_with("invalid type") {
        "invalid_type"
    } else {
        "invalid_value"
    };
    // For a missing field serde reports the path of the enclosing object; name the field. (For an
    // unknown one the path already ends with it.)
    let field = match (code, msg.split('`').nth(1)) {
        ("required", Some(name)) if path.is_empty() => name.to_owned(),
        ("required", Some(name)) => format!("{path}.{name}"),
        _ => path,
    };
    FieldError::new(field, code, msg)
}

/// Applies a JSON merge patch (RFC 7396) to `target` in place: objects merge member by member,
/// `null` removes a member, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        zip: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    fn first(r: Result<Outer, ValidationErrors>) -> FieldError {
        r.err()
            .and_then(|e| e.0.into_iter().next())
            .unwrap_or_else(|| FieldError::new("?", "?", "?"))
    }

    #[test]
    fn names_the_field() {
        let e = first(from_json_slice(br#"{"name": 5, "inner": {"zip": "1"}}"#));
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("name", "invalid_type")
        );
        let e = first(from_json_slice(
            br#"{"name": "a", "inner": {"zip": "1", "zap": 1}}"#,
        ));
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("inner.zap", "unknown_field")
        );
        let e = first(from_json_slice(br#"{"name": "a", "inner": {}}"#));
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("inner.zip", "required")
        );
        let e = first(from_json_slice(br#"{"name": "a", "#));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("", "malformed_json"));
        // U+0000, which PostgreSQL text cannot store, is refused by name (also in a key, or in a
        // nested value); an escaped backslash before `u0000` is plain text.
        let e = first(from_json_slice(
            br#"{"name": "a\u0000b", "inner": {"zip": "1"}}"#,
        ));
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("name", "invalid_characters")
        );
        let e = first(from_json_slice(
            br#"{"name": "a", "inner": {"zip": "\u0000"}}"#,
        ));
        assert_eq!(e.field, "inner.zip");
        let ok: Result<Outer, _> =
            from_json_slice(br#"{"name": "a\\u0000", "inner": {"zip": "1"}}"#);
        assert!(ok.is_ok(), "{ok:?}");
        let v: Result<serde_json::Value, _> = from_json_slice(br#"{"list": [1, {"k\u0000": 2}]}"#);
        let field = v
            .err()
            .and_then(|e| e.0.into_iter().next())
            .map(|e| e.field);
        assert_eq!(field.as_deref(), Some("list[1].k\u{0}"));
        let e = first(from_json_slice(br#"{"name": "a", "#));
        assert_eq!(e.code, "malformed_json");
        let e = first(from_json_slice(
            br#"{"name": "a", "inner": {"zip": "1"}} {}"#,
        ));
        assert_eq!(e.code, "malformed_json");
        let e = first(from_json_value(json!([1])));
        assert_eq!(e.code, "invalid_type");
    }

    #[test]
    fn merge_patch_rfc7396_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": "c"}}));
        assert_eq!(doc, json!({"a": {"b": "c"}}));
        let mut doc = json!({"a": "b"});
        merge_patch(&mut doc, &json!(["c"]));
        assert_eq!(doc, json!(["c"]));
    }
}
