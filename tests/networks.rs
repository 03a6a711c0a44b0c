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
    // The addresses are free again: the new service's VIP gets the lowest one (web's VIP),
    // its task the next.
    cluster
        .create_service(0, on_network("again", 1, "appnet", "100012"))
        .await;
    let again = cluster.get_json(0, "/services/again").await;
    assert_eq!(again["Endpoint"]["VirtualIPs"][0]["Addr"], "10.20.0.2/24");
    eventually("the new task gets 10.20.0.3", || async {
        task_addresses(&cluster, "again").await == vec![vec!["10.20.0.3/24".to_string()]]
    })
    .await;
    cluster.remove_service(0, "again").await;
    client.remove_network("appnet").await.unwrap();
    assert!(client.inspect_network("appnet", None).await.is_err());
    cluster.shutdown().await;
}

/// `name` publishing `published` (0: a dynamic port) to port 80 through the routing mesh.
fn publishing(name: &str, replicas: i64, published: i64) -> bollard::models::ServiceSpec {
    let mut spec = service_spec(name, Some(replicas), &["sleep", "100013"]);
    spec.endpoint_spec = Some(bollard::models::EndpointSpec {
        mode: None,
        ports: Some(vec![bollard::models::EndpointPortConfig {
            target_port: Some(80),
            published_port: (published != 0).then_some(published),
            ..Default::default()
        }]),
    });
    spec
}

/// The peers node 0's route table has on the ingress network.
async fn ingress_peers(cluster: &Cluster) -> usize {
    let network = cluster.get_json(0, "/networks/ingress").await;
    network["Peers"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_port_belongs_to_one_service_and_puts_every_node_on_the_mesh() {
    let mut cluster = Cluster::managers(1).await;
    cluster.join_worker().await;
    let client = cluster.client(0);
    let ingress_id = client
        .inspect_network("ingress", None)
        .await
        .unwrap()
        .id
        .unwrap();

    // No task runs: the mesh alone puts both nodes' ingress addresses in the table.
    cluster.create_service(0, publishing("web", 0, 8080)).await;
    let web = cluster.get_json(0, "/services/web").await;
    let endpoint = &web["Endpoint"];
    assert_eq!(endpoint["Spec"]["Mode"], "vip");
    assert_eq!(
        endpoint["Ports"],
        serde_json::json!([
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
        ])
    );
    assert_eq!(endpoint["VirtualIPs"][0]["NetworkID"], ingress_id.as_str());
    let vip = endpoint["VirtualIPs"][0]["Addr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(vip.starts_with("10.0.0.") && vip.ends_with("/24"), "{vip}");
    eventually("both nodes are peers on the ingress network", || async {
        ingress_peers(&cluster).await == 2
    })
    .await;

    let taken = client
        .create_service(publishing("api", 0, 8080), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        taken.contains("port '8080' is already in use by service 'web'"),
        "{taken}"
    );
    cluster.create_service(0, publishing("dynamic", 0, 0)).await;
    let dynamic = cluster.get_json(0, "/services/dynamic").await;
    assert_eq!(dynamic["Endpoint"]["Ports"][0]["PublishedPort"], 30000);
    assert_ne!(dynamic["Endpoint"]["VirtualIPs"][0]["Addr"], vip.as_str());

    // Removed, a service frees its port; with nothing published the mesh goes.
    client.delete_service("web").await.unwrap();
    cluster.create_service(0, publishing("api", 0, 8080)).await;
    client.delete_service("api").await.unwrap();
    client.delete_service("dynamic").await.unwrap();
    eventually("no node is on the ingress network any more", || async {
        ingress_peers(&cluster).await == 0
    })
    .await;
    cluster.shutdown().await;
}
