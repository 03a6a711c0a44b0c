use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    EndpointPortConfigProtocolEnum as Protocol, EndpointPortConfigPublishModeEnum as PublishMode,
    EndpointSpecModeEnum, MountType, ServiceSpecUpdateConfigFailureActionEnum as FailureAction,
    ServiceSpecUpdateConfigOrderEnum as Order, TaskSpecContainerSpec,
    TaskSpecRestartPolicyConditionEnum as Condition,
};

use super::*;

/// The seed's compose file, which the examples keep verbatim.
const WORDPRESS: &str = include_str!("../../examples/wordpress/docker-compose.yml");

fn deploy(stack: &str, text: &str) -> Result<Plan, ComposeError> {
    let loaded = load(text, &HashMap::new())?;
    plan(stack, &loaded.file, Path::new("/srv/app"))
}

fn error(text: &str) -> String {
    deploy("app", text).unwrap_err().to_string()
}

/// The only service of a plan.
fn only(plan: &Plan) -> &ServiceSpec {
    assert_eq!(plan.services.len(), 1);
    &plan.services[0]
}

fn container(spec: &ServiceSpec) -> &TaskSpecContainerSpec {
    let task = spec.task_template.as_ref().unwrap();
    task.container_spec.as_ref().unwrap()
}

#[test]
fn the_seed_file_becomes_the_wordpress_stack() {
    let loaded = load(WORDPRESS, &HashMap::new()).unwrap();
    assert_eq!(loaded.warnings, ["Ignoring unsupported options: restart"]);
    let plan = plan("wordpress", &loaded.file, Path::new("/srv")).unwrap();

    assert_eq!(plan.networks.len(), 1);
    let network = &plan.networks[0];
    assert_eq!(network.name, "wordpress_default");
    assert_eq!(network.driver.as_deref(), Some("overlay"));
    assert_eq!(network.attachable, Some(false));
    assert_eq!(
        network.labels.as_ref().unwrap()[NAMESPACE_LABEL],
        "wordpress"
    );
    assert!(plan.external_networks.is_empty());

    let names: Vec<_> = plan
        .services
        .iter()
        .map(|s| s.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["wordpress_db", "wordpress_wordpress"]);
    let (db, web) = (&plan.services[0], &plan.services[1]);

    let replicas = |spec: &ServiceSpec| spec.mode.clone().unwrap().replicated.unwrap().replicas;
    assert_eq!(replicas(web), Some(2));
    assert_eq!(
        replicas(db),
        None,
        "the daemon's default of one, as docker sends it"
    );

    let labels = web.labels.as_ref().unwrap();
    assert_eq!(labels[NAMESPACE_LABEL], "wordpress");
    assert_eq!(labels[IMAGE_LABEL], "wordpress");
    let web_container = container(web);
    assert_eq!(web_container.image.as_deref(), Some("wordpress"));
    assert_eq!(
        web_container.labels.as_ref().unwrap()[NAMESPACE_LABEL],
        "wordpress"
    );
    assert_eq!(
        web_container.env.as_deref().unwrap(),
        [
            "WORDPRESS_DB_HOST=db",
            "WORDPRESS_DB_NAME=exampledb",
            "WORDPRESS_DB_PASSWORD=examplepass",
            "WORDPRESS_DB_USER=exampleuser",
        ]
    );
    assert!(
        container(db)
            .env
            .as_ref()
            .unwrap()
            .contains(&"MYSQL_RANDOM_ROOT_PASSWORD=1".to_string())
    );

    let mounts = web_container.mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
    assert_eq!(mounts[0].source.as_deref(), Some("wordpress_wordpress"));
    assert_eq!(mounts[0].target.as_deref(), Some("/var/www/html"));
    let volume_labels = mounts[0].volume_options.as_ref().unwrap().labels.as_ref();
    assert_eq!(volume_labels.unwrap()[NAMESPACE_LABEL], "wordpress");

    let ports = web.endpoint_spec.as_ref().unwrap().ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].published_port, Some(8080));
    assert_eq!(ports[0].target_port, Some(80));
    assert_eq!(ports[0].protocol, Some(Protocol::TCP));
    assert_eq!(ports[0].publish_mode, Some(PublishMode::INGRESS));

    for (spec, alias) in [(web, "wordpress"), (db, "db")] {
        let task = spec.task_template.as_ref().unwrap();
        let networks = task.networks.as_ref().unwrap();
        assert_eq!(networks.len(), 1);
        assert_eq!(networks[0].target.as_deref(), Some("wordpress_default"));
        assert_eq!(networks[0].aliases.as_deref().unwrap(), [alias]);
        // `restart: always` is ignored, yet read as the restart policy, as docker does.
        let policy = task.restart_policy.as_ref().unwrap();
        assert_eq!(policy.condition, Some(Condition::ANY));
    }
}

#[test]
fn invalid_yaml_is_reported_with_its_line_and_column() {
    let text = "version: '3'\nservices:\n  web:\n    image: a\n   ports: [80]\n";
    let ComposeError::Yaml(yaml) = load(text, &HashMap::new()).unwrap_err() else {
        panic!("not a YAML error");
    };
    let location = yaml.location().unwrap();
    assert_eq!((location.line(), location.column()), (5, 4));
    let message = ComposeError::Yaml(yaml).to_string();
    assert!(message.starts_with("invalid compose file: "), "{message}");
    assert!(message.contains("line 5 column 4"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_reported_where_it_is() {
    let text = "services:\n  web:\n    image: a\n    deploy:\n      replicas: two\n";
    let message = error(text);
    assert!(
        message.contains("services.web.deploy.replicas"),
        "{message}"
    );
    assert!(message.contains("line 5 column 17"), "{message}");
}

#[test]
fn options_docker_forbids_are_refused_with_its_advice() {
    let text = "services:\n  web:\n    image: a\n    mem_limit: 1g\n    extends: base\n";
    assert_eq!(
        error(text),
        "Compose file contains unsupported options:\n\n\
         extends: Support for `extends` is not implemented yet.\n\n\
         mem_limit: Set resource limits using deploy.resources\n"
    );
}

#[test]
fn keys_outside_dockers_schema_are_refused_where_they_are() {
    let service = "services:\n  web:\n    image: a\n    colour: red\n";
    assert_eq!(
        error(service),
        "services.web Additional property colour is not allowed"
    );
    let top = "services: {}\nplugins: {}\n";
    assert_eq!(
        error(top),
        "(root) Additional property plugins is not allowed"
    );
    let deploy = "services:\n  web:\n    image: a\n    deploy:\n      replica: 2\n";
    assert_eq!(
        error(deploy),
        "services.web.deploy Additional property replica is not allowed"
    );
    let port = "services:\n  web:\n    image: a\n    ports:\n      - {target: 80, host: x}\n";
    assert_eq!(
        error(port),
        "services.web.ports.0 Additional property host is not allowed"
    );
    let extension = "x-common: &c {a: 1}\nservices:\n  web:\n    image: a\n    x-note: hi\n";
    assert!(deploy_ok(extension));
}

fn deploy_ok(text: &str) -> bool {
    deploy("app", text).is_ok()
}

#[test]
fn ignored_and_deprecated_options_are_warnings_in_dockers_words() {
    let text = "services:
  web:
    image: a
    restart: always
    privileged: true
    build: .
    depends_on: [db]
    container_name: web1
    expose: [80]
    healthcheck: {test: [CMD, 'true']}
    stop_signal: SIGINT
  db:
    image: b
    links: [web]
";
    let loaded = load(text, &HashMap::new()).unwrap();
    assert_eq!(
        loaded.warnings,
        [
            "Ignoring unsupported options: build, links, privileged, restart",
            "Ignoring deprecated options:\n\n\
             container_name: Setting the container name is not supported.\n\n\
             expose: Exposing ports is unnecessary - services on the same network can \
             access each other's containers on any port.",
            "Ignoring options shoal does not support yet: stop_signal",
        ]
    );
}

#[test]
fn deploy_keys_become_the_swarm_spec() {
    let text = "services:
  api:
    image: api:1
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      labels: [tier=back]
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: '0.5', memory: 256M, pids: 100}
        reservations: {cpus: 0.25, memory: 64M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 1m30s
        max_failure_ratio: 0.3
        order: start-first
      rollback_config: {order: stop-first}
";
    let plan = deploy("shop", text).unwrap();
    let spec = only(&plan);
    assert_eq!(spec.labels.as_ref().unwrap()["tier"], "back");
    let endpoint = spec.endpoint_spec.as_ref().unwrap();
    assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
    let task = spec.task_template.as_ref().unwrap();
    let placement = task.placement.as_ref().unwrap();
    assert_eq!(
        placement.constraints.as_deref().unwrap(),
        ["node.role == worker"]
    );
    let spread = placement.preferences.as_ref().unwrap()[0].spread.clone();
    assert_eq!(
        spread.unwrap().spread_descriptor.as_deref(),
        Some("node.labels.zone")
    );
    assert_eq!(placement.max_replicas, Some(2));
    let resources = task.resources.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(limits.nano_cpus, Some(500_000_000));
    assert_eq!(limits.memory_bytes, Some(256 << 20));
    assert_eq!(limits.pids, Some(100));
    let reservations = resources.reservations.as_ref().unwrap();
    assert_eq!(reservations.nano_cpus, Some(250_000_000));
    assert_eq!(reservations.memory_bytes, Some(64 << 20));
    let restart = task.restart_policy.as_ref().unwrap();
    assert_eq!(restart.condition, Some(Condition::ON_FAILURE));
    assert_eq!(restart.delay, Some(5_000_000_000));
    assert_eq!(restart.max_attempts, Some(3));
    assert_eq!(restart.window, Some(120_000_000_000));
    let update = spec.update_config.as_ref().unwrap();
    assert_eq!(update.parallelism, Some(2));
    assert_eq!(update.delay, Some(10_000_000_000));
    assert_eq!(update.failure_action, Some(FailureAction::ROLLBACK));
    assert_eq!(update.monitor, Some(90_000_000_000));
    assert_eq!(update.max_failure_ratio, Some(0.3));
    assert_eq!(update.order, Some(Order::START_FIRST));
    let rollback = spec.rollback_config.as_ref().unwrap();
    assert_eq!(
        rollback.parallelism,
        Some(1),
        "docker's default parallelism"
    );
    assert_eq!(
        rollback.order.map(|o| o.to_string()).as_deref(),
        Some("stop-first")
    );
}

#[test]
fn global_services_take_no_replica_count() {
    let global = "services:\n  agent:\n    image: a\n    deploy: {mode: global}\n";
    let plan = deploy("app", global).unwrap();
    assert!(only(&plan).mode.as_ref().unwrap().global.is_some());
    let counted = "services:\n  agent:\n    image: a\n    deploy: {mode: global, replicas: 2}\n";
    assert_eq!(
        error(counted),
        "service agent: replicas can only be used with replicated or replicated-job mode"
    );
    let unknown = "services:\n  agent:\n    image: a\n    deploy: {mode: everywhere}\n";
    assert_eq!(error(unknown), "service agent: unknown mode: everywhere");
}

#[test]
fn command_is_args_and_entrypoint_is_command() {
    let text = r#"services:
  web:
    image: busybox
    entrypoint: /bin/sh -c
    command: ["echo hi", "there"]
    environment: [A=1, B, C=x=y]
    labels: {com.example.role: web}
    hostname: web-host
    working_dir: /srv
    user: nobody
    stop_grace_period: 1m
"#;
    let plan = deploy("app", text).unwrap();
    let container = container(only(&plan));
    assert_eq!(container.command.as_deref().unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(container.args.as_deref().unwrap(), ["echo hi", "there"]);
    assert_eq!(container.env.as_deref().unwrap(), ["A=1", "B", "C=x=y"]);
    let labels = container.labels.as_ref().unwrap();
    assert_eq!(labels["com.example.role"], "web");
    assert_eq!(labels[NAMESPACE_LABEL], "app");
    assert_eq!(container.hostname.as_deref(), Some("web-host"));
    assert_eq!(container.dir.as_deref(), Some("/srv"));
    assert_eq!(container.user.as_deref(), Some("nobody"));
    assert_eq!(container.stop_grace_period, Some(60_000_000_000));
}

#[test]
fn ports_in_every_syntax() {
    let text = r#"services:
  web:
    image: a
    ports:
      - "9090:90/udp"
      - 80
      - "8080:8080"
      - {target: 443, published: 8443, mode: host}
"#;
    let plan = deploy("app", text).unwrap();
    let endpoint = only(&plan).endpoint_spec.clone().unwrap();
    let ports: Vec<_> = endpoint
        .ports
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.published_port,
                p.target_port.unwrap(),
                p.protocol.unwrap().to_string(),
                p.publish_mode.unwrap().to_string(),
            )
        })
        .collect();
    let port = |published, target, protocol: &str, mode: &str| {
        (published, target, protocol.to_string(), mode.to_string())
    };
    assert_eq!(
        ports,
        [
            port(None, 80, "tcp", "ingress"),
            port(Some(8080), 8080, "tcp", "ingress"),
            port(Some(8443), 443, "tcp", "host"),
            port(Some(9090), 90, "udp", "ingress"),
        ]
    );
}

#[test]
fn declared_and_external_networks_with_aliases() {
    let text = "services:
  web:
    image: a
    networks:
      front:
        aliases: [www]
      shared:
  worker:
    image: b
    networks: [back]
networks:
  front: {attachable: true, labels: {zone: dmz}}
  back:
    driver_opts: {encrypted: ''}
  shared:
    external: true
  unused: {}
";
    let plan = deploy("app", text).unwrap();
    let names: Vec<_> = plan.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["app_back", "app_front"], "only networks in use");
    let front = &plan.networks[1];
    assert_eq!(front.attachable, Some(true));
    let labels = front.labels.as_ref().unwrap();
    assert_eq!(
        (labels["zone"].as_str(), labels[NAMESPACE_LABEL].as_str()),
        ("dmz", "app")
    );
    assert_eq!(plan.networks[0].options.as_ref().unwrap()["encrypted"], "");
    assert_eq!(plan.external_networks, ["shared"]);

    let web = &plan.services[0];
    let attached = web.task_template.clone().unwrap().networks.unwrap();
    let attached: Vec<_> = attached
        .into_iter()
        .map(|n| (n.target.unwrap(), n.aliases.unwrap()))
        .collect();
    assert_eq!(
        attached,
        [
            (
                "app_front".to_string(),
                vec!["www".to_string(), "web".into()]
            ),
            ("shared".to_string(), vec!["web".to_string()]),
        ]
    );
    let undefined = "services:\n  web:\n    image: a\n    networks: [nowhere]\n";
    assert_eq!(
        error(undefined),
        "service web: undefined network \"nowhere\""
    );
}

#[test]
fn volumes_named_bound_and_read_only() {
    let text = "services:
  db:
    image: a
    volumes:
      - data:/var/lib/db:ro
      - ./conf:/etc/db
      - /tmp/cache
      - {type: bind, source: /srv/logs, target: /logs, read_only: true}
      - shared:/shared
volumes:
  data:
    labels: [backup=nightly]
  shared:
    external: true
";
    let plan = deploy("app", text).unwrap();
    let mounts = container(only(&plan)).mounts.clone().unwrap();
    let summary: Vec<_> = mounts
        .iter()
        .map(|m| {
            (
                m.typ.unwrap().to_string(),
                m.source.clone().unwrap_or_default(),
                m.target.clone().unwrap(),
                m.read_only.unwrap_or(false),
            )
        })
        .collect();
    let mount = |typ: &str, source: &str, target: &str, read_only| {
        (
            typ.to_string(),
            source.to_string(),
            target.to_string(),
            read_only,
        )
    };
    assert_eq!(
        summary,
        [
            mount("volume", "app_data", "/var/lib/db", true),
            mount("bind", "/srv/app/conf", "/etc/db", false),
            mount("volume", "", "/tmp/cache", false),
            mount("bind", "/srv/logs", "/logs", true),
            mount("volume", "shared", "/shared", false),
        ]
    );
    let labels = mounts[0].volume_options.clone().unwrap().labels.unwrap();
    assert_eq!(labels["backup"], "nightly");
    let undefined = "services:\n  db:\n    image: a\n    volumes: ['data:/x']\n";
    assert_eq!(error(undefined), "service db: undefined volume \"data\"");
}

#[test]
fn only_version_3_files_are_taken() {
    let old = "version: '2.4'\nservices: {}\n";
    assert_eq!(error(old), "unsupported Compose file version: 2.4");
    assert_eq!(error("- a\n- b\n"), "Top-level object must be a mapping");
}

#[test]
fn the_shop_example_has_the_seeds_shape() {
    let text = include_str!("../../examples/shop/docker-compose.yml");
    let loaded = load(text, &HashMap::new()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let plan = plan("shop", &loaded.file, Path::new("/")).unwrap();
    assert_eq!(plan.networks[0].name, "shop_default");
    let (db, web) = (&plan.services[0], &plan.services[1]);
    assert_eq!(db.name.as_deref(), Some("shop_db"));
    let web_mode = web.mode.clone().unwrap().replicated.unwrap();
    assert_eq!(web_mode.replicas, Some(2));
    let port = &web.endpoint_spec.clone().unwrap().ports.unwrap()[0];
    assert_eq!(
        (port.published_port, port.target_port),
        (Some(8080), Some(8080))
    );
    let db_task = db.task_template.clone().unwrap();
    assert_eq!(
        db_task.networks.unwrap()[0].aliases.as_deref().unwrap(),
        ["db"]
    );
    // The process executor runs the image as a program, with the command as its arguments.
    let web_container = container(web);
    assert_eq!(web_container.image.as_deref(), Some("busybox"));
    let args = web_container.args.as_deref().unwrap();
    assert_eq!(args[..2], ["nc", "-ll"]);
    assert!(args.last().unwrap().contains("busybox nc -w 2 db 3306"));
}

#[test]
fn variables_are_substituted_before_conversion() {
    let text = "services:\n  web:\n    image: app:${TAG:-latest}\n    command: echo $$HOME\n    deploy:\n      replicas: ${N}\n";
    let env = HashMap::from([("N".to_string(), "4".to_string())]);
    let loaded = load(text, &env).unwrap();
    let plan = plan("app", &loaded.file, Path::new("/")).unwrap();
    let spec = only(&plan);
    let replicas = spec.mode.clone().unwrap().replicated.unwrap().replicas;
    assert_eq!(replicas, Some(4));
    assert_eq!(container(spec).image.as_deref(), Some("app:latest"));
    assert_eq!(container(spec).args.as_deref().unwrap(), ["echo", "$HOME"]);
}

#[test]
fn what_the_daemon_would_refuse_half_way_is_refused_up_front() {
    let no_image = "services:\n  web:\n    command: [x]\n";
    assert_eq!(
        error(no_image),
        "service web: no image given: every swarm service needs one"
    );
    let twice = "services:\n  a:\n    image: x\n    ports: ['80:80']\n  b:\n    image: y\n    ports: ['80:8080', '80:80/udp']\n";
    assert_eq!(error(twice), "port 80/tcp is published by both a and b");
}

#[test]
fn health_checks_as_docker_sends_them() {
    let text = "services:
  web:
    image: a
    healthcheck:
      test: curl -f localhost
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 1m
  off:
    image: b
    healthcheck: {disable: true}
";
    let plan = deploy("app", text).unwrap();
    let check = |index: usize| {
        container(&plan.services[index])
            .health_check
            .clone()
            .unwrap()
    };
    let off = check(0);
    assert_eq!(off.test.unwrap(), ["NONE"]);
    let web = check(1);
    assert_eq!(web.test.unwrap(), ["CMD-SHELL", "curl -f localhost"]);
    assert_eq!(web.interval, Some(10_000_000_000));
    assert_eq!(web.timeout, Some(2_000_000_000));
    assert_eq!(web.retries, Some(3));
    assert_eq!(web.start_period, Some(60_000_000_000));
}

#[test]
fn merge_keys_share_settings_between_services() {
    let text = "x-defaults: &defaults
  image: app:1
  restart: always
  deploy: {replicas: 3}
services:
  a:
    <<: *defaults
  b:
    <<: *defaults
    image: app:2
";
    let loaded = load(text, &HashMap::new()).unwrap();
    assert_eq!(loaded.warnings, ["Ignoring unsupported options: restart"]);
    let plan = plan("app", &loaded.file, Path::new("/")).unwrap();
    let images: Vec<_> = plan
        .services
        .iter()
        .map(|s| container(s).image.clone().unwrap())
        .collect();
    assert_eq!(images, ["app:1", "app:2"]);
    let replicas = plan.services[1]
        .mode
        .clone()
        .unwrap()
        .replicated
        .unwrap()
        .replicas;
    assert_eq!(replicas, Some(3));
}
