//! A private MongoDB wire server (SecantusDB, through `infra/localdb.py`) for a test that must
//! stop and restart its database: on-disk storage in a temporary directory, a fixed port so the
//! functions' `MONGODB_URI` stays valid across a restart. Dropping it stops the server.

use std::path::PathBuf;
use std::process::Command;

use crate::emulator::{free_port, workspace_root};

pub struct PrivateServer {
    port: u16,
    storage: PathBuf,
    pidfile: PathBuf,
    running: bool,
}

impl PrivateServer {
    /// Starts a server on a free port with fresh on-disk storage.
    pub fn start() -> PrivateServer {
        let port = free_port();
        let dir = workspace_root().join(format!(".local/private-db/{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = PrivateServer {
            port,
            storage: dir.join("data"),
            pidfile: dir.join("server.pid"),
            running: false,
        };
        server.restart();
        server
    }

    /// `mongodb://127.0.0.1:PORT/?directConnection=true`.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn localdb(&self, args: &[&str]) -> std::process::Output {
        Command::new("python3")
            .arg(workspace_root().join("infra/localdb.py"))
            .args(args)
            .arg("--pidfile")
            .arg(&self.pidfile)
            .output()
            .unwrap()
    }

    /// Stops the server (the data stays on disk).
    pub fn stop(&mut self) {
        let out = self.localdb(&["stop"]);
        assert!(
            out.status.success(),
            "localdb stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// Starts the server again on the same port and storage; returns once it answers a ping.
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let storage = self.storage.to_string_lossy().into_owned();
        let out = self.localdb(&["start", "--port", &port, "--storage", &storage]);
        assert!(
            out.status.success(),
            "localdb start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.localdb(&["stop"]);
        }
    }
}
