//! The real `weir` binary run in a project folder, as a user runs it: without the caller's
//! `WEIR_CONFIG` and `RUST_LOG`, so the project's own `config.toml` decides.

use std::path::Path;
use std::process::{Command, Output};

/// `weir args...` in `project`, its output collected.
pub fn weir(project: &Path, args: &[&str]) -> Output {
    weir_in_env(project, args, &[])
}

/// `weir args...` in `project` with `environment` added to its own.
pub fn weir_in_env(project: &Path, args: &[&str], environment: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .envs(environment.iter().copied())
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A project with a SQLite database (the default) and the given DAG files under `dags/`.
pub fn project(dags: &[(&str, &str)]) -> tempfile::TempDir {
    project_with_config("[core]\ndags_folder = \"dags\"\n", dags)
}

/// A project whose `config.toml` is `config`, with the given DAG files under `dags/`.
pub fn project_with_config(config: &str, dags: &[(&str, &str)]) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("dags")).unwrap();
    std::fs::write(folder.path().join("config.toml"), config).unwrap();
    for (name, yaml) in dags {
        std::fs::write(folder.path().join("dags").join(name), yaml).unwrap();
    }
    folder
}
