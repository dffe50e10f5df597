//! The OpenAPI document describes exactly the API the route table serves.

use crate::common;

use crate::common::{Cred, TestApp};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tandem_server::http::context::Access;
use tandem_server::http::routes;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s);
                    }
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_api_route_and_nothing_else() {
    common::run(|t: Arc<TestApp>| async move {
        let r = t
            .send(t.req(Method::GET, "/api/v1/openapi.json", &Cred::None))
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.content_type().starts_with("application/json"),
            "{}",
            r.content_type()
        );
        let doc = r.json();
        let version = doc["openapi"].as_str().expect("openapi field");
        assert!(version.starts_with("3.1"), "OpenAPI version {version}");

        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    documented.insert((m.to_uppercase(), path.clone()));
                    assert!(
                        op["responses"].as_object().is_some_and(|x| !x.is_empty()),
                        "{m} {path} documents no responses"
                    );
                    // Every path parameter is declared.
                    let declared: BTreeSet<String> = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(item["parameters"].as_array().into_iter().flatten())
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect();
                    let in_path: BTreeSet<String> = path
                        .split('/')
                        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                        .map(str::to_string)
                        .collect();
                    assert_eq!(
                        declared, in_path,
                        "{m} {path}: path parameters declared vs in the template"
                    );
                }
            }
        }
        let served: BTreeSet<(String, String)> = routes()
            .iter()
            .filter(|r| r.access == Access::Api)
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "API routes missing from the OpenAPI document: {undocumented:?}"
        );
        assert!(
            phantom.is_empty(),
            "operations in the OpenAPI document that no route serves: {phantom:?}"
        );

        // Every reference resolves.
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty(), "the document references no schemas at all");
        let unresolved: BTreeSet<&str> = all
            .iter()
            .copied()
            .filter(|r| r.strip_prefix('#').is_none_or(|p| doc.pointer(p).is_none()))
            .collect();
        assert!(
            unresolved.is_empty(),
            "references that do not resolve in the document: {unresolved:?}"
        );
        // Every documented response body's schema (directly or as items) resolves too.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in METHODS {
                for (status, resp) in item
                    .get(m)
                    .and_then(|op| op["responses"].as_object())
                    .into_iter()
                    .flatten()
                {
                    for (_, media) in resp["content"].as_object().into_iter().flatten() {
                        let mut r = Vec::new();
                        refs(&media["schema"], &mut r);
                        for x in r {
                            assert!(
                                x.starts_with("#/components/schemas/"),
                                "{m} {path} {status}: {x}"
                            );
                            assert!(
                                doc.pointer(&x[1..]).is_some(),
                                "{m} {path} {status}: {x} is not in components"
                            );
                        }
                    }
                }
            }
        }
        // Problem details are described.
        assert!(
            doc.pointer("/components/schemas/Problem").is_some(),
            "no Problem schema"
        );
        assert!(
            doc.pointer("/components/securitySchemes/bearer").is_some(),
            "no bearer security scheme"
        );
    })
    .await;
}
