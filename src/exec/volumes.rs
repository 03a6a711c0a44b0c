//! The process executor's named volumes, as `docker volume` shows them: the directories of
//! `<data-dir>/volumes` (see [`super::mounts`]). A volume is in use while a task the executor
//! holds (running or exited, until removed) mounts it, as a docker volume is while a container
//! does.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ExecError;
use super::mounts::{self, Source};
use super::taskdir::TaskDir;

/// A named volume on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name, `Source` in a mount.
    pub name: String,
    /// Its directory on this node.
    pub mountpoint: PathBuf,
    /// When its directory was made.
    pub created_at: SystemTime,
    /// The tasks that mount it.
    pub used_by: Vec<String>,
}

/// Every volume in `volumes`, by name, with the tasks in `tasks` that mount it.
pub(crate) fn list(volumes: &Path, tasks: &Path) -> Result<Vec<Volume>, ExecError> {
    let entries = match fs::read_dir(volumes) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(|e| ExecError::io(format!("listing {}", volumes.display()), e))?,
    };
    let mut users = users(tasks)?;
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let (Ok(name), Ok(meta)) = (entry.file_name().into_string(), entry.metadata()) else {
            continue;
        };
        if !meta.is_dir() || mounts::volume_name(&name).is_err() {
            continue;
        }
        let mountpoint = entry.path();
        found.push(Volume {
            used_by: users.remove(&mountpoint).unwrap_or_default(),
            created_at: meta
                .created()
                .or_else(|_| meta.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            name,
            mountpoint,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The volume `name`, or docker's error for none.
pub(crate) fn get(volumes: &Path, tasks: &Path, name: &str) -> Result<Volume, ExecError> {
    list(volumes, tasks)?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ExecError::NoSuchVolume(name.into()))
}

/// Makes the volume `name` if it does not exist.
pub(crate) fn create(volumes: &Path, tasks: &Path, name: &str) -> Result<Volume, ExecError> {
    mounts::volume_name(name).map_err(ExecError::InvalidSpec)?;
    let dir = volumes.join(name);
    fs::create_dir_all(&dir).map_err(|e| {
        ExecError::io(
            format!("creating the volume directory {}", dir.display()),
            e,
        )
    })?;
    get(volumes, tasks, name)
}

/// Removes the volume `name` and its content, unless a task mounts it.
pub(crate) fn remove(volumes: &Path, tasks: &Path, name: &str) -> Result<(), ExecError> {
    let volume = get(volumes, tasks, name)?;
    if !volume.used_by.is_empty() {
        return Err(ExecError::VolumeInUse {
            name: volume.name,
            tasks: volume.used_by,
        });
    }
    fs::remove_dir_all(&volume.mountpoint).map_err(|e| {
        ExecError::io(
            format!(
                "removing the volume directory {}",
                volume.mountpoint.display()
            ),
            e,
        )
    })
}

/// Removes every volume no task mounts; returns their names and the bytes their files took.
pub(crate) fn prune(volumes: &Path, tasks: &Path) -> Result<(Vec<String>, u64), ExecError> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    for volume in list(volumes, tasks)?
        .into_iter()
        .filter(|v| v.used_by.is_empty())
    {
        bytes += size(&volume.mountpoint);
        remove(volumes, tasks, &volume.name)?;
        removed.push(volume.name);
    }
    Ok((removed, bytes))
}

/// The bytes of the files under `path` (links not followed; what cannot be read counts 0).
fn size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| size(&entry.path()))
        .sum()
}

/// The tasks in `tasks` mounting each volume directory, from their `spec.json`.
fn users(tasks: &Path) -> Result<BTreeMap<PathBuf, Vec<String>>, ExecError> {
    let mut users: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let entries = match fs::read_dir(tasks) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(users),
        other => other.map_err(|e| ExecError::io(format!("listing {}", tasks.display()), e))?,
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(task_id) = entry.file_name().into_string() else {
            continue;
        };
        // A task whose spec cannot be read mounts nothing the executor could know of.
        let Ok(Some(spec)) = TaskDir::new(entry.path()).read_spec() else {
            continue;
        };
        for m in spec.mounts {
            if let Source::Volume(dir) = m.source {
                users.entry(dir).or_default().push(task_id.clone());
            }
        }
    }
    for ids in users.values_mut() {
        ids.sort();
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::LaunchSpec;
    use crate::exec::mounts::TaskMount;
    use crate::exec::taskdir::write_json;

    #[test]
    fn volumes_are_listed_made_and_removed_unless_mounted() {
        let data = tempfile::tempdir().unwrap();
        let (volumes, tasks) = (data.path().join("volumes"), data.path().join("tasks"));
        assert_eq!(list(&volumes, &tasks).unwrap(), []);
        let db = create(&volumes, &tasks, "demo_db").unwrap();
        assert_eq!(
            (db.name.as_str(), db.mountpoint.clone()),
            ("demo_db", volumes.join("demo_db"))
        );
        create(&volumes, &tasks, "cache").unwrap();
        assert!(create(&volumes, &tasks, "../x").is_err());

        // A task that mounts demo_db holds it.
        let task = tasks.join("t1");
        fs::create_dir_all(&task).unwrap();
        let spec = LaunchSpec {
            program: "sleep".into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: "/".into(),
            hostname: "h".into(),
            netns: None,
            mounts: vec![TaskMount {
                source: Source::Volume(volumes.join("demo_db")),
                target: "/data".into(),
                read_only: false,
            }],
        };
        write_json(&TaskDir::new(task.clone()).spec(), &spec).unwrap();
        let names: Vec<(String, Vec<String>)> = list(&volumes, &tasks)
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.used_by))
            .collect();
        assert_eq!(
            names,
            [
                ("cache".into(), vec![]),
                ("demo_db".into(), vec!["t1".to_string()])
            ]
        );
        let err = remove(&volumes, &tasks, "demo_db").unwrap_err();
        assert_eq!(err.to_string(), "remove demo_db: volume is in use - [t1]");
        remove(&volumes, &tasks, "cache").unwrap();
        let err = get(&volumes, &tasks, "cache").unwrap_err();
        assert_eq!(err.to_string(), "get cache: no such volume");

        fs::write(volumes.join("demo_db/file"), "12345").unwrap();
        create(&volumes, &tasks, "unused").unwrap();
        let pruned = prune(&volumes, &tasks).unwrap();
        assert_eq!(pruned, (vec!["unused".to_string()], 0));
        fs::remove_dir_all(&task).unwrap();
        assert_eq!(
            prune(&volumes, &tasks).unwrap(),
            (vec!["demo_db".to_string()], 5)
        );
        assert!(!volumes.join("demo_db").exists());
    }
}
