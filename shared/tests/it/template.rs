//! template.yaml, the route table, the OpenAPI document and the provisioned tables agree.

use std::collections::BTreeSet;

use calsync::api::openapi;
use calsync::api::routes::ROUTES;
use calsync_devstack::template::Template;

use crate::support::*;

#[test]
fn every_route_is_deployed_by_its_function_and_nothing_else_is() {
    let template = Template::load(TEMPLATE.as_ref()).unwrap();
    let deployed: BTreeSet<(String, String, String)> = template
        .http_routes()
        .unwrap()
        .into_iter()
        .map(|r| (r.method, r.path, r.binary))
        .collect();
    let mut declared: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_owned(),
                r.group.binary().to_owned(),
            )
        })
        .collect();
    declared.insert((
        "ANY".into(),
        "$default".into(),
        calsync::api::routes::FALLBACK.binary().into(),
    ));
    assert_eq!(deployed, declared);
    for binary in declared.iter().map(|(_, _, b)| b) {
        let main = format!(
            "{}/../functions/{binary}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(std::path::Path::new(&main).exists(), "{main}");
    }
}

/// Every route of the table reaches a handler, both through its own function's service and
/// through `ALL`: a group's dispatch that lacks a route answers 500 `internal`, and a service
/// that answers another group's route answers 404.
#[tokio::test]
async fn every_route_reaches_its_handler_in_its_own_function_only() {
    use calsync::api::service::{ACCOUNTS, ALL, CALENDARS, CONNECTIONS, EVENTS, OAUTH_CALLBACK};
    use calsync::api::{ApiRequest, RouteGroup};
    let app = app().await;
    let services = [
        (RouteGroup::Accounts, &ACCOUNTS),
        (RouteGroup::Calendars, &CALENDARS),
        (RouteGroup::Events, &EVENTS),
        (RouteGroup::Connections, &CONNECTIONS),
        (RouteGroup::OAuthCallback, &OAUTH_CALLBACK),
    ];
    for route in ROUTES {
        let path = route
            .path
            .replace("{provider}", "google")
            .replace("{id}", "unknown-id")
            .replace("{token}", "unknown-token");
        let request = ApiRequest::new(route.method.clone(), &path);
        for (group, service) in services {
            let status = app.handle(service, request.clone()).await.status;
            if group == route.group {
                assert!(
                    status.is_client_error() || status.is_success() || status.is_redirection(),
                    "{} {} in its own function: {status}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(
                    status, 404,
                    "{} {} served by {group:?}",
                    route.method, route.path
                );
            }
        }
        let status = app.handle(&ALL, request).await.status;
        assert!(
            !status.is_server_error(),
            "{} {} through ALL: {status}",
            route.method,
            route.path
        );
    }
}

#[test]
fn the_openapi_document_covers_every_route_and_resolves_its_refs() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in ROUTES {
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(
            paths.get(route.path).and_then(|p| p.get(&method)).is_some(),
            "{method} {} missing",
            route.path
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, ROUTES.len());
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    assert!(schemas.contains_key("CreateEventRequest"));
}

#[tokio::test]
async fn provisioning_creates_the_templates_keys_indexes_and_ttl() {
    let sdk = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let env = &stack().environment;
    let events = ddb
        .describe_table()
        .table_name(&env["EVENTS_TABLE"])
        .send()
        .await
        .unwrap();
    let table = events.table.unwrap();
    let mut indexes: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| i.index_name().unwrap().to_owned())
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "byOriginalStart",
            "byProviderId",
            "byPurge",
            "bySyncStatus",
            "byUserTime"
        ]
    );
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&env["EVENTS_TABLE"])
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description.unwrap().attribute_name(),
        Some("purgeAt")
    );
    for table in [
        "USERS_TABLE",
        "CONNECTIONS_TABLE",
        "AUDIT_TABLE",
        "CHANGES_TABLE",
    ] {
        ddb.describe_table()
            .table_name(&env[table])
            .send()
            .await
            .unwrap();
    }
}
