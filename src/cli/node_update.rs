//! `shoal node promote|demote|update|rm`, the commands that change nodes, printed as
//! `docker node ...` prints them.

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum};
use bollard::query_parameters::{DeleteNodeOptions, UpdateNodeOptions};

use super::connect::Daemon;
use super::swarm::Role;
use super::update_version;

/// Whether a node takes tasks, as flags name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Availability {
    /// Takes new tasks.
    Active,
    /// Keeps its tasks but takes no new ones.
    Pause,
    /// Takes no tasks: the ones it has move to other nodes.
    Drain,
}

impl From<Availability> for NodeSpecAvailabilityEnum {
    fn from(availability: Availability) -> Self {
        match availability {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        }
    }
}

/// The nodes `node promote` and `node demote` act on.
#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    /// Nodes by ID, ID prefix or hostname.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
}

/// Flags and argument of `node update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Availability of the node.
    #[arg(long, value_enum)]
    availability: Option<Availability>,
    /// Add or update a node label ("key=value"); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    label_add: Vec<String>,
    /// Remove a node label if exists; repeatable.
    #[arg(long, value_name = "KEY")]
    label_rm: Vec<String>,
    /// Role of the node.
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// The node by ID, ID prefix or hostname.
    node: String,
}

/// Flags and arguments of `node rm`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Force remove a node from the swarm.
    #[arg(short, long)]
    force: bool,
    /// Nodes by ID, ID prefix or hostname.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
}

/// What an edit of a node's spec decided.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    /// Write the edited spec back.
    Write,
    /// Leave the node as it is and print this line instead.
    Skip(String),
}

/// Runs `node promote`.
pub async fn promote(docker: &Docker, args: &NodesArgs) -> Result<()> {
    let edit = |id: &str, spec: &mut NodeSpec| Ok(set_role(spec, id, Role::Manager));
    update_nodes(docker, &args.nodes, edit, |node| {
        format!("Node {node} promoted to a manager in the swarm.")
    })
    .await
}

/// Runs `node demote`.
pub async fn demote(docker: &Docker, args: &NodesArgs) -> Result<()> {
    let edit = |id: &str, spec: &mut NodeSpec| Ok(set_role(spec, id, Role::Worker));
    update_nodes(docker, &args.nodes, edit, |node| {
        format!("Manager {node} demoted in the swarm.")
    })
    .await
}

/// Runs `node update`, which prints the node as it was named.
pub async fn update(docker: &Docker, args: &UpdateArgs) -> Result<()> {
    let edit = |_: &str, spec: &mut NodeSpec| apply(args, spec).map(|()| Edit::Write);
    update_nodes(
        docker,
        std::slice::from_ref(&args.node),
        edit,
        str::to_string,
    )
    .await
}

/// Runs `node rm`: removes every node it can, printing each as it was named, then fails
/// with the errors of the others, as docker does.
pub async fn remove(daemon: &Daemon, docker: &Docker, args: &RemoveArgs) -> Result<()> {
    let mut errors = Vec::new();
    for reference in &args.nodes {
        let options = DeleteNodeOptions { force: args.force };
        match docker.delete_node(reference, Some(options)).await {
            Ok(()) => println!("{reference}"),
            Err(error) => errors.push(daemon.explain(&error.into())),
        }
    }
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

/// Reads each node `references` names, lets `edit` change its spec (given the node's ID),
/// and writes the spec back at the version read, printing `done` of the name given.
/// Stops at the first failure, as docker does.
async fn update_nodes(
    docker: &Docker,
    references: &[String],
    mut edit: impl FnMut(&str, &mut NodeSpec) -> Result<Edit>,
    done: impl Fn(&str) -> String,
) -> Result<()> {
    for reference in references {
        let node = docker.inspect_node(reference).await?;
        let id = node.id.unwrap_or_default();
        let mut spec = node.spec.unwrap_or_default();
        match edit(&id, &mut spec)? {
            Edit::Skip(line) => println!("{line}"),
            Edit::Write => {
                let version = update_version(node.version.as_ref())?;
                let options = UpdateNodeOptions { version };
                docker.update_node(&id, spec, options).await?;
                println!("{}", done(reference));
            }
        }
    }
    Ok(())
}

/// Gives the node `id` the role `role`, unless it has it already: then docker's note that
/// it does, which names the node by its full ID.
fn set_role(spec: &mut NodeSpec, id: &str, role: Role) -> Edit {
    let wanted = NodeSpecRoleEnum::from(role);
    if spec.role == Some(wanted) {
        return Edit::Skip(format!("Node {id} is already a {role}."));
    }
    spec.role = Some(wanted);
    Edit::Write
}

/// Applies `node update`'s flags to `spec` in docker's order: role, availability, added
/// labels (`key=value`, or `key` for an empty value), then removed labels, each of which
/// must exist.
fn apply(args: &UpdateArgs, spec: &mut NodeSpec) -> Result<()> {
    if let Some(role) = args.role {
        spec.role = Some(role.into());
    }
    if let Some(availability) = args.availability {
        spec.availability = Some(availability.into());
    }
    // Docker always sends a label map, empty rather than absent.
    let labels = spec.labels.get_or_insert_default();
    for label in &args.label_add {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        labels.insert(key.to_string(), value.to_string());
    }
    for key in &args.label_rm {
        if labels.remove(key).is_none() {
            bail!("key {key} doesn't exist in node's labels");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser as _;

    use super::*;

    const ID: &str = "a1b2c3d4e5f6g7h8i9j0k1l2m";

    fn parse(line: &[&str]) -> UpdateArgs {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: UpdateArgs,
        }
        let line = std::iter::once("update").chain(line.iter().copied());
        Command::try_parse_from(line).unwrap().args
    }

    fn spec(role: NodeSpecRoleEnum, labels: &[(&str, &str)]) -> NodeSpec {
        let labels = labels.iter().map(|&(k, v)| (k.into(), v.into()));
        NodeSpec {
            name: Some("front".into()),
            labels: Some(labels.collect()),
            role: Some(role),
            availability: Some(NodeSpecAvailabilityEnum::ACTIVE),
        }
    }

    fn labels(spec: &NodeSpec) -> HashMap<&str, &str> {
        let labels = spec.labels.iter().flatten();
        labels.map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn promotion_sets_the_manager_role_once() {
        let mut worker = spec(NodeSpecRoleEnum::WORKER, &[("zone", "eu")]);
        assert_eq!(set_role(&mut worker, ID, Role::Manager), Edit::Write);
        let mut expected = spec(NodeSpecRoleEnum::MANAGER, &[("zone", "eu")]);
        assert_eq!(worker, expected);
        assert_eq!(
            set_role(&mut expected, ID, Role::Manager),
            Edit::Skip(format!("Node {ID} is already a manager."))
        );
    }

    #[test]
    fn demotion_sets_the_worker_role_once() {
        let mut manager = spec(NodeSpecRoleEnum::MANAGER, &[]);
        assert_eq!(set_role(&mut manager, ID, Role::Worker), Edit::Write);
        assert_eq!(manager.role, Some(NodeSpecRoleEnum::WORKER));
        assert_eq!(
            set_role(&mut manager, ID, Role::Worker),
            Edit::Skip(format!("Node {ID} is already a worker."))
        );
        // A spec without a role is no manager yet: docker compares the role as given.
        let mut bare = NodeSpec::default();
        assert_eq!(set_role(&mut bare, ID, Role::Manager), Edit::Write);
        assert_eq!(bare.role, Some(NodeSpecRoleEnum::MANAGER));
    }

    #[test]
    fn labels_are_added_then_removed() {
        let mut node = spec(NodeSpecRoleEnum::WORKER, &[("zone", "eu"), ("old", "1")]);
        let args = parse(&[
            "--label-add",
            "zone=us=east",
            "--label-add",
            "ssd",
            "--label-rm",
            "old",
            "--label-add",
            "tmp=x",
            "--label-rm",
            "tmp",
            "n",
        ]);
        apply(&args, &mut node).unwrap();
        assert_eq!(
            labels(&node),
            HashMap::from([("zone", "us=east"), ("ssd", "")])
        );
        assert_eq!(node.role, Some(NodeSpecRoleEnum::WORKER));
        assert_eq!(node.name.as_deref(), Some("front"));
    }

    #[test]
    fn removing_a_missing_label_fails_as_docker_does() {
        let mut node = spec(NodeSpecRoleEnum::WORKER, &[("zone", "eu")]);
        let error = apply(&parse(&["--label-rm", "ssd", "n"]), &mut node).unwrap_err();
        assert_eq!(error.to_string(), "key ssd doesn't exist in node's labels");
    }

    #[test]
    fn role_and_availability_replace_the_spec_values() {
        let mut node = NodeSpec::default();
        let args = parse(&["--role", "manager", "--availability", "drain", "n"]);
        apply(&args, &mut node).unwrap();
        assert_eq!(node.role, Some(NodeSpecRoleEnum::MANAGER));
        assert_eq!(node.availability, Some(NodeSpecAvailabilityEnum::DRAIN));
        // Docker sends an empty label map rather than none.
        assert_eq!(node.labels, Some(HashMap::new()));
        assert_eq!(args.node, "n");
    }
}
