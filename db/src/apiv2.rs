//! The API v2 envelope (spec §1.3): success iff `Error.Code == "OK"`.

use serde_json::Value;

use crate::error::{clip, DbError};

const OPERATORS: [&str; 6] = ["<=", ">=", "<>", "!=", "<", ">"];

pub fn starts_with_operator(v: &str) -> bool {
    OPERATORS.iter().any(|o| v.starts_with(o))
}

/// The `Data` array of an envelope, or the envelope's error.
pub fn data(body: &str, endpoint: &str) -> Result<Vec<Value>, DbError> {
    let v: Value = serde_json::from_str(body).map_err(|e| DbError::Parse {
        what: format!("API v2 {endpoint}"),
        msg: format!("{e} in {:?}", clip(body)),
    })?;
    let code = v
        .pointer("/Error/Code")
        .and_then(Value::as_str)
        .unwrap_or("");
    if code != "OK" {
        return Err(DbError::Api {
            endpoint: endpoint.to_string(),
            code: if code.is_empty() {
                "no Error.Code".into()
            } else {
                code.to_string()
            },
            message: format!(
                "{} {}",
                v.pointer("/Error/Message")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                v.pointer("/Error/Arguments")
                    .map(Value::to_string)
                    .unwrap_or_default()
            )
            .trim()
            .to_string(),
        });
    }
    match v.get("Data") {
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(other) => Ok(vec![other.clone()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        let ok = r#"{"APIVersion":"2.0.0","DataType":"X","Encoding":"NativeJSON","Error":{"Code":"OK","Message":"","Arguments":[]},"Data":[{"a":1}]}"#;
        assert_eq!(data(ok, "E").unwrap().len(), 1);
        let bad = r#"{"Error":{"Code":"InvalidSelector","Message":"no such selector","Arguments":["Foo"]},"Data":null}"#;
        let e = data(bad, "E").unwrap_err().to_string();
        assert!(e.contains("InvalidSelector") && e.contains("Foo"), "{e}");
        assert!(starts_with_operator(">=100") && !starts_with_operator("100"));
    }

    #[test]
    fn km3net_testdata_hv_tuning_sample() {
        let Ok(py) = std::env::var("KM3NET_TESTDATA_DB") else {
            return;
        };
        let p = std::path::Path::new(&py).join("HVtuning_APIv2.0.0_HV-TUNING-GAIN-v3.json");
        let text = std::fs::read_to_string(p).unwrap();
        let d = data(&text, "ProductTestSession").unwrap();
        assert_eq!(d.len(), 1);
        assert!(d[0].get("Tests").is_some());
    }
}
