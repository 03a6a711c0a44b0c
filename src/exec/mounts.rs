//! A task's mounts. The process executor has no image: a task sees the host's tree, in a mount
//! namespace of its own, and each of docker's `Mounts` becomes a bind mount there:
//!
//! - a named volume (`Type: volume, Source: NAME`) is the directory `<volumes>/NAME`, made on
//!   first use and kept across tasks, per node, like a local docker volume;
//! - an anonymous volume (no `Source`) is a fresh directory in the task's own directory, gone
//!   with the task;
//! - a bind mount (`Type: bind`) is the host path it names, which must exist.
//!
//! The node adds its own: the task's `/etc/resolv.conf` (see [`super::resolv`]). A missing
//! mount point is made, as docker makes it in a container's layer; here that layer is the
//! host's tree, so an empty directory (or file) is left behind there.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bollard::models::{Mount, MountType};
use nix::mount::{MsFlags, mount};
use serde::{Deserialize, Serialize};

use super::ExecError;

/// One bind mount made in the task's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// The host path mounted.
    pub source: PathBuf,
    /// Where the task sees it.
    pub target: PathBuf,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The source is a volume's directory, made when missing (a bind mount's must exist).
    #[serde(default)]
    pub volume: bool,
}

/// The bind mounts a container spec's `Mounts` ask for, checked as docker checks them: a named
/// volume lives in `volumes`, an anonymous one in `anonymous` (the task's own directory).
pub fn plan(
    mounts: &[Mount],
    volumes: &Path,
    anonymous: &Path,
) -> Result<Vec<BindMount>, ExecError> {
    let mut planned: Vec<BindMount> = Vec::with_capacity(mounts.len());
    for (index, m) in mounts.iter().enumerate() {
        let kind = m.typ.map_or(String::new(), |t| t.to_string());
        let invalid = |why: String| {
            ExecError::InvalidSpec(format!("invalid mount config for type \"{kind}\": {why}"))
        };
        let target = m.target.as_deref().unwrap_or_default();
        if target.is_empty() {
            return Err(invalid("field Target must not be empty".into()));
        }
        absolute(target).map_err(invalid)?;
        if planned.iter().any(|p| p.target == Path::new(target)) {
            return Err(ExecError::InvalidSpec(format!(
                "invalid duplicate mount point: {target}"
            )));
        }
        let source = m.source.as_deref().unwrap_or_default();
        let (source, volume) = match m.typ {
            Some(MountType::BIND) => {
                if source.is_empty() {
                    return Err(invalid("field Source must not be empty".into()));
                }
                absolute(source).map_err(invalid)?;
                if !Path::new(source).exists() {
                    return Err(invalid(format!(
                        "bind source path does not exist: {source}"
                    )));
                }
                (PathBuf::from(source), false)
            }
            Some(MountType::VOLUME) => {
                let driver = m
                    .volume_options
                    .as_ref()
                    .and_then(|o| o.driver_config.as_ref())
                    .and_then(|d| d.name.as_deref())
                    .unwrap_or_default();
                if !matches!(driver, "" | "local") {
                    return Err(invalid(format!(
                        "volume driver \"{driver}\" is not supported: the process executor keeps local volumes only"
                    )));
                }
                if source.is_empty() {
                    (anonymous.join(format!("volume-{index}")), true)
                } else {
                    volume_name(source).map_err(ExecError::InvalidSpec)?;
                    (volumes.join(source), true)
                }
            }
            _ => {
                return Err(invalid(
                    "mount type not supported by the process executor (use volume or bind)".into(),
                ));
            }
        };
        planned.push(BindMount {
            source,
            target: PathBuf::from(target),
            read_only: m.read_only == Some(true),
            volume,
        });
    }
    Ok(planned)
}

/// Docker's check of a mount path.
fn absolute(path: &str) -> Result<(), String> {
    if Path::new(path).is_absolute() {
        Ok(())
    } else {
        Err(format!(
            "invalid mount path: '{path}' mount path must be absolute"
        ))
    }
}

/// Docker's rule for local volume names, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: a name is one directory
/// under the volumes, never a path out of it.
fn volume_name(name: &str) -> Result<(), String> {
    let valid = name.len() >= 2
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-')));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ))
    }
}

/// Makes the directories of the volumes among `mounts` that do not exist yet.
pub fn make_volumes(mounts: &[BindMount]) -> Result<(), ExecError> {
    for m in mounts.iter().filter(|m| m.volume) {
        fs::create_dir_all(&m.source).map_err(|e| {
            ExecError::io(
                format!("creating the volume directory {}", m.source.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Bind-mounts `m` (recursively, as docker's default `rbind`) in the current mount namespace,
/// making its mount point if missing. Runs in the task's process, before its program.
pub(crate) fn bind(m: &BindMount) -> io::Result<()> {
    if fs::symlink_metadata(&m.target).is_err() {
        if m.source.is_dir() {
            fs::create_dir_all(&m.target)?;
        } else {
            if let Some(parent) = m.target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::File::create(&m.target)?;
        }
    }
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(
        Some(&m.source),
        &m.target,
        None::<&str>,
        flags,
        None::<&str>,
    )?;
    if m.read_only {
        // A bind mount takes its flags from a remount: the first mount ignores MS_RDONLY.
        let flags = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &m.target, None::<&str>, flags, None::<&str>)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{MountVolumeOptions, MountVolumeOptionsDriverConfig};

    fn mount(typ: MountType, source: &str, target: &str) -> Mount {
        Mount {
            typ: Some(typ),
            source: (!source.is_empty()).then(|| source.into()),
            target: Some(target.into()),
            ..Default::default()
        }
    }

    fn planned(mounts: &[Mount]) -> Result<Vec<BindMount>, String> {
        plan(
            mounts,
            Path::new("/data/volumes"),
            Path::new("/data/tasks/t1"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn volumes_and_binds_become_bind_mounts() {
        let mut ro = mount(MountType::BIND, "/tmp", "/host/tmp");
        ro.read_only = Some(true);
        let mounts = [
            mount(MountType::VOLUME, "demo_db", "/var/lib/db"),
            mount(MountType::VOLUME, "", "/scratch"),
            ro,
        ];
        let want = [
            ("/data/volumes/demo_db", "/var/lib/db", false, true),
            ("/data/tasks/t1/volume-1", "/scratch", false, true),
            ("/tmp", "/host/tmp", true, false),
        ];
        let want: Vec<BindMount> = want
            .iter()
            .map(|&(source, target, read_only, volume)| BindMount {
                source: source.into(),
                target: target.into(),
                read_only,
                volume,
            })
            .collect();
        assert_eq!(planned(&mounts).unwrap(), want);
        assert_eq!(planned(&[]).unwrap(), []);
    }

    #[test]
    fn bad_mounts_are_refused_in_dockers_words() {
        let err = |m: Mount| planned(&[m]).unwrap_err();
        assert_eq!(
            err(mount(MountType::VOLUME, "db", "data")),
            "invalid ContainerSpec: invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"
        );
        assert!(
            err(mount(MountType::VOLUME, "db", "")).ends_with("field Target must not be empty")
        );
        assert!(
            err(mount(MountType::VOLUME, "../etc", "/x"))
                .contains("includes invalid characters for a local volume name")
        );
        assert!(err(mount(MountType::BIND, "", "/x")).ends_with("field Source must not be empty"));
        assert!(
            err(mount(MountType::BIND, "tmp", "/x")).contains("'tmp' mount path must be absolute")
        );
        assert!(
            err(mount(MountType::BIND, "/no/such/dir", "/x"))
                .ends_with("bind source path does not exist: /no/such/dir")
        );
        assert!(err(mount(MountType::TMPFS, "", "/x")).contains("not supported"));
        let mut remote = mount(MountType::VOLUME, "db", "/x");
        remote.volume_options = Some(MountVolumeOptions {
            driver_config: Some(MountVolumeOptionsDriverConfig {
                name: Some("nfs".into()),
                options: None,
            }),
            ..Default::default()
        });
        assert!(err(remote).contains("volume driver \"nfs\" is not supported"));
        let twice = [
            mount(MountType::VOLUME, "a1", "/x"),
            mount(MountType::VOLUME, "b1", "/x"),
        ];
        assert_eq!(
            planned(&twice).unwrap_err(),
            "invalid ContainerSpec: invalid duplicate mount point: /x"
        );
    }

    #[test]
    fn volume_names_are_one_directory() {
        for good in ["db", "demo_db", "a.b-c_1"] {
            assert!(volume_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a", ".x", "_x", "a/b", "..", "a b"] {
            assert!(volume_name(bad).is_err(), "{bad}");
        }
    }
}
