use super::*;

/// `published:target/protocol/mode` for each configuration, to compare at a glance.
fn ports(value: &str) -> Vec<String> {
    let show = |port: &EndpointPortConfig| {
        format!(
            "{}:{}/{}/{}",
            port.published_port.unwrap_or(0),
            port.target_port.unwrap_or(0),
            port.protocol.map(|p| p.to_string()).unwrap_or_default(),
            port.publish_mode.map(|m| m.to_string()).unwrap_or_default(),
        )
    };
    publish(value).unwrap().0.iter().map(show).collect()
}

#[test]
fn short_publish_syntax_maps_published_to_target_ports() {
    assert_eq!(ports("8080:80"), ["8080:80/tcp/ingress"]);
    assert_eq!(ports("53:53/UDP"), ["53:53/udp/ingress"]);
    assert_eq!(ports("80/"), ["0:80/tcp/ingress"]);
    // No published port: the daemon picks one.
    assert_eq!(ports("80"), ["0:80/tcp/ingress"]);
    assert_eq!(
        ports("8080-8081:80-81"),
        ["8080:80/tcp/ingress", "8081:81/tcp/ingress"]
    );
    // A published range over one target port: every published port leads to it.
    assert_eq!(
        ports("8080-8081:80"),
        ["8080:80/tcp/ingress", "8081:80/tcp/ingress"]
    );
    assert_eq!(ports("80-81"), ["0:80/tcp/ingress", "0:81/tcp/ingress"]);
}

#[test]
fn long_publish_syntax_reads_every_field() {
    assert_eq!(
        ports("published=9000,target=90,protocol=udp,mode=host"),
        ["9000:90/udp/host"]
    );
    assert_eq!(ports("target=80"), ["0:80/tcp/ingress"]);
    assert_eq!(ports("Target=80,PUBLISHED=8080"), ["8080:80/tcp/ingress"]);
    let config = &publish("published=8080,target=80").unwrap().0[0];
    assert_eq!(config.published_port, Some(8080));
    assert_eq!(config.name, None);
}

#[test]
fn bad_published_ports_fail_with_docker_messages() {
    let error = |value| publish(value).unwrap_err();
    assert_eq!(error("published=8080"), "missing mandatory field 'target'");
    assert_eq!(error("target=80,proto=tcp"), "invalid field key: proto");
    assert_eq!(
        error("target=80,protocol=icmp"),
        "invalid protocol value 'icmp'"
    );
    assert_eq!(
        error("target=80,mode=bridge"),
        "invalid publish mode value (bridge): must be either 'ingress' or 'host'"
    );
    assert_eq!(
        error("target=80,published=99999"),
        "strconv.ParseUint: parsing \"99999\": value out of range"
    );
    assert_eq!(error("target=80,x"), "invalid field: x");
    assert_eq!(error("127.0.0.1:8080:80"), "hostip is not supported");
    assert_eq!(error("8080:"), "no port specified: 8080:<empty>");
    assert_eq!(error("8080:http"), "invalid containerPort: http");
    assert_eq!(error("x:80"), "invalid hostPort: x");
    assert_eq!(error("80/icmp"), "invalid proto: icmp");
    assert_eq!(
        error("8080-8082:80-81"),
        "invalid ranges specified for container and host Ports: 80-81 and 8080-8082"
    );
}

#[test]
fn unsigned_numbers_fail_as_go_fails() {
    assert_eq!(unsigned::<i64>("42"), Ok(42));
    assert_eq!(
        unsigned::<i64>("x"),
        Err("strconv.ParseUint: parsing \"x\": invalid syntax".into())
    );
    assert_eq!(
        unsigned::<i64>("+1"),
        Err("strconv.ParseUint: parsing \"+1\": invalid syntax".into())
    );
    assert_eq!(
        unsigned::<u16>("65536"),
        Err("strconv.ParseUint: parsing \"65536\": value out of range".into())
    );
    assert!(unsigned::<i64>("99999999999999999999").is_err());
}

#[test]
fn shell_words_split_like_a_shell() {
    let words = |value| shell_words(value).unwrap().0;
    assert_eq!(words("sh -c"), ["sh", "-c"]);
    assert_eq!(words("  sh   -c  'echo hi' "), ["sh", "-c", "echo hi"]);
    assert_eq!(words(r#"a "b \"c\" d" e\ f"#), ["a", "b \"c\" d", "e f"]);
    assert_eq!(words(r"it\'s"), ["it's"]);
    assert_eq!(words("x#y # a comment\nz"), ["x#y", "z"]);
    assert_eq!(words("''"), [""]);
    assert!(words("").is_empty());
    assert_eq!(
        shell_words("'open").unwrap_err(),
        "EOF found when expecting closing quote"
    );
    assert_eq!(
        shell_words("trailing\\").unwrap_err(),
        "EOF found after escape character"
    );
}

#[test]
fn cpus_are_exact_billionths() {
    assert_eq!(nano_cpus("1"), Ok(1_000_000_000));
    assert_eq!(nano_cpus("0.5"), Ok(500_000_000));
    assert_eq!(nano_cpus(".25"), Ok(250_000_000));
    assert_eq!(nano_cpus("1.000000001"), Ok(1_000_000_001));
    assert_eq!(nano_cpus("2.50000000000"), Ok(2_500_000_000));
    assert_eq!(
        nano_cpus("0.0000000001"),
        Err("value is too precise".into())
    );
    assert_eq!(
        nano_cpus("one"),
        Err("failed to parse one as a rational number".into())
    );
    assert!(nano_cpus(".").is_err());
    assert!(nano_cpus("99999999999").is_err());
}

#[test]
fn memory_sizes_use_binary_units() {
    assert_eq!(ram_bytes("1024"), Ok(1024));
    assert_eq!(ram_bytes("64m"), Ok(64 << 20));
    assert_eq!(ram_bytes("32M"), Ok(32 << 20));
    assert_eq!(ram_bytes("1.5GiB"), Ok(3 << 29));
    assert_eq!(ram_bytes("2 kb"), Ok(2048));
    assert_eq!(ram_bytes("10b"), Ok(10));
    assert_eq!(ram_bytes("1p"), Ok(1 << 50));
    assert_eq!(ram_bytes("1x"), Err("invalid suffix: 'x'".into()));
    assert_eq!(ram_bytes("1kx"), Err("invalid suffix: 'kx'".into()));
    assert_eq!(ram_bytes("1bb"), Err("invalid suffix: 'bb'".into()));
    assert_eq!(ram_bytes("lots"), Err("invalid size: 'lots'".into()));
}

#[test]
fn env_values_take_unassigned_variables_from_the_environment() {
    assert_eq!(env("A=1"), Ok("A=1".into()));
    assert_eq!(env("A="), Ok("A=".into()));
    assert_eq!(env("A=b=c"), Ok("A=b=c".into()));
    // PATH is set wherever tests run; an unset name stays as given.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(env("PATH"), Ok(format!("PATH={path}")));
    assert_eq!(
        env("SHOAL_SURELY_UNSET_VARIABLE"),
        Ok("SHOAL_SURELY_UNSET_VARIABLE".into())
    );
    assert_eq!(env("=x"), Err("invalid environment variable: =x".into()));
}

#[test]
fn labels_need_a_plain_key() {
    assert_eq!(label("tier=web"), Ok("tier=web".into()));
    assert_eq!(label("solo"), Ok("solo".into()));
    assert_eq!(label("=x"), Err("invalid label '=x': empty name".into()));
    assert_eq!(
        label("a b=c"),
        Err("label 'a b' contains whitespaces".into())
    );
}

#[test]
fn placement_preferences_only_spread() {
    let spread = placement_pref("spread=node.labels.zone").unwrap();
    let descriptor = spread.spread.unwrap().spread_descriptor;
    assert_eq!(descriptor.as_deref(), Some("node.labels.zone"));
    assert_eq!(
        placement_pref("pack=x").unwrap_err(),
        "unsupported placement preference pack (only spread is supported)"
    );
    assert_eq!(
        placement_pref("spread").unwrap_err(),
        "placement preference must be of the format \"<strategy>=<arg>\""
    );
}

#[test]
fn filters_and_scales_are_name_value_pairs() {
    assert_eq!(
        filter(" Desired-State = running "),
        Ok(("desired-state".into(), "running".into()))
    );
    assert_eq!(
        filter("x").unwrap_err(),
        "bad format of filter (expected name=value)"
    );
    assert_eq!(scale("web=5"), Ok(("web".into(), "5".into())));
    assert_eq!(scale("web=x"), Ok(("web".into(), "x".into())));
    assert_eq!(scale("web").unwrap_err(), "invalid scale specifier 'web'");
    assert_eq!(scale("=2").unwrap_err(), "invalid scale specifier '=2'");
}

#[test]
fn api_enums_parse_only_the_listed_values() {
    use bollard::models::ServiceSpecUpdateConfigFailureActionEnum as Action;
    let command = clap::Command::new("t").arg(
        clap::Arg::new("action")
            .long("action")
            .value_parser(api_enum::<Action>(&["pause", "continue"])),
    );
    let matches = command
        .clone()
        .try_get_matches_from(["t", "--action", "continue"])
        .unwrap();
    assert_eq!(matches.get_one::<Action>("action"), Some(&Action::CONTINUE));
    assert!(
        command
            .try_get_matches_from(["t", "--action", "rollback"])
            .is_err()
    );
}

#[test]
fn networks_in_both_syntaxes() {
    let short = network("mynet").unwrap();
    assert_eq!(short.target.as_deref(), Some("mynet"));
    assert_eq!(short.aliases, None);
    let long = network("name=mynet,alias=web,alias=www,driver-opt=a=b").unwrap();
    assert_eq!(long.target.as_deref(), Some("mynet"));
    assert_eq!(long.aliases, Some(vec!["web".into(), "www".into()]));
    assert_eq!(long.driver_opts.unwrap()["a"], "b");
    assert_eq!(
        network("alias=web").unwrap_err(),
        "network name/id is not specified: alias=web"
    );
    assert_eq!(
        network("name=x,colour=red").unwrap_err(),
        "invalid field key colour"
    );
}
