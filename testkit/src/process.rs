//! Child processes that never outlive the test that started them.

use std::process::{Child, Command};

use crate::Error;

/// A child process that is killed (SIGKILL) and reaped when dropped, also when a test panics.
/// With [`ChildGuard::terminate_first`] it gets SIGTERM and a grace period first, so that a
/// child with children of its own (the harness) can tear them down.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
    grace: Option<std::time::Duration>,
}

impl ChildGuard {
    /// Spawns `command`; `name` is used in error messages.
    pub fn spawn(name: &str, command: &mut Command) -> Result<Self, Error> {
        let child = command.spawn().map_err(|e| Error::Command {
            command: name.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(ChildGuard {
            child: Some(child),
            name: name.to_owned(),
            grace: None,
        })
    }

    /// On drop or [`ChildGuard::kill`], send SIGTERM first and wait up to `grace` for the
    /// child to exit before SIGKILL.
    pub fn terminate_first(mut self, grace: std::time::Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Waits for the child to exit by itself and returns its status; the guard is then empty.
    pub fn wait(&mut self) -> Result<std::process::ExitStatus, Error> {
        let mut child = self.child.take().ok_or_else(|| Error::Command {
            command: self.name.clone(),
            detail: "already waited for or killed".into(),
        })?;
        child
            .wait()
            .map_err(|e| Error::io(format!("process {}", self.name), e))
    }

    /// Waits for the child to exit by itself, collecting its piped stdout and stderr (as
    /// [`std::process::Child::wait_with_output`]); the guard is then empty.
    pub fn wait_with_output(&mut self) -> Result<std::process::Output, Error> {
        let child = self.child.take().ok_or_else(|| Error::Command {
            command: self.name.clone(),
            detail: "already waited for or killed".into(),
        })?;
        child
            .wait_with_output()
            .map_err(|e| Error::io(format!("process {}", self.name), e))
    }

    /// The operating-system process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Takes the child's stdout pipe (if it was spawned with `Stdio::piped()`).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// Takes the child's stdin pipe (if it was spawned with `Stdio::piped()`); dropping it
    /// closes the child's stdin.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// Takes the child's stderr pipe (if it was spawned with `Stdio::piped()`).
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut().and_then(|c| c.stderr.take())
    }

    /// Kills the child with SIGKILL (like `kill -9`) and waits for it to exit.
    pub fn kill(&mut self) -> Result<(), Error> {
        if let (Some(child), Some(grace)) = (self.child.as_mut(), self.grace) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = crate::eventually(
                format!("{} to exit after SIGTERM", self.name),
                grace,
                || child.try_wait().ok().flatten(),
            );
        }
        if let Some(mut child) = self.child.take() {
            // An already exited child makes kill() fail; wait() still reaps it.
            let _ = child.kill();
            child
                .wait()
                .map_err(|e| Error::io(format!("process {}", self.name), e))?;
        }
        Ok(())
    }

    /// Returns whether the child has exited (and reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_first_lets_the_child_handle_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("terminated");
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'touch {}; exit 0' TERM; touch {}; while true; do sleep 0.05; done",
            marker.display(),
            ready.display()
        );
        let guard = ChildGuard::spawn("sh", Command::new("sh").args(["-c", &script]))
            .unwrap()
            .terminate_first(std::time::Duration::from_secs(30));
        crate::eventually(
            "the shell to set its trap",
            std::time::Duration::from_secs(30),
            || ready.is_file(),
        )
        .unwrap();
        drop(guard);
        assert!(marker.is_file(), "the child got SIGTERM and ran its trap");
    }

    #[test]
    fn wait_returns_the_exit_status() {
        let mut guard = ChildGuard::spawn("false", &mut Command::new("false")).unwrap();
        assert_eq!(guard.wait().unwrap().code(), Some(1));
        assert!(guard.wait().is_err());
    }

    #[test]
    fn drop_kills_the_child() {
        let mut guard = ChildGuard::spawn("sleep", Command::new("sleep").arg("600")).unwrap();
        assert!(!guard.has_exited());
        let pid = guard.id().unwrap();
        drop(guard);
        // The process is reaped: /proc/<pid> is gone (or belongs to a zombie-free new process).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            !status.contains("sleep"),
            "sleep {pid} still running: {status}"
        );
    }
}
