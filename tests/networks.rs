//! In-process overlay network tests: real daemons on loopback, driven through their Docker API
//! sockets; tasks run by the process executor (which needs root, as the daemon does).

mod common;

use std::collections::BTreeSet;

use bollard::models::{Ipam, IpamConfig, NetworkAttachmentConfig, NetworkCreateRequest};
use common::{Cluster, eventually, service_spec};

/// Every address the live tasks of service `name` hold on their networks, per task.
async fn task_addresses(cluster: &Cluster, name: &str) -> Vec<Vec<String>> {
    let path = format!(r#"/tasks?filters={{"service":{{"{name}":true}}}}"#)
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(':', "%3A");
    let tasks = cluster.get_json(0, &path).await;
    tasks
        .as_array()
        .expect("a task list")
        .iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
        .map(|t| {
            t["NetworksAttachments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["Addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| a.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

fn on_network(
    name: &str,
    replicas: i64,
    network: &str,
    sleep: &str,
) -> bollard::models::ServiceSpec {
    let mut spec = service_spec(name, Some(replicas), &["sleep", sleep]);
    spec.task_template.as_mut().unwrap().networks = Some(vec![NetworkAttachmentConfig {
        target: Some(network.into()),
        aliases: Some(vec![name.into()]),
        ..Default::default()
    }]);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_get_distinct_addresses_that_are_released_with_their_service() {
    let mut cluster = Cluster::managers(1).await;
    cluster.join_worker().await;
    let client = cluster.client(0);

    let ingress = client.inspect_network("ingress", None).await.unwrap();
    let config = &ingress.ipam.unwrap().config.unwrap()[0];
    assert_eq!(config.subnet.as_deref(), Some("10.0.0.0/24"));
    assert_eq!(
        ingress.options.unwrap()["com.docker.network.driver.overlay.vxlanid_list"],
        "4096"
    );

    let request = NetworkCreateRequest {
        name: "appnet".into(),
        driver: Some("overlay".into()),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some("10.20.0.0/24".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.create_network(request.clone()).await.unwrap();
    let duplicate = client
        .create_network(request)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        duplicate.contains("network with name appnet already exists"),
        "{duplicate}"
    );

    cluster
        .create_service(0, on_network("web", 4, "appnet", "100011"))
        .await;
    eventually("4 tasks run with distinct appnet addresses", || async {
        let addresses = task_addresses(&cluster, "web").await;
        let distinct: BTreeSet<&String> = addresses.iter().flatten().collect();
        addresses.len() == 4
            && addresses.iter().all(|a| a.len() == 1)
            && distinct.len() == 4
            && distinct
                .iter()
                .all(|a| a.starts_with("10.20.0.") && a.ends_with("/24"))
            && !distinct.contains(&"10.20.0.1/24".to_string())
    })
    .await;
    let running = cluster.running_per_node(0, "web").await;
    assert_eq!(running.len(), 2, "both nodes run tasks: {running:?}");
    // The manager's agent got its route table over its dispatcher session: both nodes are
    // peers on appnet, and its own tasks are its containers there.
    eventually(
        "the manager's route table has both nodes' endpoints",
        || async {
            let network = cluster.get_json(0, "/networks/appnet").await;
            let peers = network["Peers"].as_array().map_or(0, Vec::len);
            let local = network["Containers"].as_object().map_or(0, |c| c.len());
            peers == 2 && local >= 1
        },
    )
    .await;

    let in_use = client
        .remove_network("appnet")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        in_use.contains("network appnet is in use by service web"),
        "{in_use}"
    );

    cluster.remove_service(0, "web").await;
    // The addresses are free again: a new task gets the lowest one.
    cluster
        .create_service(0, on_network("again", 1, "appnet", "100012"))
        .await;
    eventually("the new task gets 10.20.0.2", || async {
        task_addresses(&cluster, "again").await == vec![vec!["10.20.0.2/24".to_string()]]
    })
    .await;
    cluster.remove_service(0, "again").await;
    client.remove_network("appnet").await.unwrap();
    assert!(client.inspect_network("appnet", None).await.is_err());
    cluster.shutdown().await;
}
