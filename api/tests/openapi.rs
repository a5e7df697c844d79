//! `docs/openapi.yaml` describes exactly the routes the API serves.

use std::collections::BTreeSet;

#[test]
fn openapi_matches_the_route_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml exists");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
    let paths = doc["paths"].as_mapping().expect("openapi.yaml has paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        for (method, _) in item.as_mapping().expect("path items are mappings") {
            let method = method.as_str().unwrap_or_default();
            if ["get", "put", "post", "delete", "patch"].contains(&method) {
                documented.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = api::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served: {unserved:?}"
    );
}
