//! Real network partitions: each node in its own network namespace on a private bridge.
//!
//! ```text
//!   root namespace (test process, clients)      10.201.X.254  bridge chb<tag>
//!     ├─ veth ─ namespace chorus<tag>n0          10.201.X.1    node 0
//!     ├─ veth ─ namespace chorus<tag>n1          10.201.X.2    node 1
//!     └─ veth ─ namespace chorus<tag>n2          10.201.X.3    node 2
//! ```
//! A partition installs blackhole routes inside the namespaces, so packets between the
//! cut nodes vanish silently (as on a broken link: no resets, connections time out),
//! while clients in the root namespace still reach every node. Healing deletes the
//! routes. Everything is torn down on drop. Needs root (CAP_NET_ADMIN) and `ip`.

use std::process::Command;

use anyhow::Context;

/// Namespaces, veths and a bridge for `n` nodes.
pub struct Net {
    /// Active cuts per node pair (low, high): overlapping partitions share routes.
    cuts: std::sync::Mutex<std::collections::HashMap<(usize, usize), u32>>,
    tag: u32,
    n: usize,
    subnet: u8,
    created_ns: Vec<String>,
    bridge_up: bool,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Net(10.201.{}.0/24, {} namespaces)", self.subnet, self.n)
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Net {
    /// Build the namespaces and the bridge. Fails (cleaning up what it made) without
    /// root or iproute2.
    pub fn create(n: usize) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let mut net = Self {
            cuts: std::sync::Mutex::default(),
            tag: pid % 100_000,
            n,
            subnet: (pid % 250) as u8,
            created_ns: Vec::new(),
            bridge_up: false,
        };
        net.build().inspect_err(|_| drop_net(&mut net))?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("chb{}", self.tag)
    }

    /// Namespace of node `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("chorus{}n{i}", self.tag)
    }

    /// Address of node `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("10.201.{}.{}", self.subnet, i + 1)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let br = self.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        self.bridge_up = true;
        ip(&[
            "addr",
            "add",
            &format!("10.201.{}.254/24", self.subnet),
            "dev",
            &br,
        ])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..self.n {
            let ns = self.ns(i);
            ip(&["netns", "add", &ns])?;
            self.created_ns.push(ns.clone());
            let host = format!("chv{}h{i}", self.tag);
            let inner = format!("chv{}n{i}", self.tag);
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &host, "master", &br])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.ip(i)),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    /// Cut the links between `a` and every node in `others`, both directions.
    pub fn cut(&self, a: usize, others: &[usize]) -> anyhow::Result<()> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        for &b in others.iter().filter(|b| **b != a) {
            let count = cuts.entry((a.min(b), a.max(b))).or_insert(0);
            if *count == 0 {
                self.route("add", a, b)?;
                self.route("add", b, a)?;
            }
            *count += 1;
        }
        Ok(())
    }

    /// Undo one [`Net::cut`]; a pair stays cut while another partition still holds it.
    pub fn heal(&self, a: usize, others: &[usize]) -> anyhow::Result<()> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        let mut first_err = None;
        for &b in others.iter().filter(|b| **b != a) {
            let key = (a.min(b), a.max(b));
            let Some(count) = cuts.get_mut(&key) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                cuts.remove(&key);
                for (x, y) in [(a, b), (b, a)] {
                    if let Err(e) = self.route("del", x, y) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn route(&self, verb: &str, from: usize, to: usize) -> anyhow::Result<()> {
        ip(&[
            "-n",
            &self.ns(from),
            "route",
            verb,
            "blackhole",
            &format!("{}/32", self.ip(to)),
        ])
    }
}

fn drop_net(net: &mut Net) {
    for ns in net.created_ns.drain(..) {
        // Deleting a namespace deletes the veth end inside it, and with it the pair.
        let _ = ip(&["netns", "del", &ns]);
    }
    if net.bridge_up {
        let _ = ip(&["link", "del", &net.bridge()]);
        net.bridge_up = false;
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        drop_net(self);
    }
}
