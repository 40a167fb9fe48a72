//! The dashboard and alarms `template.yaml` ships, held to the metrics the code emits: one list
//! of names, `telemetry::METRICS`, for both. A metric renamed in the code and not in the
//! template (or the reverse) would leave a graph empty and an alarm that never fires.

use std::collections::BTreeSet;

use integration_tests::repo_path;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use token_service::telemetry::{DEFAULT_NAMESPACE, METRICS};

const NAMESPACE: &str = "${MetricsNamespace}";

fn template() -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap()).unwrap()
}

fn untagged(value: &Yaml) -> &Yaml {
    match value {
        Yaml::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

fn declared_dimensions(metric: &str) -> BTreeSet<String> {
    let (_, dimensions) = METRICS
        .iter()
        .find(|(name, _)| *name == metric)
        .unwrap_or_else(|| panic!("{metric} is not a metric the code emits (telemetry::METRICS)"));
    dimensions.iter().map(|d| (*d).to_owned()).collect()
}

/// The service's own metrics a dashboard widget shows: `[namespace, name, …]` entries and the
/// `SEARCH('{namespace,dims…} MetricName="name"', …)` expressions, each with the dimensions it
/// names (a plain entry names none).
fn widget_metrics(widget: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut found = Vec::new();
    for entry in widget["properties"]["metrics"].as_array().expect("metrics") {
        let entry = entry.as_array().expect("a metrics entry is an array");
        if entry.first().and_then(Value::as_str) == Some(NAMESPACE) {
            found.push((entry[1].as_str().unwrap().to_owned(), BTreeSet::new()));
        }
        let Some(expression) = entry.first().and_then(|e| e["expression"].as_str()) else {
            continue;
        };
        let schema = expression.split_once("SEARCH('{").unwrap().1;
        let schema = schema.split_once("} MetricName").unwrap().0;
        let mut parts = schema.split(',');
        assert_eq!(parts.next(), Some(NAMESPACE), "{expression}");
        let dimensions = parts.map(str::to_owned).collect();
        let name = expression.split_once("MetricName=\"").unwrap().1.split_once('"').unwrap().0;
        found.push((name.to_owned(), dimensions));
    }
    found
}

#[test]
fn the_dashboard_shows_every_metric_the_code_emits_by_its_dimensions() {
    let template = template();
    let body = untagged(&template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(body.as_str().expect("a !Sub string")).unwrap();
    let mut shown = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for (metric, dimensions) in widget_metrics(widget) {
            if !dimensions.is_empty() {
                assert_eq!(dimensions, declared_dimensions(&metric), "{metric}'s dimensions");
            }
            declared_dimensions(&metric);
            shown.insert(metric);
        }
    }
    let emitted: BTreeSet<String> = METRICS.iter().map(|(name, _)| (*name).to_owned()).collect();
    assert_eq!(shown, emitted, "every metric on the dashboard, and nothing else of ours");
    let aws: Vec<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().unwrap().clone())
        .filter_map(|entry| entry[1].as_str().map(str::to_owned))
        .collect();
    for table_metric in [
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    ] {
        assert!(aws.iter().any(|m| m == table_metric), "{table_metric} on the dashboard");
    }
}

#[test]
fn every_alarm_watches_a_real_metric_and_notifies_the_optional_topic() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let alarms: Vec<(&str, &Yaml)> = resources
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, resource)| (name.as_str().unwrap(), &resource["Properties"]))
        .collect();
    let names: BTreeSet<&str> = alarms.iter().map(|(name, _)| *name).collect();
    let expected = [
        "StorageErrorsAlarm",
        "ServerErrorRateAlarm",
        "RefreshReuseSpikeAlarm",
        "LoginWaitsSpikeAlarm",
        "DynamoDbThrottlesAlarm",
        "AuthorizerErrorsAlarm",
    ];
    assert_eq!(names, expected.into_iter().collect());
    for (name, alarm) in alarms {
        if untagged(&alarm["Namespace"]) == &Yaml::from("MetricsNamespace") {
            let metric = alarm["MetricName"].as_str().unwrap();
            declared_dimensions(metric);
            assert!(alarm["Dimensions"].is_null(), "{name}: our metric has no dimensions there");
        }
        for actions in ["AlarmActions", "OKActions"] {
            let Yaml::Tagged(condition) = &alarm[actions] else { panic!("{name}: {actions}") };
            assert_eq!(condition.tag.to_string(), "!If");
            assert_eq!(condition.value[0], "HasAlarmTopic", "{name}: no topic, no actions");
        }
    }
    assert_eq!(template["Parameters"]["AlarmTopicArn"]["Default"], "");
}

#[test]
fn the_functions_write_to_the_namespace_the_dashboard_reads() {
    let template = template();
    assert_eq!(template["Parameters"]["MetricsNamespace"]["Default"], DEFAULT_NAMESPACE);
    let variable =
        &template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"];
    assert_eq!(untagged(variable), "MetricsNamespace");
}
