//! A service's `volumes:` as swarm mounts, as docker's compose loader and converter make
//! them: a named volume of the stack becomes a volume mount of `<stack>_<name>` labelled with
//! the stack, a path becomes a bind mount, a lone target an anonymous volume.

use std::collections::BTreeMap;
use std::path::Path;

use bollard::models::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig,
};

use super::convert::{Namespace, object_name, scalar_map};
use super::file::{LongVolume, ServiceVolume, Volume};

/// The mount `volume` stands for; `declared` are the file's top-level volumes, `base` the
/// directory relative bind sources are read from (the compose file's).
pub fn mount(
    volume: &ServiceVolume,
    declared: &BTreeMap<String, Option<Volume>>,
    namespace: &Namespace,
    base: &Path,
) -> Result<Mount, String> {
    let mount = match volume {
        ServiceVolume::Short(spec) => short(spec, base)?,
        ServiceVolume::Long(long) => long_mount(long, base)?,
    };
    match mount.typ {
        Some(MountType::VOLUME) if mount.source.is_some() => named(mount, declared, namespace),
        _ => Ok(mount),
    }
}

/// `[SOURCE:]TARGET[:OPTIONS]`, OPTIONS a comma-separated list of `ro`, `rw`, `nocopy` and
/// bind propagation modes. A source that starts like a path is a bind mount.
fn short(spec: &str, base: &Path) -> Result<Mount, String> {
    let invalid = |why: &str| format!("invalid volume specification: '{spec}': {why}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return Err(invalid("too many colons")),
    };
    if target.is_empty() {
        return Err(invalid("empty target"));
    }
    let is_path = source.starts_with(['/', '.', '~']);
    let mut mount = Mount {
        typ: Some(if is_path {
            MountType::BIND
        } else {
            MountType::VOLUME
        }),
        source: match source {
            "" => None,
            path if is_path => Some(resolve(path, base)),
            name => Some(name.to_string()),
        },
        target: Some(target.to_string()),
        ..Default::default()
    };
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => mount.read_only = Some(true),
            "rw" => mount.read_only = Some(false),
            "nocopy" if !is_path => {
                mount.volume_options = Some(MountVolumeOptions {
                    no_copy: Some(true),
                    ..Default::default()
                });
            }
            propagation if is_path => {
                let propagation: MountBindOptionsPropagationEnum = propagation
                    .parse()
                    .map_err(|_| invalid(&format!("unknown option {propagation}")))?;
                mount.bind_options = Some(MountBindOptions {
                    propagation: Some(propagation),
                    ..Default::default()
                });
            }
            other => return Err(invalid(&format!("unknown option {other}"))),
        }
    }
    Ok(mount)
}

/// The long form: `type` `volume`, `bind` or `tmpfs`, with a source as each type needs.
fn long_mount(long: &LongVolume, base: &Path) -> Result<Mount, String> {
    let typ = match long.kind.as_str() {
        "volume" => MountType::VOLUME,
        "bind" => MountType::BIND,
        "tmpfs" => MountType::TMPFS,
        other => {
            return Err(format!(
                "volume type must be volume, bind or tmpfs, not {other:?}"
            ));
        }
    };
    let source = long.source.as_deref().filter(|s| !s.is_empty());
    match (typ, source) {
        (MountType::BIND, None) => return Err("invalid bind source, source cannot be empty".into()),
        (MountType::TMPFS, Some(_)) => {
            return Err("invalid tmpfs source, source must be empty".into());
        }
        _ => {}
    }
    Ok(Mount {
        typ: Some(typ),
        source: source.map(|s| match typ {
            MountType::BIND => resolve(s, base),
            _ => s.to_string(),
        }),
        target: long.target.clone(),
        read_only: long.read_only.then_some(true),
        ..Default::default()
    })
}

/// A volume mount of a declared volume: named after the stack unless it is external or has
/// a name of its own, and labelled with the stack so `stack rm` users can find it.
fn named(
    mut mount: Mount,
    declared: &BTreeMap<String, Option<Volume>>,
    namespace: &Namespace,
) -> Result<Mount, String> {
    let key = mount.source.clone().unwrap_or_default();
    let volume = declared
        .get(&key)
        .ok_or_else(|| format!("undefined volume {key:?}"))?
        .clone()
        .unwrap_or_default();
    let name = object_name(namespace, &key, volume.name.as_deref(), &volume.external);
    mount.source = Some(name);
    let options = mount.volume_options.get_or_insert_with(Default::default);
    if volume.external.is_external() {
        return Ok(mount);
    }
    options.labels = Some(namespace.labels(&volume.labels)?);
    if volume.driver.is_some() || !volume.driver_opts.is_empty() {
        options.driver_config = Some(MountVolumeOptionsDriverConfig {
            name: volume.driver.clone(),
            options: Some(scalar_map(&volume.driver_opts)?),
        });
    }
    Ok(mount)
}

/// A bind source as an absolute path: `~` is the home directory, other relative paths are
/// relative to the compose file's directory.
fn resolve(source: &str, base: &Path) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let path = match source.strip_prefix('~') {
        Some(rest) => Path::new(&home).join(rest.trim_start_matches('/')),
        None => base.join(source),
    };
    // `join` keeps an absolute source as it is; `.` components are only dropped, not resolved.
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<std::path::PathBuf>()
        .display()
        .to_string()
}
