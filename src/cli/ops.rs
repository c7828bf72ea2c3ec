//! `dflow ops` (operators and their params) and `dflow schema` (the JSON
//! Schema of pipeline files), both generated from the typed params structs.

use dflow_engine::Registry;
use dflow_engine::registry::OpInfo;
use serde_json::{Map, Value, json};

/// Type of a params property, as a short text.
fn type_of(p: &Value) -> String {
    if let Some(t) = p.get("type") {
        return match t {
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect::<Vec<_>>()
                .join("|"),
            Value::String(s) if s == "array" => {
                format!(
                    "list of {}",
                    p.get("items").map(type_of).unwrap_or_default()
                )
            }
            Value::String(s) => s.clone(),
            _ => t.to_string(),
        };
    }
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = p.get(key) {
            return alts
                .iter()
                .map(type_of)
                .filter(|t| t != "null")
                .collect::<Vec<_>>()
                .join("|");
        }
    }
    "any".into()
}

/// One operator: summary and a line per param.
pub fn describe(op: &OpInfo) -> String {
    let mut s = format!("{}: {}\n", op.name, op.summary);
    let schema = &op.params_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        s.push_str("  (no params)\n");
        return s;
    };
    s.push_str("params:\n");
    for (name, p) in props {
        let how = if required.contains(&name.as_str()) {
            "required".to_string()
        } else {
            match p.get("default") {
                Some(d) => format!("default {d}"),
                None => "optional".to_string(),
            }
        };
        s.push_str(&format!("  {name}: {} ({how})\n", type_of(p)));
        if let Some(d) = p.get("description").and_then(Value::as_str) {
            for line in d.lines() {
                s.push_str(&format!("      {line}\n"));
            }
        }
    }
    s
}

/// The JSON Schema of a pipeline file, with every operator's params.
pub fn pipeline_schema(registry: &Registry) -> Value {
    let mut defs = Map::new();
    let mut variants = Vec::new();
    for op in registry.ops() {
        let mut params = op.params_schema.clone();
        if let Some(Value::Object(d)) = params.as_object_mut().and_then(|m| m.remove("$defs")) {
            defs.extend(d);
        }
        if let Some(m) = params.as_object_mut() {
            m.remove("$schema");
            m.remove("title");
        }
        variants.push(json!({
            "type": "object",
            "description": op.summary,
            "required": ["op"],
            "additionalProperties": false,
            "properties": {
                "op": { "const": op.name },
                "description": { "type": "string" },
                "inputs": {
                    "type": "object",
                    "description": "input port -> `node` or `node.port`",
                    "additionalProperties": { "type": "string" }
                },
                "params": params,
                "resources": { "$ref": "#/$defs/Resources" }
            }
        }));
    }
    if let Ok(Value::Object(mut r)) =
        serde_json::to_value(schemars::schema_for!(dflow_engine::spec::Resources))
    {
        if let Some(Value::Object(d)) = r.remove("$defs") {
            defs.extend(d);
        }
        r.remove("$schema");
        defs.insert("Resources".into(), Value::Object(r));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dflow pipeline",
        "type": "object",
        "required": ["version", "nodes"],
        "additionalProperties": false,
        "properties": {
            "version": { "const": 1 },
            "name": { "type": "string" },
            "description": { "type": "string" },
            "nodes": {
                "type": "object",
                "propertyNames": { "pattern": "^[a-z_][a-z0-9_]*$" },
                "additionalProperties": { "oneOf": variants }
            }
        },
        "$defs": defs
    })
}
