//! A task's mounts. The process executor has no image: a task sees the host's tree, in a mount
//! namespace of its own, and each of docker's `Mounts` is mounted there:
//!
//! - a named volume (`Type: volume, Source: NAME`) is the directory `<volumes>/NAME`, made on
//!   first use and kept across tasks, per node, like a local docker volume;
//! - an anonymous volume (no `Source`) is a fresh directory in the task's own directory, gone
//!   with the task;
//! - a bind mount (`Type: bind`) is the host path it names, which must exist;
//! - a tmpfs (`Type: tmpfs`) is a fresh one, gone with the task's mount namespace.
//!
//! The node adds its own: the task's `/etc/resolv.conf` (see [`super::resolv`]). A missing
//! mount point is made, as docker makes it in a container's layer; here that layer is the
//! host's tree, so an empty directory (or file) is left behind there.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bollard::models::{Mount, MountType};
use nix::mount::{MsFlags, mount};
use serde::{Deserialize, Serialize};

use super::ExecError;

/// One mount made in the task's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMount {
    /// What is mounted.
    pub source: Source,
    /// Where the task sees it.
    pub target: PathBuf,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// What a [`TaskMount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A host path, bind-mounted; it must exist.
    Host(PathBuf),
    /// A volume's directory, bind-mounted; made when missing.
    Volume(PathBuf),
    /// A fresh tmpfs, with these mount options (`size=...,mode=...`).
    Tmpfs(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Host(path) | Source::Volume(path) => path.display().fmt(f),
            Source::Tmpfs(_) => f.write_str("tmpfs"),
        }
    }
}

/// The mounts a container spec's `Mounts` ask for, checked as docker checks them: a named
/// volume lives in `volumes`, an anonymous one in `anonymous` (the task's own directory).
pub fn plan(
    mounts: &[Mount],
    volumes: &Path,
    anonymous: &Path,
) -> Result<Vec<TaskMount>, ExecError> {
    let mut planned: Vec<TaskMount> = Vec::with_capacity(mounts.len());
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
        let source = match m.typ {
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
                Source::Host(PathBuf::from(source))
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
                    Source::Volume(anonymous.join(format!("volume-{index}")))
                } else {
                    volume_name(source).map_err(ExecError::InvalidSpec)?;
                    Source::Volume(volumes.join(source))
                }
            }
            Some(MountType::TMPFS) => {
                if !source.is_empty() {
                    return Err(invalid("field Source must not be specified".into()));
                }
                let options = m.tmpfs_options.as_ref();
                // Docker's default mode: anyone may write, as in /tmp.
                let mode = options.and_then(|o| o.mode).unwrap_or(0o1777);
                let mut data = format!("mode={mode:o}");
                if let Some(size) = options.and_then(|o| o.size_bytes).filter(|s| *s > 0) {
                    data.push_str(&format!(",size={size}"));
                }
                Source::Tmpfs(data)
            }
            _ => {
                return Err(invalid(
                    "mount type not supported by the process executor (use volume, bind or tmpfs)"
                        .into(),
                ));
            }
        };
        planned.push(TaskMount {
            source,
            target: PathBuf::from(target),
            read_only: m.read_only == Some(true),
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
pub(crate) fn volume_name(name: &str) -> Result<(), String> {
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
pub fn make_volumes(mounts: &[TaskMount]) -> Result<(), ExecError> {
    for m in mounts {
        if let Source::Volume(dir) = &m.source {
            fs::create_dir_all(dir).map_err(|e| {
                ExecError::io(
                    format!("creating the volume directory {}", dir.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

/// Mounts `m` in the current mount namespace, making its mount point if missing. Runs in the
/// task's process, before its program.
pub(crate) fn apply(m: &TaskMount) -> io::Result<()> {
    let read_only = if m.read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    match &m.source {
        Source::Host(source) | Source::Volume(source) => {
            make_mount_point(&m.target, source.is_dir())?;
            // Recursive, as docker's default `rbind`.
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(source), &m.target, None::<&str>, flags, None::<&str>)?;
            if m.read_only {
                // A bind mount takes its flags from a remount: the first mount ignores them.
                let flags = flags | MsFlags::MS_REMOUNT | read_only;
                mount(None::<&str>, &m.target, None::<&str>, flags, None::<&str>)?;
            }
        }
        Source::Tmpfs(data) => {
            make_mount_point(&m.target, true)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | read_only;
            mount(
                Some("tmpfs"),
                &m.target,
                Some("tmpfs"),
                flags,
                Some(data.as_str()),
            )?;
        }
    }
    Ok(())
}

/// Makes `target` (a directory, or an empty file to mount a file on) if nothing is there.
fn make_mount_point(target: &Path, directory: bool) -> io::Result<()> {
    if fs::symlink_metadata(target).is_ok() {
        return Ok(());
    }
    if directory {
        return fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::File::create(target).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{MountTmpfsOptions, MountVolumeOptions, MountVolumeOptionsDriverConfig};

    fn mount(typ: MountType, source: &str, target: &str) -> Mount {
        Mount {
            typ: Some(typ),
            source: (!source.is_empty()).then(|| source.into()),
            target: Some(target.into()),
            ..Default::default()
        }
    }

    fn planned(mounts: &[Mount]) -> Result<Vec<TaskMount>, String> {
        plan(
            mounts,
            Path::new("/data/volumes"),
            Path::new("/data/tasks/t1"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn volumes_binds_and_tmpfs_are_planned() {
        let mut ro = mount(MountType::BIND, "/tmp", "/host/tmp");
        ro.read_only = Some(true);
        let mut small = mount(MountType::TMPFS, "", "/run/small");
        small.tmpfs_options = Some(MountTmpfsOptions {
            size_bytes: Some(65536),
            mode: Some(0o700),
            options: None,
        });
        let mounts = [
            mount(MountType::VOLUME, "demo_db", "/var/lib/db"),
            mount(MountType::VOLUME, "", "/scratch"),
            ro,
            mount(MountType::TMPFS, "", "/run/any"),
            small,
        ];
        let want = [
            (
                Source::Volume("/data/volumes/demo_db".into()),
                "/var/lib/db",
                false,
            ),
            (
                Source::Volume("/data/tasks/t1/volume-1".into()),
                "/scratch",
                false,
            ),
            (Source::Host("/tmp".into()), "/host/tmp", true),
            (Source::Tmpfs("mode=1777".into()), "/run/any", false),
            (
                Source::Tmpfs("mode=700,size=65536".into()),
                "/run/small",
                false,
            ),
        ];
        let want: Vec<TaskMount> = want
            .into_iter()
            .map(|(source, target, read_only)| TaskMount {
                source,
                target: target.into(),
                read_only,
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
        assert!(err(mount(MountType::NPIPE, "", "/x")).contains("not supported"));
        assert!(err(mount(MountType::TMPFS, "/tmp", "/x")).ends_with("must not be specified"));
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
