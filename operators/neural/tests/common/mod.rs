//! Readers of the JSON references the parity tests compare against.
// Each test file uses some of these.
#![allow(dead_code)]

use serde_json::Value;

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// A JSON array of arrays of numbers (one vector per row).
pub fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().expect("rows").iter().map(floats).collect()
}

/// A JSON array of strings.
pub fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("text"))
        .collect()
}
