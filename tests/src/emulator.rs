//! The real function binaries under the Lambda emulator (`cargo lambda watch`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives in <workspace>/tests")
        .to_path_buf()
}

/// A JSON file of the workspace, e.g. an event fixture under `infra/events/`.
pub fn read_json(relative: &str) -> Value {
    let path = workspace_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The `cargo-lambda` binary: on `PATH` (`infra/with-test-services.sh` puts `.venv/bin` there),
/// else in the project virtualenv.
pub fn cargo_lambda_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("cargo-lambda"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(found) = on_path {
        return found;
    }
    let venv = workspace_root().join(".venv/bin/cargo-lambda");
    assert!(
        venv.is_file(),
        "cargo-lambda is neither on PATH nor at {}: run `infra/venv.sh` \
         (or the tests through `infra/with-test-services.sh` / `make test`)",
        venv.display()
    );
    venv
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port on 127.0.0.1")
        .port()
}

/// How [`LambdaEmulator::start_with`] builds and scales the functions. The default is what the
/// end-to-end tests use: the debug profile, one instance per function, the emulator's own
/// invoke timeout.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmulatorOptions {
    /// Build and run the functions with the release profile (`--release`), as deployed.
    pub release: bool,
    /// At most this many instances of each function at once (`--concurrency`; the emulator's
    /// default is 1). cargo-lambda 1.9 starts them all on the function's first request.
    pub concurrency: Option<usize>,
    /// How long an invoke request waits for the function's answer (`--timeout`, seconds).
    pub timeout_seconds: Option<u64>,
}

/// The deployed functions, each built from its own crate directory `functions/NAME` (the
/// template's `CodeUri`), as `sam build` builds it.
pub const FUNCTIONS: [&str; 3] = ["checkout", "reward-worker", "retry-failed"];

/// `cargo lambda watch` for each deployed function: the Lambda control-plane emulator that builds
/// a function's binary with `cargo run --bin NAME` on its first request and serves
/// `http://127.0.0.1:PORT/lambda-url/NAME/...` (a Function URL style HTTP call) and
/// `POST http://127.0.0.1:PORT/2015-03-31/functions/NAME/invocations` (a raw event, as
/// `cargo lambda invoke` sends it).
///
/// One emulator per function, each started in the function's own crate directory: Cargo then
/// resolves that package's features alone, so the binary under test is built as the deployed one
/// (at the workspace root it would unify every member's features, the test kit's included).
///
/// Dropping it stops the emulators and every function instance they started, even when the test
/// failed; the emulators' logs are printed then, and kept under `.local/e2e/`.
pub struct LambdaEmulator {
    watches: Vec<Watch>,
}

/// One function's `cargo lambda watch`.
struct Watch {
    function: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LambdaEmulator {
    /// Starts an emulator for each function, each listening on a free port of 127.0.0.1 and
    /// building into the workspace's target directory. The functions inherit the emulators'
    /// environment: `env` is exactly the function settings they get (none of the settings the
    /// functions read is taken from the caller's environment).
    pub fn start(env: &[(&str, &str)]) -> LambdaEmulator {
        Self::start_with(EmulatorOptions::default(), env)
    }

    /// Like [`Self::start`], with the build profile, the instances per function and the invoke
    /// timeout of `options` (a benchmark runs the release build, several instances at once).
    pub fn start_with(options: EmulatorOptions, env: &[(&str, &str)]) -> LambdaEmulator {
        let watches = FUNCTIONS
            .iter()
            .map(|&function| Watch::start(function, options, env))
            .collect();
        LambdaEmulator { watches }
    }

    fn watch(&self, function: &str) -> &Watch {
        self.watches
            .iter()
            .find(|watch| watch.function == function)
            .unwrap_or_else(|| panic!("no function {function} (the functions: {FUNCTIONS:?})"))
    }

    /// Runs `cargo lambda invoke FUNCTION --data-file FILE` against this emulator, exactly as a
    /// developer would, and returns what it prints (the function's answer) as JSON.
    pub fn cargo_lambda_invoke(&self, function: &str, data_file: &str) -> Value {
        let output = Command::new(cargo_lambda_binary())
            .args(["lambda", "invoke", function, "--data-file", data_file])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(self.watch(function).port.to_string())
            .current_dir(workspace_root())
            .output()
            .expect("run cargo lambda invoke");
        assert!(
            output.status.success(),
            "cargo lambda invoke {function} --data-file {data_file} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "cargo lambda invoke printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The running instances of `function` (its processes among the emulator's descendants,
    /// by the binary's name), e.g. to read a function's memory use from `/proc`.
    pub fn function_pids(&self, function: &str) -> Vec<u32> {
        // `comm` holds at most 15 bytes of the executable's name.
        let name: String = function.chars().take(15).collect();
        descendants(self.watch(function).child.id(), &all_processes())
            .into_iter()
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
            .collect()
    }

    /// The Function URL style address of `path` on `function`, e.g.
    /// `http://127.0.0.1:PORT/lambda-url/checkout/api/cart/checkout`.
    pub fn function_url(&self, function: &str, path: &str) -> String {
        format!(
            "{}/lambda-url/{function}{path}",
            self.watch(function).base_url()
        )
    }

    /// Where a raw event for `function` is posted (the Lambda `Invoke` API).
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.watch(function).base_url()
        )
    }

    /// Sends `GET probe_url` until `answered(status, body)` says the function itself replied.
    ///
    /// The first request makes the emulator build and start the function, which takes minutes on
    /// a cold target directory, and the request waits for it. Panics, with the end of the
    /// emulator's log, after `timeout`, or as soon as the emulator exits or the function's
    /// command fails (a build error, or a crash at start-up: the emulator would let the request
    /// hang).
    pub async fn wait_until_ready<F>(&mut self, probe_url: &str, timeout: Duration, answered: F)
    where
        F: Fn(u16, &str) -> bool,
    {
        self.wait_until_answered(probe_url, None, timeout, answered)
            .await;
    }

    /// Like [`Self::wait_until_ready`], for a function that is invoked with an event rather
    /// than called over HTTP: POSTs `event` to its Invoke API until `answered` accepts the reply.
    /// Choose an event whose effect may repeat (a status query, a drain of an empty queue).
    pub async fn wait_until_invocable<F>(
        &mut self,
        function: &str,
        event: &Value,
        timeout: Duration,
        answered: F,
    ) where
        F: Fn(u16, &str) -> bool,
    {
        let url = self.invoke_url(function);
        self.wait_until_answered(&url, Some(event), timeout, answered)
            .await;
    }

    async fn wait_until_answered<F>(
        &mut self,
        probe_url: &str,
        event: Option<&Value>,
        timeout: Duration,
        answered: F,
    ) where
        F: Fn(u16, &str) -> bool,
    {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let mut last = String::from("no answer yet");
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                panic!(
                    "the function did not answer {probe_url} within {timeout:?} \
                     (the first request builds it with cargo); last probe: {last}\n{}",
                    self.log_tail(60)
                );
            }
            let request = match event {
                Some(event) => client.post(probe_url).json(event),
                None => client.get(probe_url),
            }
            .timeout(left)
            .send();
            tokio::pin!(request);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut request => break outcome,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if let Some(reason) = self.failure() {
                            panic!(
                                "{reason} before the function answered {probe_url}\n{}",
                                self.log_tail(60)
                            );
                        }
                    }
                }
            };
            match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    if answered(status, &body) {
                        return;
                    }
                    last = format!(
                        "HTTP {status}: {}",
                        body.chars().take(300).collect::<String>()
                    );
                }
                Err(error) => last = error.to_string(),
            }
            if let Some(reason) = self.failure() {
                panic!("{reason}; last probe: {last}\n{}", self.log_tail(60));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Why an emulator can no longer bring its function up, if one can't.
    fn failure(&mut self) -> Option<String> {
        self.watches.iter_mut().find_map(Watch::failure)
    }

    /// The emulators' whole logs so far (cargo's output and the functions' logs).
    pub fn log_text(&self) -> String {
        self.watches
            .iter()
            .map(|watch| std::fs::read_to_string(&watch.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `lines` lines of each emulator's log (cargo's output and the function's logs).
    pub fn log_tail(&self, lines: usize) -> String {
        self.watches
            .iter()
            .map(|watch| watch.log_tail(lines))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Watch {
    fn start(function: &'static str, options: EmulatorOptions, env: &[(&str, &str)]) -> Watch {
        let root = workspace_root();
        let port = free_port();
        let log_dir = root.join(".local/e2e");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!(
            "watch-{}-{function}-{port}.log",
            std::process::id()
        ));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();

        let binary = cargo_lambda_binary();
        let mut path = vec![binary.parent().unwrap().to_path_buf()];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));

        let mut command = Command::new(&binary);
        command
            // `cargo lambda watch` is `cargo-lambda lambda watch`, as cargo itself runs it.
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            // No rebuild or restart when a source file changes in the middle of a test.
            .arg("--ignore-changes")
            .arg("--locked")
            .args(options.release.then_some("--release"))
            .args(
                options
                    .concurrency
                    .map(|n| ["--concurrency".to_owned(), n.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .args(
                options
                    .timeout_seconds
                    .map(|s| ["--timeout".to_owned(), s.to_string()])
                    .into_iter()
                    .flatten(),
            )
            // The function's own crate, as the template's CodeUri: its features alone.
            .current_dir(root.join("functions").join(function))
            .env("PATH", std::env::join_paths(path).unwrap())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Every variable the binaries read (declared in one table): a developer's shell must
        // not leak any into a test.
        for variable in mall_runtime::env::VARIABLES {
            command.env_remove(variable.name);
        }
        command.envs(env.iter().copied());
        // Its own process group, so that the whole emulator can be signalled at once.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} lambda watch: {e}", binary.display()));
        Watch {
            function,
            child,
            port,
            log,
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn failure(&mut self) -> Option<String> {
        let function = self.function;
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(format!(
                "cargo lambda watch of {function} exited ({status})"
            ));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        // What the emulator logs when `cargo run` (build, then the function) ends.
        log.lines()
            .find(|line| line.contains("ERROR") && line.contains("command exited"))
            .map(|line| format!("{function}'s command failed ({})", line.trim()))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- last {lines} lines of {} ---\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pid = self.child.id();
        // Function instances run in process groups of their own: note them before they are
        // orphaned, with their start times so that a reused pid is never signalled.
        let instances = descendant_groups(pid);
        signal_group("TERM", pid);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                _ => break,
            }
        }
        signal_group("KILL", pid);
        for (group, start_time) in instances {
            if process_start_time(group) == Some(start_time) {
                signal_group("KILL", group);
            }
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(80));
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Sends `SIGsignal` to the process group `group` (errors ignored: it may be gone already).
fn signal_group(signal: &str, group: u32) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `(pid, ppid, pgid, start time)` from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u32, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let pgid = rest.get(2)?.parse().ok()?;
    let start_time = rest.get(19)?.parse().ok()?;
    Some((pid, ppid, pgid, start_time))
}

fn process_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, _, _, start)| start)
}

/// The process groups (other than `root`'s own) of `root`'s descendants that lead their group,
/// with the leader's start time.
fn descendant_groups(root: u32) -> Vec<(u32, u64)> {
    let stats = all_processes();
    let descendants = descendants(root, &stats);
    stats
        .iter()
        .filter(|&&(pid, _, pgid, _)| pid == pgid && pgid != root && descendants.contains(&pid))
        .map(|&(pid, _, _, start)| (pid, start))
        .collect()
}

/// [`proc_stat`] of every process now running.
fn all_processes() -> Vec<(u32, u32, u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(proc_stat)
        .collect()
}

/// The descendants of `root` among `processes` (children, their children, ...).
fn descendants(root: u32, processes: &[(u32, u32, u32, u64)]) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid, _, _) in processes {
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = HashSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if found.insert(child) {
                stack.push(child);
            }
        }
    }
    found
}
