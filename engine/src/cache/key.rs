//! Cache keys: BLAKE3 over a length-prefixed, tagged encoding of everything
//! that decides an output, and canonical JSON for params.
//!
//! Length prefixes make the encoding unambiguous (`("ab","c")` and
//! `("a","bc")` hash differently); tags name each field so two fields can
//! never be confused.

use serde_json::Value;

/// Version of the key encoding; bump to invalidate every cache entry.
pub const KEY_DOMAIN: &str = "dflow-cache-v1";

/// Builds a cache key field by field.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyBuilder {
    /// Starts a key with the encoding's domain tag.
    pub fn new() -> Self {
        let mut k = Self {
            hasher: blake3::Hasher::new(),
        };
        k.field("domain", KEY_DOMAIN.as_bytes());
        k
    }

    /// Adds a tagged, length-prefixed byte field.
    pub fn field(&mut self, tag: &str, value: &[u8]) -> &mut Self {
        self.hasher.update(&(tag.len() as u64).to_le_bytes());
        self.hasher.update(tag.as_bytes());
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// Adds a tagged string field.
    pub fn str(&mut self, tag: &str, value: &str) -> &mut Self {
        self.field(tag, value.as_bytes())
    }

    /// The key of the fields added so far, as lowercase hex.
    pub fn finish(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// JSON with object keys sorted at every level and no whitespace: the same
/// params give the same text whatever order the YAML listed them in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Digest of canonical params.
pub fn params_digest(value: &Value) -> String {
    let mut k = KeyBuilder::new();
    k.str("params", &canonical_json(value));
    k.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn length_prefix_separates_fields() {
        let a = KeyBuilder::new().str("x", "ab").str("y", "c").finish();
        let b = KeyBuilder::new().str("x", "a").str("y", "bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn canonical_sorts_nested_keys() {
        let a = json!({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-e]{1,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Rebuilds every object with its keys inserted in reverse order.
    fn reorder(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.reverse();
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), reorder(v));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(reorder).collect()),
            other => other.clone(),
        }
    }

    /// All JSON pointers to leaves.
    fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out)),
            _ => out.push(at),
        }
    }

    fn mutate(leaf: &Value) -> Value {
        match leaf {
            Value::Null => Value::Bool(false),
            Value::Bool(b) => Value::Bool(!b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i.wrapping_add(1))
                } else {
                    Value::from(n.as_f64().unwrap_or(0.0) + 0.5)
                }
            }
            Value::String(s) => Value::String(format!("{s}!")),
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn hashing_ignores_key_order(v in arb_json()) {
            prop_assert_eq!(params_digest(&v), params_digest(&reorder(&v)));
        }

        #[test]
        fn hashing_sees_every_value_change(v in arb_json(), pick in any::<prop::sample::Index>()) {
            let mut paths = Vec::new();
            leaves(&v, String::new(), &mut paths);
            if !paths.is_empty() {
                let path = pick.get(&paths).clone();
                let mut changed = v.clone();
                if path.is_empty() {
                    changed = mutate(&v);
                } else if let Some(leaf) = changed.pointer_mut(&path) {
                    *leaf = mutate(leaf);
                }
                prop_assert_ne!(params_digest(&v), params_digest(&changed));
            }
        }
    }
}
