//! Parsing of the query strings of Ray's dashboard API: pairs in order (filters repeat keys),
//! booleans as Ray reads them, `limit`, and the `filter_keys`/`filter_predicates`/
//! `filter_values` triples.

use crate::response::ApiError;

/// Ray's default and largest `limit`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 10_000;

/// Query pairs in order (filters repeat keys).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn truthy(value: Option<&str>, default: bool) -> bool {
    match value {
        Some(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        None => default,
    }
}

/// One `filter_keys[i] filter_predicates[i] filter_values[i]` triple.
pub(crate) struct Filter {
    pub column: String,
    pub equal: bool,
    pub value: String,
}

pub(crate) fn parse_filters(
    pairs: &[(String, String)],
    columns: &[&str],
) -> Result<Vec<Filter>, ApiError> {
    let keys: Vec<&str> = values(pairs, "filter_keys");
    let predicates: Vec<&str> = values(pairs, "filter_predicates");
    let vals: Vec<&str> = values(pairs, "filter_values");
    if keys.len() != predicates.len() || keys.len() != vals.len() {
        return Err(ApiError::bad_request(
            "filter_keys, filter_predicates and filter_values must have the same length",
        ));
    }
    let mut filters = Vec::with_capacity(keys.len());
    for ((key, predicate), value) in keys.into_iter().zip(predicates).zip(vals) {
        if !columns.contains(&key) {
            return Err(ApiError::bad_request(format!(
                "The given filter column {key} is not supported. Enter filters with \u{2013}-filter \
                 key=value or \u{2013}-filter key!=value Supported filter columns: {{{}}}",
                columns
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let equal = match predicate {
            "=" => true,
            "!=" => false,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported filter predicate {other}. Supported predicates are = and !="
                )));
            }
        };
        filters.push(Filter {
            column: key.to_string(),
            equal,
            value: value.to_string(),
        });
    }
    Ok(filters)
}

fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(crate) fn parse_limit(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    let Some(text) = query_get(pairs, "limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    let limit: usize = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?;
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Given limit {limit} exceeds the supported limit {MAX_LIMIT}. Use a lower limit."
        )));
    }
    Ok(limit)
}
