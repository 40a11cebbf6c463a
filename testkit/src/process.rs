//! Child processes that never outlive the test that started them.

use std::process::{Child, Command};

use crate::Error;

/// A child process that is killed (SIGKILL) and reaped when dropped, also when a test panics.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
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
        })
    }

    /// The operating-system process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Takes the child's stdout pipe (if it was spawned with `Stdio::piped()`).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// Kills the child with SIGKILL (like `kill -9`) and waits for it to exit.
    pub fn kill(&mut self) -> Result<(), Error> {
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
