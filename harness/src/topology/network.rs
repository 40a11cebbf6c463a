//! A network namespace of its own for one endpoint, so that the partition faults can cut it off
//! from the sync service or PostgreSQL the way jepsen-powersync's nemesis does on a real node.
//!
//! Each [`NodeNetwork`] is a namespace `jepsen-harness-<slot>` joined to the harness's namespace
//! by a veth pair (`jh<slot>` here, `jn<slot>` inside). The pair gets a /29 of its own from
//! 198.18.0.0/15 (RFC 2544's block for test networks, which no real network routes), so only
//! addresses of this pair are ever used:
//!
//! | address | side | what |
//! |---|---|---|
//! | base + 1 | harness | the harness's own end: its clients reach the endpoint from here |
//! | base + 2 | harness | where the node's link to PostgreSQL listens |
//! | base + 3 | harness | where the node's link to the sync service listens |
//! | base + 6 | node | the endpoint (it binds 0.0.0.0 inside its namespace) |
//!
//! A partition drops, inside the node's namespace, every packet arriving from the service's
//! address, as `iptables -A INPUT -s <service> -j DROP` does on a jepsen-powersync node (a
//! policy rule `from <address> blackhole` ahead of the local table, so the drop is silent:
//! connections stall and time out, nothing is refused). As there, only the node's input is
//! cut: what the node sends still reaches the service (a statement PostgreSQL receives may
//! commit though its answer is lost). The harness's end (base + 1) is never cut, as Jepsen's
//! control node is never partitioned. Healing deletes the rules, as `iptables -F` does.
//!
//! Slots are claimed by creating the namespace (`ip netns add` fails when the name exists), so
//! concurrent runs, even in different processes, never share one. Dropping the handle deletes
//! the veth pair and the namespace; the processes started in it must be gone first (an
//! [`Endpoint`](super::Endpoint) kills its process before its network drops).

use std::net::Ipv4Addr;
use std::process::Command;

use crate::error::{Error, Result};

/// The first address of the block the slots are cut from (198.18.0.0/15).
const BLOCK: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// /29 slots in the block.
const SLOTS: u32 = 1 << 14;
/// How many slots to try before giving up.
const ATTEMPTS: u32 = 64;
/// The priority of the partition rules, ahead of the local table (moved to [`LOCAL_PREF`]).
const CUT_PREF: u32 = 10;
/// Where the node's namespace looks up its local table, after the partition rules.
const LOCAL_PREF: u32 = 100;

/// What a partition cuts the node off from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The sync service (jepsen-powersync's `partition-sync`).
    Sync,
    /// PostgreSQL (`partition-postgres`).
    Postgres,
    /// Both (`partition-both`).
    Both,
}

/// One endpoint's namespace and veth pair; see the module documentation.
#[derive(Debug)]
pub struct NodeNetwork {
    namespace: String,
    host_link: String,
    base: u32,
    /// The service addresses whose packets the node drops now.
    cut: Vec<Ipv4Addr>,
}

impl NodeNetwork {
    /// Claims a free slot and sets up its namespace and veth pair. Needs root and iproute2's
    /// `ip`.
    pub fn create() -> Result<NodeNetwork> {
        let first = fastrand::u32(..SLOTS);
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            let slot = (first + attempt) % SLOTS;
            let namespace = format!("jepsen-harness-{slot}");
            if let Err(e) = ip(&["netns", "add", &namespace]) {
                last_error = e.to_string();
                continue;
            }
            let mut net = NodeNetwork {
                namespace,
                host_link: format!("jh{slot}"),
                base: BLOCK + slot * 8,
                cut: Vec::new(),
            };
            // On an error `net` drops, deleting what was set up so far.
            match net.set_up(slot) {
                Ok(()) => return Ok(net),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(Error::Network(format!(
            "no free network slot in {ATTEMPTS} attempts (the partition faults need root and \
             iproute2): {last_error}"
        )))
    }

    fn set_up(&mut self, slot: u32) -> Result<()> {
        let ns = self.namespace.as_str();
        let inner = format!("jn{slot}");
        let subnet = format!("{}/29", self.addr(0));
        // A /29 some interface of this machine already uses is not ours to take.
        let used = ip_output(&["-o", "-4", "addr", "show", "to", &subnet])?;
        if !used.trim().is_empty() {
            return Err(Error::Network(format!(
                "{subnet} is in use: {}",
                used.trim()
            )));
        }
        ip(&[
            "link",
            "add",
            &self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "netns",
            ns,
        ])?;
        // The harness's end first: it is the primary address, the source of the clients'
        // connections, never cut.
        for host in [self.harness_addr(), self.postgres_addr(), self.sync_addr()] {
            ip(&["addr", "add", &format!("{host}/29"), "dev", &self.host_link])?;
        }
        ip(&["link", "set", &self.host_link, "up"])?;
        let node = format!("{}/29", self.node_addr());
        ip(&["-n", ns, "addr", "add", &node, "dev", &inner])?;
        ip(&["-n", ns, "link", "set", &inner, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // Inbound packets meet the local table at priority 0 before any rule of ours; move it
        // behind the partition rules (this namespace is ours alone).
        ip(&[
            "-n",
            ns,
            "rule",
            "add",
            "pref",
            &LOCAL_PREF.to_string(),
            "lookup",
            "local",
        ])?;
        ip(&["-n", ns, "rule", "del", "pref", "0", "lookup", "local"])
    }

    fn addr(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// The harness's end of the pair: where its clients' connections come from.
    pub fn harness_addr(&self) -> Ipv4Addr {
        self.addr(1)
    }

    /// Where the node reaches PostgreSQL (a link of the harness listens here).
    pub fn postgres_addr(&self) -> Ipv4Addr {
        self.addr(2)
    }

    /// Where the node reaches the sync service (a link of the harness listens here).
    pub fn sync_addr(&self) -> Ipv4Addr {
        self.addr(3)
    }

    /// The node's own address, inside its namespace.
    pub fn node_addr(&self) -> Ipv4Addr {
        self.addr(6)
    }

    /// The namespace's name (`ip netns exec <name> …`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so the
    /// child's pid is the program's).
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace]).arg(program);
        cmd
    }

    /// Drops every packet the node receives from what `cut` names (on top of what is cut
    /// already).
    pub fn partition(&mut self, cut: Cut) -> Result<()> {
        let addrs = match cut {
            Cut::Sync => vec![self.sync_addr()],
            Cut::Postgres => vec![self.postgres_addr()],
            Cut::Both => vec![self.sync_addr(), self.postgres_addr()],
        };
        for a in addrs {
            if !self.cut.contains(&a) {
                self.rule("add", a)?;
                self.cut.push(a);
            }
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal(&mut self) -> Result<()> {
        while let Some(a) = self.cut.pop() {
            if let Err(e) = self.rule("del", a) {
                self.cut.push(a);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether some partition is in force.
    pub fn is_cut(&self) -> bool {
        !self.cut.is_empty()
    }

    fn rule(&self, action: &str, from: Ipv4Addr) -> Result<()> {
        ip(&[
            "-n",
            &self.namespace,
            "rule",
            action,
            "pref",
            &CUT_PREF.to_string(),
            "from",
            &from.to_string(),
            "blackhole",
        ])
    }
}

impl Drop for NodeNetwork {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; the namespace goes once its last
        // process has.
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

/// Runs `ip <args>`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<()> {
    ip_output(args).map(drop)
}

fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Network(format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Network(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
