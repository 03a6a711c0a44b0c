use bollard::models::{ClusterInfo, PeerNode, SystemVersionComponents, SystemVersionPlatform};

use super::*;

fn active_manager() -> SystemInfo {
    let peer = |addr: &str| PeerNode {
        node_id: None,
        addr: Some(addr.into()),
    };
    SystemInfo {
        server_version: Some("0.1.0".into()),
        swarm: Some(SwarmInfo {
            node_id: Some("a1b2c3".into()),
            node_addr: Some("10.0.0.1".into()),
            local_node_state: Some(LocalNodeState::ACTIVE),
            control_available: Some(true),
            error: Some(String::new()),
            remote_managers: Some(vec![peer("10.0.0.2:2377"), peer("10.0.0.1:2377")]),
            nodes: Some(3),
            managers: Some(2),
            cluster: Some(ClusterInfo {
                id: Some("cluster9".into()),
                default_addr_pool: Some(vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()]),
                subnet_size: Some(24),
                data_path_port: Some(4789),
                ..Default::default()
            }),
        }),
        ncpu: Some(2),
        name: Some("host1".into()),
        ..Default::default()
    }
}

#[test]
fn info_prints_the_swarm_block_of_an_active_manager() {
    assert_eq!(
        server_info(&active_manager()),
        "Server:\n \
         Server Version: 0.1.0\n \
         Swarm: active\n  \
         NodeID: a1b2c3\n  \
         Is Manager: true\n  \
         ClusterID: cluster9\n  \
         Managers: 2\n  \
         Nodes: 3\n  \
         Default Address Pool: 10.0.0.0/8  192.168.0.0/16  \n  \
         SubnetSize: 24\n  \
         Data Path Port: 4789\n  \
         Node Address: 10.0.0.1\n  \
         Manager Addresses:\n   \
         10.0.0.1:2377\n   \
         10.0.0.2:2377\n \
         CPUs: 2\n \
         Name: host1\n\n"
    );
}

#[test]
fn info_of_a_worker_leaves_out_the_cluster() {
    let mut info = active_manager();
    let swarm = info.swarm.as_mut().unwrap();
    swarm.control_available = Some(false);
    swarm.remote_managers = None;
    info.ncpu = None;
    info.name = None;
    assert_eq!(
        server_info(&info),
        "Server:\n Server Version: 0.1.0\n Swarm: active\n  NodeID: a1b2c3\n  \
         Is Manager: false\n  Node Address: 10.0.0.1\n\n"
    );
}

#[test]
fn info_of_a_joined_worker_lists_the_managers_it_knows() {
    // What a worker reports: no cluster, node or manager counts, only its managers' addresses.
    let peer = |addr: &str| PeerNode {
        node_id: Some("m".into()),
        addr: Some(addr.into()),
    };
    let info = SystemInfo {
        swarm: Some(SwarmInfo {
            node_id: Some("w9".into()),
            node_addr: Some("10.0.0.7".into()),
            local_node_state: Some(LocalNodeState::ACTIVE),
            control_available: Some(false),
            remote_managers: Some(vec![peer("10.0.0.3:2377"), peer("10.0.0.1:2377")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        server_info(&info),
        "Server:\n Swarm: active\n  NodeID: w9\n  Is Manager: false\n  Node Address: 10.0.0.7\n  \
         Manager Addresses:\n   10.0.0.1:2377\n   10.0.0.3:2377\n\n"
    );
}

#[test]
fn info_outside_a_swarm_only_says_inactive() {
    let info = SystemInfo {
        swarm: Some(SwarmInfo {
            local_node_state: Some(LocalNodeState::INACTIVE),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(server_info(&info), "Server:\n Swarm: inactive\n\n");
}

#[test]
fn server_version_aligns_like_docker_version() {
    let server = SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "shoal".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "raft".into(),
            version: "0.9.25".into(),
            details: Some([("Backend".into(), "openraft".into())].into()),
        }]),
        version: Some("0.1.0".into()),
        api_version: Some("1.53".into()),
        min_api_version: Some("1.24".into()),
        os: Some("linux".into()),
        arch: Some("amd64".into()),
        ..Default::default()
    };
    assert_eq!(
        server_version(&server),
        "Server: shoal\n \
         Engine:\n  \
         Version:          0.1.0\n  \
         API version:      1.53 (minimum version 1.24)\n  \
         OS/Arch:          linux/amd64\n  \
         Experimental:     false\n \
         raft:\n  \
         Version:          0.9.25\n  \
         Backend:          openraft\n"
    );
}

#[test]
fn client_version_names_the_platform_as_go_does() {
    assert_eq!(os_arch("linux", "x86_64"), "linux/amd64");
    assert_eq!(os_arch("linux", "aarch64"), "linux/arm64");
    assert_eq!(os_arch("linux", "riscv64"), "linux/riscv64");
    assert!(client_version().starts_with(&format!(
        "Client:\n Version:           {}\n",
        env!("CARGO_PKG_VERSION")
    )));
}
