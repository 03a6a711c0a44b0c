//! `shoal stack ...`, printed as `docker stack ...` prints them. A stack is no object of its
//! own: it is the services and networks labelled `com.docker.stack.namespace=<stack>`, made
//! from a compose file by `deploy`, found by that label by the other commands.

mod deploy;
mod ls;
mod rm;

use std::collections::HashMap;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{Network, Service};
use bollard::query_parameters::{ListNetworksOptions, ListServicesOptions};

use super::connect::Daemon;
use super::service::ls::{ListArgs, list};
use super::service::ps::{PsArgs, ps};
use super::service::{name as service_name, parse_filter};
use super::table::ListFormat;
use crate::compose::NAMESPACE_LABEL;

/// Docker's stack subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing stack.
    #[command(visible_alias = "up")]
    Deploy(deploy::DeployArgs),
    /// List stacks.
    #[command(visible_alias = "list")]
    Ls(ls::ListStacksArgs),
    /// List the tasks in the stack.
    Ps(StackPsArgs),
    /// Remove one or more stacks.
    #[command(visible_aliases = ["remove", "down"])]
    Rm(rm::RemoveArgs),
    /// List the services in the stack.
    Services(StackServicesArgs),
}

/// Flags and argument of `stack services`: those of `service ls`, for one stack.
#[derive(Debug, clap::Args)]
pub struct StackServicesArgs {
    #[command(flatten)]
    list: ListArgs,
    /// The stack's name.
    stack: String,
}

/// Flags and argument of `stack ps`: those of `service ps`, for one stack.
#[derive(Debug, clap::Args)]
pub struct StackPsArgs {
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only display task IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on conditions provided (desired-state, id, name, node);
    /// repeatable.
    #[arg(short, long, value_name = "NAME=VALUE", value_parser = parse_filter)]
    filter: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
    /// The stack's name.
    stack: String,
}

/// Runs a stack subcommand.
pub async fn run(daemon: &Daemon, command: StackCommand) -> Result<()> {
    let docker = daemon.client()?;
    match command {
        StackCommand::Deploy(args) => deploy::deploy(&docker, &args).await,
        StackCommand::Ls(args) => ls::list(&docker, &args).await,
        StackCommand::Ps(args) => stack_ps(&docker, args).await,
        StackCommand::Rm(args) => rm::remove(daemon, &docker, &args).await,
        StackCommand::Services(args) => services(&docker, args).await,
    }
}

/// `stack services`: `service ls` filtered by the stack's label.
async fn services(docker: &Docker, mut args: StackServicesArgs) -> Result<()> {
    if stack_services(docker, &args.stack).await?.is_empty() {
        // Docker's message, on stderr, and no failure: an empty stack is no error.
        eprintln!("Nothing found in stack: {}", args.stack);
        return Ok(());
    }
    args.list.filter.push(label_filter(&args.stack));
    list(docker, &args.list).await
}

/// `stack ps`: `service ps` of every service of the stack.
async fn stack_ps(docker: &Docker, args: StackPsArgs) -> Result<()> {
    let services = stack_services(docker, &args.stack).await?;
    if services.is_empty() {
        bail!("nothing found in stack: {}", args.stack);
    }
    let ps_args = PsArgs {
        no_trunc: args.no_trunc,
        quiet: args.quiet,
        filter: args.filter,
        format: args.format,
        // By ID, which names each service exactly.
        services: services.iter().filter_map(|s| s.id.clone()).collect(),
    };
    ps(docker, &ps_args).await
}

/// The `--filter` pair that selects a stack's objects.
fn label_filter(stack: &str) -> (String, String) {
    ("label".into(), format!("{NAMESPACE_LABEL}={stack}"))
}

/// The API filter map that selects a stack's objects.
fn stack_filters(stack: &str) -> HashMap<String, Vec<String>> {
    let (name, value) = label_filter(stack);
    HashMap::from([(name, vec![value])])
}

/// The stack's services.
async fn stack_services(docker: &Docker, stack: &str) -> Result<Vec<Service>> {
    let options = ListServicesOptions {
        filters: Some(stack_filters(stack)),
        status: None,
    };
    Ok(docker.list_services(Some(options)).await?)
}

/// The stack's networks.
async fn stack_networks(docker: &Docker, stack: &str) -> Result<Vec<Network>> {
    let options = ListNetworksOptions {
        filters: Some(stack_filters(stack)),
    };
    Ok(docker.list_networks(Some(options)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: StackCommand,
    }

    fn parse(line: &[&str]) -> StackCommand {
        let argv = ["shoal"].iter().chain(line);
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn commands_take_dockers_flags_and_aliases() {
        let StackCommand::Deploy(deploy) = parse(&["up", "-c", "x.yml", "--prune", "shop"]) else {
            panic!("not deploy");
        };
        let deploy = format!("{deploy:?}");
        assert!(deploy.contains("\"x.yml\"") && deploy.contains("prune: true"));
        assert!(
            deploy.contains("detach: true"),
            "docker's default: no waiting"
        );
        let StackCommand::Deploy(waiting) = parse(&["deploy", "-c", "x", "--detach=false", "s"])
        else {
            panic!("not deploy");
        };
        assert!(format!("{waiting:?}").contains("detach: false"));
        let StackCommand::Services(services) = parse(&["services", "-q", "shop"]) else {
            panic!("not services");
        };
        assert!(services.list.quiet);
        assert_eq!(services.stack, "shop");
        let StackCommand::Ps(ps) =
            parse(&["ps", "--no-trunc", "-f", "desired-state=running", "shop"])
        else {
            panic!("not ps");
        };
        assert_eq!(ps.filter, [("desired-state".into(), "running".into())]);
        assert!(matches!(parse(&["down", "a", "b"]), StackCommand::Rm(_)));
        assert!(matches!(parse(&["list"]), StackCommand::Ls(_)));
        let without_file = Cli::try_parse_from(["shoal", "deploy", "shop"]);
        assert!(without_file.is_err(), "the compose file is required");
    }

    #[test]
    fn a_stack_is_selected_by_its_label() {
        assert_eq!(
            stack_filters("shop")["label"],
            ["com.docker.stack.namespace=shop"]
        );
    }
}
