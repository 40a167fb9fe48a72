//! The real `tokenctl serve` process on an ephemeral port over the test seed, for tests that
//! need the binary itself: its memory, its threads, what it logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::emulator::binary;
use crate::repo_path;

/// Killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    /// `host:port`.
    pub address: String,
    /// Every line it has written to stderr (its log) so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts it with `env` besides the defaults; `tag` names its key file.
    pub fn start(tag: &str, env: &[(&str, &str)]) -> Self {
        let keys = std::env::temp_dir().join(format!("{tag}-{}.json", std::process::id()));
        let mut child = Command::new(binary("tokenctl", "debug"))
            .args(["serve", "--port", "0", "--seed"])
            .arg(repo_path("seed.toml"))
            .arg("--keys")
            .arg(keys)
            .env_remove("TABLE_NAME")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tokenctl serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let address = stdout
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("listening on http://").map(|(_, a)| a.to_owned()))
            .expect("the server prints its address");
        // Read on: a closed pipe would fail the server's next line of output.
        std::thread::spawn(move || stdout.for_each(drop));
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in stderr.map_while(Result::ok) {
                collected.lock().expect("log lock").push(line);
            }
        });
        Self { child, address, log }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
