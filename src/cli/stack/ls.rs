//! `shoal stack ls`: the stacks there are, found through their services' labels.

use std::collections::BTreeMap;

use anyhow::Result;
use bollard::Docker;
use bollard::models::Service;
use bollard::query_parameters::ListServicesOptions;
use serde::Serialize;

use crate::cli::table::{ListFormat, TabWriter, json_lines};
use crate::cli::text::natural_cmp;
use crate::compose::NAMESPACE_LABEL;

/// Flags of `stack ls`.
#[derive(Debug, clap::Args)]
pub struct ListStacksArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

/// One stack as `docker stack ls` shows it; the field names are docker's `--format json` keys.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StackRow {
    name: String,
    services: String,
}

/// Runs `stack ls`.
pub async fn list(docker: &Docker, args: &ListStacksArgs) -> Result<()> {
    // Every service with the label, whatever its value.
    let filters = [("label".to_string(), vec![NAMESPACE_LABEL.to_string()])];
    let options = ListServicesOptions {
        filters: Some(filters.into_iter().collect()),
        status: None,
    };
    let services = docker.list_services(Some(options)).await?;
    let rows = stacks(&services);
    match args.format {
        ListFormat::Table => print!("{}", stack_table(&rows)),
        ListFormat::Json => print!("{}", json_lines(&rows)?),
    }
    Ok(())
}

/// The stacks the services belong to, with how many services each has, by name.
fn stacks(services: &[Service]) -> Vec<StackRow> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for service in services {
        let labels = service.spec.as_ref().and_then(|s| s.labels.as_ref());
        if let Some(stack) = labels.and_then(|l| l.get(NAMESPACE_LABEL)) {
            *counts.entry(stack).or_default() += 1;
        }
    }
    let mut rows: Vec<StackRow> = counts
        .into_iter()
        .map(|(name, count)| StackRow {
            name: name.to_string(),
            services: count.to_string(),
        })
        .collect();
    rows.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    rows
}

/// Docker's stack table.
fn stack_table(rows: &[StackRow]) -> String {
    let mut table = TabWriter::table();
    table.line(["NAME", "SERVICES"]);
    for row in rows {
        table.line([row.name.as_str(), &row.services]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(labels: &[(&str, &str)]) -> Service {
        let labels: serde_json::Map<_, _> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        serde_json::from_value(serde_json::json!({"Spec": {"Labels": labels}})).unwrap()
    }

    #[test]
    fn stacks_count_their_services_and_print_as_docker_does() {
        let services = [
            service(&[(NAMESPACE_LABEL, "wordpress")]),
            service(&[(NAMESPACE_LABEL, "shop")]),
            service(&[(NAMESPACE_LABEL, "wordpress"), ("a", "b")]),
            service(&[("a", "b")]),
        ];
        assert_eq!(
            stack_table(&stacks(&services)),
            "NAME        SERVICES\nshop        1\nwordpress   2\n"
        );
    }
}
